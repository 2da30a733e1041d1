"""AST → source text, for explanations and reports (optionally with variables
replaced by their values). Pure syntax: no evaluation."""

from __future__ import annotations

import json
from typing import Mapping

from ..values import dumps_json
from ..values import Value, format_value
from . import ast

_PREC = {"++": 1, "+": 2, "-": 2, "*": 3, "/": 3, "%": 3}


def show_expr(e: ast.Expr, env: Mapping[str, Value] | None = None, prec: int = 0) -> str:
    """An expression as source text (variables replaced by values when env is given)."""
    if isinstance(e, ast.Const):
        return format_value(e.value)
    if isinstance(e, ast.Var):
        if env is not None and e.name in env:
            return format_value(env[e.name])
        return e.name
    if isinstance(e, ast.Wildcard):
        return "_"
    if isinstance(e, ast.Neg):
        return "-" + show_expr(e.operand, env, 4)
    if isinstance(e, ast.BinOp):
        p = _PREC.get(e.op, 0)
        text = f"{show_expr(e.left, env, p)} {e.op} {show_expr(e.right, env, p + 1)}"
        return f"({text})" if p < prec else text
    if isinstance(e, ast.Call):
        return f"{e.func}({', '.join(show_expr(a, env) for a in e.args)})"
    if isinstance(e, ast.ToolCall):
        return f"@{e.tool}({', '.join(show_expr(a, env) for a in e.args)})"
    if isinstance(e, ast.Aggregate):
        body = ", ".join(show_literal(lit) for lit in e.body)
        head = e.op if e.value is None else f"{e.op} {e.value.name}"
        return f"{head} {{ {body} }}"
    return "?"


def show_literal(lit: ast.Literal, env: Mapping[str, Value] | None = None) -> str:
    if isinstance(lit, ast.Atom):
        return f"{lit.relation}({', '.join(show_expr(a, env) for a in lit.args)})"
    if isinstance(lit, ast.Negation):
        return "not " + show_literal(lit.atom, env)
    if isinstance(lit, ast.Condition):
        return ("not " if lit.negated else "") + show_expr(lit.call, env)
    if isinstance(lit, ast.Fail):
        return f"fail {dumps_json(lit.message, ensure_ascii=False)}"
    return f"{show_expr(lit.left, env)} {lit.op} {show_expr(lit.right, env)}"
