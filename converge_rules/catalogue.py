"""The one catalogue of builtin functions, operators, comparisons and aggregates.

Each entry says, once: its name, its typed signatures (parameter types and
result type), whether it answers yes or no (and may stand alone as a body
literal), its documentation, its Python implementation and the code template
that generated join code inlines. The type checker (``compile.types``), code
generation (``engine.codegen``), the runtime interpreter (``engine.runtime``)
and why-not all read this table, so a builtin cannot exist in one of them and
not in another: adding one means adding an entry here, its docs row
(``docs/language.md`` is checked against :func:`markdown_table`) and its tests.
The independent proof checker (``explain.checker``) keeps its own
implementations on purpose; a property test checks it agrees with this table.

Typing is static and exact: a signature matches argument types equal to its
parameters, or, failing that, with ``int`` arguments widened to ``float``
parameters. Values of unknown static type (tool results) are dispatched at run
time by :func:`call` and :func:`aggregate`, with the same signatures.

Floats are finite everywhere: every float operation that could leave the
finite range (``+ - * /``, widening a huge int, a float ``sum``) checks its
result, and a non-finite one is an :class:`EvalError` (an agent failure at the
operation's source position), never a stored value.
"""

from __future__ import annotations

import itertools
import math
from typing import Callable, Iterable, Sequence

from ._frozen import frozen
from .values import Value, format_value, shown_value, str_to_int, type_name

TYPES = ("int", "float", "str", "bool")
NUMERIC = ("int", "float")


class EvalError(Exception):
    """An expression that cannot be evaluated; ``sid`` indexes the agent's span table (-1: unknown)."""

    def __init__(self, sid: int, message: str):
        super().__init__(message)
        self.sid = sid
        self.message = message


class _NoResult:
    """The value of ``min``/``max`` over an empty group: no result, the literal is false."""

    def __repr__(self) -> str:
        return "NO_RESULT"


NO_RESULT = _NoResult()


# ------------------------------------------------------------------ implementations


def finite(v: float, sid: int) -> float:
    """A float result, or an agent failure when it left the finite range."""
    if v - v == 0.0:  # false for inf and nan
        return v
    raise EvalError(sid, f"arithmetic overflow: the result is not a finite float ({v})")


def type_error(sid: int, message: str) -> Value:
    """Raise a type error (generated code for operations whose static types fit no signature)."""
    raise EvalError(sid, message)


def widen(v: int, sid: int) -> float:
    """An int used where a float is expected."""
    try:
        return float(v)
    except OverflowError:
        raise EvalError(sid, f"int too large to convert to float ({v.bit_length()} bits)") from None


def idiv(a: int, b: int, sid: int) -> int:
    if b == 0:
        raise EvalError(sid, "division by zero")
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def imod(a: int, b: int, sid: int) -> int:
    if b == 0:
        raise EvalError(sid, "modulo by zero")
    r = abs(a) % abs(b)
    return r if a >= 0 else -r


def fadd(a: float, b: float, sid: int) -> float:
    return finite(a + b, sid)


def fsub(a: float, b: float, sid: int) -> float:
    return finite(a - b, sid)


def fmul(a: float, b: float, sid: int) -> float:
    return finite(a * b, sid)


def fdiv(a: float, b: float, sid: int) -> float:
    if b == 0:
        raise EvalError(sid, "division by zero")
    return finite(a / b, sid)


def fmod(a: float, b: float, sid: int) -> float:
    if b == 0:
        raise EvalError(sid, "modulo by zero")
    return math.fmod(a, b)


def substr(s: str, start: int, length: int, sid: int) -> str:
    if start < 0 or length < 0:
        raise EvalError(sid, f"substr: start and length must be >= 0, got {shown_value(start)} and {shown_value(length)}")
    return s[start:start + length]


def to_str(v: Value, sid: int) -> str:
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
        raise EvalError(sid, f"to_int: {shown_value(v)} is not an integer") from None


