"""Ground fact lines are read without the LALR parser (syntax/factlines.py); the result must be
exactly what the grammar gives: the same items, values, types and spans, and for a file with an
error the same diagnostics."""

from __future__ import annotations

import json
import os
import time
from unittest import mock
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import converge_rules as cr
from cli_process import converge
from converge_rules.diagnostics import ConvergeError
from converge_rules.syntax import factlines
from converge_rules.syntax.factlines import split_fact_lines
from converge_rules.syntax.parser import _parse_grammar, parse_text

WS = st.sampled_from(["", " ", "  ", "\t"])
NAMES = st.sampled_from(["e", "edge", "p_1", "alias.rel", "count", "input", "true", "min", "_", "Rel"])
STRINGS = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters='"\\\n'), max_size=6).map(lambda s: f'"{s}"'),
    st.sampled_from(['"a\\"b"', '"\\n"', '"\\u00e9"', '"\\ud800"', '"\\q"', '"{"', '"}"', '"#"', '"a.b"', '"\t"', '""']))
NUMBERS = st.one_of(st.integers(-10**20, 10**20).map(str), st.sampled_from(
    ["1_000", "1_", "0", "007", "1.5", "1e5", "2.5e-3", "1_0.5", "1e400", "0.0", "-0.0", "- 1", "-1.5"]))
LITERALS = st.one_of(STRINGS, NUMBERS, st.sampled_from(["true", "false", "-true", "x", "_", "1 + 2", "f(1)"]))


@st.composite
def fact_lines(draw: st.DrawFn) -> str:
    args = draw(st.lists(LITERALS, max_size=3))
    sep = draw(WS) + "," + draw(WS)
    tail = draw(st.sampled_from([".", " .", ".  ", ". # c", "", ".."]))
    return f"{draw(WS)}{draw(NAMES)}{draw(WS)}({draw(WS)}{sep.join(args)}{draw(WS)}){tail}"


OTHER = st.sampled_from([
    "", "# a comment", "relation e(a: str, b: int)", "input relation p(x: int)", "q(x) :- p(x).",
    "q(x) :-", "  p(1),", "  p(2).", "r(n) :- n = count { p(x) }", "agent a {", "  when p(x)", "  emit q(x)", "}",
    'test "t" {', "  given {", "  expect {", "import std.graph", "budget { max_cycles = 3 }", "}", "garbage (",
    '"unterminated', "p(1). p(2).", "module m"])


def grammar_only(text: str) -> str:
    """What parse_text gives (or the diagnostics it raises) with the fast path turned off."""
    with mock.patch.object(factlines, "split_fact_lines", lambda text, file: ([], text)):
        return outcome(text)


def outcome(text: str) -> str:
    try:
        return repr(parse_text(text, "f.cvg"))
    except ConvergeError as err:
        return repr(err.diagnostics)


@settings(max_examples=int(os.environ.get("CVG_EXAMPLES", "300")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(fact_lines(), OTHER), max_size=14))
def test_the_fast_path_reads_what_the_grammar_reads(lines: list[str]) -> None:
    text = "\n".join(lines) + "\n"
    assert outcome(text) == grammar_only(text), text


def test_a_listing_of_facts_takes_the_fast_path_and_stays_exact() -> None:
    text = 'relation e(a: str, b: int)\n' + "".join(f'e("n{i}", {i - 50}).\n' for i in range(100))
    facts, rest = split_fact_lines(text, "f.cvg")
    # the first fact follows a declaration, which ends without a "." (the grammar's, to be sure)
    assert len(facts) == 99 and rest.count("\n") == text.count("\n") and rest.count("e(") == 2
    assert outcome(text) == grammar_only(text) == repr(_parse_grammar(text, "f.cvg"))
    inside = 'test "t" {\n  given {\n    e("a", 1).\n  }\n}\nq(1) :-\n  e("a", 1).\n'
    assert split_fact_lines(inside, "f.cvg")[0] == []  # a test's facts, a rule's body: the grammar's


def test_a_big_listing_runs_and_reports_from_the_cli(tmp_path: Path) -> None:
    """A 20,000-line listing in a rule file: `run` answers from it, and an error among the facts
    is located as before (the grammar reads a file with an error, as written)."""
    lines = ["relation e(a: str, b: int)", "relation big(a: str)", "big(a) :- e(a, b), b > 19990."]
    lines += [f'e("n{i}", {i}).' for i in range(20_000)]
    (tmp_path / "big.cvg").write_text("\n".join(lines) + "\n")
    start = time.monotonic()
    out = converge("run", "big.cvg", "--relation", "big", "--format", "json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert sorted(json.loads(out.stdout)["facts"]["big"]) == [[f"n{i}"] for i in range(19_991, 20_000)]
    assert time.monotonic() - start < 30
    lines[5000] = 'e("n4997", 1, 2).'
    (tmp_path / "bad.cvg").write_text("\n".join(lines) + "\n")
    out = converge("check", "bad.cvg", cwd=tmp_path)
    assert out.returncode == 1 and "bad.cvg:5001:1: error[E" in out.stdout, out.stdout
    assert cr.load_text("relation e(a: int)\ne(1).\ne(-2).\n").run().facts("e") == [(-2,), (1,)]
