"""Runs of one RuleSet reuse its plans and compiled code, with results identical to fresh rule sets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings, strategies as st

import converge_rules as cr

ROOT = Path(__file__).resolve().parent.parent

RULES = """
input relation edge(a: str, b: str)
input relation blocked(a: str)
input relation weight(a: str, w: int)
relation path(a: str, b: str)
relation open_path(a: str, b: str)
relation reach(a: str, n: int, total: int)
relation heavy(a: str)
path(x, y) :- edge(x, y).
path(x, z) :- path(x, y), edge(y, z).
open_path(x, y) :- path(x, y), not blocked(y), not blocked(x).
reach(x, n, t) :- weight(x, _), n = count { path(x, _) }, t = sum w { path(x, y), weight(y, w) }.
heavy(x) :- reach(x, _, t), t > 5, edge(x, _), edge(_, x).
acceptance no_self "no node is blocked and heavy" {
  forbid heavy(x), blocked(x)
}
"""

NODES = [f"n{i}" for i in range(7)]
facts_strategy = st.fixed_dictionaries({
    "edge": st.lists(st.tuples(st.sampled_from(NODES), st.sampled_from(NODES)), max_size=25),
    "blocked": st.lists(st.tuples(st.sampled_from(NODES)), max_size=3),
    "weight": st.lists(st.tuples(st.sampled_from(NODES), st.integers(0, 4)), max_size=7),
})


def fingerprint(result: cr.Result) -> str:
    return json.dumps([result.digest, str(result.tier), result.cycles,
                       json.loads(result.to_json(proofs=True))], sort_keys=True)


@settings(max_examples=25, deadline=None)
@given(st.lists(facts_strategy, min_size=2, max_size=4))
def test_reused_rule_set_matches_fresh(jobs: list[dict]) -> None:
    shared = cr.load_text(RULES, "t.cvg")
    for facts in jobs:
        again = shared.run(facts=facts)
        fresh = cr.load_text(RULES, "t.cvg").run(facts=facts)
        assert fingerprint(again) == fingerprint(fresh)


def test_second_run_generates_no_code() -> None:
    rs = cr.load_text(RULES, "t.cvg")
    facts = {"edge": [("n1", "n2"), ("n2", "n3"), ("n3", "n1")], "weight": [("n1", 3), ("n2", 4)]}
    first = rs.run(facts=facts)
    generated = rs._code_cache.misses
    assert generated > 0 and rs._code_cache.hits == 0
    second = rs.run(facts=facts)
    assert rs._code_cache.misses == generated  # nothing generated or compiled again
    assert rs._code_cache.hits == generated
    assert fingerprint(first) == fingerprint(second)
    # different facts: results of their own, not the first run's
    third = rs.run(facts={"edge": [("n5", "n6")]})
    assert third.facts("path") == [("n5", "n6")]
    assert third.facts("reach") == []


def test_failure_spans_survive_reuse() -> None:
    """Error locations (span ids baked into generated code) are right in a reused run."""
    src = """
input relation v(x: int)
relation q(x: int)
q(y) :- v(x), y = 10 / x.
"""
    rs = cr.load_text(src, "t.cvg")
    for _ in range(2):
        r = rs.run(facts={"v": [(0,)]})
        assert r.tier == "failed"
        assert "t.cvg:4" in json.dumps([reason.to_json() for reason in r.reasons])


def test_cli_run_unchanged(tmp_path: Path) -> None:
    rules = tmp_path / "r.cvg"
    rules.write_text(RULES)
    facts = tmp_path / "f.json"
    facts.write_text(json.dumps({"edge": [["a", "b"], ["b", "c"]], "weight": [["a", 9]]}))
    out = subprocess.run([sys.executable, "-m", "converge_rules", "run", str(rules), "--facts", str(facts),
                          "--format", "json"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    api = cr.load([str(rules)]).run(fact_files=[str(facts)])
    assert json.loads(out.stdout)["digest"] == api.digest


def test_a_full_cache_starts_over_without_mixing_plans() -> None:
    rs = cr.load_text(RULES, "t.cvg")
    rs._code_cache.LIMIT = 2  # starts over almost every run: tokens must never be reused
    for n in range(1, 7):
        facts = {"edge": [(f"n{i}", f"n{i + 1}") for i in range(n * 3)], "weight": [("n0", n)],
                 "blocked": [(f"n{n}",)]}
        assert fingerprint(rs.run(facts=facts)) == fingerprint(cr.load_text(RULES, "t.cvg").run(facts=facts))
