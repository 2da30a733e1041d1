"""Running many jobs: in this process, on a process pool, or on a Dask cluster.

The rule set is sent to each worker once (it pickles as its checked program)
and every job runs there with ``execute``, which never raises: a job whose
facts are invalid, whose run fails, or that breaks in an unexpected way gives
a ``JobResult`` with tier ``failed`` and its diagnostics. At most a few jobs per
worker are in flight, so memory stays bounded whatever the number of jobs.

``run_unordered`` yields ``(position, JobResult)`` as jobs finish;
``run_ordered`` yields results in the jobs' order (``RuleSet.run_many``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

from ..values import dumps_json
from .jobs import Job

if TYPE_CHECKING:
    from ..api import RuleSet
    from ..engine.loop import Budget

__all__ = ["BatchSettings", "JobResult", "execute", "run_ordered", "run_unordered", "as_job"]

TIERS = ("converged", "degraded", "bounded", "failed")


@dataclass(frozen=True)
class BatchSettings:
    """What every job of a batch shares besides the rules."""

    relations: tuple[str, ...]
    budget: "Budget | None" = None
    on_failure: str | None = None
    goals: tuple[str, ...] = ()
    tools: tuple[tuple[str, Any], ...] = ()  # (name, callable): picklable (module-level) for pools and clusters
    tool_timeout: float | None = 30.0

    @classmethod
    def make(cls, ruleset: "RuleSet", relations: Sequence[str] | None, budget: "Budget | None" = None,
             on_failure: str | None = None, goals: Sequence[str] = (), tools: Any = None,
             tool_timeout: float | None = 30.0) -> "BatchSettings":
        from ..diagnostics import ConvergeError, Diagnostic, Span
        from ..engine.tools import tool_table

        tools = tool_table(tools)
        names = ruleset.relations
        if relations is None:
            chosen = tuple(n for n in names if not ruleset.program.relations[n].is_input)
        else:
            unknown = [r for r in relations if r not in ruleset.program.relations]
            if unknown:
                raise ConvergeError([Diagnostic("E200", f"undefined relation {unknown[0]!r} in --relation",
                                                Span("<batch>", 0, 0), notes=("relations: " + ", ".join(names),))])
            chosen = tuple(dict.fromkeys(relations))
        missing = [(name, span) for name, span in ruleset.tool_names() if name not in (tools or {})]
        if missing:  # every job would fail the same way: say it once, before any runs
            raise ConvergeError([Diagnostic("E220", f"unknown tool {name!r}: the rules call it but no tool of that name was given",
                                            span, notes=("converge batch --tools module:object, or run_many(tools={...})",))
                                 for name, span in missing])
        return cls(chosen, budget, on_failure, tuple(goals), tuple(sorted((tools or {}).items())), tool_timeout)


@dataclass(frozen=True)
class JobResult:
    """The outcome of one batch job, as written to the batch's output."""

    id: str | int
    tier: str
    reasons: list[dict[str, Any]]
    cycles: int
    digest: str | None
    facts: dict[str, list[list[Any]]] = field(default_factory=dict)
    diagnostics: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "tier": self.tier, "reasons": self.reasons, "cycles": self.cycles,
                "digest": self.digest, "facts": self.facts, "diagnostics": self.diagnostics}

    def line(self) -> str:
        """One JSON Lines record, byte-identical for identical jobs."""
        return dumps_json(self.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "JobResult":
        return cls(data["id"], data["tier"], data.get("reasons", []), data.get("cycles", 0), data.get("digest"),
                   data.get("facts", {}), data.get("diagnostics", []))


def as_job(item: Any) -> Job:
    """A ``Job``, or an ``(id, facts)`` pair as a job."""
    if isinstance(item, Job):
        return item
    if isinstance(item, tuple) and len(item) == 2:
        return Job(item[0], facts=item[1])
    raise TypeError(f"a job is a batch.Job or an (id, facts) pair, not {type(item).__name__}")


def execute(ruleset: "RuleSet", job: Job, settings: BatchSettings) -> JobResult:
    """Run one job; never raises (failures become a ``failed`` result with diagnostics)."""
    from ..diagnostics import ConvergeError

    try:
        facts: Any = job.facts
        if job.tables is not None:
            from ..io.database import convert_tables

            facts = convert_tables(job.tables, ruleset.program.schema(), job.source)
        elif facts is not None and not isinstance(facts, Mapping):
            from ..diagnostics import Diagnostic, Span

            raise ConvergeError([Diagnostic("E501", "a job's facts are an object: relation -> list of facts, "
                                            f"not {type(facts).__name__}", Span("<job>", 0, 0))])
        result = ruleset.run(facts or None, fact_files=list(job.fact_files), budget=settings.budget, workers=1,
                             on_failure=settings.on_failure, goals=list(settings.goals), tools=dict(settings.tools),
                             tool_timeout=settings.tool_timeout)
    except ConvergeError as err:
        n = sum(1 for d in err.diagnostics if d.is_error)
        diagnostics = [_locate(d, job) for d in err.diagnostics]
        return JobResult(job.id, "failed", [{"kind": "invalid_input",
                                             "message": f"{n} error{'s' if n != 1 else ''} in the job's input"}],
                         0, None, {}, diagnostics)
    except Exception as err:  # a bug or a resource error in this job alone: recorded, never fatal
        return JobResult(job.id, "failed", [{"kind": "error", "message": f"{type(err).__name__}: {err}"}], 0, None)
    return JobResult(job.id, result.tier.value, [r.to_json() for r in result.reasons], result.cycles, result.digest,
                     {n: [list(f) for f in result.facts(n)] for n in settings.relations})


def _locate(diagnostic: Any, job: Job) -> dict[str, Any]:
    """A diagnostic as JSON; problems in a JSON Lines job's facts point at its line of the jobs file."""
    out = diagnostic.to_json()
    if job.line and diagnostic.span.file in ("<api>", "<job>"):
        out["span"] = {"file": job.source, "line": job.line, "col": 1, "end_line": job.line, "end_col": 1}
    return out


# ------------------------------------------------------------------ process pool workers

_POOL_RULES: "RuleSet | None" = None  # set only inside pool worker processes, by _init_pool


def _init_pool(ruleset: "RuleSet") -> None:
    """In each worker process: keep the rule set; leave Ctrl-C to the batch process, which stops the
    pool; and end with the batch process when it ends without stopping the pool (SIGTERM, SIGKILL,
    out of memory), instead of waiting for work forever."""
    import signal

    global _POOL_RULES
    _POOL_RULES = ruleset
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_parent()


def _exit_with_parent() -> None:
    """A daemon thread that ends this (pool worker) process once its parent is gone: a worker
    of a ``ProcessPoolExecutor`` whose parent was killed otherwise waits for work forever, holding
    the parent's inherited pipes (a caller reading them would hang too)."""
    import multiprocessing
    import threading
    from multiprocessing.connection import wait

    parent = multiprocessing.parent_process()
    sentinel = getattr(parent, "sentinel", None)
    if sentinel is None:  # pragma: no cover - not a spawned child
        return

    def watch() -> None:
        wait([sentinel])  # readable (end of file) when the parent process is gone
        os._exit(1)

    threading.Thread(target=watch, name="converge-batch-parent", daemon=True).start()


def _pool_task(jobs: list[Job], settings: BatchSettings) -> list[JobResult]:
    assert _POOL_RULES is not None
    return [execute(_POOL_RULES, job, settings) for job in jobs]


CHUNK = 16  # jobs per task: one round trip to a worker costs about as much as a small job


def _pool_context() -> Any:
    """``spawn`` everywhere: a fork of a process with threads (Dask, rich) may deadlock."""
    import multiprocessing

    return multiprocessing.get_context("spawn")


# ------------------------------------------------------------------ executors

def run_unordered(ruleset: "RuleSet", jobs: Iterable[Any], settings: BatchSettings, *, workers: int = 1,
                  client: Any = None) -> Iterator[tuple[int, JobResult]]:
    """``(position, result)`` per job, as jobs finish."""
    items = (as_job(j) for j in jobs)
    if client is not None:
        from .cluster import run_on_dask

        yield from run_on_dask(client, ruleset, items, settings)
    elif workers <= 1:
        for k, job in enumerate(items):
            yield k, execute(ruleset, job, settings)
    else:
        yield from _run_pool(ruleset, items, settings, workers)


def _run_pool(ruleset: "RuleSet", jobs: Iterator[Job], settings: BatchSettings,
              workers: int) -> Iterator[tuple[int, JobResult]]:
    import itertools
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from concurrent.futures.process import BrokenProcessPool

    window = 2 * workers  # chunks in flight
    with ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context(), initializer=_init_pool,
                             initargs=(ruleset,)) as pool:
        pending: dict[Any, int] = {}
        ids: dict[Any, list[Any]] = {}  # the job ids of each chunk in flight, to name them if a worker dies
        k = 0
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < window:
                    chunk = list(itertools.islice(jobs, CHUNK))
                    if not chunk:
                        exhausted = True
                        break
                    fut = pool.submit(_pool_task, chunk, settings)
                    pending[fut] = k
                    ids[fut] = [job.id for job in chunk]
                    k += len(chunk)
                if not pending:
                    return
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=pending.__getitem__):
                    try:
                        results = fut.result()
                    except BrokenProcessPool:
                        raise worker_died([i for f in sorted(pending, key=pending.__getitem__) for i in ids[f]],
                                          "") from None
                    first = pending.pop(fut)
                    del ids[fut]
                    for offset, result in enumerate(results):
                        yield first + offset, result
        finally:
            for fut in pending:
                fut.cancel()


