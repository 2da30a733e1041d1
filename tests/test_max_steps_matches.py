"""``max_steps`` counts the matches the plan evaluates (docs/semantics.md, Budgets): an
existence check stops at the first of several equivalent facts, while a run that keeps every
match (all proofs, confidence — even a ``min_confidence`` that drops nothing) counts each
combination. The docs said "every match of an agent's body" without this difference, and
``--min-confidence 0`` then turned a converged job into a bounded one."""

from __future__ import annotations

from pathlib import Path

import converge_rules as cr
from cli_process import converge

RULES = """
relation e(a: int, b: int)
relation r(a: int)
e(1,2). e(1,3). e(1,4). e(2,5).
r(a) :- e(a, _), e(_, _).
"""


def test_the_firings_counted_follow_the_plan_as_documented() -> None:
    rs = cr.load_text(RULES, "ms.cvg")
    assert rs.run(budget=cr.Budget(max_steps=4)).tier == "converged"  # one firing per e(a, _)
    for kw in ({"budget": cr.Budget(max_steps=4, min_confidence=0.0)}, {"budget": cr.Budget(max_steps=4), "all_proofs": True}):
        r = rs.run(**kw)
        assert r.tier == "bounded" and r.reasons[0].details["budget"] == "max_steps", kw
        assert rs.run(**{**kw, "budget": cr.Budget(max_steps=16, min_confidence=kw["budget"].min_confidence)}).tier == "converged"


def test_cli(tmp_path: Path) -> None:
    (tmp_path / "ms.cvg").write_text(RULES, encoding="utf-8")
    assert converge("run", "ms.cvg", "--max-steps", "4", cwd=tmp_path).returncode == 0
    assert converge("run", "ms.cvg", "--max-steps", "4", "--proofs", "all", cwd=tmp_path).returncode == 4
