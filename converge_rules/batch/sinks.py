"""Where batch results go: a JSON Lines file, or an SQLite or PostgreSQL database.

Both kinds write each result as its job finishes and are resumable: opening
a sink reports the ids already done, which the batch then skips.

- JSON Lines (``out.jsonl``): each finished result is appended to a side
  journal ``out.jsonl.journal`` and fsynced; ``finish`` rewrites ``out.jsonl``
  atomically with every result in job-id order (streamed from the old output
  and the journal, so memory holds only an offset per job) and removes the journal. After
  a SIGKILL the journal holds every finished job (a torn last line is
  dropped), so a rerun finishes with each job exactly once.
- A database (``sqlite:///out.db``, ``postgresql://...``): a table ``jobs`` (id,
  tier, reasons, cycles, digest, diagnostics; JSON as text) and one table per
  output relation with a ``job_id`` column first. A job's rows commit in one
  transaction with its ``jobs`` row, so a job is either wholly there or absent.
  Read them ``ORDER BY id`` (or ``job_id``) for job-id order.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Mapping

from ..values import dumps_json, loads_json
from ..diagnostics import ConvergeError, Diagnostic, Span
from .jobs import id_text, job_key
from .runner import TIERS, JobResult

__all__ = ["Sink", "JsonlSink", "SqlSink", "open_sink"]


def _error(code: str, message: str, where: str, notes: tuple[str, ...] = ()) -> ConvergeError:
    return ConvergeError([Diagnostic(code, message, Span(where, 0, 0), notes=notes)])


class Sink:
    """Receives results as jobs finish."""

    def done(self) -> dict[Any, str]:
        """Ids of jobs already finished (from an earlier, maybe interrupted, run) -> tier."""
        raise NotImplementedError

    def add(self, result: JobResult) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """Every job is done: make the final output (atomically where the kind allows)."""

    def close(self) -> None:
        pass


class JsonlSink(Sink):
    """``out.jsonl`` with a side journal appended and fsynced per finished job.

    Only where each result lies is kept in memory (file, offset, length), never
    the results: ``finish`` streams them into the new output in job-id order."""

    def __init__(self, path: str):
        self.path = path
        self.journal_path = path + ".journal"
        self.where: dict[Any, tuple[str, int, int]] = {}  # job id -> (file, offset, length)
        self.tiers: dict[Any, str] = {}
        for source in (path, self.journal_path):
            self._read(source)
        self._journal: Any = None

    def _read(self, path: str) -> None:
        try:
            handle = open(path, "rb")
        except FileNotFoundError:
            return
        except OSError as err:
            raise _error("E531", f"cannot read {path}: {err.strerror or err}", path)
        offset = 0
        with handle:
            for n, raw in enumerate(handle, 1):
                if not raw.endswith(b"\n"):  # a torn last line (killed mid-write) is dropped
                    break
                if raw.strip():
                    try:
                        record = loads_json(raw)  # ints of any size, as the results hold them
                        job_id, tier = record["id"], record["tier"]
                    except (ValueError, KeyError, TypeError):
                        job_id = tier = None
                    # a result's id is what a job source gives (text or an integer) and its tier one of four
                    if isinstance(job_id, bool) or not isinstance(job_id, (str, int)) or tier not in TIERS:
                        raise _error("E531", f"{path}:{n} is not a batch result; use another --out, or remove the file",
                                     path)
                    self.where[job_id] = (path, offset, len(raw))
                    self.tiers[job_id] = tier
                offset += len(raw)
            torn = handle.tell() != offset or os.path.getsize(path) != offset
        if path == self.journal_path and torn:
            with open(path, "r+b") as out:  # cut the torn line so appends start on a fresh line
                out.truncate(offset)

    def done(self) -> dict[Any, str]:
        return dict(self.tiers)

    def open(self) -> None:
        """Open the journal for appending (``open_sink`` does, so an output that cannot be written
        is E507 before any job runs; ``add`` does it otherwise)."""
        if self._journal is not None:
            return
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise _error("E507", f"cannot write {self.path}: no such directory {directory}", self.path)
        try:
            self._journal = open(self.journal_path, "ab")
        except OSError as err:
            raise _error("E507", f"cannot write {self.journal_path}: {(err.strerror or str(err)).lower()}", self.path)

    def add(self, result: JobResult) -> None:
        self.open()
        line = result.line().encode("utf-8")
        offset = self._journal.tell()
        try:
            self._journal.write(line)
            self._journal.flush()
            os.fsync(self._journal.fileno())
        except OSError as err:  # e.g. the disk is full: the jobs journalled so far are kept
            raise _error("E507", f"cannot write {self.journal_path}: {(err.strerror or str(err)).lower()}", self.path,
                         ("jobs finished so far are kept: free the space, then run the same command again",))
        self.where[result.id] = (self.journal_path, offset, len(line))
        self.tiers[result.id] = result.tier

    def _lines(self) -> Any:
        handles: dict[str, Any] = {}
        try:
            for job_id in sorted(self.where, key=job_key):
                path, offset, length = self.where[job_id]
                handle = handles.get(path) or handles.setdefault(path, open(path, "rb"))
                handle.seek(offset)
                yield handle.read(length)
        finally:
            for handle in handles.values():
                handle.close()

    def finish(self) -> None:
        from ..io import write_atomic

        self.close()
        write_atomic(self.path, self._lines())
        try:
            os.remove(self.journal_path)
        except FileNotFoundError:
            pass
        self.where = {k: (self.path, 0, 0) for k in self.where}  # the journal is gone: no more reads

    def close(self) -> None:
        if self._journal is not None:
            empty = self._journal.tell() == 0
            self._journal.close()
            self._journal = None
            if empty:  # opened before any job finished (e.g. stopped by E532): leave nothing behind
                try:
                    os.remove(self.journal_path)
                except OSError:
                    pass


JOB_COLUMNS = ("id", "tier", "reasons", "cycles", "digest", "diagnostics")
_SQL_TYPES = {"sqlite": {"int": "INTEGER", "float": "REAL", "str": "TEXT", "bool": "INTEGER"},
              "postgres": {"int": "BIGINT", "float": "DOUBLE PRECISION", "str": "TEXT", "bool": "BOOLEAN"}}


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SqlSink(Sink):
    """A ``jobs`` table and a table per output relation, one transaction per job."""

    def __init__(self, url: str, schema: Mapping[str, Any], relations: Iterable[str]):
        from ..io.database import redact

        self.label = redact(url)
        self.kind = "sqlite" if url.lower().startswith("sqlite") else "postgres"
        self.relations = list(relations)
        self.schema = schema
        self.mark = "?" if self.kind == "sqlite" else "%s"
        try:
            self.conn = self._connect(url)
            self._create()
        except ConvergeError:
            raise
        except Exception as err:
            raise _error("E531", f"cannot write results to {self.label}: {err}", self.label)

    def _connect(self, url: str) -> Any:
        if self.kind == "sqlite":
            import sqlite3

            from ..io.sqlite import sqlite_path

            try:
                path = sqlite_path(url)
            except ValueError as err:
                raise _error("E531", f"cannot write results to {self.label}: {err}", self.label)
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("PRAGMA journal_mode = WAL")
            return conn
        from ..io.postgres import connect

        conn = connect(url, self.label, read_only=False)
        conn.autocommit = True
        return conn

    def _exec(self, sql: str, params: Iterable[Any] = ()) -> Any:
        return self.conn.execute(sql.replace("?", self.mark), tuple(params))

    def _create(self) -> None:
        types = _SQL_TYPES[self.kind]
        tables = [("jobs", JOB_COLUMNS, "CREATE TABLE jobs (id TEXT PRIMARY KEY, tier TEXT NOT NULL, "
                   "reasons TEXT NOT NULL, cycles INTEGER NOT NULL, digest TEXT, diagnostics TEXT NOT NULL)")]
        for rel in self.relations:
            names = [c.name.lower() for c in self.schema[rel].columns]
            if rel.lower() == "jobs" or "job_id" in names:
                raise _error("E531", f"cannot write relation {rel!r} to {self.label}: "
                                     + ("its name is that of the batch's table of jobs" if rel.lower() == "jobs"
                                        else "it has a column job_id, the column a batch adds"), self.label,
                             ("write it to a JSON Lines --out, or leave it out of --relation",))
            columns = ", ".join(f"{_ident(c.name)} {types[c.type]} NOT NULL" for c in self.schema[rel].columns)
            tables.append((rel, ("job_id", *(c.name for c in self.schema[rel].columns)),
                           f"CREATE TABLE {_ident(rel)} (job_id TEXT NOT NULL REFERENCES jobs(id)"
                           + (f", {columns}" if columns else "") + ")"))
        # tables already there must be those a batch makes (all checked before anything is created):
        # rows are never written into another table's columns, and a database that is not a batch
        # result is left as it was (E531)
        missing = []
        for name, columns, create in tables:
            if not self._exists(name):
                missing.append(create)
                continue
            found = tuple(d[0] for d in self._exec(f"SELECT * FROM {_ident(name)} WHERE 1 = 0").description or ())
            if found != columns:
                raise _error("E531", f"{self.label} already has a table {name!r} with the columns "
                                     f"({', '.join(found)}), not those of batch results ({', '.join(columns)})",
                             self.label, ("use another --out, or another database",))
        for create in missing:
            self._exec(create)

    def _exists(self, table: str) -> bool:
        if self.kind == "sqlite":
            sql = "SELECT count(*) FROM sqlite_master WHERE type IN ('table', 'view') AND lower(name) = lower(?)"
            return bool(self._exec(sql, (table,)).fetchone()[0])
        return bool(self._exec("SELECT to_regclass(?) IS NOT NULL", (_ident(table),)).fetchone()[0])

    def done(self) -> dict[Any, str]:
        return {job_id: tier for job_id, tier in self._exec("SELECT id, tier FROM jobs").fetchall()}

    def add(self, result: JobResult) -> None:
        job_id = id_text(result.id)
        try:
            self._exec("BEGIN")
            self._exec("INSERT INTO jobs (id, tier, reasons, cycles, digest, diagnostics) VALUES (?, ?, ?, ?, ?, ?)",
                       (job_id, result.tier, dumps_json(result.reasons, ensure_ascii=False), result.cycles,
                        result.digest, dumps_json(result.diagnostics, ensure_ascii=False)))
            for rel in self.relations:
                rows = result.facts.get(rel, [])
                if rows:
                    marks = ", ".join([self.mark] * (1 + len(rows[0])))
                    sql = f"INSERT INTO {_ident(rel)} VALUES ({marks})"
                    if self.kind == "sqlite":
                        self.conn.executemany(sql, [(job_id, *row) for row in rows])
                    else:
                        with self.conn.cursor() as cur:
                            cur.executemany(sql, [(job_id, *row) for row in rows])
            self._exec("COMMIT")
        except Exception as err:
            try:
                self._exec("ROLLBACK")
            except Exception:
                pass
            raise _error("E531", f"cannot write the result of job {job_id} to {self.label}: {err}", self.label)

    def close(self) -> None:
        self.conn.close()


def open_sink(out: str, schema: Mapping[str, Any], relations: Iterable[str]) -> Sink:
    """A sink for ``--out``: a database URL, or a JSON Lines file."""
    from ..io.database import is_database_url

    if is_database_url(out):
        return SqlSink(out, schema, relations)
    from ..io.writers import not_regular, refuse_non_path

    refuse_non_path(out)  # E507 for - or "", as for every output option: no "-.journal", no job run
    for path in (out, out + ".journal"):  # checked before anything is read, run or written
        kind = not_regular(path)
        if kind:
            raise _error("E531", f"--out {out}: {path} is {kind}, not a regular file; give a .jsonl file "
                                 "or a database URL", out)
    sink = JsonlSink(out)
    sink.open()
    return sink
