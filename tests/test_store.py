"""The decision log stores (SQLite always; PostgreSQL against CONVERGE_TEST_POSTGRES, required in CI)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from hypothesis import given, settings, strategies as st

import converge_rules as cr
from converge_rules.store import default_store_url, open_store, redact
from converge_rules.store.base import SCHEMA_VERSION, StoredDecision, StoreError, iso_time
from converge_rules.values import loads_json

from test_serve import LOANS, LOANS_FACTS, Server, cli, drop_schema, postgres_url


def row(i: int, at: float, tier: str = "converged") -> StoredDecision:
    return StoredDecision(f"id{i:04d}", at, "r" * 64, tier, f"{i:064x}", json.dumps({"n": i}), json.dumps({"i": i}))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'log.db'}"
    else:
        url = postgres_url("f2_store_" + uuid.uuid4().hex[:8])
        try:
            yield url
        finally:
            drop_schema(url)


def test_put_get_list_count_prune(store_url: str) -> None:
    with open_store(store_url) as store:
        assert store.schema_version() == SCHEMA_VERSION and store.count() == 0 and store.ping()
        for i in range(10):
            store.put(row(i, 1000.0 + i, "bounded" if i % 3 == 0 else "converged"))
        assert store.get("id0003") == row(3, 1003.0, "bounded")
        assert store.get("nope") is None
        assert [r.id for r in store.list(3)] == ["id0009", "id0008", "id0007"]
        assert [r.id for r in store.list(10, before=1003.0)] == ["id0002", "id0001", "id0000"]
        assert [r.id for r in store.list(10, tier="bounded")] == ["id0009", "id0006", "id0003", "id0000"]
        with pytest.raises(StoreError) as err:
            store.put(row(3, 5.0))
        assert err.value.code == "E943"
        assert store.prune(1005.0) == 5 and store.count() == 5
        assert store.prune_days(1, now=1010.0 + 86400) == 5 and store.count() == 0


def test_reopening_keeps_rows_and_does_not_migrate_twice(store_url: str) -> None:
    with open_store(store_url) as store:
        store.put(row(1, 1.0))
    with open_store(store_url) as store:
        assert store.count() == 1 and store.schema_version() == SCHEMA_VERSION


def test_a_newer_schema_is_refused(store_url: str) -> None:
    with open_store(store_url) as store:
        if store_url.startswith("sqlite"):
            store._conn.execute("INSERT INTO converge_schema (version) VALUES (99)")  # type: ignore[attr-defined]
        else:
            store._run("INSERT INTO {s}.converge_schema (version) VALUES (99)")  # type: ignore[attr-defined]
    with pytest.raises(StoreError) as err:
        open_store(store_url)
    assert err.value.code == "E942" and "99" in err.value.message


def test_concurrent_puts_from_threads(store_url: str) -> None:
    with open_store(store_url) as store:
        def work(base: int) -> None:
            for i in range(25):
                store.put(row(base + i, float(base + i)))

        threads = [threading.Thread(target=work, args=(k * 100,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert store.count() == 200


def test_sqlite_is_wal_with_full_sync(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x' / 'log.db'}"  # the directory is created
    with open_store(url) as store:
        conn = store._conn  # type: ignore[attr-defined]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    # another process's view: a plain sqlite3 connection reads the schema table
    assert sqlite3.connect(tmp_path / "x" / "log.db").execute("SELECT max(version) FROM converge_schema").fetchone()[0] == SCHEMA_VERSION


@pytest.mark.parametrize("url, code", [
    ("mysql://x/y", "E940"), ("sqlite://relative.db", "E940"), ("sqlite:///", "E940"),
    ("nothing", "E940"), ("postgresql://u:pw@127.0.0.1:1/db", "E941"),
])
def test_bad_store_urls(url: str, code: str) -> None:
    with pytest.raises(StoreError) as err:
        open_store(url)
    assert err.value.code == code
    assert "pw" not in err.value.message


def test_sqlite_unwritable_location_is_E941(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError) as err:
        open_store(f"sqlite:///{blocker}/sub/log.db")
    assert err.value.code == "E941"


def test_default_url_is_per_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CONVERGE_DATA_DIR", str(tmp_path))
    assert default_store_url() == f"sqlite:///{tmp_path}/converge-decisions.db"
    monkeypatch.delenv("CONVERGE_DATA_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_store_url() == f"sqlite:///{tmp_path}/xdg/converge/converge-decisions.db"


def test_redact_hides_passwords() -> None:
    assert redact("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact("postgresql://h/db") == "postgresql://h/db"


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
@settings(max_examples=200, deadline=None)
def test_iso_time_is_rfc3339_utc(seconds: float) -> None:
    text = iso_time(seconds)
    assert len(text) == 27 and text.endswith("Z") and text[10] == "T"


def test_session_stores_the_record_and_explains_from_it(store_url: str) -> None:
    from converge_rules.service import store_decision

    session = cr.Session([LOANS])
    decision = session.decide(LOANS_FACTS)
    with open_store(store_url) as store:
        stored = store_decision(store, decision)
        back = store.get(decision.id)
    assert back == stored
    record = cr.Record.from_json(back.record)
    assert record.digest == decision.result.digest and record.ruleset_digest == session.rules.digest
    assert "flag_high_risk" in record.why_text('decision("l1", "reject")')
    assert json.loads(back.response) == decision.response()


def _drop_connections(pg_url: str, application_name: str) -> int:
    """What a PostgreSQL restart, a failover or an idle-connection reaper does to a pool: the server
    ends every connection of ``application_name``; returns how many it ended."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                            (application_name,)).fetchall()
    return len(rows)


