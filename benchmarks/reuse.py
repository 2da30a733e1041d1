"""Per-decision time of RuleSet.run with and without reuse of plans and compiled code.

    python benchmarks/reuse.py [--runs N]

Runs the loan example N times on one RuleSet (reuse: the second run on skips
planning and code generation) and N times with the rule set's code cache
turned off (every run plans, generates and compiles again, as before reuse),
and prints the median milliseconds per run of each.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import converge_rules as cr  # noqa: E402

RULES = ROOT / "examples" / "loans" / "loans.cvg"
FACTS = ROOT / "examples" / "loans" / "facts.json"


def median_ms(rs: cr.RuleSet, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        rs.run(fact_files=[str(FACTS)])
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=200)
    args = p.parse_args()
    reused = cr.load([str(RULES)])
    reused.run(fact_files=[str(FACTS)])  # the first run fills the cache
    fresh = cr.load([str(RULES)])
    fresh._code_cache = None  # type: ignore[assignment]  # no reuse: plan, generate and compile every run
    with_reuse, without = median_ms(reused, args.runs), median_ms(fresh, args.runs)
    print(f"loans, median of {args.runs} runs: {without:.2f} ms without reuse, {with_reuse:.2f} ms with reuse "
          f"({without / with_reuse:.1f}x)")


if __name__ == "__main__":
    main()
