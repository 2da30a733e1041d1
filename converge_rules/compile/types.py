"""Static expression types, read from the catalogue's signatures.

Every variable's type is known statically (it is bound by a typed column or
by an expression over typed values), except a tool's result, whose type is
known only at run time. An expression's type is ``None`` when it is unknown
(it depends on a tool's result) or ill-typed; ``check`` reports the
ill-typed ones (:func:`type_error`) where all operand types are known.
"""

from __future__ import annotations

from typing import Mapping

from ..catalogue import AGGREGATES, BUILTINS, COMPARISONS, FUNCTIONS, NUMERIC, PREDICATES
from ..syntax import ast
from ..values import type_name

__all__ = ["BUILTINS", "NUMERIC", "PREDICATES", "assignable", "comparable", "const_type", "expr_type", "operation", "type_error"]


def const_type(value: object) -> str:
    """The language type of a constant."""
    return type_name(value)


def operation(expr: ast.Expr) -> tuple[str, tuple[ast.Expr, ...]] | None:
    """The catalogue key and the operands of an operator or builtin call; None for other expressions."""
    if isinstance(expr, ast.BinOp):
        return expr.op, (expr.left, expr.right)
    if isinstance(expr, ast.Neg):
        return "neg", (expr.operand,)
    if isinstance(expr, ast.Call):
        return expr.func, expr.args
    return None


def expr_type(expr: ast.Expr, env: Mapping[str, str | None]) -> str | None:
    """Static type of an expression given variable types; None when unknown or ill-typed."""
    if isinstance(expr, ast.Const):
        return const_type(expr.value)
    if isinstance(expr, ast.Var):
        return env.get(expr.name)
    op = operation(expr)
    if op is not None:
        func = FUNCTIONS.get(op[0])
        return func.result_type([expr_type(a, env) for a in op[1]]) if func is not None else None
    if isinstance(expr, ast.Aggregate):
        agg = AGGREGATES[expr.op]
        value = env.get(expr.value.name) if expr.value is not None else None
        sig = agg.resolve(value) if agg.has_value else agg.signatures[0]
        return sig.result if sig is not None else None
    return None


def type_error(expr: ast.Expr, env: Mapping[str, str | None]) -> str | None:
    """Why this operator or call can never be evaluated, when its operand types are all known."""
    op = operation(expr)
    func = FUNCTIONS.get(op[0]) if op is not None else None
    if op is None or func is None:
        return None
    types = [expr_type(a, env) for a in op[1]]
    if len(types) != func.arity or any(t is None for t in types) or func.resolve(types) is not None:
        return None
    return func.type_error(types)


def comparable(op: str, left: str | None, right: str | None) -> bool:
    """Whether a comparison between these static types can be evaluated."""
    return COMPARISONS[op].resolve([left, right]) is not None


def assignable(column: str, value: str | None) -> bool:
    """Whether a value of this type may be stored in a column (int widens to float)."""
    return value == column or (column == "float" and value == "int")

