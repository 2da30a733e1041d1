"""Batch jobs on Dask distributed: a cluster at ``tcp://HOST:8786`` or a ``LocalCluster``.

The rule set travels to each worker once per batch run, inside a worker plugin
registered under a name of its own (the program's digest and the run); each task
looks it up on its worker. So a worker unpickles the checked program once, never
per job, and several rule sets and runs can share one cluster. The plugin is
unregistered when the run ends (finished, failed or abandoned): a long-lived
cluster does not keep every rule set it has ever run.
"""

from __future__ import annotations

import hashlib
import pickle
from typing import TYPE_CHECKING, Any, Iterator

from distributed import WorkerPlugin, as_completed, get_worker

from .jobs import Job
from .runner import CHUNK, BatchSettings, JobResult, execute, worker_died

if TYPE_CHECKING:
    from ..api import RuleSet

__all__ = ["RulesPlugin", "run_on_dask", "local_client", "connect_client", "close_client"]


class RulesPlugin(WorkerPlugin):
    """Carries a rule set to every worker of a cluster (present and future)."""

    def __init__(self, ruleset: "RuleSet", name: str):
        self.ruleset = ruleset
        self.name = name

    def setup(self, worker: Any) -> None:  # nothing to do: unpickling the plugin loaded the rules
        pass


def _task(jobs: list[Job], settings: BatchSettings, plugin: str) -> list[JobResult]:
    ruleset = get_worker().plugins[plugin].ruleset
    return [execute(ruleset, job, settings) for job in jobs]




def run_on_dask(client: Any, ruleset: "RuleSet", jobs: Iterator[Job],
                settings: BatchSettings) -> Iterator[tuple[int, JobResult]]:
    """``(position, result)`` per job, as the cluster finishes them (in chunks of ``CHUNK`` jobs)."""
    import uuid

    run = uuid.uuid4().hex[:12]  # plugin and task keys unique per batch run; they never reach an output
    name = "converge-rules-" + hashlib.sha256(pickle.dumps(ruleset)).hexdigest()[:16] + "-" + run
    client.register_plugin(RulesPlugin(ruleset, name), name=name)
    try:
        yield from _run_chunks(client, jobs, settings, name, run)
    finally:
        try:
            client.unregister_worker_plugin(name)
        except Exception:  # pragma: no cover - a cluster already gone keeps nothing
            pass


def _run_chunks(client: Any, jobs: Iterator[Job], settings: BatchSettings, name: str,
                run: str) -> Iterator[tuple[int, JobResult]]:
    import itertools

    workers = max(1, len(client.scheduler_info().get("workers", {})))
    window = 4 * workers  # chunks in flight
    first: dict[str, int] = {}
    chunks: dict[str, list[Any]] = {}  # task key -> its jobs' ids, to name them if the task's workers die
    queue = as_completed()
    k = 0

    def submit() -> bool:
        nonlocal k
        chunk = list(itertools.islice(jobs, CHUNK))
        if not chunk:
            return False
        fut = client.submit(_task, chunk, settings, name, pure=False, key=f"converge-jobs-{run}-{k}")
        first[fut.key] = k
        chunks[fut.key] = [job.id for job in chunk]
        queue.add(fut)
        k += len(chunk)
        return True

    for _ in range(window):
        if not submit():
            break
    from distributed import KilledWorker

    for fut in queue:
        try:
            results = fut.result()
        except KilledWorker:
            raise worker_died(chunks[fut.key], " (on every Dask worker that was given them)") from None
        at = first.pop(fut.key)
        del chunks[fut.key]
        fut.release()
        submit()
        for offset, result in enumerate(results):
            yield at + offset, result


def local_client(workers: int, processes: bool = True) -> Any:
    """A ``Client`` on a new ``LocalCluster`` of ``workers`` single-threaded workers (no dashboard)."""
    import logging

    from distributed import Client, LocalCluster

    # CRITICAL: a worker death is reported once, as E533, not also as the scheduler's own log line
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes, dashboard_address=None,
                           silence_logs=logging.CRITICAL)
    return Client(cluster)


def close_client(client: Any, owns_cluster: bool, settle: float = 15.0) -> None:
    """Close ``client``, and its ``LocalCluster`` too when this process started it.

    A worker that died (E533) is being restarted by its nanny; closing the cluster while the new
    worker starts makes that worker process print a Dask traceback on its way out. So a cluster
    we own is first given up to ``settle`` seconds to have all its workers back.
    """
    cluster = getattr(client, "cluster", None) if owns_cluster else None
    if cluster is not None:
        try:
            client.wait_for_workers(len(cluster.workers), timeout=settle)
        except Exception:  # noqa: BLE001 - a worker that does not come back is closed all the same
            pass
    client.close()
    if cluster is not None:
        cluster.close()


def connect_client(address: str, timeout: float = 10.0) -> Any:
    """A ``Client`` of the scheduler at ``address`` (``tcp://HOST:8786``)."""
    from distributed import Client

    return Client(address, timeout=timeout)
