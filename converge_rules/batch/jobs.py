"""Batch jobs and where they come from.

A ``Job`` is an id plus its input facts, in one of three forms: Python
facts (a JSON Lines job), fact files (a directory job), or raw database rows
(a partition of a database). Facts are converted inside the job, on the
worker, so a bad value fails that job alone.

Sources (``iter_jobs``):

- a JSON Lines file: one ``{"id": ..., "facts": {...}}`` per line;
- a directory: one job per sub-directory or supported facts file, whose id is
  the entry's name (a file's without its extension), in name order;
- a database URL with ``partition_by``: every input relation whose table has
  that column is split by its value, one job per value (the value as text is
  the id); relations without it are shared by every job.

A malformed job source (a line that is not JSON, an object in it with a key
twice, a job without an id, two jobs with one id) is ``E530`` at file:line:col and stops the batch before any
job runs; a job whose facts are wrong fails alone.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from ..io import jsonpos
from ..values import dumps_json, has_surrogate, int_to_str
from ..diagnostics import ConvergeError, Diagnostic, Span, split_lines

__all__ = ["Job", "id_text", "iter_jobs", "job_key", "jobs_from_jsonl", "jobs_from_directory", "jobs_from_database"]


@dataclass(frozen=True)
class Job:
    """One independent case: an id and its input facts."""

    id: str | int
    facts: Mapping[str, Any] | None = None        # Python facts, as RuleSet.run(facts=...)
    fact_files: tuple[str, ...] = ()               # files or directories, as RuleSet.run(fact_files=...)
    tables: Mapping[str, Any] | None = field(default=None, repr=False)  # raw database rows (RawTable)
    source: str = ""                               # the jobs file, or the redacted URL of the tables
    line: int = 0                                  # the job's line in a JSON Lines file


def id_text(job_id: str | int) -> str:
    """A job id as text, the form ids compare in (``1`` and ``"1"`` are one id): an int of any size too."""
    return int_to_str(job_id) if isinstance(job_id, int) else job_id


def job_key(job_id: str | int) -> tuple[int, Any]:
    """The order of job ids in every output: integers by value, then text by code point."""
    return (0, job_id) if isinstance(job_id, int) else (1, job_id)


def _error(message: str, path: str, line: int = 0, col: int = 0, notes: tuple[str, ...] = (),
           text: str | None = None) -> ConvergeError:
    """E530 at ``path:line:col``; ``text``: that line, quoted by the diagnostic."""
    return ConvergeError([Diagnostic("E530", message, Span(path, line, col), notes=notes, quote=text if line else None)])


def jobs_from_jsonl(path: str) -> Iterator[Job]:
    """One job per non-blank line ``{"id": "...", "facts": {...}}``."""
    from ..regularfile import NotRegularFile, open_regular_file, reason

    try:  # a FIFO would block until a writer came, and a device such as /dev/zero is one endless
        handle = open_regular_file(path)  # line (unbounded memory): both are refused before a read
    except NotRegularFile as err:
        raise _error(f"cannot read jobs file {path}: {reason(err)}", path,
                     notes=("give a JSON Lines file, a directory of jobs or a database URL",))
    except OSError as err:
        raise _error(f"cannot read jobs file {path}: {reason(err)}", path)
    seen: set[Any] = set()
    with handle:
        for n, raw in enumerate(handle, 1):
            if n == 1 and raw.startswith(b"\xef\xbb\xbf"):  # a byte order mark is no text (as in facts files)
                raw = raw[3:]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise _error(f"jobs file is not UTF-8 (byte {err.start + 1} of the line)", path, n, err.start + 1,
                             text=split_lines(raw.decode("utf-8", "replace"))[0])
            if not line.strip():
                continue
            shown = split_lines(line)[0]
            try:  # ints of any size, as in facts files; a key twice would silently lose its first value
                value = jsonpos.loads_unique(line)
            except json.JSONDecodeError as err:
                raise _error(f"malformed job: {err.msg}", path, n, err.colno, text=shown)
            except jsonpos.RepeatedKey as err:
                raise _error(f"key {dumps_json(err.path[-1], ensure_ascii=False)} appears twice in "
                             + ("the job" if len(err.path) == 1 else "one object of the job"), path, n, err.start + 1,
                             ("JSON keeps only the last value of a repeated key, so the job is refused rather than "
                              "run with values missing",), shown)
            except RecursionError:
                raise _error("malformed job: nested too deeply", path, n, 1, text=shown)
            if not isinstance(value, dict) or "id" not in value:
                raise _error('a job is an object {"id": ..., "facts": {...}}', path, n, 1, text=shown)
            job_id = value["id"]
            if isinstance(job_id, bool) or not isinstance(job_id, (str, int)):
                raise _error(f"a job id is a string or an integer, got {dumps_json(job_id)[:40]}", path, n, 1, text=shown)
            if isinstance(job_id, str) and has_surrogate(job_id):  # no output could hold it
                raise _error(f"job id {dumps_json(job_id)[:40]} is not valid Unicode (it holds a lone surrogate)",
                             path, n, 1, text=shown)
            if id_text(job_id) in seen:  # ids compare as text: 1 and "1" are the same job
                raise _error(f"job id {dumps_json(job_id)} is used twice", path, n, 1, text=shown)
            seen.add(id_text(job_id))
            unknown = sorted(set(value) - {"id", "facts"})
            if unknown:
                raise _error(f"unknown job key {unknown[0]!r}", path, n, 1, ('a job has the keys "id" and "facts"',), shown)
            yield Job(job_id, facts=value.get("facts") if value.get("facts") is not None else {}, source=path, line=n)


def jobs_from_directory(path: str) -> Iterator[Job]:
    """One job per sub-directory or supported facts file, named by it."""
    from ..io import SUPPORTED_EXTENSIONS

    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except OSError as err:
        raise _error(f"cannot read jobs directory {path}: {err.strerror or err}", path)
    seen: dict[str, str] = {}
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            job_id = entry.name
        elif os.path.splitext(entry.name)[1].lower() in SUPPORTED_EXTENSIONS:
            job_id = os.path.splitext(entry.name)[0]
        else:
            continue
        if has_surrogate(entry.name):  # a name that is not UTF-8: no output could hold its id
            from ..textsafe import escape_controls

            raise _error(f"the name of the job {os.fsencode(entry.name)!r} is not valid UTF-8; rename it",
                         escape_controls(os.path.join(path, entry.name)))
        if job_id in seen:
            raise _error(f"job id {job_id!r} is used twice: by {seen[job_id]} and {entry.name}", path)
        seen[job_id] = entry.name
        yield Job(job_id, fact_files=(os.path.join(path, entry.name),))


def jobs_from_database(url: str, schema: Mapping[str, Any], partition_by: str,
                       tables: Mapping[str, str] | None = None) -> Iterator[Job]:
    """One job per value of ``partition_by``; relations without that column are shared."""
    from ..io.database import DatabaseFacts, RawTable, read_tables

    source = DatabaseFacts(url, tuple(sorted((tables or {}).items())))
    raw = read_tables(source, schema)
    shared: dict[str, RawTable] = {}
    split: dict[str, dict[Any, list[int]]] = {}
    first: dict[str, tuple[Any, str]] = {}  # a job id as text -> the value that gave it, and where
    for rel in sorted(raw):
        k = raw[rel].column_index(partition_by)
        if k is None:
            shared[rel] = raw[rel]
            continue
        groups: dict[Any, list[int]] = {}
        for i, row in enumerate(raw[rel].rows):
            job_id = _partition_id(row[k])
            where = f"{source}:{raw[rel].label}[{raw[rel].keys[i]}]"
            seen = first.setdefault(id_text(job_id), (row[k], where))
            if not _same_value(seen[0], row[k]):  # ids compare as text, as in a jobs file: 1 and '1' are one id
                raise _error(f"partition value {_show(row[k])} of column {partition_by!r} gives the job id "
                             f"{dumps_json(job_id)}, as the value {_show(seen[0])} at {seen[1]} does", where,
                             notes=("make the column's values one type (or use --table REL=SQL with a CAST)",))
            groups.setdefault(job_id, []).append(i)
        split[rel] = groups
    if not split:
        raise _error(f"no input relation has a column {partition_by!r} to partition by", str(source),
                     notes=("relations read: " + (", ".join(sorted(raw)) or "none"),))
    ids = sorted({v for groups in split.values() for v in groups}, key=job_key)
    for job_id in ids:
        part = dict(shared)
        for rel, groups in split.items():
            part[rel] = raw[rel].subset(groups.get(job_id, []))
        yield Job(job_id, tables=part, source=str(source))


def _same_value(a: Any, b: Any) -> bool:
    """Whether two partition values are one value (of one type: ``1`` is not ``'1'``, NULL not ``'null'``)."""
    return type(a) is type(b) and repr(a) == repr(b)  # repr: a NaN is one value too


def _show(value: Any) -> str:
    return "NULL" if value is None else repr(value) if isinstance(value, str) else str(value)


def _partition_id(value: Any) -> str | int:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return value
    if value is None:
        return "null"
    return value if isinstance(value, str) else str(value)


def iter_jobs(source: str, schema: Mapping[str, Any] | None = None, partition_by: str | None = None,
              tables: Mapping[str, str] | None = None) -> Iterator[Job]:
    """Jobs from a JSON Lines file, a directory, or a database URL (with ``partition_by``)."""
    from ..io.database import is_database_url

    if is_database_url(source):
        if not partition_by:
            raise _error("a database of jobs needs --partition-by COLUMN", source.split("://")[0] + "://...")
        assert schema is not None
        return jobs_from_database(source, schema, partition_by, tables)
    if partition_by:
        raise _error("--partition-by applies to a database of jobs (sqlite:///... or postgresql://...)", source)
    if os.path.isdir(source):
        return jobs_from_directory(source)
    if not os.path.exists(source):
        raise _error(f"jobs source not found: {source}", source)
    return jobs_from_jsonl(source)
