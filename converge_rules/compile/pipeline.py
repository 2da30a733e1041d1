"""The compile pipeline: named stages run by one loop.

Every independent error of a file is reported in one pass: after resolution,
the later stages still run, but only over the agents and invariants that no
earlier error points into (so a user sees root causes, not their echoes).
Only a file that does not parse stops the pipeline at once."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

from typing import TYPE_CHECKING, Any

from ..diagnostics import Diagnostic, SourceTexts, Span, sort_diagnostics
from .graph import Strata, stratify
from .program import Program

if TYPE_CHECKING:
    from .frontend import Frontend
    from .sources import RuleSources


def _frontend(sources: "RuleSources | None" = None) -> Any:
    from .frontend import Frontend

    return Frontend(sources)


@dataclass
class Compilation:
    roots: list[tuple[str, str | None]]
    frontend: "Frontend" = field(default_factory=_frontend)
    program: Program | None = None
    strata: Strata | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    texts: dict[str, str] | None = None  # compiled from these texts alone (a decision record)

    @property
    def ok(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)

    @property
    def sources(self) -> "SourceTexts":
        """The texts this compilation parsed (none when it came from the cache), by file name."""
        return self.frontend.texts

    def _run(self, stage: Callable[["Compilation"], list[Diagnostic]]) -> None:
        """Run one stage; its diagnostics quote this compilation's texts (see Diagnostic.quote)."""
        self.diagnostics = sort_diagnostics(self.diagnostics + self.sources.quote(stage(self)))


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


def _inside(span: Span, outer: Span) -> bool:
    end = (outer.end_line or outer.line, outer.end_col or outer.col)
    return span.file == outer.file and (outer.line, outer.col) <= (span.line, span.col) <= end


def _without_rejected(program: Program, diagnostics: list[Diagnostic]) -> Program:
    """The program minus the agents and invariants that an error points into, or
    that mention a relation whose declaration has an error."""
    from .graph import body_reads

    errors = [d.span for d in diagnostics if d.is_error and d.span.line > 0]

    def clean(span: Span) -> bool:
        return not any(_inside(e, span) for e in errors)

    bad = {name for name, rel in program.relations.items() if not clean(rel.span)}

    def ok(span: Span, body: tuple, heads: tuple) -> bool:
        names = {rel for rel, _kind, _atom in body_reads(body)} | {h.relation for h in heads}
        return clean(span) and not names & bad

    return replace(program, agents=tuple(a for a in program.agents if ok(a.span, a.body, a.heads)),
                   invariants=tuple(i for i in program.invariants if ok(i.span, i.body, ())))


STAGES: list[tuple[str, Callable[[Compilation], list[Diagnostic]]]] = [
    ("load", _load),
    ("resolve", _resolve),
    ("check", _check),
    ("stratify", _stratify),
]


def compile_sources(roots: list[tuple[str, str | None]], use_cache: bool = True,
                    virtual: dict[str, str] | None = None, overlay: Mapping[str, str] | None = None) -> Compilation:
    """Run the stages over root files ``(path, text or None)``; files may come from the cache.

    With ``virtual`` (path -> text, e.g. the files of a decision record) every file,
    imports and standard modules included, is taken from it: nothing is read from disk.
    ``overlay`` maps real paths to texts that replace those files on disk (an editor's
    unsaved buffers); a compilation with an overlay never uses the cache. Either becomes the
    frontend's rule sources (sources.SealedSources, sources.OverlaySources); else the disk."""
    from . import cache

    if virtual is not None:
        roots = [(p, virtual[p] if t is None else t) for p, t in roots]
        names = [p for p, _ in roots]
        given = dict(virtual)  # the cache key: the texts as given, before a standard module is added
        cached = cache.load_texts(names, given) if use_cache else None
        if cached is not None:
            (program, strata, diagnostics), added = cached
            virtual.update(added)  # as compiling would: the texts hold every file compiled
            return Compilation(roots, program=program, strata=strata, diagnostics=diagnostics, texts=virtual)
        from .sources import SealedSources

        c = Compilation(roots, frontend=_frontend(SealedSources(virtual)), texts=virtual)
        for _name, stage in STAGES:
            c._run(stage)
            if not c.ok:
                break
        if use_cache and c.ok:
            cache.store_texts(names, given, (c.program, c.strata, c.diagnostics),
                              {p: t for p, t in virtual.items() if p not in given})
        return c
    files_only = use_cache and not overlay and all(text is None for _, text in roots)
    if files_only:
        cached = cache.load([p for p, _ in roots])
        if cached is not None:
            program, strata, diagnostics = cached
            c = Compilation(roots, program=program, strata=strata, diagnostics=diagnostics)
            return c
    if overlay:
        from .sources import OverlaySources

        c = Compilation(roots, frontend=_frontend(OverlaySources(overlay)))
    else:
        c = Compilation(roots)
    for name, stage in STAGES:
        if not c.ok:
            if name in ("load", "resolve"):
                break  # a file that does not parse: nothing sound to check
            assert c.program is not None
            c.program = _without_rejected(c.program, c.diagnostics)
        c._run(stage)
    if files_only and c.ok:
        cache.store([p for p, _ in roots], [u.path for u in c.frontend.units], (c.program, c.strata, c.diagnostics))
    return c
