#!/usr/bin/env python3
"""Batch throughput: loan jobs per second through RuleSet.run_many, against a plain loop.

For each job count N (default 1,000 and 10,000 jobs of examples/batch/make_loan_jobs.py):

    loop       for job in jobs: rules.run(job.facts)      (one process, the baseline)
    workers=1  rules.run_many(jobs)                       (in this process)
    workers=2  rules.run_many(jobs, workers=2)            (a pool of two spawned processes)
    local:2    rules.run_many(jobs, client=Client(LocalCluster(2 processes)))

Each row prints wall time, jobs per second and the overhead per job against the
plain loop (wall time per job minus the loop's), for the whole call: pool or
cluster start-up included. Every mode must give the same digests, or the run aborts.

    python benchmarks/batch.py                 # 1,000 and 10,000 jobs
    python benchmarks/batch.py --jobs 2000 --no-dask
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # a script, not the library: run from a checkout


def _make_jobs(n: int) -> list[tuple[str, dict]]:
    spec = importlib.util.spec_from_file_location("make_loan_jobs", ROOT / "examples" / "batch" / "make_loan_jobs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return [(j["id"], j["facts"]) for j in module.make_jobs(n)]


def main() -> None:
    import converge_rules as cr

    parser = argparse.ArgumentParser(description="Batch throughput of converge (RuleSet.run_many).")
    parser.add_argument("--jobs", type=int, action="append", help="job count (repeatable; default 1000 and 10000)")
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask LocalCluster row")
    args = parser.parse_args()
    rules = cr.load(str(ROOT / "examples" / "loans" / "loans.cvg"))
    print(f"cpus: {os.cpu_count()}  python: {sys.version.split()[0]}")
    print(f"{'jobs':>7} {'mode':<10} {'seconds':>8} {'jobs/s':>8} {'overhead/job':>13}")
    for n in args.jobs or [1000, 10000]:
        jobs = _make_jobs(n)
        start = time.perf_counter()
        baseline = []
        for _id, facts in jobs:
            try:
                baseline.append(rules.run(facts).digest)
            except cr.ConvergeError:
                baseline.append(None)
        loop = time.perf_counter() - start
        print(f"{n:>7} {'loop':<10} {loop:>8.2f} {n / loop:>8.0f} {'-':>13}", flush=True)
        modes = [("workers=1", {}), ("workers=2", {"workers": 2})]
        client = None
        if not args.no_dask:
            from distributed import Client, LocalCluster

            modes.append(("local:2", {}))
        for name, kw in modes:
            start = time.perf_counter()
            if name == "local:2":
                import logging

                cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                       silence_logs=logging.ERROR)
                client = Client(cluster)
                kw = {"client": client}
            digests = [r.digest for r in rules.run_many(jobs, **kw)]
            took = time.perf_counter() - start
            if client is not None:
                client.close()
                cluster.close()
                client = None
            if digests != baseline:
                raise SystemExit(f"{name}: digests differ from the plain loop")
            overhead = (took - loop) / n * 1000
            print(f"{n:>7} {name:<10} {took:>8.2f} {n / took:>8.0f} {overhead:>10.2f} ms", flush=True)


if __name__ == "__main__":
    main()
