"""Proof trees rendered as text, JSON, DOT and Mermaid.

A proof tree is built from per-fact proofs; shared sub-proofs are expanded
once and referenced afterwards, so output stays linear in the proof DAG.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

from ..values import dumps_json
from ..values import format_fact
from .proofs import Proof, pattern_text


@dataclass
class ProofNode:
    proof: Proof
    children: list["ProofNode"] = field(default_factory=list)
    repeated: bool = False      # already expanded elsewhere in the tree
    truncated: bool = False     # cut by the depth limit

    @property
    def text(self) -> str:
        return self.proof.text

    def to_json(self) -> dict[str, Any]:
        out = self.proof.to_json()
        out["text"] = self.text
        if not self.proof.is_input:
            out["negated"] = [{"fact": "not " + pattern_text(r, p), "absent": True} for r, p in self.proof.negated]
        if self.repeated:
            out["repeated"] = True
        if self.truncated:
            out["truncated"] = True
        if self.children:
            out["premises"] = [c.to_json() for c in self.children]
        return out


def build_tree(root: Proof, lookup: Callable[[str, tuple], Proof | None], depth: int | None = None) -> ProofNode:
    seen: set[tuple[str, tuple]] = set()

    def build(proof: Proof, level: int) -> ProofNode:
        key = (proof.relation, proof.fact)
        node = ProofNode(proof)
        if proof.is_input:
            return node
        if key in seen:
            node.repeated = True
            return node
        seen.add(key)
        if depth is not None and level >= depth:
            node.truncated = bool(proof.premises)
            return node
        for rel, fact in proof.premises:
            child = lookup(rel, fact)
            if child is not None:
                node.children.append(build(child, level + 1))
        return node

    return build(root, 0)


def _where(p: Proof) -> str:
    conf = f", confidence {p.confidence:g}" if p.confidence < 1.0 else ""
    if p.is_input:
        if p.source is None:
            return "input" + conf
        return f"input, {p.source[0]}" + (f":{p.source[1]}" if p.source[1] else "") + conf
    loc = f" at {p.agent_span.file}:{p.agent_span.line}" if p.agent_span else ""
    return f"{p.agent}{loc}, cycle {p.cycle}{conf}"


def render_text(node: ProofNode) -> str:
    lines: list[str] = []

    def walk(n: ProofNode, prefix: str, connector: str, child_prefix: str) -> None:
        p = n.proof
        suffix = " (shown above)" if n.repeated else (" ..." if n.truncated else "")
        if p.superseded_by is not None:
            suffix += f" (superseded in cycle {p.superseded_by[1]} by {format_fact(p.relation, p.superseded_by[0])})"
        lines.append(f"{prefix}{connector}{p.text}  [{_where(p)}]{suffix}")
        if p.is_input or n.repeated:
            return
        inner = prefix + child_prefix
        if p.bindings:
            binding = ", ".join(f"{k} = {_v(v)}" for k, v in p.bindings.items())
            lines.append(f"{inner}{'│' if (n.children or p.negated or p.conditions or p.aggregates) else ' '}   with {binding}")
        items: list[tuple[str, Any]] = [("node", c) for c in n.children]
        items += [("text", f"{t} = {_v(v)}") for t, v in p.aggregates]
        items += [("text", f"{c}  ✓ holds") for c in p.conditions]
        items += [("text", f"not {pattern_text(r, pat)}  ✓ checked absent") for r, pat in p.negated]
        for k, (kind, item) in enumerate(items):
            last = k == len(items) - 1
            conn = "└── " if last else "├── "
            nxt = "    " if last else "│   "
            if kind == "node":
                walk(item, inner, conn, nxt)
            else:
                lines.append(f"{inner}{conn}{item}")

    walk(node, "", "", "")
    return "\n".join(lines)


def _v(value: Any) -> str:
    from ..values import format_value

    return format_value(value)


def render_json(node: ProofNode) -> str:
    return dumps_json(node.to_json(), indent=2, ensure_ascii=False)


def _graph_nodes(node: ProofNode) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """(id, label, kind) nodes and (from, to, label) edges of the proof DAG."""
    ids: dict[str, str] = {}
    nodes: list[tuple[str, str, str]] = []
    edges: list[tuple[str, str, str]] = []

    def ident(text: str, label: str, kind: str) -> str:
        if text not in ids:
            ids[text] = f"n{len(ids)}"
            nodes.append((ids[text], label, kind))
        return ids[text]

    def walk(n: ProofNode) -> str:
        p = n.proof
        me = ident(p.text, f"{p.text}\\n[{_where(p)}]", "input" if p.is_input else "derived")
        if n.repeated:
            return me
        for c in n.children:
            edges.append((walk(c), me, p.agent or ""))
        for r, pat in p.negated:
            neg = ident("not " + pattern_text(r, pat), f"not {pattern_text(r, pat)}\\n(checked absent)", "negated")
            edges.append((neg, me, p.agent or ""))
        return me

    walk(node)
    return nodes, edges


def render_dot(node: ProofNode) -> str:
    nodes, edges = _graph_nodes(node)
    style = {"input": 'shape=box, style="rounded,filled", fillcolor="#e8f0fe"',
             "derived": 'shape=box, style="rounded"',
             "negated": 'shape=box, style="dashed"'}
    out = ["digraph proof {", "  rankdir=BT;", '  node [fontname="Helvetica"];']
    for nid, label, kind in nodes:
        out.append(f"  {nid} [label={dumps_json(label)}, {style[kind]}];")
    for a, b, label in edges:
        out.append(f"  {a} -> {b} [label={dumps_json(label)}];")
    out.append("}")
    return "\n".join(out)


def render_mermaid(node: ProofNode) -> str:
    nodes, edges = _graph_nodes(node)
    out = ["graph BT"]
    for nid, label, kind in nodes:
        text = label.replace('"', "#quot;").replace("\\n", "<br/>")
        shape = ("([", "])") if kind == "input" else (("[/", "/]") if kind == "negated" else ("[", "]"))
        out.append(f'  {nid}{shape[0]}"{text}"{shape[1]}')
    for a, b, label in edges:
        out.append(f'  {a} -->|"{label}"| {b}' if label else f"  {a} --> {b}")
    return "\n".join(out)


RENDERERS = {"text": render_text, "json": render_json, "dot": render_dot, "mermaid": render_mermaid}


def fact_key(relation: str, fact: tuple) -> str:
    return format_fact(relation, fact)
