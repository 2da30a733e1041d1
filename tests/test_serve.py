"""`converge serve`: a real uvicorn process on a loopback port, driven by a real HTTP client (httpx).

Every endpoint, bad input, auth, rule set swap under load, 200 decisions from
16 concurrent clients, and durability: kill -9 under load, restart, and every
acknowledged decision is there, whole. The PostgreSQL variants run against the
server named by CONVERGE_TEST_POSTGRES (skipped locally when unset, a failure in CI).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

import converge_rules as cr
from converge_rules.values import dumps_json, loads_json

ROOT = Path(__file__).resolve().parent.parent
LOANS = str(ROOT / "examples" / "loans" / "loans.cvg")
LOANS_FACTS = json.loads((ROOT / "examples" / "loans" / "facts.json").read_text())
PG_ENV = "CONVERGE_TEST_POSTGRES"


def postgres_url(schema: str) -> str:
    """The test server's URL with a schema of our own; skip locally, fail in CI when unset."""
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{PG_ENV} is not set in CI: the PostgreSQL tests must run")
        pytest.skip(f"{PG_ENV} not set")
    return url + ("&" if "?" in url else "?") + f"schema={schema}"


def drop_schema(url: str) -> None:
    import psycopg

    from converge_rules.store.postgres import split_url

    conninfo, schema = split_url(url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m converge_rules serve ...`` as a subprocess on a free loopback port."""

    def __init__(self, rules: list[str], store: str | None, *extra: str, host: str = "127.0.0.1",
                 env: dict[str, str] | None = None):
        self.args = [sys.executable, "-m", "converge_rules", "serve", *rules, *(["--store", store] if store else []),
                     "--host", host, "--no-access-log", *extra]
        self.cwd = str(ROOT)
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self, attempts: int = 3) -> "Server":
        self.port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT), **self.env}
        self.proc = subprocess.Popen(self.args + ["--port", str(self.port)], cwd=self.cwd, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read()  # type: ignore[union-attr]
                self.proc.stdout.close()  # type: ignore[union-attr]
                self.proc = None
                if "cannot listen" in out and attempts > 1:  # someone took the free port first
                    return self.start(attempts - 1)
                raise AssertionError(f"server exited: {out}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError("server did not start within 60 s")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> str:
        if self.proc is None:
            return ""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        out = self.proc.stdout.read() if self.proc.stdout else ""  # type: ignore[union-attr]
        self.proc.stdout.close()  # type: ignore[union-attr]
        self.proc = None
        return out


def request_facts(k: int) -> dict[str, Any]:
    """A small, different loan book for each k (some approved, some rejected)."""
    income = 1000 + 250 * (k % 7)
    return {"applicant": [[f"a{k}", income], {"id": f"b{k}", "income": 2000}],
            "loan": [[f"l{k}", f"a{k}", 1000 * (k % 9)], {"id": f"m{k}", "applicant": f"b{k}", "amount": 9000 + k}]}


_LOCAL: dict[str, Any] = {}


def wait_for(condition: Any, what: str, timeout: float = 120.0) -> None:
    """Poll ``condition()`` until true; fail (never hang) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def local_digest(facts: dict[str, Any], rules: str = LOANS) -> str:
    """What `converge run` computes for these facts (the API, in this process)."""
    if rules not in _LOCAL:
        _LOCAL[rules] = cr.load([rules])
    return _LOCAL[rules].run(facts).digest


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    db = tmp_path_factory.mktemp("serve") / "decisions.db"
    srv = Server([LOANS], f"sqlite:///{db}", "--max-body", "200000", "--max-cycles", "50").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


# ---------------------------------------------------------------- the endpoints

def test_decision_answer_is_stored_and_matches_converge_run(client: httpx.Client) -> None:
    r = client.post("/v1/decisions", json={"facts": LOANS_FACTS})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"decision_id", "created_at", "tier", "reasons", "cycles", "digest", "ruleset", "facts"}
    assert body["tier"] == "converged" and body["reasons"] == []
    local = cr.load([LOANS]).run(LOANS_FACTS)
    assert body["digest"] == local.digest and body["cycles"] == local.cycles
    assert body["facts"]["decision"] == [list(f) for f in local.facts("decision")]
    assert body["ruleset"]["digest"] == cr.load([LOANS]).digest
    stored = client.get(f"/v1/decisions/{body['decision_id']}")
    assert stored.status_code == 200 and stored.json() == body
    listed = client.get("/v1/decisions", params={"limit": 1000}).json()["decisions"]
    assert body["decision_id"] in [d["decision_id"] for d in listed]


