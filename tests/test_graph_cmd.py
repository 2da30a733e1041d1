"""`converge graph`: the dependency graph as DOT, Mermaid and JSON."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import converge_rules as cr
from converge_rules.compile.graph import build_graph, stratify

ROOT = Path(__file__).resolve().parent.parent
LOANS = "examples/loans/loans.cvg"
GRAPH = "examples/graph/graph.cvg"
EXAMPLES = [LOANS, GRAPH]


def converge(*args: str, seed: str = "0") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1", PYTHONHASHSEED=seed)
    return subprocess.run([sys.executable, "-m", "converge_rules", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def graph_json(path: str) -> dict:
    out = converge("graph", path, "--format", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


# ---------------------------------------------------------------- DOT

QUOTED = r'"(?:[^"\\]|\\.)*"'


def parse_dot(text: str) -> tuple[dict[str, str], list[tuple[str, str, str]], dict[str, list[str]]]:
    """A small structural DOT reader: (node -> attributes, edges (from, to, attributes), cluster -> nodes)."""
    assert text.startswith("digraph converge {\n") and text.endswith("}\n")
    depth, in_str, escaped = 0, False, False
    for ch in text:  # braces balance outside quoted strings
        if in_str:
            in_str, escaped = (in_str, False) if escaped else (ch != '"', ch == "\\")
        elif ch == '"':
            in_str = True
        elif ch in "{}":
            depth += 1 if ch == "{" else -1
            assert depth >= 0
    assert depth == 0 and not in_str
    nodes: dict[str, str] = {}
    edges: list[tuple[str, str, str]] = []
    clusters: dict[str, list[str]] = {}
    cluster = None
    for line in text.splitlines()[1:-1]:
        line = line.strip()
        if m := re.fullmatch(r"subgraph (cluster_\w+) \{", line):
            cluster = m.group(1)
            clusters[cluster] = []
        elif line == "}":
            cluster = None
        elif m := re.fullmatch(rf"({QUOTED}) -> ({QUOTED})(?: \[(.*)\])?;", line):
            edges.append((json.loads(m.group(1)), json.loads(m.group(2)), m.group(3) or ""))
        elif m := re.fullmatch(rf"({QUOTED}) \[(.*)\];", line):
            node = json.loads(m.group(1))
            assert node not in nodes, f"node {node} declared twice"
            nodes[node] = m.group(2)
            if cluster is not None:
                clusters[cluster].append(node)
        else:
            assert re.fullmatch(r'(rankdir=LR|node \[.*\]|edge \[.*\]|label=".*"|style=".*");', line), line
    return nodes, edges, clusters


@pytest.mark.parametrize("path", EXAMPLES)
def test_dot_is_well_formed_and_complete(path: str) -> None:
    out = converge("graph", path)  # dot is the default
    assert out.returncode == 0, out.stderr
    assert converge("graph", path, "--format", "dot").stdout == out.stdout
    nodes, edges, clusters = parse_dot(out.stdout)
    data = graph_json(path)
    for s, e, _ in edges:
        assert s in nodes and e in nodes, f"edge {s} -> {e} has an undeclared endpoint"
    assert len(edges) == len(data["edges"])
    assert set(nodes) == {f"rel:{r['name']}" for r in data["relations"]} | {a["id"] for a in data["agents"]}
    # relations are boxes, input ones filled; agents are ellipses labelled with their name
    for rel in data["relations"]:
        attrs = nodes[f"rel:{rel['name']}"]
        assert "shape=box" in attrs and f'label="{rel["name"]}"' in attrs
        assert ("style=filled" in attrs) == rel["input"]
        assert f"rel:{rel['name']}" in clusters[f"cluster_stratum_{rel['stratum']}"]
    for agent in data["agents"]:
        assert "shape=ellipse" in nodes[agent["id"]] and f'label="{agent["name"]}"' in nodes[agent["id"]]
    assert sorted(clusters) == sorted(f"cluster_stratum_{k}" for k in range(len(data["strata"])))
    for s, e, attrs in edges:
        kind = next(x["kind"] for x in data["edges"] if (x["from"], x["to"]) == (s, e))
        assert ('label="not"' in attrs and "style=dashed" in attrs and "color=red" in attrs) == (kind == "negative")
        assert ('label="agg"' in attrs and "style=dotted" in attrs) == (kind == "aggregate")


def test_dot_marks_the_negative_and_aggregate_edges_of_the_loans_example() -> None:
    nodes, edges, _ = parse_dot(converge("graph", LOANS).stdout)
    names = {n: re.search(r'label="([^"]*)"', a).group(1) for n, a in nodes.items()}  # type: ignore[union-attr]
    labelled = {(names[s], names[e], attrs) for s, e, attrs in edges}
    assert any(s == "risk" and e == "decision#1" and 'label="not"' in a and "dashed" in a for s, e, a in labelled)
    assert any(s == "loan" and e == "portfolio#1" and 'label="agg"' in a for s, e, a in labelled)
    assert ("flag_high_risk", "risk", "") in labelled


# ---------------------------------------------------------------- Mermaid

@pytest.mark.parametrize("path", EXAMPLES)
def test_mermaid(path: str) -> None:
    out = converge("graph", path, "--format", "mermaid")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "graph LR"
    data = graph_json(path)
    assert sum(1 for ln in lines if ln.strip().startswith("subgraph stratum_")) == len(data["strata"])
    assert sum(1 for ln in lines if ln.strip() == "end") == len(data["strata"])
    declared = {m.group(1) for ln in lines if (m := re.fullmatch(r"    (\w+)(\[|\(\[).*", ln))}
    assert len(declared) == len(data["relations"]) + len(data["agents"])
    arrows = [re.fullmatch(r"  (\w+) (-->|-\.->\|not\||==>\|agg\|) (\w+)", ln) for ln in lines]
    arrows = [m for m in arrows if m]
    assert len(arrows) == len(data["edges"])
    for m in arrows:
        assert m.group(1) in declared and m.group(3) in declared
    kinds = [e["kind"] for e in data["edges"]]
    assert [m.group(2) for m in arrows].count("-.->|not|") == kinds.count("negative") > 0
    assert [m.group(2) for m in arrows].count("==>|agg|") == kinds.count("aggregate")
    if any(r["input"] for r in data["relations"]):
        assert any(ln.startswith("  class ") and ln.endswith(" input") for ln in lines)
    assert "#35;" in out.stdout  # rule names such as path#1 are escaped


# ---------------------------------------------------------------- JSON

@pytest.mark.parametrize("path", EXAMPLES)
def test_json_schema_and_consistency(path: str) -> None:
    data = graph_json(path)
    assert list(data) == ["relations", "agents", "edges", "strata"]
    program = cr.load([path]).program
    strata, _ = stratify(program)
    assert strata is not None
    names = [r["name"] for r in data["relations"]]
    assert names == sorted(program.relations)
    for rel in data["relations"]:
        assert set(rel) == {"name", "input", "stratum", "columns", "key"}
        assert rel["input"] == program.relations[rel["name"]].is_input
        assert rel["stratum"] == strata.stratum_of[rel["name"]]
        assert rel["name"] in data["strata"][rel["stratum"]]
        assert [c["name"] for c in rel["columns"]] == [c.name for c in program.relations[rel["name"]].columns]
        assert all(set(c) == {"name", "type"} for c in rel["columns"])
    assert sorted(n for layer in data["strata"] for n in layer) == sorted(names)
    assert all(layer == sorted(layer) for layer in data["strata"])
    assert [a["name"] for a in data["agents"]] == [a.name for a in program.agents]
    for agent in data["agents"]:
        assert {"name", "file", "line", "reads", "writes"} <= set(agent)
        assert agent["file"] == path and agent["line"] > 0
        assert agent["writes"] and agent["writes"] == sorted(agent["writes"])
        assert all(set(r) == {"relation", "kind"} for r in agent["reads"])
        assert all(r["kind"] in ("positive", "negative", "aggregate") for r in agent["reads"])
    g = build_graph(program)
    assert sorted((e["from"], e["to"], e["kind"]) for e in data["edges"]) == \
        sorted((u, v, d["kind"]) for u, v, d in g.edges(data=True))


def test_json_details_of_the_graph_example() -> None:
    data = graph_json(GRAPH)
    agents = {a["name"]: a for a in data["agents"]}
    assert agents["unreachable#1"]["reads"] == [{"relation": "node", "kind": "positive"},
                                                {"relation": "reachable", "kind": "negative"}]
    assert agents["unreachable#1"]["writes"] == ["unreachable"]
    assert agents["path#2"]["reads"] == [{"relation": "edge", "kind": "positive"}, {"relation": "path", "kind": "positive"}]
    rels = {r["name"]: r for r in data["relations"]}
    assert rels["edge"]["input"] and not rels["path"]["input"]
    assert rels["unreachable"]["stratum"] > rels["reachable"]["stratum"]
    assert {"from": "rel:reachable", "to": f"agent:{program_id(GRAPH, 'unreachable#1')}", "kind": "negative"} in data["edges"]


def program_id(path: str, name: str) -> int:
    agent = cr.load([path]).program.agent(name)
    assert agent is not None
    return agent.id


def test_output_is_deterministic_across_hash_seeds() -> None:
    for fmt in ("dot", "mermaid", "json"):
        a = converge("graph", LOANS, "--format", fmt, seed="1").stdout
        b = converge("graph", LOANS, "--format", fmt, seed="2").stdout
        assert a == b and a


def test_directories_errors_and_usage(tmp_path: Path) -> None:
    assert converge("graph", "examples/graph").stdout == converge("graph", GRAPH).stdout
    bad = tmp_path / "bad.cvg"
    bad.write_text("relation p(x: int)\np(x) :- q(x).\n")
    out = converge("graph", str(bad))
    assert out.returncode == 1 and "error[E200]" in out.stderr and "Traceback" not in out.stderr
    assert out.stdout == ""
    syntax = converge("graph", "examples/failures/syntax_error.invalid")
    assert syntax.returncode == 1 and "error[E100]" in syntax.stderr
    assert converge("graph", LOANS, "--format", "png").returncode == 2
    assert converge("graph").returncode == 2
    (tmp_path / "empty").mkdir()
    assert converge("graph", str(tmp_path / "empty")).returncode == 2
    help_text = converge("graph", "--help")
    assert help_text.returncode == 0 and "Example: converge graph" in help_text.stdout