def test_postgres_pool_replaces_connections_the_server_dropped(pg_url: str, pg_schema: Any) -> None:
    """After the database dropped the pooled connections (a restart), the store used to hand each dead
    one out once more: a failed put (so a 503 from the service) per pooled connection, while the
    database was up again. A connection is checked when taken from the pool."""
    schema = pg_schema("g_store_drop")
    app = "converge_" + schema
    url = f"{pg_url}{'&' if '?' in pg_url else '?'}schema={schema}&application_name={app}"
    with open_store(url) as store:
        with ThreadPoolExecutor(8) as pool:  # several connections in the pool
            list(pool.map(lambda i: store.put(row(i, 1000.0 + i)), range(40)))
        assert _drop_connections(pg_url, app) >= 1
        for i in range(40, 60):
            store.put(row(i, 1000.0 + i))  # each one on a live connection
        assert store.count() == 60 and store.ping()


def test_service_answers_200_right_after_the_database_dropped_its_connections(pg_url: str, pg_schema: Any) -> None:
    schema = pg_schema("g_serve_drop")
    app = "converge_" + schema
    url = f"{pg_url}{'&' if '?' in pg_url else '?'}schema={schema}&application_name={app}"
    srv = Server([LOANS], url).start()
    try:
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda i: httpx.post(srv.url + "/v1/decisions", json={"facts": LOANS_FACTS},
                                                       timeout=60).status_code, range(24)))
        assert codes == [200] * 24
        assert _drop_connections(pg_url, app) >= 1
        after = [httpx.post(srv.url + "/v1/decisions", json={"facts": LOANS_FACTS}, timeout=60) for _ in range(20)]
        assert [r.status_code for r in after] == [200] * 20, [r.text for r in after if r.status_code != 200][:1]
        assert 'converge_errors_total{kind="store"}' not in httpx.get(srv.url + "/metrics").text  # none failed
    finally:
        srv.stop()


def test_an_id_no_decision_can_have_is_not_found_on_every_back_end(store_url: str) -> None:
    """PostgreSQL text cannot hold NUL: GET /v1/decisions/a%00b used to be a store failure (503 E941,
    counted as the log being down) there, and 404 on SQLite. No decision has such an id: None on both."""
    with open_store(store_url) as store:
        store.put(row(1, 1000.0))
        assert store.get("a\x00b") is None and store.get("id0001\x00") is None
        assert store.get("id0001") is not None and store.ping()


