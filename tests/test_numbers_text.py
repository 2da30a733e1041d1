"""Issue 8, items 4-6: ints of any size, finite floats, valid Unicode - through the API and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import converge_rules as cr
from converge_rules.io.writers import csv_text, format_table
from converge_rules.values import dumps_json, int_to_str, loads_json, str_to_int

ROOT = Path(__file__).resolve().parent.parent
BIG = 10 ** 5000 + 12345  # well past CPython's 4,300-digit conversion limit
SQUARES = "relation n(x: int)\nbudget { max_cycles = 14 }\nn(2).\nn(x * x) :- n(x).\n"
BIG_INPUT = "input relation m(x: int)\n"


def converge(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "converge_rules", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def codes(err: pytest.ExceptionInfo[cr.ConvergeError]) -> list[tuple[str, int]]:
    return [(d.code, d.span.line) for d in err.value.diagnostics]


def no_inf_nan(text: str) -> object:
    def refuse(name: str) -> object:
        raise AssertionError(f"JSON output holds {name}")
    return json.loads(text, parse_constant=refuse)


# ---------------------------------------------------------------- item 4: ints of any size

def test_item4_conversions_have_no_digit_limit_and_change_no_process_state() -> None:
    limit = sys.get_int_max_str_digits()
    text = int_to_str(BIG)
    assert len(text) == 5001 and text.endswith("12345") and str_to_int(text) == BIG
    assert str_to_int(" -1_000 ") == -1000 and str_to_int("-" + text) == -BIG
    with pytest.raises(ValueError):
        str_to_int("1" * 5000 + "x")
    doc = dumps_json({"v": [BIG, -BIG, "\x00cvgint0\x00", 1.5]})
    assert loads_json(doc) == {"v": [BIG, -BIG, "\x00cvgint0\x00", 1.5]}
    assert sys.get_int_max_str_digits() == limit  # nothing process-wide was touched


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=12_000), st.integers(min_value=-(10 ** 30), max_value=10 ** 30),
       st.booleans())
def test_item4_int_text_round_trip_property(exponent: int, low: int, negative: bool) -> None:
    value = 7 ** exponent + low
    value = -value if negative else value
    assert str_to_int(int_to_str(value)) == value
    assert loads_json(dumps_json([value, {"k": value}])) == [value, {"k": value}]
    if abs(value) < 10 ** 4000:
        assert int_to_str(value) == str(value)


def test_item4_big_literal_and_computed_ints_api(tmp_path: Path) -> None:
    literal = "9" * 4301
    result = cr.load_text(f"relation n(x: int)\nn({literal}).\n").run()
    assert result.facts("n") == [(str_to_int(literal),)]
    assert loads_json(result.to_json(proofs=True))["facts"]["n"] == [[str_to_int(literal)]]

    rules = cr.load_text(SQUARES)
    result = rules.run(trace=True)
    assert result.tier.value == "bounded" and result.count("n") == 15
    top = max(v for (v,) in result.facts("n"))
    assert top == 2 ** (2 ** 14) and len(int_to_str(top)) > 4300
    assert len(result.digest) == 64 and rules.run().digest == result.digest
    assert str_to_int(int_to_str(top)) == top
    data = loads_json(result.to_json(proofs=True, all_proofs=True))
    assert top in [row[0] for row in data["facts"]["n"]]
    traced = cr.load_text("input relation m(x: int)\n").run(facts={"m": [(BIG,)]}, trace=True)
    assert int_to_str(BIG) in traced.trace_jsonl()  # the trace records inline facts
    schema = result.program.schema()
    assert int_to_str(top) in csv_text("n", result.facts("n"), schema)
    assert int_to_str(top) in format_table("n", result.facts("n"), schema)
    assert result.why(("n", (top,))) is not None


def test_item4_tool_returning_a_huge_int_and_a_huge_confidence(tmp_path: Path) -> None:
    rules = cr.load_text("relation p(x: int)\nrelation b(x: int)\np(1).\nb(y) :- p(x), y = @big(x).\n")
    result = rules.run(tools={"big": lambda x: 10 ** 5000 + x})
    assert result.facts("b") == [(10 ** 5000 + 1,)]
    assert loads_json(result.to_json())["facts"]["b"] == [[10 ** 5000 + 1]]
    facts = tmp_path / "s.jsonl"
    facts.write_text('{"id": "x", "confidence": 1' + "0" * 400 + "}\n")
    with pytest.raises(cr.ConvergeError) as err:
        cr.load_text("input relation s(id: str)\n").run(fact_files=[str(facts)])
    assert codes(err) == [("E508", 1)]
    with pytest.raises(cr.ConvergeError) as err:
        cr.load_text("input relation s(id: str)\n").run(facts={"s": [{"id": "x", "confidence": 10 ** 400}]})
    assert [d.code for d in err.value.diagnostics] == ["E508"]


def test_item4_cli_every_output(tmp_path: Path) -> None:
    (tmp_path / "sq.cvg").write_text(SQUARES + BIG_INPUT)
    big = "7" * 4400
    (tmp_path / "n.json").write_text('{"m": [[' + big + "]]}")
    out = converge("run", "sq.cvg", "--facts", "n.json", "--format", "json", "--proofs", "all", "--trace", "t.jsonl",
                   "--out", "out", cwd=tmp_path)
    assert out.returncode == 4, out.stderr  # bounded by max_cycles
    data = loads_json(out.stdout)
    top = 2 ** (2 ** 14)
    assert top in [row[0] for row in data["facts"]["n"]] and data["facts"]["m"] == [[str_to_int(big)]]
    assert int_to_str(top) in (tmp_path / "out" / "n.csv").read_text()
    (tmp_path / "res.json").write_text(out.stdout)
    replay = converge("replay", "t.jsonl", cwd=tmp_path)
    assert replay.returncode == 0 and "replay identical" in replay.stdout, replay.stderr
    verify = converge("verify", "res.json", cwd=tmp_path)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    report = converge("report", "sq.cvg", "--facts", "n.json", "-o", "r.html", cwd=tmp_path)
    assert report.returncode in (0, 4) and int_to_str(top)[:50] in (tmp_path / "r.html").read_text()
    (tmp_path / "tools_d4.py").write_text("def big(x):\n    return 10 ** 5000 + x\n")
    (tmp_path / "tool.cvg").write_text("relation p(x: int)\nrelation b(x: int)\np(1).\nb(y) :- p(x), y = @big(x).\n")
    tool = converge("run", "tool.cvg", "--tools", "tools_d4", "--format", "json", cwd=tmp_path)
    assert tool.returncode == 0 and loads_json(tool.stdout)["facts"]["b"] == [[10 ** 5000 + 1]], tool.stderr
    (tmp_path / "conf.cvg").write_text("input relation s(id: str)\n")
    (tmp_path / "s.jsonl").write_text('{"s": {"id": "x", "confidence": 1' + "0" * 400 + "}}\n")
    conf = converge("run", "conf.cvg", "--facts", "s.jsonl", cwd=tmp_path)
    assert conf.returncode == 1 and "s.jsonl:1:" in conf.stderr and "error[E508]" in conf.stderr, conf.stderr
    literal = tmp_path / "lit.cvg"
    literal.write_text("relation n(x: int)\nn(" + "9" * 4301 + ").\n")
    lit = converge("run", "lit.cvg", cwd=tmp_path)  # text output
    assert lit.returncode == 0 and "9" * 4301 in lit.stdout and "digest: " in lit.stdout, lit.stderr


# ---------------------------------------------------------------- item 5: floats are finite

def test_item5_huge_float_literals_are_located_errors() -> None:
    for text, line in [("relation f(x: float)\nf(1e999).\n", 2),
                       ("relation f(x: float)\nrelation g(x: float)\nf(1.0).\ng(y) :- f(x), y = x * -1e999.\n", 4)]:
        with pytest.raises(cr.ConvergeError) as err:
            cr.load_text(text)
        assert codes(err) == [("E104", line)]


def test_item5_fact_files_and_tools_cannot_store_inf_or_nan(tmp_path: Path) -> None:
    rules = cr.load_text("input relation f(x: float)\n")
    (tmp_path / "a.json").write_text('{"f": [[1e999], ["inf"], [NaN], [-Infinity], [2.5]]}')
    (tmp_path / "f.csv").write_text("inf\nnan\n1.5\n")
    (tmp_path / "f.tsv").write_text("-inf\n")
    (tmp_path / "b.cvg").write_text("f(1e999).\n")
    for name, expected in [("a.json", ["E502"] * 4), ("f.csv", ["E502"] * 2), ("f.tsv", ["E502"]), ("b.cvg", ["E104"])]:
        with pytest.raises(cr.ConvergeError) as err:
            rules.run(fact_files=[str(tmp_path / name)])
        assert [d.code for d in err.value.diagnostics] == expected, name
        assert all(d.span.line >= 1 and d.span.col >= 1 for d in err.value.diagnostics)
    with pytest.raises(cr.ConvergeError) as err:
        rules.run(facts={"f": [(float("inf"),), (float("nan"),)]})
    assert [d.code for d in err.value.diagnostics] == ["E502", "E502"]
    tools = cr.load_text("relation p(x: int)\nrelation f(x: float)\np(1).\n"
                         "agent a { on_failure skip when p(x), y = @t(x) emit f(y) }\n")
    for bad in (float("inf"), float("-inf"), float("nan")):
        result = tools.run(tools={"t": lambda x, bad=bad: bad})
        assert result.tier.value == "degraded" and result.facts("f") == []
        assert "must be finite" in result.reasons[0].message
        no_inf_nan(result.to_json())


def test_item5_cli(tmp_path: Path) -> None:
    (tmp_path / "inf.cvg").write_text("relation f(x: float)\nf(1e999).\n")
    out = converge("run", "inf.cvg", "--format", "json", cwd=tmp_path)
    assert out.returncode == 1 and out.stdout == ""
    assert "inf.cvg:2:3: error[E104]: float literal out of range" in out.stderr
    (tmp_path / "ok.cvg").write_text("input relation f(x: float)\n")
    (tmp_path / "f.json").write_text('{"f": [[1e308], [Infinity]]}')
    out = converge("run", "ok.cvg", "--facts", "f.json", "--format", "json", cwd=tmp_path)
    assert out.returncode == 1 and "f.json:1:18: error[E502]" in out.stderr and "Traceback" not in out.stderr


# ---------------------------------------------------------------- item 6: strings are valid Unicode

def test_item6_lone_surrogates_are_located_errors_where_they_enter(tmp_path: Path) -> None:
    with pytest.raises(cr.ConvergeError) as err:
        cr.load_text('relation s(x: str)\ns("ok").\ns("\\ud800").\n')
    assert codes(err) == [("E103", 3)]
    cr.load_text('relation s(x: str)\ns("\\ud83d\\ude00").\n')  # a surrogate pair is one valid character
    rules = cr.load_text("input relation s(x: str)\n")
    (tmp_path / "s.json").write_text('{"s": [["\\ud800"], ["\\udfff x"], ["\\ud83d\\ude00"]]}')
    (tmp_path / "s.cvg").write_text('s("\\udc00").\n')
    for name, expected in [("s.json", [("E502", 1), ("E502", 1)]), ("s.cvg", [("E103", 1)])]:
        with pytest.raises(cr.ConvergeError) as err:
            rules.run(fact_files=[str(tmp_path / name)])
        assert codes(err) == expected
    with pytest.raises(cr.ConvergeError) as err:
        rules.run(facts={"s": [("a\ud800",)]})
    assert [d.code for d in err.value.diagnostics] == ["E502"] and "lone surrogate" in err.value.diagnostics[0].message
    tool = cr.load_text("relation p(x: int)\nrelation s(x: str)\np(1).\nagent a { on_failure skip when p(x), y = @t(x) emit s(y) }\n")
    result = tool.run(tools={"t": lambda x: "bad\udcff"})
    assert result.tier.value == "degraded" and result.facts("s") == []
    assert "lone surrogate" in result.reasons[0].message
    result.to_json().encode("utf-8")  # every output encodes


def test_item6_cli_outputs_never_fail_to_encode(tmp_path: Path) -> None:
    (tmp_path / "s.cvg").write_text('relation s(x: str)\ns("\\ud800").\n')
    out = converge("run", "s.cvg", cwd=tmp_path)
    assert out.returncode == 1 and "s.cvg:2:3: error[E103]" in out.stderr and "Traceback" not in out.stderr
    (tmp_path / "tools_d6.py").write_text("def t(x):\n    return 'x\\udcff'\n")
    (tmp_path / "t.cvg").write_text("relation p(x: int)\nrelation s(x: str)\np(1).\n"
                                    "agent a { on_failure skip when p(x), y = @t(x) emit s(y) }\n")
    for args in (["--format", "json", "--out", "o"], ["--format", "text"]):
        out = converge("run", "t.cvg", "--tools", "tools_d6", *args, cwd=tmp_path)
        assert out.returncode == 3, out.stderr  # degraded: the agent was skipped
        assert "lone surrogate" in out.stdout + out.stderr
    out = converge("report", "t.cvg", "--tools", "tools_d6", "-o", "r.html", cwd=tmp_path)
    assert out.returncode in (0, 3) and (tmp_path / "r.html").read_text(encoding="utf-8")
