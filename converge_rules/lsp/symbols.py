"""Document symbols (the outline): one entry per declaration of the file."""

from __future__ import annotations

from lsprotocol import types as lsp

from ..syntax import ast
from ..values import dumps_json
from .analysis import Analysis
from .convert import occ_range, span_range

_KIND = lsp.SymbolKind


def _item(analysis: Analysis, item: object) -> tuple[str, lsp.SymbolKind, str | None] | None:
    if isinstance(item, ast.RelationDecl):
        cols = ", ".join(f"{c.name}: {c.type}" for c in item.columns)
        return item.name, _KIND.Struct, f"{'input ' if item.is_input else ''}relation({cols})"
    if isinstance(item, ast.AgentDecl):
        return item.name, _KIND.Function, item.description or "agent"
    if isinstance(item, ast.InvariantDecl):
        return item.name, _KIND.Event, item.message or item.kind
    if isinstance(item, ast.Rule):
        return item.head.relation, (_KIND.Method if item.body else _KIND.Constant), ("rule" if item.body else "fact")
    if isinstance(item, ast.TestDecl):
        # LSP: a symbol's name is never empty nor only white space (VS Code rejects the whole
        # outline): such a test name is shown as the string literal it is written as
        return (item.name if item.name.strip() else dumps_json(item.name)), _KIND.Method, "test"
    if isinstance(item, ast.ImportStd):
        return item.module, _KIND.Module, "import"
    if isinstance(item, ast.ImportFile):
        return item.alias, _KIND.Module, f"import {item.path!r}"
    if isinstance(item, ast.ModuleDecl):
        return item.name, _KIND.Namespace, "module"
    if isinstance(item, ast.BudgetDecl):
        return "budget", _KIND.Property, ", ".join(f"{k} = {v}" for k, v in item.items)
    if isinstance(item, ast.GoalDecl):
        return "goal", _KIND.Property, ", ".join(item.relations)
    return None


def document_symbols(analysis: Analysis) -> list[lsp.DocumentSymbol]:
    if analysis.source is None:
        return []
    lines = analysis.lines
    decls = {(o.line, o.col): o for o in analysis.occurrences.get(analysis.real, ()) if o.decl}
    out = []
    for item in analysis.source.items:
        found = _item(analysis, item)
        if found is None:
            continue
        name, kind, detail = found
        full = span_range(item.span, lines)  # type: ignore[attr-defined]
        selection = full
        for (line, col), occ in decls.items():
            if (full.start.line, full.start.character) <= (line, col) <= (full.end.line, full.end.character):
                selection = occ_range(occ)
                break
        else:
            selection = lsp.Range(full.start, full.start)
        out.append(lsp.DocumentSymbol(name=name, kind=kind, range=full, selection_range=selection, detail=detail))
    return out
