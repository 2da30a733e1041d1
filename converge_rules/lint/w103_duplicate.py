"""W103 duplicate: the same fact, or the same rule, written twice.

A relation is a set, so a fact given twice is stored once, and a rule that
repeats another (same head, same body literals in any order) derives
nothing new: the second copy is dead text that a later edit of the first
will silently contradict. The warning points at the later copy and names
the first.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterator

from ..compile.program import AgentDef
from ..diagnostics import Diagnostic, Span
from ..values import format_fact
from ._context import LintContext, where

CODE = "W103"
TITLE = "duplicate fact or rule"


def _fact_key(relation: str, values: tuple) -> tuple:
    return (relation, tuple((type(v).__name__, v) for v in values))


def check(ctx: LintContext) -> Iterator[Diagnostic]:
    first_fact: dict[tuple, Span] = {}
    for fact in ctx.program.facts:
        key = _fact_key(fact.relation, fact.values)
        if key in first_fact:
            yield ctx.warn(CODE, f"fact {format_fact(fact.relation, fact.values)} is given twice", fact.span,
                           f"first given at {where(first_fact[key])}", "a relation is a set: remove this copy")
        else:
            first_fact[key] = fact.span
    first_rule: dict[tuple, AgentDef] = {}
    for agent in ctx.program.agents:
        if agent.kind != "rule":
            continue
        key = (agent.heads, frozenset(Counter(agent.body).items()))
        if key in first_rule:
            first = first_rule[key]
            yield ctx.warn(CODE, f"rule {agent.name!r} repeats rule {first.name!r}", agent.heads[0].span,
                           f"first written at {where(first.span)}", "it derives nothing new: remove this copy")
        else:
            first_rule[key] = agent
