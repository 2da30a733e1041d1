"""What the language server knows about one rule file: its compilation and an index of
every name in it (and in the modules it imports), built from the compiler's public
structures (the AST of each unit, the resolved Program, its diagnostics).

An *occurrence* is a range of source text naming a *symbol*. Symbols are plain tuples
so that one symbol has one identity across every file of a project:

- ``("relation", decl_file, local_name)`` — a relation, by the file declaring it;
- ``("agent", file, name)`` / ``("invariant", file, name)``;
- ``("module", file)`` — an imported file (``import std.graph``, ``graph.`` in ``graph.reach``);
- ``("var", file, item_line, item_col, name)`` — a variable, scoped to its rule, agent or invariant;
- ``("builtin", name)``.

Positions here are 0-based (line, column) as LSP wants them; columns count code points.
Nothing here depends on pygls, so it is tested and reused without a client.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from ..diagnostics import Diagnostic, Span, normalize_newlines
from ..regularfile import read_regular_text
from ..syntax import ast

Symbol = tuple


@dataclass(frozen=True)
class Occurrence:
    """A range of text naming a symbol; ``decl`` when it is the symbol's declaration."""

    file: str          # real path
    line: int          # 0-based
    col: int
    end_col: int
    symbol: Symbol
    decl: bool = False

    def contains(self, line: int, col: int) -> bool:
        return self.line == line and self.col <= col <= self.end_col


@dataclass
class Analysis:
    """One root file compiled (with unsaved buffers in ``overlay``) and indexed."""

    path: str                                   # the path the compiler saw (as given)
    real: str
    text: str
    compilation: Any = None                     # compile.pipeline.Compilation
    diagnostics: list[Diagnostic] = field(default_factory=list)
    occurrences: dict[str, list[Occurrence]] = field(default_factory=dict)  # real path -> sorted
    var_types: dict[tuple[str, int, int], dict[str, str | None]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)    # real paths of every unit
    source: ast.SourceFile | None = None        # the root's AST (None: it does not parse)

    @property
    def program(self) -> Any:
        return None if self.compilation is None else self.compilation.program

    @property
    def lines(self) -> list[str]:
        """The text's lines as LSP and the parser count them: ended by LF, CRLF or CR (not by
        U+2028 or U+0085), without their line ends."""
        return normalize_newlines(self.text).split("\n")

    def at(self, line: int, col: int, file: str | None = None) -> Occurrence | None:
        """The occurrence under a position of a file (default: the root)."""
        for occ in self.occurrences.get(file or self.real, ()):
            if occ.contains(line, col):
                return occ
        return None

    def find(self, symbol: Symbol) -> Iterator[Occurrence]:
        for occs in self.occurrences.values():
            for occ in occs:
                if occ.symbol == symbol:
                    yield occ

    def declaration(self, symbol: Symbol) -> Occurrence | None:
        return next((o for o in self.find(symbol) if o.decl), None)


class _Texts:
    """Source lines by real path: the overlay first, then the disk."""

    def __init__(self, overlay: Mapping[str, str]):
        self.overlay = overlay
        self.cache: dict[str, list[str]] = {}

    def lines(self, real: str) -> list[str]:
        if real not in self.cache:
            text = self.overlay.get(real)
            if text is None:
                try:
                    text = read_regular_text(real)
                except (OSError, UnicodeDecodeError):
                    text = ""
            self.cache[real] = normalize_newlines(text).split("\n")
        return self.cache[real]

    def line(self, file: str, line: int) -> str | None:
        """1-based, the interface of diagnostics.SourceTexts (for inline suppressions)."""
        lines = self.lines(os.path.realpath(file))
        return lines[line - 1] if 0 < line <= len(lines) else None


def analyze(path: str, text: str, overlay: Mapping[str, str] | None = None,
            disabled: frozenset[str] = frozenset()) -> Analysis:
    """Compile ``path`` holding ``text`` (other open buffers in ``overlay``), lint it (without
    the ``disabled`` warning codes, as ``check --disable``), index it."""
    from ..compile.pipeline import compile_sources
    from ..lint import run_lints
    from ..lint.suppress import is_suppressed
    real = os.path.realpath(path)
    texts = dict(overlay or {})
    texts[real] = text
    result = Analysis(path, real, text)
    compilation = compile_sources([(path, None)], use_cache=False, overlay=texts)
    result.compilation = compilation
    result.source = next((u.source for u in compilation.frontend.units if u.prefix == ""), None)
    source_lines = _Texts(texts)
    diags = list(compilation.diagnostics) + run_lints(compilation, disabled)
    result.diagnostics = [d for d in diags if not is_suppressed(d, source_lines)]
    _Indexer(result, source_lines).run()
    return result


