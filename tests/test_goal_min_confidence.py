"""Goal pruning never makes a job ``bounded`` through ``min_confidence``.

An input fact ``r1("a", "a")`` given at 0.5 under ``min_confidence = 0.8`` is dropped when
loaded; without goals ``r1#1`` derives it again at 1.0 (no loss: ``converged``). With
``--goal g`` that agent is pruned (``r1`` leads to no goal), and the dropped fact counted as
missing: ``bounded``, although the goal's facts are the same. Found by the differential
fuzzer (tests/test_difffuzz.py, scheduling test, 3,000 examples)."""

from __future__ import annotations

from pathlib import Path

import converge_rules as cr
from cli_process import converge

RULES = """
input relation e0(c0: str, c1: str)
relation r1(c0: str, c1: str)
relation g(c0: str)
budget { min_confidence = 0.8 }
r1(a, b) :- e0(a, b).
g(a) :- e0(a, _).
"""
FACTS = '{"e0": [["a", "a"]], "r1": [["a", "a", 0.5]], "g": []}'


def test_a_fact_only_a_pruned_agent_writes_is_no_loss() -> None:
    rs = cr.load_text(RULES, "gp.cvg")
    facts = {"e0": [["a", "a"]], "r1": [["a", "a", 0.5]]}
    base = rs.run(facts=facts)
    assert base.tier == "converged" and base.facts("r1") == [("a", "a")]
    pruned = rs.run(facts=facts, goals=["g"])
    assert pruned.pruned_agents and pruned.facts("r1") == []
    assert pruned.tier == "converged" and pruned.reasons == []
    assert pruned.facts("g") == base.facts("g")
    # a fact dropped in a relation the goal needs still counts
    needed = rs.run(facts={"e0": [["a", "a", 0.5]]}, goals=["g"])
    assert needed.tier == "bounded" and needed.reasons[0].details["dropped"] == 1


def test_cli_goal(tmp_path: Path) -> None:
    (tmp_path / "gp.cvg").write_text(RULES, encoding="utf-8")
    (tmp_path / "gp.json").write_text(FACTS, encoding="utf-8")
    out = converge("run", "gp.cvg", "--facts", "gp.json", "--goal", "g", "--format", "summary", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("tier: converged\nreasons: none\n")
