"""Line endings and line breaks of rule text: LF, CRLF and a lone CR (classic Mac) end a
line wherever rule text comes from -- a file, standard input, `load_text`, the language
server -- so every entry point sees the same program with the same line:column; and a
diagnostic quotes the line it points at, whatever other characters Unicode calls line
breaks (U+2028, U+0085, form feed) the text holds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import converge_rules
from converge_rules.diagnostics import ConvergeError
from converge_rules.lsp.analysis import analyze
from converge_rules.syntax.format import format_source

ROOT = Path(__file__).resolve().parent.parent

# The comment on line 1 ends at the line break: `q` is declared, and line 3 reads an undefined `r`.
PROGRAM = "relation p(x: int)  # the input\nrelation q(x: int)\nq(x) :- r(x).\n"
ENDINGS = {"lf": "\n", "crlf": "\r\n", "cr": "\r"}


def converge(*args: str, stdin: str | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "converge_rules", *args], cwd=cwd, env=env, input=stdin,
                          capture_output=True, text=True, timeout=120, encoding="utf-8")


def spans(err: ConvergeError) -> list[tuple[str, int, int, int, int]]:
    return [(d.code, d.span.line, d.span.col, d.span.end_line, d.span.end_col) for d in err.diagnostics]


@pytest.mark.parametrize("ending", sorted(ENDINGS))
def test_load_text_sees_the_same_program_whatever_the_line_ending(ending: str) -> None:
    with pytest.raises(ConvergeError) as err:
        converge_rules.load_text(PROGRAM.replace("\n", ENDINGS[ending]), "rules.cvg")
    assert spans(err.value) == [("E200", 3, 9, 3, 13)]
    assert "   3 | q(x) :- r(x).\n" in str(err.value)


@pytest.mark.parametrize("ending", sorted(ENDINGS))
def test_check_of_a_file_and_of_standard_input_agree(ending: str, tmp_path: Path) -> None:
    text = PROGRAM.replace("\n", ENDINGS[ending])
    (tmp_path / "rules.cvg").write_bytes(text.encode("utf-8"))
    from_file = converge("check", "rules.cvg", cwd=tmp_path)
    from_stdin = converge("check", "-", "--stdin-filename", "rules.cvg", stdin=text, cwd=tmp_path)
    expected = ("rules.cvg:3:9: error[E200]: undefined relation 'r'\n"
                "   3 | q(x) :- r(x).\n")
    assert from_file.returncode == from_stdin.returncode == 1
    assert from_file.stdout.startswith(expected), from_file.stdout
    assert from_stdin.stdout == from_file.stdout


@pytest.mark.parametrize("ending", sorted(ENDINGS))
def test_fmt_ends_lines_with_lf_and_keeps_the_program(ending: str, tmp_path: Path) -> None:
    text = PROGRAM.replace("\n", ENDINGS[ending])
    assert format_source(text) == format_source(PROGRAM) == PROGRAM
    path = tmp_path / "rules.cvg"
    path.write_bytes(text.encode("utf-8"))
    out = converge("fmt", str(path))
    assert out.returncode == 0, out.stderr
    assert path.read_bytes() == PROGRAM.encode("utf-8")
    piped = converge("fmt", "-", stdin=text)
    assert piped.returncode == 0 and piped.stdout == PROGRAM


@pytest.mark.parametrize("ending", sorted(ENDINGS))
def test_language_server_analysis_agrees_with_check(ending: str, tmp_path: Path) -> None:
    text = PROGRAM.replace("\n", ENDINGS[ending])
    path = tmp_path / "rules.cvg"
    path.write_bytes(text.encode("utf-8"))
    found = analyze(str(path), text)
    assert [(d.code, d.span.line, d.span.col) for d in found.diagnostics] == [("E200", 3, 9)]
    # an inline suppression is found on its own line, too
    unused = "relation spare(x: int)  # converge: disable=W200\nrelation p(x: int)\np(1).\n"
    quiet = analyze(str(path), unused.replace("\n", ENDINGS[ending]))
    assert quiet.diagnostics == []


@pytest.mark.parametrize("brk", ["\u2028", "\u2029", "\x85", "\x0c", "\x0b", "\x1c"])
def test_a_diagnostic_quotes_its_own_line_past_other_unicode_line_breaks(brk: str, tmp_path: Path) -> None:
    """Only LF, CRLF and CR end a line of rule text (str.splitlines also breaks at these)."""
    inside = brk if brk >= " " else ""  # a control character in a string is an error of its own (E101)
    space = brk if brk == "\x0c" else ""  # form feed is whitespace, the others are not
    text = f'relation p(x: str)  # a{brk}b\np("c{inside}d").{space}\nq(x) :- r(x).\n'
    with pytest.raises(ConvergeError) as err:
        converge_rules.load_text(text, "rules.cvg")
    assert [d.span.line for d in err.value.diagnostics] == [3, 3]
    assert "   3 | q(x) :- r(x).\n" in str(err.value)
    (tmp_path / "rules.cvg").write_text(text, encoding="utf-8")
    out = converge("check", "rules.cvg", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stdout.startswith("rules.cvg:3:1: error[E200]: undefined relation 'q'\n"
                                 "   3 | q(x) :- r(x).\n"), out.stdout


@pytest.mark.parametrize("char, escape", [("\t", "\\t"), ("\x00", "\\u0000"), ("\x1b", "\\u001b"), ("\x0c", "\\f")])
def test_a_raw_control_character_in_a_string_is_named_and_located(char: str, escape: str, tmp_path: Path) -> None:
    """E101 says which character and how to write it, at the character (it said 'invalid
    escape' for a string without any escape)."""
    text = f'relation p(x: str)\np("ab{char}c").\n'
    with pytest.raises(ConvergeError) as err:
        converge_rules.load_text(text, "rules.cvg")
    (diag,) = err.value.diagnostics
    assert diag.code == "E101"
    assert diag.message == (f"control character U+{ord(char):04X} in a string literal; "
                            f"write it as the escape {escape}")
    assert (diag.span.line, diag.span.col, diag.span.end_col) == (2, 6, 7)
    (tmp_path / "rules.cvg").write_text(text, encoding="utf-8")
    out = converge("check", "rules.cvg", cwd=tmp_path)
    assert out.returncode == 1 and out.stdout.startswith(f"rules.cvg:2:6: error[E101]: {diag.message}\n"), out.stdout
    with pytest.raises(ConvergeError) as bad_escape:
        converge_rules.load_text('relation p(x: str)\np("a\\qb").\n', "rules.cvg")
    assert [(d.code, d.message) for d in bad_escape.value.diagnostics] == [("E101", "invalid escape in string literal")]


def test_a_rule_file_that_is_not_utf8_is_located_at_the_bad_byte(tmp_path: Path) -> None:
    """E002 names the line and column of the first byte that is not UTF-8 (it gave a byte
    offset, 'position 24', and no line), in every command that reads rule files."""
    path = tmp_path / "rules.cvg"
    path.write_bytes('relation p(x: str)\np("é\xff").\n'.encode("utf-8").replace(b"\xc3\xbf", b"\xff"))
    expected = "rules.cvg:2:5: error[E002]: rule file is not valid UTF-8 (byte 0xff)"
    with pytest.raises(ConvergeError) as err:
        converge_rules.load(str(path))
    (diag,) = err.value.diagnostics
    assert (diag.code, diag.span.line, diag.span.col, diag.message) == ("E002", 2, 5, "rule file is not valid UTF-8 (byte 0xff)")
    for args, stream, code in ((["check", "rules.cvg"], "stdout", 2), (["run", "rules.cvg"], "stderr", 1),
                               (["fmt", "rules.cvg"], "stderr", 1), (["test", "rules.cvg"], "stderr", 2)):
        out = converge(*args, cwd=tmp_path)
        assert out.returncode == code, (args, out.stdout, out.stderr)
        assert getattr(out, stream).startswith(expected + "\n"), (args, out.stdout, out.stderr)
        assert "Traceback" not in out.stderr


def test_the_caret_stands_under_the_offending_text_after_wide_and_control_characters(tmp_path: Path) -> None:
    """A terminal shows a CJK character or an emoji in two cells and a control character as its
    \\uXXXX escape: the caret counts the cells shown, not code points."""
    text = 'input relation p(x: str)\nrelation q(x: str)\nq(x) :- p("名前😀"), p(x), r(x).\n\x0cq(x) :- s(x).\n'
    with pytest.raises(ConvergeError) as err:
        converge_rules.load_text(text, "rules.cvg")
    first, second = (d.render().split("\n")[1:3] for d in err.value.diagnostics)
    assert first == ['   3 | q(x) :- p("名前😀"), p(x), r(x).',
                     "                                  ^^^^"]
    assert second == ["   4 | \\u000cq(x) :- s(x).",
                      "                     ^^^^"]
    (tmp_path / "rules.cvg").write_text(text, encoding="utf-8")
    out = converge("check", "rules.cvg", cwd=tmp_path)
    assert "\n".join(first) in out.stdout and "\n".join(second) in out.stdout, out.stdout


def test_a_byte_order_mark_is_ignored_by_every_entry_point(tmp_path: Path) -> None:
    """`load_text` of a file read with encoding="utf-8", and an editor buffer that keeps the
    mark, once failed with E100 "unexpected character '\\ufeff'" at 1:1, while `converge
    check` of the same file passed (language.md: a byte order mark is ignored). The mark
    now reads as a space: the program is the same, and a column is the column of the text
    as given."""
    text = "\ufeffrelation p(x: int)\np(1).\nq(x) :- p(x).\n"
    (tmp_path / "b.cvg").write_bytes(text.encode("utf-8"))
    with pytest.raises(ConvergeError) as info:
        converge_rules.load_text(text, "b.cvg")
    assert [(d.code, d.span.line, d.span.col) for d in info.value.diagnostics] == [("E200", 3, 1)]
    assert converge_rules.load_text(text.replace("q(x) :- p(x).\n", ""), "b.cvg").run().facts("p") == [(1,)]
    found = analyze(str(tmp_path / "b.cvg"), text)
    assert [(d.code, d.span.line, d.span.col) for d in found.diagnostics] == [("E200", 3, 1)]
    assert found.source is not None
    found = analyze(str(tmp_path / "b.cvg"), "\ufeffrelation p(x: int)\np(1).\n")
    assert [d.code for d in found.diagnostics] == []
    (decl,) = [o for o in found.occurrences[found.real] if o.decl]
    assert (decl.line, decl.col) == (0, 10)  # `p` in the text as given: after the mark and `relation `
    out = converge("check", "b.cvg", cwd=tmp_path)
    assert out.returncode == 1 and "b.cvg:3:1: error[E200]" in out.stdout + out.stderr
