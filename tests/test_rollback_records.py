"""A merge that a structural invariant rolls back leaves no record behind: the facts it dropped
(dominated by one of its own facts, or at max_facts) and the agents it credited used to stay,
so `why`/`why-not` said a fact was "dominated by best("a", 3), which was kept" when that fact
had been rolled back too, and `fired_agents` (the test runner's coverage) named agents whose
every fact was undone."""

from __future__ import annotations

from pathlib import Path

import converge_rules as cr
from cli_process import converge


RULES = """
input relation cand(k: str, v: int)
relation best(k: str, v: int) key(k) prefer min(v)
relation bad(k: str)
cand("a", 3). cand("a", 5).
best(k, v) :- cand(k, v).
bad(k) :- cand(k, _).
invariant nobad { forbid bad(k) }
"""


def test_a_rolled_back_merge_leaves_no_dropped_fact_and_fires_no_agent() -> None:
    r = cr.load_text(RULES, "r.cvg").run()
    assert r.tier == "failed" and [x.kind for x in r.reasons] == ["invariant"]
    assert r.facts("best") == [] and r.facts("bad") == []
    assert r.dropped("best", ("a", 5)) is None
    assert r.fired_agents() == []
    answer = r.why_not(("best", ("a", 5)))
    assert "dominated" not in answer.render_text()


def test_a_drop_at_max_facts_in_a_rolled_back_merge_is_forgotten_too() -> None:
    rules = RULES.replace("key(k) prefer min(v)", "").replace("bad(k) :- cand(k, _).\n", "")
    rules = rules.replace("best(k, v) :- cand(k, v).", "bad(k) :- cand(k, _).\nbest(k, v) :- cand(k, v).")
    r = cr.load_text(rules, "r.cvg").run(budget=cr.Budget(max_facts=3))  # bad("a") fits, best(...) do not
    assert r.tier == "failed" and [x.kind for x in r.reasons] == ["invariant"]
    assert r.facts("best") == []
    assert r.dropped("best", ("a", 3)) is None and r.dropped("best", ("a", 5)) is None


def test_a_merge_that_holds_keeps_its_records() -> None:
    r = cr.load_text(RULES.replace("invariant nobad { forbid bad(k) }", ""), "r.cvg").run()
    assert r.tier == "converged"
    assert r.dropped("best", ("a", 5))["reason"] == "dominated"
    assert r.fired_agents() == ["best#1", "bad#1"]


def test_why_of_a_fact_dominated_in_a_rolled_back_merge_from_the_cli(tmp_path: Path) -> None:
    (tmp_path / "rules.cvg").write_text(RULES)
    out = converge("why", "rules.cvg", 'best("a", 5)', cwd=tmp_path)
    assert out.returncode == 6, out.stdout + out.stderr
    text = out.stdout + out.stderr
    assert "does not hold" in text and "dominated" not in text, text


RAISED = """
input relation w(x: str)
input relation t(x: str)
relation p(x: str)
relation q(x: str)
relation bad(x: str)
agent weak { confidence 0.3 when w(x) emit p(x) }
q(x) :- t(x).
agent s { confidence 0.8 when q(x) emit p(x) }
bad(x) :- q(x).
invariant nobad { forbid bad(x) }
w("a"). t("a").
"""


def test_a_confidence_raised_by_a_rolled_back_merge_falls_back(tmp_path: Path) -> None:
    """Cycle 1 derives p("a") at 0.3; cycle 2 raises it to 0.8 and derives bad("a"), which the
    invariant rejects. The fact kept 0.8 and the proof of the rolled-back cycle."""
    r = cr.load_text(RAISED, "r.cvg").run()
    assert r.tier == "failed" and r.facts("p") == [("a",)] and r.facts("bad") == []
    assert r.confidence("p", ("a",)) == 0.3 and r.proof("p", ("a",)).agent == "weak"  # type: ignore[union-attr]
    (tmp_path / "r.cvg").write_text(RAISED)
    out = converge("why", "r.cvg", 'p("a")', cwd=tmp_path)
    assert 'p("a")  [weak at r.cvg:7, cycle 1, confidence 0.3]' in out.stdout, out.stdout + out.stderr


def test_a_drop_below_min_confidence_undone_by_a_rolled_back_merge_comes_back() -> None:
    """p("a") is dropped below min_confidence in cycle 1; cycle 2 commits it after all (0.8) and is
    rolled back: p("a") is missing again, and Result.dropped says why, as before cycle 2."""
    r = cr.load_text(RAISED, "r.cvg").run(budget=cr.Budget(min_confidence=0.5))
    assert r.tier == "failed" and r.facts("p") == []
    assert r.dropped("p", ("a",)) == {"reason": "min_confidence", "cycle": 1, "detail": 0.3,
                                      "message": "derived in cycle 1 with confidence 0.3, below min_confidence 0.5"}


def test_alternative_proofs_of_a_rolled_back_merge_are_forgotten() -> None:
    rules = """
input relation e(x: str)
relation p(x: str)
relation bad(x: str)
p(x) :- e(x).
agent again { priority 1 when p(x) emit p(x), bad(x) }
invariant nobad { forbid bad(x) }
e("a").
"""
    r = cr.load_text(rules, "r.cvg").run(all_proofs=True)
    assert r.tier == "failed" and r.facts("bad") == []
    assert [p.agent for p in r.proofs("p", ("a",))] == ["p#1"]
