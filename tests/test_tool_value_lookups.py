"""A tool's value looked up in a column (a negated atom, an aggregate's body) matches only
values of the column's type: 1, 1.0 and true are three different values.

The engine used Python's ``==``/``hash``, so a tool's ``true`` or ``1.0`` found the ``1`` of an
int column: ``not q(y)`` was false and ``count { q(y) }`` was 1, results that ``converge
verify`` then refused (exit 8), and ``why-not`` explained with a third rule (1.0 equal to 1)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import converge_rules as cr
from cli_process import converge


RULES = """
input relation p(x: int)
input relation q(x: int)
input relation fq(x: float)
relation absent(x: int)
relation fabsent(x: int)
relation cnt(x: int, n: int)
relation fcnt(x: int, n: int)
p(1). p(2). p(3). q(1). fq(1.0).
agent a { when p(x), y = @t(x), not q(y) emit absent(x) }
agent b { when p(x), y = @t(x), not fq(y) emit fabsent(x) }
agent c { when p(x), y = @t(x), n = count { q(y) } emit cnt(x, n) }
agent d { when p(x), y = @t(x), n = count { fq(y), q(_) } emit fcnt(x, n) }
"""

TOOLS = "def t(x):\n    return {1: True, 2: 1.0, 3: 1}[x]\n"


def t(x: int) -> object:
    return {1: True, 2: 1.0, 3: 1}[x]


def test_a_tool_value_matches_only_values_of_the_columns_type() -> None:
    r = cr.load_text(RULES, "r.cvg").run(tools={"t": t})
    assert r.tier == "converged", r.reasons
    assert r.facts("absent") == [(1,), (2,)]      # true and 1.0 are not the int 1
    assert r.facts("fabsent") == [(1,)]           # 1.0 is, and 1 widens to it; true does not
    assert r.facts("cnt") == [(1, 0), (2, 0), (3, 1)]  # true first: its count is not reused for 1
    assert r.facts("fcnt") == [(1, 0), (2, 1), (3, 1)]


def test_why_not_explains_with_the_same_rule() -> None:
    r = cr.load_text(RULES, "r.cvg").run(tools={"t": t})
    answer = r.why_not(("absent", (3,)))
    assert not answer.holds
    assert "not q(1) fails: q(1) holds" in answer.render_text()
    answer = r.why_not(("cnt", (2, 1)))
    assert "count { q(1.0) } = 0, not 1" in answer.render_text()


def test_results_with_tool_values_in_lookups_verify_from_the_cli(tmp_path: Path) -> None:
    (tmp_path / "rules.cvg").write_text(RULES)
    (tmp_path / "tools.py").write_text(TOOLS)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return converge(*args, cwd=tmp_path)

    out = cli("run", "rules.cvg", "--tools", "tools", "--format", "json", "--proofs")
    assert out.returncode == 0, out.stdout + out.stderr
    data = json.loads(out.stdout)
    assert data["facts"]["absent"] == [[1], [2]] and data["facts"]["cnt"] == [[1, 0], [2, 0], [3, 1]]
    (tmp_path / "result.json").write_text(out.stdout)
    verify = cli("verify", "result.json")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.startswith("verified 9 proofs")
