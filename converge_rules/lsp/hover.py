"""Hover: what the name under the cursor is — a relation's declaration, an agent's
description and policy, an invariant's message, a builtin's signature, a variable's type."""

from __future__ import annotations

import os
import re

from lsprotocol import types as lsp

from .analysis import Analysis, Occurrence
from .builtins import builtin_docs
from .convert import occ_range


def _where(file: str, line: int) -> str:
    shown = os.path.relpath(file) if not os.path.relpath(file).startswith("..") else file
    return f"{shown}:{line}"


def _written(analysis: Analysis, occ: Occurrence) -> str | None:
    """The relation name as written where ``occ`` is (``rails.edge`` for the ``edge`` of it)."""
    lines = analysis.lines
    if occ.file != analysis.real or not 0 <= occ.line < len(lines):
        return None
    text, start = lines[occ.line], occ.col
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_."):
        start -= 1
    return text[start:occ.end_col]


def relation_text(analysis: Analysis, symbol: tuple, written: str | None = None) -> str | None:
    """The declaration of a relation. A module imported twice (`import std.graph as roads`,
    `import std.graph as rails`) declares one relation per instance: ``written``, the name as
    the hovered text writes it, picks the instance."""
    program = analysis.program
    if program is None:
        return None
    instance = None
    root = next((u for u in analysis.compilation.frontend.units if u.prefix == ""), None) if written else None
    if root is not None and written is not None:
        instance = analysis.compilation.frontend.lookup(root, written, program.relations)
    names = sorted(program.relations, key=lambda n: n != instance)  # that instance first, else as declared
    for name in names:
        rel = program.relations[name]
        if os.path.realpath(rel.span.file) == symbol[1] and name.rsplit(".", 1)[-1] == symbol[2]:
            cols = ", ".join(f"{c.name}: {c.type}" for c in rel.columns)
            decl = f"{'input ' if rel.is_input else ''}relation {name}({cols})"
            lines = []
            if rel.key is not None:
                key = ", ".join(rel.columns[i].name for i in rel.key.columns)
                pref = rel.columns[rel.key.column].name
                decl += f" key({key}) prefer {rel.key.prefer}({pref})"
                lines.append(f"Per `{key or '()'}` only the fact with the {'least' if rel.key.prefer == 'min' else 'greatest'} "
                             f"`{pref}` is kept.")
            if rel.is_input:
                lines.append("Input relation: filled by facts only.")
            lines.append(f"Declared at {_where(rel.span.file, rel.span.line)}.")
            return f"```cvg\n{decl}\n```\n" + "\n\n".join(lines)
    return None


def agent_text(analysis: Analysis, symbol: tuple) -> str | None:
    program = analysis.program
    agent = program.agent(symbol[2]) if program is not None else None
    if agent is None:
        return None
    policy = str(agent.on_failure) if agent.on_failure is not None else "the job's default (abort unless --on-failure)"
    # the declaration as it is written: the description a string literal, escaped (a quote, a
    # line break or a backslash in it would otherwise print another declaration, or break the block)
    from ..syntax.format import string_literal

    head = f'agent {agent.name}' + (f" {string_literal(agent.description)}" if agent.description is not None else "")
    lines = [f"```cvg\n{head}\n```"]
    if agent.description:
        lines.append(agent.description)
    lines.append(f"priority {agent.priority} · confidence {agent.confidence:g} · on_failure {policy}")
    lines.append("emits " + ", ".join(f"`{h.relation}`" for h in agent.heads))
    lines.append(f"Declared at {_where(agent.span.file, agent.span.line)}.")
    return "\n\n".join(lines)


def invariant_text(analysis: Analysis, symbol: tuple) -> str | None:
    program = analysis.program
    inv = next((i for i in program.invariants if i.name == symbol[2]), None) if program is not None else None
    if inv is None:
        return None
    when = "after every merge" if inv.kind == "invariant" else "at the fixed point"
    lines = [f"```cvg\n{inv.kind} {inv.name}\n```"]
    if inv.message:
        lines.append(inv.message)
    lines.append(f"Checked {when}; a match fails the job.")
    lines.append(f"Declared at {_where(inv.span.file, inv.span.line)}.")
    return "\n\n".join(lines)


def var_text(analysis: Analysis, symbol: tuple) -> str:
    _, file, line, col, name = symbol
    types = analysis.var_types.get((file, line, col))
    if types is None or name not in types:
        return f"```cvg\n{name}\n```\nvariable (its type is known once the file checks without errors)"
    typ = types[name]
    return f"```cvg\n{name}: {typ or 'unknown'}\n```\nvariable" + ("" if typ else " (bound by a tool call: type known at run time)")


def module_text(symbol: tuple, alias: str | None = None) -> str:
    """An imported module; ``alias``, the name it is used under where hovered (`rails` of
    `import std.graph as rails`), is shown when it is not the module's own name."""
    file = symbol[1]
    from ..compile.frontend import stdlib_dir

    std = os.path.realpath(stdlib_dir() / "std")
    if os.path.dirname(file) == std:
        name = os.path.splitext(os.path.basename(file))[0]
        shown = f"import std.{name}" + (f" as {alias}" if alias and alias != name else "")
        return f"```cvg\n{shown}\n```\nstandard library module `{file}`"
    return f"imported file `{_where(file, 1)[:-2]}`"


def _alias(analysis: Analysis, occ: Occurrence) -> str | None:
    """The alias a module occurrence writes (`rails` in `rails.edge`), or the one its import
    statement gives (`import std.graph as rails`)."""
    lines = analysis.lines
    if occ.file != analysis.real or not 0 <= occ.line < len(lines):
        return None
    text = lines[occ.line][occ.col:occ.end_col]
    if text.isidentifier():
        return text
    found = re.search(r"\bas\s+([A-Za-z_][A-Za-z0-9_]*)\s*$", text)
    return found.group(1) if found else None


def hover_text(analysis: Analysis, occ: Occurrence) -> str | None:
    kind = occ.symbol[0]
    if kind == "relation":
        return relation_text(analysis, occ.symbol, _written(analysis, occ))
    if kind == "agent":
        return agent_text(analysis, occ.symbol)
    if kind == "invariant":
        return invariant_text(analysis, occ.symbol)
    if kind == "var":
        return var_text(analysis, occ.symbol)
    if kind == "module":
        return module_text(occ.symbol, _alias(analysis, occ))
    if kind == "builtin":
        doc = builtin_docs().get(occ.symbol[1])
        return None if doc is None else f"```cvg\n{doc.signature}\n```\n{doc.doc}\n\nbuiltin function"
    return None


def hover(analysis: Analysis, line: int, col: int) -> lsp.Hover | None:
    occ = analysis.at(line, col)
    if occ is None:
        return None
    text = hover_text(analysis, occ)
    if text is None:
        return None
    return lsp.Hover(contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=text), range=occ_range(occ))
