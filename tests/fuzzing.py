"""Random rule files and fact files for fuzzing: generated from the grammar, then mutated.

Pure standard library, driven by a ``random.Random`` so that one seed gives
one input. ``tests/test_fuzz.py`` feeds these through hypothesis (a fast
profile in the default suite); ``benchmarks/fuzz.py`` runs many of them in a
worker process with a time-out per input.

* ``gen_rules(rng)`` - a rule file that follows the grammar (declarations,
  facts, rules, agents, invariants, budgets, goals, tests, imports), but not
  necessarily the checks: names, types, arities and safety are right most of
  the time and wrong some of the time, so every stage gets exercised.
* ``gen_facts(rng)`` - ``(file name, text)`` of a fact file in one of the
  supported formats for the relations of ``FACTS_SCHEMA_RULES``.
* ``mutate(rng, text, corpus)`` - byte- and token-level damage: deletions,
  duplications, splices with other inputs, and hostile tokens (huge ints,
  ``1e999``, lone surrogate escapes, NUL, bare CR, a BOM, deep nesting).
"""

from __future__ import annotations

import json
import random
import re

# ---------------------------------------------------------------- rule files

TYPES = ("int", "float", "str", "bool")
REL_NAMES = ("p", "q", "r", "edge", "path", "node", "score", "a_b", "g__reach", "lower", "in_", "graph.reach")
VAR_NAMES = ("x", "y", "z", "w", "n", "_x", "s", "_")
BUILTINS = ("len", "lower", "upper", "contains", "startswith", "endswith", "substr", "to_str", "to_int",
            "to_float", "abs", "min", "max")

HOSTILE_TOKENS = (
    "1e999", "-1e999", "1e308 * 10.0", "9" * 4400, "-" + "7" * 4400, "0.0", "1_000", "1__0",
    '"\\ud800"', '"\\udc00x"', '"\\ud83d\\ude00"', '"\\u0000"', '"\\q"', '"é☃"', '""',
    "\x00", "\r", "\r\n", "\ufeff", "\u2028", "\t", "\x0b", "\x85", "#", "\\", "'",
    "_", "not", "fail", "count {", "sum x {", "min", "max {", "}", "{", "(", ")", ",", ".", ":-", "=", "!=",
    "++", "/", "% 0", "@t(x)", "@", "input", "relation", "agent", "when", "emit", "key(x) prefer min(x)",
    'import "./x\x00.cvg" as m', 'import "./x\\u0000.cvg" as m', 'import "./\udcff.cvg" as m', 'import "../up.cvg" as u', "import std.graph",
    "import std.nothing", 'import "./fuzz.cvg" as me', "module m", "goal p", "budget { max_cycles = 3 }",
    "budget { max_cycles = -1 }", "((((((((((", "))))))))))", "x" * 300, "a.b.c.d",
    "test \"t\" { given { p(1). } expect { q(1). } }", "expect tier converged", "on_failure retry 99999999999999999999 then skip",
    "priority 1e999", "confidence 0", "confidence 1e-400",
)


def _name(rng: random.Random, pool: tuple[str, ...]) -> str:
    return rng.choice(pool)


def _const(rng: random.Random, typ: str) -> str:
    if typ == "int":
        return rng.choice(("0", "1", "-1", "42", "1_000", str(10 ** 20), str(-(10 ** 19)), "7"))
    if typ == "float":
        return rng.choice(("0.5", "1.0", "-2.5", "3e2", "1.5e-3", "1e308"))
    if typ == "bool":
        return rng.choice(("true", "false"))
    return json.dumps(rng.choice(("a", "b", "", "é", 'q"x', "b\n", "☃", "x y")), ensure_ascii=rng.random() < 0.5)


