"""The Session layer under the decision service: the same engine and digests as `converge run`,
budgets capped by the server's, atomic rule set swaps, safe under threads."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

import converge_rules as cr
from converge_rules.session import budget_from_json

from test_serve import LOANS, LOANS_FACTS, STRICT, request_facts

SESSION = cr.Session([LOANS])
RULES = cr.load([LOANS])

ids = st.sampled_from(["a1", "a2", "a3", "b"])
books = st.fixed_dictionaries({
    "applicant": st.lists(st.tuples(ids, st.integers(0, 5000)), max_size=4, unique_by=lambda r: r[0]),
    "loan": st.lists(st.tuples(st.sampled_from(["l1", "l2", "l3", "l4"]), ids, st.integers(0, 40000)), max_size=5,
                     unique_by=lambda r: r[0]),
})


@given(books, st.randoms(use_true_random=False))
@settings(max_examples=40, deadline=None)
def test_decide_is_converge_run_whatever_the_row_order_or_shape(book: dict, rnd: object) -> None:
    facts = {k: [list(r) for r in v] for k, v in book.items()}
    decision = SESSION.decide(facts)
    expected = RULES.run(facts)
    assert decision.result.digest == expected.digest
    assert decision.response()["facts"]["decision"] == [list(f) for f in expected.facts("decision")]
    shuffled = {k: list(v) for k, v in facts.items()}
    for rows in shuffled.values():
        rnd.shuffle(rows)  # type: ignore[attr-defined]
    objects = {"applicant": [{"id": a, "income": i} for a, i in shuffled["applicant"]],
               "loan": [{"id": l, "applicant": a, "amount": m} for l, a, m in shuffled["loan"]]}
    assert SESSION.decide(objects).result.digest == expected.digest
    assert decision.record.digest == expected.digest and decision.record.ruleset_digest == SESSION.rules.digest


limits = st.one_of(st.none(), st.integers(0, 10**6))


@given(limits, limits, limits, limits, st.one_of(st.none(), st.floats(0, 1)), st.one_of(st.none(), st.floats(0, 1)))
@settings(max_examples=200, deadline=None)
def test_a_client_budget_never_exceeds_the_server_budget(s_cycles: int | None, c_cycles: int | None,
                                                         s_steps: int | None, c_steps: int | None,
                                                         s_conf: float | None, c_conf: float | None) -> None:
    session = cr.Session.__new__(cr.Session)  # the cap needs only the budgets and the rule set
    session.budget = cr.Budget(max_cycles=s_cycles, max_steps=s_steps, min_confidence=s_conf)
    session._rules = SESSION.rules
    capped = session.cap(cr.Budget(max_cycles=c_cycles, max_steps=c_steps, min_confidence=c_conf))
    server = session.budget.merged_over(SESSION.rules.ruleset.program.budget)
    assert capped.max_cycles is not None and capped.max_cycles <= server.max_cycles
    if c_cycles is not None:
        assert capped.max_cycles <= c_cycles
    if server.max_steps is not None:
        assert capped.max_steps is not None and capped.max_steps <= server.max_steps
    if c_steps is not None:
        assert capped.max_steps is not None and capped.max_steps <= c_steps
    for floor in (s_conf, c_conf):
        if floor is not None:
            assert capped.min_confidence is not None and capped.min_confidence >= floor


def test_budget_json_is_checked() -> None:
    assert budget_from_json({"max_cycles": 3, "min_confidence": 0.5}) == cr.Budget(max_cycles=3, min_confidence=0.5)
    for bad in ({"max_cycles": "3"}, {"max_cycles": True}, {"min_confidence": 2}, {"max_agents_per_cycle": 0},
                {"cycles": 1}, [1]):
        with pytest.raises(cr.ConvergeError) as err:
            budget_from_json(bad)
        assert err.value.diagnostics[0].code == "E944"


def test_goals_and_relations_are_checked() -> None:
    with pytest.raises(cr.ConvergeError) as err:
        SESSION.decide(LOANS_FACTS, goals=["nope"])
    assert err.value.diagnostics[0].code == "E200" and "at goals[0]" in err.value.diagnostics[0].notes
    decision = SESSION.decide(LOANS_FACTS, relations=["decision", "decision"])
    assert list(decision.response()["facts"]) == ["decision"]
    for label in ("goals", "relations"):  # an object's keys are no list of names (it used to pass as one)
        with pytest.raises(cr.ConvergeError) as err:
            SESSION.decide(LOANS_FACTS, **{label: {"decision": 1}})
        assert err.value.diagnostics[0].code == "E944" and f"{label} must be a list" in err.value.diagnostics[0].message


def test_facts_diagnostics_point_into_the_request_text() -> None:
    text = '{"facts": {"loan": [["l1", "a1", 5, 6]]}}'
    with pytest.raises(cr.ConvergeError) as err:
        SESSION.decide({"loan": [["l1", "a1", 5, 6]]}, source_text=text)
    d = err.value.diagnostics[0]
    assert d.code == "E504" and (d.span.file, d.span.line, d.span.col) == ("<request>", 1, 21)


def test_swap_checks_first_and_keeps_the_old_rule_set() -> None:
    session = cr.Session([LOANS])
    old = session.rules
    with pytest.raises(cr.ConvergeError) as err:
        session.swap([("bad.cvg", "relation p(x: int)\np(x) :- q(x).\n")])
    assert err.value.diagnostics[0].code == "E200" and session.rules is old
    with pytest.raises(cr.ConvergeError) as err:
        session.swap([("tool.cvg", "relation p(x: int)\nrelation q(x: int)\nq(y) :- p(x), y = @score(x).\n")])
    assert err.value.diagnostics[0].code == "E220" and session.rules is old
    with pytest.raises(cr.ConvergeError) as err:
        session.swap([("strict.cvg", STRICT)], roots=[])
    assert err.value.diagnostics[0].code == "E945" and session.rules is old
    new = session.swap([("strict.cvg", STRICT)])
    assert session.rules is new and new.digest != old.digest and new.files[0].path == "strict.cvg"
    assert session.reload().digest == old.digest


def test_decisions_and_swaps_from_many_threads(tmp_path: Path) -> None:
    strict = tmp_path / "strict.cvg"
    strict.write_text(STRICT)
    strict_digest = cr.Session(sources=[("strict.cvg", STRICT)]).rules.digest
    session = cr.Session([LOANS])
    seen: list[tuple[int, object]] = []
    lock = threading.Lock()

    def decide(worker: int) -> None:
        for k in range(worker * 100, worker * 100 + 12):
            d = session.decide(request_facts(k))
            with lock:
                seen.append((k, d))

    def swap() -> None:
        for i in range(6):
            session.swap([("strict.cvg", STRICT)]) if i % 2 == 0 else session.reload()

    threads = [threading.Thread(target=decide, args=(w,)) for w in range(6)] + [threading.Thread(target=swap)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    strict_rules = cr.load([str(strict)])
    assert len(seen) == 72 and len({d.id for _, d in seen}) == 72  # type: ignore[attr-defined]
    for k, d in seen:
        rules = RULES if d.ruleset_digest == RULES.digest else strict_rules  # type: ignore[attr-defined]
        assert d.ruleset_digest in (RULES.digest, strict_digest)  # type: ignore[attr-defined]
        assert d.result.digest == rules.run(request_facts(k)).digest  # type: ignore[attr-defined]


def test_swapped_rules_come_from_the_texts_alone() -> None:
    session = cr.Session([LOANS])
    main = 'import "./lib.cvg" as lib\nrelation seen(x: str)\nseen(x) :- lib.item(x).\n'
    lib = 'module lib\nrelation item(x: str)\nitem("one").\n'
    with pytest.raises(cr.ConvergeError) as err:  # never read from disk, even when such a file exists
        session.swap([("main.cvg", main)])
    assert err.value.diagnostics[0].code == "E110"
    loaded = session.swap([("main.cvg", main), ("lib.cvg", lib)], roots=["main.cvg"])
    assert [f.path for f in loaded.files] == ["lib.cvg", "main.cvg"]
    assert session.decide({}).response()["facts"]["seen"] == [["one"]]
    with pytest.raises(cr.ConvergeError) as err:
        session.swap([("main.cvg", main)], roots=["nope.cvg"])
    assert err.value.diagnostics[0].code == "E945"


@pytest.mark.parametrize("settings, name", [
    ({"tool_timeout": float("inf")}, "tool_timeout"), ({"tool_timeout": float("nan")}, "tool_timeout"),
    ({"tool_timeout": 0}, "tool_timeout"), ({"tool_timeout": -1.0}, "tool_timeout"),
    ({"tool_timeout": "5"}, "tool_timeout"), ({"tool_timeout": True}, "tool_timeout"),
    ({"workers": 1.5}, "workers"), ({"workers": "4"}, "workers"),
    ({"on_failure": "sometimes"}, "on_failure"), ({"on_failure": 3}, "on_failure"),
    ({"budget": {"max_cycles": 3}}, "budget")])
def test_a_session_refuses_a_setting_every_decision_would_fail_on(settings: dict, name: str) -> None:
    """Session(tool_timeout=float('inf')) (or nan, 0, a string; a bad workers, on_failure or budget) was
    accepted, and then every decision failed on it (ValueError, OverflowError waiting for a tool,
    AttributeError) -- in a service, a 500 for every request. Refused when the session is made."""
    rules = [("t.cvg", "relation p(x: int)\nrelation q(x: int)\nq(y) :- p(x), y = @score(x).\n")]
    with pytest.raises(ValueError) as err:
        cr.Session(sources=rules, tools={"score": lambda x: 2 * x}, **settings)
    assert name in str(err.value)
    for fine in ({"tool_timeout": None}, {"tool_timeout": 0.5}, {"tool_timeout": 2}, {"workers": 0},
                 {"on_failure": "retry 2 then skip"}, {"budget": cr.Budget(max_cycles=3)}):
        session = cr.Session(sources=rules, tools={"score": lambda x: 2 * x}, **fine)
        assert session.decide({"p": [[1]]}).result.facts("q") == [(2,)]


def test_serve_refuses_an_infinite_tool_timeout_as_a_usage_error(tmp_path: Path) -> None:
    """`converge serve --tool-timeout inf` started (NaN was already refused), then each decision that waited
    for a tool failed; now it is a usage error (exit 2) naming the option, like nan."""
    import os
    import subprocess
    import sys

    from test_serve import ROOT, free_port

    for value in ("inf", "-inf", "nan", "0"):
        out = subprocess.run([sys.executable, "-m", "converge_rules", "serve", LOANS, "--tool-timeout", value, "--store",
                              f"sqlite:///{tmp_path / 'd.db'}", "--port", str(free_port())], cwd=ROOT, capture_output=True,
                             text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)  # started: a failure
        assert out.returncode == 2 and "--tool-timeout" in out.stderr and "internal error" not in out.stderr, out.stderr
    assert not (tmp_path / "d.db").exists()
