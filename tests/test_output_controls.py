"""Text output never sends a terminal raw control characters (docs/cli.md): a fact value
holding a bidirectional override or a C1 control is shown as a visible \\uXXXX escape by
`converge query` and `converge decisions why|why-not` too, as by run, why and why-not."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import converge_rules as cr

ROOT = Path(__file__).resolve().parent.parent
VALUE = "ab\u202ecd\u009b31mx\u2066"
RAW = ("\u202e", "\u009b", "\u2066")
RULES = """input relation item(name: str)
relation tag(name: str, label: str)
tag(n, "x") :- item(n).
"""


def converge(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "converge_rules", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, encoding="utf-8")


def files(tmp_path: Path) -> tuple[str, str]:
    rules = tmp_path / "r.cvg"
    rules.write_text(RULES)
    facts = tmp_path / "f.json"
    facts.write_text(json.dumps({"item": [[VALUE]]}))
    return str(rules), str(facts)


def test_query_text_escapes_controls(tmp_path: Path) -> None:
    rules, facts = files(tmp_path)
    for extra in ((), ("--why",)):
        out = converge("query", rules, "--facts", facts, "tag(n, _)", *extra)
        assert out.returncode == 0, out.stderr
        assert not any(c in out.stdout for c in RAW), repr(out.stdout)
        assert 'tag("ab\\u202ecd\\u009b31mx\\u2066", "x")' in out.stdout.splitlines()[0]
        if extra:
            assert 'with n = "ab\\u202ecd\\u009b31mx\\u2066"' in out.stdout
    # JSON output keeps the value itself (JSON is for programs)
    js = converge("query", rules, "--facts", facts, "tag(n, _)", "--format", "json")
    assert json.loads(js.stdout)["facts"][0]["fact"] == [VALUE, "x"]


def test_decisions_why_and_why_not_text_escape_controls(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from converge_rules.cli import cli as converge_cli
    from converge_rules.service import store_decision
    from converge_rules.store import open_store

    rules, _facts = files(tmp_path)

    def cli(*args: str) -> Any:
        return CliRunner().invoke(converge_cli, list(args), catch_exceptions=False)

    store = f"sqlite:///{tmp_path / 'd.db'}"
    session = cr.Session([rules])
    with open_store(store) as s:
        decision = session.decide({"item": [[VALUE]]})
        store_decision(s, decision)
    why = cli("decisions", "why", decision.id, 'tag(n, "x")'.replace("n", json.dumps(VALUE), 1), "--store", store)
    assert why.exit_code == 0, why.output
    assert not any(c in why.stdout for c in RAW) and "\\u202e" in why.stdout
    why_not = cli("decisions", "why-not", decision.id, 'tag("zz", "x")', "--store", store)
    assert why_not.exit_code == 0, why_not.output
    assert "item(\"zz\")" in why_not.stdout
    why_not = cli("decisions", "why-not", decision.id, f'tag({json.dumps(VALUE + "!")}, "x")', "--store", store)
    assert not any(c in why_not.stdout for c in RAW) and "\\u202e" in why_not.stdout


def test_run_text_table_tells_every_string_apart(tmp_path: Path) -> None:
    """A string is shown bare unless bare text would be ambiguous: the empty string and
    the two-character string "" (or ' x' and '" x"') must not look the same."""
    from converge_rules.io import format_table

    values = ["", '""', " x", '" x"', '"', 'a"b', "plain"]
    rules = tmp_path / "r.cvg"
    rules.write_text("input relation item(name: str)\n")
    facts = tmp_path / "f.json"
    facts.write_text(json.dumps({"item": [[v] for v in values]}))
    result = cr.load([str(rules)]).run(fact_files=[str(facts)])
    table = format_table("item", result.facts("item"), result.program.relations).split("\n")
    cells = [line.rstrip() for line in table[2:]]
    assert len(set(cells)) == len(values), cells
    # each cell reads back: bare text is the value, a cell starting with a quote is JSON
    back = [json.loads(c) if c.startswith('"') else c for c in cells]
    assert sorted(back) == sorted(values)
    assert "plain" in cells and 'a"b' in cells
    out = converge("run", str(rules), "--facts", str(facts))
    assert out.returncode == 0, out.stderr
    assert [line.rstrip() for line in out.stdout.split("item (7)\n")[1].splitlines()[2:]] == cells


def test_csv_out_round_trips_a_relation_without_columns(tmp_path: Path) -> None:
    """`--out DIR` then `--facts DIR` gives the same facts back (docs/facts.md), also for a
    relation without columns, whose one fact used to be written as a blank line (skipped
    on reading: the fact was lost)."""
    rules = tmp_path / "r.cvg"
    rules.write_text("input relation flag()\ninput relation off()\ninput relation item(name: str)\n"
                     "relation seen()\nseen() :- flag().\n")
    facts = tmp_path / "f.json"
    facts.write_text(json.dumps({"flag": [[]], "off": [], "item": [[""], ["=1+1"]]}))
    out = tmp_path / "out"
    first = converge("run", str(rules), "--facts", str(facts), "--format", "json", "--out", str(out))
    assert first.returncode == 0, first.stderr
    again = converge("run", str(rules), "--facts", str(out), "--format", "json")
    assert again.returncode == 0, again.stderr
    a, b = json.loads(first.stdout), json.loads(again.stdout)
    assert a["facts"] == b["facts"] and a["digest"] == b["digest"]
    assert b["facts"]["flag"] == [[]] and b["facts"]["seen"] == [[]] and b["facts"]["off"] == []
    assert (out / "flag.csv").read_text() == '\n""\n' and (out / "off.csv").read_text() == "\n"


def test_a_relation_named_twice_is_shown_once(tmp_path: Path) -> None:
    """`--relation R --relation R` (and render_report(relations=[R, R])): one section per
    relation, so the report's element ids stay unique and run prints each table once."""
    from converge_rules.explain.report import render_report

    loans = ("examples/loans/loans.cvg", "--facts", "examples/loans/facts.json")
    result = cr.load([str(ROOT / loans[0])]).run(fact_files=[str(ROOT / loans[2])])
    page = render_report(result, ["risk", "decision", "risk"])
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), sorted(i for i in set(ids) if ids.count(i) > 1)[:5]
    assert page.count('<section class="relation" id="rel-risk">') == 1
    out = tmp_path / "r.html"
    rep = converge("report", *loans, "-o", str(out), "--relation", "risk", "--relation", "risk")
    assert rep.returncode == 0, rep.stderr
    ids = re.findall(r'\bid="([^"]+)"', out.read_text(encoding="utf-8"))
    assert len(ids) == len(set(ids))
    run = converge("run", *loans, "--relation", "risk", "--relation", "risk")
    assert run.returncode == 0 and run.stdout.count("\nrisk (3)\n") == 1, run.stdout