def _expr(rng: random.Random, depth: int = 0) -> str:
    roll = rng.random()
    if depth > 3 or roll < 0.45:
        return _name(rng, VAR_NAMES) if rng.random() < 0.6 else _const(rng, rng.choice(TYPES))
    if roll < 0.7:
        op = rng.choice(("+", "-", "*", "/", "%", "++"))
        return f"{_expr(rng, depth + 1)} {op} {_expr(rng, depth + 1)}"
    if roll < 0.8:
        return f"({_expr(rng, depth + 1)})" if rng.random() < 0.5 else f"-{_expr(rng, depth + 1)}"
    if roll < 0.93:
        fn = rng.choice(BUILTINS)
        n = rng.choice((1, 1, 2, 3))
        return f"{fn}({', '.join(_expr(rng, depth + 1) for _ in range(n))})"
    op = rng.choice(("count", "sum x", "min y", "max x"))
    return f"{op} {{ {_body(rng, depth + 1)} }}"


def _atom(rng: random.Random, rels: list[tuple[str, list[str]]], depth: int = 0, consts: bool = False) -> str:
    name, cols = rng.choice(rels)
    if rng.random() < 0.05:
        cols = cols + ["int"]  # a wrong arity now and then
    args = []
    for typ in cols:
        if consts or rng.random() < 0.2:
            args.append(_const(rng, typ if rng.random() < 0.9 else rng.choice(TYPES)))
        elif rng.random() < 0.85:
            args.append(_name(rng, VAR_NAMES))
        else:
            args.append(_expr(rng, depth + 1))
    return f"{name}({', '.join(args)})"


_RELS: list[tuple[str, list[str]]] = []


def _body(rng: random.Random, depth: int = 0, rels: list[tuple[str, list[str]]] | None = None) -> str:
    rels = rels or _RELS or [("p", ["int"])]
    parts = []
    for _ in range(rng.randint(1, 4)):
        roll = rng.random()
        if roll < 0.55:
            parts.append(_atom(rng, rels, depth))
        elif roll < 0.67:
            parts.append("not " + _atom(rng, rels, depth))
        elif roll < 0.95:
            parts.append(f"{_expr(rng, depth + 1)} {rng.choice(('<', '<=', '>', '>=', '=', '!='))} {_expr(rng, depth + 1)}")
        elif roll < 0.98:
            parts.append(f"{_name(rng, VAR_NAMES)} = @t({_name(rng, VAR_NAMES)})")
        else:
            parts.append('fail "stop"')
    return ", ".join(parts)


def gen_rules(rng: random.Random) -> str:
    """One rule file, grammatical, mostly (not always) well-formed beyond syntax."""
    global _RELS
    rels: list[tuple[str, list[str]]] = []
    lines: list[str] = []
    if rng.random() < 0.1:
        lines.append("module m")
    if rng.random() < 0.2:
        lines.append(rng.choice(("import std.graph", "import std.graph as g", "import std.validate")))
    for _ in range(rng.randint(1, 5)):
        name = rng.choice([n for n in REL_NAMES if "." not in n])
        cols = [rng.choice(TYPES) for _ in range(rng.choice((0, 1, 1, 2, 2, 3)))]
        rels.append((name, cols))
        colnames = ["x", "y", "z"][: len(cols)]
        decl = ("input " if rng.random() < 0.4 else "") + f"relation {name}(" + ", ".join(
            f"{c}: {t}" for c, t in zip(colnames, cols)) + ")"
        if cols and rng.random() < 0.1:
            decl += f" key({colnames[0]}) prefer {rng.choice(('min', 'max'))}({colnames[-1]})"
        lines.append(decl)
    _RELS = rels
    try:
        for _ in range(rng.randint(0, 8)):
            roll = rng.random()
            if roll < 0.3:
                lines.append(_atom(rng, rels, consts=True) + ".")
            elif roll < 0.65:
                lines.append(f"{_atom(rng, rels)} :- {_body(rng, rels=rels)}.")
            elif roll < 0.8:
                extra = rng.choice(("", "priority 3 ", "confidence 0.5 ", "on_failure skip ", "on_failure retry 2 then abort "))
                lines.append(f"agent a{rng.randint(0, 3)} \"does a thing\" {{ {extra}when {_body(rng, rels=rels)} "
                             f"emit {_atom(rng, rels)} }}")
            elif roll < 0.87:
                kind = rng.choice(("invariant", "acceptance"))
                lines.append(f"{kind} i{rng.randint(0, 3)} \"msg\" {{ forbid {_body(rng, rels=rels)} }}")
            elif roll < 0.92:
                lines.append(f"budget {{ max_cycles = {rng.randint(0, 20)}, max_facts = {rng.randint(0, 500)} }}")
            elif roll < 0.95:
                lines.append(f"goal {rng.choice(rels)[0]}")
            else:
                lines.append(f'test "t{rng.randint(0, 9)}" {{ given {{ {_atom(rng, rels, consts=True)}. }} '
                             f"expect {{ {_atom(rng, rels, consts=True)}. }} expect tier converged }}")
    finally:
        _RELS = []
    if rng.random() < 0.3:
        lines.insert(rng.randint(0, len(lines)), "# a comment")
    return "\n".join(lines) + ("\n" if rng.random() < 0.9 else "")


