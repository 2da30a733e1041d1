"""Runtime semantics of expressions: the helpers generated code calls, and a
small interpreter over the same helpers (used to rebuild proof bindings).

Integer ``/`` truncates toward zero and ``%`` takes the sign of the dividend
(as in C and Soufflé); division by zero and ill-typed operations raise
EvalError, which makes the agent fail (never the process).
"""

from __future__ import annotations

import math
from typing import Mapping

from ..syntax import ast
from ..values import Value, format_value, str_to_int, type_name


class EvalError(Exception):
    """An expression that cannot be evaluated; ``sid`` indexes the agent's span table."""

    def __init__(self, sid: int, message: str):
        super().__init__(message)
        self.sid = sid
        self.message = message


def div(a: Value, b: Value, sid: int) -> Value:
    if b == 0:
        raise EvalError(sid, "division by zero")
    if type(a) is int and type(b) is int:
        q = abs(a) // abs(b)
        return q if (a >= 0) == (b >= 0) else -q
    return a / b  # type: ignore[operator]


def mod(a: Value, b: Value, sid: int) -> Value:
    if b == 0:
        raise EvalError(sid, "modulo by zero")
    if type(a) is int and type(b) is int:
        r = abs(a) % abs(b)
        return r if a >= 0 else -r
    return math.fmod(a, b)  # type: ignore[arg-type]


def finite(v: float, sid: int) -> float:
    if math.isfinite(v):
        return v
    raise EvalError(sid, f"arithmetic overflow: result is {v}")


def type_error(sid: int, message: str) -> Value:
    raise EvalError(sid, message)


def to_str(v: Value) -> str:
    return v if isinstance(v, str) else format_value(v)


def to_int(v: Value, sid: int) -> int:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        if not math.isfinite(v):
            raise EvalError(sid, f"to_int: {v} is not finite")
        return int(v)
    try:
        return str_to_int(str(v).strip())
    except ValueError:
        raise EvalError(sid, f"to_int: {format_value(v)} is not an integer") from None


def to_float(v: Value, sid: int) -> float:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    try:
        result = float(str(v).strip())
    except ValueError:
        raise EvalError(sid, f"to_float: {format_value(v)} is not a number") from None
    if not math.isfinite(result):
        raise EvalError(sid, f"to_float: {format_value(v)} is not finite")
    return result


def substr(s: str, start: int, length: int, sid: int) -> str:
    if start < 0 or length < 0:
        raise EvalError(sid, f"substr: start and length must be >= 0, got {start} and {length}")
    return s[start:start + length]


class StepsExceeded(Exception):
    """The max_steps budget ran out in the middle of an agent's evaluation."""


def steps_exceeded() -> None:
    raise StepsExceeded()


def coerce(v: Value, typ: str, sid: int) -> Value:
    """Check a value of statically unknown type (a tool result) against a column."""
    actual = type_name(v)
    if actual == typ:
        return v
    if typ == "float" and actual == "int":
        return float(v)  # type: ignore[arg-type]
    raise EvalError(sid, f"value {format_value(v) if actual in ('int', 'float', 'str', 'bool') else repr(v)} is {actual}, the column is {typ}")


HELPERS = {
    "_div": div, "_mod": mod, "_finite": finite, "_type_error": type_error,
    "_to_str": to_str, "_to_int": to_int, "_to_float": to_float, "_substr": substr,
}


# ------------------------------------------------------------------ interpreter

_NUM = (int, float)


def _num(v: Value) -> bool:
    return isinstance(v, _NUM) and not isinstance(v, bool)


def eval_expr(expr: ast.Expr, env: Mapping[str, Value]) -> Value:
    """Evaluate an expression under bindings with the engine's semantics."""
    if isinstance(expr, ast.Const):
        return expr.value
    if isinstance(expr, ast.Var):
        return env[expr.name]
    if isinstance(expr, ast.Neg):
        v = eval_expr(expr.operand, env)
        if not _num(v):
            raise EvalError(-1, f"cannot negate {type_name(v)}")
        return -v  # type: ignore[operator]
    if isinstance(expr, ast.BinOp):
        a, b = eval_expr(expr.left, env), eval_expr(expr.right, env)
        if expr.op == "++":
            if isinstance(a, str) and isinstance(b, str):
                return a + b
            raise EvalError(-1, f"cannot concatenate {type_name(a)} and {type_name(b)}")
        if not (_num(a) and _num(b)):
            raise EvalError(-1, f"cannot apply {expr.op} to {type_name(a)} and {type_name(b)}")
        if expr.op == "+":
            return a + b  # type: ignore[operator]
        if expr.op == "-":
            return a - b  # type: ignore[operator]
        if expr.op == "*":
            return a * b  # type: ignore[operator]
        if expr.op == "/":
            return div(a, b, -1)
        return mod(a, b, -1)
    if isinstance(expr, ast.Call):
        args = [eval_expr(a, env) for a in expr.args]
        return call_builtin(expr.func, args)
    raise EvalError(-1, f"cannot evaluate {type(expr).__name__} here")


def call_builtin(func: str, args: list[Value]) -> Value:
    f = func
    if f == "len":
        return len(args[0])  # type: ignore[arg-type]
    if f == "lower":
        return args[0].lower()  # type: ignore[union-attr]
    if f == "upper":
        return args[0].upper()  # type: ignore[union-attr]
    if f == "contains":
        return args[1] in args[0]  # type: ignore[operator]
    if f == "startswith":
        return args[0].startswith(args[1])  # type: ignore[union-attr,arg-type]
    if f == "endswith":
        return args[0].endswith(args[1])  # type: ignore[union-attr,arg-type]
    if f == "substr":
        return substr(args[0], args[1], args[2], -1)  # type: ignore[arg-type]
    if f == "to_str":
        return to_str(args[0])
    if f == "to_int":
        return to_int(args[0], -1)
    if f == "to_float":
        return to_float(args[0], -1)
    if f == "abs":
        return abs(args[0])  # type: ignore[arg-type]
    if f == "min":
        return min(args[0], args[1])  # type: ignore[type-var]
    if f == "max":
        return max(args[0], args[1])  # type: ignore[type-var]
    raise EvalError(-1, f"unknown function {func}")


def compare(op: str, a: Value, b: Value) -> bool:
    if op == "=":
        return a == b
    if op == "!=":
        return a != b
    if op == "<":
        return a < b  # type: ignore[operator]
    if op == "<=":
        return a <= b  # type: ignore[operator]
    if op == ">":
        return a > b  # type: ignore[operator]
    return a >= b  # type: ignore[operator]
