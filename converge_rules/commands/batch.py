"""`converge batch`: run one rule set over many independent jobs.

Exit codes: 0 every job converged; 3, 4 or 5 when the worst job ended
degraded, bounded or failed (``run``'s codes); 1 invalid rules, an invalid
jobs source (E530) or an output that cannot be written (E507, E531); 2 usage
error; 130 interrupted (finished jobs are kept: rerun to resume).
"""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn

import click

from ..engine.tools import ToolRef
from .common import EXIT_INVALID, EXIT_TIER, OUT, SECONDS, load_tools, table_queries

EXAMPLE = ("Example: converge batch examples/loans/loans.cvg --jobs examples/batch/loans.jsonl "
           "--out results.jsonl --workers 2")


def _fail(err: Any) -> NoReturn:
    for d in err.diagnostics:
        OUT.print(d.render(), err=True)
    n = sum(1 for d in err.diagnostics if d.is_error)
    OUT.print(f"{n} error{'s' if n != 1 else ''}", style="bold red", err=True)
    sys.exit(EXIT_INVALID)


# Worker processes this machine may start (--workers N, --cluster local:N): each holds the rule set
# and a job's facts, so a typo such as local:99999999999 must be refused, not tried.
MAX_LOCAL_WORKERS = 256


def _cluster_client(address: str) -> Any:
    try:
        from ..batch.cluster import connect_client, local_client
    except ImportError:
        raise click.UsageError("--cluster needs Dask: pip install 'converge-rules[batch]'")
    if address.startswith("local:"):
        try:
            n = int(address[len("local:"):])
        except ValueError:
            n = 0
        if not 1 <= n <= MAX_LOCAL_WORKERS:
            raise click.BadParameter(f"expected local:N with 1 <= N <= {MAX_LOCAL_WORKERS}, got {address!r}",
                                     param_hint="--cluster")
        return local_client(n)
    try:
        return connect_client(address)
    except (OSError, TimeoutError, ValueError) as err:
        from ..diagnostics import ConvergeError, Diagnostic, Span

        _fail(ConvergeError([Diagnostic("E532", f"cannot reach the Dask scheduler at {address}: {err}",
                                        Span(address, 0, 0))]))


class _Bar:
    """A rich progress bar on stderr (only on a terminal): jobs done, per tier, rate, ETA."""

    def __init__(self, total: int | None, enabled: bool):
        self.counts = {t: 0 for t in EXIT_TIER}
        self.progress: Any = None
        if enabled:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn)

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                                     console=Console(file=sys.stderr), transient=True)
            self.task = self.progress.add_task(self._text(), total=total, rate="")
            self.progress.start()

    def _text(self) -> str:
        return " ".join(f"{t} {n}" for t, n in self.counts.items() if n or t == "converged")

    def advance(self, tier: str) -> None:
        self.counts[tier] += 1
        if self.progress is not None:
            task = self.progress.tasks[0]
            speed = task.speed
            self.progress.update(self.task, advance=1, description=self._text(),
                                 rate=f"{speed:.0f} jobs/s" if speed else "")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


@click.command(epilog=EXAMPLE)
@click.argument("rules", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--jobs", "jobs_source", required=True, metavar="SOURCE",
              help="Jobs: a JSON Lines file, a directory (one job per entry), or a database URL with --partition-by.")
@click.option("--out", "out", required=True, metavar="SINK",
              help="Results: a .jsonl file, or sqlite:///PATH.db / postgresql://... (rerun with the same SINK to resume).")
@click.option("--workers", type=click.IntRange(min=1, max=MAX_LOCAL_WORKERS), default=None,
              help=f"Worker processes, at most {MAX_LOCAL_WORKERS} (default: the number of CPUs; 1 runs in this process).")
@click.option("--cluster", metavar="ADDRESS", help="Run on Dask: tcp://HOST:8786, or local:N for a LocalCluster of N workers.")
@click.option("--relation", "relations", multiple=True, metavar="RELATION",
              help="Keep the facts of this relation in each result (repeatable; default: every non-input relation).")
@click.option("--partition-by", metavar="COLUMN", help="With a database of jobs: one job per value of COLUMN.")
@click.option("--table", "tables", multiple=True, metavar="REL=SQL", help="With a database of jobs: read REL with this SELECT.")
@click.option("--max-cycles", type=click.IntRange(min=0), help="Stop each job after N cycles (tier bounded).")
@click.option("--max-facts", type=click.IntRange(min=0), help="Keep at most N facts per job (tier bounded).")
@click.option("--max-steps", type=click.IntRange(min=0), help="At most N rule firings per job (tier bounded).")
@click.option("--max-bytes", type=click.IntRange(min=0), help="At most N counted bytes of facts per job (default 268435456; tier bounded).")
@click.option("--timeout", type=SECONDS, metavar="SECONDS",
              help="Stop a job after SECONDS of wall-clock time (tier bounded; not deterministic).")
