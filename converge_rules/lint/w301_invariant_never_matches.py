"""W301 invariant that can never match: an ``invariant`` or ``acceptance`` check
whose ``forbid`` body reads, positively, a relation that can never hold a fact.

The check then can never be violated, whatever the input, so it protects
nothing: usually the relation's name is wrong, or the relation is never
derived (see W300 for what "can hold facts" means). The warning points at
the first such atom of the ``forbid`` body.
"""

from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic
from ._context import LintContext, owner_label

CODE = "W301"
TITLE = "invariant or acceptance check that can never match"


def check(ctx: LintContext) -> Iterator[Diagnostic]:
    for inv in ctx.program.invariants:
        atom = ctx.blocking_atom(inv)
        if atom is None:
            continue
        yield ctx.warn(CODE, f"{owner_label(inv)} can never match: {atom.relation!r} can never hold facts",
                       ctx.name_at(atom.span), *ctx.why_empty(atom.relation),
                       "a check that can never match protects nothing")
