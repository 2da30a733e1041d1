"""W401 the preferred column of a keyed relation read non-monotonically.

A relation declared ``key(...) prefer min(col)`` keeps one fact per key, and
a better fact supersedes a worse one later in the run. A rule that copies the
preferred value into an ordinary relation, compares it, negates it or
aggregates it may act on a value that is superseded afterwards, and what it
derived stays. Reading the value only to derive the same kind of keyed fact
(the shortest-path recursion ``dist(y, d + w) :- dist(x, d), edge(x, y, w).``)
is monotone and not reported; so is reading it with ``_``, and so are
negations and aggregates, which wait until the relation is complete.
"""

from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic
from ..syntax import ast
from ._context import LintContext, body_reads, owner_label

CODE = "W401"
TITLE = "preferred column of a keyed relation read non-monotonically"


def _uses(lit: ast.Literal, var: str) -> bool:
    return var in ast.literal_vars(lit)


def check(ctx: LintContext) -> Iterator[Diagnostic]:
    rels = ctx.program.relations
    for owner in ctx.owners:
        if not ctx.in_roots(owner.span):
            continue
        heads = getattr(owner, "heads", ())
        for atom, kind in body_reads(owner.body):
            rel = rels.get(atom.relation)
            if rel is None or rel.key is None or len(atom.args) != rel.arity:
                continue
            arg = atom.args[rel.key.column]
            if isinstance(arg, ast.Wildcard):
                continue
            col = rel.columns[rel.key.column].name
            if kind != "positive" or not isinstance(arg, ast.Var):  # negation and aggregates read complete relations
                continue
            var = arg.name
            compared = [lit for lit in owner.body if not isinstance(lit, ast.Atom) and _uses(lit, var)]
            monotone_heads = all(
                rels[h.relation].key is not None and rels[h.relation].key.prefer == rel.key.prefer  # type: ignore[union-attr]
                for h in heads if var in ast.literal_vars(h))
            if compared or not monotone_heads or not heads:
                yield ctx.warn(CODE, f"{owner_label(owner)} uses the preferred column {col!r} of keyed relation {rel.name!r} "
                               f"({var}) outside its own dominance; a value superseded later may leave stale results",
                               arg.span, "derive such facts from a relation computed after the keyed one is complete, "
                               "or keep them keyed with the same preference")
