"""Lints: warnings with stable codes (``W...``) computed from a compiled program.

Each lint is a module of this package with a docstring, a ``CODE``, a
one-line ``TITLE`` and ``check(ctx) -> Iterator[Diagnostic]``; the codes
are documented in docs/diagnostics.md. Lints run only on programs that
compile without errors, never evaluate anything, and report only what lies
in the root files (the files given to ``converge check``), not in the
modules they import: each imported project file is checked as a root of
its own, and the standard library is not the user's to fix.

"""

from __future__ import annotations

from types import ModuleType
from typing import Iterable, Mapping

from ..diagnostics import Diagnostic, sort_diagnostics
from . import (
    w100_singleton_variable,
    w101_unused_import,
    w102_shadowed_name,
    w103_duplicate,
    w200_unused_relation,
    w201_never_written,
    w300_agent_never_fires,
    w301_invariant_never_matches,
    w302_irrelevant_to_goals,
    w400_arithmetic_recursion,
    w401_keyed_nonmonotone,
    w500_cross_partition_join,
    w600_missing_given_file,
)

LINTS: tuple[ModuleType, ...] = (
    w100_singleton_variable,
    w101_unused_import,
    w102_shadowed_name,
    w103_duplicate,
    w200_unused_relation,
    w201_never_written,
    w300_agent_never_fires,
    w301_invariant_never_matches,
    w302_irrelevant_to_goals,
    w400_arithmetic_recursion,
    w401_keyed_nonmonotone,
    w500_cross_partition_join,
    w600_missing_given_file,
)

WARNING_CODES: tuple[str, ...] = tuple(lint.CODE for lint in LINTS)


def run_lints(compilation: object, disabled: Iterable[str] = (), partition_by: str | None = None) -> list[Diagnostic]:
    """Every warning for a compiled program (none when it has errors), sorted by position."""
    from ..compile.pipeline import Compilation
    from ._context import LintContext

    assert isinstance(compilation, Compilation)
    if not compilation.ok or compilation.program is None or compilation.strata is None:
        return []
    off = set(disabled)
    ctx = LintContext(compilation)
    ctx.partition_by = partition_by  # W500 runs only for `converge check --partition-by COLUMN`
    found: list[Diagnostic] = []
    for lint in LINTS:
        if lint.CODE in off:
            continue
        found.extend(d for d in lint.check(ctx) if ctx.in_roots(d.span))
    return sort_diagnostics(compilation.sources.quote(found))


def check_file(path: str, disabled: Iterable[str] = (), partition_by: str | None = None,
               text: str | None = None) -> list[Diagnostic]:
    """Errors and warnings for one root file (and the modules it imports), sorted by position.

    Inline ``# converge: disable=CODE`` comments are applied; ``disabled``
    codes are not computed at all. ``text``, when given, is the file's text
    (standard input, an editor buffer) instead of what is on disk.
    """
    return _check_root(path, disabled, partition_by, text)[0]


def _check_root(path: str, disabled: Iterable[str], partition_by: str | None,
                text: str | None) -> tuple[list[Diagnostic], list[str]]:
    """``check_file``, and the names of the files its compilation read."""
    from ..compile.pipeline import compile_sources
    from .suppress import is_suppressed

    compilation = compile_sources([(path, text)], use_cache=False)
    diags = list(compilation.diagnostics) + run_lints(compilation, disabled, partition_by)
    return sort_diagnostics(d for d in diags if not is_suppressed(d, compilation.sources)), compilation.sources.files()


def check_files(paths: Iterable[str], disabled: Iterable[str] = (), partition_by: str | None = None,
                texts: Mapping[str, str] | None = None) -> list[Diagnostic]:
    """``check_file`` for several root files, as one report: sorted by position, each problem once.

    A file is named in diagnostics as its root spelling when it is one of ``paths`` (the
    one that sorts first, when one file is given twice), however an import of another
    root reached it: a root names itself as given (``/abs/rules/lib.cvg``, ``../lib.cvg``)
    while imports name a file relative to the current directory (``rules/lib.cvg``), and
    the same error would otherwise count twice under two names.

    ``texts`` are root files given as text, by name (standard input, an editor's buffer),
    checked as the files are; their imports are read from disk. A text may not be named as
    a file that the check reads from disk (one of ``paths``, or a file they import): the
    report would show two texts under one name, and one problem of both only once. That
    is a ValueError, as a directory without rule files is."""
    import os
    from dataclasses import replace

    disabled = frozenset(disabled)  # used once per root
    roots: dict[str, str] = {}
    for path in paths:
        roots.setdefault(os.path.realpath(path), path)
    found: list[Diagnostic] = []
    read: dict[str, str] = dict(roots)  # real path of every file read from disk -> its name
    for path in roots.values():
        diags, files = _check_root(path, disabled, partition_by, None)
        found.extend(diags)
        for name in files:
            read.setdefault(os.path.realpath(name), name)
    for name, text in (texts or {}).items():
        clash = read.get(os.path.realpath(name))
        if clash is not None:
            as_root = clash in roots.values()
            raise ValueError(f"the text named {name!r} and the rule file {clash!r} "
                             f"({'given to check' if as_root else 'imported by a file given'}) would share one "
                             "name in the report: check one or the other, or name the text differently")
        found.extend(_check_root(name, disabled, partition_by, text)[0])
    shown: dict[str, str] = {}
    for d in found:
        if d.span.file not in shown:
            shown[d.span.file] = roots.get(os.path.realpath(d.span.file), d.span.file) if d.span.line else d.span.file
    return sort_diagnostics(d if shown[d.span.file] == d.span.file else replace(d, span=replace(d.span, file=shown[d.span.file]))
                            for d in found)
