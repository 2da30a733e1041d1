"""Issue 8, item 8: hostile rule and fact files get diagnostics, never a traceback or a hang.

The property tests draw rule files and fact files from the grammar-aware
generators of ``tests/fuzzing.py`` (generated, then mutated) and take each
through the public API. The default profile is small and fast; the long run
is ``python benchmarks/fuzz.py --inputs 100000`` (a worker process with a
time-out per input). ``CONVERGE_FUZZ_EXAMPLES=N`` raises the example count.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import converge_rules as cr
import fuzzing
from converge_rules.io.writers import csv_text, format_table

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = int(os.environ.get("CONVERGE_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                derandomize=True)
SMALL = cr.Budget(max_cycles=6, max_facts=200, max_steps=2000)


def converge(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "converge_rules", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def _tool(*args: object) -> object:
    return len(args)


def _exercise(rules: cr.RuleSet, result: cr.Result) -> None:
    result.to_json(proofs=True).encode("utf-8")
    schema = result.program.schema()
    for name in result.relations():
        format_table(name, result.facts(name), schema).encode("utf-8")
        csv_text(name, result.facts(name), schema).encode("utf-8")


def _run_rules(text: str) -> None:
    try:
        rules = cr.load_text(text, "fuzz.cvg")
    except cr.ConvergeError as err:
        assert err.diagnostics and all(d.code[0] in "EW" for d in err.diagnostics)
        return
    try:
        result = rules.run(budget=SMALL, tools={n: _tool for n, _ in rules.tool_names()}, workers=1)
    except cr.ConvergeError as err:  # e.g. an undefined goal or tool
        assert err.diagnostics
        return
    _exercise(rules, result)


@FUZZ
@given(st.randoms(use_true_random=False), st.booleans())
def test_item8_generated_and_mutated_rule_files_never_raise(rng: random.Random, mutate: bool) -> None:
    text = fuzzing.gen_rules(rng)
    _run_rules(fuzzing.mutate(rng, text) if mutate else text)


_SCHEMA: list[cr.RuleSet] = []


@FUZZ
@given(st.randoms(use_true_random=False), st.booleans())
def test_item8_generated_and_mutated_fact_files_never_raise(tmp_path_factory: pytest.TempPathFactory,
                                                            rng: random.Random, mutate: bool) -> None:
    if not _SCHEMA:
        _SCHEMA.append(cr.load_text(fuzzing.FACTS_SCHEMA_RULES, "schema.cvg"))
    name, text = fuzzing.gen_facts(rng)
    if mutate:
        text = fuzzing.mutate(rng, text)
    path = tmp_path_factory.mktemp("facts") / name
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        result = _SCHEMA[0].run(fact_files=[str(path)], budget=SMALL)
    except cr.ConvergeError as err:
        assert err.diagnostics and all(d.span.file == str(path) for d in err.diagnostics)
        return
    _exercise(_SCHEMA[0], result)


# ---------------------------------------------------------------- regressions found by fuzzing

THREE = 'relation F(x: int, y: int)\nF(x, y) :- F(x, y), x > _.\nF("string", _).\nF(_, y) :- F(_, y).\n'


def test_item8_every_independent_error_in_one_pass(tmp_path: Path) -> None:
    path = tmp_path / "three.cvg"
    path.write_text(THREE)
    with pytest.raises(cr.ConvergeError) as err:
        cr.load_text(THREE, "three.cvg")
    assert [(d.code, d.span.line) for d in err.value.diagnostics] == [("E401", 2), ("E301", 3), ("E401", 4)]
    out = converge("check", "three.cvg", cwd=tmp_path)
    assert out.returncode == 1 and "3 error(s)" in out.stdout + out.stderr
    for where in ("three.cvg:2:25: error[E401]", "three.cvg:3:3: error[E301]", "three.cvg:4:3: error[E401]"):
        assert where in out.stdout + out.stderr


def test_item8_a_rejected_rule_hides_only_its_own_echoes() -> None:
    # the undefined relation is reported once; the agent that uses it is not also reported as unsafe
    text = "relation p(x: int)\nrelation q(x: int)\nq(y) :- nosuch(y).\np(x) :- q(x), x > _.\n"
    with pytest.raises(cr.ConvergeError) as err:
        cr.load_text(text)
    assert [(d.code, d.span.line) for d in err.value.diagnostics] == [("E200", 3), ("E401", 4)]


def test_item8_byte_order_mark_is_accepted_everywhere(tmp_path: Path) -> None:
    (tmp_path / "bom.cvg").write_bytes(b"\xef\xbb\xbfinput relation p(x: int)\nrelation q(x: int)\nq(x) :- p(x).\n")
    (tmp_path / "f.cvg").write_bytes(b"\xef\xbb\xbfp(1).\n")
    (tmp_path / "p.csv").write_bytes(b"\xef\xbb\xbf2\n")
    result = cr.load([str(tmp_path / "bom.cvg")]).run(fact_files=[str(tmp_path / "f.cvg"), str(tmp_path / "p.csv")])
    assert result.facts("q") == [(1,), (2,)]
    out = converge("run", "bom.cvg", "--facts", "f.cvg", "--facts", "p.csv", cwd=tmp_path)
    assert out.returncode == 0 and "q (2)" in out.stdout, out.stderr
    fmt = converge("fmt", "--check", "bom.cvg", cwd=tmp_path)
    assert fmt.returncode in (0, 1) and "Traceback" not in fmt.stderr and "internal error" not in fmt.stderr


def test_item8_csv_with_bare_carriage_returns_is_located(tmp_path: Path) -> None:
    rules = cr.load_text("input relation flag(on: bool)\n")
    path = tmp_path / "flag.csv"
    path.write_text("\nfalse\rtrue\r\ntrue\r\non\r", newline="")
    with pytest.raises(cr.ConvergeError) as err:
        rules.run(fact_files=[str(path)])
    assert [(d.code, d.span.line, d.span.col) for d in err.value.diagnostics] == [("E502", 5, 1)]
    (tmp_path / "r.cvg").write_text("input relation flag(on: bool)\n")
    out = converge("run", "r.cvg", "--facts", "flag.csv", cwd=tmp_path)
    assert out.returncode == 1 and "flag.csv:5:1: error[E502]" in out.stderr


def test_item8_hostile_import_paths_are_located(tmp_path: Path) -> None:
    text = ('import "./x\\u0000.cvg" as m\nimport "' + "a" * 5000 + '" as n\n'
            'import "./\\ud800\\udc00.cvg" as o\nrelation p(x: int)\n')
    (tmp_path / "imp.cvg").write_text(text)
    with pytest.raises(cr.ConvergeError) as err:
        cr.load([str(tmp_path / "imp.cvg")])
    assert [(d.code, d.span.line) for d in err.value.diagnostics] == [("E110", 1), ("E110", 2), ("E110", 3)]
    out = converge("check", "imp.cvg", cwd=tmp_path)
    assert out.returncode == 1 and "imp.cvg:1:1: error[E110]: invalid import path" in out.stdout + out.stderr
    with pytest.raises(cr.ConvergeError) as err:
        cr.load_text('import "./\\udcff.cvg" as n\n')
    assert [d.code for d in err.value.diagnostics] == ["E103"]
    with pytest.raises(cr.ConvergeError) as err:  # a standard module name too long for the file system
        cr.load_text("import std.v" + "9" * 300 + "\n")
    assert [d.code for d in err.value.diagnostics] == ["E110"]


def test_fuzz_runner_smoke(tmp_path: Path) -> None:
    """benchmarks/fuzz.py: a few inputs of each kind, no tracebacks, no hangs, a summary per kind."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fuzz.py"), "--inputs", "8", "--seed", "3",
                          "--save", str(tmp_path), "-q"], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "rules: 8 inputs" in out.stdout and "facts: 8 inputs" in out.stdout
    assert "0 tracebacks, 0 hangs" in out.stdout


def test_item8_fmt_keeps_a_call_named_like_a_keyword_an_expression() -> None:
    from converge_rules.syntax.format import format_source

    text = 'relation path(x: str)\npath("a") :- (not(x, 0)) > x, (fail(1)) = 2.\n'
    assert format_source(text) == 'relation path(x: str)\npath("a") :- (not(x, 0)) > x, (fail(1)) = 2.\n'
