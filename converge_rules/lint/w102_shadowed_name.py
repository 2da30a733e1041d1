"""W102 shadowed name: a local declaration that takes the name of an import alias.

With ``import std.graph`` the file refers to the module's relations as
``graph.edge``, ``graph.reach``. Declaring a relation (or naming an agent,
invariant or acceptance check) ``graph`` in the same file is legal — the
namespaces differ — but ``graph(x)`` and ``graph.reach(x)`` then read as
if they were related, and ``why`` trees and reports show both names side by
side. The warning points at the declared name; rename it or the alias.
"""

from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic
from ..syntax import ast
from ._context import LintContext, where

CODE = "W102"
TITLE = "shadowed name: a declaration reuses an import alias"

def check(ctx: LintContext) -> Iterator[Diagnostic]:
    for unit in ctx.root_units():
        imports: dict[str, ast.Item] = {}
        for item in unit.source.items:
            if isinstance(item, ast.ImportStd):
                imports.setdefault(item.alias or item.module.split(".")[-1], item)  # `import std.graph as g`: g
            elif isinstance(item, ast.ImportFile):
                imports.setdefault(item.alias, item)
        imports = {alias: item for alias, item in imports.items() if alias in unit.aliases}
        if not imports:
            continue
        for item in unit.source.items:
            if isinstance(item, ast.RelationDecl):
                kind, name, pattern = "relation", item.name, r"\brelation\s+([A-Za-z_][A-Za-z0-9_]*)"
            elif isinstance(item, ast.AgentDecl):
                kind, name, pattern = "agent", item.name, r"\bagent\s+([A-Za-z_][A-Za-z0-9_]*)"
            elif isinstance(item, ast.InvariantDecl):
                kind, name, pattern = item.kind, item.name, rf"\b{item.kind}\s+([A-Za-z_][A-Za-z0-9_]*)"
            else:
                continue
            if name in imports:
                imp = imports[name]
                yield ctx.warn(CODE, f"{kind} {name!r} has the same name as the import alias {name!r}",
                               ctx.find(item.span, pattern), f"imported at {where(imp.span)}",
                               f"{name}(...) and {name}.NAME(...) look related but are not; rename one of them")
