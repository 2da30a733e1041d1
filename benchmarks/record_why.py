"""How fast is explaining a fact from a large decision record?

Builds a loans-like job with about 500,000 facts (inputs and derived facts),
runs it once, writes its record, then measures, each the median of --runs:

  write     Result.to_record() + atomic write of the canonical JSON
  open      open_record(path): read and parse the JSON, check its shape
  rebuild   compile the recorded rule texts and index the record (lazy)
  why       record.why(fact) for a fact deep in the data (the first explanation)
  why-more  the mean over 20 more facts
  query     record.query(pattern) with a constant, over a 125,000-fact relation
  cli-why   `converge why --record FILE FACT` end to end, as a new process
  cli-ver   `converge verify --record FILE --record-key KEY` end to end (--verify; slow: every proof)

    python benchmarks/record_why.py            # 500,000 facts
    python benchmarks/record_why.py --loans 20000 --runs 3   # a quick look
    python benchmarks/record_why.py --tc 1000  # transitive closure of a 1000-node chain: 500,499 facts,
                                               # mixed-width proofs (path from edge, or from path and edge)
    pip install . && python benchmarks/record_why.py --installed   # cli-why as a user's installation starts
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if "--installed" not in sys.argv:
    sys.path.insert(0, ROOT)

RULES = """
input relation applicant(id: str, income: int)
input relation loan(id: str, applicant: str, amount: int)
relation risk(loan: str, reason: str)
relation decision(loan: str, outcome: str)
relation decided(loan: str)

risk(l, "amount above 5x income") :- loan(l, a, amount), applicant(a, income), amount > 5 * income.
decision(l, "approve") :- loan(l, _, _), not risk(l, _).
decision(l, "reject") :- risk(l, _).
decided(l) :- decision(l, _).
"""

TC_RULES = """
input relation edge(a: str, b: str)
relation path(a: str, b: str)

path(x, y) :- edge(x, y).
path(x, z) :- path(x, y), edge(y, z).
"""


def median(fn, runs: int) -> tuple[float, object]:
    times, value = [], None
    for _ in range(runs):
        t = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loans", type=int, default=125_000, help="loans (4 facts each: ~500,000 facts)")
    parser.add_argument("--tc", type=int, metavar="NODES", help="instead of loans: transitive closure of a chain")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--verify", action="store_true", help="also time `converge verify --record-key` (slow)")
    parser.add_argument("--installed", action="store_true",
                        help="measure the converge installed in this Python, not this checkout (a new process then "
                             "starts from compiled modules, as a user's does, even with PYTHONDONTWRITEBYTECODE)")
    args = parser.parse_args()

    import converge_rules as cr

    n = args.tc or args.loans
    with tempfile.TemporaryDirectory(prefix="converge-record-bench-") as tmp:
        rules_path = os.path.join(tmp, "tc.cvg" if args.tc else "loans.cvg")
        with open(rules_path, "w") as handle:
            handle.write(TC_RULES if args.tc else RULES)
        ruleset = cr.load([rules_path])
        if args.tc:
            facts = {"edge": [[f"n{i}", f"n{i + 1}"] for i in range(n - 1)]}
            deep = f'path("n{n // 2}", "n{min(n // 2 + 50, n - 1)}")'  # a proof up to 50 levels deep, mid-data
            more = [f'path("n{(k * 379) % (n - 30)}", "n{(k * 379) % (n - 30) + 1 + k}")' for k in range(1, 21)]
            other = f'path("n{n // 2}", _)'
            label = f"{n:,}-node chain"
        else:
            applicants = [[f"a{i}", 1000 + (i * 37) % 5000] for i in range(n // 2)]
            loans = [[f"l{i}", f"a{i % (n // 2)}", 1000 + (i * 7919) % 30000] for i in range(n)]
            facts = {"applicant": applicants, "loan": loans}
            deep = f'decided("l{n - 1}")'
            more = [f'decided("l{(k * 6151) % n}")' for k in range(1, 21)]  # twenty more facts, spread over the data
            other = f'decision("l{n // 2}", _)'
            label = f"{n:,} loans"
        t = time.perf_counter()
        result = ruleset.run(facts, trace=True)
        run_time = time.perf_counter() - t
        record_path = os.path.join(tmp, "record.json")
        key_path = os.path.join(tmp, "record.key")
        with open(key_path, "w") as handle:
            handle.write("0123456789abcdef" * 4 + "\n")
        os.chmod(key_path, 0o600)
        write_time, _ = median(lambda: result.to_record().write(record_path), max(1, args.runs // 2))
        size = os.path.getsize(record_path)
        open_time, record = median(lambda: cr.open_record(record_path), args.runs)

        def rebuild_and_why() -> tuple[float, float, float, float]:
            rec = cr.open_record(record_path)
            t0 = time.perf_counter()
            rec.result
            t1 = time.perf_counter()
            tree = rec.why(deep)
            assert tree is not None
            t2 = time.perf_counter()
            for fact in more:
                assert rec.why(fact) is not None, fact
            t3 = time.perf_counter()
            rec.query(other)
            t4 = time.perf_counter()
            return t1 - t0, t2 - t1, (t3 - t2) / 20, t4 - t3

        parts = [rebuild_and_why() for _ in range(args.runs)]
        rebuild = statistics.median(p[0] for p in parts)
        why = statistics.median(p[1] for p in parts)
        why_more = statistics.median(p[2] for p in parts)
        nxt = statistics.median(p[3] for p in parts)
        env = dict(os.environ) if args.installed else \
            dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))

        def cli() -> None:
            proc = subprocess.run([sys.executable, "-m", "converge_rules", "why", "--record", record_path, deep],
                                  capture_output=True, text=True, env=env)
            assert proc.returncode == 0, proc.stderr

        cli_time, _ = median(cli, args.runs)
        verify_time = None
        if args.verify:
            result.to_record(key=cr.read_record_key(key_path)).write(record_path)

            def cli_verify() -> None:
                proc = subprocess.run([sys.executable, "-m", "converge_rules", "verify", "--record", record_path,
                                       "--record-key", key_path], capture_output=True, text=True, env=env)
                assert proc.returncode == 0, proc.stdout + proc.stderr

            verify_time, _ = median(cli_verify, max(1, args.runs // 2))
        print(f"facts: {result.total_facts:,} ({label}), run {run_time:.2f} s, record {size / 1e6:.1f} MB")
        print(f"write     {write_time * 1000:8.0f} ms")
        print(f"open      {open_time * 1000:8.0f} ms   (read + parse JSON + shape check)")
        print(f"rebuild   {rebuild * 1000:8.0f} ms   (compile recorded rules, lazy context)")
        print(f"why       {why * 1000:8.1f} ms   ({deep}, the first explanation)")
        print(f"why-more  {why_more * 1000:8.1f} ms   (each of 20 more facts)")
        print(f"query     {nxt * 1000:8.1f} ms   ({other} over a {len(record.facts(other.split('(')[0])):,}-fact relation)")
        print(f"cli-why   {cli_time * 1000:8.0f} ms   (converge why --record, a new process, end to end)")
        if verify_time is not None:
            print(f"cli-ver   {verify_time * 1000:8.0f} ms   (converge verify --record --record-key, end to end)")


if __name__ == "__main__":
    main()
