"""`converge why-not`: explain why a fact does NOT hold."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from .common import (EXIT_OK, budget_options, fail_diagnostics, no_job_options, open_record_or_exit, record_option,
                     run_job, with_options, write_text)
from .stdin import STDIN_OPTIONS

EXAMPLE = "Example: converge why-not examples/loans/loans.cvg --facts examples/loans/facts.json 'decision(\"l1\", \"approve\")'"


@click.command("why-not", epilog=EXAMPLE)
@click.argument("args", nargs=-1, required=True)
@click.option("--facts", "facts", multiple=True, type=click.Path(), help="Facts file or directory (repeatable); - reads standard input.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--depth", type=click.IntRange(min=1), default=1, show_default=True,
              help="Also explain a missing premise of a derived relation, N-1 levels further.")
@record_option
@with_options(budget_options + STDIN_OPTIONS)
def why_not(args: tuple[str, ...], facts: tuple[str, ...], fmt: str, depth: int, record_file: str | None,
            **opts: Any) -> None:
    """Explain why FACT does not hold: the agents that could derive it and
    the first body literal that nothing satisfied, with its bindings.

    Arguments: RULES... FACT (the fact is the last argument), or with
    --record FILE only FACT (explained from the recorded facts). Exits 0
    when the fact is explained, and also (saying so) when it actually holds.
    """
    if record_file is not None:  # "" too: a record that cannot be read (E610), never a silent re-run
        if len(args) != 1:
            raise click.UsageError("with --record give only the fact, e.g. converge why-not --record r.json 'approved(\"a1\")'")
        no_job_options(record_file, facts, opts)
        result = open_record_or_exit(record_file).result
        fact_text = args[0]
    elif len(args) < 2:
        raise click.UsageError("give the rule files and then the fact, e.g. converge why-not rules.cvg 'path(\"a\", \"c\")'")
    else:
        rules, fact_text = args[:-1], args[-1]
        if fact_text.endswith(".cvg") and os.path.exists(fact_text):
            raise click.UsageError("the last argument must be a fact such as 'decision(\"l1\", \"approve\")'")
        result = run_job(rules, facts, opts)
    from ..diagnostics import ConvergeError
    from ..explain.whynot import RENDERERS
    from ..explain.whynot import why_not as explain

    try:
        relation, values = result.parse_fact(fact_text)
    except ConvergeError as err:
        fail_diagnostics(err)
    explanation = explain(result, relation, values, depth=depth)
    write_text(RENDERERS[fmt](explanation))
    sys.exit(EXIT_OK)


whynot = why_not  # the command under either name
