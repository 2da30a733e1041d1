"""The canonical layout of a rule file (``converge fmt``).

``format_source(text, file)`` parses ``text`` (a syntax error raises the
parser's own ``ConvergeError``, E100/E101) and prints the AST back in one
canonical layout, keeping every comment:

* one item per line; at most one blank line between items (kept only where
  the source had one or more), none at the start, one newline at the end;
* a Datalog rule stays on one line when it fits in ``WIDTH`` (88) columns,
  otherwise it breaks after ``:-`` with one body literal per line, indented
  four spaces; ``when``, ``emit`` and ``forbid`` clauses break the same way
  (keyword alone on its line, items indented four more spaces);
* ``agent``, ``invariant``, ``acceptance`` and ``test`` blocks put ``NAME
  ["text"] {`` on one line, each clause on its own line indented two spaces,
  and ``}`` alone; a ``given``/``expect`` block stays on one line when it
  fits, otherwise it puts one fact per line;
* expressions get single spaces around binary operators and only the
  parentheses precedence needs; strings are re-escaped canonically
  (``dumps_json(..., ensure_ascii=False)``, controls, bidirectional marks and
  line separators kept as ``\\uXXXX``); ints are printed plain (no
  ``_``), floats with ``repr``.

Comments are collected by the lexer (a Lark instance built like the parser's,
plus a ``lexer_callbacks`` hook for ``COMMENT``) and attached to the output
lines by source position: a comment alone on its line leads the next output
line (or the line whose source it sits inside); a comment after code trails
the output line holding that code. A comment inside a rule or clause keeps
the rule or clause broken over several lines, so the comment stays next to
its literal. An output line keeps one trailing comment; the others lead the
next line of the same item, or else that line itself, never another item. A
blank line is printed only where the source has a blank line between the
code (or comment) printed before and the line that follows; formatting adds
none. Formatting is idempotent: ``format_source(format_source(x)) ==
format_source(x)``; the output is verified to parse to the same AST with the
same comments before it is returned.
"""

from __future__ import annotations

import bisect
import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..values import dumps_json, int_to_str
from ..diagnostics import Span, normalize_newlines
from . import ast
from .parser import grammar_path, parse_text

__all__ = ["format_source", "string_literal", "WIDTH"]

WIDTH = 88      # a rule or clause longer than this is broken over several lines
BLOCK = 2       # indentation of the clauses of a { } block
CONT = 4        # extra indentation of broken body literals

Pos = tuple[int, int]  # (line, column), 1-based, as the parser's spans


# ---------------------------------------------------------------- comments

@dataclass(frozen=True)
class _Comment:
    line: int
    col: int
    text: str
    own_line: bool  # nothing but whitespace before it on its source line

    @property
    def pos(self) -> Pos:
        return (self.line, self.col)


_LOCK = threading.Lock()
_SINK: list[Any] = []
_COMMENT_PARSER: Any = None


def _collect(token: Any) -> Any:
    _SINK.append(token)
    return token


def _comment_parser() -> Any:
    global _COMMENT_PARSER
    if _COMMENT_PARSER is None:
        from lark import Lark

        from ..usercache import parser_cache, seal

        cache_path = parser_cache('comments')
        # Same options as parser._parser(), plus a hook that sees the ignored COMMENT tokens.
        _COMMENT_PARSER = Lark(grammar_path().read_text(encoding="utf-8"), parser="lalr",
                               start=["start", "query"], propagate_positions=True,
                               maybe_placeholders=True, cache=cache_path,
                               lexer_callbacks={"COMMENT": _collect})
        seal(cache_path)
    return _COMMENT_PARSER


def _comments(text: str) -> list[_Comment]:
    with _LOCK:
        _SINK.clear()
        try:
            _comment_parser().parse(text, start="start")
            tokens = list(_SINK)
        finally:
            _SINK.clear()
    lines = text.split("\n")
    out = []
    for tok in tokens:
        before = lines[tok.line - 1][: tok.column - 1] if tok.line - 1 < len(lines) else ""
        out.append(_Comment(tok.line, tok.column, str(tok).rstrip(), not before.strip()))
    return sorted(out, key=lambda c: c.pos)


# ---------------------------------------------------------------- text of the constructs

# What a string keeps as a \uXXXX escape rather than writing raw (JSON already escapes the C0
# controls): DEL and the C1 controls (U+009B is a terminal's CSI), the bidirectional marks and
# overrides (which reorder what a reader sees), the line and paragraph separators (which an
# editor may take for, or offer to remove as, line breaks), a byte order mark, lone surrogates
# (which cannot be written as UTF-8) and the non-characters U+FFFE, U+FFFF.
_KEPT_ESCAPED = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                           "\ufeff\ud800-\udfff\ufffe\uffff]")