class _Indexer:
    def __init__(self, result: Analysis, texts: _Texts):
        self.result = result
        self.texts = texts
        self.compilation = result.compilation
        self.program = result.compilation.program
        self.relations = self.program.relations if self.program is not None else {}

    def add(self, file: str, line: int, col: int, length: int, symbol: Symbol, decl: bool = False) -> None:
        if line < 0 or col < 0 or length <= 0:
            return
        self.result.occurrences.setdefault(file, []).append(Occurrence(file, line, col, col + length, symbol, decl))

    def run(self) -> None:
        frontend = self.compilation.frontend
        for prog_item in (self.program.agents + self.program.invariants) if self.program is not None else ():
            key = (os.path.realpath(prog_item.span.file), prog_item.span.line, prog_item.span.col)
            self.result.var_types[key] = dict(prog_item.var_types)
        seen: set[str] = set()
        for unit in frontend.units:
            real = os.path.realpath(unit.path)
            if real in seen:  # a module imported twice is indexed once
                continue
            seen.add(real)
            self.result.files.append(real)
            for item in unit.source.items:
                self.item(unit, real, item)
        for occs in self.result.occurrences.values():
            occs.sort(key=lambda o: (o.line, o.col, -o.end_col))

    # -- helpers
    def name_after(self, real: str, span: Span, keyword: str, name: str) -> tuple[int, int] | None:
        """0-based (line, col) of ``name`` after ``keyword`` inside a declaration's span."""
        lines = self.texts.lines(real)
        pattern = re.compile(rf"\b{keyword}\s+(?:\"[^\"]*\"\s+)?({re.escape(name)})\b")
        last = span.end_line or span.line
        for ln in range(span.line - 1, min(last, len(lines))):
            start = span.col - 1 if ln == span.line - 1 else 0
            m = pattern.search(lines[ln], start)
            if m:
                return ln, m.start(1)
            m = re.compile(rf"^\s*({re.escape(name)})\b").search(lines[ln], start) if ln > span.line - 1 else None
            if m:
                return ln, m.start(1)
        return None

    def relation_symbol(self, unit: Any, written: str) -> Symbol | None:
        resolved = self.compilation.frontend.lookup(unit, written, self.relations)
        if resolved is None:
            return None
        rel = self.relations[resolved]
        return ("relation", os.path.realpath(rel.span.file), resolved.rsplit(".", 1)[-1])

    def module_symbol(self, unit: Any, alias: str) -> Symbol | None:
        prefix = unit.aliases.get(alias)
        if prefix is None:
            return None
        for other in self.compilation.frontend.units:
            if other.prefix == prefix:
                return ("module", os.path.realpath(other.path))
        return None

    # -- items
    def item(self, unit: Any, real: str, item: Any) -> None:
        sp = item.span
        if isinstance(item, ast.RelationDecl):
            pos = self.name_after(real, sp, "relation", item.name)
            if pos:
                self.add(real, pos[0], pos[1], len(item.name), ("relation", real, item.name), decl=True)
        elif isinstance(item, (ast.ImportStd, ast.ImportFile)):
            alias = item.alias if item.alias else item.module.split(".")[-1]  # type: ignore[union-attr]
            symbol = self.module_symbol(unit, alias)
            if symbol is not None:
                end = sp.end_col if sp.end_line == sp.line and sp.end_col > sp.col else sp.col + 6
                self.add(real, sp.line - 1, sp.col - 1, end - sp.col, symbol)
        elif isinstance(item, ast.Rule):
            scope = (real, sp.line, sp.col)
            self.atom(unit, real, item.head, scope)
            self.body(unit, real, item.body, scope)
        elif isinstance(item, ast.AgentDecl):
            scope = (real, sp.line, sp.col)
            pos = self.name_after(real, sp, "agent", item.name)
            if pos:
                self.add(real, pos[0], pos[1], len(item.name), ("agent", real, unit.prefix + item.name), decl=True)
            for clause in item.clauses:
                if clause.kind == "when":
                    self.body(unit, real, clause.value, scope)
                elif clause.kind == "emit":
                    for atom in clause.value:
                        self.atom(unit, real, atom, scope)
        elif isinstance(item, ast.InvariantDecl):
            scope = (real, sp.line, sp.col)
            pos = self.name_after(real, sp, item.kind, item.name)
            if pos:
                self.add(real, pos[0], pos[1], len(item.name), ("invariant", real, unit.prefix + item.name), decl=True)
            self.body(unit, real, item.body, scope)
        elif isinstance(item, ast.GoalDecl):
            for name in item.relations:
                symbol = self.relation_symbol(unit, name)
                pos = self.name_after(real, sp, "goal", name) or self.find_in(real, sp, name)
                if symbol and pos:
                    self.qualified(unit, real, pos[0], pos[1], name, symbol)
        elif isinstance(item, ast.TestDecl):
            scope = (real, sp.line, sp.col)
            for clause in item.clauses:
                if clause.kind in ("given", "expect", "expect_not"):
                    for atom in clause.value:
                        self.atom(unit, real, atom, scope)
                elif clause.kind == "expect_violation":
                    name = str(clause.value)
                    inv = next((i for i in self.program.invariants if i.name == unit.prefix + name), None) \
                        if self.program is not None else None
                    pos = self.find_in(real, clause.span, name)
                    if inv is not None and pos:
                        self.add(real, pos[0], pos[1], len(name),
                                 ("invariant", os.path.realpath(inv.span.file), inv.name))

    def find_in(self, real: str, span: Span, name: str) -> tuple[int, int] | None:
        lines = self.texts.lines(real)
        pattern = re.compile(rf"(?<![A-Za-z0-9_.]){re.escape(name)}(?![A-Za-z0-9_])")
        for ln in range(span.line - 1, min(span.end_line or span.line, len(lines))):
            m = pattern.search(lines[ln], span.col - 1 if ln == span.line - 1 else 0)
            if m:
                return ln, m.start()
        return None

    def qualified(self, unit: Any, real: str, line: int, col: int, written: str, symbol: Symbol) -> None:
        """A relation name as written: ``reach`` or ``graph.reach`` (the module part is a module reference)."""
        head, dot, last = written.rpartition(".")
        if dot:
            module = self.module_symbol(unit, head.split(".")[0])
            if module is not None:
                self.add(real, line, col, len(head.split(".")[0]), module)
        self.add(real, line, col + len(written) - len(last), len(last), symbol)

    def atom(self, unit: Any, real: str, atom: ast.Atom, scope: tuple[str, int, int]) -> None:
        from ..compile.types import BUILTINS

        line, col = atom.span.line - 1, atom.span.col - 1
        symbol = self.relation_symbol(unit, atom.relation)
        if symbol is not None:
            self.qualified(unit, real, line, col, atom.relation, symbol)
        elif atom.relation in BUILTINS:  # a yes/no builtin standing as a literal
            self.add(real, line, col, len(atom.relation), ("builtin", atom.relation))
        for arg in atom.args:
            self.expr(unit, real, arg, scope)

    def body(self, unit: Any, real: str, body: tuple, scope: tuple[str, int, int]) -> None:
        for lit in body:
            if isinstance(lit, ast.Atom):
                self.atom(unit, real, lit, scope)
            elif isinstance(lit, ast.Negation):
                self.atom(unit, real, lit.atom, scope)
            elif isinstance(lit, ast.Comparison):
                self.expr(unit, real, lit.left, scope)
                self.expr(unit, real, lit.right, scope)
            elif isinstance(lit, ast.Condition):
                self.expr(unit, real, lit.call, scope)

    def expr(self, unit: Any, real: str, expr: Any, scope: tuple[str, int, int]) -> None:
        if isinstance(expr, ast.Var):
            self.add(real, expr.span.line - 1, expr.span.col - 1, len(expr.name), ("var", *scope, expr.name))
        elif isinstance(expr, ast.BinOp):
            self.expr(unit, real, expr.left, scope)
            self.expr(unit, real, expr.right, scope)
        elif isinstance(expr, ast.Neg):
            self.expr(unit, real, expr.operand, scope)
        elif isinstance(expr, ast.Call):
            self.add(real, expr.span.line - 1, expr.span.col - 1, len(expr.func), ("builtin", expr.func))
            for arg in expr.args:
                self.expr(unit, real, arg, scope)
        elif isinstance(expr, ast.ToolCall):
            for arg in expr.args:
                self.expr(unit, real, arg, scope)
        elif isinstance(expr, ast.Aggregate):
            if expr.value is not None:
                self.expr(unit, real, expr.value, scope)
            self.body(unit, real, expr.body, scope)
