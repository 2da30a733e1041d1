"""A reason is one line in the text output of ``converge run`` and ``converge test``.

A ``fail "..."`` message with a line break (``\\n``) or a tool's exception text of several
lines went out as is, so the reason's second line stood alone, as if it were another line of
the summary (``cycles:``, ``facts:``, ...). Control characters were already escaped; a line
break is now written ``\\n`` too (``textsafe.one_line``), as in diagnostics."""

from __future__ import annotations

from pathlib import Path

from cli_process import converge

RULES = r"""
relation p(x: int)
relation q(x: int)
p(1).
agent a { when p(x), fail "first\nsecond" emit q(x) }
test "reasons" {
  given { p(1). }
  expect tier converged
}
"""


def test_a_reason_with_a_line_break_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "f.cvg").write_text(RULES, encoding="utf-8")
    out = converge("run", "f.cvg", "--format", "summary", cwd=tmp_path)
    assert out.returncode == 5
    lines = out.stdout.splitlines()
    assert lines[:3] == ["tier: failed", "reasons:",
                         "  - [agent_failed] agent 'a' failed in cycle 1: fail: first\\nsecond at f.cvg:5:22"]
    assert lines[3].startswith("cycles: ")
    test = converge("test", "f.cvg", cwd=tmp_path)
    assert test.returncode == 1
    assert "- [agent_failed] agent 'a' failed in cycle 1: fail: first\\nsecond at f.cvg:5:22" in test.stdout
    assert "\nsecond" not in test.stdout
