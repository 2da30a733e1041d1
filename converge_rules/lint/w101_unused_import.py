"""W101 unused import: an import whose alias is never referenced.

``import std.graph`` or ``import "./common.cvg" as common`` makes the
module's relations available as ``graph.NAME`` / ``common.NAME``. When the
importing file never mentions ``ALIAS.`` anywhere (rules, agents,
invariants, facts, tests, goals), the import only adds the module's own
agents and relations to the program: usually a leftover. The warning points
at the alias.
"""

from __future__ import annotations

import json
from typing import Iterator

from ..diagnostics import Diagnostic
from ..syntax import ast
from ._context import LintContext

CODE = "W101"
TITLE = "unused import: its alias is never referenced"


def _expr_atoms(expr: ast.Expr) -> Iterator[str]:
    if isinstance(expr, ast.Aggregate):
        for lit in expr.body:
            yield from _literal_names(lit)
    elif isinstance(expr, ast.BinOp):
        yield from _expr_atoms(expr.left)
        yield from _expr_atoms(expr.right)
    elif isinstance(expr, ast.Neg):
        yield from _expr_atoms(expr.operand)
    elif isinstance(expr, (ast.Call, ast.ToolCall)):
        for arg in expr.args:
            yield from _expr_atoms(arg)


def _literal_names(lit: object) -> Iterator[str]:
    if isinstance(lit, ast.Atom):
        yield lit.relation
        for arg in lit.args:
            yield from _expr_atoms(arg)
    elif isinstance(lit, ast.Negation):
        yield from _literal_names(lit.atom)
    elif isinstance(lit, ast.Comparison):
        yield from _expr_atoms(lit.left)
        yield from _expr_atoms(lit.right)


def relation_names(items: tuple[ast.Item, ...]) -> set[str]:
    """Every relation name written in a file's items, as written (``graph.reach``)."""
    names: set[str] = set()
    for item in items:
        if isinstance(item, ast.Rule):
            names.update(_literal_names(item.head))
            for lit in item.body:
                names.update(_literal_names(lit))
        elif isinstance(item, ast.AgentDecl):
            for clause in item.clauses:
                if clause.kind in ("when", "emit") and isinstance(clause.value, tuple):
                    for lit in clause.value:
                        names.update(_literal_names(lit))
        elif isinstance(item, ast.InvariantDecl):
            for lit in item.body:
                names.update(_literal_names(lit))
        elif isinstance(item, ast.GoalDecl):
            names.update(item.relations)
        elif isinstance(item, ast.TestDecl):
            for tclause in item.clauses:
                if isinstance(tclause.value, tuple):
                    for lit in tclause.value:
                        names.update(_literal_names(lit))
                elif tclause.kind == "expect_violation" and isinstance(tclause.value, str):
                    names.add(tclause.value)
    return names


def check(ctx: LintContext) -> Iterator[Diagnostic]:
    for unit in ctx.root_units():
        used = {name.split(".", 1)[0] for name in relation_names(unit.source.items) if "." in name}
        for item in unit.source.items:
            if isinstance(item, ast.ImportStd):
                alias = item.alias or item.module.split(".")[-1]  # `import std.graph as g`: g
                shown = f"import {item.module}" + (f" as {item.alias}" if item.alias else "")
            elif isinstance(item, ast.ImportFile):
                alias, shown = item.alias, f"import {json.dumps(item.path)} as {item.alias}"
            else:
                continue
            if alias in unit.aliases and alias not in used:
                yield ctx.warn(CODE, f"{shown} is never used", ctx.tail(item.span, alias),
                               f"no relation of the form {alias}.NAME is referenced in this file; remove the import")
