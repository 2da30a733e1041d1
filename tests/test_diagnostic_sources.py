"""A diagnostic quotes the text it was found in, whatever is compiled or loaded later.

Rendering is a pure function of the diagnostic: the compilation (or the facts loader,
or whichever reader located the problem) that made it attaches the offending line, and
nothing is looked up by file name afterwards (no cache shared by compilations, no disk).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import converge_rules as cr
from converge_rules.diagnostics import ConvergeError

ROOT = Path(__file__).resolve().parent.parent

TEXT_A = "relation a(x: int)\nrelation b(x: int)\nb(x) :- a(x), c(x).\n"
TEXT_B = "relation a(x: int)\n\n# another text under the same name\n"


def converge(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "converge_rules", *args], cwd=cwd, env=env, input=stdin,
                          capture_output=True, text=True, timeout=120)


def _first(text: str, name: str = "r.cvg"):
    with pytest.raises(ConvergeError) as err:
        cr.load_text(text, name=name)
    return err.value.diagnostics[0]


def test_a_compile_diagnostic_quotes_its_own_text_after_another_compile_of_the_same_name():
    first = _first(TEXT_A)
    assert first.code == "E200" and first.span.line == 3
    expected = first.render()
    assert "   3 | b(x) :- a(x), c(x)." in expected
    cr.load_text(TEXT_B, name="r.cvg")  # compiles (a warning only) under the same name
    _first("relation z(x: int)\nz(1).\nz(x) :- y(x).\n")  # and fails there too
    assert first.render() == expected


def test_a_parse_diagnostic_quotes_its_own_text():
    first = _first("relation a(x: int)\na(1) :-\n")
    expected = first.render()
    assert "a(1) :-" in expected
    _first("relation a(x: int)\nzzz zzz\n")
    assert first.render() == expected


def test_a_check_diagnostic_quotes_its_own_text(tmp_path):
    path = tmp_path / "r.cvg"
    path.write_text(TEXT_A, encoding="utf-8")
    (found,) = [d for d in cr.check([str(path)]) if d.code == "E200"]
    expected = found.render()
    path.write_text(TEXT_B, encoding="utf-8")  # edited (or deleted) after the check
    cr.check([str(path)])
    assert found.render() == expected
    path.unlink()
    assert found.render() == expected and "b(x) :- a(x), c(x)." in expected


def test_a_facts_diagnostic_quotes_its_own_text(tmp_path):
    rules = cr.load_text("input relation p(x: int)\n", name="r.cvg")
    facts = tmp_path / "f.json"
    facts.write_text('{"p": [\n  ["one"]\n]}\n', encoding="utf-8")
    with pytest.raises(ConvergeError) as err:
        rules.run(fact_files=[str(facts)])
    (found,) = err.value.diagnostics
    expected = found.render()
    assert '   2 |   ["one"]' in expected
    facts.write_text('{"p": [\n  [1], ["two"]\n]}\n', encoding="utf-8")
    with pytest.raises(ConvergeError):
        rules.run(fact_files=[str(facts)])
    assert found.render() == expected


def test_a_diagnostic_without_text_quotes_nothing_and_reads_no_file(tmp_path):
    from converge_rules.diagnostics import Diagnostic, Span

    path = tmp_path / "r.cvg"
    path.write_text("relation a(x: int)\n", encoding="utf-8")
    d = Diagnostic("E200", "made by hand", Span(str(path), 1, 1))
    assert d.render() == f"{path}:1:1: error[E200]: made by hand"


def test_cli_check_quotes_each_text_from_its_own_source(tmp_path):
    (tmp_path / "r.cvg").write_text(TEXT_A, encoding="utf-8")
    stdin = "relation a(x: int)\nrelation q(x: int)\nq(x) :- a(x), zz(x).\n"
    result = converge("check", "r.cvg", "-", "--stdin-filename", "s/r.cvg", cwd=tmp_path, stdin=stdin)
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert "   3 | b(x) :- a(x), c(x).\n" in out  # the file on disk
    assert "   3 | q(x) :- a(x), zz(x).\n" in out  # the text on standard input
    assert "Traceback" not in result.stderr
    # under the very name of a file checked, the text is refused (two texts, one name in the report)
    same = converge("check", "r.cvg", "-", "--stdin-filename", "r.cvg", cwd=tmp_path, stdin=stdin)
    assert same.returncode == 2 and "would share one name" in same.stderr and same.stdout == ""
