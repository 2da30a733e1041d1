"""Explanations of proofs thousands of levels deep (a transitive closure along a chain):
every walk over a proof uses an explicit stack, so no format, command or API call hits
Python's recursion limit (which the library must not raise)."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

import converge_rules as cr
from converge_rules.explain.render import JSON_INDENT_CAP, dumps_tree_json
from converge_rules.values import dumps_json, dumps_json_iterative

ROOT = Path(__file__).resolve().parent.parent
N = 1500  # proof depth: past the default recursion limit of 1000 (and the JSON encoders' nesting limit)
RULES = """input relation start(a: str)
input relation edge(a: str, b: str)
relation path(a: str, b: str)
path(x, y) :- start(x), edge(x, y).
path(x, z) :- path(x, y), edge(y, z).
"""
# The same closure with the edge first: a missing path then blocks on path(x, y) with y
# bound, so why-not --depth follows the chain back one fact per level.
RULES_EDGE_FIRST = RULES.replace("path(x, z) :- path(x, y), edge(y, z).", "path(x, z) :- edge(y, z), path(x, y).")
DEEP = f'path("n0", "n{N}")'


def converge(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "converge_rules", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("chain")
    (d / "tc.cvg").write_text(RULES)
    (d / "tc2.cvg").write_text(RULES_EDGE_FIRST)
    (d / "edge.facts").write_text("".join(f"n{i}\tn{i + 1}\n" for i in range(N)))
    (d / "start.facts").write_text("n0\n")
    return d


@pytest.fixture(scope="module")
def result() -> cr.Result:
    facts = {"start": [("n0",)], "edge": [(f"n{i}", f"n{i + 1}") for i in range(N)]}
    return cr.load_text(RULES).run(facts=facts)


def json_shape(text: str) -> tuple[int, int]:
    """(objects, deepest nesting) of a JSON text, checked without recursion: tokens in a
    valid order, brackets balanced, one document."""
    tokens = re.finditer(r'\s*(?:("(?:[^"\\]|\\.)*")|(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null)|([{}\[\]:,]))', text)
    stack: list[str] = []
    objects = deepest = 0
    end = 0
    expect_value = True
    for m in tokens:
        assert m.start() == end, f"bad JSON near {text[end:end + 40]!r}"
        end = m.end()
        punct = m.group(3)
        if punct in ("{", "["):
            assert expect_value
            stack.append(punct)
            objects += punct == "{"
            deepest = max(deepest, len(stack))
        elif punct in ("}", "]"):
            assert stack and stack.pop() == ("{" if punct == "}" else "[")
            expect_value = False
        elif punct in (":", ","):
            expect_value = True
        else:
            expect_value = False
    assert text[end:].strip() == "" and not stack
    return objects, deepest


def count_nodes(text: str) -> dict[str, int]:
    return {rel: len(re.findall(r'"text": "' + rel + r'\(', text)) for rel in ("path", "edge", "start")}


# ---------------------------------------------------------------- API


def test_api_tree_every_format(result: cr.Result) -> None:
    tree = result.why(DEEP)
    assert tree is not None
    text = cr.render_text(tree)
    lines = text.split("\n")
    assert len(lines) == 3 * N + 1  # per level the fact, its bindings and its edge; then start
    assert lines[0].startswith(DEEP) and sum('start("n0")' in line for line in lines) == 1
    assert sum(1 for line in lines if "path(" in line.split("[")[0] and "with" not in line) == N
    js = cr.render_json(tree)
    assert count_nodes(js) == {"path": N, "edge": N, "start": 1}
    objects, deepest = json_shape(js)
    assert deepest >= 2 * N
    # nodes: N paths, N edges, start; edges: two premises per path
    dot = cr.render_dot(tree).split("\n")
    assert sum("[label=" in line and "->" not in line for line in dot) == 2 * N + 1
    assert sum("->" in line for line in dot) == 2 * N
    mermaid = cr.render_mermaid(tree).split("\n")
    assert sum("-->" in line for line in mermaid) == 2 * N and len(mermaid) == 1 + (2 * N + 1) + 2 * N
    as_dict = tree.to_json()  # nested dicts, as deep as the proof
    node, depth = as_dict, 0
    while "premises" in node and isinstance(node["premises"][0], dict):
        node, depth = node["premises"][0], depth + 1
    assert depth == N and node["text"] == 'start("n0")'


def test_api_depth_bound_and_why_not(result: cr.Result) -> None:
    tree = result.why(DEEP, depth=10)
    assert tree is not None and json.loads(cr.render_json(tree))["text"] == DEEP  # shallow: any reader works
    w = result.why_not(DEEP)  # it holds: the explanation carries the deep proof
    assert w.holds and w.proof is not None
    assert len(w.render_text().split("\n")) == 3 * N + 2
    assert count_nodes(w.render_json())["path"] == N


def test_api_why_not_deep_chain() -> None:
    """why-not --depth follows a chain of missing premises; 600 levels are more than the
    recursive explainer could follow (two frames per level)."""
    n = 600
    res = cr.load_text(RULES_EDGE_FIRST).run(facts={"edge": [(f"n{i}", f"n{i + 1}") for i in range(n)]})
    w = res.why_not(f'path("n0", "n{n}")', depth=n + 10)
    text = w.render_text()
    assert text.count("why not path(") == n
    js = w.render_json()
    assert js.count('"fact": "path(') == n + 1
    json_shape(js)


def test_record_why_deep(result: cr.Result) -> None:
    record = cr.Record.from_result(result)
    again = cr.Record.from_json(record.to_json())
    assert len(again.why_text(DEEP).rstrip("\n").split("\n")) == 3 * N + 1
    assert count_nodes(dumps_tree_json(again.why_json(DEEP)))["edge"] == N


# ---------------------------------------------------------------- command line


def test_cli_why_every_format(chain: Path) -> None:
    facts = ["--facts", "edge.facts", "--facts", "start.facts"]
    out = converge("why", "tc.cvg", *facts, DEEP, cwd=chain)
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.rstrip("\n").split("\n")) == 3 * N + 1
    out = converge("why", "tc.cvg", *facts, DEEP, "--format", "json", cwd=chain)
    assert out.returncode == 0, out.stderr
    assert count_nodes(out.stdout) == {"path": N, "edge": N, "start": 1}
    assert json_shape(out.stdout)[1] >= 2 * N
    for fmt, arrow in (("mermaid", "-->"),):  # dot and mermaid share the walk; the API test checks both
        out = converge("why", "tc.cvg", *facts, DEEP, "--format", fmt, cwd=chain)
        assert out.returncode == 0, out.stderr
        assert out.stdout.count(arrow) == 2 * N


def test_cli_record_report_verify_query(chain: Path) -> None:
    facts = ["--facts", "edge.facts", "--facts", "start.facts"]
    out = converge("run", "tc.cvg", *facts, "--record", "rec.json", "--format", "summary", "-q", cwd=chain)
    assert out.returncode == 0, out.stderr
    out = converge("why", "--record", "rec.json", DEEP, "--format", "json", cwd=chain)
    assert out.returncode == 0, out.stderr
    assert count_nodes(out.stdout)["path"] == N
    out = converge("verify", "--record", "rec.json", cwd=chain)
    assert out.returncode == 0, out.stdout + out.stderr
    # the fourth path in the table is path("n0", "n1000"): a tree 1,000 levels deep
    out = converge("report", "--record", "rec.json", "-o", "report.html", "--depth", str(N + 1), "--max-proofs", "4",
                   cwd=chain)
    assert out.returncode == 0, out.stderr
    html = (chain / "report.html").read_text()
    assert "tree limit" in html and html.count("<details class=\"pn derived\"") >= 4
    out = converge("query", "--record", "rec.json", DEEP, "--why", "--format", "json", cwd=chain)
    assert out.returncode == 0, out.stderr
    assert count_nodes(out.stdout)["edge"] == N
    out = converge("why-not", "--record", "rec.json", DEEP, "--format", "json", cwd=chain)
    assert out.returncode == 0 and count_nodes(out.stdout)["path"] == N


def test_cli_why_not_deep_chain(chain: Path) -> None:
    levels = 1200  # more than the recursive explainer could follow; the JSON grows with the square of it
    out = converge("why-not", "tc2.cvg", "--facts", "edge.facts", DEEP, "--depth", str(levels), "--format", "json",
                   cwd=chain)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count('"fact": "path(') == levels


# ---------------------------------------------------------------- the iterative JSON encoder


def _value(rnd: random.Random, depth: int) -> object:
    r = rnd.random()
    if depth > 5 or r < 0.3:
        return rnd.choice([0, -3, 10 ** 30, 1.5, -0.0, 1e300, True, False, None, "", 'a"b\\\n', "é✓\u2028😀", "\x00"])
    if r < 0.6:
        return [_value(rnd, depth + 1) for _ in range(rnd.randrange(4))]
    if r < 0.7:
        return tuple(_value(rnd, depth + 1) for _ in range(rnd.randrange(3)))
    return {rnd.choice(["k", "é", "z", "a", "b\n"]) + str(i): _value(rnd, depth + 1) for i in range(rnd.randrange(4))}


def test_iterative_encoder_writes_what_json_dumps_writes() -> None:
    rnd = random.Random(20240611)
    options: list[dict[str, object]] = [
        {}, {"indent": 2}, {"indent": 2, "ensure_ascii": False}, {"indent": "\t"}, {"indent": 0},
        {"sort_keys": True, "ensure_ascii": False, "separators": (",", ":")}, {"indent": 3, "sort_keys": True},
        {"indent": 2, "ensure_ascii": False, "max_indent_level": JSON_INDENT_CAP}]
    for _ in range(500):
        value = _value(rnd, 0)
        for kw in options:
            std = {k: v for k, v in kw.items() if k != "max_indent_level"}
            assert dumps_json_iterative(value, **kw) == json.dumps(value, **std)  # type: ignore[arg-type]
    for value in ({1: 2, 1.5: 3, True: 4, "n": None}, [float("nan"), float("inf")], [], {}, [[]], [{}]):
        assert dumps_json_iterative(value, indent=2) == json.dumps(value, indent=2)
    assert dumps_json_iterative({(1,): 2, "a": 1}, skipkeys=True) == json.dumps({(1,): 2, "a": 1}, skipkeys=True)
    circular: list[object] = []
    circular.append(circular)
    with pytest.raises(ValueError, match="Circular"):
        dumps_json(circular)
    with pytest.raises(TypeError):
        dumps_json_iterative(object())
    assert dumps_json([10 ** 5000]) == dumps_json_iterative([10 ** 5000]) == "[" + "1" + "0" * 5000 + "]"


def test_deep_json_falls_back_and_caps_indentation() -> None:
    deep: dict[str, object] = {}
    node = deep
    for i in range(3000):
        child: dict[str, object] = {"i": i}
        node["next"] = [child]
        node = child
    text = dumps_json(deep, indent=2)  # json.dumps raises RecursionError: the same text, iteratively
    assert text == dumps_json_iterative(deep, indent=2) and json_shape(text) == (3001, 6001)
    capped = dumps_tree_json(deep)
    assert max(len(line) - len(line.lstrip(" ")) for line in capped.split("\n")) == 2 * JSON_INDENT_CAP
    assert [line.lstrip(" ") for line in capped.split("\n")] == [line.lstrip(" ") for line in text.split("\n")]
