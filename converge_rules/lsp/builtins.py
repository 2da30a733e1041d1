"""Builtin functions as the editor shows them: name, signature and one line of doc.

Names and arities come from the type checker (``compile.types.BUILTINS``): the
server offers exactly what ``check`` accepts. The signatures and docs below are
the editor's wording; when the builtin catalogue lands, ``builtin_docs`` is the
one function to switch over to it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuiltinDoc:
    name: str
    signature: str
    doc: str


_WORDING = {
    "len": ("len(s: str) -> int", "The number of characters of a string."),
    "lower": ("lower(s: str) -> str", "A string in lower case."),
    "upper": ("upper(s: str) -> str", "A string in upper case."),
    "contains": ("contains(s: str, part: str) -> bool", "Whether `part` occurs in `s`; may stand alone as a literal."),
    "startswith": ("startswith(s: str, prefix: str) -> bool", "Whether `s` starts with `prefix`; may stand alone as a literal."),
    "endswith": ("endswith(s: str, suffix: str) -> bool", "Whether `s` ends with `suffix`; may stand alone as a literal."),
    "substr": ("substr(s: str, start: int, length: int) -> str", "`length` characters of `s` from `start` (0-based)."),
    "to_str": ("to_str(v) -> str", "Any value as text."),
    "to_int": ("to_int(v) -> int", "A value as an integer (a float truncates toward zero; a string must be a number)."),
    "to_float": ("to_float(v: int | float | str) -> float", "A value as a float."),
    "abs": ("abs(n: int | float) -> int | float", "The absolute value of a number."),
    "min": ("min(a, b) -> number", "The smaller of two numbers (int and float mix to float)."),
    "max": ("max(a, b) -> number", "The larger of two numbers (int and float mix to float)."),
}


def builtin_docs() -> dict[str, BuiltinDoc]:
    """Every builtin the type checker knows, sorted by name, with signature and doc.

    An entry of ``BUILTINS`` is ``(arity, result_type_fn)`` today; a catalogue entry
    (with ``signatures``, ``arg_names`` and ``doc``) is read for its own wording."""
    from ..compile.types import BUILTINS

    out = {}
    for name in sorted(BUILTINS):
        entry = BUILTINS[name]
        signatures = getattr(entry, "signatures", None)
        if signatures:
            names = tuple(getattr(entry, "arg_names", ()) or ())
            shown = []
            for sig in signatures:
                params = [f"{names[i] if i < len(names) else f'a{i + 1}'}: {t}" for i, t in enumerate(sig.params)]
                shown.append(f"{name}({', '.join(params)}) -> {sig.result}")
            out[name] = BuiltinDoc(name, "\n".join(shown), str(getattr(entry, "doc", "") or ""))
            continue
        arity = entry[0] if isinstance(entry, tuple) else 0
        signature, doc = _WORDING.get(name, (f"{name}({', '.join(f'a{i + 1}' for i in range(arity))})", ""))
        out[name] = BuiltinDoc(name, signature, doc)
    return out


KEYWORDS = ("module", "import", "as", "input", "relation", "key", "prefer", "agent", "when", "emit",
            "priority", "confidence", "on_failure", "retry", "then", "skip", "abort", "invariant",
            "acceptance", "forbid", "budget", "goal", "test", "given", "expect", "tier", "violation",
            "not", "fail", "count", "sum", "min", "max", "true", "false")
