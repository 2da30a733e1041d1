"""The dependency graph (networkx): relations and agents as nodes, edges
labelled positive / negative / aggregate. Strongly connected components give
the strata; a negative or aggregate edge inside a component is a program
that cannot be stratified."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._frozen import frozen
from ..diagnostics import Diagnostic
from ..syntax import ast
from .program import Program

if TYPE_CHECKING:  # networkx is imported when a graph is built, not at start-up
    import networkx as nx


def rel_node(name: str) -> str:
    return f"rel:{name}"


def agent_node(agent_id: int) -> str:
    return f"agent:{agent_id}"


def body_reads(body: tuple[ast.Literal, ...]) -> list[tuple[str, str, ast.Atom]]:
    """(relation, kind, atom) for each atom a body reads; kind is positive, negative or aggregate."""
    out: list[tuple[str, str, ast.Atom]] = []
    for lit in body:
        if isinstance(lit, ast.Atom):
            out.append((lit.relation, "positive", lit))
        elif isinstance(lit, ast.Negation):
            out.append((lit.atom.relation, "negative", lit.atom))
        elif isinstance(lit, ast.Comparison):
            for side in (lit.left, lit.right):
                if isinstance(side, ast.Aggregate):
                    for rel, _kind, atom in body_reads(side.body):
                        out.append((rel, "aggregate", atom))
    return out


@frozen
class Strata:
    """What scheduling needs from the graph (plain data, so it can be cached)."""

    stratum_of: dict[str, int]            # relation -> stratum index
    ancestor_agents: dict[str, tuple[int, ...]]  # relation -> agents that can (transitively) write it


def goal_pruned(program: Program, strata: Strata, goals: tuple[str, ...] | list[str]) -> frozenset[int]:
    """The ids of the agents pruned for ``goals``: those that cannot contribute to a goal
    relation nor to a relation an invariant or acceptance check reads (none without goals).

    The engine prunes exactly these before the first cycle; explanations of a result (or of
    a decision record, from its recorded rules and goals) use the same answer."""
    if not goals:
        return frozenset()
    keep: set[int] = set()
    targets = list(goals) + [rel for inv in program.invariants for rel, _k, _a in body_reads(inv.body)]
    for rel in targets:
        keep.update(strata.ancestor_agents.get(rel, ()))
    return frozenset(a.id for a in program.agents if a.id not in keep)


def build_graph(program: Program) -> "nx.DiGraph":
    import networkx as nx

    graph = nx.DiGraph()
    for name in sorted(program.relations):
        graph.add_node(rel_node(name), kind="relation", name=name)
    for agent in program.agents:
        node = agent_node(agent.id)
        graph.add_node(node, kind="agent", name=agent.name)
        for rel, kind, _atom in body_reads(agent.body):
            prev = graph.get_edge_data(rel_node(rel), node)
            if prev is None or prev["kind"] == "positive":
                graph.add_edge(rel_node(rel), node, kind=kind)
        for head in agent.heads:
            graph.add_edge(node, rel_node(head.relation), kind="emit")
    return graph


def stratify(program: Program) -> tuple[Strata | None, list[Diagnostic]]:
    import networkx as nx

    graph = build_graph(program)
    diags: list[Diagnostic] = []
    condensed = nx.condensation(graph)
    members = condensed.graph["mapping"]
    for u, v, data in sorted(graph.edges(data=True)):
        if data["kind"] in ("negative", "aggregate") and members[u] == members[v]:
            cycle = _cycle_through(graph, u, v)
            agent = next(a for a in program.agents if a.id == int(v.split(":")[1]))
            atom = next(a for rel, kind, a in body_reads(agent.body)
                        if rel_node(rel) == u and kind == data["kind"])
            what = "negation" if data["kind"] == "negative" else "aggregation"
            diags.append(Diagnostic("E402", f"{what} of {u[4:]!r} inside recursion cannot be stratified", atom.span, "error",
                                    (f"cycle: {cycle}", f"{u[4:]} must be complete before {agent.name} reads it with {what}, but it depends on {agent.name}'s own output")))
    if diags:
        return None, diags
    order = list(nx.topological_sort(condensed))
    # Stable stratum numbers: a component's stratum is its longest-path depth.
    depth: dict[int, int] = {}
    for comp in order:
        preds = list(condensed.predecessors(comp))
        depth[comp] = max((depth[p] + (1 if _has_nonpositive(graph, condensed, p, comp) else 0) for p in preds), default=0)
    stratum_of = {n[4:]: depth[members[n]] for n in graph.nodes if n.startswith("rel:")}
    ancestors: dict[str, tuple[int, ...]] = {}
    for name in program.relations:
        anc = nx.ancestors(graph, rel_node(name))
        ancestors[name] = tuple(sorted(int(a.split(":")[1]) for a in anc if a.startswith("agent:")))
    return Strata(stratum_of, ancestors), diags


def _has_nonpositive(graph: "nx.DiGraph", condensed: "nx.DiGraph", a: int, b: int) -> bool:
    for u in condensed.nodes[a]["members"]:
        for v in graph.successors(u):
            if v in condensed.nodes[b]["members"] and graph.edges[u, v]["kind"] in ("negative", "aggregate"):
                return True
    return False


def _cycle_through(graph: "nx.DiGraph", u: str, v: str) -> str:
    import networkx as nx

    path = nx.shortest_path(graph, v, u)
    names = [graph.nodes[n]["name"] for n in [u] + path]
    return " -> ".join(names)
