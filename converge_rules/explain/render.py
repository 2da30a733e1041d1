"""Proof trees rendered as text, JSON, DOT and Mermaid.

A proof tree is built from per-fact proofs; shared sub-proofs are expanded
once and referenced afterwards, so output stays linear in the proof DAG.

Every walk over a tree uses an explicit stack, never recursion: a proof along a
chain of N facts is N levels deep (thousands, on a transitive closure), more than
Python's recursion limit, which a library must not raise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import re

from ..textsafe import escape_controls, one_line
from ..values import dumps_json_iterative
from ..values import format_fact
from .proofs import Proof, pattern_text


# Lines of a JSON proof tree nested deeper than this are indented no further: the
# text of trees up to ~50 proof levels is exactly ``json.dumps(indent=2)``'s, and a
# tree thousands of levels deep stays linear in size instead of quadratic.
JSON_INDENT_CAP = 100


def dumps_tree_json(data: Any) -> str:
    """JSON text of an explanation (a proof tree, a why-not, a list of them): indented
    by 2, non-ASCII kept, written without recursion whatever the depth (see JSON_INDENT_CAP)."""
    return dumps_json_iterative(data, indent=2, ensure_ascii=False, max_indent_level=JSON_INDENT_CAP)


@dataclass
class ProofNode:
    """One node of a proof tree: a proof and the trees of its premises."""

    proof: Proof
    children: list["ProofNode"] = field(default_factory=list)
    repeated: bool = False      # already expanded elsewhere in the tree
    truncated: bool = False     # cut by the depth limit

    @property
    def text(self) -> str:
        return self.proof.text

    def to_json(self) -> dict[str, Any]:
        """The tree as nested dicts: each node's proof, its text, and under "premises"
        the trees of its premises (or, for a leaf, the premises' facts).

        Built with an explicit stack; the result is as deep as the proof, so write it
        with ``dumps_tree_json`` (``json.dumps`` recurses per level)."""

        def one(n: "ProofNode") -> dict[str, Any]:
            out = n.proof.to_json()
            out["text"] = n.text
            if not n.proof.is_input:
                out["negated"] = [{"fact": "not " + pattern_text(r, p), "absent": True} for r, p in n.proof.negated]
            if n.repeated:
                out["repeated"] = True
            if n.truncated:
                out["truncated"] = True
            if n.children:
                out["premises"] = []  # keeps the key's place; filled below
            return out

        root = one(self)
        stack = [(self, root)]
        while stack:
            node, out = stack.pop()
            if node.children:
                premises = out["premises"]
                for child in node.children:
                    child_out = one(child)
                    premises.append(child_out)
                    stack.append((child, child_out))
        return root


def build_tree(root: Proof, lookup: Callable[[str, tuple], Proof | None], depth: int | None = None) -> ProofNode:
    """The proof tree of ``root``: premises looked up with ``lookup`` down to input facts
    (or ``depth`` levels, the rest marked truncated). A derived fact met again is marked
    repeated, not expanded twice: depth first, premises in order, so the first (leftmost,
    outermost) occurrence is the expanded one."""
    seen: set[tuple[str, tuple]] = set()

    def enter(proof: Proof, level: int) -> tuple[ProofNode, bool]:
        """A node for the proof, and whether its premises are to be expanded."""
        node = ProofNode(proof)
        if proof.is_input:
            return node, False
        key = (proof.relation, proof.fact)
        if key in seen:
            node.repeated = True
            return node, False
        seen.add(key)
        if depth is not None and level >= depth:
            node.truncated = bool(proof.premises)
            return node, False
        return node, True

    top, expand = enter(root, 0)
    # Each frame: a node being expanded, the iterator over its premises, its level.
    stack: list[tuple[ProofNode, Any, int]] = [(top, iter(root.premises), 0)] if expand else []
    while stack:
        node, premises, level = stack[-1]
        for rel, fact in premises:
            child = lookup(rel, fact)
            if child is not None:
                child_node, expand = enter(child, level + 1)
                node.children.append(child_node)
                if expand:  # finish the child's subtree before the next premise
                    stack.append((child_node, iter(child.premises), level + 1))
                    break
        else:
            stack.pop()
    return top


def _where(p: Proof, name: Callable[[str], str] = one_line) -> str:
    """Where a fact came from; ``name`` writes a file name (text: on one line, ``one_line``: a line
    break in a name, any name PUT /v1/ruleset was given, would start a line of its own and forge
    lines of the tree; DOT and Mermaid labels escape it themselves)."""
    conf = f", confidence {p.confidence:g}" if p.confidence < 1.0 else ""
    if p.is_input:
        if p.source is None:
            return "input" + conf
        return f"input, {name(p.source[0])}" + (f":{p.source[1]}" if p.source[1] else "") + conf
    loc = f" at {name(p.agent_span.file)}:{p.agent_span.line}" if p.agent_span else ""
    return f"{p.agent}{loc}, cycle {p.cycle}{conf}"


def render_text(node: ProofNode) -> str:
    """The tree as indented text with box-drawing connectors, one line per fact (plus
    a "with" line of bindings and one line per aggregate, condition and negated atom)."""
    lines: list[str] = []
    # Work items, last first: ("node", node, prefix, connector, child prefix) or ("line", text).
    work: list[tuple[Any, ...]] = [("node", node, "", "", "")]
    while work:
        item = work.pop()
        if item[0] == "line":
            lines.append(item[1])
            continue
        _, n, prefix, connector, child_prefix = item
        p = n.proof
        suffix = " (shown above)" if n.repeated else (" ..." if n.truncated else "")
        if p.superseded_by is not None:
            suffix += f" (superseded in cycle {p.superseded_by[1]} by {format_fact(p.relation, p.superseded_by[0])})"
        lines.append(f"{prefix}{connector}{p.text}  [{_where(p)}]{suffix}")
        if p.is_input or n.repeated:
            continue
        inner = prefix + child_prefix
        if p.bindings:
            binding = ", ".join(f"{k} = {_v(v)}" for k, v in p.bindings.items())
            lines.append(f"{inner}{'│' if (n.children or p.negated or p.conditions or p.aggregates) else ' '}   with {binding}")
        items: list[tuple[str, Any]] = [("node", c) for c in n.children]
        items += [("text", f"{t} = {_v(v)}") for t, v in p.aggregates]
        items += [("text", f"{c}  ✓ holds") for c in p.conditions]
        items += [("text", f"not {pattern_text(r, pat)}  ✓ checked absent") for r, pat in p.negated]
        for k in range(len(items) - 1, -1, -1):  # pushed last first, so popped in order
            kind, it = items[k]
            last = k == len(items) - 1
            conn = "└── " if last else "├── "
            nxt = "    " if last else "│   "
            if kind == "node":
                work.append(("node", it, inner, conn, nxt))
            else:
                work.append(("line", f"{inner}{conn}{it}"))
    return "\n".join(lines)


def _v(value: Any) -> str:
    from ..values import format_value

    return format_value(value)


def render_json(node: ProofNode) -> str:
    """The tree as indented JSON (``ProofNode.to_json``), written without recursion."""
    return dumps_tree_json(node.to_json())


def _graph_nodes(node: ProofNode) -> tuple[list[tuple[str, tuple[str, ...], str]], list[tuple[str, str, str]]]:
    """(id, label lines, kind) nodes and (from, to, label) edges of the proof DAG."""
    ids: dict[str, str] = {}
    nodes: list[tuple[str, tuple[str, ...], str]] = []
    edges: list[tuple[str, str, str]] = []

    def ident(text: str, label: tuple[str, ...], kind: str) -> str:
        if text not in ids:
            ids[text] = f"n{len(ids)}"
            nodes.append((ids[text], label, kind))
        return ids[text]

    def enter(n: ProofNode) -> list[Any]:
        """A frame for a node: the node, its id, the iterator over the children still to walk."""
        p = n.proof
        cut = ("(premises not shown: depth limit)",) if n.truncated else ()  # not to be taken for a leaf
        me = ident(p.text, (p.text, f"[{_where(p, str)}]", *cut), "input" if p.is_input else "derived")
        return [n, me, iter(() if n.repeated else n.children)]

    # Depth first as the tree is printed: a node's id on entry, the edge from a child to
    # it once the child's subtree is done, then its negated atoms.
    stack = [enter(node)]
    while stack:
        n, me, children = stack[-1]
        child = next(children, None)
        if child is not None:
            stack.append(enter(child))
            continue
        stack.pop()
        p = n.proof
        if not n.repeated:
            for r, pat in p.negated:
                neg = ident("not " + pattern_text(r, pat), (f"not {pattern_text(r, pat)}", "(checked absent)"), "negated")
                edges.append((neg, me, p.agent or ""))
        if stack:
            parent, parent_id, _ = stack[-1]
            edges.append((me, parent_id, parent.proof.agent or ""))
    return nodes, edges


def _one_line(text: str) -> str:
    """``text`` with every control character, line breaks included, as a visible ``\\uXXXX``:
    in a drawn label only the renderer's own line breaks separate lines."""
    return escape_controls(text).replace("\n", "\\u000a").replace("\t", "\\u0009")


def dot_quote(*lines: str) -> str:
    """A DOT double-quoted string (an escString: a node, edge or tooltip label) that
    Graphviz draws as exactly ``lines``, one under the other.

    Graphviz's lexer reads only ``\\"`` inside quotes; the label reader then takes
    ``\\\\`` as a backslash, ``\\n`` as a line break and ``\\N``, ``\\G``, ... as
    substitutions. So every backslash is doubled, every quote escaped, the lines joined
    by ``\\n``; other text (UTF-8, the DOT default charset) is written as it is."""
    return '"' + "\\n".join(_one_line(t).replace("\\", "\\\\").replace('"', '\\"') for t in lines) + '"'


# Characters a Mermaid quoted label would read itself: the quote ends it, ``#...;`` is an
# entity code, and the label is HTML (``<``, ``>``, ``&``). Each becomes an entity code.
_MERMAID_SPECIAL = re.compile('[#"<>&]')


def mermaid_quote(*lines: str) -> str:
    """A Mermaid quoted label (``"..."``) that shows exactly ``lines``, one under the other
    (joined by ``<br/>``): ``#``, ``"``, ``<``, ``>`` and ``&`` are written as entity codes
    (``#35;``), so a value can neither end the label nor add markup."""
    return '"' + "<br/>".join(_MERMAID_SPECIAL.sub(_mermaid_code, _one_line(t)) for t in lines) + '"'


def _mermaid_code(match: "re.Match[str]") -> str:
    return "#quot;" if match.group() == '"' else f"#{ord(match.group())};"


def render_dot(node: ProofNode) -> str:
    nodes, edges = _graph_nodes(node)
    style = {"input": 'shape=box, style="rounded,filled", fillcolor="#e8f0fe"',
             "derived": 'shape=box, style="rounded"',
             "negated": 'shape=box, style="dashed"'}
    out = ["digraph proof {", "  rankdir=BT;", '  node [fontname="Helvetica"];']
    for nid, label, kind in nodes:
        out.append(f"  {nid} [label={dot_quote(*label)}, {style[kind]}];")
    for a, b, label in edges:
        out.append(f"  {a} -> {b} [label={dot_quote(label)}];")
    out.append("}")
    return "\n".join(out)


def render_mermaid(node: ProofNode) -> str:
    nodes, edges = _graph_nodes(node)
    out = ["graph BT"]
    for nid, label, kind in nodes:
        shape = ("([", "])") if kind == "input" else (("[/", "/]") if kind == "negated" else ("[", "]"))
        out.append(f"  {nid}{shape[0]}{mermaid_quote(*label)}{shape[1]}")
    for a, b, label in edges:
        out.append(f"  {a} -->|{mermaid_quote(label)}| {b}" if label else f"  {a} --> {b}")
    return "\n".join(out)


# How each format writes a line of its own between trees (a header such as "match 1 of
# 4: ..."): a comment in DOT and Mermaid, so several trees in one output stay valid.
COMMENT = {"text": "{}", "json": "{}", "dot": "// {}", "mermaid": "%% {}"}


def comment_line(fmt: str, text: str) -> str:
    """``text`` as one line of output in format ``fmt`` (a comment in DOT and Mermaid)."""
    return COMMENT[fmt].format(_one_line(text) if fmt in ("dot", "mermaid") else text)


RENDERERS = {"text": render_text, "json": render_json, "dot": render_dot, "mermaid": render_mermaid}


def fact_key(relation: str, fact: tuple) -> str:
    return format_fact(relation, fact)
