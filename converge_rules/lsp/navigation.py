"""Go to definition, find references and rename, over the files of the project.

A relation, agent, invariant or module is found in every project file that can
see it (each file is compiled as a root with the editor's unsaved buffers, and
indexed); a variable lives in one rule, so it is found in that rule only.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable

from lsprotocol import types as lsp
from pygls.uris import from_fs_path

from .analysis import Analysis, Occurrence
from .convert import occ_range

IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
Project = Callable[[], Iterable[Analysis]]


def _location(occ: Occurrence) -> lsp.Location:
    return lsp.Location(uri=from_fs_path(occ.file) or occ.file, range=occ_range(occ))


def definition(analysis: Analysis, line: int, col: int) -> list[lsp.Location] | None:
    occ = analysis.at(line, col)
    if occ is None:
        return None
    if occ.symbol[0] == "module":
        start = lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0))
        return [lsp.Location(uri=from_fs_path(occ.symbol[1]) or occ.symbol[1], range=start)]
    if occ.symbol[0] == "var":  # the first occurrence in its rule binds it, as far as an editor cares
        first = min(analysis.find(occ.symbol), key=lambda o: (o.line, o.col))
        return [_location(first)]
    decl = analysis.declaration(occ.symbol)
    return [_location(decl)] if decl is not None else None


def occurrences(analysis: Analysis, symbol: tuple, project: Project) -> list[Occurrence]:
    """Every occurrence of a symbol: in the rule (a variable) or in all project files."""
    if symbol[0] in ("var", "builtin"):
        found = list(analysis.find(symbol))
    else:
        unique: dict[tuple, Occurrence] = {}
        for other in [analysis, *project()]:
            for occ in other.find(symbol):
                unique.setdefault((occ.file, occ.line, occ.col), occ)
        found = list(unique.values())
    return sorted(found, key=lambda o: (o.file, o.line, o.col))


def references(analysis: Analysis, line: int, col: int, include_declaration: bool,
               project: Project) -> list[lsp.Location] | None:
    occ = analysis.at(line, col)
    if occ is None:
        return None
    return [_location(o) for o in occurrences(analysis, occ.symbol, project) if include_declaration or not o.decl]


def prepare_rename(analysis: Analysis, line: int, col: int) -> lsp.Range | None:
    occ = analysis.at(line, col)
    if occ is None or occ.symbol[0] not in ("relation", "var", "agent", "invariant"):
        return None
    return occ_range(occ)


class RenameError(Exception):
    """A rename that cannot be done, with the reason for the user."""


def rename(analysis: Analysis, line: int, col: int, new_name: str, project: Project,
           read_only: Callable[[str], bool]) -> lsp.WorkspaceEdit | None:
    occ = analysis.at(line, col)
    if occ is None:
        return None
    kind = occ.symbol[0]
    if kind not in ("relation", "var", "agent", "invariant"):
        raise RenameError(f"a {kind} cannot be renamed")
    if not IDENT.match(new_name) or new_name == "_":
        raise RenameError(f"{new_name!r} is not a name: use letters, digits and _ (not starting with a digit)")
    from .builtins import KEYWORDS, builtin_docs

    if kind == "relation" and (new_name in builtin_docs() or new_name in KEYWORDS):
        raise RenameError(f"{new_name!r} is a builtin or keyword and cannot name a relation")
    if new_name in KEYWORDS:  # a variable renamed `true` is a constant, one renamed `not` a syntax error
        raise RenameError(f"{new_name!r} is a keyword and cannot name {'a variable' if kind == 'var' else 'an ' + kind}")
    taken = _taken(analysis, occ.symbol, new_name)
    if taken is not None:
        raise RenameError(taken)
    found = occurrences(analysis, occ.symbol, project)
    locked = sorted({o.file for o in found if read_only(o.file)})
    if locked:
        raise RenameError(f"{occ.symbol[-1]!r} is used in files that are not the project's to change: {', '.join(locked)}")
    changes: dict[str, list[lsp.TextEdit]] = {}
    for o in found:
        uri = from_fs_path(o.file) or o.file
        changes.setdefault(uri, []).append(lsp.TextEdit(range=occ_range(o), new_text=new_name))
    return lsp.WorkspaceEdit(changes=dict(sorted(changes.items())))


def _taken(analysis: Analysis, symbol: tuple, new_name: str) -> str | None:
    """Why ``new_name`` cannot be given to ``symbol``: another name of its kind in its scope
    (None: free). A variable renamed to another variable of its rule would merge the two
    (`p(x) :- q(x, y)` into `p(y) :- q(y, y)`: another program, without a diagnostic); a
    relation, agent or invariant renamed to a sibling's name would be declared twice."""
    import os

    kind = symbol[0]
    if new_name == symbol[-1].rsplit(".", 1)[-1]:
        return None  # its own name: nothing changes
    if kind == "var":
        scope = symbol[:4]
        if any(o.symbol[:4] == scope and o.symbol[4] == new_name for o in analysis.occurrences.get(symbol[1], ())):
            return f"{new_name!r} is already a variable of this rule: renaming would merge the two"
        return None
    program = analysis.program
    if program is None:
        return None
    if kind == "relation":
        names = set(program.relations)
        for full, rel in program.relations.items():
            if os.path.realpath(rel.span.file) == symbol[1] and full.rsplit(".", 1)[-1] == symbol[2]:
                prefix = full[: len(full) - len(symbol[2])]
                if prefix + new_name in names:
                    return f"a relation {new_name!r} is already declared where {symbol[2]!r} is"
        return None
    names = {a.name for a in program.agents} if kind == "agent" else {i.name for i in program.invariants}
    prefix = symbol[2][: len(symbol[2]) - len(symbol[2].rsplit(".", 1)[-1])]
    if prefix + new_name in names:
        return f"an {kind} named {new_name!r} already exists"
    return None
