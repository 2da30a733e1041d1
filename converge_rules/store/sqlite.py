"""The decision log in SQLite: one embedded file, WAL journal, ``synchronous=FULL``.

``put`` commits before it returns, and with ``synchronous=FULL`` a commit is on
disk: a decision acknowledged by the service survives a kill -9 or a power
cut. One connection per store object, serialised by a lock (SQLite writes are
serialised anyway); several processes may share the file (``busy_timeout``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import urllib.parse
from typing import Any

from .base import (SCHEMA_VERSION, KeyTaken, SqlDecisionStore, StoreError, check_readable, check_version,
                   pending_migrations)

MIGRATIONS: list[list[str]] = [
    [  # 1: the log
        "CREATE TABLE decisions (id TEXT PRIMARY KEY, created_at REAL NOT NULL, ruleset_digest TEXT NOT NULL,"
        " tier TEXT NOT NULL, digest TEXT NOT NULL, response TEXT NOT NULL, record TEXT NOT NULL)",
        "CREATE INDEX decisions_created ON decisions (created_at, id)",
    ],
    [  # 2: idempotency keys (a retried request answers the decision it made; NULLs never clash)
        "ALTER TABLE decisions ADD COLUMN idempotency_key TEXT",
        "ALTER TABLE decisions ADD COLUMN request_sha256 TEXT",
        "CREATE UNIQUE INDEX decisions_idempotency ON decisions (idempotency_key)",
    ],
]
assert len(MIGRATIONS) == SCHEMA_VERSION


def path_of(url: str) -> str:
    """``sqlite:///rel/path.db`` -> ``rel/path.db``; ``sqlite:////abs.db`` -> ``/abs.db``."""
    if not url.lower().startswith("sqlite:///"):
        raise StoreError("E940", f"bad SQLite store URL {url!r}: write sqlite:///relative.db or sqlite:////absolute.db")
    path = url[len("sqlite:///"):].split("?", 1)[0]
    if not path:
        raise StoreError("E940", f"bad SQLite store URL {url!r}: no file name")
    return path


class SQLiteStore(SqlDecisionStore):
    """A decision log in one SQLite file."""

    TABLE = "decisions"
    PARAM = "?"

    def __init__(self, url: str, conn: sqlite3.Connection, path: str | None = None):
        self.url = url
        self._conn = conn
        self._lock = threading.Lock()
        self._version = 0
        self._path = path
        self._file = _identity(path) if path else None  # the file opened: (device, inode)
        self._wal: tuple[int, int] | None = None          # its -wal file, for a store that writes

    @classmethod
    def open(cls, url: str, read_only: bool = False) -> "SQLiteStore":
        path = path_of(url)
        if read_only:
            return cls._open_read_only(url, path)
        parent = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(parent, mode=0o700, exist_ok=True)
            conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 30000")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            conn.execute("PRAGMA synchronous = FULL")
        except (OSError, sqlite3.Error) as err:
            raise StoreError("E941", f"cannot open the decision log {path}: {err}") from None
        if str(mode).lower() != "wal":
            conn.close()
            raise StoreError("E941", f"cannot put the decision log {path} in WAL mode (got {mode})")
        store = cls(url, conn, os.path.abspath(path))
        try:
            store._migrate()
        except BaseException:
            conn.close()
            raise
        # The -wal file holds the commits not yet copied into the main file; it lives (same inode)
        # while this connection is open, so it is checked like the main file (``_check_file``).
        store._wal = _identity(store._path + "-wal")  # type: ignore[operator]
        return store

    @classmethod
    def _open_read_only(cls, url: str, path: str) -> "SQLiteStore":
        """Open for reading only: no directory or file is created, no journal mode set, no migration
        run, nothing written. A ``-wal`` file exists while a process (the service) has the log open:
        then it is read with ``mode=ro``, through the shared ``-shm`` index, seeing every committed
        decision. Without one, every decision is in the main file and no process has the log open;
        ``mode=ro`` would create ``-wal`` and ``-shm`` files next to it (and leave them, owned by this
        user, in the way of the service) or, on a read-only mount or directory, fail: the file is read
        as ``immutable`` then."""
        if not os.path.isfile(path):
            raise StoreError("E941", f"no decision log at {path} (start `converge serve` with this --store)")
        target = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro"
        if not os.path.exists(path + "-wal"):
            target += "&immutable=1"
        try:
            conn, found = _read_version(target)
        except sqlite3.Error as err:
            raise StoreError("E941", f"cannot read the decision log {path}: {err}") from None
        try:
            check_readable(found, path)
        except StoreError:
            conn.close()
            raise
        store = cls(url, conn, os.path.abspath(path))
        store._version = found
        return store

    def _migrate(self) -> None:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.execute("CREATE TABLE IF NOT EXISTS converge_schema (version INTEGER NOT NULL)")
                row = self._conn.execute("SELECT max(version) FROM converge_schema").fetchone()
                found = int(row[0] or 0)
                check_version(found, self.url)
                for version, statements in pending_migrations(found, MIGRATIONS):
                    for sql in statements:
                        self._conn.execute(sql)
                    self._conn.execute("INSERT INTO converge_schema (version) VALUES (?)", (version,))
                self._conn.execute("COMMIT")
                self._version = max(found, len(MIGRATIONS))
            except StoreError:
                self._conn.execute("ROLLBACK")
                raise
            except sqlite3.Error as err:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise StoreError("E941", f"cannot prepare the decision log {self.url}: {err}") from None

    def schema_version(self) -> int:
        return self._version

    def _check_file(self) -> None:
        """An open file that was deleted (or moved away and another put in its place) still takes
        writes, into an inode no one can open again: a decision "stored" there would be lost at exit.
        So every operation first checks that the path still names the file that was opened, and
        (for a store that writes) that its ``-wal`` file is still the one SQLite writes into."""
        if self._file is not None and _identity(self._path) != self._file:  # type: ignore[arg-type]
            raise StoreError("E941", f"the decision log {self._path} was removed or replaced while open; "
                                     "restart the service to open it again")
        if self._wal is not None and _identity(self._path + "-wal") != self._wal:  # type: ignore[operator]
            raise StoreError("E941", f"the decision log's journal {self._path}-wal was removed or replaced while "
                                     "open (it holds the latest decisions); restart the service to open the log again")

    def _run(self, sql: str, args: tuple = (), fetch: str = "", key: str | None = None) -> Any:
        with self._lock:
            self._check_file()
            try:
                cur = self._conn.execute(sql, args)
                if fetch == "one":
                    return cur.fetchone()
                if fetch == "all":
                    return cur.fetchall()
                return cur.rowcount
            except sqlite3.IntegrityError as err:
                if key is not None and "idempotency_key" in str(err):
                    raise KeyTaken(key) from None
                raise StoreError("E943", f"decision already stored: {err}") from None
            except sqlite3.Error as err:
                raise StoreError("E941", f"decision log {self.url}: {err}") from None

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _read_version(target: str) -> tuple[sqlite3.Connection, int]:
    """A read-only connection to the SQLite URI ``target`` and the log's schema version (0: none)."""
    conn = sqlite3.connect(target, uri=True, timeout=30.0, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        has = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'converge_schema'").fetchone()
        found = int(conn.execute("SELECT max(version) FROM converge_schema").fetchone()[0] or 0) if has else 0
    except BaseException:
        conn.close()
        raise
    return conn, found


def _identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path``, None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino
