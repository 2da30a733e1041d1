"""why-not: explanations of absent facts (API and `converge why-not`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import converge_rules as cr
from converge_rules.diagnostics import ConvergeError
from converge_rules.explain.whynot import WhyNot, render_json, render_text, why_not

ROOT = Path(__file__).resolve().parent.parent
LOANS = "examples/loans/loans.cvg"
LOAN_FACTS = "examples/loans/facts.json"
GRAPH = "examples/graph/graph.cvg"
GRAPH_FACTS = "examples/graph/facts"


@pytest.fixture(scope="module")
def loans() -> cr.Result:
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        return cr.load([LOANS]).run(fact_files=[LOAN_FACTS])
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def graph() -> cr.Result:
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        return cr.load([GRAPH]).run(fact_files=[GRAPH_FACTS])
    finally:
        os.chdir(cwd)


def _attempt(w: WhyNot, agent: str):  # type: ignore[no-untyped-def]
    found = [a for a in w.attempts if a.agent == agent]
    assert found, f"no attempt for {agent}: {[a.agent for a in w.attempts]}"
    return found[0]


# ------------------------------------------------------------------ API

def test_missing_approval_is_explained_by_the_blocking_risk_proof(loans: cr.Result) -> None:
    w = why_not(loans, "decision", ("l1", "approve"))
    assert w.status == "explained" and not w.holds
    a = _attempt(w, "decision#1")
    assert (a.satisfied, a.total, a.blocking, a.outcome) == (1, 2, 1, "blocked")
    assert a.blocking_text == 'not risk("l1", _)'
    assert [s.status for s in a.steps] == ["satisfied", "blocked"]
    m = a.shown[0]
    assert m.bindings == {"l": "l1"}
    assert m.facts == ['loan("l1", "a1", 6000)']
    assert m.blocker == 'risk("l1", "amount above 5x income")'
    assert m.blocker_proof is not None and m.blocker_proof.proof.agent == "flag_high_risk"
    # decision#2 writes decision too, but its head has "reject"
    assert [x.agent for x in w.mismatches] == ["decision#2"]
    text = render_text(w)
    assert "✗ 2. not risk(l, _)" in text
    assert "proof of risk(\"l1\", \"amount above 5x income\"):" in text
    assert "6000 > 5 * 1000  ✓ holds" in text


def test_text_form_and_tuple_form_agree(loans: cr.Result) -> None:
    assert render_text(why_not(loans, 'decision("l1", "approve")')) == render_text(why_not(loans, "decision", ["l1", "approve"]))


def test_a_fact_that_holds_says_so_with_its_proof(loans: cr.Result) -> None:
    w = why_not(loans, 'decision("l1", "reject")')
    assert w.holds and w.status == "holds"
    assert w.proof is not None and w.proof.proof.agent == "decision#2"
    assert render_text(w).startswith('decision("l1", "reject") holds\n')


def test_input_relation(loans: cr.Result) -> None:
    w = why_not(loans, 'loan("l9", "a1", 5)')
    assert w.status == "input"
    assert w.message == 'loan("l9", "a1", 5) does not hold: loan is an input relation and no such input fact was given'
    assert w.attempts == []


def test_no_head_unifies(loans: cr.Result) -> None:
    w = why_not(loans, 'decision("l1", "maybe")')
    assert w.status == "no_unifying_agent"
    assert [m.agent for m in w.mismatches] == ["decision#1", "decision#2"]
    assert 'has "approve" in column 2, the fact "maybe"' in w.mismatches[0].reason


def test_datalog_example_names_failing_literal_and_bindings(graph: cr.Result) -> None:
    w = why_not(graph, 'path("d", "a")')
    one, two = _attempt(w, "path#1"), _attempt(w, "path#2")
    assert one.blocking_text == 'edge("d", "a")'
    assert one.shown[0].reason == 'no fact matches edge("d", "a") (edge is an input relation)'
    assert two.head_bindings == {"x": "d", "z": "a"}
    assert two.satisfied == 0 and two.blocking == 0
    assert two.shown[0].reason == 'no fact matches path("d", _)'


def test_comparison_that_fails_is_shown_with_values(loans: cr.Result) -> None:
    w = why_not(loans, "risk", ("l2", "amount above 5x income"))
    a = _attempt(w, "flag_high_risk")
    assert (a.satisfied, a.total) == (2, 3)
    assert a.shown[0].bindings == {"a": "a2", "amount": 5000, "income": 3000, "l": "l2"}
    assert a.shown[0].reason == "5000 > 5 * 3000 is false"


def test_depth_explains_a_missing_derived_premise(loans: cr.Result) -> None:
    shallow = why_not(loans, 'decision("l2", "reject")')
    assert _attempt(shallow, "decision#2").premises == []
    deep = why_not(loans, 'decision("l2", "reject")', depth=2)
    premises = _attempt(deep, "decision#2").premises
    assert [p.text for p in premises] == ['risk("l2", _)']
    risk = premises[0]
    assert {a.agent for a in risk.attempts} == {"flag_high_risk", "flag_overextended"}
    assert _attempt(risk, "flag_overextended").shown[0].reason == "9000 > 8 * 3000 is false"
    assert "why not risk(\"l2\", _):" in render_text(deep)


def test_recursion_stops_at_a_premise_explained_above(graph: cr.Result) -> None:
    w = why_not(graph, 'path("d", "a")', depth=5)
    inner = _attempt(w, "path#2").premises[0]
    assert inner.text == 'path("d", _)'
    again = _attempt(inner, "path#2").premises[0]
    assert again.status == "repeated"


def test_aggregate_value_is_reported(loans: cr.Result) -> None:
    w = why_not(loans, 'portfolio("a1", 2, 6000)')
    a = _attempt(w, "portfolio#1")
    assert a.blocking_text == '2 = count { loan(_, "a1", _) }'
    assert a.shown[0].reason == 'count { loan(_, "a1", _) } = 1, not 2'
    assert [s.status for s in a.steps] == ["satisfied", "blocked", "not reached"]


def test_pattern_with_unknown_columns(loans: cr.Result) -> None:
    w = why_not(loans, "risk", ("l2", None))
    assert w.text == 'risk("l2", _)' and w.status == "explained"
    assert why_not(loans, "risk", ("l1", None)).holds


def test_head_expression_checked_after_the_body() -> None:
    result = cr.load_text('relation n(x: int)\nn(0).\nn(x + 1) :- n(x), x < 3.\n').run()
    w = why_not(result, "n(10)")
    a = _attempt(w, "n#1")
    assert a.outcome == "head differs"
    assert a.head_notes == ["column 1 is computed as x + 1: checked once the body matches"]
    assert a.shown[0].reason == "the head computes x + 1 = 1, not 10"


def test_failed_run_fact_the_agent_would_derive() -> None:
    src = ('input relation p(x: int)\nrelation q(x: int)\nrelation r(x: int)\n'
           'q(x) :- p(x).\nr(x) :- q(x).\n'
           'invariant no_q { forbid q(x), x > 1 }\np(1). p(2).\n')
    result = cr.load_text(src).run()
    assert result.tier.value == "failed"
    w = why_not(result, "q(2)")
    a = _attempt(w, "q#1")
    assert a.outcome == "would derive"
    assert w.notes and w.notes[0].startswith("the run failed")


def test_superseded_fact_says_when() -> None:
    src = ('input relation edge(a: str, b: str, w: int)\n'
           'relation best(a: str, w: int) key(a) prefer min(w)\n'
           'best(a, w) :- edge(a, _, w).\nedge("x", "y", 5). edge("x", "z", 3).\n')
    try:
        result = cr.load_text(src).run()
    except ConvergeError as err:  # dominance keys not available in this build
        pytest.skip(str(err))
    if not hasattr(result, "superseded"):
        pytest.skip("Result.superseded not available")
    w = why_not(result, 'best("x", 5)')
    assert w.status == "superseded"
    assert "superseded in cycle 1 by best(\"x\", 3)" in w.message


def test_json_rendering(loans: cr.Result) -> None:
    data = json.loads(render_json(why_not(loans, 'decision("l1", "approve")')))
    assert data["holds"] is False and data["status"] == "explained"
    agent = data["agents"][0]
    assert agent["agent"] == "decision#1" and agent["blocking_literal"] == 'not risk("l1", _)'
    assert agent["literals"][1] == {"index": 1, "literal": "not risk(l, _)", "status": "blocked"}
    assert agent["shown"][0]["blocked_by"] == 'risk("l1", "amount above 5x income")'
    assert agent["shown"][0]["blocked_by_proof"]["agent"] == "flag_high_risk"
    assert data["other_agents"][0]["agent"] == "decision#2"


def test_bad_arguments(loans: cr.Result) -> None:
    with pytest.raises(KeyError):
        why_not(loans, "nope", ("a",))
    with pytest.raises(ValueError):
        why_not(loans, "decision", ("l1",))


# ------------------------------------------------------------------ CLI

def converge(*args: str, seed: str = "0") -> subprocess.CompletedProcess[str]:
    """`python -m converge_rules ...`; registers why-not for the run if cli.LAZY_COMMANDS lacks it."""
    from converge_rules import cli

    env = {**os.environ, "PYTHONHASHSEED": seed, "NO_COLOR": "1"}
    if "why-not" in cli.LAZY_COMMANDS:
        cmd = [sys.executable, "-m", "converge_rules", *args]
    else:
        code = ("import sys, converge_rules.cli as c; "
                "c.LAZY_COMMANDS['why-not'] = 'converge_rules.commands.whynot:why_not'; c.main(sys.argv[1:])")
        cmd = [sys.executable, "-c", code, *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)


def test_cli_text() -> None:
    out = converge("why-not", LOANS, "--facts", LOAN_FACTS, 'decision("l1", "approve")')
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith('decision("l1", "approve") does not hold (tier converged, 4 cycles); 1 agent could derive it\n')
    assert "rule decision#1 at examples/loans/loans.cvg:38" in out.stdout
    assert "proof of risk(\"l1\", \"amount above 5x income\"):" in out.stdout
    assert "[input, examples/loans/facts.json:10]" in out.stdout


def test_cli_is_deterministic_across_hash_seeds() -> None:
    args = ("why-not", LOANS, "--facts", LOAN_FACTS, 'decision("l2", "reject")', "--depth", "3")
    a, b = converge(*args, seed="1"), converge(*args, seed="12345")
    assert a.returncode == b.returncode == 0
    assert a.stdout == b.stdout
    assert 'why not risk("l2", _):' in a.stdout


def test_cli_json_and_holds() -> None:
    out = converge("why-not", GRAPH, "--facts", GRAPH_FACTS, 'unreachable("a")', "--format", "json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["agents"][0]["shown"][0]["blocked_by"] == 'reachable("a")'
    held = converge("why-not", GRAPH, "--facts", GRAPH_FACTS, 'reachable("a")')
    assert held.returncode == 0
    assert held.stdout.startswith('reachable("a") holds\n')


def test_cli_errors() -> None:
    bad_fact = converge("why-not", LOANS, "--facts", LOAN_FACTS, 'decision("l1")')
    assert bad_fact.returncode == 1
    assert "error[E300]" in bad_fact.stderr
    no_fact = converge("why-not", LOANS)
    assert no_fact.returncode == 2
    bad_depth = converge("why-not", LOANS, 'decision("l1", "x")', "--depth", "0")
    assert bad_depth.returncode == 2


# ------------------------------------------------------------------ agents that never ran

GOAL_SRC = ('input relation edge(a: str, b: str)\nrelation path(a: str, b: str)\nrelation big(a: str)\n'
            'relation bigger(a: str)\nrelation offer(a: str)\ngoal offer\n'
            'path(x, y) :- edge(x, y).\npath(x, z) :- path(x, y), edge(y, z).\n'
            'big(x) :- edge(x, _).\nbigger(x) :- big(x).\noffer(x) :- path(x, "c").\n'
            'edge("a", "b"). edge("b", "c").\n')


def test_a_pruned_agent_is_named_as_the_reason_not_the_tier() -> None:
    """An agent pruned for the goals never runs: why-not said it "derives the fact once it runs"
    (and, in a degraded run, blamed the tier) instead of saying it was pruned."""
    result = cr.load_text(GOAL_SRC).run()
    assert result.tier.value == "converged"
    assert result.pruned_agents == ["big#1", "bigger#1"] and result.goals == ["offer"]
    a = _attempt(why_not(result, 'big("a")'), "big#1")
    assert a.outcome == "would derive"
    assert a.not_run == "big#1 was pruned: it cannot contribute to the goal offer, so it never ran"
    assert a.summary.endswith("; it did not: big#1 was pruned: it cannot contribute to the goal offer, so it never ran")
    assert a.to_json()["not_run"] == a.not_run
    # bigger#1 is blocked on big, which is empty only because big#1 was pruned too: both are said
    b = _attempt(why_not(result, 'bigger("a")'), "bigger#1")
    assert b.outcome == "blocked" and b.not_run is not None and "bigger#1 was pruned" in b.not_run
    assert "  note: bigger#1 was pruned" in render_text(why_not(result, 'bigger("a")'))
    # an agent that did run says nothing of the kind
    assert _attempt(why_not(result, 'offer("c")'), "offer#1").not_run is None


def test_pruned_agent_from_the_cli_and_from_a_record(tmp_path: Path) -> None:
    rules = tmp_path / "g.cvg"
    rules.write_text(GOAL_SRC)
    out = converge("why-not", str(rules), 'big("a")')
    assert out.returncode == 0, out.stderr
    assert "it did not: big#1 was pruned: it cannot contribute to the goal offer, so it never ran" in out.stdout
    # the scoring example's run is degraded and large#1 is pruned by `goal offer`: the tier is not the reason
    ex = ("examples/scoring/scoring.cvg", "--facts", "examples/scoring/facts.json", "--tools", "examples.scoring.tools")
    out = converge("why-not", *ex, 'large("l3")')
    assert out.returncode == 0, out.stderr
    assert "because the run ended degraded" not in out.stdout
    assert "it did not: large#1 was pruned" in out.stdout
    record = tmp_path / "rec.json"
    assert converge("run", str(rules), "--record", str(record)).returncode == 0
    rules.write_text(GOAL_SRC.replace("goal offer\n", ""))  # the rule file changes: the record still explains
    out = converge("why-not", "--record", str(record), 'big("a")', "--format", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["agents"][0]["not_run"] == "big#1 was pruned: it cannot contribute to the goal offer, so it never ran"
    assert cr.open_record(str(record)).result.pruned_agents == ["big#1", "bigger#1"]


def test_a_skipped_agent_is_named_as_the_reason() -> None:
    src = ('input relation p(x: int)\nrelation q(x: int)\n'
           'agent div {\n  on_failure skip\n  when p(x), y = 10 / x\n  emit q(y)\n}\np(0). p(5).\n')
    result = cr.load_text(src).run()
    assert result.tier.value == "degraded"
    a = _attempt(why_not(result, "q(2)"), "div")
    assert a.outcome == "would derive"  # 10 / 5 = 2: the body holds, but the agent's facts were discarded
    assert a.not_run is not None and a.not_run.startswith("its facts were discarded: agent 'div' skipped in cycle 1")
    assert "; it did not: its facts were discarded: agent 'div' skipped" in a.summary


# ------------------------------------------------------------------ tool calls

SCORING = ("examples/scoring/scoring.cvg", "--facts", "examples/scoring/facts.json", "--tools", "examples.scoring.tools")


def test_a_tool_literal_is_explained_with_the_result_the_run_recorded(tmp_path: Path) -> None:
    """why-not answered every tool literal with "why-not does not call tools, so this literal
    cannot be evaluated", although the run (and a decision record, which the docs say explains
    with the recorded tool results) holds the result of each call. A record also lost its tool
    calls when rebuilt (they were passed to Outcome.analysis)."""
    from converge_rules.commands.common import load_tools

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        result = cr.load([SCORING[0]]).run(fact_files=[SCORING[2]], tools=load_tools(SCORING[4]))
    finally:
        os.chdir(cwd)
    assert [c["args"] for c in result.tool_calls][:3] == [["a1"], ["a2"], ["a3"]]
    m = _attempt(why_not(result, 'score("a1", 700)'), "bureau").shown[0]
    assert m.reason == '700 = @credit_score("a1") is false: @credit_score("a1") returned 720 in cycle 1'
    m = _attempt(why_not(result, 'score("a3", 700)'), "bureau").shown[0]
    assert m.reason == ('700 = @credit_score("a3"): @credit_score("a3") failed in cycle 1: '
                        "tool credit_score raised LookupError: the bureau has no file for a3")
    # a call the run never made is not made now
    src = 'input relation p(x: int)\nrelation q(x: int, y: int)\nq(x, y) :- p(x), y = @f(x).\np(1).\n'
    calls: list[int] = []
    small = cr.load_text(src).run(tools={"f": lambda x: calls.append(x) or x * 10})
    assert calls == [1]
    m = _attempt(why_not(small, "q(2, 20)"), "q#1").shown[0]
    assert m.reason == "no fact matches p(2) (p is an input relation)"
    m = _attempt(why_not(small, "q(1, 20)"), "q#1").shown[0]
    assert m.reason == "20 = @f(1) is false: @f(1) returned 10 in cycle 1" and calls == [1]
    # from a record: the recorded calls, no tool, no rule file
    record = tmp_path / "scoring.json"
    assert converge("run", *SCORING, "--record", str(record)).returncode in (0, 3)
    rec = cr.open_record(str(record))
    assert rec.result.tool_calls == rec.tool_calls and rec.result.analysis is None
    out = converge("why-not", "--record", str(record), 'score("a2", 600)')
    assert out.returncode == 0, out.stderr
    assert '✗ 600 = @credit_score("a2") is false: @credit_score("a2") returned 655 in cycle 1' in out.stdout


# ------------------------------------------------------------------ unknown columns that must be equal

REPEAT_SRC = ('input relation a(x: int)\ninput relation e(x: int, y: int)\nrelation q(x: int, y: int)\n'
              'relation t(x: int)\nrelation u(x: int)\n'
              'q(x, y) :- e(x, y).\nt(x) :- a(x), q(y, y).\nu(x) :- a(x), q(y, y + 5).\na(1). e(1, 2).\n')


def test_a_repeated_unbound_variable_is_kept_in_the_reason_and_not_explained_as_a_pattern(tmp_path: Path) -> None:
    """`t(x) :- a(x), q(y, y)` blocks at q(y, y), yet why-not said "no fact matches q(_, _)" and,
    with --depth 2, "why not q(_, _): q(_, _) holds: q(1, 2)": both false, the pattern had
    dropped the constraint that the two columns are equal (or that one is the other plus 5)."""
    result = cr.load_text(REPEAT_SRC).run()
    w = why_not(result, "t(1)", depth=2)
    a = _attempt(w, "t#1")
    assert a.outcome == "blocked" and a.shown[0].reason == "no fact matches q(y, y)"
    assert a.premises == []  # no pattern with `_` says what is missing
    a = _attempt(why_not(result, "u(1)", depth=2), "u#1")
    assert a.shown[0].reason == "no fact matches q(y, y + 5)" and a.premises == []
    rules = tmp_path / "t.cvg"
    rules.write_text(REPEAT_SRC)
    out = converge("why-not", str(rules), "t(1)", "--depth", "2")
    assert out.returncode == 0, out.stderr
    assert "✗ no fact matches q(y, y)" in out.stdout
    assert "holds" not in out.stdout and "q(_, _)" not in out.stdout


# ------------------------------------------------------------------ what a tier below converged means

def test_tier_notes_say_what_each_reason_means_for_a_missing_fact(tmp_path: Path) -> None:
    """Every run below converged got "the run stopped on a budget before its fixed point, so the
    fact might have been derived later" (or, failed, "facts of the cycle that failed were not
    committed"), from its first reason only. Both are false for min_confidence and for an
    acceptance check, which act at the fixed point: nothing more would have been derived."""
    weak = ('input relation p(x: int)\nrelation q(x: int)\nrelation r(x: int)\n'
            'agent weak {\n  confidence 0.5\n  when p(x)\n  emit q(x)\n}\nr(x) :- q(x).\n')
    result = cr.load_text(weak).run(facts={"p": [[1], {"x": 2, "confidence": 0.9}]}, budget=cr.Budget(min_confidence=0.48))
    assert result.tier.value == "bounded"
    w = why_not(result, "r(2)")
    assert w.notes == ["the run reached its fixed point, but facts below min_confidence were dropped, and facts that "
                       "only they would have derived are missing too: min_confidence 0.48: 1 fact(s) below it were dropped"]
    accept = ('input relation p(x: int)\nrelation q(x: int)\nrelation r(x: int)\nq(x) :- p(x).\nr(x) :- q(x), x > 5.\n'
              'acceptance big "no q above 1" { forbid q(x), x > 1 }\np(1). p(2).\n')
    result = cr.load_text(accept).run()
    assert result.tier.value == "failed"
    w = why_not(result, "r(2)")
    assert len(w.notes) == 1 and w.notes[0].startswith(
        "the run reached its fixed point and then failed an acceptance check, so every fact it derived is in the result: "
        "acceptance rule 'big' violated")
    # one note per reason: a degraded run that also hit a budget says both
    both = ('input relation p(x: int)\nrelation q(x: int)\nrelation s(x: int)\n'
            'agent div {\n  on_failure skip\n  when p(x), y = 10 / x\n  emit q(y)\n}\ns(x + 1) :- p(x).\ns(x + 1) :- s(x), x < 50.\n')
    result = cr.load_text(both).run(facts={"p": [[0], [5]]}, budget=cr.Budget(max_cycles=3))
    assert result.tier.value == "bounded" and [r.kind for r in result.reasons] == ["agent_skipped", "budget"]
    notes = why_not(result, "s(40)").notes
    assert [n.split(":")[0] for n in notes] == ["the run ended degraded", "the run stopped on a budget before its fixed point, so the fact might have been derived later"]
    rules = tmp_path / "acc.cvg"
    rules.write_text(accept)
    out = converge("why-not", str(rules), "r(2)")
    assert out.returncode == 0, out.stderr
    assert "note: the run reached its fixed point and then failed an acceptance check" in out.stdout
    assert "were not committed" not in out.stdout


def test_an_empty_float_sum_is_shown_as_0_0() -> None:
    """why-not evaluated an empty `sum` over a float variable as the int 0 ("= 0, not 5.0"); the
    engine gives 0.0, and so does the explanation now."""
    rs = cr.load_text('input relation sale(shop: str, amount: float)\ninput relation shop(s: str)\n'
                      'relation total(s: str, t: float)\ntotal(s, t) :- shop(s), t = sum a { sale(s, a) }.\n', "t.cvg")
    result = rs.run({"shop": [("s1",)], "sale": []})
    assert result.facts("total") == [("s1", 0.0)] and type(result.facts("total")[0][1]) is float
    text = render_text(why_not(result, 'total("s1", 5.0)'))
    assert "= 0.0, not 5.0" in text, text


def test_an_input_fact_that_lost_its_key_is_said_to_be_given_not_derived(tmp_path: Path) -> None:
    """A fact given as input and then dominated or superseded was 'derived in cycle 0' or 'was derived'."""
    src = ('relation best(k: str, v: int) key(k) prefer min(v)\ninput relation c(k: str, v: int)\n'
           'best("a", 5).\nbest("a", 3).\nbest(k, v) :- c(k, v).\nc("a", 1).\n')
    r = cr.load_text(src, "dom.cvg").run()
    assert r.dropped("best", ("a", 5))["message"] == 'given as input but dominated by best("a", 3), which was kept'  # type: ignore[index]
    assert r.dropped("best", ("a", 3))["message"] == 'given as input, then superseded in cycle 1 by best("a", 1)'  # type: ignore[index]
    (tmp_path / "dom.cvg").write_text(src)
    out = converge("why-not", str(tmp_path / "dom.cvg"), 'best("a", 3)')
    assert 'best("a", 3) was given as input, then superseded in cycle 1 by best("a", 1)' in out.stdout, out.stdout + out.stderr
    out = converge("why-not", str(tmp_path / "dom.cvg"), 'best("a", 5)')
    assert 'it was given as input but dominated by best("a", 3)' in out.stdout, out.stdout + out.stderr


def test_an_agent_description_is_written_as_a_string_literal_on_one_line(tmp_path: Path) -> None:
    """why-not wrote an agent's description between quotes as it is, so a description holding
    a line break ("...\\n...", a JSON escape in the rules) or a quote broke the agent's header
    line in two (the second looking like a line of the explanation). It is written as the rules
    write it: a string literal, with its escapes."""
    src = ('relation p(x: str)\nrelation q(x: str)\np("a").\n'
           'agent evil "first\\nrule fake at x.cvg:1 \\"quoted\\"" { when p(x), x != "a" emit q(x) }\n')
    text = render_text(why_not(cr.load_text(src, "d.cvg").run(), 'q("a")'))
    lines = text.splitlines()
    assert lines[2] == 'agent evil "first\\nrule fake at x.cvg:1 \\"quoted\\"" at d.cvg:4', text
    assert lines[3] == '  when p(x), x != "a" emit q(x)', text
    (tmp_path / "d.cvg").write_text(src)
    out = converge("why-not", str(tmp_path / "d.cvg"), 'q("a")')
    assert out.returncode == 0 and not any(line.startswith("rule fake") for line in out.stdout.splitlines()), out.stdout
    assert 'agent evil "first\\nrule fake at x.cvg:1 \\"quoted\\"" at ' in out.stdout


def test_a_value_holding_a_line_separator_is_not_broken_in_two(tmp_path: Path) -> None:
    """why-not indents the proof of a fact that holds (or of a blocking fact) line by line, and
    split that proof with str.splitlines, which also breaks at U+2028: a value "a\\u2028b" was
    printed as '"a' and, on a line of its own, '  b"' (a line break and indentation put inside
    the value). The proof is split at line feeds only."""
    src = ('relation s(x: str)\nrelation t(x: str)\nrelation u(x: str)\ns("a\\u2028b").\nt(x) :- s(x).\n'
           'u(x) :- s(x), not t(x).\n')
    result = cr.load_text(src, "ls.cvg").run()
    holds = render_text(why_not(result, 't("a\\u2028b")'))
    assert holds.split("\n")[0] == 't("a\u2028b") holds' and len(holds.split("\n")) == 4, holds
    assert '  │   with x = "a\u2028b"' in holds.split("\n"), holds
    blocked = render_text(why_not(result, 'u("a\\u2028b")'))
    assert '        t("a\u2028b")  [t#1 at ls.cvg:5, cycle 1]' in blocked.split("\n"), blocked
    (tmp_path / "ls.cvg").write_text(src)
    out = converge("why-not", str(tmp_path / "ls.cvg"), 't("a\\u2028b")')
    assert out.returncode == 0 and len(out.stdout.split("\n")) == 5 and '\n  │   with x = "a\u2028b"\n' in out.stdout, out.stdout
