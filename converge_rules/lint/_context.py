"""What every lint reads: the compiled program plus facts derived from it once
(who reads and writes each relation, which relations can ever hold facts,
the recursive components) and helpers that locate the exact token a warning
points at. Nothing here evaluates the program."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Iterator, Union

from ..diagnostics import Diagnostic, Span
from ..syntax import ast

if TYPE_CHECKING:
    from ..compile.frontend import Unit
    from ..compile.pipeline import Compilation
    from ..compile.program import AgentDef, InvariantDef, Program

    Owner = Union[AgentDef, InvariantDef]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


@dataclass(frozen=True)
class Read:
    """One atom of a body that reads a relation."""

    owner: "Owner"
    atom: ast.Atom
    kind: str  # positive | negative | aggregate


def owner_label(owner: "Owner") -> str:
    """``rule 'p#1'``, ``agent 'flag'``, ``invariant 'x'`` or ``acceptance 'y'``."""
    kind = getattr(owner, "kind", "agent")
    return f"{kind} {owner.name!r}"


def body_reads(body: tuple[ast.Literal, ...]) -> list[tuple[ast.Atom, str]]:
    """(atom, kind) for each atom a body reads, aggregate bodies included."""
    out: list[tuple[ast.Atom, str]] = []
    for lit in body:
        if isinstance(lit, ast.Atom):
            out.append((lit, "positive"))
        elif isinstance(lit, ast.Negation):
            out.append((lit.atom, "negative"))
        elif isinstance(lit, ast.Comparison):
            for side in (lit.left, lit.right):
                if isinstance(side, ast.Aggregate):
                    out.extend((atom, "aggregate") for atom, _ in body_reads(side.body))
    return out


sub_exprs = ast.sub_exprs


def expr_var_nodes(expr: ast.Expr) -> list[ast.Var]:
    """The Var nodes of an expression, in source order (aggregate bodies excluded)."""
    return [e for e in sub_exprs(expr) if isinstance(e, ast.Var)]


class LintContext:
    """A compiled, error-free program and the analyses the lints share."""

    def __init__(self, compilation: "Compilation"):
        assert compilation.program is not None
        self.compilation = compilation
        self.program: "Program" = compilation.program
        self.units: list["Unit"] = list(compilation.frontend.units)
        self.root_files = frozenset(u.path for u in self.units if u.prefix == "")
        self._sources = compilation.sources  # the texts compiled, not whatever a file holds now
        self.partition_by: str | None = None  # the column of `converge check --partition-by`

    # ------------------------------------------------------------ who reads and writes what
    @cached_property
    def owners(self) -> list["Owner"]:
        """Agents (rules included) then invariants and acceptance checks."""
        return [*self.program.agents, *self.program.invariants]

    @cached_property
    def reads(self) -> dict[str, list[Read]]:
        out: dict[str, list[Read]] = {}
        for owner in self.owners:
            for atom, kind in body_reads(owner.body):
                out.setdefault(atom.relation, []).append(Read(owner, atom, kind))
        return out

    @cached_property
    def writers(self) -> dict[str, list["AgentDef"]]:
        out: dict[str, list["AgentDef"]] = {}
        for agent in self.program.agents:
            for name in dict.fromkeys(head.relation for head in agent.heads):
                out.setdefault(name, []).append(agent)
        return out

    @cached_property
    def with_facts(self) -> frozenset[str]:
        """Relations given facts in the rule files."""
        return frozenset(f.relation for f in self.program.facts)

    @cached_property
    def in_tests(self) -> frozenset[str]:
        """Relations mentioned by test blocks (given, expect, expect not)."""
        names: set[str] = set()
        for test in self.program.tests:
            for fact in (*test.given, *test.expect, *test.expect_not):
                names.add(fact.relation)
        return frozenset(names)

    def is_source(self, relation: str) -> bool:
        """Facts can enter the relation from outside: it is input or has facts."""
        rel = self.program.relations.get(relation)
        return rel is not None and (rel.is_input or relation in self.with_facts)

    @cached_property
    def can_fire(self) -> frozenset[int]:
        """Ids of the agents that can fire on some input: least fixed point of
        "every positive atom of the body reads a relation that can hold facts"."""
        holding = {name for name in self.program.relations if self.is_source(name)}
        firing: set[int] = set()
        changed = True
        while changed:
            changed = False
            for agent in self.program.agents:
                if agent.id in firing:
                    continue
                if all(atom.relation in holding for atom, kind in body_reads(agent.body) if kind == "positive"):
                    firing.add(agent.id)
                    holding.update(h.relation for h in agent.heads)
                    changed = True
        return frozenset(firing)

    @cached_property
    def can_hold(self) -> frozenset[str]:
        """Relations that can hold at least one fact."""
        names = {name for name in self.program.relations if self.is_source(name)}
        for agent in self.program.agents:
            if agent.id in self.can_fire:
                names.update(h.relation for h in agent.heads)
        return frozenset(names)

    def blocking_atom(self, owner: "Owner") -> ast.Atom | None:
        """The first positive atom of a body whose relation can never hold facts."""
        for lit in owner.body:
            if isinstance(lit, ast.Atom) and lit.relation not in self.can_hold:
                return lit
        return None

    def why_empty(self, relation: str) -> list[str]:
        """Notes explaining why a relation can never hold facts, down to the root causes."""
        writers = self.writers.get(relation, [])
        if not writers:
            return [f"{relation!r} is not input, has no facts and no rule or agent writes it"]
        notes = [f"{relation!r} is written only by {', '.join(repr(a.name) for a in writers)}, which can never fire"]
        roots: set[str] = set()
        seen: set[str] = set()
        todo = [relation]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            ws = self.writers.get(name, [])
            if not ws:
                roots.add(name)
            for agent in ws:
                blocker = self.blocking_atom(agent)
                if blocker is not None:
                    todo.append(blocker.relation)
        for name in sorted(roots - {relation}):
            notes.append(f"root cause: {name!r} is not input, has no facts and no rule or agent writes it")
        if not roots:
            notes.append("no base case: every rule that could derive it first needs facts of the same recursion")
        return notes

    # ------------------------------------------------------------ recursion
    @cached_property
    def component(self) -> dict[str, int]:
        """Relation -> index of its strongly connected component in the dependency graph."""
        import networkx as nx

        graph = nx.DiGraph()
        graph.add_nodes_from(sorted(self.program.relations))
        for agent in self.program.agents:
            for atom, _kind in body_reads(agent.body):
                for head in agent.heads:
                    graph.add_edge(atom.relation, head.relation)
        out: dict[str, int] = {}
        for index, members in enumerate(sorted(sorted(c) for c in nx.strongly_connected_components(graph))):
            for name in members:
                out[name] = index
        return out

    def same_component(self, a: str, b: str) -> bool:
        """Whether relations ``a`` and ``b`` are in one strongly connected component: for a
        rule reading ``b`` and writing ``a``, that the rule is recursive."""
        return self.component.get(a, -1) == self.component.get(b, -2)

    # ------------------------------------------------------------ locating tokens
    def in_roots(self, span: Span) -> bool:
        return span.file in self.root_files

    def root_units(self) -> list["Unit"]:
        return [u for u in self.units if u.prefix == ""]

    def source_lines(self, file: str) -> list[str]:
        """Every line of a file as it was compiled (an editor's buffer, standard input), not as
        the disk holds it now."""
        out: list[str] = []
        while (text := self._sources.line(file, len(out) + 1)) is not None:
            out.append(text)
        return out

    def text_from(self, span: Span, lines: int = 8) -> list[tuple[int, str]]:
        """(line number, text) from the span's first line, as far as its end (at most ``lines``)."""
        out = []
        last = max(span.end_line or span.line, span.line)
        for n in range(span.line, min(last, span.line + lines - 1) + 1):
            text = self._sources.line(span.file, n)
            if text is None:
                break
            out.append((n, text))
        return out

    def find(self, span: Span, pattern: str, group: int = 1) -> Span:
        """The span of a regex group, searched from the start of ``span``; ``span`` itself when absent."""
        regex = re.compile(pattern)
        for n, text in self.text_from(span):
            start = span.col - 1 if n == span.line else 0
            match = regex.search(text, start)
            if match:
                return Span(span.file, n, match.start(group) + 1, n, match.end(group) + 1)
        return span

    def name_at(self, span: Span) -> Span:
        """The (possibly qualified) name starting at a span: a relation name at the start of an atom."""
        text = self._sources.line(span.file, span.line)
        if text is not None:
            match = _NAME.match(text, max(span.col - 1, 0))
            if match:
                return Span(span.file, span.line, match.start() + 1, span.line, match.end() + 1)
        return span

    def tail(self, span: Span, word: str) -> Span:
        """The last ``word`` of a span (an import's alias ends the import)."""
        end_line = span.end_line or span.line
        text = self._sources.line(span.file, end_line)
        if text is not None and span.end_col - 1 - len(word) >= 0 and text[span.end_col - 1 - len(word):span.end_col - 1] == word:
            return Span(span.file, end_line, span.end_col - len(word), end_line, span.end_col)
        return span

    def warn(self, code: str, message: str, span: Span, *notes: str) -> Diagnostic:
        return Diagnostic(code, message, span, "warning", tuple(notes))


def where(span: Span) -> str:
    """``file:line:col`` of a span."""
    return f"{span.file}:{span.line}:{span.col}"
