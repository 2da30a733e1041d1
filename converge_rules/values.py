"""Values, column types and relation schemas shared by every stage.

A fact is a Python tuple of values; a value is ``int``, ``float``, ``str`` or
``bool``. Columns are typed, so within one column every value has the same
Python type (an ``int`` never stands in a ``bool`` column, whatever
``True == 1`` says).
"""

from __future__ import annotations

import decimal
import json
import math
import re
from typing import Any, Iterable, Union

from ._frozen import frozen

Value = Union[int, float, str, bool]
Fact = tuple  # tuple[Value, ...]

TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool}


def type_name(value: object) -> str:
    """The language's name for a Python value's type."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return type(value).__name__


@frozen
class ColumnSchema:
    name: str
    type: str  # int | float | str | bool


@frozen
class RelationSchema:
    """What the I/O layer and the engine need to know about a relation."""

    name: str
    columns: tuple[ColumnSchema, ...]
    is_input: bool = False

    @property
    def arity(self) -> int:
        return len(self.columns)

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(c.type for c in self.columns)


# ---------------------------------------------------------------- ints of any size
#
# CPython refuses int <-> decimal text conversions beyond 4,300 digits unless
# the process-wide limit is raised (sys.set_int_max_str_digits), which a
# library must not do. Every conversion of a value goes through these helpers
# instead: small ints take the builtin path, big ones a path without a limit.

_SMALL_BITS = 13_000  # about 3,900 decimal digits: well inside CPython's limit
_CHUNK = 4_000  # decimal digits converted by one builtin int() call
_INT_TEXT = re.compile(r"[+-]?\d+(?:_\d+)*")


def int_to_str(value: int) -> str:
    """Decimal text of an int of any size (``str(int)`` without CPython's digit limit)."""
    if value.bit_length() <= _SMALL_BITS:
        return int.__str__(value)
    text = str(_to_decimal(abs(value)))
    return "-" + text if value < 0 else text


def _to_decimal(n: int) -> decimal.Decimal:
    """An exact Decimal of a big non-negative int, divide and conquer on its bits.

    ``Decimal(n)`` alone is quadratic; splitting ``n = hi * 2**k + lo`` and
    combining with Decimal products (libmpdec multiplies big numbers fast)
    is not. The local context is exact and is dropped on return.
    """
    with decimal.localcontext() as ctx:
        ctx.prec, ctx.Emax, ctx.Emin = decimal.MAX_PREC, decimal.MAX_EMAX, decimal.MIN_EMIN
        ctx.traps[decimal.Inexact] = True
        powers: dict[int, decimal.Decimal] = {}

        def power(bits: int) -> decimal.Decimal:
            found = powers.get(bits)
            if found is None:
                if bits <= _SMALL_BITS:
                    found = decimal.Decimal(1 << bits)
                else:
                    half = bits >> 1
                    found = power(half) * power(bits - half)
                powers[bits] = found
            return found

        def convert(m: int, bits: int) -> decimal.Decimal:
            if bits <= _SMALL_BITS:
                return decimal.Decimal(m)
            half = bits >> 1
            hi = m >> half
            return convert(m - (hi << half), half) + convert(hi, bits - half) * power(half)

        return +convert(n, n.bit_length())


def _digits_to_int(digits: str, powers: dict[int, int]) -> int:
    if len(digits) <= _CHUNK:
        return int(digits)
    low = len(digits) // 2
    scale = powers.get(low)
    if scale is None:
        scale = powers[low] = 10 ** low
    return _digits_to_int(digits[:-low], powers) * scale + _digits_to_int(digits[-low:], powers)


def str_to_int(text: str) -> int:
    """``int(text)`` for decimal text of any length (same syntax: sign, ``_`` between digits, spaces)."""
    if len(text) <= _CHUNK:
        return int(text)
    stripped = text.strip()
    if not _INT_TEXT.fullmatch(stripped):
        raise ValueError(f"invalid literal for int(): {stripped[:20]!r}...")
    sign = -1 if stripped[0] == "-" else 1
    digits = stripped.lstrip("+-").replace("_", "")
    return sign * _digits_to_int(digits, {})


def _bigint_ok(value: Any) -> bool:
    return not (type(value) is int and value.bit_length() > _SMALL_BITS)


def dumps_json(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` that also writes ints of any size (as plain JSON numbers) and
    documents nested deeper than Python's recursion limit (a proof tree of a long chain):
    those are written by an iterative encoder giving the same text."""
    try:
        return json.dumps(obj, **kwargs)
    except RecursionError:
        return dumps_json_iterative(obj, **kwargs)
    except ValueError:
        pass  # an int beyond CPython's digit limit: put placeholders, then splice the digits in
    texts: list[str] = []
    big: list[int] = []

    def walk(value: Any, marker: str | None) -> Any:
        if type(value) is int and value.bit_length() > _SMALL_BITS:
            if marker is None:
                return value
            big.append(value)
            return f"\x00{marker}{len(big) - 1}\x00"
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, dict):
            return {k: walk(v, marker) for k, v in value.items()}
        elif isinstance(value, (list, tuple)):
            return [walk(v, marker) for v in value]
        return value

    try:
        walk(obj, None)
        marker = "cvgint"
        while any(marker in t for t in texts):  # a marker that no string of the document contains
            marker += "_"
        replaced = walk(obj, marker)
    except RecursionError:  # deep as well (or circular): the iterative encoder writes big ints itself
        return dumps_json_iterative(obj, **kwargs)
    if not big:
        return json.dumps(obj, **kwargs)  # not a big int: let the original error show
    text = json.dumps(replaced, **kwargs)
    pattern = r'"\\u0000' + re.escape(marker) + r'(\d+)\\u0000"'
    return re.sub(pattern, lambda m: int_to_str(big[int(m.group(1))]), text)


def dumps_json_iterative(obj: Any, *, skipkeys: bool = False, ensure_ascii: bool = True, check_circular: bool = True,
                         allow_nan: bool = True, indent: int | str | None = None,
                         separators: tuple[str, str] | None = None, default: Any = None,
                         sort_keys: bool = False, max_indent_level: int | None = None, **unsupported: Any) -> str:
    """``json.dumps`` (same options, same text) with explicit stacks instead of recursion.

    The standard encoder recurses once per nesting level, so a proof tree some
    thousand levels deep raises RecursionError; this one walks any depth without
    touching the interpreter's recursion limit. Ints of any size are written in full.

    ``max_indent_level``: with ``indent``, lines nested deeper than this many levels
    are indented no further. Indentation grows with depth, so without a cap a
    document N levels deep takes on the order of N squared characters of spaces
    (a 3,000-step proof: half a gigabyte); documents no deeper than the cap are
    written exactly as ``json.dumps`` writes them.
    """
    if unsupported:  # cls=... and the like: only the standard encoder knows what they mean
        raise TypeError(f"dumps_json_iterative() got unsupported option(s): {', '.join(sorted(unsupported))}")
    if indent is not None and not isinstance(indent, str):
        indent = " " * indent
    if separators is not None:
        item_sep, key_sep = separators
    else:
        item_sep, key_sep = ("," if indent is not None else ", "), ": "
    encode_str = json.encoder.encode_basestring_ascii if ensure_ascii else json.encoder.encode_basestring  # type: ignore[attr-defined]
    to_json = default if default is not None else json.JSONEncoder().default
    cap = max_indent_level
    markers: dict[int, Any] | None = {} if check_circular else None
    chunks: list[str] = []
    # A frame is [items iterator, is_dict, separator, closing text, marker id]; a
    # frame with no iterator only drops the marker of a value ``default`` converted.
    stack: list[list[Any]] = []
    level = 0

    def float_text(o: float) -> str:
        if o != o:
            text = "NaN"
        elif o == math.inf:
            text = "Infinity"
        elif o == -math.inf:
            text = "-Infinity"
        else:
            return float.__repr__(o)
        if not allow_nan:
            raise ValueError("Out of range float values are not JSON compliant")
        return text

    def mark(o: Any) -> int | None:
        if markers is None:
            return None
        if id(o) in markers:
            raise ValueError("Circular reference detected")
        markers[id(o)] = o
        return id(o)

    def value(o: Any) -> None:
        """Write a scalar, or open a container (its items are written by the loop below)."""
        nonlocal level
        while True:
            if isinstance(o, str):
                chunks.append(encode_str(o))
            elif o is None:
                chunks.append("null")
            elif o is True:
                chunks.append("true")
            elif o is False:
                chunks.append("false")
            elif isinstance(o, int):
                chunks.append(int_to_str(int(o)))
            elif isinstance(o, float):
                chunks.append(float_text(o))
            elif isinstance(o, (list, tuple, dict)):
                is_dict = isinstance(o, dict)
                if not o:
                    chunks.append("{}" if is_dict else "[]")
                    return
                marker = mark(o)
                chunks.append("{" if is_dict else "[")
                closing = "}" if is_dict else "]"
                if indent is not None:
                    level += 1
                    newline = "\n" + indent * (level if cap is None else min(level, cap))
                    chunks.append(newline)
                    separator = item_sep + newline
                    closing = "\n" + indent * (level - 1 if cap is None else min(level - 1, cap)) + closing
                else:
                    separator = item_sep
                items = (sorted(o.items()) if sort_keys else o.items()) if is_dict else o
                stack.append([iter(items), is_dict, separator, closing, marker, True])
            else:
                stack.append([None, False, "", "", mark(o), True])
                o = to_json(o)
                continue
            return

    def key_text(key: Any) -> str | None:
        if isinstance(key, str):
            return key
        if isinstance(key, float):
            return float_text(key)
        if key is True:
            return "true"
        if key is False:
            return "false"
        if key is None:
            return "null"
        if isinstance(key, int):
            return int_to_str(int(key))
        if skipkeys:
            return None
        raise TypeError(f"keys must be str, int, float, bool or None, not {key.__class__.__name__}")

    value(obj)
    while stack:
        frame = stack[-1]
        items, is_dict, separator, closing, marker, first = frame
        item = next(items, _END) if items is not None else _END
        if item is _END:
            stack.pop()
            if markers is not None and marker is not None:
                del markers[marker]
            if items is not None:
                if indent is not None:
                    level -= 1
                chunks.append(closing)
            continue
        if is_dict:
            key = key_text(item[0])
            if key is None:
                continue
            if not first:
                chunks.append(separator)
            frame[5] = False
            chunks.append(encode_str(key))
            chunks.append(key_sep)
            value(item[1])
        else:
            if not first:
                chunks.append(separator)
            frame[5] = False
            value(item)
    return "".join(chunks)


_END = object()


def loads_json(text: str, **kwargs: Any) -> Any:
    """``json.loads`` that also reads ints of any size."""
    try:
        return json.loads(text, **kwargs)
    except json.JSONDecodeError:
        raise
    except ValueError:  # an int beyond CPython's digit limit
        return json.loads(text, parse_int=str_to_int, **kwargs)


# ---------------------------------------------------------------- text

def has_surrogate(text: str) -> bool:
    """True when ``text`` holds a lone surrogate (U+D800..U+DFFF): not valid Unicode, not encodable."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def value_problem(value: object) -> str | None:
    """Why a value may not be stored (a float that is not finite, a string that is not valid Unicode), or None."""
    if type(value) is float and not math.isfinite(value):
        return f"{value!r} is not a finite float"
    if isinstance(value, str) and has_surrogate(value):
        return "the string holds a lone surrogate (not valid Unicode)"
    return None


class ConversionError(ValueError):
    """A value that does not convert to its column's type."""


class JsonFloat(float):
    """A JSON number literal with a fraction or exponent whose float is integral but at least
    2**53 in size, where floats skip integers: it keeps its text, so that an ``int`` column
    takes the integer written (``12345678901234567890123.0``), not the nearest float's."""

    __slots__ = ("text",)


_FLOAT_EXACT = float(2 ** 53)


def json_float(text: str) -> float:
    """The ``parse_float`` of JSON fact files: a float, or a :class:`JsonFloat` (see there)."""
    value = float(text)
    if value.is_integer() and not -_FLOAT_EXACT < value < _FLOAT_EXACT:  # inf is not integral
        literal = JsonFloat(value)
        literal.text = text
        return literal
    return value


def convert(value: object, typ: str) -> Value:
    """Convert a value read from JSON or text to a column type, or raise ConversionError.

    The result has exactly the column's Python type: a subclass given from Python (an
    ``IntEnum`` or ``StrEnum`` member) becomes its plain value, as a tool's value does."""
    if typ == "str":
        if isinstance(value, str):
            if has_surrogate(value):
                raise ConversionError(f"{_shown(value)} is not valid Unicode (it holds a lone surrogate)")
            return value if type(value) is str else str.__str__(value)
    elif typ == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value if type(value) is int else int.__index__(value)
        if type(value) is JsonFloat:  # the number written, not the float it rounds to
            exact = decimal.Decimal(value.text)
            if exact == exact.to_integral_value():
                return int(exact)
        elif isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            text = value.strip()
            try:
                return str_to_int(text.replace("_", "")) if text and "__" not in text else str_to_int(text)
            except ValueError:
                pass
    elif typ == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                result = float(value)
            except OverflowError:
                raise ConversionError(f"{_shown(value)} is not a valid float (too large)") from None
            if math.isfinite(result):
                return result
        if isinstance(value, str):
            try:
                result = float(value.strip())
                if math.isfinite(result):
                    return result
            except ValueError:
                pass
    elif typ == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
            return value.strip().lower() in ("true", "1")
    raise ConversionError(f"{_shown(value)} is not a valid {typ}")


def _shown(value: object) -> str:
    if type(value) is JsonFloat:
        return value.text if len(value.text) <= 60 else value.text[:57] + "..."
    try:
        text = dumps_json(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def format_value(value: Value) -> str:
    """A value as the rule language writes it: ``"text"``, ``42``, ``3.5``, ``true``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        text = repr(value)
        return text if ("." in text or "e" in text or "n" in text) else text + ".0"
    if isinstance(value, int):
        return int_to_str(value)
    return str(value)


SHOWN_CHARS = 60    # the longest string a message quotes whole
SHOWN_BITS = 192    # the widest int a message prints whole (58 digits)
MESSAGE_CHARS = 2000  # the longest text a message takes from outside (a tool's exception)


def shown_value(value: Value) -> str:
    """A value as ``format_value`` writes it, for an error message: a string longer than
    SHOWN_CHARS is cut (``"abc..." (N characters)``) and an int wider than SHOWN_BITS
    is named by its size (``(an int of N bits)``). A value can be 16 MiB (a tool's); its
    message stays short, and costs a slice, never a whole conversion to decimal."""
    if isinstance(value, str) and len(value) > SHOWN_CHARS:
        return format_value(value[:SHOWN_CHARS - 3])[:-1] + f'..." ({len(value)} characters)'
    if type(value) is int and value.bit_length() > SHOWN_BITS:
        return f"(an int of {value.bit_length()} bits)"
    return format_value(value)


def clipped(text: str, limit: int = MESSAGE_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was: for outside text in a message."""
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def format_fact(relation: str, fact: Iterable[Value]) -> str:
    """``rel("a", 1)``"""
    return f"{relation}({', '.join(format_value(v) for v in fact)})"


def json_value(value: Value) -> object:
    """A value for JSON output (floats stay floats, ints stay ints)."""
    return value
