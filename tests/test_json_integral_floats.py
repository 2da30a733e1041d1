"""A JSON number written with a fraction or an exponent goes into an ``int`` column as the
integer it writes (docs/facts.md: "a JSON float with no fractional part"), also beyond 2**53.

``{"n": [[12345678901234567890123.0]]}`` loaded ``12345678901234567741440``, the integer of
the nearest float, without a word: ints have arbitrary precision everywhere else. The JSON
decoder of fact files (and of the decision service's requests) now keeps the text of such a
number, so the int column takes it exactly, and a fraction the float lost
(``12345678901234567890123.5``) is the usual E502."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import converge_rules as cr
from cli_process import converge
from converge_rules.io import FactText

RULES = """
input relation n(x: int)
input relation f(x: float)
relation big(x: int)
big(x) :- n(x), x > 9007199254740992.
"""

TEXT = '{"n": [[12345678901234567890123.0], [9007199254740993.0], [-9007199254740993e0], [1.2e1]], ' \
       '"f": [[12345678901234567890123.0]]}'
WANT = [(-9007199254740993,), (12,), (9007199254740993,), (12345678901234567890123,)]


def test_json_and_jsonl_integral_floats_are_exact_in_int_columns() -> None:
    rs = cr.load_text(RULES, "n.cvg")
    r = rs.run(fact_files=[FactText("facts.json", TEXT, "json")])
    assert sorted(r.facts("n")) == WANT
    assert r.facts("f") == [(1.2345678901234568e22,)] and type(r.facts("f")[0][0]) is float
    assert sorted(r.facts("big")) == [(9007199254740993,), (12345678901234567890123,)]
    lines = '{"n": [12345678901234567890123.0]}\n{"n": [9007199254740993.0]}\n'
    r = rs.run(fact_files=[FactText("facts.jsonl", lines, "jsonl")])
    assert sorted(r.facts("n")) == [(9007199254740993,), (12345678901234567890123,)]


@pytest.mark.parametrize("literal", ["12345678901234567890123.5", "1.23456789012345678901235e22"])
def test_a_fraction_the_float_lost_is_e502(literal: str) -> None:
    rs = cr.load_text(RULES, "n.cvg")
    with pytest.raises(cr.ConvergeError) as err:
        rs.run(fact_files=[FactText("facts.json", '{"n": [[' + literal + ']]}', "json")])
    [d] = err.value.diagnostics
    assert d.code == "E502" and (d.span.line, d.span.col) == (1, 9)
    assert d.message == f'column "x" of n: {literal} is not a valid int'


def test_cli_run(tmp_path: Path) -> None:
    (tmp_path / "n.cvg").write_text(RULES, encoding="utf-8")
    (tmp_path / "facts.json").write_text(TEXT, encoding="utf-8")
    out = converge("run", "n.cvg", "--facts", "facts.json", "--format", "json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert sorted(tuple(f) for f in json.loads(out.stdout)["facts"]["n"]) == WANT


def test_the_service_reads_request_facts_alike() -> None:
    from converge_rules.service import _decode_request

    body = _decode_request('{"facts": {"n": [[12345678901234567890123.0]]}}')
    r = cr.load_text(RULES, "n.cvg").run(facts=body["facts"])
    assert r.facts("n") == [(12345678901234567890123,)]