@click.option("--on-failure", metavar="POLICY", help="Default failure policy: abort, skip, or 'retry N then skip|abort'.")
@click.option("--tools", "tools", multiple=True, metavar="MODULE[:OBJECT]",
              help="Host tools, as for run (repeatable); workers import the same module.")
@click.option("--tool-timeout", type=SECONDS, default=30.0, show_default=True,
              help="Seconds each tool call may take.")
@click.option("--goal", "goals", multiple=True, metavar="RELATION", help="Prune agents that cannot contribute to RELATION.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar on stderr.")
def batch(rules: tuple[str, ...], jobs_source: str, out: str, workers: int | None, cluster: str | None,
          relations: tuple[str, ...], partition_by: str | None, tables: tuple[str, ...], max_cycles: int | None,
          max_facts: int | None, max_steps: int | None, max_bytes: int | None, timeout: float | None,
          on_failure: str | None, goals: tuple[str, ...],
          tools: tuple[str, ...], tool_timeout: float, quiet: bool) -> None:
    """Run RULES over every job of a jobs source and write one result per job.

    Each result (id, tier, reasons, cycles, digest, facts of the chosen
    relations, diagnostics) is written as its job finishes; the final output
    is in job-id order and byte-identical whatever --workers or --cluster.
    A job that fails is recorded and never stops the others.
    """
    from ..api import load
    from ..batch.jobs import id_text, iter_jobs, jobs_from_jsonl
    from ..batch.runner import BatchSettings, run_unordered
    from ..batch.sinks import open_sink
    from ..diagnostics import ConvergeError
    from ..engine.loop import Budget

    if cluster and workers:
        raise click.UsageError("give --workers or --cluster, not both")
    if on_failure:
        from ..compile.program import FailurePolicy

        try:
            FailurePolicy.parse(on_failure)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--on-failure")
    host: dict[str, Any] = {}
    for spec in tools:  # each worker imports the module itself (a ToolRef pickles as its spec)
        host.update({name: ToolRef(spec, name) for name in load_tools(spec)})
    queries = table_queries(tables)
    if queries and not partition_by:
        raise click.UsageError("--table applies to a database of jobs (with --partition-by)")
    try:
        ruleset = load(list(rules))
        settings = BatchSettings.make(ruleset, list(relations) or None,
                                      Budget(max_cycles=max_cycles, max_facts=max_facts, max_steps=max_steps,
                                             max_bytes=max_bytes, timeout=timeout), on_failure, goals,
                                      host, tool_timeout)
        schema = ruleset.program.schema()
        jobs = iter_jobs(jobs_source, schema, partition_by, queries)
        if os.path.isfile(jobs_source):
            total: int | None = sum(1 for _ in jobs_from_jsonl(jobs_source))  # validates every line first
        else:
            jobs = list(jobs)  # type: ignore[assignment]
            total = len(jobs)  # type: ignore[arg-type]
        sink = open_sink(out, schema, settings.relations)
    except ConvergeError as err:
        _fail(err)
    done = {id_text(k): tier for k, tier in sink.done().items()}
    todo = (j for j in jobs if id_text(j.id) not in done)
    try:
        client = _cluster_client(cluster) if cluster else None
    except BaseException:  # E532 or a usage error: the sink is left as it was
        sink.close()
        raise
    bar = _Bar((total - len(done)) if total is not None else None,
               sys.stderr.isatty() and not quiet)
    tiers = dict(done)
    try:
        for _k, result in run_unordered(ruleset, todo, settings, workers=workers or (os.cpu_count() or 1),
                                        client=client):
            sink.add(result)
            tiers[id_text(result.id)] = result.tier
            bar.advance(result.tier)
        bar.close()
        sink.finish()
    except ConvergeError as err:
        bar.close()
        _fail(err)
    except KeyboardInterrupt:
        bar.close()
        kept = len(sink.done()) - len(done)
        OUT.print(f"interrupted: {kept} job(s) finished and kept; run the same command again to resume", err=True)
        sys.exit(130)
    finally:
        bar.close()
        sink.close()
        if client is not None:
            from ..batch.cluster import close_client

            close_client(client, owns_cluster=bool(cluster and cluster.startswith("local:")))
    counts = {t: 0 for t in EXIT_TIER}
    for tier in tiers.values():
        counts[tier] += 1
    ran = len(tiers) - len(done)
    OUT.print(f"{len(tiers)} job{'s' if len(tiers) != 1 else ''}: "
              + ", ".join(f"{n} {t}" for t, n in counts.items())
              + (f" ({len(done)} already done, {ran} run now)" if done else ""))
    OUT.print(f"wrote {out if '://' not in out else _label(out)}")
    worst = max((t for t, n in counts.items() if n), key=list(EXIT_TIER).index, default="converged")
    sys.exit(EXIT_TIER[worst])


def _label(url: str) -> str:
    from ..io.database import redact

    return redact(url)
