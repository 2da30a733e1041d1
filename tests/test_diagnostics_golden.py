"""Golden diagnostics: each tests/golden/diagnostics/NAME.cvg sits next to
NAME.expected, the exact output and exit code of `converge check NAME.cvg`.
Inputs that do not even parse are named NAME.invalid, so that every .cvg file
in the repository is a well-formed (and formatted) rule file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import converge_rules as cr

GOLDEN = Path(__file__).parent / "golden" / "diagnostics"
CASES = sorted(p.stem for p in GOLDEN.glob("*.expected"))


def source(name: str) -> str:
    return f"{name}.cvg" if (GOLDEN / f"{name}.cvg").exists() else f"{name}.invalid"


def run_cli(*args: str, cwd: Path) -> tuple[str, int]:
    env = dict(os.environ, NO_COLOR="1")
    proc = subprocess.run([sys.executable, "-m", "converge_rules", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)
    return proc.stdout + proc.stderr, proc.returncode


@pytest.mark.parametrize("name", CASES)
def test_check_output_matches_golden(name: str) -> None:
    out, code = run_cli("check", source(name), cwd=GOLDEN)
    expected = (GOLDEN / f"{name}.expected").read_text()
    assert f"{out}exit {code}\n" == expected
    assert "Traceback" not in out


@pytest.mark.parametrize("name", CASES)
def test_api_reports_the_same_codes(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(GOLDEN)
    diags = cr.check([source(name)])
    expected = (GOLDEN / f"{name}.expected").read_text()
    assert diags, "every golden case has at least one diagnostic"
    for d in diags:
        assert f"error[{d.code}]" in expected
        assert d.span.line > 0 and d.span.col > 0
    with pytest.raises(cr.ConvergeError) as info:
        cr.load([source(name)])
    assert [d.code for d in info.value.diagnostics] == [d.code for d in diags if d.is_error]


def test_every_required_code_has_a_golden_case() -> None:
    text = "".join((GOLDEN / f"{n}.expected").read_text() for n in CASES)
    for code in ["E100", "E200", "E300", "E301", "E305", "E306", "E307", "E308", "E400", "E402", "E403", "E202", "E110", "E111"]:
        assert f"error[{code}]" in text, code


@pytest.mark.parametrize("name", ["syntax_missing_period", "undefined_relation", "negation_cycle"])
def test_run_fails_with_located_diagnostic_and_no_traceback(name: str) -> None:
    out, code = run_cli("run", source(name), cwd=GOLDEN)
    assert code == 1
    assert out.startswith(f"{source(name)}:")
    assert "Traceback" not in out
