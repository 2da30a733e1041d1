"""`converge report`: run a job and write one self-contained HTML page about it."""

from __future__ import annotations

import sys
from typing import Any

import click

from .common import (EXIT_TIER, OUT, budget_options, fail_diagnostics, job_relations, no_job_options,
                     open_record_or_exit, record_option, run_job, with_options)

EXAMPLE = "Example: converge report examples/loans/loans.cvg --facts examples/loans/facts.json -o report.html"


@click.command(epilog=EXAMPLE)
@click.argument("rules", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--facts", "facts", multiple=True, type=click.Path(), help="Facts file or directory (repeatable).")
@click.option("--output", "-o", "output", required=True, type=click.Path(dir_okay=False),
              help="Write the HTML report to FILE (replaced atomically); - writes it to standard output.")
@click.option("--relation", "only", multiple=True, metavar="RELATION",
              help="Show only this relation in the fact table (repeatable).")
@click.option("--depth", type=click.IntRange(min=1), default=12, show_default=True,
              help="Expand each proof tree at most N levels deep.")
@click.option("--max-proofs", type=click.IntRange(min=0), default=2000, show_default=True,
              help="Render proof trees for at most N derived facts.")
@click.option("--max-rows", type=click.IntRange(min=0), default=10000, show_default=True,
              help="Show at most N facts in the fact table (all relations together).")
@record_option
@with_options(budget_options)
def report(rules: tuple[str, ...], facts: tuple[str, ...], output: str, only: tuple[str, ...], depth: int,
           max_proofs: int, max_rows: int, record_file: str | None, **opts: Any) -> None:
    """Run RULES over facts and write an HTML report: the outcome, a timeline
    per cycle, the dependency graph, and every fact with its proof tree.

    The file needs no network (inline CSS and JavaScript only) and is the same,
    byte for byte, for the same job. Exit codes are those of `run` (0, 3, 4, 5
    by tier), so a report is written for failed jobs too; 1 when the rules or
    facts are invalid or the file cannot be written. With --record FILE
    (and no RULES) the report is of the recorded decision.
    """
    from ..diagnostics import ConvergeError
    from ..explain.report import render_report
    from ..io import write_atomic

    if record_file is not None:  # "" too: a record that cannot be read (E610), never a silent re-run
        if rules:
            raise click.UsageError("give either RULES or --record FILE, not both")
        no_job_options(record_file, facts, opts)
        result = open_record_or_exit(record_file).result
    elif not rules:
        raise click.UsageError("give the rule files (or --record FILE)")
    else:
        result = run_job(rules, facts, opts, trace=True)
    names = job_relations(result, only)
    page = render_report(result, names, depth=depth, max_proofs=max_proofs, max_rows=max_rows)
    data = page.encode("utf-8")
    if output == "-":  # the page on standard output (`-o - | gzip`), the summary line on stderr
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        click.echo(f"wrote the report to standard output: tier {result.tier.value}, {result.cycles} cycles, "
                   f"{result.total_facts} facts, {len(data)} bytes", err=True)
        sys.exit(EXIT_TIER[result.tier.value])
    try:
        write_atomic(output, data)
    except ConvergeError as err:
        fail_diagnostics(err)
    OUT.print(f"wrote {output}: tier {result.tier.value}, {result.cycles} cycles, {result.total_facts} facts, "
              f"{len(data)} bytes")
    sys.exit(EXIT_TIER[result.tier.value])
