"""`converge plan`: the plan of every agent and semi-naive version, like EXPLAIN.

Without ``--facts`` the plans are made for the sizes of the facts written in
the rule files (EXPLAIN). With ``--facts`` the job runs, counting the rows out
of every step, and each version shows the plan the engine last used with its
estimated and actual rows (EXPLAIN ANALYZE). Each agent's rule is printed as a
comment above its plans.
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

import click

from .common import EXIT_OK, budget_options, fail_diagnostics, run_job, with_options, write_text
from .stdin import STDIN_OPTIONS

EXAMPLE = "Example: converge plan examples/loans/loans.cvg --agent approve --facts examples/loans/facts.json"


def plan_text(ruleset: Any, agent: str | None = None, result: Any = None) -> str:
    """Every agent's plans as text (``result``: a run with ``analyze=True``)."""
    from ..compile.lower import lower, render, rule_text, versions
    program = ruleset.program
    sizes: dict[str, int] = {}
    for fact in program.facts:
        sizes[fact.relation] = sizes.get(fact.relation, 0) + 1
    out: list[str] = []
    for rule in program.agents:
        if agent is not None and rule.name != agent:
            continue
        span = rule.span
        out.append(f"agent {rule.name}  ({span.file}:{span.line}:{span.col})")
        out.append(f"  -- {rule_text(rule)}")
        analysed = result.analysis.get(rule.name) if result is not None and result.analysis else None
        pruned = result is not None and rule.name in result.pruned_agents
        for driver in versions(rule):
            if analysed is not None:
                plan = analysed[0].get(driver)
                if plan is None:
                    what = "Δ" + ast_text(rule.body[driver]) if driver is not None else "whole relations"
                    out.append(f"  version {what}: never ran" + (" (the agent was pruned for the goals)" if pruned else ""))
                    continue
                out.extend(render(plan, rule, actual=analysed[1].get(driver, {}), estimates=True))
            else:
                plan = lower(rule, driver, sizes=sizes)
                out.extend(render(plan, rule, estimates=True))
        out.append("")
    return "\n".join(out)


def ast_text(lit: Any) -> str:
    from ..syntax.printer import show_literal

    return show_literal(lit)


@click.command("plan", epilog=EXAMPLE)
@click.argument("rules", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--agent", "agent", default=None, help="Show only this agent (its name, e.g. `approve` or `path#2`).")
@click.option("--facts", "facts", multiple=True, type=click.Path(),
              help="Run on these facts and show actual rows per step (EXPLAIN ANALYZE); repeatable; - reads standard input.")
@with_options(budget_options + STDIN_OPTIONS)
def plan(rules: Sequence[str], agent: str | None, facts: Sequence[str], **opts: Any) -> None:
    """Print the plan of each agent per semi-naive version: steps in order
    (scan with its index columns, existence check, filter, assignment,
    negation, aggregate, tool call, emit), the proof layout, and estimated
    rows; with --facts, also the actual rows of a run (the job options,
    such as --tools, --goal and the budgets, apply to that run)."""
    from ..api import load
    from ..diagnostics import ConvergeError

    given = [name for name, value in opts.items() if value not in (None, (), False, {}) and not _defaulted(name)]
    if given and not facts:
        flags = ", ".join("--" + g.replace("_", "-") for g in given)
        raise click.UsageError(f"{flags}: only with --facts (the options of the job whose rows are counted)")
    try:
        ruleset = load(list(rules))
    except ConvergeError as err:
        fail_diagnostics(err)
    if agent is not None and ruleset.program.agent(agent) is None:
        names = ", ".join(a.name for a in ruleset.program.agents)
        raise click.UsageError(f"no agent named {agent!r}; agents: {names}")
    result = run_job(rules, facts, opts, analyze=True) if facts else None
    text = plan_text(ruleset, agent, result)
    if result is not None:
        text = f"-- run: tier {result.tier.value}, {result.cycles} cycle(s), {result.total_facts} facts\n\n" + text
    write_text(text)  # rule text may hold control characters: shown escaped
    sys.exit(EXIT_OK)


def _defaulted(name: str) -> bool:
    ctx = click.get_current_context(silent=True)
    source = ctx.get_parameter_source(name) if ctx is not None else None
    return source is not None and source.name in ("DEFAULT", "DEFAULT_MAP")
