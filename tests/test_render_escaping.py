"""Proof trees and dependency graphs drawn as DOT and Mermaid: whatever a fact's values,
file names or agent names hold, the text is valid for the tool that reads it and shows
exactly the label meant (no lost line break, no mangled character, no injected markup)."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import converge_rules as cr
from converge_rules.values import format_fact

ROOT = Path(__file__).resolve().parent.parent

NASTY = 'a"b\\c\nd é ✓ # ; | ] } --> </script><img src=x onerror=alert(1)> #quot; &lt; {{ \\n \\N \t\x01'

RULES = """input relation item(name: str)
relation tag(name: str, label: str)
tag(n, "x") :- item(n), not item("zz").
"""


def converge(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "converge_rules", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


# ------------------------------------------------------------ readers written from the specs

def dot_string(text: str, start: int) -> tuple[str, int]:
    """The value of the DOT double-quoted string at ``text[start]`` as Graphviz's lexer
    reads it: only ``\\"`` is an escape (``\\`` and a newline continue the line); the end."""
    assert text[start] == '"'
    out, i = [], start + 1
    while text[i] != '"':
        if text[i] == "\\" and text[i + 1] == '"':
            out.append('"')
            i += 2
        elif text[i] == "\\" and text[i + 1] == "\n":
            i += 2
        elif text[i] == "\\" and text[i + 1] == "\\":
            out.append("\\\\")  # the lexer keeps both; the label reader sees an escaped backslash
            i += 2
        else:
            assert text[i] != "\n", "a raw line break inside a DOT string"
            out.append(text[i])
            i += 1
    return "".join(out), i + 1


