"""The checked program: what the compiler hands to planning and the engine.

Relation names here are fully qualified (``graph.reach``); body literals are
AST nodes whose relation names have been resolved.
"""

from __future__ import annotations

from dataclasses import field

from .._frozen import frozen
from ..diagnostics import Span
from ..syntax import ast
from ..values import ColumnSchema, RelationSchema, Value, int_to_str


@frozen
class KeySpec:
    """Dominance: per key (column indices) keep only the fact preferred on one column."""

    columns: tuple[int, ...]
    prefer: str  # "min" | "max"
    column: int


@frozen
class FailurePolicy:
    """What happens when an agent fails: retry N times, then skip or abort."""

    retries: int = 0
    then: str = "abort"  # "skip" | "abort"

    def __str__(self) -> str:
        return f"retry {int_to_str(self.retries)} then {self.then}" if self.retries else self.then

    @staticmethod
    def parse(text: str) -> "FailurePolicy":
        """``abort``, ``skip`` or ``retry N then skip|abort``; raises ValueError."""
        words = text.split()
        if words in (["abort"], ["skip"]):
            return FailurePolicy(0, words[0])
        if len(words) == 4 and words[0] == "retry" and words[2] == "then" and words[3] in ("skip", "abort") and words[1].isdigit():
            return FailurePolicy(int(words[1]), words[3])
        raise ValueError(f"invalid failure policy {text!r}: use abort, skip, or 'retry N then skip|abort'")


@frozen
class Relation:
    name: str
    columns: tuple[ColumnSchema, ...]
    is_input: bool
    span: Span
    key: KeySpec | None = None

    @property
    def schema(self) -> RelationSchema:
        return RelationSchema(self.name, self.columns, self.is_input)

    @property
    def arity(self) -> int:
        return len(self.columns)


@frozen
class AgentDef:
    """One agent: a name, a body (the ``when`` predicate) and emit templates."""

    id: int
    name: str
    description: str | None
    kind: str  # "agent" | "rule"
    heads: tuple[ast.Atom, ...]
    body: tuple[ast.Literal, ...]
    span: Span
    var_types: dict[str, str | None] = field(default_factory=dict, compare=False)
    priority: int = 0
    confidence: float = 1.0
    on_failure: FailurePolicy | None = None  # None: the job's default


@frozen
class InvariantDef:
    """A forbidden pattern: ``invariant`` (after every merge) or ``acceptance`` (at the fixed point)."""

    id: int
    kind: str
    name: str
    message: str | None
    body: tuple[ast.Literal, ...]
    span: Span
    var_types: dict[str, str | None] = field(default_factory=dict, compare=False)


@frozen
class SourceFact:
    relation: str
    values: tuple[Value, ...]
    span: Span


@frozen
class TestDef:
    """A ``test`` block: facts given, facts expected present or absent, tier, violations."""

    name: str
    span: Span
    given: tuple[SourceFact, ...]
    given_files: tuple[str, ...]          # paths resolved against the test's file
    expect: tuple[SourceFact, ...]
    expect_not: tuple[SourceFact, ...]
    expect_tier: str | None
    expect_violations: tuple[str, ...]
    given_spans: tuple[Span, ...] = ()   # where each of given_files is named (the `given "..."` clause)


@frozen
class Program:
    files: tuple[str, ...]
    relations: dict[str, Relation]
    agents: tuple[AgentDef, ...]
    invariants: tuple[InvariantDef, ...]
    facts: tuple[SourceFact, ...]
    budget: dict[str, int]
    budget_spans: dict[str, Span]
    tests: tuple[TestDef, ...] = ()
    goals: tuple[str, ...] = ()

    def schema(self) -> dict[str, RelationSchema]:
        return {name: rel.schema for name, rel in self.relations.items()}

    def agent(self, name: str) -> AgentDef | None:
        for agent in self.agents:
            if agent.name == name:
                return agent
        return None
