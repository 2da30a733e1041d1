"""Text → AST. Lark (LALR) does the parsing; every Lark error becomes a Diagnostic."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..diagnostics import ConvergeError, Diagnostic, Span, normalize_newlines, quote_text
from ..values import has_surrogate, str_to_int
from ..regularfile import NotRegularFile, read_regular_file
from . import ast

_PARSER: Any = None

# Human names for the grammar's terminals, used in "expected ..." messages.
_TOKEN_NAMES = {
    "LPAR": "'('", "RPAR": "')'", "LBRACE": "'{'", "RBRACE": "'}'", "COMMA": "','",
    "DOT": "'.'", "COLON": "':'", "IF": "':-'", "__ANON_0": "':-'", "NAME": "a name",
    "QNAME": "a qualified name", "STRING": "a string", "INT": "an integer",
    "FLOAT": "a number", "CMP": "a comparison", "PLUS": "'+'", "MINUS": "'-'",
    "STAR": "'*'", "SLASH": "'/'", "PERCENT": "'%'", "EQUAL": "'='", "AT": "'@'",
    "$END": "end of input",
}


def grammar_path() -> Path:
    """The grammar file: inside the installed package, or in a source checkout."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "grammar" / "converge.lark", here.parent / "grammar" / "converge.lark"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("converge.lark not found; the installation is incomplete")


def _parser() -> Any:
    global _PARSER
    if _PARSER is None:
        from lark import Lark

        from ..usercache import parser_cache, seal

        cache_path = parser_cache('parser')
        _PARSER = Lark(grammar_path().read_text(encoding="utf-8"), parser="lalr",
                       start=["start", "query"], propagate_positions=True,
                       maybe_placeholders=True, cache=cache_path)
        seal(cache_path)
    return _PARSER


_OPERATORS = {"PLUS", "MINUS", "STAR", "SLASH", "PERCENT", "CMP", "__ANON_1", "EQUAL", "LESSTHAN", "MORETHAN"}


_CLAUSE_WORDS = {"RBRACE", "WHEN", "EMIT", "PRIORITY", "CONFIDENCE", "ON_FAILURE", "FORBID"}


def _open_braces(text: str, line: int, col: int) -> int:
    """How many `{` are open before a position (strings and comments skipped)."""
    lines = text.split("\n")
    upto = "\n".join(lines[: max(line - 1, 0)] + [lines[line - 1][: max(col - 1, 0)]] if 0 < line <= len(lines) else lines)
    depth, in_str, i = 0, False, 0
    while i < len(upto):
        ch = upto[i]
        if in_str:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch == "#":
            while i < len(upto) and upto[i] != "\n":
                i += 1
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        i += 1
    return depth


def _expected(names: set[str], braces: int = 1) -> str:
    if braces <= 0:
        names = {n for n in names if n not in _CLAUSE_WORDS} or names
    structural = {n for n in names if n not in _OPERATORS}  # ':-' (an anonymous terminal) is no operator
    if structural:
        names = structural
    shown = sorted({_TOKEN_NAMES.get(n, n.lower() if n.isupper() else repr(n)) for n in names})
    if len(shown) > 8:
        shown = shown[:8] + ["..."]
    return ", ".join(shown)


def _acceptable(err: Any) -> set[str]:
    """The terminals the parser would shift where it stopped. Not ``err.expected``: an LALR
    state that reduces by default shares its lookahead between the rules it may end, so
    `budget { max_cycles = 1 x }` listed an agent's `emit` and `when` as expected, and
    `agent a { priority 1 x }` a ','. ``accepts()`` tries each terminal on a copy of the parser."""
    try:
        accepted = set(err.interactive_parser.accepts())
    except Exception:  # pragma: no cover - a parser state Lark cannot replay: its own list
        accepted = set()
    return accepted or set(err.expected)


def _describe(token: Any) -> str:
    if token.type == "$END":
        return "end of input"
    text = str(token)
    if len(text) > 40:  # a long name or string: the caret and the quoted line show the rest
        return f"{text[:30]!r}... ({len(text)} characters)"
    return repr(text)


