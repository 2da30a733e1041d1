"""Input facts from an SQLite database file: ``sqlite:///relative/path.db`` or
``sqlite:////absolute/path.db`` (three slashes, then the path, as SQLAlchemy writes it).

The file is opened read-only (``mode=ro``, ``PRAGMA query_only``) and every
relation is read inside one transaction, so the facts are one consistent
snapshot. Rows are keyed by the table's primary key, else by its rowid; rows
of a ``--table`` query or a view by their row number.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Mapping, Sequence
from urllib.parse import quote, unquote, urlsplit

from ..diagnostics import ConvergeError
from .database import DatabaseFacts, RawTable, db_diagnostic, format_key

__all__ = ["read_sqlite", "sqlite_path", "connect_readonly"]


def sqlite_path(url: str) -> str:
    """The file path of an ``sqlite:///`` URL (one slash after ``://`` is dropped)."""
    parts = urlsplit(url)
    if parts.netloc:
        raise ValueError(f"an sqlite URL has no host: write sqlite:///{parts.netloc}{parts.path}")
    path = unquote(parts.path)
    if path.startswith("/"):
        path = path[1:]
    if not path:
        raise ValueError("an sqlite URL needs a file path: sqlite:///path/to/file.db")
    return path


def connect_readonly(url: str, label: str) -> sqlite3.Connection:
    """A read-only connection, or ``ConvergeError`` (E520) naming the file."""
    try:
        path = sqlite_path(url)
    except ValueError as err:
        raise ConvergeError([db_diagnostic("E520", f"cannot open {label}: {err}", label)])
    if not os.path.isfile(path):
        raise ConvergeError([db_diagnostic("E520", f"cannot open {label}: no such database file {path}", label)])
    try:
        conn = sqlite3.connect(f"file:{quote(os.path.abspath(path))}?mode=ro", uri=True, isolation_level=None)
        conn.execute("PRAGMA query_only = ON")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as err:
        raise ConvergeError([db_diagnostic("E520", f"cannot open {label}: {err}", label)])
    return conn


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def read_sqlite(source: DatabaseFacts, relations: Sequence[str], queries: Mapping[str, str]) -> dict[str, RawTable]:
    """Raw rows of each relation that has a query or a table (view) of its name."""
    label = str(source)
    conn = connect_readonly(source.url, label)
    out: dict[str, RawTable] = {}
    current = label
    try:
        conn.execute("BEGIN")
        objects = {name.lower(): (name, kind) for name, kind in
                   conn.execute("SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view')")}
        for rel in relations:
            if rel in queries:
                current = f"{label} --table {rel}"
                cur = conn.execute(queries[rel])
                columns = tuple(d[0] for d in cur.description or ())
                rows = [tuple(r) for r in cur.fetchall()]
                out[rel] = RawTable(rel, f"query({rel})", columns, rows, [f"row {i}" for i in range(1, len(rows) + 1)])
                continue
            found = objects.get(rel.lower())
            if found is None:
                continue
            name, kind = found
            current = f"{label}:{name}"
            pk: list[str] = []
            if kind == "table":
                info = conn.execute(f"PRAGMA table_info({_quote(name)})").fetchall()
                pk = [row[1] for row in sorted((r for r in info if r[5]), key=lambda r: r[5])]
            if pk:
                cur = conn.execute(f"SELECT * FROM {_quote(name)} ORDER BY {', '.join(map(_quote, pk))}")
                columns = tuple(d[0] for d in cur.description)
                at = [columns.index(c) for c in pk]
                rows = [tuple(r) for r in cur.fetchall()]
                keys = [format_key(pk, [r[i] for i in at]) for r in rows]
            elif kind == "table":
                try:
                    cur = conn.execute(f"SELECT rowid AS \"__converge_rowid\", * FROM {_quote(name)} ORDER BY rowid")
                    columns = tuple(d[0] for d in cur.description)[1:]
                    fetched = cur.fetchall()
                    rows = [tuple(r[1:]) for r in fetched]
                    keys = [f"rowid={r[0]}" for r in fetched]
                except sqlite3.OperationalError:  # WITHOUT ROWID always has a primary key; be safe anyway
                    cur = conn.execute(f"SELECT * FROM {_quote(name)}")
                    columns = tuple(d[0] for d in cur.description)
                    rows = [tuple(r) for r in cur.fetchall()]
                    keys = [f"row {i}" for i in range(1, len(rows) + 1)]
            else:
                cur = conn.execute(f"SELECT * FROM {_quote(name)}")
                columns = tuple(d[0] for d in cur.description)
                rows = [tuple(r) for r in cur.fetchall()]
                keys = [f"row {i}" for i in range(1, len(rows) + 1)]
            out[rel] = RawTable(rel, name, columns, rows, keys)
    except sqlite3.Error as err:
        code = "E521" if "readonly" in str(err).lower() or "query_only" in str(err).lower() else "E520"
        raise ConvergeError([db_diagnostic(code, f"cannot read facts: {err}", current)])
    finally:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        conn.close()
    return out
