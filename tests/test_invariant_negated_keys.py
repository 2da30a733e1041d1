"""A structural invariant that negates a keyed relation is violated when a fact it relies on is
superseded, though no fact of its positive atoms is new. It was evaluated semi-naively (only
matches that use a new fact), so the violation went unreported and the job converged."""

from __future__ import annotations

from pathlib import Path

import converge_rules as cr
from cli_process import converge


RULES = """
input relation cand(k: str, v: int)
input relation late(k: str, v: int)
relation best(k: str, v: int) key(k) prefer max(v)
relation seen(k: str, v: int)
relation stage(k: str, v: int)
cand("a", 3).
late("a", 5).
best(k, v) :- cand(k, v).
seen(k, v) :- cand(k, v).
stage(k, v) :- late(k, v), seen(k, _).
best(k, v) :- stage(k, v).
invariant seen_is_best "every seen value is the best one" { forbid seen(k, v), not best(k, v) }
"""


def test_a_supersede_that_violates_a_negating_invariant_fails_the_job_and_is_rolled_back() -> None:
    r = cr.load_text(RULES, "r.cvg").run()
    assert r.tier == "failed"
    [reason] = r.reasons
    assert reason.kind == "invariant" and reason.details["cycle"] == 3
    [violation] = reason.details["violations"]
    assert violation["invariant"] == "seen_is_best"
    assert violation["matches"] == [{"bindings": {"k": "a", "v": 3}, "facts": ['seen("a", 3)']}]
    assert r.facts("best") == [("a", 3)]  # the merge of cycle 3 was rolled back: the superseded fact is back
    assert r.superseded("best") == []


def test_the_same_check_as_acceptance_and_a_holding_invariant_agree() -> None:
    acceptance = cr.load_text(RULES.replace("invariant seen_is_best", "acceptance seen_is_best"), "r.cvg").run()
    assert acceptance.tier == "failed" and [x.kind for x in acceptance.reasons] == ["acceptance"]
    holds = cr.load_text(RULES.replace('late("a", 5).', 'late("a", 2).'), "r.cvg").run()
    assert holds.tier == "converged", holds.reasons
    assert holds.facts("best") == [("a", 3)]


def test_the_violation_is_reported_from_the_cli(tmp_path: Path) -> None:
    (tmp_path / "rules.cvg").write_text(RULES)
    out = converge("run", "rules.cvg", "--format", "summary", cwd=tmp_path)
    assert out.returncode == 5, out.stdout + out.stderr
    assert ("[invariant] invariant 'seen_is_best' violated (1 match): every seen value is the best one "
            "(by the merge of cycle 3)") in out.stdout
