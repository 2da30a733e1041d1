"""Completion: relations visible from the file (with their columns), builtins,
keywords, the standard modules after ``import``, and the variables of the rule."""

from __future__ import annotations

import re

from lsprotocol import types as lsp

from .analysis import Analysis
from .builtins import KEYWORDS, builtin_docs

_IMPORT = re.compile(r"^\s*import\s+[A-Za-z0-9_.]*$")
_QUALIFIED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\.[A-Za-z0-9_]*$")


def std_modules() -> list[str]:
    from ..compile.frontend import stdlib_dir

    return sorted("std." + p.stem for p in (stdlib_dir() / "std").glob("*.cvg"))


def visible_relations(analysis: Analysis) -> dict[str, object]:
    """Relation names as the root file writes them (``edge``, ``graph.reach``) -> Relation."""
    program = analysis.program
    if program is None:
        return {}
    root = next((u for u in analysis.compilation.frontend.units if u.prefix == ""), None)
    prefixes = dict(root.aliases) if root is not None else {}
    out = {}
    for name, rel in program.relations.items():
        if "." not in name:
            out[name] = rel
            continue
        for alias, prefix in prefixes.items():
            rest = name[len(prefix):] if name.startswith(prefix) else None
            if rest and "." not in rest:
                out[f"{alias}.{rest}"] = rel
    return dict(sorted(out.items()))


def _scope_vars(analysis: Analysis, line: int) -> list[str]:
    """Variables of the item (rule, agent, invariant, test) that holds a line."""
    if analysis.source is None:
        return []
    for item in analysis.source.items:
        sp = item.span
        if sp.line - 1 <= line <= max(sp.end_line, sp.line) - 1:
            scope = (analysis.real, sp.line, sp.col)
            return sorted({o.symbol[4] for o in analysis.occurrences.get(analysis.real, ())
                           if o.symbol[0] == "var" and o.symbol[1:4] == scope})
    return []


def complete(analysis: Analysis, line_text: str, line: int) -> list[lsp.CompletionItem]:
    if _IMPORT.match(line_text):
        return [lsp.CompletionItem(label=m, kind=lsp.CompletionItemKind.Module, detail="standard library module")
                for m in std_modules()]
    items: list[lsp.CompletionItem] = []
    qualified = _QUALIFIED.search(line_text)
    for written, rel in visible_relations(analysis).items():
        if qualified and not written.startswith(qualified.group(1) + "."):
            continue
        cols = ", ".join(f"{c.name}: {c.type}" for c in rel.columns)  # type: ignore[attr-defined]
        label = written.split(".", 1)[1] if qualified else written
        items.append(lsp.CompletionItem(label=label, kind=lsp.CompletionItemKind.Struct,
                                        detail=f"{'input ' if rel.is_input else ''}relation {written}({cols})",  # type: ignore[attr-defined]
                                        filter_text=label))
    if qualified:
        return items
    for doc in builtin_docs().values():
        items.append(lsp.CompletionItem(label=doc.name, kind=lsp.CompletionItemKind.Function, detail=doc.signature,
                                        documentation=doc.doc or None))
    for word in KEYWORDS:
        items.append(lsp.CompletionItem(label=word, kind=lsp.CompletionItemKind.Keyword))
    for name in _scope_vars(analysis, line):
        items.append(lsp.CompletionItem(label=name, kind=lsp.CompletionItemKind.Variable, detail="variable"))
    return items