def _string(value: str) -> str:
    text = dumps_json(value, ensure_ascii=False)
    return _KEPT_ESCAPED.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def string_literal(value: str) -> str:
    """A string as ``converge fmt`` writes it (and as the language server shows one)."""
    return _string(value)


def _number(value: int | float) -> str:
    if isinstance(value, float):
        return repr(value)  # finite: the parser rejects 1e999 (E104)
    return int_to_str(value)


def _const(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _string(value)
    assert isinstance(value, (int, float))
    return _number(value)


# Precedence levels (low binds loosest): ++ 1, + - 2, * / % 3, unary - 4, primary 5.
_LEVEL = {"++": 1, "+": 2, "-": 2, "*": 3, "/": 3, "%": 3}
_UNARY, _PRIMARY = 4, 5


def _expr(e: ast.Expr, min_level: int = 0) -> str:
    text, level = _expr_level(e)
    return f"({text})" if level < min_level else text


def _args(args: Sequence[ast.Expr]) -> str:
    return ", ".join(_expr(a) for a in args)


def _expr_level(e: Any) -> tuple[str, int]:
    if isinstance(e, ast.Var):
        return e.name, _PRIMARY
    if isinstance(e, ast.Wildcard):
        return "_", _PRIMARY
    if isinstance(e, ast.Const):
        text = _const(e.value)
        return text, _UNARY if text.startswith("-") else _PRIMARY
    if isinstance(e, ast.BinOp):
        level = _LEVEL[e.op]  # every binary operator is left-associative
        return f"{_expr(e.left, level)} {e.op} {_expr(e.right, level + 1)}", level
    if isinstance(e, ast.Neg):
        inner = _expr(e.operand, _UNARY)
        return "-" + (f"({inner})" if inner.startswith("-") else inner), _UNARY
    if isinstance(e, ast.Call):
        return f"{e.func}({_args(e.args)})", _PRIMARY
    if isinstance(e, ast.ToolCall):
        return f"@{e.tool}({_args(e.args)})", _PRIMARY
    if isinstance(e, ast.Aggregate):
        body = ", ".join(_literal(lit) for lit in e.body)
        head = e.op if e.value is None else f"{e.op} {e.value.name}"
        return f"{head} {{ {body} }}", _PRIMARY
    raise TypeError(f"not an expression: {e!r}")  # pragma: no cover


def _atom(a: ast.Atom) -> str:
    return f"{a.relation}({_args(a.args)})"


def _literal(lit: Any) -> str:
    if isinstance(lit, ast.Atom):
        return _atom(lit)
    if isinstance(lit, ast.Negation):
        return "not " + _atom(lit.atom)
    if isinstance(lit, ast.Comparison):
        left = _expr(lit.left)
        if re.match(r"(not|fail)\b", left):  # a call named like a keyword: keep it an expression
            left = f"({left})"
        return f"{left} {lit.op} {_expr(lit.right)}"
    if isinstance(lit, ast.Fail):
        return "fail " + _string(lit.message)
    if isinstance(lit, ast.Condition):
        return ("not " if lit.negated else "") + _expr(lit.call)
    raise TypeError(f"not a literal: {lit!r}")  # pragma: no cover


def _relation(d: ast.RelationDecl) -> str:
    cols = ", ".join(f"{c.name}: {c.type}" for c in d.columns)
    text = f"{'input ' if d.is_input else ''}relation {d.name}({cols})"
    if d.key is not None:
        text += f" key({', '.join(d.key.columns)}) prefer {d.key.prefer}({d.key.column})"
    return text


def _described(keyword: str, name: str, text: str | None) -> str:
    return f"{keyword} {name}" + (f" {_string(text)}" if text is not None else "") + " {"


# ---------------------------------------------------------------- output lines

@dataclass(eq=False)
class _Line:
    """One output line, tied to the source region it prints."""

    text: str
    indent: int
    start: Pos            # source position of its first token
    end: Pos              # a comment strictly between start and end sits inside this line
    last: int             # source line where its content ends
    blank_ok: bool = False          # may keep a blank line before it
    comment_blank_ok: bool = False  # its leading comments may keep a blank line before them
    comment_indent: int | None = None
    group: "_Group | None" = None
    leading: list[_Comment] = field(default_factory=list)
    trailing: list[_Comment] = field(default_factory=list)
    item: int = 0                   # the number of the item it prints


@dataclass(eq=False)
class _Group:
    """Lines printed as one line (joined with ``sep``) when short and free of inner comments."""

    lines: list[_Line]
    sep: str = " "


def _start(span: Any) -> Pos:
    return (span.line, span.col)


def _end(span: Any) -> Pos:
    return (span.end_line, span.end_col)


class _Layout:
    def __init__(self, text: str) -> None:
        self.text = text
        self.offsets = [0]
        for k, ch in enumerate(text):
            if ch == "\n":
                self.offsets.append(k + 1)
        self.lines: list[_Line] = []
        self.item_no = 0

    def after_brace(self, start: Pos) -> Pos:
        """The position of the first token after the first ``{`` at or after ``start``."""
        t, i = self.text, self.offsets[start[0] - 1] + start[1] - 1
        seen_brace = False
        while i < len(t):
            ch = t[i]
            if ch == '"' and not seen_brace:
                i += 1
                while i < len(t) and t[i] != '"':
                    i += 2 if t[i] == "\\" else 1
            elif ch == "#":
                while i < len(t) and t[i] != "\n":
                    i += 1
                continue
            elif ch == "{" and not seen_brace:
                seen_brace = True
            elif seen_brace and not ch.isspace():
                break
            i += 1
        line = bisect.bisect_right(self.offsets, i)
        return (line, i - self.offsets[line - 1] + 1)

    def line(self, text: str, indent: int, start: Pos, end: Pos | None = None, last: int | None = None, *,
             blank_ok: bool = False, comment_blank_ok: bool | None = None, comment_indent: int | None = None) -> _Line:
        ln = _Line(text, indent, start, end if end is not None else start, last if last is not None else start[0],
                   blank_ok, blank_ok if comment_blank_ok is None else comment_blank_ok, comment_indent,
                   item=self.item_no)
        self.lines.append(ln)
        return ln

    def group(self, lines: list[_Line], sep: str = " ") -> None:
        g = _Group(lines, sep)
        for ln in lines:
            ln.group = g

    def closing(self, span: Any, indent: int) -> _Line:
        """The ``}`` that ends a block whose span is ``span``."""
        pos = (span.end_line, span.end_col - 1)
        return self.line("}", indent, pos, (span.end_line, span.end_col), span.end_line,
                         comment_blank_ok=True, comment_indent=indent + BLOCK)

    def broken(self, header: _Line, parts: list[tuple[str, Any, Pos]], indent: int) -> None:
        """``header`` then one line per part (text, span, end), as one collapsible group."""
        lines = [header]
        for text, span, end in parts:
            lines.append(self.line(text, indent, _start(span), end, end[0]))
        self.group(lines)

    # -- items
    def item(self, item: Any, blank_ok: bool) -> None:
        self.item_no += 1
        sp = item.span
        top = {"blank_ok": blank_ok}
        if isinstance(item, ast.ModuleDecl):
            self.line(f"module {item.name}", 0, _start(sp), _end(sp), sp.end_line, **top)
        elif isinstance(item, ast.ImportStd):
            alias = f" as {item.alias}" if item.alias else ""
            self.line(f"import {item.module}{alias}", 0, _start(sp), _end(sp), sp.end_line, **top)
        elif isinstance(item, ast.ImportFile):
            self.line(f"import {_string(item.path)} as {item.alias}", 0, _start(sp), _end(sp), sp.end_line, **top)
        elif isinstance(item, ast.RelationDecl):
            self.line(_relation(item), 0, _start(sp), _end(sp), sp.end_line, **top)
        elif isinstance(item, ast.Rule):
            if not item.body:
                self.line(_atom(item.head) + ".", 0, _start(sp), _end(sp), sp.end_line, **top)
            else:
                head = self.line(_atom(item.head) + " :-", 0, _start(sp), _end(item.head.span), item.head.span.end_line, **top)
                self.body(head, item.body, ".", sp, CONT)
        elif isinstance(item, ast.AgentDecl):
            self.block(_described("agent", item.name, item.description), item, item.clauses, self.agent_clause, top)
        elif isinstance(item, ast.InvariantDecl):
            self.block(_described(item.kind, item.name, item.message), item, [item], self.forbid, top)
        elif isinstance(item, ast.BudgetDecl):
            inner = ", ".join(f"{k} = {_number(v)}" for k, v in item.items)
            self.line(f"budget {{ {inner} }}" if inner else "budget {}", 0, _start(sp), _end(sp), sp.end_line, **top)
        elif isinstance(item, ast.GoalDecl):
            self.line("goal " + ", ".join(item.relations), 0, _start(sp), _end(sp), sp.end_line, **top)
        elif isinstance(item, ast.TestDecl):
            self.block(f"test {_string(item.name)} {{", item, item.clauses, self.test_clause, top)
        else:  # pragma: no cover
            raise TypeError(f"unknown item {item!r}")

    def block(self, header_text: str, item: Any, clauses: Sequence[Any], emit: Any, top: dict[str, bool]) -> None:
        sp = item.span
        header = self.line(header_text, 0, _start(sp), **top)
        if not clauses:
            self.group([header, self.closing(sp, 0)], sep="")
            return
        for k, clause in enumerate(clauses):
            emit(clause, BLOCK, k > 0)
        self.closing(sp, 0)

    def body(self, header: _Line, body: Sequence[Any], final: str, span: Any, indent: int) -> None:
        parts = []
        for k, lit in enumerate(body):
            last = k == len(body) - 1
            parts.append((_literal(lit) + (final if last else ","), lit.span, _end(span) if last else _end(lit.span)))
        self.broken(header, parts, indent)

    def agent_clause(self, clause: ast.AgentClause, indent: int, blank_ok: bool) -> None:
        sp = clause.span
        if clause.kind in ("when", "emit"):
            header = self.line(clause.kind, indent, _start(sp), blank_ok=blank_ok)
            if clause.kind == "when":
                self.body(header, clause.value, "", sp, indent + CONT)  # type: ignore[arg-type]
            else:
                atoms: Sequence[ast.Atom] = clause.value  # type: ignore[assignment]
                parts = [(_atom(a) + ("" if k == len(atoms) - 1 else ","), a.span,
                          _end(sp) if k == len(atoms) - 1 else _end(a.span)) for k, a in enumerate(atoms)]
                self.broken(header, parts, indent + CONT)
            return
        if clause.kind in ("priority", "confidence"):
            text = f"{clause.kind} {_number(clause.value)}"  # type: ignore[arg-type]
        else:
            policy: tuple[Any, ...] = clause.value  # type: ignore[assignment]
            text = "on_failure " + (f"retry {int_to_str(policy[1])} then {policy[2]}" if policy[0] == "retry" and len(policy) == 3 else str(policy[0]))
        self.line(text, indent, _start(sp), _end(sp), sp.end_line, blank_ok=blank_ok)

    def forbid(self, item: ast.InvariantDecl, indent: int, blank_ok: bool) -> None:
        # The forbid clause has no span of its own: find its keyword after the `{`.
        header = self.line("forbid", indent, self.after_brace(_start(item.span)), blank_ok=blank_ok)
        last = item.body[-1].span
        self.body(header, item.body, "", Span(last.file, 0, 0, last.end_line, last.end_col), indent + CONT)

    _TEST_WORDS = {"given": "given", "expect": "expect", "expect_not": "expect not"}

    def test_clause(self, clause: ast.TestClause, indent: int, blank_ok: bool) -> None:
        sp = clause.span
        if clause.kind in self._TEST_WORDS:
            header = self.line(self._TEST_WORDS[clause.kind] + " {", indent, _start(sp), blank_ok=blank_ok)
            facts: Sequence[ast.Atom] = clause.value  # type: ignore[assignment]
            if not facts:
                self.group([header, self.closing(sp, indent)], sep="")
                return
            lines = [header]
            for k, atom in enumerate(facts):
                lines.append(self.line(_atom(atom) + ".", indent + BLOCK, _start(atom.span), _end(atom.span),
                                       atom.span.end_line, blank_ok=k > 0))
            lines.append(self.closing(sp, indent))
            self.group(lines)
            return
        if clause.kind == "given_file":
            text = f"given {_string(clause.value)}"  # type: ignore[arg-type]
        elif clause.kind == "expect_tier":
            text = f"expect tier {clause.value}"
        else:
            text = f"expect violation {clause.value}"
        self.line(text, indent, _start(sp), _end(sp), sp.end_line, blank_ok=blank_ok)


# ---------------------------------------------------------------- attaching comments, printing

def _attach(lines: list[_Line], comments: list[_Comment]) -> list[_Comment]:
    """Give every comment to a line (leading or trailing); return those after the last line."""
    starts = [ln.start for ln in lines]
    tail: list[_Comment] = []
    for c in comments:
        i = bisect.bisect_left(starts, c.pos) - 1  # the last line starting before the comment
        if not c.own_line and i >= 0:
            lines[i].trailing.append(c)
        elif i >= 0 and c.pos < lines[i].end:
            lines[i].leading.append(c)
        elif i + 1 < len(lines):
            lines[i + 1].leading.append(c)
        else:
            tail.append(c)
    return tail


def _collapse(lines: list[_Line]) -> list[_Line]:
    out: list[_Line] = []
    i = 0
    while i < len(lines):
        ln = lines[i]
        g = ln.group
        if g is None:
            out.append(ln)
            i += 1
            continue
        first, last = g.lines[0], g.lines[-1]
        text = g.sep.join(x.text for x in g.lines)
        inner_comments = any((x is not first and x.leading) or (x is not last and x.trailing) for x in g.lines)
        if not inner_comments and first.indent + len(text) <= WIDTH:
            out.append(_Line(text, first.indent, first.start, last.end, last.last, first.blank_ok,
                             first.comment_blank_ok, first.comment_indent, None, first.leading, last.trailing,
                             first.item))
        else:
            out.extend(g.lines)
        i += len(g.lines)
    return out


def _print(lines: list[_Line], tail: list[_Comment], source: list[str]) -> str:
    # A line keeps one trailing comment; the others lead the next line of the same item,
    # or else this line (never another item: a comment stays with the code it was written
    # in), or else follow the last line of the file.
    for k, ln in enumerate(lines):
        if len(ln.trailing) > 1:
            extra, ln.trailing = ln.trailing[1:], ln.trailing[:1]
            if k + 1 < len(lines):
                target = lines[k + 1].leading if lines[k + 1].item == ln.item else ln.leading
            else:
                target = tail
            target.extend(extra)
            target.sort(key=lambda c: c.pos)
    out: list[str] = []
    # The last source line printed so far. It never goes back (a comment moved after code of
    # a later source line, a trailing comment of a literal written over several lines, is
    # printed after that code), and a blank line is printed only where the source has a
    # blank line between it and what comes next: a line whose source reaches further than
    # its first token (the `{` of a block header, the `.` of a fact, on lines of their own)
    # is not "two lines away" from the next.
    prev = 0

    def put(text: str, src_line: int, blank_ok: bool) -> None:
        if out and blank_ok and out[-1] != "" and any(not source[n - 1].strip() for n in range(prev + 1, src_line)):
            out.append("")
        out.append(text)

    for ln in lines:
        cindent = " " * (ln.indent if ln.comment_indent is None else ln.comment_indent)
        for j, c in enumerate(ln.leading):
            # a trailing comment moved before its line (see above) keeps the blank lines of the line
            src = c.line if c.pos < ln.start else ln.start[0] if j == 0 else prev
            put(cindent + c.text, src, ln.comment_blank_ok)
            prev = max(prev, c.line)
        text = " " * ln.indent + ln.text
        if ln.trailing:
            text += "  " + ln.trailing[0].text
        put(text, ln.start[0], ln.blank_ok)
        prev = max(prev, ln.last, *(c.line for c in ln.trailing))
    for c in tail:
        put(c.text, c.line, True)
        prev = max(prev, c.line)
    return "\n".join(out) + "\n" if out else ""


def _layout(text: str, items: Sequence[Any]) -> list[_Line]:
    layout = _Layout(text)
    for item in items:
        layout.item(item, blank_ok=True)
    return layout.lines


def format_source(text: str, file: str = "<text>") -> str:
    """The canonical layout of a rule file; raises the parser's ConvergeError on a syntax error."""
    if text.startswith("\ufeff"):  # a byte order mark is not part of the program (nor of the output)
        text = text[1:]
    text = normalize_newlines(text)  # CRLF and CR end lines as the parser counts them; the output ends them with LF
    source = parse_text(text, file)
    comments = _comments(text)
    lines = _layout(text, source.items)
    tail = _attach(lines, comments)
    result = _print(_collapse(lines), tail, text.split("\n"))
    _verify(source, comments, result, file)
    return result


def _verify(source: ast.SourceFile, comments: list[_Comment], result: str, file: str) -> None:
    """The output must mean the same program and keep every comment; anything else is a bug here."""
    from ..diagnostics import ConvergeError

    try:
        again = parse_text(result, f"{file} (formatted)")
    except ConvergeError as err:  # pragma: no cover - a formatter bug
        raise AssertionError(f"converge fmt produced text that does not parse:\n{err}\n---\n{result}") from None
    if again.items != source.items:  # pragma: no cover - a formatter bug
        raise AssertionError(f"converge fmt changed the meaning of {file}")
    if sorted(c.text for c in _comments(result)) != sorted(c.text for c in comments):  # pragma: no cover
        raise AssertionError(f"converge fmt lost a comment of {file}")
