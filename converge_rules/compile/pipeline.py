"""The compile pipeline: named stages run by one loop that stops at the first
stage leaving errors (so a user sees root causes, not their echoes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from typing import TYPE_CHECKING, Any

from ..diagnostics import Diagnostic, sort_diagnostics
from .graph import Strata, stratify
from .program import Program

if TYPE_CHECKING:
    from .frontend import Frontend


def _frontend() -> Any:
    from .frontend import Frontend

    return Frontend()


def make_frontend(overlay: Mapping[str, str] | None) -> "Frontend":
    from .frontend import Frontend

    return Frontend(overlay)


@dataclass
class Compilation:
    roots: list[tuple[str, str | None]]
    frontend: "Frontend" = field(default_factory=_frontend)
    program: Program | None = None
    strata: Strata | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)


def _load(c: Compilation) -> list[Diagnostic]:
    c.frontend.load(c.roots)
    return c.frontend.diags


def _resolve(c: Compilation) -> list[Diagnostic]:
    before = len(c.frontend.diags)
    c.program = c.frontend.resolve()
    return c.frontend.diags[before:]


def _check(c: Compilation) -> list[Diagnostic]:
    from .checks import check_program

    assert c.program is not None
    c.program, diags = check_program(c.program)
    return diags


def _stratify(c: Compilation) -> list[Diagnostic]:
    assert c.program is not None
    c.strata, diags = stratify(c.program)
    return diags


STAGES: list[tuple[str, Callable[[Compilation], list[Diagnostic]]]] = [
    ("load", _load),
    ("resolve", _resolve),
    ("check", _check),
    ("stratify", _stratify),
]


def compile_sources(roots: list[tuple[str, str | None]], use_cache: bool = True,
                    overlay: Mapping[str, str] | None = None) -> Compilation:
    """Run the stages over root files ``(path, text or None)``; files may come from the cache.

    ``overlay`` maps real paths to texts that replace those files on disk (an editor's
    unsaved buffers); a compilation with an overlay never uses the cache."""
    from . import cache

    files_only = use_cache and not overlay and all(text is None for _, text in roots)
    if files_only:
        cached = cache.load([p for p, _ in roots])
        if cached is not None:
            program, strata, diagnostics = cached
            c = Compilation(roots, program=program, strata=strata, diagnostics=diagnostics)
            return c
    c = Compilation(roots, frontend=make_frontend(overlay)) if overlay else Compilation(roots)
    for _name, stage in STAGES:
        c.diagnostics.extend(stage(c))
        c.diagnostics = sort_diagnostics(c.diagnostics)
        if not c.ok:
            break
    if files_only and c.ok:
        cache.store([p for p, _ in roots], [u.path for u in c.frontend.units], (c.program, c.strata, c.diagnostics))
    return c