# ---------------------------------------------------------------- fact files

FACTS_SCHEMA_RULES = """\
input relation edge(src: str, dst: str)
input relation weight(id: str, w: float)
input relation count(n: int)
input relation flag(on: bool)
input relation empty()
input relation mix(a: int, b: float, c: str, d: bool)
reach(x, y) :- edge(x, y).
reach(x, z) :- reach(x, y), edge(y, z).
heavy(i) :- weight(i, w), w > 0.5.
relation reach(a: str, b: str)
relation heavy(id: str)
"""

_FACT_RELS = {"edge": ("str", "str"), "weight": ("str", "float"), "count": ("int",), "flag": ("bool",),
              "empty": (), "mix": ("int", "float", "str", "bool")}
_COLUMNS = {"edge": ("src", "dst"), "weight": ("id", "w"), "count": ("n",), "flag": ("on",), "empty": (),
            "mix": ("a", "b", "c", "d")}


def _py_value(rng: random.Random, typ: str) -> object:
    if rng.random() < 0.05:
        return rng.choice((None, [], {}, "x", 1.5, True, 10 ** 30, float("inf")))
    if typ == "int":
        return rng.choice((0, 1, -1, 7, 10 ** 20))
    if typ == "float":
        return rng.choice((0.5, 1.0, -2.25, 1e300, 3))
    if typ == "bool":
        return rng.choice((True, False))
    return rng.choice(("a", "b", "c", "", "é", "x,y", 'q"', "line\nbreak", " sp "))


def _text_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def gen_facts(rng: random.Random) -> tuple[str, str]:
    """``(file name, text)``: one fact file for ``FACTS_SCHEMA_RULES``'s relations."""
    fmt = rng.choice(("json", "json", "jsonl", "csv", "csv", "tsv", "facts", "cvg"))
    rel = rng.choice(sorted(_FACT_RELS))
    types = _FACT_RELS[rel]
    rows = [[_py_value(rng, t) for t in types] for _ in range(rng.randint(0, 6))]
    if fmt == "json":
        if rng.random() < 0.5:
            return "facts.json", json.dumps({rel: rows}, ensure_ascii=rng.random() < 0.5, default=str)
        objs = [dict(zip(_COLUMNS[rel], r)) for r in rows]
        return f"{rel}.json", json.dumps(objs, default=str)
    if fmt == "jsonl":
        return "facts.jsonl", "\n".join(json.dumps({rel: r}, default=str) for r in rows) + "\n"
    if fmt == "csv":
        import csv
        import io

        out = io.StringIO()
        writer = csv.writer(out, lineterminator=rng.choice(("\n", "\r\n")))
        if rng.random() < 0.5:
            writer.writerow(_COLUMNS[rel])
        for r in rows:
            writer.writerow([_text_value(v) for v in r])
        return f"{rel}.csv", out.getvalue()
    if fmt in ("tsv", "facts"):
        body = "\n".join("\t".join(_text_value(v).replace("\t", " ").replace("\n", " ") for v in r) for r in rows)
        return f"{rel}.{fmt}", body + "\n"
    return "facts.cvg", "\n".join(
        f"{rel}({', '.join(json.dumps(v) if isinstance(v, str) else _text_value(v).lower() if isinstance(v, bool) else json.dumps(v) for v in r)})."
        for r in rows) + "\n"


