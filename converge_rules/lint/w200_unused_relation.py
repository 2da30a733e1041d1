"""W200 unused relation: a relation that is declared but never used.

No rule, agent, invariant, acceptance check or test reads it, nothing
writes it and no fact is given for it in the rule files. It is dead
weight, or the rules meant to use it refer to another name. The warning
points at the declared name.
"""

from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic
from ._context import LintContext

CODE = "W200"
TITLE = "relation declared but never used"


def check(ctx: LintContext) -> Iterator[Diagnostic]:
    for name, rel in ctx.program.relations.items():
        if name in ctx.reads or name in ctx.writers or name in ctx.with_facts or name in ctx.in_tests:
            continue
        if name in getattr(ctx.program, "goals", ()):
            continue
        short = name.rsplit(".", 1)[-1]
        yield ctx.warn(CODE, f"relation {name!r} is declared but never used",
                       ctx.find(rel.span, rf"\brelation\s+({short})\b"),
                       "no rule, agent, invariant or fact mentions it; remove the declaration or use it")