def test_sqlite_log_removed_or_replaced_while_open_acknowledges_nothing(tmp_path: Path) -> None:
    """An open SQLite file that is deleted (or moved away and replaced) goes on taking writes into an
    inode no one can open again: the service answered 200 "durable" for decisions lost at its exit,
    and /ready said ok. Every operation now checks the file is still the one opened."""
    path = tmp_path / "logs" / "d.db"
    with open_store(f"sqlite:///{path}") as store:
        store.put(row(1, 1000.0))
        for suffix in ("", "-wal", "-shm"):
            (tmp_path / "logs" / f"d.db{suffix}").unlink(missing_ok=True)
        with pytest.raises(StoreError) as err:
            store.put(row(2, 1001.0))
        assert err.value.code == "E941" and "removed or replaced" in err.value.message
        assert not store.ping()
    with open_store(f"sqlite:///{path}") as store:  # a new log at the same place: the old one is not resurrected
        store.put(row(3, 1002.0))
        (tmp_path / "logs" / "d.db").rename(tmp_path / "logs" / "moved.db")
        with open_store(f"sqlite:///{path}") as other:
            other.put(row(4, 1003.0))
        with pytest.raises(StoreError):
            store.put(row(5, 1004.0))  # the path is another file now
    assert [r.id for r in open_store(f"sqlite:///{path}").list()] == ["id0004"]


def test_sqlite_log_whose_wal_is_removed_while_open_acknowledges_nothing(tmp_path: Path) -> None:
    """The -wal file holds every commit not yet copied into the main file, and the service keeps it
    open: once it was deleted (a clean-up script, an operator), decisions went on being answered 200
    into an unlinked file, and a kill -9 then lost them all -- with the log's schema, so
    `converge decisions list` found no log at all. The WAL is checked like the main file now."""
    path = tmp_path / "d.db"
    url = f"sqlite:///{path}"
    with open_store(url) as store:
        store.put(row(1, 1000.0))
        assert (tmp_path / "d.db-wal").exists()
        (tmp_path / "d.db-wal").unlink()
        with pytest.raises(StoreError) as err:
            store.put(row(2, 1001.0))
        assert err.value.code == "E941" and "d.db-wal" in err.value.message and "removed or replaced" in err.value.message
        assert not store.ping()
        with pytest.raises(StoreError):
            store.get("id0001")
    with open_store(url) as store:  # a restart opens the log again (what the main file still holds)
        store.put(row(3, 1002.0))
        assert store.get("id0003") is not None


