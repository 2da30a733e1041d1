"""The decision log: every decision the service makes, stored durably.

One interface (``DecisionStore``), two back ends: SQLite (an embedded file, the
default) and PostgreSQL (psycopg 3 with a connection pool). ``open_store(url)``
picks one by the URL's scheme::

    sqlite:///decisions.db        (relative path)    sqlite:////var/lib/x.db (absolute)
    postgresql://user:pw@host:5432/db[?schema=NAME]
"""

from __future__ import annotations

import os

from .base import SCHEMA_VERSION, DecisionStore, DecisionSummary, StoredDecision, StoreError

DEFAULT_STORE_FILE = "converge-decisions.db"


def default_store_url() -> str:
    """``sqlite:///`` + ``$CONVERGE_DATA_DIR`` or ``$XDG_DATA_HOME/converge`` (``~/.local/share/converge``)
    + ``converge-decisions.db``: a per-user file, never the working directory."""
    base = os.environ.get("CONVERGE_DATA_DIR") or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share"), "converge")
    return "sqlite:///" + os.path.join(base, DEFAULT_STORE_FILE)


def open_store(url: str | None = None, *, read_only: bool = False) -> DecisionStore:
    """Open (and migrate) the store named by ``url``; raises StoreError (code E940/E941/E942).

    ``read_only=True``: open it for reading only (``converge decisions list/show/why/why-not``):
    nothing is created, migrated or written, so a log on a read-only mount, or one this user may
    only read, can be read; a log that is missing or at an older schema version is refused (E941)."""
    url = url or default_store_url()
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        from .sqlite import SQLiteStore

        return SQLiteStore.open(url, read_only=read_only)
    if scheme in ("postgresql", "postgres"):
        from .postgres import PostgresStore

        return PostgresStore.open(url, read_only=read_only)
    raise StoreError("E940", f"unsupported store URL {redact(url)!r}: use sqlite:///PATH or postgresql://...")


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    cred, _, host = rest.rpartition("@")
    user = cred.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in cred else url


__all__ = ["DEFAULT_STORE_FILE", "DecisionStore", "DecisionSummary", "SCHEMA_VERSION", "StoreError",
           "StoredDecision", "default_store_url", "open_store", "redact"]
