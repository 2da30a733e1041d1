"""Input facts from PostgreSQL: ``postgresql://user@host:5432/dbname`` (libpq URL).

The password comes from the URL or from libpq's environment (``PGPASSWORD``,
``PGPASSFILE``, ``PGUSER``, ``PGHOST``, ...); it is never printed. Every
relation is read in one read-only REPEATABLE READ transaction (one snapshot);
tables are looked up on the connection's ``search_path`` (set it with
``?options=-csearch_path%3Dmyschema``). Rows are keyed by the primary key; rows
of a table without one, of a view, or of a ``--table`` query by their row number
in a deterministic order (ORDER BY every column).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..diagnostics import ConvergeError
from .database import DatabaseFacts, RawTable, db_diagnostic, format_key, redact

__all__ = ["read_postgres", "connect"]


def _scrub(message: str, url: str) -> str:
    """An error text without the URL's password, should a driver ever echo it."""
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    message = message.replace(url, redact(url))
    if password:
        message = message.replace(password, "***").replace(unquote(password), "***")
    return message.strip().splitlines()[0] if message.strip() else "unknown error"


def connect(url: str, label: str, read_only: bool = True) -> Any:
    """A psycopg connection (read-only unless asked), or ``ConvergeError`` (E520)."""
    try:
        import psycopg
    except ImportError:
        raise ConvergeError([db_diagnostic("E520", f"cannot read {label}: the psycopg package is not installed",
                                      label, ("pip install 'converge-rules[batch]'",))])
    conninfo = "postgresql" + url[url.index("://"):] if url.lower().startswith("postgres://") else url
    try:
        conn = psycopg.connect(conninfo, connect_timeout=10)
    except Exception as err:  # psycopg.Error, or a malformed URL
        raise ConvergeError([db_diagnostic("E520", f"cannot connect to {label}: {_scrub(str(err), url)}", label)])
    if read_only:
        conn.read_only = True
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    return conn


def read_postgres(source: DatabaseFacts, relations: Sequence[str], queries: Mapping[str, str]) -> dict[str, RawTable]:
    """Raw rows of each relation that has a query or a visible table (view) of its name."""
    label = str(source)
    conn = connect(source.url, label)  # E520 when psycopg is not installed: import it only after
    import psycopg
    from psycopg import sql

    out: dict[str, RawTable] = {}
    current = label
    try:
        with conn.transaction():
            cur = conn.cursor()
            cur.execute("SELECT c.oid, c.relname, c.relkind FROM pg_class c "
                        "WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') AND pg_table_is_visible(c.oid) ORDER BY c.relname")
            objects: dict[str, tuple[int, str, str]] = {}
            for oid, name, kind in cur.fetchall():
                objects.setdefault(name, (oid, name, kind))
                objects.setdefault(name.lower(), (oid, name, kind))
            for rel in relations:
                if rel in queries:
                    current = f"{label} --table {rel}"
                    cur.execute(queries[rel], prepare=True)  # a prepared statement holds exactly one command
                    columns = tuple(d.name for d in cur.description or ())
                    rows = [tuple(r) for r in cur.fetchall()]
                    out[rel] = RawTable(rel, f"query({rel})", columns, rows, [f"row {i}" for i in range(1, len(rows) + 1)])
                    continue
                found = objects.get(rel) or objects.get(rel.lower())
                if found is None:
                    continue
                oid, name, kind = found
                current = f"{label}:{name}"
                cur.execute("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s AND i.indisprimary "
                            "ORDER BY array_position(i.indkey::int2[], a.attnum)", (oid,))
                pk = [r[0] for r in cur.fetchall()]
                if pk:
                    order = sql.SQL(", ").join(map(sql.Identifier, pk))
                    cur.execute(sql.SQL("SELECT * FROM {} ORDER BY {}").format(sql.Identifier(name), order))
                    columns = tuple(d.name for d in cur.description)
                    at = [columns.index(c) for c in pk]
                    rows = [tuple(r) for r in cur.fetchall()]
                    keys = [format_key(pk, [r[i] for i in at]) for r in rows]
                else:
                    cur.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(sql.Identifier(name)))
                    n = len(cur.description)
                    order = sql.SQL(", ").join(sql.Literal(i) for i in range(1, n + 1)) if n else sql.SQL("1")
                    cur.execute(sql.SQL("SELECT * FROM {} ORDER BY {}").format(sql.Identifier(name), order))
                    columns = tuple(d.name for d in cur.description)
                    rows = [tuple(r) for r in cur.fetchall()]
                    keys = [f"row {i}" for i in range(1, len(rows) + 1)]
                out[rel] = RawTable(rel, name, columns, rows, keys)
    except psycopg.Error as err:
        code = "E521" if getattr(err, "sqlstate", None) == "25006" else "E520"  # read_only_sql_transaction
        raise ConvergeError([db_diagnostic(code, f"cannot read facts: {_scrub(str(err), source.url)}", current)])
    finally:
        conn.close()
    return out
