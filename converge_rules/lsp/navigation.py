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
    found = occurrences(analysis, occ.symbol, project)
    locked = sorted({o.file for o in found if read_only(o.file)})
    if locked:
        raise RenameError(f"{occ.symbol[-1]!r} is used in files that are not the project's to change: {', '.join(locked)}")
    changes: dict[str, list[lsp.TextEdit]] = {}
    for o in found:
        uri = from_fs_path(o.file) or o.file
        changes.setdefault(uri, []).append(lsp.TextEdit(range=occ_range(o), new_text=new_name))
    return lsp.WorkspaceEdit(changes=dict(sorted(changes.items())))