def dot_label_lines(value: str) -> list[str]:
    """The lines Graphviz draws for an escString label: ``\\n``, ``\\l``, ``\\r`` break the
    line, ``\\\\`` is a backslash, ``\\N`` and the like are substituted (not allowed here)."""
    lines, cur, i = [], [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\":
            nxt = value[i + 1]
            if nxt in "nlr":
                lines.append("".join(cur))
                cur = []
            elif nxt == "\\":
                cur.append("\\")
            else:
                raise AssertionError(f"escape \\{nxt} would be interpreted by Graphviz: {value!r}")
            i += 2
        else:
            cur.append(ch)
            i += 1
    lines.append("".join(cur))
    return lines


def dot_labels(dot: str) -> dict[str, list[str]]:
    """node id -> the lines of its label."""
    out: dict[str, list[str]] = {}
    for m in re.finditer(r"^  (n\d+) \[label=", dot, re.M):
        value, _end = dot_string(dot, m.end())
        out[m.group(1)] = dot_label_lines(value)
    return out


def mermaid_label_lines(label: str) -> list[str]:
    """What Mermaid shows for a quoted label: no raw markup characters, entity codes
    ``#name;`` / ``#123;`` decoded as HTML entities, ``<br/>`` a line break."""
    assert '"' not in label and "<" not in label.replace("<br/>", "") and ">" not in label.replace("<br/>", "")
    assert "&" not in label and "\n" not in label
    assert not re.search(r"#(?!\w+;)", label), f"a bare # in {label!r}"
    return [html.unescape(re.sub(r"#(\w+);", lambda m: f"&#{m.group(1)};" if m.group(1).isdigit() else f"&{m.group(1)};", part))
            for part in label.split("<br/>")]


def mermaid_labels(text: str) -> dict[str, list[str]]:
    out = {}
    for m in re.finditer(r'^  (n\d+)(?:\(\[|\[/|\[)"([^"\n]*)"(?:\]\)|/\]|\])$', text, re.M):
        out[m.group(1)] = mermaid_label_lines(m.group(2))
    return out


# ------------------------------------------------------------ the tests

def nasty_result(tmp_path: Path) -> tuple[cr.Result, str, str]:
    rules = tmp_path / "r.cvg"
    rules.write_text(RULES)
    facts = tmp_path / "f.json"
    facts.write_text(json.dumps({"item": [[NASTY]]}))
    result = cr.load([str(rules)]).run(fact_files=[str(facts)])
    return result, str(rules), str(facts)


def test_dot_proof_labels_read_back_exactly(tmp_path: Path) -> None:
    result, rules, facts = nasty_result(tmp_path)
    tree = result.why(("tag", (NASTY, "x")))
    assert tree is not None
    dot = cr.render_dot(tree)
    labels = dot_labels(dot)
    fact_text = format_fact("tag", (NASTY, "x"))
    # two lines per node: the fact, then where it comes from (the line break is a real one)
    assert labels["n0"] == [fact_text, f"[tag#1 at {rules}:3, cycle 1]"]
    assert labels["n1"] == [format_fact("item", (NASTY,)), f"[input, {facts}:1]"]
    assert labels["n2"] == ['not item("zz")', "(checked absent)"]
    assert "é ✓" in dot  # UTF-8 text, not JSON \\u escapes that Graphviz would show as "u00e9"


def test_mermaid_proof_labels_read_back_exactly(tmp_path: Path) -> None:
    result, rules, facts = nasty_result(tmp_path)
    tree = result.why(("tag", (NASTY, "x")))
    assert tree is not None
    text = cr.render_mermaid(tree)
    labels = mermaid_labels(text)
    assert labels["n0"] == [format_fact("tag", (NASTY, "x")), f"[tag#1 at {rules}:3, cycle 1]"]
    assert labels["n1"] == [format_fact("item", (NASTY,)), f"[input, {facts}:1]"]
    assert labels["n2"] == ['not item("zz")', "(checked absent)"]
    edges = re.findall(r'-->\|"([^"]*)"\|', text)
    assert edges and all(mermaid_label_lines(e) == ["tag#1"] for e in edges)


def test_cli_why_dot_and_mermaid_escape_values(tmp_path: Path) -> None:
    _result, rules, facts = nasty_result(tmp_path)
    fact = format_fact("tag", (NASTY, "x"))
    dot = converge("why", rules, "--facts", facts, fact, "--format", "dot")
    assert dot.returncode == 0, dot.stderr
    assert dot_labels(dot.stdout)["n0"][0] == fact
    mermaid = converge("why", rules, "--facts", facts, fact, "--format", "mermaid")
    assert mermaid.returncode == 0, mermaid.stderr
    assert mermaid_labels(mermaid.stdout)["n0"][0] == fact


def test_cli_why_pattern_and_all_headers_are_comments_in_dot_and_mermaid() -> None:
    """Several trees on one output: each header is a comment of the format, so the whole
    output stays valid (``| dot -Tsvg`` draws every graph)."""
    base = ("why", "examples/graph/graph.cvg", "--facts", "examples/graph/facts")
    for args in (('path("a", x)',), ('reachable("a")', "--all")):
        dot = converge(*base, *args, "--format", "dot")
        assert dot.returncode == 0, dot.stderr
        lines = dot.stdout.splitlines()
        assert lines[0].startswith("// ") and ("match 1 of" in lines[0] or "derivation 1 of" in lines[0])
        graphs = 0
        for k, line in enumerate(lines):
            if line.startswith("digraph proof {"):
                graphs += 1
                assert lines[k - 1].startswith("// ")
            else:
                assert line.startswith(("  ", "}", "// ")), line
        assert graphs >= 2
        mermaid = converge(*base, *args, "--format", "mermaid")
        assert mermaid.returncode == 0, mermaid.stderr
        lines = mermaid.stdout.splitlines()
        assert lines[0].startswith("%% ")
        assert all(line.startswith(("  ", "graph BT", "%% ")) for line in lines), lines
        assert sum(line == "graph BT" for line in lines) >= 2
    text = converge(*base, 'path("a", x)')
    assert text.stdout.startswith('match 1 of 4: path("a", "a")\n')  # text output keeps its plain header


def test_graph_command_labels_read_back(tmp_path: Path) -> None:
    """`converge graph`: relation and agent names, and a rule file name with quotes and
    backslashes in the tooltip, read back exactly."""
    weird = tmp_path / 'we"ird\\dir'
    weird.mkdir()
    rules = weird / "r.cvg"
    rules.write_text(RULES)
    dot = converge("graph", str(rules), "--format", "dot")
    assert dot.returncode == 0, dot.stderr
    tips = []
    for m in re.finditer(r"tooltip=", dot.stdout):
        value, _ = dot_string(dot.stdout, m.end())
        tips.append(dot_label_lines(value))
    assert [f"rule tag#1 at {rules}:3"] in tips
    mermaid = converge("graph", str(rules), "--format", "mermaid")
    assert mermaid.returncode == 0, mermaid.stderr
    names = [mermaid_label_lines(m) for m in re.findall(r'"([^"\n]*)"', mermaid.stdout) if not m.startswith("stratum")]
    assert ["tag#1"] in names and ["item"] in names


def test_why_refuses_options_it_cannot_honour() -> None:
    """--support prints a list, not a graph; a pattern explains each match once. Such
    combinations are usage errors (exit 2) before the job runs, not silently ignored
    (which printed plain text as --format dot, or full trees for --support)."""
    base = ("why", "examples/loans/loans.cvg", "--facts", "examples/loans/facts.json")
    for args in (('decision("l1", "reject")', "--support", "--format", "dot"),
                 ('decision("l1", "reject")', "--support", "--format", "mermaid"),
                 ('decision(l, "reject")', "--support"),
                 ('decision(l, "reject")', "--all"),
                 ('decision(l, "reject")', "--support", "--format", "json")):
        out = converge(*base, *args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert out.stdout == "" and "Error:" in out.stderr and "Traceback" not in out.stderr
    ok = converge(*base, 'decision("l1", "reject")', "--support", "--format", "json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["support"]


def test_dot_and_mermaid_mark_a_node_cut_by_depth() -> None:
    """With --depth, a derived fact whose premises are cut off must not look like a fact
    without premises: its label says so, as the text tree's "..." and JSON's "truncated"."""
    base = ("why", "examples/loans/loans.cvg", "--facts", "examples/loans/facts.json", 'decision("l1", "reject")',
            "--depth", "1")
    dot = converge(*base, "--format", "dot")
    assert dot.returncode == 0, dot.stderr
    labels = dot_labels(dot.stdout)
    risk = [v for v in labels.values() if v[0].startswith("risk(")]
    assert risk == [['risk("l1", "amount above 5x income")', "[flag_high_risk at examples/loans/loans.cvg:19, cycle 1]",
                     "(premises not shown: depth limit)"]]
    assert all(len(v) == 2 for v in labels.values() if not v[0].startswith("risk("))
    mermaid = converge(*base, "--format", "mermaid")
    assert [v for v in mermaid_labels(mermaid.stdout).values() if v[0].startswith("risk(")] == risk
