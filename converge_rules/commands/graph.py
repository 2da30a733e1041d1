"""`converge graph`: the dependency graph of relations and agents, as DOT, Mermaid or JSON.

Nodes are relations and agents (Datalog rules included, named ``rel#k``);
an edge relation -> agent means the agent reads the relation (positively,
negatively with ``not``, or inside an aggregate), an edge agent -> relation
means the agent emits into it. Relations are grouped by stratum; an agent is
drawn in the stratum of the relations it emits into (the lowest, if several).
Every list is sorted, so the output is the same on every run.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ..values import dumps_json
from .common import EXIT_OK, fail_diagnostics, write_json

EXAMPLE = "Example: converge graph examples/loans/loans.cvg | dot -Tsvg > loans.svg"


def _node_key(node: str) -> tuple[int, str, int]:
    kind, _, rest = node.partition(":")
    return (0, rest, 0) if kind == "rel" else (1, "", int(rest))


def graph_data(program: Any) -> dict[str, Any]:
    """The graph as plain, sorted data (the JSON output)."""
    from ..compile.graph import body_reads, build_graph, stratify

    g = build_graph(program)
    strata, diags = stratify(program)
    if strata is None:  # pragma: no cover - load() already rejects unstratifiable programs
        from ..diagnostics import ConvergeError

        raise ConvergeError(diags)
    stratum_of = strata.stratum_of
    relations = []
    for name in sorted(program.relations):
        rel = program.relations[name]
        key = None
        if rel.key is not None:
            key = {"columns": [rel.columns[i].name for i in rel.key.columns], "prefer": rel.key.prefer,
                   "column": rel.columns[rel.key.column].name}
        relations.append({"name": name, "input": rel.is_input, "stratum": stratum_of[name],
                          "columns": [{"name": c.name, "type": c.type} for c in rel.columns], "key": key})
    agents = []
    for agent in sorted(program.agents, key=lambda a: a.id):
        writes = sorted({h.relation for h in agent.heads})
        reads = sorted({(rel, kind) for rel, kind, _atom in body_reads(agent.body)})
        agents.append({"id": f"agent:{agent.id}", "name": agent.name, "kind": agent.kind,
                       "file": agent.span.file, "line": agent.span.line,
                       "stratum": min((stratum_of[w] for w in writes), default=0),
                       "reads": [{"relation": r, "kind": k} for r, k in reads], "writes": writes})
    edges = [{"from": u, "to": v, "kind": data["kind"]}
             for u, v, data in sorted(g.edges(data=True), key=lambda e: (_node_key(e[0]), _node_key(e[1])))]
    count = max(stratum_of.values(), default=-1) + 1
    layers: list[list[str]] = [[] for _ in range(count)]
    for name in sorted(stratum_of):
        layers[stratum_of[name]].append(name)
    return {"relations": relations, "agents": agents, "edges": edges, "strata": layers}


# ---------------------------------------------------------------- DOT

def _q(text: str) -> str:
    """A DOT double-quoted string drawn as exactly ``text`` (see explain.render.dot_quote)."""
    from ..explain.render import dot_quote

    return dot_quote(text)


_DOT_EDGE = {"positive": "", "negative": ' [style=dashed, color=red, fontcolor=red, label="not"]',
             "aggregate": ' [style=dotted, color=blue, fontcolor=blue, label="agg"]', "emit": ""}


def render_dot(data: dict[str, Any]) -> str:
    out = ["digraph converge {", "  rankdir=LR;", '  node [fontname="Helvetica"];', '  edge [fontname="Helvetica"];']
    for k, names in enumerate(data["strata"]):
        out.append(f"  subgraph cluster_stratum_{k} {{")
        out.append(f'    label="stratum {k}";')
        out.append('    style="rounded,dashed";')
        members = set(names)
        for rel in data["relations"]:
            if rel["name"] in members:
                style = 'shape=box, style=filled, fillcolor="#e8f0fe"' if rel["input"] else "shape=box"
                cols = ", ".join(f"{c['name']}: {c['type']}" for c in rel["columns"])
                tip = f"{'input ' if rel['input'] else ''}relation {rel['name']}({cols})"
                out.append(f"    {_q('rel:' + rel['name'])} [label={_q(rel['name'])}, {style}, tooltip={_q(tip)}];")
        for agent in data["agents"]:
            if agent["stratum"] == k:
                tip = f"{agent['kind']} {agent['name']} at {agent['file']}:{agent['line']}"
                out.append(f"    {_q(agent['id'])} [label={_q(agent['name'])}, shape=ellipse, tooltip={_q(tip)}];")
        out.append("  }")
    for e in data["edges"]:
        out.append(f"  {_q(e['from'])} -> {_q(e['to'])}{_DOT_EDGE[e['kind']]};")
    out.append("}")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- Mermaid

def _mq(text: str) -> str:
    """A Mermaid quoted label (entity codes for the characters Mermaid reads itself; see
    explain.render.mermaid_quote)."""
    from ..explain.render import mermaid_quote

    return mermaid_quote(text)


_MERMAID_EDGE = {"positive": "-->", "negative": "-.->|not|", "aggregate": "==>|agg|", "emit": "-->"}


def render_mermaid(data: dict[str, Any]) -> str:
    ids = {f"rel:{rel['name']}": f"r{k}" for k, rel in enumerate(data["relations"])}
    ids.update({agent["id"]: "a" + agent["id"].split(":")[1] for agent in data["agents"]})
    out = ["graph LR"]
    for k, names in enumerate(data["strata"]):
        out.append(f'  subgraph stratum_{k} ["stratum {k}"]')
        members = set(names)
        for rel in data["relations"]:
            if rel["name"] in members:
                out.append(f"    {ids['rel:' + rel['name']]}[{_mq(rel['name'])}]")
        for agent in data["agents"]:
            if agent["stratum"] == k:
                out.append(f"    {ids[agent['id']]}([{_mq(agent['name'])}])")
        out.append("  end")
    red = []
    for n, e in enumerate(data["edges"]):
        out.append(f"  {ids[e['from']]} {_MERMAID_EDGE[e['kind']]} {ids[e['to']]}")
        if e["kind"] == "negative":
            red.append(str(n))
    inputs = [ids["rel:" + r["name"]] for r in data["relations"] if r["input"]]
    out.append("  classDef input fill:#e8f0fe,stroke:#4a6fa5")
    if inputs:
        out.append(f"  class {','.join(inputs)} input")
    if red:
        out.append(f"  linkStyle {','.join(red)} stroke:red,color:red")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- the command

@click.command(epilog=EXAMPLE)
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--format", "fmt", type=click.Choice(["dot", "mermaid", "json"]), default="dot", show_default=True)
def graph(paths: tuple[str, ...], fmt: str) -> None:
    """Print the dependency graph of PATHS (rule files, or directories searched for *.cvg).

    Relations are boxes (input relations filled), agents and rules ellipses;
    negative edges (not) are dashed and red, aggregate edges dotted; relations
    are grouped by stratum. Exit codes: 0 ok, 1 invalid rules, 2 usage error.
    """
    from ..api import load
    from ..diagnostics import ConvergeError
    from .fmt import cvg_paths

    files = cvg_paths(paths)
    if not files:
        raise click.UsageError(f"no .cvg files in {', '.join(paths)}")
    try:
        data = graph_data(load(files).program)
    except ConvergeError as err:
        fail_diagnostics(err)
    if fmt == "json":
        write_json(dumps_json(data, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(render_dot(data) if fmt == "dot" else render_mermaid(data))
    sys.exit(EXIT_OK)