def to_float(v: Value, sid: int) -> float:
    if isinstance(v, int) and not isinstance(v, bool):
        return widen(v, sid)
    if isinstance(v, float):
        return v
    try:
        result = float(str(v).strip())
    except ValueError:
        raise EvalError(sid, f"to_float: {shown_value(v)} is not a number") from None
    if not math.isfinite(result):
        raise EvalError(sid, f"to_float: {shown_value(v)} is not finite")
    return result


def fsum(values: list[float], sid: int) -> float:
    """A float sum, exactly rounded (independent of the order of the matches)."""
    try:
        return finite(math.fsum(values), sid)
    except OverflowError:
        raise EvalError(sid, "arithmetic overflow: the sum is not a finite float") from None


# ------------------------------------------------------------------ entries


@frozen
class Signature:
    """One typing of a function: parameter types, result type, implementation and code.

    ``fn(*args, sid)`` is the implementation; ``template`` is a Python expression
    with ``{0}``, ``{1}``, ... for the argument code and ``{sid}`` for the span
    index. Without a template, code calls ``fn`` under the name ``helper``."""

    params: tuple[str, ...]
    result: str
    fn: Callable[..., Value]
    template: str | None = None
    helper: str = ""
    fails: bool = False  # may raise EvalError on some arguments of these types (zero divisor, overflow, parse)

    def code(self, args: Sequence[str], sid: int) -> str:
        if self.template is not None:
            return self.template.format(*args, sid=sid)
        return f"{self.helper}({''.join(a + ', ' for a in args)}{sid})"


@frozen
class Function:
    """A builtin function, an operator or a comparison."""

    key: str        # unique: the builtin's name, the operator's symbol, "neg" for unary minus
    kind: str       # "builtin" | "operator" | "comparison"
    signatures: tuple[Signature, ...]
    doc: str
    mismatch: str   # the type error, formatted with {types} (comma-separated) and {0}, {1}, ...
    predicate: bool = False
    arg_names: tuple[str, ...] = ()

    @property
    def arity(self) -> int:
        return len(self.signatures[0].params)

    def resolve(self, types: Sequence[str | None]) -> Signature | None:
        """The signature for these argument types: exact, else with int widened to float."""
        if len(types) != self.arity or any(t is None for t in types):
            return None
        for sig in self.signatures:
            if tuple(types) == sig.params:
                return sig
        for sig in self.signatures:
            if all(t == p or (t == "int" and p == "float") for t, p in zip(types, sig.params)):
                return sig
        return None

    def can_fail(self, types: Sequence[str | None] | None = None) -> bool:
        """Whether evaluating it may raise (so a planner runs guards first).

        With static argument types: that signature's ``fails``, or an int widened
        to a float; without them (or with a tool's value): whether any may."""
        if types is not None and all(t is not None for t in types):
            sig = self.resolve(types)
            if sig is None:
                return True
            return sig.fails or any(t == "int" and p == "float" for t, p in zip(types, sig.params))
        return any(self.can_fail(ts) for ts in itertools.product(TYPES, repeat=self.arity) if self.resolve(ts) is not None)

    def result_type(self, types: Sequence[str | None]) -> str | None:
        sig = self.resolve(types)
        return sig.result if sig is not None else None

    def type_error(self, types: Sequence[str | None]) -> str:
        names = [str(t) for t in types]
        return self.mismatch.format(*names, types=", ".join(names), name=self.key)


def _fn(key: str, kind: str, sigs: Iterable[tuple], doc: str, mismatch: str = "{name}() does not take ({types})",
        fails: Iterable[int] = (), **kw: object) -> Function:
    """A Function from ``(params, result, fn[, template])`` tuples; ``fails``: the indexes of those that may raise."""
    built = []
    failing = set(fails)
    for i, (params, result, fn, *template) in enumerate(sigs):
        helper = f"_cat_{_KEY_NAMES.get(key, key)}_{i}"
        built.append(Signature(tuple(params), result, fn, template[0] if template else None, helper, i in failing))
    return Function(key, kind, tuple(built), doc, mismatch, **kw)  # type: ignore[arg-type]


