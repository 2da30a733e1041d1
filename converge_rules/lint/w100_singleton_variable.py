"""W100 singleton variable: a variable that occurs only once in a rule, agent,
invariant or acceptance check.

A variable seen once binds a value that nothing uses, which is usually a
typo (``path(x, y) :- path(x, z), edge(y, y).`` where ``edge(z, y)`` was
meant) or a column whose value does not matter, better written ``_``. Variables named ``_`` or
starting with ``_`` (``_amount``) are never reported.

Scoping follows the engine: a variable of an aggregate body that does not
occur outside the aggregate is local to it, so it is counted within that
aggregate only (two aggregates may each use their own ``x``).
"""

from __future__ import annotations

from collections import Counter
from typing import Iterator

from ..diagnostics import Diagnostic
from ..syntax import ast
from ._context import LintContext, expr_var_nodes, owner_label

CODE = "W100"
TITLE = "singleton variable: it occurs only once"


def _literal_vars(lit: ast.Literal, outer: list[ast.Var], scopes: list[list[ast.Var]]) -> None:
    if isinstance(lit, ast.Atom):
        for arg in lit.args:
            outer.extend(expr_var_nodes(arg))
    elif isinstance(lit, ast.Negation):
        _literal_vars(lit.atom, outer, scopes)
    elif isinstance(lit, ast.Condition):
        outer.extend(expr_var_nodes(lit.call))
    elif isinstance(lit, ast.Comparison):
        for side in (lit.left, lit.right):
            if isinstance(side, ast.Aggregate):
                scope: list[ast.Var] = [side.value] if side.value is not None else []
                inner_scopes: list[list[ast.Var]] = []
                for inner in side.body:  # aggregates do not nest (E404)
                    _literal_vars(inner, scope, inner_scopes)
                scopes.append(scope)
            else:
                outer.extend(expr_var_nodes(side))


def singletons(heads: tuple[ast.Atom, ...], body: tuple[ast.Literal, ...]) -> list[ast.Var]:
    """Var nodes of variables that occur once in their scope, in source order."""
    outer: list[ast.Var] = []
    scopes: list[list[ast.Var]] = []
    for head in heads:
        _literal_vars(head, outer, scopes)
    for lit in body:
        _literal_vars(lit, outer, scopes)
    outer_names = {v.name for v in outer}
    total = Counter(v.name for v in outer)
    for scope in scopes:
        total.update(v.name for v in scope if v.name in outer_names)
    found = [v for v in outer if total[v.name] == 1]
    for scope in scopes:
        local = Counter(v.name for v in scope if v.name not in outer_names)
        found.extend(v for v in scope if v.name not in outer_names and local[v.name] == 1)
    return [v for v in found if not v.name.startswith("_")]


def check(ctx: LintContext) -> Iterator[Diagnostic]:
    for owner in ctx.owners:
        heads = getattr(owner, "heads", ())
        for var in singletons(heads, owner.body):
            yield ctx.warn(CODE, f"variable {var.name!r} occurs only once in {owner_label(owner)}", var.span,
                           f"if its value does not matter write '_' (or '_{var.name}'); otherwise it may be a typo")
