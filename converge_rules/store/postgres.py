"""The decision log in PostgreSQL (psycopg 3, a psycopg_pool connection pool).

``put`` returns after COMMIT, so an acknowledged decision is durable on the
server. Several service processes may share one database: migrations run
under an advisory lock, ids are unique, and reads need no coordination.
``?schema=NAME`` in the URL keeps the tables in their own schema (created
when missing); the default is ``public``.
"""

from __future__ import annotations

from typing import Any

from . import redact
from .base import (SCHEMA_VERSION, KeyTaken, SqlDecisionStore, StoreError, check_readable, check_version,
                   pending_migrations)

MIGRATIONS: list[list[str]] = [
    [  # 1: the log
        "CREATE TABLE {s}.decisions (id TEXT PRIMARY KEY, created_at DOUBLE PRECISION NOT NULL,"
        " ruleset_digest TEXT NOT NULL, tier TEXT NOT NULL, digest TEXT NOT NULL, response TEXT NOT NULL,"
        " record TEXT NOT NULL)",
        "CREATE INDEX decisions_created ON {s}.decisions (created_at, id)",
    ],
    [  # 2: idempotency keys (a retried request answers the decision it made; NULLs never clash)
        "ALTER TABLE {s}.decisions ADD COLUMN idempotency_key TEXT",
        "ALTER TABLE {s}.decisions ADD COLUMN request_sha256 TEXT",
        "CREATE UNIQUE INDEX decisions_idempotency ON {s}.decisions (idempotency_key)",
    ],
]
assert len(MIGRATIONS) == SCHEMA_VERSION



def split_url(url: str) -> tuple[str, str]:
    """The connection URL without our ``schema`` parameter, and the schema name (``public`` by default)."""
    from ..io.postgres import split_url as split

    try:
        conninfo, schema = split(url)
    except ValueError as err:
        raise StoreError("E940", f"{err} in the store URL") from None
    return conninfo, schema or "public"


class PostgresStore(SqlDecisionStore):
    """A decision log in a PostgreSQL database."""

    TABLE = "{s}.decisions"
    PARAM = "%s"

    def __init__(self, url: str, pool: Any, schema: str):
        self.url = url
        self._pool = pool
        self._s = f'"{schema}"'
        self._schema = schema
        self._version = 0

    @classmethod
    def open(cls, url: str, max_size: int = 16, read_only: bool = False) -> "PostgresStore":
        """Connect and migrate; ``read_only``: every transaction is READ ONLY and nothing is created
        or migrated (a role that may only read can read the log), a missing or older log is E941."""
        try:
            import psycopg  # noqa: F401
            from psycopg_pool import ConnectionPool
        except ImportError:
            raise StoreError("E941", "PostgreSQL stores need psycopg 3: pip install 'converge-rules[serve]'") from None
        conninfo, schema = split_url(url)
        try:  # one direct connection first: a wrong password or host fails at once, with the server's words
            psycopg.connect(conninfo, connect_timeout=10).close()
        except Exception as err:
            raise StoreError("E941", f"cannot connect to the decision log {redact(url)}: "
                                     f"{str(err).strip() or type(err).__name__}") from None
        try:
            pool = ConnectionPool(conninfo, min_size=1, max_size=max_size, open=True, timeout=30.0,
                                  kwargs={"autocommit": False, "connect_timeout": 10},
                                  configure=_configure(read_only))
            pool.wait(timeout=15.0)
        except Exception as err:  # psycopg_pool.PoolTimeout
            raise StoreError("E941", f"cannot connect to the decision log {redact(url)}: {type(err).__name__}: "
                                     f"{str(err).strip() or 'timed out'}") from None
        store = cls(url, pool, schema)
        try:
            store._read_version() if read_only else store._migrate()
        except BaseException:
            pool.close()
            raise
        return store

    def _q(self, sql: str) -> str:
        return sql.replace("{s}", self._s)

    def _migrate(self) -> None:
        try:
            with self._pool.connection() as conn:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("converge-decisions:" + self._schema,))
                    conn.execute(self._q("CREATE SCHEMA IF NOT EXISTS {s}"))
                    conn.execute(self._q("CREATE TABLE IF NOT EXISTS {s}.converge_schema (version INTEGER NOT NULL)"))
                    row = conn.execute(self._q("SELECT max(version) FROM {s}.converge_schema")).fetchone()
                    found = int(row[0] or 0)
                    check_version(found, redact(self.url))
                    for version, statements in pending_migrations(found, MIGRATIONS):
                        for sql in statements:
                            conn.execute(self._q(sql))
                        conn.execute(self._q("INSERT INTO {s}.converge_schema (version) VALUES (%s)"), (version,))
                    self._version = max(found, len(MIGRATIONS))
        except StoreError:
            raise
        except Exception as err:
            raise StoreError("E941", f"cannot prepare the decision log {redact(self.url)}: {err}") from None

    def _read_version(self) -> None:
        try:
            with self._pool.connection() as conn:
                table = conn.execute("SELECT to_regclass(%s)", (f"{self._s}.converge_schema",)).fetchone()[0]
                found = int(conn.execute(self._q("SELECT max(version) FROM {s}.converge_schema")).fetchone()[0] or 0) \
                    if table is not None else 0
        except Exception as err:
            raise StoreError("E941", f"cannot read the decision log {redact(self.url)}: {err}") from None
        check_readable(found, redact(self.url))
        self._version = found

    def schema_version(self) -> int:
        return self._version

    def _run(self, sql: str, args: tuple = (), fetch: str = "", key: str | None = None) -> Any:
        import psycopg

        for attempt in (1, 2):
            broken = False
            try:
                with self._pool.connection() as conn:  # commits on success, rolls back on error
                    try:
                        cur = conn.execute(self._q(sql), args)
                        if fetch == "one":
                            return cur.fetchone()
                        if fetch == "all":
                            return cur.fetchall()
                        return cur.rowcount
                    except psycopg.OperationalError:
                        # the connection died, not the statement; nothing was committed (COMMIT comes
                        # at the end of the block), so running the statement again cannot store it twice
                        broken = conn.closed
                        raise
            except psycopg.errors.UniqueViolation as err:
                if key is not None and err.diag.constraint_name == "decisions_idempotency":
                    raise KeyTaken(key) from None
                raise StoreError("E943", "decision already stored") from None
            except StoreError:
                raise
            except Exception as err:
                if broken and attempt == 1:
                    # The server dropped the pooled connections (a restart, a failover, an idle reaper):
                    # drop every dead one now, not one failed decision (a 503) each, and try again.
                    self._pool.check()
                    continue
                raise StoreError("E941", f"decision log {redact(self.url)}: {type(err).__name__}: {err}") from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._pool.close()


LOCK_TIMEOUT = "30s"  # as SQLite's busy_timeout: how long a statement waits for another session's lock


def _configure(read_only: bool) -> Any:
    """Pool ``configure``: a connection waits at most ``LOCK_TIMEOUT`` for a lock, unless the URL
    (``options=-c lock_timeout=...``), the role or the database sets a limit of its own; without one,
    a table locked by another session (a migration, a ``LOCK TABLE``, a long transaction) made every
    statement wait without end: a decision request hung, holding its --concurrency slot, instead of
    being 503 E941 (not acknowledged) as on SQLite. ``read_only``: every transaction is READ ONLY."""

    def configure(conn: Any) -> None:
        if conn.execute("SHOW lock_timeout").fetchone()[0] == "0":
            conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
        conn.commit()
        if read_only:
            conn.read_only = True

    return configure
