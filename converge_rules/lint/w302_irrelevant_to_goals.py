"""W302 agent irrelevant to every declared goal: the file declares ``goal``
relations and this agent cannot contribute to any of them (nor to a relation
an invariant or acceptance check reads).

Such an agent is pruned before the job starts (see docs/semantics.md), so it
never runs: either a goal is missing or the agent is dead code.
"""

from __future__ import annotations

from typing import Iterator

from ..compile.graph import goal_pruned
from ..diagnostics import Diagnostic
from ._context import LintContext

CODE = "W302"
TITLE = "agent irrelevant to every declared goal"


def check(ctx: LintContext) -> Iterator[Diagnostic]:
    program, strata = ctx.program, ctx.compilation.strata  # type: ignore[attr-defined]
    if not program.goals or strata is None:
        return
    pruned = goal_pruned(program, strata, program.goals)
    for agent in program.agents:
        if agent.id in pruned and ctx.in_roots(agent.span):
            yield ctx.warn(CODE, f"agent {agent.name!r} cannot contribute to any goal ({', '.join(program.goals)}); it is pruned",
                           ctx.name_at(agent.span) if agent.kind == "agent" else agent.heads[0].span,
                           "add the relation it derives to `goal`, or remove the agent")