def test_digest_equals_the_cli_run(client: httpx.Client, tmp_path: Path) -> None:
    facts = request_facts(3)
    body = client.post("/v1/decisions", json={"facts": facts}).json()
    path = tmp_path / "facts.json"
    path.write_text(json.dumps(facts))
    out = subprocess.run([sys.executable, "-m", "converge_rules", "run", LOANS, "--facts", str(path), "--format", "json"],
                         cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["digest"] == body["digest"]


def test_answers_depend_on_the_facts_alone(client: httpx.Client) -> None:
    shuffled = {"loan": list(reversed(LOANS_FACTS["loan"])), "applicant": list(reversed(LOANS_FACTS["applicant"]))}
    a = client.post("/v1/decisions", json={"facts": LOANS_FACTS}).json()
    b = client.post("/v1/decisions", content=json.dumps({"facts": shuffled}, indent=3).encode()).json()
    assert a["decision_id"] != b["decision_id"]
    for answer in (a, b):
        del answer["decision_id"], answer["created_at"]
    assert a == b


def test_relations_selects_the_facts_returned(client: httpx.Client) -> None:
    body = client.post("/v1/decisions", json={"facts": LOANS_FACTS, "relations": ["decision"]}).json()
    assert list(body["facts"]) == ["decision"]
    assert body["digest"] == local_digest(LOANS_FACTS)


def test_an_empty_relations_list_answers_no_facts(client: httpx.Client) -> None:
    """"relations": [] asks for the tier and digest alone (a big decision's answer stays small); it
    used to be read as "no choice" and list every relation. Without the key, all are listed."""
    body = client.post("/v1/decisions", json={"facts": LOANS_FACTS, "relations": []}).json()
    assert body["facts"] == {} and body["digest"] == local_digest(LOANS_FACTS)
    assert client.get(f"/v1/decisions/{body['decision_id']}").json() == body
    assert "decision" in client.post("/v1/decisions", json={"facts": LOANS_FACTS}).json()["facts"]
    session = cr.Session([LOANS])
    assert session.decide(LOANS_FACTS, relations=[]).response()["facts"] == {}
    assert list(session.decide(LOANS_FACTS, relations=["risk", "risk"]).response()["facts"]) == ["risk"]
    assert "loan" in session.decide(LOANS_FACTS).response()["facts"]


def test_why_why_not_and_report_come_from_the_stored_record(client: httpx.Client) -> None:
    decision_id = client.post("/v1/decisions", json={"facts": LOANS_FACTS}).json()["decision_id"]
    why = client.get(f"/v1/decisions/{decision_id}/why", params={"fact": 'decision("l1", "reject")'})
    assert why.status_code == 200
    w = why.json()
    assert w["holds"] is True and w["proof"]["relation"] == "decision"
    assert 'risk("l1", "amount above 5x income")' in w["text"] and "flag_high_risk" in w["text"]
    text = client.get(f"/v1/decisions/{decision_id}/why", params={"fact": 'decision("l1", "reject")', "format": "text"})
    assert text.headers["content-type"].startswith("text/plain") and text.text == w["text"]
    absent = client.get(f"/v1/decisions/{decision_id}/why", params={"fact": 'decision("l1", "approve")'}).json()
    assert absent["holds"] is False
    why_not = client.get(f"/v1/decisions/{decision_id}/why-not", params={"fact": 'decision("l1", "approve")'})
    assert why_not.status_code == 200 and "not risk(l, _)" in why_not.json()["text"]
    record = client.get(f"/v1/decisions/{decision_id}/record")
    assert record.status_code == 200 and record.json()["format"] == "converge-record/1"
    assert "flag_high_risk" in cr.Record.from_json(record.text).why_text('decision("l1", "reject")')
    report = client.get(f"/v1/decisions/{decision_id}/report")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "<!DOCTYPE html>" in report.text and "decision" in report.text


def test_ruleset_health_ready_openapi(client: httpx.Client) -> None:
    rs = client.get("/v1/ruleset").json()
    assert rs["digest"] == cr.load([LOANS]).digest and rs["files"][0]["path"].endswith("loans.cvg")
    assert rs["loaded_at"].endswith("Z") and "decision" in rs["relations"]
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["store"] == "ok"
    schema = client.get("/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    for path in ("/v1/decisions", "/v1/decisions/{id}", "/v1/decisions/{id}/record", "/v1/decisions/{id}/why", "/v1/decisions/{id}/why-not",
                 "/v1/decisions/{id}/report", "/v1/ruleset", "/health", "/ready", "/metrics"):
        assert path in schema["paths"]
    assert set(schema["paths"]["/v1/ruleset"]) == {"get", "put"}
    # the request schema names every budget setting the service takes (max_bytes and timeout were missing)
    budget = schema["components"]["schemas"]["DecisionRequest"]["properties"]["budget"]
    from dataclasses import fields

    assert set(budget["properties"]) == {f.name for f in fields(cr.Budget)} and budget["additionalProperties"] is False
    assert budget["properties"]["timeout"]["type"] == "number" and budget["properties"]["max_bytes"]["type"] == "integer"


def test_metrics_count_decisions_errors_and_store_latency(client: httpx.Client) -> None:
    def value(text: str, name: str) -> float:
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{") and line.split(" ")[0] == name:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = client.get("/metrics").text
    client.post("/v1/decisions", json={"facts": LOANS_FACTS})
    client.post("/v1/decisions", json={"facts": LOANS_FACTS, "budget": {"max_cycles": 1}})
    client.post("/v1/decisions", content=b"{nope")
    after = client.get("/metrics").text
    conv, bounded = 'converge_decisions_total{tier="converged"}', 'converge_decisions_total{tier="bounded"}'
    assert value(after, conv) == value(before, conv) + 1
    assert value(after, bounded) == value(before, bounded) + 1
    bad = 'converge_errors_total{kind="invalid_request"}'
    assert value(after, bad) == value(before, bad) + 1
    assert value(after, "converge_decision_seconds_count") == value(before, "converge_decision_seconds_count") + 2
    assert value(after, 'converge_store_seconds_count{op="put"}') >= 2


# ---------------------------------------------------------------- bad input

def test_tier_below_converged_is_still_200(client: httpx.Client) -> None:
    r = client.post("/v1/decisions", json={"facts": LOANS_FACTS, "budget": {"max_cycles": 1}})
    assert r.status_code == 200 and r.json()["tier"] == "bounded"
    assert r.json()["reasons"][0]["kind"]
    violated = {"applicant": [["a1", 1000]], "loan": [["l1", "a1", 6000]], "decision": [["l1", "approve"]]}
    r = client.post("/v1/decisions", json={"facts": violated})
    assert r.status_code == 200 and r.json()["tier"] == "failed" and r.json()["reasons"][0]["kind"] == "invariant"
    assert client.get(f"/v1/decisions/{r.json()['decision_id']}").json() == r.json()  # stored like any other


def test_client_budget_is_capped_by_the_server(client: httpx.Client) -> None:
    # the server runs with --max-cycles 50: asking for more gives 50, which the record keeps
    r = client.post("/v1/decisions", json={"facts": LOANS_FACTS, "budget": {"max_cycles": 100000}})
    assert r.status_code == 200
    session = cr.Session([LOANS], budget=cr.Budget(max_cycles=50))
    assert session.cap(cr.Budget(max_cycles=100000)).max_cycles == 50
    assert session.cap(cr.Budget(max_cycles=3)).max_cycles == 3
    assert session.cap(None).max_cycles == 50
    assert session.cap(cr.Budget(min_confidence=0.1)).min_confidence == 0.1


def test_malformed_facts_give_located_coded_diagnostics(client: httpx.Client) -> None:
    text = '{"facts": {\n  "loan": [["l1", "a1", "lots"]],\n  "loans": []}}'
    r = client.post("/v1/decisions", content=text.encode())
    assert r.status_code == 400
    body = r.json()
    codes = {d["code"]: d for d in body["diagnostics"]}
    assert set(codes) == {"E502", "E503"}
    assert codes["E502"]["span"] == {"file": "<request>", "line": 2, "col": 25, "end_line": 2, "end_col": 31}
    assert codes["E503"]["span"]["line"] == 3 and 'did you mean "loan"?' in codes["E503"]["notes"]
    assert body["error"]["status"] == 400 and body["error"]["code"] in codes


@pytest.mark.parametrize("text, code, span, note", [
    ('{"facts": {},\n "budget": {"max_cycles": -1}}', "E944", (2, 27, 29), "at budget.max_cycles"),
    ('{"facts": {},\n "budget": {\n   "max_cycle": 3}}', "E944", (3, 4, 15), "at budget.max_cycle"),
    ('{"facts": {},\n "budget": {"timeout": 0, "min_confidence": 2}}', "E944", (2, 24, 25), "at budget.timeout"),
    ('{"budget": 3}', "E944", (1, 12, 13), "at budget"),
    ('{"facts": {},\n "goals": ["decision",\n           "nope"]}', "E200", (3, 12, 18), "at goals[1]"),
    ('{"relations": {"decision": 1}}', "E944", (1, 15, 16), "at relations"),
])
def test_budget_goal_and_relation_errors_are_located_in_the_request(
        client: httpx.Client, text: str, code: str, span: tuple, note: str) -> None:
    """Budget, goals and relations errors were all at <request>:0:0 with a note "at budget.max_cycles";
    they are located like facts errors: the line and column of the offending value (or key)."""
    r = client.post("/v1/decisions", content=text.encode())
    assert r.status_code == 400, r.text
    d = r.json()["diagnostics"][0]
    assert r.json()["error"]["code"] == d["code"] == code and note in d["notes"]
    assert (d["span"]["file"], d["span"]["line"], d["span"]["col"], d["span"]["end_col"]) == ("<request>", *span), d
    body = json.loads(text)
    with pytest.raises(cr.ConvergeError) as err:  # the Python API: the same, given the request's text
        cr.Session([LOANS]).decide(body.get("facts"), body.get("budget"), body.get("goals"), body.get("relations"),
                                   source_text=text)
    got = err.value.diagnostics[0]
    assert (got.code, got.span.file, got.span.line, got.span.col) == (code, "<request>", *span[:2])
    with pytest.raises(cr.ConvergeError) as err:  # without it: the JSON path alone
        cr.Session([LOANS]).decide(body.get("facts"), body.get("budget"), body.get("goals"), body.get("relations"))
    assert (err.value.diagnostics[0].span.line, err.value.diagnostics[0].notes[0]) == (0, note)


@pytest.mark.parametrize("payload, code", [
    (b'{"facts": ', "E946"),
    (b"", "E946"),
    (b"\xff\xfe", "E946"),
    (b"[1, 2]", "E944"),
    (b'{"fact": {}}', "E944"),
    (b'{"facts": {}, "budget": {"max_cycle": 3}}', "E944"),
    (b'{"facts": {}, "budget": {"max_cycles": -1}}', "E944"),
    (b'{"facts": {}, "budget": 3}', "E944"),
    (b'{"facts": {}, "goals": ["nope"]}', "E200"),
    (b'{"facts": {}, "relations": "decision"}', "E944"),
    (b'{"facts": {}, "relations": {"decision": 1}}', "E944"),
    (b'{"facts": {}, "goals": {"decision": 1}}', "E944"),
    (b'{"facts": [1]}', "E501"),
    (b'{"facts": {"loan": [["l1", "a1"]]}}', "E504"),
    (b'{"facts": {"applicant": [["a1", NaN]]}}', "E946"),
    (b'{"facts": {"applicant": [["a1", 1e999]]}}', "E946"),
])
def test_bad_requests_are_400_with_a_code(client: httpx.Client, payload: bytes, code: str) -> None:
    r = client.post("/v1/decisions", content=payload)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"]["code"] == code
    assert "Traceback" not in r.text


def test_a_key_given_twice_is_refused_not_guessed(client: httpx.Client) -> None:
    """JSON keeps only the last value of a repeated key: a request that repeats one would silently
    lose facts (the first "loan" list) or settings, so it is refused, located at the repeated key."""
    before = len(client.get("/v1/decisions", params={"limit": 1000}).json()["decisions"])
    cases = [
        ('{"facts": {"applicant": [["a1", 1000]],\n "loan": [["l1", "a1", 6000]],\n "loan": [["l2", "a1", 10]]}}',
         3, 2, '"loan"'),
        ('{"facts": {"applicant": [{"id": "a1", "income": 1000, "income": 5}]}}', 1, 55, '"income"'),
        ('{"facts": {}, "budget": {"max_cycles": 5, "max_cycles": 1000}}', 1, 43, '"max_cycles"'),
        ('{"facts": {"loan": [["l1", "a1", 6000]]}, "facts": {}}', 1, 43, '"facts"'),
    ]
    for text, line, col, key in cases:
        r = client.post("/v1/decisions", content=text.encode())
        assert r.status_code == 400, (text, r.text)
        body = r.json()
        assert body["error"]["code"] == "E946" and key in body["error"]["message"], body
        d = body["diagnostics"][0]
        assert d["code"] == "E946" and d["span"]["file"] == "<request>", d
        assert (d["span"]["line"], d["span"]["col"]) == (line, col), (text, d)
    # nothing was decided, so nothing was stored
    assert len(client.get("/v1/decisions", params={"limit": 1000}).json()["decisions"]) == before
    r = client.put("/v1/ruleset", content=b'{"files": {"a.cvg": "relation p(x: int)", "a.cvg": "p(x) :- nope(x)."}}')
    assert r.status_code == 400 and r.json()["error"]["code"] == "E946" and '"a.cvg"' in r.json()["error"]["message"]
    # the same key in two different objects is fine
    ok = client.post("/v1/decisions", json={"facts": {"applicant": [{"id": "a1", "income": 1}, {"id": "a2", "income": 2}]}})
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("facts", ["[]", "0", '""', "false", '"applicant"'])
def test_facts_that_are_not_an_object_are_refused(client: httpx.Client, facts: str) -> None:
    """Only an object of relation name to facts (or null, or no key) is facts: an empty array, a zero
    or an empty string used to be taken as "no facts" and decided on."""
    r = client.post("/v1/decisions", content=f'{{"facts": {facts}}}'.encode())
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "E501" and "mapping of relation name" in r.json()["error"]["message"]
    assert client.post("/v1/decisions", content=b'{"facts": null}').status_code == 200
    session = cr.Session([LOANS])
    with pytest.raises(cr.ConvergeError) as err:
        session.decide(json.loads(facts))
    assert err.value.diagnostics[0].code == "E501"


@pytest.mark.parametrize("payload, code", [
    (r'{"\ud800": 1}', "E944"),
    (r'{"facts": {"\ud800": []}}', "E503"),
    (r'{"facts": {"applicant": [{"id": "a", "income": 1, "\udc00": 2}]}}', "E505"),
    (r'{"facts": {"applicant": [["a\u0000\ud800x", 1]]}}', "E502"),
    (r'{"budget": {"\ud800": 1}}', "E944"),
])
def test_lone_surrogates_in_a_request_are_400_not_500(client: httpx.Client, payload: str, code: str) -> None:
    """A JSON escape such as \\ud800 decodes to a lone surrogate, which no UTF-8 answer can hold: the
    diagnostic that quotes it used to crash the answer (500 E999). Now it is the 400 it always was,
    with the surrogate written as a JSON escape."""
    r = client.post("/v1/decisions", content=payload.encode())
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"]["code"] == code, body
    assert "\\ud800" in r.text or "\\udc00" in r.text


def test_a_rule_file_name_that_is_not_unicode_is_refused_and_the_rules_stay(client: httpx.Client) -> None:
    """PUT /v1/ruleset with a file name holding a lone surrogate used to be accepted (then its answer
    crashed, 500), leaving a rule set whose every decision and GET /v1/ruleset answered 500."""
    current = client.get("/v1/ruleset").json()
    r = client.put("/v1/ruleset", content=rb'{"files": {"a\ud800.cvg": "relation p(x: int)"}}')
    assert r.status_code == 400 and r.json()["error"]["code"] == "E945", r.text
    assert "not valid Unicode" in r.json()["diagnostics"][0]["message"]
    assert client.get("/v1/ruleset").json() == current
    assert client.post("/v1/decisions", json={"facts": LOANS_FACTS}).status_code == 200
    with pytest.raises(cr.ConvergeError) as err:
        cr.Session([LOANS]).swap([("a\ud800.cvg", "relation p(x: int)")])
    assert err.value.diagnostics[0].code == "E945"


def test_an_int_of_any_size_is_a_fact_as_in_facts_files(client: httpx.Client, tmp_path: Path) -> None:
    """docs/facts.md: an int column takes "a JSON integer of any size", and `converge run` reads one
    with 5,000 digits; the service refused it (400 E946 "Exceeds the limit (4300 digits) ...")."""
    big = 10 ** 5000 - 1  # 5,000 nines
    facts = {"applicant": [["a1", big]], "loan": [["l1", "a1", 6000]]}
    r = client.post("/v1/decisions", content=dumps_json({"facts": facts}).encode())
    assert r.status_code == 200, r.text[:300]
    body = loads_json(r.text)
    assert body["facts"]["applicant"] == [["a1", big]] and body["facts"]["decision"] == [["l1", "approve"]]
    (tmp_path / "facts.json").write_text(dumps_json(facts))
    run = cli("run", LOANS, "--facts", str(tmp_path / "facts.json"))
    assert run.returncode == 0 and f"digest: {body['digest']}" in run.stdout
    why = client.get(f"/v1/decisions/{body['decision_id']}/why", params={"fact": f'applicant("a1", {dumps_json(big)})'})
    assert why.status_code == 200 and loads_json(why.text)["holds"]


def test_malformed_json_is_located(client: httpx.Client) -> None:
    r = client.post("/v1/decisions", content=b'{"facts":\n {"loan": [1,]}}')
    d = r.json()["diagnostics"][0]
    assert r.status_code == 400 and d["code"] == "E946" and d["span"]["line"] == 2 and d["span"]["file"] == "<request>"


def test_oversized_body_is_413(client: httpx.Client) -> None:
    big = {"facts": {"applicant": [[f"a{i}", i] for i in range(20000)]}}
    r = client.post("/v1/decisions", json=big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "E951"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
        yield b'{"facts": {"applicant": ['
        for i in range(20000):
            yield f'["a{i}", {i}],'.encode()
        yield b'["z", 1]]}}'

    r = client.post("/v1/decisions", content=chunks())
    assert r.status_code == 413


def test_unknown_decision_endpoint_and_method(client: httpx.Client) -> None:
    r = client.get("/v1/decisions/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "E947"
    assert client.get("/v1/decisions/nope/why", params={"fact": "x(1)"}).status_code == 404
    assert client.get("/v2/whatever").status_code == 404
    assert client.delete("/v1/ruleset").status_code == 405


@pytest.mark.parametrize("query", ["before=nan", "before=inf", "before=-inf", "before=1e999", "limit=0", "limit=-5",
                                   "limit=1.5"])
def test_listing_needs_a_finite_before_and_a_positive_limit(client: httpx.Client, query: str) -> None:
    """before=nan listed nothing on SQLite and everything on PostgreSQL (NaN sorts above every number
    there); a limit of 0 or -5 was silently taken as 1."""
    r = client.get("/v1/decisions?" + query)
    assert r.status_code == 400 and r.json()["error"]["code"] == "E944", r.text
    assert client.get("/v1/decisions/a%00b").json()["error"]["code"] == "E947"


def test_explaining_needs_a_valid_fact(client: httpx.Client) -> None:
    decision_id = client.post("/v1/decisions", json={"facts": LOANS_FACTS}).json()["decision_id"]
    assert client.get(f"/v1/decisions/{decision_id}/why").json()["error"]["code"] == "E944"
    assert client.get(f"/v1/decisions/{decision_id}/why", params={"fact": "decided(\"l1\")", "format": "dot"}
                      ).json()["error"]["code"] == "E944"
    bad = client.get(f"/v1/decisions/{decision_id}/why", params={"fact": 'decisionz("l1", "reject")'})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "E200"
    bad = client.get(f"/v1/decisions/{decision_id}/why-not", params={"fact": 'decision("l1"'})
    assert bad.status_code == 400 and bad.json()["diagnostics"]


def test_a_fact_nested_too_deeply_to_explain_is_400_not_500(client: httpx.Client, tmp_path: Path) -> None:
    """A fact to explain such as decision(------...1, "x") (thousands of unary minus signs) made the fact
    parser recurse past Python's limit: 500 E999 from the service, "internal error" from the CLI."""
    decision = client.post("/v1/decisions", json={"facts": LOANS_FACTS}).json()["decision_id"]
    deep = "decision(" + "-" * 3000 + '1, "x")'
    for kind in ("why", "why-not"):
        r = client.get(f"/v1/decisions/{decision}/{kind}", params={"fact": deep})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "E102" and r.json()["diagnostics"][0]["span"]["file"] == "<query>"
    store = f"sqlite:///{tmp_path / 'd.db'}"
    from converge_rules.service import store_decision
    from converge_rules.store import open_store

    made = cr.Session([LOANS]).decide(LOANS_FACTS)
    with open_store(store) as s:
        store_decision(s, made)
    out = cli("decisions", "why", made.id, deep, "--store", store)
    assert out.returncode == 1 and "error[E102]" in out.stderr and "internal error" not in out.stderr, out.stderr


def test_put_ruleset_rejects_invalid_rules_and_keeps_the_old(client: httpx.Client) -> None:
    old = client.get("/v1/ruleset").json()["digest"]
    r = client.put("/v1/ruleset", json={"files": {"bad.cvg": "relation p(x: int)\np(x) :- q(x).\n"}})
    assert r.status_code == 400
    d = r.json()["diagnostics"][0]
    assert d["code"] == "E200" and d["span"]["file"] == "bad.cvg" and d["span"]["line"] == 2
    assert client.put("/v1/ruleset", json={"files": {}}).json()["error"]["code"] == "E945"
    empty = client.put("/v1/ruleset", json={"files": {"ok.cvg": "relation p(x: int)\n"}, "roots": []})
    assert empty.status_code == 400 and "roots is empty" in empty.text, empty.text  # was: every file a root
    assert client.put("/v1/ruleset", content=b"nope").status_code == 400
    assert client.get("/v1/ruleset").json()["digest"] == old


# ---------------------------------------------------------------- concurrency and swaps

def test_200_decisions_from_16_clients_each_stored_once(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    srv = Server([LOANS], f"sqlite:///{db}").start()
    try:
        with httpx.Client(base_url=srv.url, timeout=60, limits=httpx.Limits(max_connections=16)) as c:
            def one(k: int) -> tuple[int, dict[str, Any]]:
                r = c.post("/v1/decisions", json={"facts": request_facts(k)})
                assert r.status_code == 200, r.text
                return k, r.json()

            with ThreadPoolExecutor(16) as pool:  # 16 concurrent clients, one connection each
                answers = list(pool.map(one, range(200)))
        ids = [a["decision_id"] for _, a in answers]
        assert len(set(ids)) == 200
        for k, a in answers:
            assert a["digest"] == local_digest(request_facts(k)), k
        listed = httpx.get(srv.url + "/v1/decisions", params={"limit": 1000}).json()["decisions"]
        assert sorted(d["decision_id"] for d in listed) == sorted(ids)
    finally:
        srv.stop()
    from converge_rules.store import open_store

    with open_store(f"sqlite:///{db}") as store:
        assert store.count() == 200


STRICT = (Path(LOANS).read_text().replace("amount > 5 * income", "amount > 2 * income"))


def test_ruleset_swap_under_load(tmp_path: Path) -> None:
    strict_path = tmp_path / "strict.cvg"
    strict_path.write_text(STRICT)
    old_rules = cr.load([LOANS])
    new_rules = cr.load([str(strict_path)])
    srv = Server([LOANS], f"sqlite:///{tmp_path / 'd.db'}").start()
    stop = threading.Event()
    seen: list[tuple[int, dict[str, Any]]] = []
    errors: list[str] = []

    def load(worker: int) -> None:
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            k = worker * 1000
            while not stop.is_set():
                r = c.post("/v1/decisions", json={"facts": request_facts(k)})
                if r.status_code != 200:
                    errors.append(r.text)
                else:
                    seen.append((k, r.json()))
                k += 1
    try:
        threads = [threading.Thread(target=load, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        wait_for(lambda: len(seen) >= 10 or errors, "decisions before the swap")
        put = httpx.put(srv.url + "/v1/ruleset", json={"files": {"strict.cvg": STRICT}}, timeout=60)
        assert put.status_code == 200, put.text
        new_digest = put.json()["digest"]
        after_put = len(seen)
        wait_for(lambda: len(seen) >= after_put + 10 or errors, "decisions after the swap")
        stop.set()
        for t in threads:
            t.join()
        after = httpx.post(srv.url + "/v1/decisions", json={"facts": request_facts(5)}).json()
        # a decision made before the swap is still explained by the rules it ran under
        first_k, first = seen[0]
        assert first["ruleset"]["digest"] == old_rules.digest
        why = httpx.get(srv.url + f"/v1/decisions/{first['decision_id']}/why",
                        params={"fact": f'decided("m{first_k}")', "format": "text"})
        assert why.status_code == 200 and "loans.cvg" in why.text and "strict.cvg" not in why.text
    finally:
        stop.set()
        srv.stop()
    assert not errors
    assert new_digest != old_rules.digest and after["ruleset"]["digest"] == new_digest
    kinds = {a["ruleset"]["digest"] for _, a in seen}
    assert kinds == {old_rules.digest, new_digest}
    for k, a in seen:  # every decision ran wholly on the rule set whose digest it carries
        rules = old_rules if a["ruleset"]["digest"] == old_rules.digest else new_rules
        assert a["digest"] == rules.run(request_facts(k)).digest


# ---------------------------------------------------------------- auth

def test_bearer_tokens(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("# service tokens\nsecret-one\n\nsecret-two\n")
    from converge_rules.store import open_store
    from converge_rules.store.base import StoredDecision

    with open_store(f"sqlite:///{tmp_path / 'd.db'}") as store:  # one decision 40 days old, one 10 days old
        for name, age in (("old", 40), ("recent", 10)):
            store.put(StoredDecision(name, time.time() - age * 86400, "r", "converged", "d", "{}", "{}"))
    srv = Server([LOANS], f"sqlite:///{tmp_path / 'd.db'}", "--token-file", str(tokens), "--keep-days", "30").start()
    try:
        auth = {"Authorization": "Bearer secret-one"}
        assert httpx.get(srv.url + "/v1/decisions/old", headers=auth).status_code == 404  # retention at start
        assert httpx.get(srv.url + "/v1/decisions/recent", headers=auth).status_code == 200
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            r = c.post("/v1/decisions", json={"facts": LOANS_FACTS})
            assert r.status_code == 401 and r.json()["error"]["code"] == "E950"
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert c.post("/v1/decisions", json={"facts": {}}, headers={"Authorization": "Bearer wrong"}).status_code == 401
            ok = c.post("/v1/decisions", json={"facts": LOANS_FACTS}, headers={"Authorization": "Bearer secret-two"})
            assert ok.status_code == 200
            decision_id = ok.json()["decision_id"]
            assert c.get(f"/v1/decisions/{decision_id}").status_code == 401
            assert c.get(f"/v1/decisions/{decision_id}", headers={"Authorization": "Bearer secret-one"}).status_code == 200
            assert c.get("/v1/ruleset").status_code == 401
            assert c.put("/v1/ruleset", json={"files": {"a.cvg": "relation p(x: int)\n"}}).status_code == 401
            put = c.put("/v1/ruleset", json={"files": {"a.cvg": "relation p(x: int)\n"}},
                        headers={"Authorization": "Bearer secret-one"})
            assert put.status_code == 200
            assert c.get("/health").status_code == 200 and c.get("/ready").status_code == 200
    finally:
        srv.stop()


def test_a_token_no_client_could_send_is_refused_at_start(tmp_path: Path) -> None:
    """HTTP header values are bytes read as Latin-1: a token with "ö" in the token file never matched
    what a client sent (401 for the right token, with no hint why). Tokens are printable ASCII, checked
    when the service starts (a usage error, exit 2)."""
    from converge_rules.service import read_tokens

    for text in ("tökén-secret\n", "ok-token\nsecret\twith-tab\n"):
        tokens = tmp_path / "tokens"
        tokens.write_text(text, encoding="utf-8")
        with pytest.raises(ValueError) as err:
            read_tokens(str(tokens))
        assert "line" in str(err.value) and "printable ASCII" in str(err.value)
        out = cli("serve", LOANS, "--store", f"sqlite:///{tmp_path / 'd.db'}", "--token-file", str(tokens),
                  "--port", str(free_port()))
        assert out.returncode == 2 and "--token-file" in out.stderr and "printable ASCII" in out.stderr, out.stderr
    tokens.write_text("# comment: ünïcode is fine here\nsecret-one\n", encoding="utf-8")
    assert read_tokens(str(tokens)) == ("secret-one",)


def test_put_ruleset_is_refused_beyond_loopback_without_tokens(tmp_path: Path) -> None:
    # also: without --store the log is the per-user default file ($CONVERGE_DATA_DIR here)
    srv = Server([LOANS], None, host="0.0.0.0", env={"CONVERGE_DATA_DIR": str(tmp_path / "data")}).start()
    try:
        r = httpx.put(srv.url + "/v1/ruleset", json={"files": {"a.cvg": "relation p(x: int)\n"}})
        assert r.status_code == 403 and r.json()["error"]["code"] == "E952"
        ok = httpx.post(srv.url + "/v1/decisions", json={"facts": LOANS_FACTS})
        assert ok.status_code == 200
    finally:
        out = srv.stop()
    assert "PUT /v1/ruleset is disabled" in out
    from converge_rules.store import open_store

    with open_store(f"sqlite:///{tmp_path / 'data' / 'converge-decisions.db'}") as store:
        assert store.get(ok.json()["decision_id"]) is not None


# ---------------------------------------------------------------- durability

def _kill_under_load(store: str, tmp_path: Path) -> None:
    srv = Server([LOANS], store).start()
    acked: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def load(worker: int) -> None:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            k = worker * 10000
            while not stop.is_set():
                try:
                    r = c.post("/v1/decisions", json={"facts": request_facts(k)})
                except httpx.HTTPError:
                    return  # the server died mid-request: not acknowledged
                if r.status_code == 200:
                    with lock:
                        acked[r.json()["decision_id"]] = r.json()
                k += 1

    threads = [threading.Thread(target=load, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(acked) >= 30, "acknowledged decisions")
        srv.kill9()
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert len(acked) >= 30
    again = Server([LOANS], store).start()
    try:
        with httpx.Client(base_url=again.url, timeout=30) as c:
            for decision_id, body in acked.items():
                r = c.get(f"/v1/decisions/{decision_id}")
                assert r.status_code == 200, decision_id
                assert r.json() == body
            some = sorted(acked)[0]
            fact = 'decided("{}")'.format(acked[some]["facts"]["decided"][0][0])
            why = c.get(f"/v1/decisions/{some}/why", params={"fact": fact})
            assert why.status_code == 200 and why.json()["holds"] is True
    finally:
        again.stop()


def test_sigkill_under_load_loses_no_acknowledged_decision_sqlite(tmp_path: Path) -> None:
    _kill_under_load(f"sqlite:///{tmp_path / 'd.db'}", tmp_path)


def test_sigkill_under_load_loses_no_acknowledged_decision_postgres(tmp_path: Path) -> None:
    url = postgres_url("f2_kill_" + uuid.uuid4().hex[:8])
    try:
        _kill_under_load(url, tmp_path)
    finally:
        drop_schema(url)


def test_two_workers_on_one_postgres_store_and_a_restart(tmp_path: Path) -> None:
    url = postgres_url("f2_serve_" + uuid.uuid4().hex[:8])
    try:
        a, b = Server([LOANS], url), Server([LOANS], url)
        with ThreadPoolExecutor(2) as pool:  # both migrate a fresh schema at once (advisory lock)
            list(pool.map(Server.start, [a, b]))
        try:
            body = httpx.post(a.url + "/v1/decisions", json={"facts": LOANS_FACTS}).json()
            assert httpx.get(b.url + f"/v1/decisions/{body['decision_id']}").json() == body  # any worker reads it
            assert httpx.get(b.url + "/ready").json()["store"] == "ok"
        finally:
            a.stop()
            b.stop()
        srv = Server([LOANS], url).start()
        try:
            assert httpx.get(srv.url + f"/v1/decisions/{body['decision_id']}").json() == body
            why = httpx.get(srv.url + f"/v1/decisions/{body['decision_id']}/why",
                            params={"fact": 'decision("l1", "reject")', "format": "text"})
            assert why.status_code == 200 and "flag_high_risk" in why.text
        finally:
            srv.stop()
        out = subprocess.run([sys.executable, "-m", "converge_rules", "decisions", "list", "--store", url, "--format", "json"],
                             cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert out.returncode == 0 and json.loads(out.stdout)["decisions"][0]["decision_id"] == body["decision_id"]
    finally:
        drop_schema(url)


# ---------------------------------------------------------------- the CLI

def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "converge_rules", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_decisions_cli_reads_the_log(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from converge_rules.cli import cli as converge_cli

    def cli(*args: str) -> Any:  # in-process: the same command, without nine interpreter start-ups
        result = CliRunner().invoke(converge_cli, list(args), catch_exceptions=False)
        result.returncode = result.exit_code
        return result

    store = f"sqlite:///{tmp_path / 'd.db'}"
    session = cr.Session([LOANS])
    from converge_rules.service import store_decision
    from converge_rules.store import open_store

    with open_store(store) as s:
        decision = session.decide(LOANS_FACTS)
        store_decision(s, decision)
    out = cli("decisions", "list", "--store", store)
    assert out.returncode == 0 and decision.id in out.stdout and "converged" in out.stdout
    shown = cli("decisions", "show", decision.id, "--store", store)
    assert shown.returncode == 0 and json.loads(shown.stdout) == decision.response()
    record = cli("decisions", "show", decision.id, "--store", store, "--record")
    assert json.loads(record.stdout)["format"] == "converge-record/1"
    why = cli("decisions", "why", decision.id, 'decision("l1", "reject")', "--store", store)
    assert why.returncode == 0 and "flag_high_risk" in why.stdout
    absent = cli("decisions", "why", decision.id, 'decision("l1", "approve")', "--store", store)
    assert absent.returncode == 6 and "does not hold" in absent.stderr
    bad = cli("decisions", "why", decision.id, 'decisio("l1", "approve")', "--store", store)
    assert bad.returncode == 1 and "E200" in bad.stderr
    why_not = cli("decisions", "why-not", decision.id, 'decision("l1", "approve")', "--store", store)
    assert why_not.returncode == 0 and "not risk(l, _)" in why_not.stdout
    missing = cli("decisions", "show", "nope", "--store", store)
    assert missing.returncode == 1 and "E947" in missing.stderr
    nothing = cli("decisions", "list", "--store", f"sqlite:///{tmp_path / 'none.db'}")
    assert nothing.returncode == 1 and "E941" in nothing.stderr and not (tmp_path / "none.db").exists()
    pruned = cli("decisions", "prune", "--keep-days", "1", "--store", store)
    assert pruned.returncode == 0 and "deleted 0 decisions" in pruned.stdout


# ---------------------------------------------------------------- retries: Idempotency-Key

def _metric(client: httpx.Client, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


def test_a_retry_with_its_idempotency_key_answers_the_stored_decision(client: httpx.Client) -> None:
    """A client that lost the answer to a POST sends it again with the same Idempotency-Key: it gets
    the decision made the first time, byte for byte (Idempotent-Replayed: true), and no second decision
    is made or stored; the same request in another layout or key order is the same request."""
    key = "retry-" + uuid.uuid4().hex
    body = {"facts": request_facts(3), "relations": ["decision"]}
    first = client.post("/v1/decisions", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 200, first.text
    assert "idempotent-replayed" not in first.headers
    replays = _metric(client, "converge_idempotent_replays_total")
    stored = len(client.get("/v1/decisions?limit=1000").json()["decisions"])
    again = client.post("/v1/decisions", content=json.dumps({"relations": ["decision"], "facts": request_facts(3)},
                                                            indent=3).encode(),
                        headers={"Idempotency-Key": key, "Content-Type": "application/json"})
    assert again.status_code == 200 and again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert _metric(client, "converge_idempotent_replays_total") == replays + 1
    assert len(client.get("/v1/decisions?limit=1000").json()["decisions"]) == stored
    # without the key the same request is a new decision
    fresh = client.post("/v1/decisions", json=body)
    assert fresh.status_code == 200 and fresh.json()["decision_id"] != first.json()["decision_id"]


def test_an_idempotency_key_reused_for_another_request_is_422(client: httpx.Client) -> None:
    key = "reuse-" + uuid.uuid4().hex
    first = client.post("/v1/decisions", json={"facts": request_facts(4)}, headers={"Idempotency-Key": key})
    assert first.status_code == 200
    other = client.post("/v1/decisions", json={"facts": request_facts(5)}, headers={"Idempotency-Key": key})
    assert other.status_code == 422, other.text
    error = other.json()["error"]
    assert error["code"] == "E955" and first.json()["decision_id"] in error["message"]
    post = client.get("/openapi.json").json()["paths"]["/v1/decisions"]["post"]
    assert "422" in post["responses"] and [p["name"] for p in post["parameters"]] == ["Idempotency-Key"]


@pytest.mark.parametrize("headers", [
    [("Idempotency-Key", "")], [("Idempotency-Key", "k" * 256)],
    [("Idempotency-Key", "caf\u00e9")], [("Idempotency-Key", "a\tb")], [("Idempotency-Key", "a"), ("Idempotency-Key", "b")],
], ids=["empty", "too-long", "not-ascii", "control", "twice"])
def test_a_bad_idempotency_key_is_400_E954_and_decides_nothing(client: httpx.Client, headers: list) -> None:
    stored = len(client.get("/v1/decisions?limit=1000").json()["decisions"])
    r = client.post("/v1/decisions", json={"facts": request_facts(6)},
                    headers=[(k.encode(), v.encode("latin-1")) for k, v in headers])
    assert r.status_code == 400 and r.json()["error"]["code"] == "E954", r.text
    assert len(client.get("/v1/decisions?limit=1000").json()["decisions"]) == stored
    ok = client.post("/v1/decisions", json={"facts": request_facts(6)}, headers={"Idempotency-Key": "k" * 255})
    assert ok.status_code == 200, ok.text  # 255 characters is a key (the same request each time: replayed)


def test_concurrent_retries_under_one_key_make_one_decision(tmp_path: Path) -> None:
    """Eight clients send the same request with the same key at once (a retry storm): one decision
    is made and stored, and every client gets it."""
    for store in (f"sqlite:///{tmp_path / 'd.db'}", None):
        if store is None:
            schema = "f2_idem_" + uuid.uuid4().hex[:8]
            store = postgres_url(schema)
        srv = Server([LOANS], store).start()
        try:
            body = {"facts": request_facts(7)}
            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(lambda _: httpx.post(srv.url + "/v1/decisions", json=body, timeout=60,
                                                             headers={"Idempotency-Key": "storm"}), range(16)))
            assert {a.status_code for a in answers} == {200}
            assert len({a.json()["decision_id"] for a in answers}) == 1 and len({a.content for a in answers}) == 1
            assert len(httpx.get(srv.url + "/v1/decisions").json()["decisions"]) == 1
        finally:
            srv.stop()
            if store.startswith("postgresql"):
                drop_schema(store)


def test_overload_is_503_E956_with_retry_after_not_an_unbounded_line(tmp_path: Path) -> None:
    """With --concurrency 1 --max-queue 1, one decision runs, one waits, and the rest are refused at
    once (503 E956, Retry-After) without their bodies being read; once the line clears, requests are
    served again. Before, every request waited, each holding its body: memory grew with the load."""
    rules = tmp_path / "slow.cvg"  # every decision runs until the server's --timeout stops it
    rules.write_text("budget { max_cycles = 100000000 }\nrelation n(x: int)\nn(0).\nn(x + 1) :- n(x), x < 100000000.\n")
    srv = Server([str(rules)], f"sqlite:///{tmp_path / 'd.db'}", "--timeout", "1.5", "--max-bytes", "100000000",
                 "--concurrency", "1", "--max-queue", "1").start()
    try:
        def post(_: int) -> httpx.Response:
            return httpx.post(srv.url + "/v1/decisions", json={"relations": []}, timeout=60)

        first = ThreadPoolExecutor(1).submit(post, 0)
        wait_for(lambda: "converge_decision_requests_in_flight 1.0" in httpx.get(srv.url + "/metrics").text,
                 "the first decision to start")
        with ThreadPoolExecutor(4) as pool:
            rest = list(pool.map(post, range(4)))
        answers = [first.result()] + rest
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200, 200, 503, 503, 503], [a.text for a in answers]
        for busy in (a for a in answers if a.status_code == 503):
            assert busy.json()["error"]["code"] == "E956" and busy.headers["retry-after"] == "1"
            assert "--max-queue 1" in busy.json()["error"]["message"]
        metrics = httpx.get(srv.url + "/metrics").text
        assert 'converge_errors_total{kind="busy"} 3.0' in metrics
        assert "converge_decision_requests_in_flight 0.0" in metrics
        assert post(0).status_code == 200  # the line is clear again
    finally:
        srv.stop()
    out = cli("serve", str(rules), "--max-queue", "-1", "--store", f"sqlite:///{tmp_path / 'e.db'}")
    assert out.returncode == 2 and "--max-queue" in out.stderr
    from converge_rules.service import ServiceConfig, create_app
    from converge_rules.store import open_store

    with open_store(f"sqlite:///{tmp_path / 'f.db'}") as store:
        with pytest.raises(ValueError, match="max_queue"):
            create_app(cr.Session([str(rules)]), store, ServiceConfig(max_queue=-1))


def test_decisions_show_finds_a_decision_by_its_idempotency_key(tmp_path: Path) -> None:
    from converge_rules.service import request_hash, store_decision
    from converge_rules.store import open_store

    store = f"sqlite:///{tmp_path / 'd.db'}"
    session = cr.Session([LOANS])
    with open_store(store) as s:
        decision = session.decide(LOANS_FACTS)
        row = store_decision(s, decision, idempotency_key="order-9", request={"facts": LOANS_FACTS})
        assert row.request_sha256 == request_hash({"facts": LOANS_FACTS}) and s.get_by_key("order-9") == row
    shown = cli("decisions", "show", "--idempotency-key", "order-9", "--store", store)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == decision.response()
    missing = cli("decisions", "show", "--idempotency-key", "order-10", "--store", store)
    assert missing.returncode == 1 and "E947" in missing.stderr and "idempotency key" in missing.stderr
    for args in ([], [decision.id, "--idempotency-key", "order-9"]):
        usage = cli("decisions", "show", *args, "--store", store)
        assert usage.returncode == 2 and "one of them" in usage.stderr


def test_serve_refuses_invalid_rules_and_stores(tmp_path: Path) -> None:
    bad = tmp_path / "bad.cvg"
    bad.write_text("relation p(x: int)\np(x) :- q(x).\n")
    out = cli("serve", str(bad), "--store", f"sqlite:///{tmp_path / 'd.db'}", "--port", str(free_port()))
    assert out.returncode == 1 and "error[E200]" in out.stderr and "Traceback" not in out.stderr
    out = cli("serve", LOANS, "--store", "mysql://x", "--port", str(free_port()))
    assert out.returncode == 1 and "E940" in out.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        out = cli("serve", LOANS, "--store", f"sqlite:///{tmp_path / 'd.db'}", "--port", str(busy.getsockname()[1]))
    assert out.returncode == 1 and "cannot listen on 127.0.0.1:" in out.stderr and "address already in use" in out.stderr
    out = cli("serve", LOANS, "--store", f"sqlite:///{tmp_path}/no/such/../../d.db", "--token-file",
              str(tmp_path / "missing"))
    assert out.returncode == 2 and "--token-file" in out.stderr


def test_a_failing_store_means_503_and_no_acknowledgement() -> None:
    import asyncio

    from converge_rules.service import create_app
    from converge_rules.store.base import StoreError

    class Broken:
        url = "broken://"

        def put(self, row: Any) -> None:
            raise StoreError("E941", "disk full")

        def ping(self) -> bool:
            return False

        def get(self, decision_id: str) -> None:
            raise StoreError("E941", "disk full")

    app = create_app(cr.Session([LOANS]), Broken())  # type: ignore[arg-type]

    async def scenario() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
            r = await c.post("/v1/decisions", json={"facts": LOANS_FACTS})
            assert r.status_code == 503 and r.json()["error"]["code"] == "E941" and "not acknowledged" in r.text
            assert (await c.get("/ready")).status_code == 503
            assert (await c.get("/v1/decisions/x")).status_code == 503
            metrics = (await c.get("/metrics")).text
            assert 'converge_errors_total{kind="store"} 2.0' in metrics
            assert 'converge_decisions_total{tier="converged"} 0.0' in metrics

    asyncio.run(scenario())


def test_serve_with_tools_records_their_results_and_explains_from_them(tmp_path: Path) -> None:
    scoring = str(ROOT / "examples" / "scoring" / "scoring.cvg")
    facts = json.loads((ROOT / "examples" / "scoring" / "facts.json").read_text())
    out = cli("serve", scoring, "--store", f"sqlite:///{tmp_path / 'x.db'}", "--port", str(free_port()))
    assert out.returncode == 1 and "E220" in out.stderr and "credit_score" in out.stderr  # no tool given
    srv = Server([scoring], f"sqlite:///{tmp_path / 'd.db'}", "--tools", "examples.scoring.tools:RELIABLE").start()
    try:
        body = httpx.post(srv.url + "/v1/decisions", json={"facts": facts}, timeout=60).json()
        assert body["tier"] == "converged" and ["a1", 720] in body["facts"]["score"]
        why = httpx.get(srv.url + f"/v1/decisions/{body['decision_id']}/why", params={"fact": 'score("a1", 720)'}).json()
        assert why["holds"] and "credit_score" in why["text"] and "720" in why["text"]
    finally:
        srv.stop()
    assert json.loads(cli("decisions", "show", body["decision_id"], "--record", "--store",
                          f"sqlite:///{tmp_path / 'd.db'}").stdout)["tools"]


@pytest.mark.skipif(os.name != "posix", reason="file modes")
def test_serve_seals_records_with_the_record_key(tmp_path: Path) -> None:
    from converge_rules.record import Record, open_record

    key = tmp_path / "record.key"
    key.write_bytes(b"serve-secret-0123456789abcdef\n")
    key.chmod(0o600)
    session = cr.Session([LOANS], record_key=b"serve-secret-0123456789abcdef")
    decision = session.decide(LOANS_FACTS)
    assert decision.record.to_json().startswith('{"format":"converge-record/1","seal":"hmac-sha256:')
    srv = Server([LOANS], f"sqlite:///{tmp_path / 'd.db'}", "--record-key", str(key)).start()
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            made = c.post("/v1/decisions", json={"facts": LOANS_FACTS})
            assert made.status_code == 200
            text = c.get(f"/v1/decisions/{made.json()['decision_id']}/record").text
            assert "serve-secret" not in text and c.get(
                f"/v1/decisions/{made.json()['decision_id']}/why", params={"fact": 'decision("l1", "reject")'}).status_code == 200
    finally:
        out = srv.stop()
    assert "serve-secret" not in out
    (tmp_path / "r.json").write_text(text)
    assert Record.from_json(text).seal_kind == "hmac-sha256"
    assert open_record(str(tmp_path / "r.json"), key=b"serve-secret-0123456789abcdef").verify().ok
    assert not open_record(str(tmp_path / "r.json"), key=b"another-secret-0123456789abcdef").verify().ok
    key.chmod(0o644)
    refused = cli("serve", LOANS, "--store", f"sqlite:///{tmp_path / 'd.db'}", "--port", str(free_port()),
                  "--record-key", str(key))
    assert refused.returncode == 1 and "E615" in refused.stderr and "serve-secret" not in refused.stderr + refused.stdout


def test_serve_timeout_caps_every_decision(tmp_path: Path) -> None:
    """--timeout caps each decision's wall-clock time: a runaway decision stops (bounded, reason
    timeout), is stored and answered; a client asking for a longer timeout gets the server's."""
    rules = tmp_path / "count.cvg"
    rules.write_text("budget { max_cycles = 100000000 }\nrelation n(x: int)\nn(0).\nn(x + 1) :- n(x), x < 100000000.\n")
    assert cr.Session([str(rules)], budget=cr.Budget(timeout=0.5)).cap(cr.Budget(timeout=60)).timeout == 0.5
    srv = Server([str(rules)], f"sqlite:///{tmp_path / 'd.db'}", "--timeout", "0.5", "--max-bytes", "100000000").start()
    try:
        started = time.monotonic()
        r = httpx.post(srv.url + "/v1/decisions", json={"budget": {"timeout": 60}, "relations": []}, timeout=60)
        elapsed = time.monotonic() - started
        body = r.json()
        assert r.status_code == 200 and body["tier"] == "bounded", body
        assert body["reasons"][0]["budget"] == "timeout" and body["reasons"][0]["limit"] == 0.5
        assert elapsed < 30
        assert httpx.get(srv.url + f"/v1/decisions/{body['decision_id']}").json() == body
    finally:
        srv.stop()


def _stalled_post(port: int, sent: bytes = b"{") -> socket.socket:
    """A client that sends a decision request's headers and the start of its body, then nothing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"POST /v1/decisions HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100\r\n\r\n" + sent)
    return sock


def _answer(sock: socket.socket) -> tuple[int, dict[str, str], Any]:
    """The status, headers and JSON body of the one answer on ``sock`` (read until it closes)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, json.loads(body)


def test_a_client_that_stalls_mid_body_is_408_E957_and_frees_its_place(tmp_path: Path) -> None:
    """A client that sends part of a body and then nothing held its place in line for ever: two of
    them on --concurrency 1 --max-queue 1 made every other decision 503 E956 until they hung up
    (a slow-client denial of service), and SIGTERM waited for them without end. Now a body not
    received within --body-timeout is answered 408 E957 and the connection closed."""
    srv = Server([LOANS], f"sqlite:///{tmp_path / 'd.db'}", "--concurrency", "1", "--max-queue", "1",
                 "--body-timeout", "1.5").start()
    try:
        stalled = [_stalled_post(srv.port) for _ in range(2)]
        wait_for(lambda: "converge_decision_requests_in_flight 2.0" in httpx.get(srv.url + "/metrics").text,
                 "both stalled requests to be admitted")
        busy = httpx.post(srv.url + "/v1/decisions", json={"facts": LOANS_FACTS}, timeout=30)
        assert busy.status_code == 503 and busy.json()["error"]["code"] == "E956"
        started = time.monotonic()
        for sock in stalled:
            status, headers, body = _answer(sock)
            sock.close()
            assert status == 408 and body["error"]["code"] == "E957", body
            assert "--body-timeout 1.5" in body["error"]["message"] and headers["connection"] == "close"
        assert time.monotonic() - started < 20
        ok = httpx.post(srv.url + "/v1/decisions", json={"facts": LOANS_FACTS}, timeout=30)
        assert ok.status_code == 200, ok.text
        metrics = httpx.get(srv.url + "/metrics").text
        assert 'converge_errors_total{kind="timeout"} 2.0' in metrics
        assert "converge_decision_requests_in_flight 0.0" in metrics
        # SIGTERM while a client stalls mid-body: the service stops once that body's time is up
        last = _stalled_post(srv.port)
        wait_for(lambda: "converge_decision_requests_in_flight 1.0" in httpx.get(srv.url + "/metrics").text,
                 "the stalled request to be admitted")
        assert srv.proc is not None
        srv.proc.terminate()
        srv.proc.wait(30)
        assert _answer(last)[0] == 408
        last.close()
    finally:
        out = srv.stop()
    assert "Traceback" not in out, out
    out = cli("serve", LOANS, "--body-timeout", "0", "--store", f"sqlite:///{tmp_path / 'e.db'}")
    assert out.returncode == 2 and "--body-timeout" in out.stderr
    from converge_rules.service import ServiceConfig, create_app
    from converge_rules.store import open_store

    with open_store(f"sqlite:///{tmp_path / 'f.db'}") as store:
        for bad in (0.0, -1.0, float("nan"), float("inf")):
            with pytest.raises(ValueError, match="body_timeout"):
                create_app(cr.Session([LOANS]), store, ServiceConfig(body_timeout=bad))


def test_a_client_that_hangs_up_mid_body_is_no_internal_error(tmp_path: Path) -> None:
    """A client that closed its connection before sending the whole body was an "Exception in ASGI
    application" traceback in the service's log and counted as an internal error (a bug in converge)."""
    srv = Server([LOANS], f"sqlite:///{tmp_path / 'd.db'}").start()
    try:
        for _ in range(3):
            sock = _stalled_post(srv.port, b'{"facts": ')
            wait_for(lambda: "converge_decision_requests_in_flight 1.0" in httpx.get(srv.url + "/metrics").text,
                     "the request to be admitted")
            sock.close()
            wait_for(lambda: "converge_decision_requests_in_flight 0.0" in httpx.get(srv.url + "/metrics").text,
                     "the request to end")
        metrics = httpx.get(srv.url + "/metrics").text
        assert 'kind="internal"' not in metrics, metrics
        assert 'converge_errors_total{kind="disconnected"} 3.0' in metrics
        assert httpx.post(srv.url + "/v1/decisions", json={"facts": LOANS_FACTS}, timeout=30).status_code == 200
    finally:
        out = srv.stop()
    assert "Traceback" not in out and "Exception in ASGI application" not in out, out


def test_exit_status_after_sigint_and_sigterm_is_the_documented_one(tmp_path: Path) -> None:
    """docs/service.md: the requests in flight are answered, then Ctrl-C (SIGINT) exits 0 and
    SIGTERM ends the process by that signal (143 in a shell), as uvicorn re-raises it."""
    import signal as signals

    def default_dispositions() -> None:  # as under a terminal or a supervisor, not a background job
        signals.signal(signals.SIGINT, signals.SIG_DFL)
        signals.signal(signals.SIGTERM, signals.SIG_DFL)

    for sig, status in ((signals.SIGINT, 0), (signals.SIGTERM, -signals.SIGTERM)):
        srv = Server([LOANS], f"sqlite:///{tmp_path / 'd.db'}")
        srv.port = free_port()
        srv.proc = subprocess.Popen(srv.args + ["--port", str(srv.port)], cwd=srv.cwd, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, preexec_fn=default_dispositions,
                                    env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            wait_for(lambda: _healthy(srv), "the service to start", 60)
            assert httpx.post(srv.url + "/v1/decisions", json={"facts": LOANS_FACTS}, timeout=30).status_code == 200
            srv.proc.send_signal(sig)
            assert srv.proc.wait(30) == status
        finally:
            out = srv.stop()
        assert "Traceback" not in out and "Shutting down" in out, out


def _healthy(srv: Server) -> bool:
    try:
        return httpx.get(srv.url + "/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_decision_with_a_budget_of_any_size_has_a_report(client: httpx.Client, tmp_path: Path) -> None:
    """A request may ask for a budget of any size (an int column takes any size too): the decision
    was stored and explained, but its report was 500 E999 (ValueError: Exceeds the limit (4300
    digits)) and `converge report --record` of its record exited 70: the report wrote the limit
    with str()."""
    huge = 10 ** 5000 - 1
    decision = cr.Session([LOANS]).decide(LOANS_FACTS, {"max_steps": huge})
    assert "9" * 5000 in decision.record.report_html()
    body = '{"facts": {"loan": [["l1", "a1", 6000]]}, "budget": {"max_steps": ' + "9" * 5000 + "}}"
    made = client.post("/v1/decisions", content=body.encode())
    assert made.status_code == 200, made.text
    report = client.get(f"/v1/decisions/{made.json()['decision_id']}/report")
    assert report.status_code == 200 and "9" * 5000 in report.text, report.text[:300]
    record = tmp_path / "r.json"
    record.write_text(client.get(f"/v1/decisions/{made.json()['decision_id']}/record").text)
    out = cli("report", "--record", str(record), "-o", str(tmp_path / "r.html"))
    assert out.returncode == 0 and "internal error" not in out.stderr, out.stderr
    assert "9" * 5000 in (tmp_path / "r.html").read_text()


def test_rule_set_updates_are_taken_one_at_a_time(tmp_path: Path) -> None:
    """Every PUT /v1/ruleset held its body (up to --max-body) and then a compilation of it, some
    hundred times its size (a 6 MiB rule file: about 2 GB), and any number ran at once: four such
    updates sent together took 7.5 GB and counting. One is taken at a time now; another sent
    meanwhile is 503 E956 (Retry-After) before its body is read, and the old rules stay."""
    srv = Server([LOANS], f"sqlite:///{tmp_path / 'd.db'}", "--body-timeout", "2").start()
    try:
        before = httpx.get(srv.url + "/v1/ruleset").json()["digest"]
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        sock.sendall(b"PUT /v1/ruleset HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"files\": ")  # an update still arriving
        new = {"files": {"strict.cvg": STRICT}}

        def busy() -> bool:
            answer = httpx.put(srv.url + "/v1/ruleset", json=new, timeout=30)
            if answer.status_code == 200:
                raise AssertionError("a second update was taken while the first was still arriving")
            return answer.status_code == 503 and answer.json()["error"]["code"] == "E956" \
                and answer.headers["retry-after"] == "1" and "rule set update" in answer.text

        wait_for(busy, "the second update to be refused", 20)
        assert httpx.get(srv.url + "/v1/ruleset").json()["digest"] == before
        status, _, body = _answer(sock)  # the first one's body never came: 408, and its place is free
        sock.close()
        assert status == 408 and body["error"]["code"] == "E957"
        done = httpx.put(srv.url + "/v1/ruleset", json=new, timeout=60)
        assert done.status_code == 200 and done.json()["digest"] != before, done.text
        assert 'converge_errors_total{kind="busy"}' in httpx.get(srv.url + "/metrics").text
    finally:
        srv.stop()


def test_a_rule_file_name_with_a_line_break_cannot_forge_lines_of_an_explanation(tmp_path: Path) -> None:
    """PUT /v1/ruleset takes any file name, and explanations quote it ("decision#1 at NAME:38"): a
    name with a line break started a line of its own in `converge decisions why`/`why-not` and the
    service's text answers, so a name could forge lines of a proof. It is written on one line (as
    diagnostics write file names), the break as \\n."""
    from converge_rules.service import store_decision
    from converge_rules.store import open_store

    name = "rules.cvg:1, cycle 1]\n└── forged(\"x\")  [input\n.cvg"
    session = cr.Session(sources=[(name, Path(LOANS).read_text())])
    decision = session.decide({"loan": [["l1", "a1", 5]]})
    why = decision.record.why_text('decision("l1", "approve")')
    why_not = decision.record.why_not_text('decision("l1", "reject")')
    for text in (why, why_not):
        assert "\n└── forged" not in text and "\\n└── forged" in text, text
    assert why.splitlines()[0].endswith("cycle 1]") and len(why.splitlines()) == 4, why
    store = f"sqlite:///{tmp_path / 'd.db'}"
    with open_store(store) as s:
        store_decision(s, decision)
    for args, fact in ((["why"], 'decision("l1", "approve")'), (["why-not"], 'decision("l1", "reject")')):
        out = cli("decisions", *args, decision.id, fact, "--store", store)
        assert out.returncode == 0 and "\n└── forged" not in out.stdout and "\\n└── forged" in out.stdout, out.stdout
