"""The abstract syntax tree: frozen dataclasses, each with a Span that never
takes part in equality (so two parses of equivalent text compare equal)."""

from __future__ import annotations

from dataclasses import field
from typing import Iterator, Union

from .._frozen import frozen
from ..diagnostics import NO_SPAN, Span


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False)


Value = Union[int, float, str, bool]


# ---------------------------------------------------------------- expressions

@frozen
class Var:
    name: str
    span: Span = _span()


@frozen
class Wildcard:
    span: Span = _span()


@frozen
class Const:
    value: Value
    span: Span = _span()

    def __eq__(self, other: object) -> bool:  # 1 and True are different constants
        return isinstance(other, Const) and type(other.value) is type(self.value) and other.value == self.value

    def __hash__(self) -> int:
        return hash((type(self.value).__name__, self.value))


@frozen
class BinOp:
    op: str  # + - * / % ++
    left: "Expr"
    right: "Expr"
    span: Span = _span()


@frozen
class Neg:
    operand: "Expr"
    span: Span = _span()


@frozen
class Call:
    func: str
    args: tuple["Expr", ...]
    span: Span = _span()


@frozen
class ToolCall:
    tool: str
    args: tuple["Expr", ...]
    span: Span = _span()


@frozen
class Aggregate:
    op: str  # count sum min max
    value: Var | None
    body: tuple["Literal", ...]
    span: Span = _span()


Expr = Union[Var, Wildcard, Const, BinOp, Neg, Call, ToolCall, Aggregate]


# ---------------------------------------------------------------- literals

@frozen
class Atom:
    relation: str
    args: tuple[Expr, ...]
    span: Span = _span()


@frozen
class Negation:
    atom: Atom
    span: Span = _span()


@frozen
class Comparison:
    op: str  # = != < <= > >=
    left: Expr
    right: Expr
    span: Span = _span()


@frozen
class Condition:
    """A yes/no builtin standing as a literal (``contains(s, "x")``), possibly negated.

    The parser reads these as atoms; name resolution turns them into conditions."""

    call: Call
    negated: bool = False
    span: Span = _span()


@frozen
class Fail:
    """``fail "message"``: an explicit agent failure when the body reaches it."""

    message: str
    span: Span = _span()


Literal = Union[Atom, Negation, Comparison, Condition, Fail]


# ---------------------------------------------------------------- declarations

@frozen
class Column:
    name: str
    type: str
    span: Span = _span()


@frozen
class KeyClause:
    columns: tuple[str, ...]
    prefer: str  # min | max
    column: str
    span: Span = _span()


@frozen
class ModuleDecl:
    name: str
    span: Span = _span()


@frozen
class ImportStd:
    module: str  # "std.graph"
    span: Span = _span()
    alias: str | None = None  # `import std.graph as roads`; default: the module's last name


@frozen
class ImportFile:
    path: str
    alias: str
    span: Span = _span()


@frozen
class RelationDecl:
    name: str
    columns: tuple[Column, ...]
    is_input: bool = False
    key: KeyClause | None = None
    span: Span = _span()


@frozen
class Rule:
    """``head :- body.``; a rule with an empty body is a fact."""

    head: Atom
    body: tuple[Literal, ...]
    span: Span = _span()


@frozen
class AgentClause:
    kind: str  # when emit priority confidence on_failure
    value: object
    span: Span = _span()


@frozen
class AgentDecl:
    name: str
    description: str | None
    clauses: tuple[AgentClause, ...]
    span: Span = _span()


@frozen
class InvariantDecl:
    kind: str  # invariant | acceptance
    name: str
    message: str | None
    body: tuple[Literal, ...]
    span: Span = _span()


@frozen
class BudgetDecl:
    items: tuple[tuple[str, int | float], ...]
    spans: tuple[Span, ...] = field(default=(), compare=False, repr=False)
    span: Span = _span()


@frozen
class GoalDecl:
    relations: tuple[str, ...]
    span: Span = _span()
    spans: tuple[Span, ...] = field(default=(), compare=False, repr=False)  # of each name, as written


@frozen
class TestClause:
    kind: str  # given | given_file | expect | expect_not | expect_tier | expect_violation
    value: object  # tuple[Atom, ...] for fact lists, str otherwise
    span: Span = _span()


@frozen
class TestDecl:
    name: str
    clauses: tuple[TestClause, ...]
    span: Span = _span()


Item = Union[ModuleDecl, ImportStd, ImportFile, RelationDecl, Rule, AgentDecl,
             InvariantDecl, BudgetDecl, GoalDecl, TestDecl]


@frozen
class SourceFile:
    """One parsed rule file."""

    path: str
    items: tuple[Item, ...]


def aggregate_side(lit: "Literal") -> "tuple[Aggregate, Expr] | None":
    """For ``x = count { ... }`` (either side): the aggregate and the other side; else None."""
    if not isinstance(lit, Comparison):
        return None
    if isinstance(lit.right, Aggregate):
        return lit.right, lit.left
    if isinstance(lit.left, Aggregate):
        return lit.left, lit.right
    return None


def sub_exprs(expr: Expr) -> "Iterator[Expr]":
    """An expression and all its sub-expressions, outermost first (aggregate bodies excluded)."""
    yield expr
    if isinstance(expr, BinOp):
        yield from sub_exprs(expr.left)
        yield from sub_exprs(expr.right)
    elif isinstance(expr, Neg):
        yield from sub_exprs(expr.operand)
    elif isinstance(expr, (Call, ToolCall)):
        for arg in expr.args:
            yield from sub_exprs(arg)


def expr_vars(expr: Expr) -> list[str]:
    """Variables of an expression, in order of appearance (aggregate bodies excluded)."""
    out: list[str] = []

    def walk(e: Expr) -> None:
        if isinstance(e, Var):
            out.append(e.name)
        elif isinstance(e, BinOp):
            walk(e.left)
            walk(e.right)
        elif isinstance(e, Neg):
            walk(e.operand)
        elif isinstance(e, (Call, ToolCall)):
            for a in e.args:
                walk(a)

    walk(expr)
    return out


def literal_exprs(lit: Literal) -> tuple[Expr, ...]:
    """The expressions written directly in a literal: an atom's (or a negated atom's)
    arguments, a condition's call, both sides of a comparison; none for ``fail``."""
    if isinstance(lit, Atom):
        return lit.args
    if isinstance(lit, Negation):
        return lit.atom.args
    if isinstance(lit, Condition):
        return (lit.call,)
    if isinstance(lit, Fail):
        return ()
    return (lit.left, lit.right)


def literal_vars(lit: Literal) -> list[str]:
    """Variables a literal mentions (for an aggregate: its result variable side only)."""
    return [v for e in literal_exprs(lit) for v in expr_vars(e)]
