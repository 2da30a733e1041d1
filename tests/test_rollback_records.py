"""A merge that a structural invariant rolls back leaves no record behind: the facts it dropped
(dominated by one of its own facts, or at max_facts) and the agents it credited used to stay,
so `why`/`why-not` said a fact was "dominated by best("a", 3), which was kept" when that fact
had been rolled back too, and `fired_agents` (the test runner's coverage) named agents whose
every fact was undone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import converge_rules as cr

ROOT = Path(__file__).resolve().parent.parent

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
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, NO_COLOR="1", CONVERGE_NO_CACHE="1", PYTHONPATH=path)
    out = subprocess.run([sys.executable, "-m", "converge_rules", "why", "rules.cvg", 'best("a", 5)'],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 6, out.stdout + out.stderr
    text = out.stdout + out.stderr
    assert "does not hold" in text and "dominated" not in text, text