def test_service_answers_503_once_its_sqlite_wal_is_deleted(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    srv = Server([LOANS], f"sqlite:///{db}").start()
    try:
        assert httpx.post(srv.url + "/v1/decisions", json={"facts": LOANS_FACTS}, timeout=30).status_code == 200
        (tmp_path / "d.db-wal").unlink()
        r = httpx.post(srv.url + "/v1/decisions", json={"facts": LOANS_FACTS}, timeout=30)
        assert r.status_code == 503 and r.json()["error"]["code"] == "E941" and "not acknowledged" in r.text
        assert httpx.get(srv.url + "/ready", timeout=30).status_code == 503
    finally:
        srv.stop()


def test_service_answers_503_once_its_sqlite_log_is_deleted(tmp_path: Path) -> None:
    srv = Server([LOANS], f"sqlite:///{tmp_path / 'logs' / 'd.db'}").start()
    try:
        assert httpx.post(srv.url + "/v1/decisions", json={"facts": LOANS_FACTS}, timeout=30).status_code == 200
        import shutil

        shutil.rmtree(tmp_path / "logs")
        r = httpx.post(srv.url + "/v1/decisions", json={"facts": LOANS_FACTS}, timeout=30)
        assert r.status_code == 503 and r.json()["error"]["code"] == "E941" and "not acknowledged" in r.text
        assert httpx.get(srv.url + "/ready", timeout=30).status_code == 503
    finally:
        srv.stop()


def test_pruning_with_nan_days_deletes_nothing(store_url: str) -> None:
    """NaN compares false with everything on SQLite but sorts above every number on PostgreSQL, where
    `created_at < NaN` held for every row: `converge decisions prune --keep-days nan` (and
    `serve --keep-days nan`, at start and hourly) deleted the whole log there. Refused at every level."""
    with open_store(store_url) as store:
        store.put(row(1, 1000.0))
        for call in (lambda: store.prune(float("nan")), lambda: store.prune_days(float("nan"))):
            with pytest.raises(ValueError):
                call()
        assert store.count() == 1
    for args in (["decisions", "prune", "--keep-days", "nan", "--store", store_url],
                 ["serve", LOANS, "--keep-days", "nan", "--store", store_url, "--port", "1"],
                 ["serve", LOANS, "--timeout", "nan", "--store", store_url, "--port", "1"],
                 ["run", LOANS, "--timeout", "nan"]):
        out = cli(*args)
        assert out.returncode == 2 and "nan" in out.stderr.lower() and "Traceback" not in out.stderr, (args, out.stderr)
    with open_store(store_url) as store:
        assert store.count() == 1
        from converge_rules.service import ServiceConfig, create_app

        with pytest.raises(ValueError):  # at once, not in the hourly pruning task
            create_app(cr.Session([LOANS]), store, ServiceConfig(keep_days=float("nan")))


DAMAGED = [("bad-answer", "{not json", json.dumps({"format": "converge-record/1"}), "answer is not JSON"),
           ("bad-record", json.dumps({"n": 1}), "{not json either", "record is not JSON"),
           ("list-answer", "[1, 2]", json.dumps({"n": 1}), "answer is not a JSON object"),
           ("deep-answer", "[" * 100000 + "]" * 100000, json.dumps({"n": 1}), "answer nests too deeply"),
           ("not-a-record", json.dumps({"n": 1}), json.dumps({"format": "x"}), "E611")]


def test_a_damaged_stored_decision_is_E948_everywhere_not_an_internal_error(store_url: str) -> None:
    """A row whose answer is not JSON (edited by hand, a damaged disk or copy) made `converge decisions
    show ID` exit 70 "internal error"; GET /v1/decisions/ID and /record served the damaged bytes as
    application/json with 200; /why answered 400 "invalid fact" for a record that was never the client's.
    Every reader now says which decision is damaged: E948, exit 1, HTTP 500 (retrying cannot help)."""
    with open_store(store_url) as store:
        for decision_id, response, record, _ in DAMAGED:
            store.put(StoredDecision(decision_id, 1000.0, "r" * 64, "converged", "d" * 64, response, record))
        store.put(row(1, 1001.0))
        for decision_id, _, _, why in DAMAGED[:4]:
            with pytest.raises(StoreError) as err:
                store.get(decision_id)
            assert err.value.code == "E948" and decision_id in err.value.message and why in err.value.message
        assert store.get("id0001") is not None and len(store.list()) == 6  # the rest of the log reads
    # every command on the first kind of damage, one command on each of the others (they share one reader);
    # show prints the answer, or the stored record as is, so "not-a-record" is read by why and why-not
    first = DAMAGED[0][0]
    commands = [("why", first, "p(1)"), ("why-not", first, "p(1)"), ("show", first), ("show", first, "--record")]
    for k, (decision_id, _, _, _) in enumerate(DAMAGED[1:]):
        kind = ("why", "why-not", "show", "show")[k % 4] if decision_id != "not-a-record" else "why"
        commands.append((kind, decision_id, *(("p(1)",) if kind != "show" else ("--record",) if k % 4 == 3 else ())))
    reasons = {decision_id: why for decision_id, _, _, why in DAMAGED}
    for args in commands:
        decision_id, why = args[1], reasons[args[1]]
        out = cli("decisions", *args, "--store", store_url)
        assert out.returncode == 1, (args, out.stdout, out.stderr)
        assert "error[E948]" in out.stderr and why in out.stderr and decision_id in out.stderr, (args, out.stderr)
        assert "internal error" not in out.stderr and out.stdout == "", (args, out.stderr)
    srv = Server([LOANS], store_url).start()
    try:
        for decision_id, _, _, why in DAMAGED:
            paths = [f"/v1/decisions/{decision_id}/{p}" for p in ("why?fact=p(1)", "why-not?fact=p(1)", "report")]
            if decision_id != "not-a-record":
                paths += [f"/v1/decisions/{decision_id}", f"/v1/decisions/{decision_id}/record"]
            for path in paths:
                r = httpx.get(srv.url + path, timeout=30)
                assert r.status_code == 500 and r.json()["error"]["code"] == "E948", (path, r.status_code, r.text)
                assert why in r.json()["error"]["message"], (path, r.text)
        assert httpx.get(srv.url + "/v1/decisions/id0001", timeout=30).json() == {"n": 1}
        spec = httpx.get(srv.url + "/openapi.json", timeout=30).json()
        assert "500" in spec["paths"]["/v1/decisions/{id}"]["get"]["responses"]
        assert httpx.get(srv.url + "/ready", timeout=30).status_code == 200  # the log itself is up
    finally:
        srv.stop()


def test_decisions_show_prints_an_answer_with_an_int_of_any_size(tmp_path: Path) -> None:
    """The service answers ints of any size (as facts files allow); `converge decisions show ID` read the
    stored answer with Python's 4300-digit limit and exited 70 "internal error"."""
    from converge_rules.service import store_decision

    big = 10 ** 5000 - 1
    store = f"sqlite:///{tmp_path / 'd.db'}"
    made = cr.Session([LOANS]).decide({"applicant": [["a1", big]], "loan": [["l1", "a1", 6000]]})
    with open_store(store) as s:
        store_decision(s, made)
        assert s.get(made.id) is not None
    out = cli("decisions", "show", made.id, "--store", store)
    assert out.returncode == 0, out.stderr

    assert loads_json(out.stdout)["facts"]["applicant"] == [["a1", big]]


def _snapshot(path: Path) -> tuple[bytes, int, list[str]]:
    """The file's bytes, its mtime (ns) and the names in its directory: what a reader must not change."""
    return path.read_bytes(), path.stat().st_mtime_ns, sorted(p.name for p in path.parent.iterdir())


def test_readers_open_the_log_read_only_and_write_nothing(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening the log always migrated it (BEGIN IMMEDIATE, CREATE TABLE) and set WAL mode: a reader on a
    read-only mount, or without write access, got E941 "unable to open database file" / "attempt to write a
    readonly database". open_store(read_only=True) reads without any write, and refuses (E941) a log
    that is missing or at an older schema instead of migrating it; the store it gives cannot write."""
    with pytest.raises(StoreError) as err:
        open_store(store_url, read_only=True)
    assert err.value.code == "E941" and "no decision log" in err.value.message
    if store_url.startswith("sqlite"):
        assert not Path(store_url[len("sqlite:///"):]).exists()
    else:  # not even the schema was created
        import psycopg

        from converge_rules.store.postgres import split_url

        conninfo, schema = split_url(store_url)
        with psycopg.connect(conninfo) as conn:
            assert conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is None
    with open_store(store_url) as store:
        store.put(row(1, 1000.0))
    with open_store(store_url, read_only=True) as reader:
        if store_url.startswith("sqlite"):
            path = Path(store_url[len("sqlite:///"):])
            before = _snapshot(path)  # the writer closed: no -wal, no -shm
            assert before[2] == ["log.db"]
        assert reader.get("id0001") == row(1, 1000.0) and [r.id for r in reader.list()] == ["id0001"]
        assert reader.count() == 1 and reader.ping() and reader.schema_version() == SCHEMA_VERSION
        with pytest.raises(StoreError) as err:
            reader.put(row(2, 1001.0))
        assert err.value.code == "E941" and "read" in err.value.message.lower()
        with pytest.raises(StoreError):
            reader.prune(2000.0)
        if store_url.startswith("sqlite"):
            assert _snapshot(path) == before  # nothing written, no -wal or -shm created (not even as root)
    with open_store(store_url) as writer:  # a service writing it now: the reader sees what it committed
        writer.put(row(3, 1003.0))
        with open_store(store_url, read_only=True) as reader:
            assert [r.id for r in reader.list()] == ["id0003", "id0001"]
            writer.put(row(4, 1004.0))
            assert reader.get("id0004") is not None
    import converge_rules.store.base as base

    # a newer converge that no longer reads logs at this version without migrating them
    monkeypatch.setattr(base, "OLDEST_READABLE_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(StoreError) as err:
        open_store(store_url, read_only=True)
    assert err.value.code == "E941" and "older" in err.value.message and "migrate" in err.value.message


def test_reading_a_file_that_is_no_log_refuses_it_and_leaves_it_as_it_was(tmp_path: Path) -> None:
    """`converge decisions list` on an empty file (or another SQLite database) migrated it into a log:
    a reader wrote two tables into someone else's file. Readers refuse it (E941, exit 1), unchanged."""
    import sqlite3

    empty = tmp_path / "empty" / "x.db"
    empty.parent.mkdir()
    empty.write_bytes(b"")
    other = tmp_path / "other" / "app.db"
    other.parent.mkdir()
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    conn.close()
    for path in (empty, other):
        before = _snapshot(path)
        with pytest.raises(StoreError) as err:
            open_store(f"sqlite:///{path}", read_only=True)
        assert err.value.code == "E941" and "no decision log" in err.value.message
        for args in (("list",), ("show", "x"), ("why", "x", "p(1)"), ("why-not", "x", "p(1)")):
            out = cli("decisions", *args, "--store", f"sqlite:///{path}")
            assert out.returncode == 1 and "error[E941]" in out.stderr and "no decision log" in out.stderr, out.stderr
        assert _snapshot(path) == before


def test_decisions_cli_reads_a_read_only_log_without_writing(tmp_path: Path) -> None:
    """The log of a stopped service, on a read-only directory, in a rollback journal (a copy, or a log
    made by another tool): `decisions list/show/why/why-not` read it and change nothing. Before, each
    converted it to WAL (the header changed) and created -wal and -shm files, which fails without
    write access ("unable to open database file", E941) and, as root, leaves the file changed."""
    import sqlite3

    from converge_rules.service import store_decision

    logs = tmp_path / "logs"
    path = logs / "d.db"
    made = cr.Session([LOANS]).decide(LOANS_FACTS)
    with open_store(f"sqlite:///{path}") as store:
        store_decision(store, made)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0] == "delete"
    conn.close()
    before = _snapshot(path)
    path.chmod(0o444)
    logs.chmod(0o555)
    try:
        url = f"sqlite:///{path}"
        out = cli("decisions", "list", "--store", url)
        assert out.returncode == 0 and made.id in out.stdout, out.stderr
        out = cli("decisions", "show", made.id, "--store", url)
        assert out.returncode == 0 and loads_json(out.stdout)["decision_id"] == made.id, out.stderr
        out = cli("decisions", "why", made.id, 'decision("l1", "approve")', "--store", url)
        assert out.returncode in (0, 6) and "error" not in out.stderr, out.stderr
        out = cli("decisions", "why-not", made.id, 'decision("l1", "nope")', "--store", url)
        assert out.returncode == 0, out.stderr
        assert _snapshot(path) == before
    finally:
        logs.chmod(0o755)
        path.chmod(0o644)


# ---------------------------------------------------------------- idempotency keys

def keyed(i: int, key: str | None, request: str | None = "h" * 64) -> StoredDecision:
    r = row(i, 1000.0 + i)
    return StoredDecision(r.id, r.created_at, r.ruleset_digest, r.tier, r.digest, r.response, r.record,
                          key, request if key is not None else None)


def test_an_idempotency_key_names_one_decision(store_url: str) -> None:
    """A decision stored under a key is found by it; a second decision under the same key is refused
    with KeyTaken (E955), never stored twice; decisions without a key never clash with each other."""
    from converge_rules.store.base import KeyTaken

    with open_store(store_url) as store:
        store.put(keyed(1, "order-17/retry"))
        store.put(keyed(2, None))
        store.put(keyed(3, None))
        assert store.get_by_key("order-17/retry") == keyed(1, "order-17/retry")
        assert store.get("id0001") == keyed(1, "order-17/retry") and store.get("id0002") == keyed(2, None)
        assert store.get_by_key("order-18") is None and store.get_by_key("a\x00b") is None
        with pytest.raises(KeyTaken) as err:
            store.put(keyed(4, "order-17/retry"))
        assert err.value.code == "E955" and "order-17/retry" in err.value.message
        with pytest.raises(StoreError) as dup:  # the id taken, with another key: still E943
            store.put(keyed(1, "other"))
        assert dup.value.code == "E943" and not isinstance(dup.value, KeyTaken)
        assert store.count() == 3 and store.get("id0004") is None


def test_concurrent_puts_under_one_key_store_exactly_one(store_url: str) -> None:
    from converge_rules.store.base import KeyTaken

    with open_store(store_url) as store:
        def attempt(i: int) -> str:
            try:
                store.put(keyed(i, "same"))
                return "stored"
            except KeyTaken:
                return "taken"

        with ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(attempt, range(16)))
        assert outcomes.count("stored") == 1 and outcomes.count("taken") == 15
        assert store.count() == 1 and store.get_by_key("same") is not None


