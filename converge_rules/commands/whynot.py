"""`converge why-not`: explain why a fact does NOT hold."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from .stdin import STDIN_OPTIONS
from ..cli import EXIT_OK, _budget_options, _fail_diagnostics, _run_job, _with

EXAMPLE = "Example: converge why-not examples/loans/loans.cvg --facts examples/loans/facts.json 'decision(\"l1\", \"approve\")'"


@click.command("why-not", epilog=EXAMPLE)
@click.argument("args", nargs=-1, required=True)
@click.option("--facts", "facts", multiple=True, type=click.Path(), help="Facts file or directory (repeatable); - reads standard input.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--depth", type=click.IntRange(min=1), default=1, show_default=True,
              help="Also explain a missing premise of a derived relation, N-1 levels further.")
@_with(_budget_options + STDIN_OPTIONS)
def why_not(args: tuple[str, ...], facts: tuple[str, ...], fmt: str, depth: int, **opts: Any) -> None:
    """Explain why FACT does not hold: the agents that could derive it and
    the first body literal that nothing satisfied, with its bindings.

    Arguments: RULES... FACT (the fact is the last argument). Exits 0 when
    the fact is explained, and also (saying so) when it actually holds.
    """
    if len(args) < 2:
        raise click.UsageError("give the rule files and then the fact, e.g. converge why-not rules.cvg 'path(\"a\", \"c\")'")
    rules, fact_text = args[:-1], args[-1]
    if fact_text.endswith(".cvg") and os.path.exists(fact_text):
        raise click.UsageError("the last argument must be a fact such as 'decision(\"l1\", \"approve\")'")
    from ..diagnostics import ConvergeError
    from ..explain.whynot import RENDERERS
    from ..explain.whynot import why_not as explain

    result = _run_job(rules, facts, opts)
    try:
        relation, values = result.parse_fact(fact_text)
    except ConvergeError as err:
        _fail_diagnostics(err)
    explanation = explain(result, relation, values, depth=depth)
    text = RENDERERS[fmt](explanation)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.exit(EXIT_OK)


whynot = why_not  # the command under either name
