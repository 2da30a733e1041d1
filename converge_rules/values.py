"""Values, column types and relation schemas shared by every stage.

A fact is a Python tuple of values; a value is ``int``, ``float``, ``str`` or
``bool``. Columns are typed, so within one column every value has the same
Python type (an ``int`` never stands in a ``bool`` column, whatever
``True == 1`` says).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Iterable, Union

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


@dataclass(frozen=True)
class ColumnSchema:
    name: str
    type: str  # int | float | str | bool


@dataclass(frozen=True)
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


class ConversionError(ValueError):
    """A value that does not convert to its column's type."""


def convert(value: object, typ: str) -> Value:
    """Convert a value read from JSON or text to a column type, or raise ConversionError."""
    if typ == "str":
        if isinstance(value, str):
            return value
    elif typ == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            text = value.strip()
            try:
                return int(text.replace("_", "")) if text and "__" not in text else int(text)
            except ValueError:
                pass
    elif typ == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
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
    raise ConversionError(f"{json.dumps(value) if not isinstance(value, str) else json.dumps(value)} is not a valid {typ}")


def format_value(value: Value) -> str:
    """A value as the rule language writes it: ``"text"``, ``42``, ``3.5``, ``true``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        text = repr(value)
        return text if ("." in text or "e" in text or "n" in text) else text + ".0"
    return str(value)


def format_fact(relation: str, fact: Iterable[Value]) -> str:
    """``rel("a", 1)``"""
    return f"{relation}({', '.join(format_value(v) for v in fact)})"


def json_value(value: Value) -> object:
    """A value for JSON output (floats stay floats, ints stay ints)."""
    return value
