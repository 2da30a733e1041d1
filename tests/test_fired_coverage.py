"""An agent fired (and is covered by `converge test --coverage`) when it added a fact. An agent
whose every derivation was dominated by a keyed relation, or dropped at max_facts, added none,
but was counted as fired."""

from __future__ import annotations

from pathlib import Path

import converge_rules as cr
from cli_process import converge


RULES = """
input relation cand(k: str, v: int)
relation best(k: str, v: int) key(k) prefer min(v)
relation n(x: int)
best(k, v) :- cand(k, v).
agent worse { when cand(k, v) emit best(k, v + 10) }
n(1).
n(x + 1) :- n(x), x < 5.

test "the best candidate" {
  given { cand("a", 3). }
  expect { best("a", 3). }
}
"""


def test_an_agent_whose_facts_were_all_dominated_or_dropped_did_not_fire() -> None:
    rules = cr.load_text(RULES, "r.cvg")
    r = rules.run(facts={"cand": [("a", 3)]})
    assert r.tier == "converged" and r.facts("best") == [("a", 3)]
    assert r.fired_agents() == ["best#1", "n#1"]  # `worse` derived best("a", 13): dominated
    bounded = rules.run(facts={"cand": [("a", 3)]}, budget=cr.Budget(max_facts=3))
    assert bounded.tier == "bounded" and bounded.facts("n") == [(1,)]
    assert bounded.fired_agents() == ["best#1"]  # n(2) was dropped at the limit


def test_coverage_does_not_count_an_agent_whose_facts_were_all_dominated(tmp_path: Path) -> None:
    (tmp_path / "rules.cvg").write_text(RULES)
    out = converge("test", "rules.cvg", "--coverage", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "rules.cvg: 2/3 agents (66.7%)" in out.stdout, out.stdout
    assert "never fired: worse at rules.cvg:6" in out.stdout, out.stdout
