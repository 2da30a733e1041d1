"""Generate loan jobs for `converge batch` (deterministic: the same N and seed give the same bytes).

    python examples/batch/make_loan_jobs.py 1000 > jobs.jsonl
    python examples/batch/make_loan_jobs.py 1000 --sqlite jobs.db   # tables applicant, loan with a case_id column

Each job is one case: one to three applicants and one to four loans each, for
examples/loans/loans.cvg. About one job in fifty has a loan with a negative amount
and one in a hundred a malformed income ("n/a"), so some jobs fail or get rejected.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys


def make_jobs(n: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    jobs = []
    for k in range(1, n + 1):
        case = f"c{k:06d}"
        applicants, loans = [], []
        for a in range(rng.randint(1, 3)):
            aid = f"{case}-a{a}"
            income: object = rng.randrange(1000, 9000, 100)
            if rng.random() < 0.01:
                income = "n/a"
            applicants.append([aid, income])
            for m in range(rng.randint(1, 4)):
                amount = rng.randrange(500, 40000, 500)
                if rng.random() < 0.02:
                    amount = -amount
                loans.append({"id": f"{aid}-l{m}", "applicant": aid, "amount": amount})
        jobs.append({"id": case, "facts": {"applicant": applicants, "loan": loans}})
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sqlite", metavar="PATH", help="write a database partitioned by case_id instead")
    args = parser.parse_args()
    jobs = make_jobs(args.n, args.seed)
    if args.sqlite:
        conn = sqlite3.connect(args.sqlite)
        conn.execute("CREATE TABLE applicant (case_id TEXT, id TEXT PRIMARY KEY, income)")
        conn.execute("CREATE TABLE loan (case_id TEXT, id TEXT PRIMARY KEY, applicant TEXT, amount INTEGER)")
        for job in jobs:
            conn.executemany("INSERT INTO applicant VALUES (?, ?, ?)", [(job["id"], a, i) for a, i in job["facts"]["applicant"]])
            conn.executemany("INSERT INTO loan VALUES (?, ?, ?, ?)",
                             [(job["id"], l["id"], l["applicant"], l["amount"]) for l in job["facts"]["loan"]])
        conn.commit()
        conn.close()
        return
    out = sys.stdout
    for job in jobs:
        out.write(json.dumps(job, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
