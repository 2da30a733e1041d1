"""Ground facts written one a line, read without the LALR parser.

Rule files often list facts by the thousand (``edge("a", "b").``). Lark's parser costs about
100 us and a parse-tree node per token on such a line, so a 200,000-line listing took 51 s
and 670 MB to parse. A line that is one fact whose arguments are literals (strings, ints,
floats, ``true``, ``false``, a ``-`` before a number), at the top level and right after the end
of an item, is read here instead: the same ``ast.Rule`` with the same spans the grammar would
give. Every other line, and any line here that is not plainly such a fact, goes to the
grammar, which stays the single source of syntax: anything this module is unsure of (a keyword
as a relation name, an escape that is not valid, a number out of range) it leaves alone.
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache

from ..diagnostics import Span
from ..values import has_surrogate, str_to_int
from . import ast

_NAME = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_HEAD = re.compile(rf"([ \t]*)({_NAME})[ \t]*\(")
_STRING = r'"(?:[^"\\\n]|\\.)*"'
_NUMBER = r"[0-9][0-9_]*(?:\.[0-9][0-9_]*)?(?:[eE][+-]?[0-9]+)?"
# one argument, then what follows it: a comma or the closing parenthesis
_ARG = re.compile(rf"[ \t]*(?:(-)[ \t]*)?({_STRING}|{_NUMBER}|true\b|false\b)[ \t]*([,)])")
_EMPTY = re.compile(r"[ \t]*\)")  # no argument
_END = re.compile(r"[ \t]*\.[ \t]*$")
# what moves the brace depth or ends a line's content: strings and comments are skipped whole
_TOKENS = re.compile(rf'{_STRING}|#[^\n]*|[{{}}]')
_MAX_DIGITS = 18  # longer ints go to the grammar (and its limits)
_RAW_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # JSON (the grammar's builder) refuses them raw in a string


@lru_cache(maxsize=1)
def _keywords() -> frozenset[str]:
    """Every word the grammar reserves: such a relation name is the grammar's to judge."""
    from .parser import grammar_path

    text = grammar_path().read_text(encoding="utf-8")
    return frozenset(re.findall(r'"([a-z_]+)"', text))


def split_fact_lines(text: str, file: str) -> tuple[list[ast.Rule], str]:
    """The facts read here, in line order, and ``text`` with their lines emptied (line breaks
    kept, so every position the grammar reports stays where it was)."""
    lines = text.split("\n")
    keywords = _keywords()
    facts: list[ast.Rule] = []
    depth = 0
    boundary = True  # the previous content ended an item: a fact line here starts a new one
    for number, line in enumerate(lines, 1):
        if depth == 0 and boundary and "." in line:
            rule = _fact(line, number, file, keywords)
            if rule is not None:
                facts.append(rule)
                lines[number - 1] = ""
                continue
        content = line
        for token in _TOKENS.finditer(line):
            tok = token.group()
            if tok == "{":
                depth += 1
            elif tok == "}":
                depth -= 1
            elif tok[0] == "#":
                content = line[:token.start()]
        content = content.rstrip()
        if content:
            boundary = content.endswith(".")
    if not facts:
        return [], text
    return facts, "\n".join(lines)


def _fact(line: str, number: int, file: str, keywords: frozenset[str]) -> ast.Rule | None:
    head = _HEAD.match(line)
    if head is None or head.group(2).split(".")[0] in keywords:
        return None
    start = head.end(1)
    args: list[ast.Expr] = []
    at = head.end()
    empty = _EMPTY.match(line, at)
    if empty is not None:
        close = empty.end()  # the position just after ")"
    else:
        while True:
            arg = _ARG.match(line, at)
            if arg is None:
                return None
            const = _const(arg, number, file)
            if const is None:
                return None
            args.append(const)
            at = arg.end()
            if arg.group(3) == ")":
                close = at
                break
    end = _END.match(line, close)
    if end is None:
        return None
    dot = line.index(".", close) + 1
    atom = ast.Atom(head.group(2), tuple(args), Span(file, number, start + 1, number, close + 1))
    return ast.Rule(atom, (), Span(file, number, start + 1, number, dot + 1))


def _const(arg: "re.Match[str]", number: int, file: str) -> ast.Const | None:
    minus, literal = arg.group(1), arg.group(2)
    begin = arg.start(1) if minus else arg.start(2)
    span = Span(file, number, begin + 1, number, arg.end(2) + 1)
    if literal[0] == '"':
        if minus or _RAW_CONTROL.search(literal):
            return None  # the grammar's builder reports a raw control character
        if "\\" not in literal:
            value = literal[1:-1]  # nothing to unescape
        else:
            try:
                value = json.loads(literal)
            except ValueError:
                return None  # the grammar's builder reports the escape
        if not isinstance(value, str) or has_surrogate(value):
            return None
        return ast.Const(value, span)
    if literal in ("true", "false"):
        return None if minus else ast.Const(literal == "true", span)
    if "." in literal or "e" in literal or "E" in literal:  # _NUMBER's shape is the grammar's FLOAT
        number_value = float(literal.replace("_", ""))
        if not math.isfinite(number_value):
            return None
        return ast.Const(-number_value if minus else number_value, span)
    if len(literal) > _MAX_DIGITS or literal.endswith("_") or "__" in literal:
        return None  # the grammar's INT allows trailing and doubled _: its builder decides
    value = str_to_int(literal.replace("_", ""))
    return ast.Const(-value if minus else value, span)


__all__ = ["split_fact_lines"]