_KEY_NAMES = {"+": "add", "-": "sub", "*": "mul", "/": "div", "%": "mod", "++": "cat",
              "=": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}

_ARITH = "cannot apply {name} to {0} and {1}"

OPERATORS: dict[str, Function] = {f.key: f for f in (
    _fn("+", "operator", [
        (("int", "int"), "int", lambda a, b, sid: a + b, "({0} + {1})"),
        (("float", "float"), "float", fadd)], "addition", _ARITH, fails=(1,)),
    _fn("-", "operator", [
        (("int", "int"), "int", lambda a, b, sid: a - b, "({0} - {1})"),
        (("float", "float"), "float", fsub)], "subtraction", _ARITH, fails=(1,)),
    _fn("*", "operator", [
        (("int", "int"), "int", lambda a, b, sid: a * b, "({0} * {1})"),
        (("float", "float"), "float", fmul)], "multiplication", _ARITH, fails=(1,)),
    _fn("/", "operator", [
        (("int", "int"), "int", idiv),
        (("float", "float"), "float", fdiv)],
        "division: ints truncate toward zero; a zero divisor fails the agent", _ARITH, fails=(0, 1)),
    _fn("%", "operator", [
        (("int", "int"), "int", imod),
        (("float", "float"), "float", fmod)],
        "remainder with the sign of the dividend; a zero divisor fails the agent", _ARITH, fails=(0, 1)),
    _fn("++", "operator", [
        (("str", "str"), "str", lambda a, b, sid: a + b, "({0} + {1})")],
        "string concatenation", "cannot concatenate {0} and {1} with ++ (use to_str)"),
    _fn("neg", "operator", [
        (("int",), "int", lambda a, sid: -a, "(-{0})"),
        (("float",), "float", lambda a, sid: -a, "(-{0})")], "negation", "cannot negate {0}"),
)}

