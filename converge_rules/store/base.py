"""The decision-log interface shared by every store back end.

A store keeps one row per decision: its id, when it was made, the rule set
digest it ran under, its tier and digest, the exact JSON answer the service
gave (``response``) and the full decision record (``record``). ``put`` returns
only once the row is durable (committed and synced), so a service may
acknowledge a decision only after ``put`` returned. Schema changes are
numbered migrations applied in order at open; a store written by a newer
version is refused (E942) rather than misread. A store opened read-only
(``open_store(url, read_only=True)``) is never migrated: one at an older
version is refused (E941).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Sequence

SCHEMA_VERSION = 2
# Readers (``read_only``) read a log at this version or later without migrating it: version 2 only
# added columns, which a reader of a version-1 log takes as empty.
OLDEST_READABLE_VERSION = 1


class StoreError(Exception):
    """A store problem with a stable code (docs/diagnostics.md): E940 bad URL, E941 unavailable,
    E942 schema newer than this version, E943 duplicate decision id, E948 a stored decision is damaged,
    E955 the idempotency key is taken (``KeyTaken``)."""

    def __init__(self, code: str, message: str):
        self.code = code
        self.message = message
        super().__init__(f"error[{code}]: {message}")

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


class KeyTaken(StoreError):
    """``put`` refused a decision because another one is stored under its idempotency key."""

    def __init__(self, key: str):
        super().__init__("E955", f"a decision is already stored under the idempotency key {key!r}")
        self.key = key


@dataclass(frozen=True)
class StoredDecision:
    """One decision as stored: ``response`` and ``record`` are JSON texts.

    ``idempotency_key``: the client's key for retries (``Idempotency-Key``), unique in the log;
    ``request_sha256``: the hash of the request it answered (``request_hash``), so a retry is told
    from another request that reuses the key. Both None for a decision made without a key."""

    id: str
    created_at: float          # seconds since the epoch (UTC)
    ruleset_digest: str
    tier: str
    digest: str
    response: str
    record: str
    idempotency_key: str | None = None
    request_sha256: str | None = None


@dataclass(frozen=True)
class DecisionSummary:
    """A row of ``list``: everything but the bodies."""

    id: str
    created_at: float
    ruleset_digest: str
    tier: str
    digest: str

    def to_json(self) -> dict[str, Any]:
        return {"decision_id": self.id, "created_at": iso_time(self.created_at), "tier": self.tier,
                "digest": self.digest, "ruleset": {"digest": self.ruleset_digest}}


def iso_time(seconds: float) -> str:
    """RFC 3339 UTC with microseconds, e.g. ``2026-12-03T21:00:00.123456Z``."""
    whole = int(seconds)
    micros = int(round((seconds - whole) * 1_000_000))
    if micros == 1_000_000:
        whole, micros = whole + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{micros:06d}Z"


# Migrations: version -> statements. Version 1 creates the log. Both back ends run
# the same logical schema; the SQL differs only in types (see each module).
class DecisionStore(ABC):
    """The interface of a decision log (in the spirit of OPA's storage interface)."""

    url: str

    @abstractmethod
    def schema_version(self) -> int:
        """The schema version the store is at (after migrations)."""

    @abstractmethod
    def put(self, decision: StoredDecision) -> None:
        """Store one decision durably; StoreError E943 when the id exists, E941 when the store fails."""

    @abstractmethod
    def get(self, decision_id: str) -> StoredDecision | None:
        """The decision with this id, or None."""

    @abstractmethod
    def get_by_key(self, idempotency_key: str) -> StoredDecision | None:
        """The decision stored under this idempotency key, or None."""

    @abstractmethod
    def list(self, limit: int = 50, before: float | None = None, tier: str | None = None) -> list[DecisionSummary]:
        """The newest decisions first (ties by id), at most ``limit`` (an int >= 1: a larger one than the log
        holds lists it all), older than ``before`` when given (not NaN); ValueError otherwise."""

    @abstractmethod
    def count(self) -> int:
        """How many decisions are stored."""

    @abstractmethod
    def prune(self, older_than: float) -> int:
        """Delete decisions made before ``older_than`` (epoch seconds); returns how many."""

    @abstractmethod
    def ping(self) -> bool:
        """True when the store answers (used by /ready)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections and files."""

    def prune_days(self, days: float, now: float | None = None) -> int:
        """Retention: delete decisions older than ``days`` days (a number > 0; ValueError otherwise)."""
        if not days > 0:  # NaN too: PostgreSQL sorts NaN above every number, so it would delete all
            raise ValueError(f"days to keep must be a number > 0, not {days!r}")
        return self.prune((time.time() if now is None else now) - days * 86400.0)

    def __enter__(self) -> "DecisionStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def checked(decision: StoredDecision) -> StoredDecision:
    """The decision read back, once its answer and record are each a JSON object; StoreError E948
    otherwise (a row edited by hand, a disk or a copy that damaged it): every reader (the service,
    ``converge decisions``) then says which decision is damaged instead of failing on it later."""
    from ..values import loads_json  # ints of any size, as the service writes them

    for part, text in (("answer", decision.response), ("record", decision.record)):
        problem = ""
        if not isinstance(text, str):
            problem = f"is not text but {type(text).__name__}"
        else:
            try:
                value = loads_json(text)
            except RecursionError:
                problem = "nests too deeply to read"
            except ValueError as err:
                problem = f"is not JSON ({err})"
            else:
                if not isinstance(value, dict):
                    problem = "is not a JSON object"
        if problem:
            raise StoreError("E948", f"the stored decision {decision.id!r} is damaged: its {part} {problem}; "
                                     "it was changed outside converge, or the disk damaged it")
    return decision


def check_version(found: int, url: str) -> None:
    if found > SCHEMA_VERSION:
        raise StoreError("E942", f"the decision log at {url} has schema version {found}, newer than this "
                                 f"converge supports ({SCHEMA_VERSION}); upgrade converge")


def check_readable(found: int, url: str) -> None:
    """A store opened read-only cannot be migrated: refuse one older than this version reads (E941)."""
    check_version(found, url)
    if found == 0:
        raise StoreError("E941", f"no decision log at {url} (start `converge serve` with this --store)")
    if found < OLDEST_READABLE_VERSION:
        raise StoreError("E941", f"the decision log at {url} has schema version {found}, older than this converge "
                                 f"reads ({OLDEST_READABLE_VERSION}), and reading it does not migrate it: run "
                                 "`converge serve` (or `converge decisions prune`) on it once, as a user who may write it")


def pending_migrations(found: int, migrations: Sequence[Sequence[str]]) -> list[tuple[int, Sequence[str]]]:
    """The migrations after version ``found``, numbered from 1."""
    return [(i, stmts) for i, stmts in enumerate(migrations, 1) if i > found]


_MAX_LIMIT = 2 ** 63 - 1  # the largest LIMIT both SQL back ends take (a 64-bit integer)


class SqlDecisionStore(DecisionStore):
    """The decision-log queries shared by the SQL back ends; a back end gives its table name
    (``TABLE``), its parameter marker (``PARAM``) and ``_run(sql, args, fetch, key)`` (``key``: the
    idempotency key of an INSERT, to raise ``KeyTaken`` rather than E943 when it is the key that is taken)."""

    TABLE = "decisions"
    PARAM = "?"
    _version = SCHEMA_VERSION

    def _run(self, sql: str, args: tuple = (), fetch: str = "", key: str | None = None) -> Any:
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return sql.replace("{t}", self.TABLE).replace("{p}", self.PARAM)

    def _columns(self) -> str:
        """The columns of a StoredDecision; a version-1 log (read-only) has no idempotency columns."""
        keys = "idempotency_key, request_sha256" if self._version >= 2 else "NULL, NULL"
        return f"id, created_at, ruleset_digest, tier, digest, response, record, {keys}"

    def put(self, decision: StoredDecision) -> None:
        d = decision  # one statement: committed (and synced) on return
        self._run(self._sql("INSERT INTO {t} (id, created_at, ruleset_digest, tier, digest, response, record,"
                            " idempotency_key, request_sha256) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})"),
                  (d.id, d.created_at, d.ruleset_digest, d.tier, d.digest, d.response, d.record,
                   d.idempotency_key, d.request_sha256), key=d.idempotency_key)

    def get(self, decision_id: str) -> StoredDecision | None:
        if "\x00" in decision_id:  # no decision has one (ids are hex), and PostgreSQL text cannot hold it
            return None
        row = self._run(self._sql(f"SELECT {self._columns()} FROM {{t}} WHERE id = {{p}}"), (decision_id,), "one")
        return checked(StoredDecision(*row)) if row else None

    def get_by_key(self, idempotency_key: str) -> StoredDecision | None:
        if "\x00" in idempotency_key or self._version < 2:  # keys are printable; a version-1 log has none
            return None
        row = self._run(self._sql(f"SELECT {self._columns()} FROM {{t}} WHERE idempotency_key = {{p}}"),
                        (idempotency_key,), "one")
        return checked(StoredDecision(*row)) if row else None

    def list(self, limit: int = 50, before: float | None = None, tier: str | None = None) -> list[DecisionSummary]:
        if isinstance(limit, bool) or int(limit) < 1:  # SQLite reads LIMIT -1 as "no limit", PostgreSQL refuses it
            raise ValueError(f"limit must be an integer >= 1, not {limit!r}")
        if before is not None and before != before:  # NaN: no row on SQLite, every row on PostgreSQL
            raise ValueError("before must be a time (epoch seconds), not NaN")
        limit = min(int(limit), _MAX_LIMIT)  # a limit beyond the log is the whole log (no SQL int overflow)
        where, args = [], []
        if before is not None:
            where.append("created_at < {p}")
            args.append(before)
        if tier is not None:
            where.append("tier = {p}")
            args.append(tier)
        sql = ("SELECT id, created_at, ruleset_digest, tier, digest FROM {t}"
               + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY created_at DESC, id DESC LIMIT {p}")
        return [DecisionSummary(*row) for row in self._run(self._sql(sql), (*args, int(limit)), "all")]

    def count(self) -> int:
        return int(self._run(self._sql("SELECT count(*) FROM {t}"), (), "one")[0])

    def prune(self, older_than: float) -> int:
        if older_than != older_than:  # NaN: "older than NaN" is every row on PostgreSQL, none on SQLite
            raise ValueError("prune needs a time (epoch seconds), not NaN")
        return int(self._run(self._sql("DELETE FROM {t} WHERE created_at < {p}"), (older_than,)))

    def ping(self) -> bool:
        try:
            self._run("SELECT 1", (), "one")
            return True
        except StoreError:
            return False