# ---------------------------------------------------------------- mutation

_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|[0-9][0-9_.eE+-]*|[A-Za-z_][A-Za-z0-9_.]*')
_SAME_CLASS = {
    '"': ('"a"', '""', '"\\ud800"', '"\\u0000"', '"é"', '"x\\"y"', '"' + "s" * 200 + '"', "1", "x"),
    "0": ("0", "-1", "1_000", "9" * 4400, "1e999", "1e308", "0.5", "-0.0", "10000000000000000000000", '"1"', "x"),
    "a": ("x", "_", "y", "p", "edge", "graph.reach", "std.graph", "not", "count", "min", "relation", "input",
          "true", "false", "len", "g__reach", "a" * 100, "_x", "emit", "when", "int", "float", "str", "bool"),
}


def _retoken(rng: random.Random, text: str) -> str:
    """Replace one token by another of the same class (keeps most of the syntax, changes the meaning)."""
    tokens = list(_TOKEN.finditer(text))
    if not tokens:
        return text
    m = rng.choice(tokens)
    first = m.group(0)[0]
    pool = _SAME_CLASS['"' if first == '"' else "0" if first.isdigit() else "a"]
    return text[:m.start()] + rng.choice(pool) + text[m.end():]


def mutate(rng: random.Random, text: str, corpus: list[str] | tuple[str, ...] = ()) -> str:
    """Damage ``text`` with 1-4 random edits (it stays a str, possibly with lone surrogates)."""
    if rng.random() < 0.5:  # gentle: same-class token swaps, so later stages see the damage
        for _ in range(rng.randint(1, 3)):
            text = _retoken(rng, text)
        return text
    for _ in range(rng.choice((1, 1, 2, 3, 4))):
        n = len(text)
        roll = rng.random()
        i = rng.randint(0, n)
        j = min(n, i + rng.randint(0, 12))
        if roll < 0.2:  # delete a span
            text = text[:i] + text[j:]
        elif roll < 0.45:  # insert a hostile token
            text = text[:i] + rng.choice(HOSTILE_TOKENS) + text[i:]
        elif roll < 0.55:  # replace one character
            ch = chr(rng.choice((0, 9, 10, 13, 32, 34, 35, 40, 41, 44, 46, 92, 95, 123, 125, 0xFEFF, 0xD800,
                                 rng.randint(33, 126), rng.randint(0, 0x2FFF))))
            text = text[:i] + ch + text[i + 1:]
        elif roll < 0.65:  # duplicate a span
            text = text[:j] + text[i:j] + text[j:]
        elif roll < 0.72:  # repeat a span many times (long bodies, deep nesting)
            piece = text[i:j] or rng.choice(("(", "p(x), ", "-", "not ", "{"))
            text = text[:i] + piece * rng.randint(2, 60) + text[i:]
        elif roll < 0.82 and corpus:  # splice with another input
            other = rng.choice(corpus)
            k = rng.randint(0, len(other))
            text = text[:i] + other[k:k + rng.randint(1, 200)] + text[j:]
        elif roll < 0.9:  # swap two lines
            lines = text.split("\n")
            if len(lines) > 1:
                a, b = rng.randrange(len(lines)), rng.randrange(len(lines))
                lines[a], lines[b] = lines[b], lines[a]
            text = "\n".join(lines)
        elif roll < 0.95:  # truncate
            text = text[:i]
        else:  # a BOM, a CR or a NUL at the start
            text = rng.choice(("\ufeff", "\r", "\x00", "\ufeff\ufeff")) + text
    return text