def parse_text(text: str, file: str = "<input>") -> ast.SourceFile:
    """Parse a rule file; raises ConvergeError with located diagnostics. LF, CRLF and a lone
    CR all end a line (a comment, a line number), and a leading byte order mark is ignored,
    whether the text comes from a file, from standard input, from an editor or from a string."""
    text = normalize_newlines(text)
    if text.startswith("\ufeff"):
        # A byte order mark is no text (read_rule_file drops it from a file; an editor's buffer
        # or a string given to load_text may still hold it): read as a space, so that every
        # column stays the one the text as given has.
        text = " " + text[1:]
    try:
        return _parse_text(text, file)
    except ConvergeError as err:  # each diagnostic quotes this text, whatever is parsed later
        raise ConvergeError(quote_text(err.diagnostics, file, text)) from None


def _parse_text(text: str, file: str) -> ast.SourceFile:
    from .factlines import split_fact_lines

    facts, rest = split_fact_lines(text, file)
    if not facts:
        return _parse_grammar(text, file)
    try:
        parsed = _parse_grammar(rest, file)
    except ConvergeError:
        return _parse_grammar(text, file)  # the diagnostics of the file as written
    items = sorted(parsed.items + tuple(facts), key=lambda item: (item.span.line, item.span.col))
    return ast.SourceFile(file, tuple(items))


def _parse_grammar(text: str, file: str) -> ast.SourceFile:
    from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

    try:
        tree = _parser().parse(text, start="start")
    except UnexpectedToken as err:
        line = err.line if err.line not in (None, -1) else text.count("\n") + 1
        col = err.column if err.column not in (None, -1) else 1
        if err.token.type == "$END" and getattr(err.token, "end_line", None) not in (None, -1):
            # Lark gives the end of input the start of the last token (`goal` alone: under the
            # `g`); it is where that token ends, where the missing text goes
            line, col = err.token.end_line, err.token.end_column
        msg = f"unexpected {_describe(err.token)}; expected {_expected(_acceptable(err), _open_braces(text, line, col))}"
        raise ConvergeError([Diagnostic("E100", msg, Span(file, line, col, line, col + max(len(str(err.token)), 1)))])
    except UnexpectedCharacters as err:
        char = text[err.pos_in_stream] if err.pos_in_stream < len(text) else ""
        hint = "; strings use double quotes" if char == "'" else ""
        raise ConvergeError([Diagnostic("E100", f"unexpected character {char!r}{hint}",
                                        Span(file, err.line, err.column, err.line, err.column + 1))])
    except UnexpectedEOF as err:
        line = text.count("\n") + 1
        raise ConvergeError([Diagnostic("E100", f"unexpected end of input; expected {_expected(set(err.expected), _open_braces(text, line + 1, 1))}",
                                        Span(file, line, 1))])
    except UnexpectedInput as err:  # pragma: no cover - other Lark errors
        raise ConvergeError([Diagnostic("E100", str(err).splitlines()[0], Span(file, getattr(err, "line", 1), getattr(err, "column", 1)))])
    builder = _Builder(file)
    items = []
    for child in tree.children:
        try:
            items.append(builder.item(child))
        except (_TooDeep, RecursionError):
            builder.errors.append(Diagnostic("E102", f"this item nests expressions too deeply to compile (more than "
                                             f"{MAX_EXPR_DEPTH} levels; split it with intermediate variables: "
                                             "`y = ..., z = y + ...`)", builder.span(child)))
    if builder.errors:
        raise ConvergeError(builder.errors)
    return ast.SourceFile(file, tuple(items))