def worker_died(job_ids: Sequence[Any], how: str = "") -> Exception:
    """``E533``: a worker process died (killed, out of memory, or a job's tool ended it) while it ran these jobs.

    The batch stops (jobs finished so far are kept by the sink; rerunning resumes). Which of the jobs in
    flight killed it is unknown: they are named (the first and last few), so a job that kills every worker can be found."""
    from ..diagnostics import ConvergeError, Diagnostic, Span

    names = [dumps_json(i) for i in job_ids]
    shown = ", ".join(names) if len(names) <= 6 else ", ".join(names[:3] + ["...", *names[-2:]]) + f" ({len(names)} jobs)"
    return ConvergeError([Diagnostic(
        "E533", f"a worker process died{how} while running job{'s' if len(job_ids) != 1 else ''} {shown}: "
                "the batch stops",
        Span("<batch>", 0, 0),
        notes=("jobs finished so far are kept: run the same command again to resume",
               "if it dies again on these jobs, one of them ends its worker (memory: try --max-bytes; "
               "a tool that exits the process)"))])


def run_ordered(ruleset: "RuleSet", jobs: Iterable[Any], settings: BatchSettings, *, workers: int = 1,
                client: Any = None) -> Iterator[JobResult]:
    """Results in the jobs' order (finished results wait for earlier ones; the window bounds them)."""
    waiting: dict[int, JobResult] = {}
    following = 0
    for k, result in run_unordered(ruleset, jobs, settings, workers=workers, client=client):
        waiting[k] = result
        while following in waiting:
            yield waiting.pop(following)
            following += 1
