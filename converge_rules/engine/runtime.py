"""Runtime semantics of expressions: the helpers generated code calls beyond the
catalogue's, and a small interpreter over the catalogue (used to rebuild proof
bindings and by why-not).

Operators, comparisons, builtins and aggregates are defined once, in
``converge_rules.catalogue``; this module only dispatches to it. Integer ``/``
truncates toward zero and ``%`` takes the sign of the dividend; division by
zero, a non-finite float and ill-typed operations raise EvalError, which makes
the agent fail (never the process).
"""

from __future__ import annotations

from typing import Mapping

from .. import catalogue
from ..catalogue import EvalError, finite, substr, to_float, to_int, to_str, type_error  # noqa: F401  (re-exported)
from ..syntax import ast
from ..values import Value, clipped, shown_value, str_to_int, type_name

__all__ = ["EvalError", "NO_MATCH", "StepsExceeded", "as_column", "call_builtin", "coerce", "compare", "eval_expr", "finite", "steps_exceeded", "type_error"]


class StepsExceeded(Exception):
    """The max_steps budget ran out in the middle of an agent's evaluation."""


def steps_exceeded() -> None:
    raise StepsExceeded()


# The max_bytes budget measures facts with a deterministic formula (never the allocator):
# each fact costs FACT_BYTES plus COLUMN_BYTES per column, plus each string's length in
# characters and, for an int wider than 64 bits, 16 bytes per bit beyond 64 (128 times its
# storage: printing a huge int in decimal, for the digest and the output, costs far more
# than keeping it). The constants are close to what CPython really spends per fact
# (tuple, dict entry, proof, order, index).
FACT_BYTES = 128
COLUMN_BYTES = 32


def value_bytes(v: Value) -> int:
    """The variable part of a value's cost: a string's length, an int's bytes."""
    t = type(v)
    if t is str:
        return len(v)  # type: ignore[arg-type]
    if t is int:
        bits = v.bit_length()  # type: ignore[union-attr]
        return (bits - 64) << 4 if bits > 64 else 0
    return 0


def fact_bytes(fact: tuple) -> int:
    """What a fact counts against max_bytes (generated code computes the same inline)."""
    return FACT_BYTES + COLUMN_BYTES * len(fact) + sum(map(value_bytes, fact))


class SizeExceeded(Exception):
    """The max_bytes budget (or the wall-clock timeout, checked at the same points) ran out."""

    def __init__(self, budget: str):
        super().__init__(budget)
        self.budget = budget


def coerce(v: Value, typ: str, sid: int) -> Value:
    """Check a value of statically unknown type (a tool result) against a column."""
    actual = type_name(v)
    if actual == typ:
        return v
    if typ == "float" and actual == "int":
        return catalogue.widen(v, sid)  # type: ignore[arg-type]
    raise EvalError(sid, f"value {shown_value(v) if actual in ('int', 'float', 'str', 'bool') else clipped(repr(v))} is {actual}, the column is {typ}")


class _NoMatch:
    """A lookup key equal to no value: what ``as_column`` gives for a value a column cannot hold."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_MATCH"


NO_MATCH = _NoMatch()
_COLUMN_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def as_column(v: Value, typ: str) -> Value | _NoMatch:
    """A value of statically unknown type (a tool's) as a key looked up in a column of type
    ``typ``: itself when it has that type, an int widened for a float column (as when it is
    stored there), and otherwise NO_MATCH, which matches nothing: 1, 1.0 and true are three
    different values (as the proof checker and the digest see them), though Python's ``==``
    and ``hash`` make them equal."""
    kind = type(v)
    if kind is _COLUMN_TYPES[typ]:
        return v
    if typ == "float" and kind is int:
        try:
            return float(v)  # type: ignore[arg-type]
        except OverflowError:  # no float column holds it
            return NO_MATCH
    return NO_MATCH


# ------------------------------------------------------------------ interpreter


def eval_expr(expr: ast.Expr, env: Mapping[str, Value]) -> Value:
    """Evaluate an expression under bindings with the engine's semantics."""
    if isinstance(expr, ast.Const):
        return expr.value
    if isinstance(expr, ast.Var):
        return env[expr.name]
    if isinstance(expr, ast.Neg):
        return catalogue.call("neg", [eval_expr(expr.operand, env)], -1)
    if isinstance(expr, ast.BinOp):
        return catalogue.call(expr.op, [eval_expr(expr.left, env), eval_expr(expr.right, env)], -1)
    if isinstance(expr, ast.Call):
        return call_builtin(expr.func, [eval_expr(a, env) for a in expr.args])
    raise EvalError(-1, f"cannot evaluate {type(expr).__name__} here")


def call_builtin(func: str, args: list[Value]) -> Value:
    if func not in catalogue.BUILTINS:
        raise EvalError(-1, f"unknown function {func}")
    return catalogue.call(func, args, -1)


def compare(op: str, a: Value, b: Value) -> bool:
    return bool(catalogue.call(op, [a, b], -1))