def read_rule_file(path: str, raw: bool = False) -> str:
    """The text of a rule file on disk, without a byte order mark (which is no text) and with
    its line ends written as LF, as Python's universal newlines read it (``raw``: exactly
    as stored, for ``converge fmt``). A file that is missing or unreadable raises
    ConvergeError (E001, E002); a byte that is not UTF-8 is located at its line and column."""
    try:
        data = read_regular_file(path)
    except FileNotFoundError:
        raise ConvergeError([Diagnostic("E001", f"rule file not found: {path}", Span(path, 0, 0))])
    except NotRegularFile as kind:
        raise ConvergeError([Diagnostic("E002", f"cannot read rule file {path}: it is {kind}, not a regular file",
                                        Span(path, 0, 0))]) from None
    except OSError as err:
        raise ConvergeError([Diagnostic("E002", f"cannot read rule file: {err}", Span(path, 0, 0))])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line_start = max(data.rfind(b"\n", 0, err.start), data.rfind(b"\r", 0, err.start)) + 1
        line = normalize_newlines(data[:line_start].decode("utf-8", "replace")).count("\n") + 1
        col = len(data[line_start:err.start].decode("utf-8", "replace")) + 1
        bad = Diagnostic("E002", f"rule file is not valid UTF-8 (byte 0x{data[err.start]:02x})",
                         Span(path, line, col, line, col + 1), notes=("is it a binary file?",))
        shown = normalize_newlines(data.decode("utf-8", "replace")).removeprefix("\ufeff")
        raise ConvergeError(quote_text([bad], path, shown)) from None
    if raw:
        return text
    text = normalize_newlines(text)
    return text[1:] if text.startswith("\ufeff") else text


def parse_file(path: str) -> ast.SourceFile:
    return parse_text(read_rule_file(path), path)


def parse_atom(text: str, file: str = "<query>") -> ast.Atom:
    """Parse a single fact such as ``decision("l1", "reject")`` (used by why)."""
    text = normalize_newlines(text)
    try:
        return _parse_atom(text, file)
    except ConvergeError as err:
        raise ConvergeError(quote_text(err.diagnostics, file, text)) from None


def _parse_atom(text: str, file: str) -> ast.Atom:
    from lark.exceptions import UnexpectedInput

    too_deep = Diagnostic("E102", f"this fact nests expressions too deeply to read (more than {MAX_EXPR_DEPTH} levels)",
                          Span(file, 1, 1))
    try:
        tree = _parser().parse(text, start="query")
    except UnexpectedInput as err:
        line, col = getattr(err, "line", 1), getattr(err, "column", 1)
        if line in (None, -1):
            line, col = 1, len(text) + 1
        raise ConvergeError([Diagnostic("E100", f"cannot parse fact {text!r}", Span(file, line, col))])
    except RecursionError:
        raise ConvergeError([too_deep]) from None
    builder = _Builder(file)
    try:  # as parse_text does for an item: deeply nested signs or parentheses are no Python crash
        atom = builder.atom(tree.children[0])
    except (_TooDeep, RecursionError):
        raise ConvergeError([too_deep]) from None
    if builder.errors:
        raise ConvergeError(builder.errors)
    return atom


# How deeply expressions may nest in one item: operators, signs, calls and aggregates inside
# one another (`x + 1 + 1 + ...` with 101 terms, 101 `-` in a row, `abs(abs(...))`).
# Every stage after the parser (checks, lints, the formatter, the engine's generated code)
# walks an expression by recursion or nests it in Python source, so a program deeper than
# this is E102 here, at one fixed depth, rather than a crash of whichever stage gives out first.
MAX_EXPR_DEPTH = 100


class _TooDeep(Exception):
    """An expression nests deeper than MAX_EXPR_DEPTH (becomes E102)."""


