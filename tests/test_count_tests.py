"""`n = count { ... }` with `n` already bound tests the count with the language's `=`, whichever
way the planner computes the count. The fast path (a bucket's length, for `count { q(_) }`)
compared with Python's `==`, so a tool's `true` equalled a count of 1 there, while the general
path (`count { q(y), y > 0 }`) failed the agent with `cannot compare int and bool`."""

from __future__ import annotations

from pathlib import Path

import converge_rules as cr
from cli_process import converge


RULES = """
input relation p(x: int)
input relation q(x: int)
input relation k(x: int, n: int)
relation r(x: int, tag: str)
p(1). p(2). p(3). q(7). k(1, 1). k(2, 2).
agent fast { on_failure skip when p(x), n = @t(x), n = count { q(_) } emit r(x, "fast") }
agent slow { on_failure skip when p(x), n = @t(x), n = count { q(y), y > 0 } emit r(x, "slow") }
agent typed { when k(x, n), n = count { q(_) } emit r(x, "typed") }
"""

TOOLS = "def t(x):\n    return {1: True, 2: 1.0, 3: 1}[x]\n"


def t(x: int) -> object:
    return {1: True, 2: 1.0, 3: 1}[x]


def test_a_count_is_tested_alike_on_both_paths() -> None:
    r = cr.load_text(RULES, "r.cvg").run(tools={"t": t})
    assert r.tier == "degraded"
    assert [(x.details["agent"], x.details["error"]) for x in r.reasons] == [
        ("fast", "cannot compare int and bool"), ("slow", "cannot compare int and bool")]
    # `typed` compares ints: 1 = count holds for k(1, 1) only
    assert r.facts("r") == [(1, "typed")]


def test_a_count_tested_against_a_float_or_an_int_from_a_tool_holds_on_both_paths() -> None:
    r = cr.load_text(RULES, "r.cvg").run(tools={"t": lambda x: {1: 1, 2: 1.0, 3: 2}[x]})
    assert r.tier == "converged", r.reasons
    assert sorted(r.facts("r")) == [(1, "fast"), (1, "slow"), (1, "typed"), (2, "fast"), (2, "slow")]


def test_the_fast_path_fails_like_the_general_one_from_the_cli(tmp_path: Path) -> None:
    (tmp_path / "rules.cvg").write_text(RULES)
    (tmp_path / "tools.py").write_text(TOOLS)
    out = converge("run", "rules.cvg", "--tools", "tools", "--format", "summary", cwd=tmp_path)
    assert out.returncode == 3, out.stdout + out.stderr
    assert "agent 'fast' skipped in cycle 1 after 1 failed attempt(s): cannot compare int and bool at rules.cvg:7:52" in out.stdout
