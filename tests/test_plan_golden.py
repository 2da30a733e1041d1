"""Golden plans: each tests/golden/plans/NAME.cvg sits next to NAME.expected,
the exact output of `converge plan NAME.cvg` followed by `converge plan
NAME.cvg --facts NAME.facts.cvg` (EXPLAIN, then EXPLAIN ANALYZE).
Regenerate with CONVERGE_UPDATE_GOLDEN=1 after checking the difference."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden" / "plans"
CASES = sorted(p.stem for p in GOLDEN.glob("*.cvg") if not p.stem.endswith(".facts"))
ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str) -> str:
    env = dict(os.environ, NO_COLOR="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "converge_rules", *args], cwd=GOLDEN, env=env,
                          capture_output=True, text=True, timeout=60)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout + proc.stderr + f"exit {proc.returncode}\n"


@pytest.mark.parametrize("name", CASES)
def test_plan_matches_golden(name: str) -> None:
    out = "$ converge plan\n" + run_cli("plan", f"{name}.cvg")
    if (GOLDEN / f"{name}.facts.cvg").exists():
        out += "\n$ converge plan --facts\n" + run_cli("plan", f"{name}.cvg", "--facts", f"{name}.facts.cvg")
    path = GOLDEN / f"{name}.expected"
    if os.environ.get("CONVERGE_UPDATE_GOLDEN") and not os.environ.get("CI"):
        path.write_text(out)
    assert out == path.read_text()


def test_every_case_has_a_golden_file() -> None:
    assert CASES and all((GOLDEN / f"{n}.expected").exists() for n in CASES)