_PY_CMP = {"=": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_CMP_FN = {"=": lambda a, b, sid: a == b, "!=": lambda a, b, sid: a != b, "<": lambda a, b, sid: a < b,
           "<=": lambda a, b, sid: a <= b, ">": lambda a, b, sid: a > b, ">=": lambda a, b, sid: a >= b}
# Numbers compare across int and float exactly (no widening: a huge int still compares);
# strings by code point, booleans false < true; other pairs are type errors.
_CMP_TYPES = (("int", "int"), ("int", "float"), ("float", "int"), ("float", "float"), ("str", "str"), ("bool", "bool"))

COMPARISONS: dict[str, Function] = {op: _fn(op, "comparison", [
    (pair, "bool", _CMP_FN[op], f"({{0}} {py} {{1}})") for pair in _CMP_TYPES],
    "comparison", "cannot compare {0} and {1}", predicate=True) for op, py in _PY_CMP.items()}

_STR_ANY = [(("int",), "str", to_str), (("float",), "str", to_str), (("str",), "str", to_str, "{0}"),
            (("bool",), "str", to_str)]

BUILTINS: dict[str, Function] = {f.key: f for f in (
    _fn("len", "builtin", [(("str",), "int", lambda s, sid: len(s), "len({0})")],
        "number of characters (code points)", arg_names=("s",)),
    _fn("lower", "builtin", [(("str",), "str", lambda s, sid: s.lower(), "{0}.lower()")],
        'lower-case (Unicode rules: `lower("ÀB")` = `"àb"`)', arg_names=("s",)),
    _fn("upper", "builtin", [(("str",), "str", lambda s, sid: s.upper(), "{0}.upper()")],
        'upper-case (Unicode rules: `upper("straße")` = `"STRASSE"`)', arg_names=("s",)),
    _fn("contains", "builtin", [(("str", "str"), "bool", lambda s, p, sid: p in s, "({1} in {0})")],
        "`part` occurs in `s`", predicate=True, arg_names=("s", "part")),
    _fn("startswith", "builtin", [(("str", "str"), "bool", lambda s, p, sid: s.startswith(p), "{0}.startswith({1})")],
        "`s` starts with `prefix`", predicate=True, arg_names=("s", "prefix")),
    _fn("endswith", "builtin", [(("str", "str"), "bool", lambda s, p, sid: s.endswith(p), "{0}.endswith({1})")],
        "`s` ends with `suffix`", predicate=True, arg_names=("s", "suffix")),
    _fn("substr", "builtin", [(("str", "int", "int"), "str", substr)],
        "up to `length` characters from `start` (0-based); shorter, or `\"\"`, past the end; "
        "a negative `start` or `length` is an agent failure", arg_names=("s", "start", "length"), fails=(0,)),
    _fn("to_str", "builtin", _STR_ANY,
        'the value as text (`42` → `"42"`, `true` → `"true"`)', arg_names=("v",)),
    _fn("to_int", "builtin", [(("str",), "int", to_int), (("int",), "int", to_int, "{0}"),
                              (("float",), "int", to_int), (("bool",), "int", to_int)],
        "parse a string (surrounding spaces allowed; one that is not an integer is an agent failure), "
        "truncate a float toward zero, `true` → 1", arg_names=("v",), fails=(0,)),
    _fn("to_float", "builtin", [(("str",), "float", to_float), (("int",), "float", to_float),
                                (("float",), "float", to_float, "{0}")],
        "parse a string (`\"1e3\"` → `1000.0`; not a finite number: agent failure), widen an int", arg_names=("v",),
        fails=(0, 1)),
    _fn("abs", "builtin", [(("int",), "int", lambda n, sid: abs(n), "abs({0})"),
                           (("float",), "float", lambda n, sid: abs(n), "abs({0})")],
        "absolute value", arg_names=("n",)),
    _fn("min", "builtin", [(("int", "int"), "int", lambda a, b, sid: min(a, b), "min({0}, {1})"),
                           (("float", "float"), "float", lambda a, b, sid: min(a, b), "min({0}, {1})")],
        "the smaller value (an `int` with a `float` is widened)", arg_names=("a", "b")),
    _fn("max", "builtin", [(("int", "int"), "int", lambda a, b, sid: max(a, b), "max({0}, {1})"),
                           (("float", "float"), "float", lambda a, b, sid: max(a, b), "max({0}, {1})")],
        "the larger value (an `int` with a `float` is widened)", arg_names=("a", "b")),
)}

# Every function by its key (builtin name, operator symbol, "neg", comparison symbol).
FUNCTIONS: dict[str, Function] = {**OPERATORS, **COMPARISONS, **BUILTINS}
assert len(FUNCTIONS) == len(OPERATORS) + len(COMPARISONS) + len(BUILTINS)

# Builtins that answer yes or no and may stand alone as a body literal.
PREDICATES = frozenset(name for name, f in BUILTINS.items() if f.predicate)


# ------------------------------------------------------------------ aggregates


def _extreme(pick: Callable[[list], Value]) -> Callable[[list[Value], int], Value]:
    return lambda values, sid: pick(values) if values else NO_RESULT


@frozen
class AggSignature:
    """One typing of an aggregate: the aggregated value's type (None: no value), the result's type.

    ``fn(values, sid)`` computes the result from the distinct matches' values.
    Code generation accumulates with three templates over an accumulator cell
    ``{acc}`` (a variable, or an item such as ``acc[0]``): ``init`` (before the
    matches), ``step`` (per match, ``{v}`` is the value's code; may span lines)
    and ``finish`` (the result; ``{sid}`` is the span index)."""

    value: str | None
    result: str
    fn: Callable[[list[Value], int], Value]
    init: str
    step: str
    finish: str


@frozen
class AggregateOp:
    key: str
    signatures: tuple[AggSignature, ...]
    doc: str
    empty: str  # what an empty group gives, for the docs
    mismatch: str = "{name} cannot aggregate {0} values"

    @property
    def has_value(self) -> bool:
        return self.signatures[0].value is not None

    def resolve(self, value: str | None) -> AggSignature | None:
        for sig in self.signatures:
            if sig.value == value:
                return sig
        return None

    def type_error(self, value: str | None) -> str:
        return self.mismatch.format(str(value), name=self.key)


_MIN_STEP = "if {acc} is _MISS or {v} < {acc}:\n    {acc} = {v}"
_MAX_STEP = "if {acc} is _MISS or {v} > {acc}:\n    {acc} = {v}"
_EXTREME_FINISH = "_NONE if {acc} is _MISS else {acc}"

AGGREGATES: dict[str, AggregateOp] = {a.key: a for a in (
    AggregateOp("count", (AggSignature(None, "int", lambda values, sid: len(values), "{acc} = 0", "{acc} += 1", "{acc}"),),
                "the number of distinct matches", "`0`"),
    AggregateOp("sum", (
        AggSignature("int", "int", lambda values, sid: sum(values), "{acc} = 0", "{acc} += {v}", "{acc}"),  # type: ignore[arg-type]
        AggSignature("float", "float", fsum, "{acc} = []", "{acc}.append({v})", "_fsum({acc}, {sid})")),
        "the sum of `VAR` over the distinct matches (a float sum is exactly rounded and must stay finite)", "`0`",
        "sum needs numbers, got {0}"),
    AggregateOp("min", tuple(AggSignature(t, t, _extreme(min), "{acc} = _MISS", _MIN_STEP, _EXTREME_FINISH) for t in TYPES),
                "the smallest value of `VAR` (ordered as comparisons order)", "no result"),
    AggregateOp("max", tuple(AggSignature(t, t, _extreme(max), "{acc} = _MISS", _MAX_STEP, _EXTREME_FINISH) for t in TYPES),
                "the largest value of `VAR` (ordered as comparisons order)", "no result"),
)}


# ------------------------------------------------------------------ dynamic dispatch


def call(key: str, args: Sequence[Value], sid: int) -> Value:
    """Apply a function to values whose types are known only now (tool results, interpreters)."""
    func = FUNCTIONS.get(key)
    if func is None:
        raise EvalError(sid, f"unknown function {key}")
    types = [type_name(a) for a in args]
    sig = func.resolve(types)
    if sig is None:
        raise EvalError(sid, func.type_error(types))
    values = [widen(a, sid) if p == "float" and t == "int" else a for a, t, p in zip(args, types, sig.params)]  # type: ignore[arg-type]
    return sig.fn(*values, sid)


def aggregate(key: str, values: list[Value], sid: int, value_type: str | None = None) -> Value:
    """An aggregate over the distinct matches' values (``NO_RESULT`` for an empty min/max).

    ``value_type`` is the aggregated variable's static type when known (an
    empty float ``sum`` is ``0.0``); otherwise the values' own types decide."""
    op = AGGREGATES[key]
    if not op.has_value:
        return op.signatures[0].fn(values, sid)
    types = sorted({type_name(v) for v in values})
    if not types:
        sig = op.resolve(value_type) or op.signatures[0]
        return sig.fn([], sid)
    if types == ["float", "int"]:
        values, types = [widen(v, sid) if type(v) is int else v for v in values], ["float"]  # type: ignore[arg-type]
    sig = op.resolve(types[0]) if len(types) == 1 else None
    if sig is None:
        raise EvalError(sid, op.type_error(" and ".join(types)))
    return sig.fn(values, sid)


# ------------------------------------------------------------------ code generation


def emit_call(key: str, args: Sequence[str], types: Sequence[str | None], sid: int) -> str:
    """Python code applying a function to argument code of the given static types.

    Known types: the signature's template (ints widened where it takes floats).
    An unknown type (a tool result): dynamic dispatch through :func:`call`.
    Known types that fit no signature: a type error raised when evaluated
    (``check`` reports these, so only programs that skipped it get here)."""
    func = FUNCTIONS[key]
    if any(t is None for t in types):
        return f"_cat_call({key!r}, ({''.join(a + ', ' for a in args)}), {sid})"
    sig = func.resolve(types)
    if sig is None:
        return f"_type_error({sid}, {func.type_error(types)!r})"
    widened = [widen_code(a, sid) if t == "int" and p == "float" else a for a, t, p in zip(args, types, sig.params)]
    return sig.code(widened, sid)


def widen_code(code: str, sid: int) -> str:
    """Code widening an int to a float (a huge int is an agent failure)."""
    if code.lstrip("-").isdigit() and len(code) < 16:
        return repr(float(int(code)))  # a small int literal: widen it now
    return f"_widen({code}, {sid})"


def emit_aggregate(key: str, value: str | None) -> AggSignature:
    """The accumulation templates for an aggregate over values of this static type.

    An unknown value type (a tool result) collects the values and dispatches
    through :func:`aggregate` when the group is complete."""
    op = AGGREGATES[key]
    if not op.has_value:
        return op.signatures[0]
    sig = op.resolve(value)
    if sig is not None:
        return sig
    if value is None:
        return AggSignature(None, "", lambda values, sid: aggregate(key, values, sid), "{acc} = []", "{acc}.append({v})",
                            f"_cat_aggregate({key!r}, {{acc}}, {{sid}})")
    return AggSignature(value, "", lambda values, sid: aggregate(key, values, sid), "{acc} = []", "{acc}.append({v})",
                        f"_type_error({{sid}}, {op.type_error(value)!r})")


def _helpers() -> dict[str, object]:
    out: dict[str, object] = {
        "_finite": finite, "_widen": widen, "_type_error": type_error, "_fsum": fsum,
        "_cat_call": call, "_cat_aggregate": aggregate,
    }
    for func in FUNCTIONS.values():
        for sig in func.signatures:
            out[sig.helper] = sig.fn
    return out


# The names generated code may reference, all with a leading underscore.
HELPERS: dict[str, object] = _helpers()


# ------------------------------------------------------------------ docs


def _sig_text(params: Sequence[str], result: str) -> str:
    return f"`{', '.join(params)} → {result}`"


def builtin_rows() -> list[str]:
    """The rows of the builtin table of docs/language.md, one per builtin."""
    rows = []
    for f in BUILTINS.values():
        sigs = f.signatures
        results = {s.result for s in sigs}
        if f.arity == 1 and len(results) == 1 and len(sigs) > 1:
            typing = f"`{' | '.join(s.params[0] for s in sigs)} → {sigs[0].result}`".replace("|", "\\|")  # GFM table cell
        else:
            typing = ", ".join(_sig_text(s.params, s.result) for s in sigs)
        rows.append(f"| `{f.key}({', '.join(f.arg_names)})` | {typing} | {'yes' if f.predicate else ''} | {f.doc} |")
    return rows


def aggregate_rows() -> list[str]:
    """The rows of the aggregate table of docs/language.md."""
    rows = []
    for a in AGGREGATES.values():
        form = f"`{a.key} VAR {{ ... }}`" if a.has_value else f"`{a.key} {{ ... }}`"
        typing = ", ".join(f"`{s.value} → {s.result}`" if s.value else f"`→ {s.result}`" for s in a.signatures)
        rows.append(f"| {form} | {typing} | {a.empty} | {a.doc} |")
    return rows


def markdown_table(kind: str) -> str:
    """The generated table (``builtins`` or ``aggregates``) as it appears in docs/language.md."""
    if kind == "builtins":
        head = ["| function | signature | predicate | result |", "|---|---|---|---|"]
        return "\n".join(head + builtin_rows())
    head = ["| aggregate | value → result | empty group | result |", "|---|---|---|---|"]
    return "\n".join(head + aggregate_rows())


__all__ = ["AGGREGATES", "BUILTINS", "COMPARISONS", "EvalError", "FUNCTIONS", "HELPERS", "NO_RESULT", "OPERATORS",
           "PREDICATES", "aggregate", "call", "emit_aggregate", "emit_call", "markdown_table"]
