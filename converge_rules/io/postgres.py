"""Input facts from PostgreSQL: ``postgresql://user@host:5432/dbname`` (libpq URL).

The password comes from the URL or from libpq's environment (``PGPASSWORD``,
``PGPASSFILE``, ``PGUSER``, ``PGHOST``, ...); it is never printed. Every
relation is read in one read-only REPEATABLE READ transaction (one snapshot);
tables are looked up on the connection's ``search_path``: ``?schema=NAME``
in the URL reads the tables of that schema only (as the decision log's
``--store`` URL keeps its tables there), or set it yourself with
``?options=-csearch_path%3Dmyschema``. Rows are keyed by the primary key; rows
of a table without one, of a view, or of a ``--table`` query by their row number
in a deterministic order (ORDER BY every column).
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from ..diagnostics import ConvergeError
from .database import DatabaseFacts, RawTable, db_diagnostic, format_key, redact

__all__ = ["read_postgres", "connect", "split_url"]

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def split_url(url: str) -> tuple[str, str | None]:
    """The connection URL without converge's own ``schema`` parameter (libpq knows no such
    parameter), and that schema's name (None when not given); ValueError for a name that is
    not letters, digits and _ (it is written into SQL and into libpq's options)."""
    parts = urlsplit(url)
    schema = None
    rest = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "schema":
            schema = value
        else:
            rest.append((key, value))
    if schema is not None and not _SCHEMA_NAME.match(schema):
        raise ValueError(f"bad schema name {schema!r} (letters, digits and _ only)")
    # quote: a space is %20, which libpq decodes (it reads a '+' as a '+', so quote_plus would break
    # e.g. options=-c%20lock_timeout%3D1000)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(rest, quote_via=quote), parts.fragment)), schema


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
        conninfo, schema = split_url(conninfo)
    except ValueError as err:
        raise ConvergeError([db_diagnostic("E520", f"cannot connect to {label}: {err}", label)]) from None
    try:
        extra: dict[str, Any] = {}
        if schema is not None:  # only that schema's tables are seen (and made), whatever the role's search_path
            from psycopg.conninfo import conninfo_to_dict

            given = conninfo_to_dict(conninfo).get("options") or ""
            extra["options"] = f'{given} -c search_path="{schema}"'.strip()
        conn = psycopg.connect(conninfo, connect_timeout=10, **extra)
    except Exception as err:  # psycopg.Error, or a malformed URL
        raise ConvergeError([db_diagnostic("E520", f"cannot connect to {label}: {_scrub(str(err), url)}", label)])
    if schema is not None:
        try:
            if not read_only:  # a batch writes its results into the schema, made when missing (as --store does)
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                conn.commit()
            elif conn.execute("SELECT to_regnamespace(%s) IS NULL", (f'"{schema}"',)).fetchone()[0]:
                conn.close()
                raise ConvergeError([db_diagnostic("E520", f"cannot read {label}: there is no schema {schema!r}", label)])
            conn.rollback()
        except psycopg.Error as err:
            conn.close()
            raise ConvergeError([db_diagnostic("E520", f"cannot use schema {schema!r} of {label}: "
                                                       f"{_scrub(str(err), url)}", label)]) from None
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
