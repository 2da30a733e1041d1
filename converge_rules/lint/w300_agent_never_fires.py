"""W300 agent that can never fire: a rule or agent whose ``when`` body reads,
positively, a relation that can never hold a fact.

A relation can hold facts when it is ``input``, has facts in the rule
files, or is written by an agent that can itself fire; the lint computes
the least fixed point of that, so it also catches agents starved through a
chain (``reach`` is empty because ``edge`` is never written). Such an agent
never matches, whatever the input: a missing ``input`` keyword, a missing
rule, or a typo in a relation name. The warning points at the first atom
(in body order) that can never match, with notes down to the root cause.
Negated atoms and aggregates do not count: ``not r(x)`` holds and
``count { r(x) }`` is 0 when ``r`` is empty.
"""

from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic
from ._context import LintContext, owner_label

CODE = "W300"
TITLE = "agent that can never fire"


def check(ctx: LintContext) -> Iterator[Diagnostic]:
    for agent in ctx.program.agents:
        if agent.id in ctx.can_fire:
            continue
        atom = ctx.blocking_atom(agent)
        if atom is None:  # pragma: no cover - an agent outside the fixed point reads an empty relation
            continue
        yield ctx.warn(CODE, f"{owner_label(agent)} can never fire: {atom.relation!r} can never hold facts",
                       ctx.name_at(atom.span), *ctx.why_empty(atom.relation))
