"""W201 relation read but never written: a relation that rules read, but that is
not ``input``, has no facts in the rule files and that no rule or agent derives.

It is always empty when the program runs on its own rule files: every
positive read of it fails and every ``not`` of it succeeds. Either its facts
come from facts files (then declare it ``input relation``), or a rule that
should derive it is missing or writes another name. The warning points at
the declared name and notes the first read.
"""

from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic
from ._context import LintContext, where

CODE = "W201"
TITLE = "relation read but never written, not input and without facts"


def check(ctx: LintContext) -> Iterator[Diagnostic]:
    for name, rel in ctx.program.relations.items():
        reads = ctx.reads.get(name)
        if not reads or rel.is_input or name in ctx.writers or name in ctx.with_facts:
            continue
        first = min(reads, key=lambda r: (r.atom.span.file, r.atom.span.line, r.atom.span.col))
        short = name.rsplit(".", 1)[-1]
        yield ctx.warn(CODE, f"relation {name!r} is read but never written: it is not input, has no facts and no rule or agent derives it",
                       ctx.find(rel.span, rf"\brelation\s+({short})\b"),
                       f"read at {where(first.atom.span)}",
                       f"declare it 'input relation {short}(...)' if its facts come from files, or add a rule that derives it")