def _make_version_1_log(store_url: str) -> None:
    """A log as converge wrote it before idempotency keys (schema version 1), with one decision."""
    from converge_rules.store import postgres, sqlite

    r = row(1, 1001.0)
    insert = "INSERT INTO {t} (id, created_at, ruleset_digest, tier, digest, response, record) VALUES ({p})"
    values = (r.id, r.created_at, r.ruleset_digest, r.tier, r.digest, r.response, r.record)
    if store_url.startswith("sqlite"):
        conn = sqlite3.connect(store_url[len("sqlite:///"):])
        for sql in sqlite.MIGRATIONS[0]:
            conn.execute(sql)
        conn.execute("CREATE TABLE converge_schema (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO converge_schema (version) VALUES (1)")
        conn.execute(insert.format(t="decisions", p=", ".join("?" * 7)), values)
        conn.commit()
        conn.close()
        return
    import psycopg

    conninfo, schema = postgres.split_url(store_url)
    with psycopg.connect(conninfo) as conn:
        s = f'"{schema}"'
        conn.execute(f"CREATE SCHEMA {s}")
        for sql in postgres.MIGRATIONS[0]:
            conn.execute(sql.replace("{s}", s))
        conn.execute(f"CREATE TABLE {s}.converge_schema (version INTEGER NOT NULL)")
        conn.execute(f"INSERT INTO {s}.converge_schema (version) VALUES (1)")
        conn.execute(insert.format(t=f"{s}.decisions", p=", ".join(["%s"] * 7)), values)


