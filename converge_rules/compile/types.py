"""Builtin function signatures and static expression types.

Every variable's type is known statically (it is bound by a typed column or
by an expression over typed values), so types drive both checking and the
code the engine generates. An expression whose operands do not fit gets the
type ``None``: evaluating it is a runtime type error of the agent.
"""

from __future__ import annotations

from typing import Callable, Mapping

from ..syntax import ast
from ..values import type_name

NUMERIC = ("int", "float")


def _same_numeric(args: list[str | None]) -> str | None:
    if all(a in NUMERIC for a in args):
        return "float" if "float" in args else "int"
    return None


# name -> (arity, result type from argument types)
BUILTINS: dict[str, tuple[int, Callable[[list[str | None]], str | None]]] = {
    "len": (1, lambda a: "int" if a[0] == "str" else None),
    "lower": (1, lambda a: "str" if a[0] == "str" else None),
    "upper": (1, lambda a: "str" if a[0] == "str" else None),
    "contains": (2, lambda a: "bool" if a == ["str", "str"] else None),
    "startswith": (2, lambda a: "bool" if a == ["str", "str"] else None),
    "endswith": (2, lambda a: "bool" if a == ["str", "str"] else None),
    "substr": (3, lambda a: "str" if a == ["str", "int", "int"] else None),
    "to_str": (1, lambda a: "str" if a[0] is not None else None),
    "to_int": (1, lambda a: "int" if a[0] is not None else None),
    "to_float": (1, lambda a: "float" if a[0] in ("int", "float", "str") else None),
    "abs": (1, lambda a: a[0] if a[0] in NUMERIC else None),
    "min": (2, _same_numeric),
    "max": (2, _same_numeric),
}

# Builtins that answer yes or no and may stand alone as a body literal.
PREDICATES = frozenset({"contains", "startswith", "endswith"})


def const_type(value: object) -> str:
    """The language type of a constant."""
    return type_name(value)


def expr_type(expr: ast.Expr, env: Mapping[str, str | None]) -> str | None:
    """Static type of an expression given variable types; None when ill-typed."""
    if isinstance(expr, ast.Const):
        return const_type(expr.value)
    if isinstance(expr, ast.Var):
        return env.get(expr.name)
    if isinstance(expr, ast.BinOp):
        left, right = expr_type(expr.left, env), expr_type(expr.right, env)
        if expr.op == "++":
            return "str" if left == right == "str" else None
        return _same_numeric([left, right])
    if isinstance(expr, ast.Neg):
        inner = expr_type(expr.operand, env)
        return inner if inner in NUMERIC else None
    if isinstance(expr, ast.Call):
        arity, result = BUILTINS[expr.func]
        return result([expr_type(a, env) for a in expr.args])
    if isinstance(expr, ast.Aggregate):
        if expr.op == "count":
            return "int"
        assert expr.value is not None
        inner = env.get(expr.value.name)
        if expr.op == "sum":
            return inner if inner in NUMERIC else None
        return inner
    return None


def comparable(op: str, left: str | None, right: str | None) -> bool:
    """Whether a comparison between these static types can be evaluated."""
    if left is None or right is None:
        return False
    if left in NUMERIC and right in NUMERIC:
        return True
    return left == right


def assignable(column: str, value: str | None) -> bool:
    """Whether a value of this type may be stored in a column (int widens to float)."""
    return value == column or (column == "float" and value == "int")
