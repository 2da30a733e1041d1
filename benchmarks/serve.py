#!/usr/bin/env python3
"""Benchmark `converge serve`: decisions per second and p50/p99 latency.

Starts `python -m converge_rules serve examples/loans/loans.cvg` as a child
process on a free loopback port, once per store (SQLite in a temporary
directory; PostgreSQL when --postgres URL or $CONVERGE_TEST_POSTGRES is
given), and drives POST /v1/decisions from 1, 8 and 32 concurrent clients
(threads with one keep-alive httpx client each). Each request carries a
different small loan book (4 facts). Latency is measured per request on the
client side; throughput is successful decisions over the wall time of the
phase. Every 200 is durable (committed to the store before the answer).

    python benchmarks/serve.py                        # SQLite (+ PostgreSQL from the env)
    python benchmarks/serve.py --requests 400 --clients 1,8,32 --json benchmarks/out/serve.json
    python benchmarks/serve.py --postgres postgresql://converge:converge@127.0.0.1:5432/converge_test
    python benchmarks/serve.py --server-args '--concurrency 2'
    python benchmarks/serve.py --keys     # every request with an Idempotency-Key, then a phase of retries

With --keys each request carries its own ``Idempotency-Key`` (one lookup and a
unique index more per decision), and a last phase sends the first phase's
requests again with their keys: each is answered from the log
(``Idempotent-Replayed: true``) without a new decision.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
RULES = str(ROOT / "examples" / "loans" / "loans.cvg")


def facts(k: int) -> dict[str, Any]:
    return {"applicant": [[f"a{k}", 1000 + 250 * (k % 7)], [f"b{k}", 2000]],
            "loan": [[f"l{k}", f"a{k}", 1000 * (k % 9)], [f"m{k}", f"b{k}", 9000 + k]]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(store: str, extra: list[str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "converge_rules", "serve", RULES, "--store", store, "--port",
                             str(port), "--no-access-log", *extra], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read()}")  # type: ignore[union-attr]
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


def server_time(url: str) -> tuple[float, float]:
    """(sum of seconds, count) of the service's own decision latency histogram."""
    total = count = 0.0
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith("converge_decision_seconds_sum "):
            total = float(line.split()[1])
        elif line.startswith("converge_decision_seconds_count "):
            count = float(line.split()[1])
    return total, count


def phase(url: str, clients: int, requests: int, offset: int, keys: bool = False,
          replay: bool = False) -> dict[str, Any]:
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    counter = iter(range(offset, offset + requests))

    def work() -> None:
        with httpx.Client(base_url=url, timeout=120) as c:
            while True:
                with lock:
                    k = next(counter, None)
                if k is None:
                    return
                headers = {"Idempotency-Key": f"bench-{k}"} if keys else {}
                t = time.perf_counter()
                r = c.post("/v1/decisions", json={"facts": facts(k)}, headers=headers)
                dt = time.perf_counter() - t
                replayed = r.headers.get("idempotent-replayed") == "true"
                with lock:
                    if r.status_code == 200 and replayed == replay:
                        latencies.append(dt)
                    else:
                        failures[0] += 1

    threads = [threading.Thread(target=work) for _ in range(clients)]
    before = server_time(url)
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    after = server_time(url)
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(round(p * (len(latencies) - 1))))] * 1000

    return {"clients": clients, "requests": requests, "ok": len(latencies), "failed": failures[0],
            "seconds": round(wall, 3), "decisions_per_s": round(len(latencies) / wall, 1),
            "p50_ms": round(pct(0.50), 1), "p99_ms": round(pct(0.99), 1),
            "mean_ms": round(statistics.fmean(latencies) * 1000, 1) if latencies else None,
            # inside the service, from its own histogram: read, run, store, answer (no queueing in the client)
            # (None for retries: answered from the log, they make no decision)
            "server_mean_ms": (round((after[0] - before[0]) / (after[1] - before[1]) * 1000, 1)
                               if after[1] > before[1] else None)}


def bench(name: str, store: str, clients: list[int], requests: int, warmup: int,
          extra: list[str], keys: bool = False) -> list[dict[str, Any]]:
    proc, url = start(store, extra)
    try:
        phase(url, 4, warmup, 10_000_000, keys)
        rows = []
        plan = [(n, i * requests, False) for i, n in enumerate(clients)]
        if keys:
            plan.append((clients[0], 0, True))  # the first phase's requests again: retries
        for n, offset, replay in plan:
            row = {"store": name, "keys": keys, "replay": replay, **phase(url, n, requests, offset, keys, replay)}
            label = "retries" if replay else ("keyed" if keys else "")
            print(f"{name:<10} {label:<7} {row['clients']:>3} clients  {row['decisions_per_s']:>7} answers/s  "
                  f"p50 {row['p50_ms']:>7} ms  p99 {row['p99_ms']:>7} ms  server mean {row['server_mean_ms'] if row['server_mean_ms'] is not None else '-':>6} ms  "
                  f"({row['ok']} ok, {row['failed']} failed)",
                  flush=True)
            rows.append(row)
        return rows
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", default="1,8,32", help="comma-separated concurrency levels")
    ap.add_argument("--requests", type=int, default=300, help="requests per concurrency level")
    ap.add_argument("--warmup", type=int, default=40)
    ap.add_argument("--postgres", default=os.environ.get("CONVERGE_TEST_POSTGRES"), help="PostgreSQL URL (optional)")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "out" / "serve.json"))
    ap.add_argument("--server-args", default="", help="extra options for converge serve, e.g. '--concurrency 2'")
    ap.add_argument("--keys", action="store_true", help="send an Idempotency-Key with every request, then retry them")
    args = ap.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    extra = args.server_args.split()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results += bench("sqlite", f"sqlite:///{tmp}/bench.db", clients, args.requests, args.warmup, extra, args.keys)
    if args.postgres:
        import psycopg

        schema = "bench_" + uuid.uuid4().hex[:8]
        url = args.postgres + ("&" if "?" in args.postgres else "?") + f"schema={schema}"
        try:
            results += bench("postgresql", url, clients, args.requests, args.warmup, extra, args.keys)
        finally:
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"cpus": os.cpu_count(), "python": sys.version.split()[0], "results": results},
                              indent=2) + "\n")
    print(f"results: {out}")


if __name__ == "__main__":
    main()