def test_a_version_1_log_is_read_as_it_is_and_migrated_by_a_writer(store_url: str) -> None:
    """Logs written before idempotency keys: a reader reads them unchanged (no key on any decision),
    a writer (the service) adds the columns once, keeping every decision."""
    _make_version_1_log(store_url)
    with open_store(store_url, read_only=True) as reader:
        assert reader.schema_version() == 1
        assert reader.get("id0001") == row(1, 1001.0) and reader.get_by_key("anything") is None
        assert [r.id for r in reader.list()] == ["id0001"]
    with open_store(store_url) as writer:
        assert writer.schema_version() == SCHEMA_VERSION
        assert writer.get("id0001") == row(1, 1001.0)
        writer.put(keyed(2, "k"))
        assert writer.get_by_key("k") == keyed(2, "k")
    with open_store(store_url, read_only=True) as reader:
        assert reader.schema_version() == SCHEMA_VERSION and reader.get_by_key("k") == keyed(2, "k")


def test_listing_takes_any_limit_the_same_way_on_every_back_end(store_url: str) -> None:
    """`converge decisions list --limit 100000000000000000000` was "internal error: OverflowError"
    on SQLite and E941 "bigint out of range" (the log unavailable, it said) on PostgreSQL: a limit
    beyond the log is the whole log. A limit below 1, or a NaN `before` (no rows on SQLite, every
    row on PostgreSQL, where NaN sorts above every number), is a ValueError on both."""
    with open_store(store_url) as store:
        for i in range(3):
            store.put(row(i, 1000.0 + i))
        for limit in (3, 4, 2 ** 63 - 1, 2 ** 63, 10 ** 20, 10 ** 400):
            assert [r.id for r in store.list(limit)] == ["id0002", "id0001", "id0000"], limit
        assert [r.id for r in store.list(10 ** 20, before=1001.5)] == ["id0001", "id0000"]
        assert [r.id for r in store.list(2, before=float("inf"))] == ["id0002", "id0001"]
        for bad in (lambda: store.list(0), lambda: store.list(-1), lambda: store.list(5, before=float("nan"))):
            with pytest.raises(ValueError):
                bad()
    out = cli("decisions", "list", "--limit", "100000000000000000000", "--store", store_url)
    assert out.returncode == 0 and out.stdout.count("converged") == 3, out.stderr
    assert "internal error" not in out.stderr and "E941" not in out.stderr


