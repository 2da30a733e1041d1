"""W400 recursion that creates new values through arithmetic.

A recursive rule — its head relation is in the same strongly connected
component of the dependency graph as one of its positive body atoms — whose
head computes a value with arithmetic (``+ - * / %``, unary ``-``, or
string ``++``) from a value read through the recursion, directly
(``n(x + 1) :- n(x).``) or through a binding (``d2 = d + w``). Each derived
value can produce another one, so nothing guarantees a fixed point: the run
ends only when a budget (``max_cycles``, ``max_facts``) stops it with tier
``bounded``.

The warning is not reported when an order comparison (``<``, ``<=``, ``>``,
``>=``) in the body constrains the recursive value or the new value
(``dist(y, d + 1) :- dist(x, d), edge(x, y), d < 100.``), since such a
bound usually makes the recursion finite. It points at the arithmetic
expression.
"""

from __future__ import annotations

from typing import Iterator

from ..compile.plan import Assign, plan_body, outside_map
from ..diagnostics import Diagnostic
from ..syntax import ast
from ._context import LintContext, owner_label, sub_exprs

CODE = "W400"
TITLE = "recursion that creates new values through arithmetic"

ARITHMETIC = frozenset({"+", "-", "*", "/", "%", "++"})
ORDER = frozenset({"<", "<=", ">", ">="})


def _arithmetic(expr: ast.Expr) -> ast.Expr | None:
    """The outermost arithmetic node of an expression, if any."""
    for sub in sub_exprs(expr):
        if (isinstance(sub, ast.BinOp) and sub.op in ARITHMETIC) or isinstance(sub, ast.Neg):
            return sub
    return None


def _describe(node: ast.Expr) -> str:
    return "unary '-'" if isinstance(node, ast.Neg) else repr(node.op)  # type: ignore[union-attr]


def _trace(expr: ast.Expr, assigned: dict[str, ast.Expr], recursive_vars: set[str],
           seen: set[str]) -> tuple[ast.Expr, set[str]] | None:
    """An arithmetic node that ``expr`` depends on and that uses a recursive value,
    with the variables on the way (bindings and recursive operands)."""
    node = _arithmetic(expr)
    if node is not None:
        used = {v for v in ast.expr_vars(node) if _feeds_from({v}, assigned, recursive_vars, set())}
        if used:
            return node, used
    for var in ast.expr_vars(expr):
        if var in assigned and var not in seen:
            seen.add(var)
            found = _trace(assigned[var], assigned, recursive_vars, seen)
            if found is not None:
                return found[0], found[1] | {var}
    return None


def _feeds_from(names: set[str], assigned: dict[str, ast.Expr], recursive_vars: set[str], seen: set[str]) -> bool:
    """Whether these variables are, or are computed from, values read through the recursion."""
    for name in names:
        if name in recursive_vars:
            return True
        if name in assigned and name not in seen:
            seen.add(name)
            if _feeds_from(set(ast.expr_vars(assigned[name])), assigned, recursive_vars, seen):
                return True
    return False


def check(ctx: LintContext) -> Iterator[Diagnostic]:
    for agent in ctx.program.agents:
        steps, unsafe = plan_body(agent.body, set(), None, outside_map(agent.body, agent.heads))
        if unsafe:  # pragma: no cover - reported as E400 before lints run
            continue
        assigned = {s.var: s.expr for s in steps if isinstance(s, Assign)}
        guards = [lit for lit in agent.body if isinstance(lit, ast.Comparison) and lit.op in ORDER
                  and ast.aggregate_side(lit) is None]
        for head in agent.heads:
            loops = [lit for lit in agent.body if isinstance(lit, ast.Atom) and ctx.same_component(head.relation, lit.relation)]
            if not loops:
                continue
            recursive_vars = {v for atom in loops for arg in atom.args for v in ast.expr_vars(arg)}
            key = ctx.program.relations[head.relation].key
            for column, arg in enumerate(head.args):
                if key is not None and column == key.column:
                    continue  # dominance keeps one value per key: the shortest-path pattern terminates
                found = _trace(arg, assigned, recursive_vars, set())
                if found is None:
                    continue
                node, involved = found
                bounded = any((set(ast.expr_vars(g.left)) | set(ast.expr_vars(g.right))) & involved for g in guards)
                if bounded:
                    continue
                loop = loops[0]
                cycle = (f"{head.relation} is derived from itself" if loop.relation == head.relation
                         else f"{head.relation} and {loop.relation} are derived from each other")
                yield ctx.warn(CODE, f"recursive {owner_label(agent)} creates new values with {_describe(node)}: "
                                     "termination relies on budgets", node.span,
                               f"{cycle}: each new value can derive another",
                               "bound the value with a comparison (for example `d < 100`) or rely on "
                               "`budget { max_cycles = N }` deliberately")
                break