def test_plan_text_escapes_controls(tmp_path: Path) -> None:
    """`converge plan` shows rule text (string constants included): a bidirectional
    override or C1 control in a constant is shown as \\uXXXX, never sent raw."""
    rules = tmp_path / "r.cvg"
    rules.write_text('input relation item(name: str)\nrelation tag(name: str)\n'
                     'tag(n) :- item(n), n != "a\u202eb\u009bc".\n', encoding="utf-8")
    out = converge("plan", str(rules))
    assert out.returncode == 0, out.stderr
    assert not any(c in out.stdout for c in RAW), repr(out.stdout)
    assert 'filter n != "a\\u202eb\\u009bc"' in out.stdout


def test_report_ids_never_collide_with_fact_anchors(tmp_path: Path) -> None:
    """Fact rows are `fact-REL-...` (`fact-REL` for a relation without columns): the page's
    own elements must use ids outside that space, or `filter()` took the search box's id
    and the page script found the row instead of the box."""
    from converge_rules.explain.report import fact_anchor, render_report

    rules = tmp_path / "r.cvg"
    rules.write_text("input relation filter()\ninput relation count(n: int)\nrelation seen()\nseen() :- filter().\n")
    facts = tmp_path / "f.json"
    facts.write_text(json.dumps({"filter": [[]], "count": [[1]]}))
    result = cr.load([str(rules)]).run(fact_files=[str(facts)])
    page = render_report(result)
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), sorted(i for i in set(ids) if ids.count(i) > 1)
    anchors = {fact_anchor(r, f) for r in result.relations() for f in result.facts(r)}
    assert fact_anchor("filter", ()) in anchors
    fixed = [i for i in ids if i not in anchors and not i.startswith("proof-")]
    assert not any(i.startswith("fact-") for i in fixed), fixed
    assert 'getElementById("fact-' not in page  # the script looks up only its own elements
    out = tmp_path / "r.html"
    rep = converge("report", str(rules), "--facts", str(facts), "-o", str(out))
    assert rep.returncode == 0, rep.stderr
    ids = re.findall(r'\bid="([^"]+)"', out.read_text(encoding="utf-8"))
    assert len(ids) == len(set(ids))