class _Builder:
    """Lark parse tree → AST."""

    def __init__(self, file: str):
        self.file = file
        self.errors: list[Diagnostic] = []
        self.depth = 0  # expressions being built inside one another

    def span(self, node: Any) -> Span:
        meta = getattr(node, "meta", None)
        if meta is not None and not getattr(meta, "empty", True):
            return Span(self.file, meta.line, meta.column, meta.end_line, meta.end_column)
        if hasattr(node, "line") and node.line is not None:
            end_col = getattr(node, "end_column", None) or node.column + len(str(node))
            return Span(self.file, node.line, node.column, getattr(node, "end_line", node.line) or node.line, end_col)
        return Span(self.file, 0, 0)

    # -- declarations
    def item(self, node: Any) -> ast.Item:
        kind = node.data
        sp = self.span(node)
        c = node.children
        if kind == "module_decl":
            return ast.ModuleDecl(self.name(c[0]), sp)
        if kind == "import_std":
            return ast.ImportStd(self.name(c[0]), sp, str(c[1]) if c[1] is not None else None)
        if kind == "import_file":
            return ast.ImportFile(self.string(c[0]), str(c[1]), sp)
        if kind == "relation_decl":
            is_input = c[0] is not None
            name = self.name(c[1])
            cols = tuple(ast.Column(str(col.children[0]), str(col.children[1]), self.span(col))
                         for col in c[2:-1] if col is not None)
            key = None
            if c[-1] is not None:
                kc = c[-1].children
                key = ast.KeyClause(tuple(str(t) for t in kc[:-2]), str(kc[-2]), str(kc[-1]), self.span(c[-1]))
            return ast.RelationDecl(name, cols, is_input, key, sp)
        if kind == "rule":
            body = self.body(c[1]) if c[1] is not None else ()
            return ast.Rule(self.atom(c[0]), body, sp)
        if kind == "agent_decl":
            desc = self.string(c[1]) if c[1] is not None else None
            return ast.AgentDecl(str(c[0]), desc, tuple(self.clause(x) for x in c[2:]), sp)
        if kind in ("invariant_decl", "acceptance_decl"):
            msg = self.string(c[1]) if c[1] is not None else None
            return ast.InvariantDecl(kind.split("_")[0], str(c[0]), msg, self.body(c[2]), sp)
        if kind == "budget_decl":
            items = [x for x in c if x is not None]
            return ast.BudgetDecl(tuple((str(i.children[0]), self.number(i.children[1])) for i in items),
                                  tuple(self.span(i) for i in items), sp)
        if kind == "goal_decl":
            return ast.GoalDecl(tuple(self.name(x) for x in c), sp, tuple(self.span(x) for x in c))
        if kind == "test_decl":
            return ast.TestDecl(self.string(c[0]), tuple(self.test_clause(x) for x in c[1:]), sp)
        raise AssertionError(f"unknown item {kind}")  # pragma: no cover

    _TEST_KINDS = {"given_facts": "given", "given_file": "given_file", "expect_facts": "expect",
                   "expect_absent": "expect_not", "expect_tier": "expect_tier", "expect_violation": "expect_violation"}

    def test_clause(self, node: Any) -> ast.TestClause:
        kind = self._TEST_KINDS[node.data]
        c = node.children
        if kind in ("given", "expect", "expect_not"):
            value: object = tuple(self.atom(item.children[0]) for item in c)
        elif kind == "given_file":
            value = self.string(c[0])
        elif kind == "expect_violation":
            value = self.name(c[0])
        else:
            value = str(c[0])
        return ast.TestClause(kind, value, self.span(node))

    def clause(self, node: Any) -> ast.AgentClause:
        kind = node.data.removesuffix("_clause")
        sp = self.span(node)
        c = node.children
        if kind == "when":
            return ast.AgentClause("when", self.body(c[0]), sp)
        if kind == "emit":
            return ast.AgentClause("emit", tuple(self.atom(a) for a in c), sp)
        if kind in ("priority", "confidence"):
            return ast.AgentClause(kind, self.number(c[0]), sp)
        policy = c[0].children
        value = ("retry", str_to_int(str(policy[1]).replace("_", "")), str(policy[2])) if len(policy) == 3 else (str(policy[0]),)
        return ast.AgentClause("on_failure", value, sp)

    def number(self, node: Any) -> int | float:
        if node.data == "neg_number":
            return -self.number(node.children[0])
        value = self.const(node).value
        assert isinstance(value, (int, float))
        return value

    def name(self, node: Any) -> str:
        return str(node.children[0])

    def string(self, token: Any) -> str:
        try:
            value = json.loads(str(token))
        except json.JSONDecodeError as err:
            raw, sp = str(token), self.span(token)
            char = raw[err.pos] if 0 <= err.pos < len(raw) else ""
            if char and err.msg.startswith("Invalid control character"):  # a raw tab, NUL, ESC, ...
                escape = json.dumps(char)[1:-1]  # a string token is on one line: the column is the offset
                self.errors.append(Diagnostic("E101", f"control character U+{ord(char):04X} in a string literal; "
                                              f"write it as the escape {escape}",
                                              Span(self.file, sp.line, sp.col + err.pos, sp.line, sp.col + err.pos + 1)))
            else:
                self.errors.append(Diagnostic("E101", "invalid escape in string literal", sp))
            return raw[1:-1]
        assert isinstance(value, str)
        if has_surrogate(value):
            self.errors.append(Diagnostic("E103", "string literal holds a lone surrogate escape (not valid Unicode)",
                                          self.span(token), notes=("a \\uD800-\\uDFFF escape must be half of a "
                                                                   "surrogate pair, e.g. \"\\ud83d\\ude00\"",)))
            return value.encode("utf-8", "replace").decode("utf-8")
        return value

    # -- literals
    def body(self, node: Any) -> tuple[ast.Literal, ...]:
        return tuple(self.literal(x) for x in node.children)

    def literal(self, node: Any) -> ast.Literal:
        if node.data == "atom":
            return self.atom(node)
        if node.data == "negation":
            return ast.Negation(self.atom(node.children[0]), self.span(node))
        if node.data == "fail_literal":
            return ast.Fail(self.string(node.children[0]), self.span(node))
        left, op, right = node.children
        return ast.Comparison(str(op), self.expr(left), self.expr(right), self.span(node))

    def atom(self, node: Any) -> ast.Atom:
        args = tuple(self.expr(a) for a in node.children[1:] if a is not None)
        return ast.Atom(self.name(node.children[0]), args, self.span(node))

    # -- expressions
    _BINOPS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "mod": "%", "concat": "++"}

    def const(self, node: Any) -> ast.Const:
        kind, sp = node.data, self.span(node)
        if kind == "int":
            return ast.Const(str_to_int(str(node.children[0]).replace("_", "")), sp)
        if kind == "float":
            number = float(str(node.children[0]).replace("_", ""))
            if not math.isfinite(number):
                self.errors.append(Diagnostic("E104", "float literal out of range (a float is finite, at most about "
                                              "1.8e308)", sp))
                number = 0.0
            return ast.Const(number, sp)
        if kind == "string":
            return ast.Const(self.string(node.children[0]), sp)
        return ast.Const(kind == "true", sp)

    def expr(self, node: Any) -> ast.Expr:
        self.depth += 1
        try:
            if self.depth > MAX_EXPR_DEPTH:
                raise _TooDeep()
            return self._expr(node)
        finally:
            self.depth -= 1

    def _expr(self, node: Any) -> ast.Expr:
        from lark import Token

        if isinstance(node, Token):  # a bare name reached through an inlined rule
            return ast.Wildcard(self.span(node)) if str(node) == "_" else ast.Var(str(node), self.span(node))
        kind, sp, c = node.data, self.span(node), node.children
        if kind == "var":
            name = str(c[0])
            return ast.Wildcard(sp) if name == "_" else ast.Var(name, sp)
        if kind in ("int", "float", "string", "true", "false"):
            return self.const(node)
        if kind in self._BINOPS:
            return ast.BinOp(self._BINOPS[kind], self.expr(c[0]), self.expr(c[1]), sp)
        if kind == "neg":
            inner = self.expr(c[0])
            if isinstance(inner, ast.Const) and type(inner.value) in (int, float):
                return ast.Const(-inner.value, sp)  # type: ignore[operator]
            return ast.Neg(inner, sp)
        if kind == "call":
            func = c[0] if isinstance(c[0], Token) else c[0].children[0]
            return ast.Call(str(func), tuple(self.expr(a) for a in c[1:] if a is not None), sp)
        if kind == "tool_call":
            return ast.ToolCall(str(c[0]), tuple(self.expr(a) for a in c[1:] if a is not None), sp)
        if kind == "aggregate":
            op = str(c[0])
            if op == "count":
                return ast.Aggregate("count", None, self.body(c[1]), sp)
            return ast.Aggregate(op, ast.Var(str(c[1]), self.span(c[1])), self.body(c[2]), sp)
        raise AssertionError(f"unknown expression {kind}")  # pragma: no cover
