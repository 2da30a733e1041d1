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

__all__ = ["BUILTINS", "NUMERIC", "PREDICATES", "assignable", "comparable", "const_type", "expr_type", "type_error"]


def const_type(value: object) -> str:
    """The language type of a constant."""
    return type_name(value)


def _key(expr: ast.Expr) -> str | None:
    """The catalogue key of an operator or call expression."""
    if isinstance(expr, ast.BinOp):
        return expr.op
    if isinstance(expr, ast.Neg):
        return "neg"
    if isinstance(expr, ast.Call):
        return expr.func
    return None


def _operands(expr: ast.Expr) -> tuple[ast.Expr, ...]:
    if isinstance(expr, ast.BinOp):
        return (expr.left, expr.right)
    if isinstance(expr, ast.Neg):
        return (expr.operand,)
    if isinstance(expr, ast.Call):
        return expr.args
    return ()


def expr_type(expr: ast.Expr, env: Mapping[str, str | None]) -> str | None:
    """Static type of an expression given variable types; None when unknown or ill-typed."""
    if isinstance(expr, ast.Const):
        return const_type(expr.value)
    if isinstance(expr, ast.Var):
        return env.get(expr.name)
    key = _key(expr)
    if key is not None:
        func = FUNCTIONS.get(key)
        return func.result_type([expr_type(a, env) for a in _operands(expr)]) if func is not None else None
    if isinstance(expr, ast.Aggregate):
        op = AGGREGATES[expr.op]
        value = env.get(expr.value.name) if expr.value is not None else None
        sig = op.resolve(value) if op.has_value else op.signatures[0]
        return sig.result if sig is not None else None
    return None


def type_error(expr: ast.Expr, env: Mapping[str, str | None]) -> str | None:
    """Why this operator or call can never be evaluated, when its operand types are all known."""
    key = _key(expr)
    func = FUNCTIONS.get(key) if key is not None else None
    if func is None:
        return None
    types = [expr_type(a, env) for a in _operands(expr)]
    if len(types) != func.arity or any(t is None for t in types) or func.resolve(types) is not None:
        return None
    return func.type_error(types)


def comparable(op: str, left: str | None, right: str | None) -> bool:
    """Whether a comparison between these static types can be evaluated."""
    return COMPARISONS[op].resolve([left, right]) is not None


def assignable(column: str, value: str | None) -> bool:
    """Whether a value of this type may be stored in a column (int widens to float)."""
    return value == column or (column == "float" and value == "int")