def test_libpq_parameters_of_a_postgres_store_url_reach_the_server(pg_url: str, pg_schema: Any) -> None:
    """The store URL's own parameters were re-encoded with '+' for a space, which libpq reads as a '+':
    `?schema=s&options=-c%20lock_timeout%3D1000` failed to connect ("unrecognized configuration
    parameter "+lock_timeout"") although psycopg takes the same URL without `schema`."""
    schema = pg_schema("g_store_opts")
    url = f"{pg_url}{'&' if '?' in pg_url else '?'}schema={schema}&options=-c%20lock_timeout%3D1500" \
          "&application_name=converge%20test%20log"
    with open_store(url) as store:
        assert store._run("SHOW lock_timeout", (), "one")[0] == "1500ms"  # type: ignore[attr-defined]
        assert store._run("SHOW application_name", (), "one")[0] == "converge test log"  # type: ignore[attr-defined]
    for read_only in (False, True):
        with open_store(url, read_only=read_only) as store:
            assert store.count() == 0


def test_a_postgres_log_locked_by_another_session_is_503_not_a_hang(pg_url: str, pg_schema: Any) -> None:
    """SQLite waits 30 s for a lock (busy_timeout), then the decision is 503 E941, not acknowledged.
    On PostgreSQL a table locked by another session (a migration, an operator's LOCK TABLE, a long
    transaction) made every put wait without end: each request hung, holding a --concurrency slot,
    until the service decided nothing and SIGTERM could not drain it. A store connection now waits at
    most 30 s for a lock (lock_timeout, unless the URL or the role sets one)."""
    import psycopg

    schema = pg_schema("g_store_lock")
    base = f"{pg_url}{'&' if '?' in pg_url else '?'}schema={schema}"
    with open_store(base) as store:
        assert store._run("SHOW lock_timeout", (), "one")[0] == "30s"  # type: ignore[attr-defined]
    url = base + "&options=-c%20lock_timeout%3D1000"
    from converge_rules.service import create_app

    with open_store(url) as store, psycopg.connect(pg_url) as locker:
        store.put(row(1, 1000.0))
        locker.execute(f'LOCK TABLE "{schema}".decisions IN ACCESS EXCLUSIVE MODE')
        started = time.monotonic()
        with pytest.raises(StoreError) as err:
            store.put(row(2, 1001.0))
        assert err.value.code == "E941" and "lock" in err.value.message.lower()
        app = create_app(cr.Session([LOANS]), store)

        async def scenario() -> httpx.Response:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
                return await c.post("/v1/decisions", json={"facts": LOANS_FACTS})

        import asyncio

        answer = asyncio.run(scenario())
        assert answer.status_code == 503 and answer.json()["error"]["code"] == "E941" and "not acknowledged" in answer.text
        assert time.monotonic() - started < 20
        locker.rollback()  # the lock is gone: the store works again
        store.put(row(3, 1002.0))
        assert [r.id for r in store.list()] == ["id0003", "id0001"]
