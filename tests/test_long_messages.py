"""A diagnostic quoting huge user text stays short: its message and notes are cut past 4,000
characters, saying how long they were (a 100,000-character relation name gave a 300 KB message)."""

from __future__ import annotations

from pathlib import Path

import pytest

import converge_rules as cr
from cli_process import converge
from converge_rules.diagnostics import MESSAGE_CHARS, Diagnostic, Span

NAME = "r" * 100_000


def test_a_huge_name_gives_a_bounded_message_that_says_how_long_it_was() -> None:
    with pytest.raises(cr.ConvergeError) as err:
        cr.load_text(f"relation p(x: int)\np(x) :- {NAME}(x).\n")
    [diag] = err.value.diagnostics
    assert diag.code == "E200" and len(diag.message) <= MESSAGE_CHARS
    assert diag.message.startswith("undefined relation 'rrr") and " characters) … " in diag.message
    assert len(diag.render()) < 3 * MESSAGE_CHARS


def test_short_messages_and_notes_are_untouched_and_long_notes_are_cut() -> None:
    short = Diagnostic("E200", "undefined relation 'q'", Span("f.cvg", 1, 1), notes=("did you mean 'p'?",))
    assert short.message == "undefined relation 'q'" and short.notes == ("did you mean 'p'?",)
    long = Diagnostic("E200", "x" * 10_000, Span("f.cvg", 1, 1), notes=("n" * 9_000,))
    assert len(long.message) <= MESSAGE_CHARS and "(10000 characters)" in long.message
    assert len(long.notes[0]) <= MESSAGE_CHARS and "(9000 characters)" in long.notes[0]
    assert long == Diagnostic("E200", "x" * 10_000, Span("f.cvg", 1, 1), notes=("n" * 9_000,))  # deterministic


def test_check_prints_a_bounded_message(tmp_path: Path) -> None:
    (tmp_path / "r.cvg").write_text(f"relation p(x: int)\np(x) :- {NAME}(x).\n")
    done = converge("check", "r.cvg", "--format", "json", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert len(done.stdout) < 4 * MESSAGE_CHARS and "E200" in done.stdout
