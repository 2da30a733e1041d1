"""Edge cases of evaluation found by using the product adversarially (API and CLI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import converge_rules as cr

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, NO_COLOR="1", CONVERGE_NO_CACHE="1", PYTHONPATH=path)
    return subprocess.run([sys.executable, "-m", "converge_rules", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


# ------------------------------------------------------------------ a tool's variable tested by another `=`

TOOL_TESTED = """
relation p(x: int)
relation five(x: int)
relation next(x: int)
p(1). p(2).
agent a { when p(x), y = @score(x), y = 5 emit five(x) }
agent b { when p(x), y = @score(x), y = x + 4 emit next(x) }
"""


def score(x: int) -> int:
    return 5


def test_a_tool_variable_compared_with_another_expression_is_a_test_not_a_failure() -> None:
    # `y = 5` could bind y first; the tool call must still bind it (a tool call
    # cannot be a filter), and `y = 5` tests the tool's value.
    r = cr.load_text(TOOL_TESTED, "t.cvg").run(tools={"score": score})
    assert r.tier == "converged", r.reasons
    assert r.facts("five") == [(1,), (2,)]
    assert r.facts("next") == [(1,)]
    p = r.proof("next", (1,))
    assert p is not None and p.bindings == {"x": 1, "y": 5}


def test_a_tool_variable_tested_by_another_expression_from_the_cli(tmp_path: Path) -> None:
    (tmp_path / "rules.cvg").write_text(TOOL_TESTED)
    (tmp_path / "tools.py").write_text("def score(x):\n    return 5\n")
    out = cli("run", "rules.cvg", "--tools", "tools", "--format", "json", "--proofs", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    data = json.loads(out.stdout)
    assert data["tier"] == "converged" and data["facts"]["five"] == [[1], [2]] and data["facts"]["next"] == [[1]]
    (tmp_path / "result.json").write_text(out.stdout)
    verify = cli("verify", "result.json", cwd=tmp_path)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_two_tool_calls_binding_one_variable_are_e221(tmp_path: Path) -> None:
    src = """
relation p(x: int)
relation q(x: int, y: int)
p(1).
agent a { when p(x), y = @score(x), y = @score(x + 1) emit q(x, y) }
"""
    (tmp_path / "rules.cvg").write_text(src)
    diags = cr.check([str(tmp_path / "rules.cvg")])
    assert [(d.code, d.span.line, d.span.col) for d in diags if d.severity == "error"] == [("E221", 5, 41)]
    out = cli("check", "rules.cvg", cwd=tmp_path)
    assert out.returncode == 1
    assert "rules.cvg:5:41: error[E221]: 'y' is already bound by the tool call at" in out.stdout + out.stderr
