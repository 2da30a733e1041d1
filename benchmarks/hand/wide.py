"""Hand-written baseline for rules/wide.cvg (one wide rule, existence atoms).

Usage: python benchmarks/hand/wide.py DATA_DIR
"""
import os
import sys

NAMES = ("emp", "dept", "site", "badge", "audit", "holiday", "training", "blocked", "manager", "office")


def read(data_dir, relation):
    with open(os.path.join(data_dir, relation + ".facts"), encoding="utf-8") as f:
        return [tuple(line.split("\t")) for line in f.read().splitlines()]


def main(data_dir):
    rel = {n: read(data_dir, n) for n in NAMES}
    dept = {}
    for d, s in rel["dept"]:
        dept.setdefault(d, []).append(s)
    site = {}
    for s, r in rel["site"]:
        site.setdefault(s, []).append(r)
    badge = {e for e, _ in rel["badge"]}
    audit = {e for e, _ in rel["audit"]}
    blocked = {e for (e,) in rel["blocked"]}
    managed = {d for _, d in rel["manager"]}
    office = {s for s, _ in rel["office"]}
    out = set()
    if rel["holiday"] and rel["training"]:
        for e, d in rel["emp"]:
            if e in badge and e in audit and e not in blocked and d in managed:
                for s in dept.get(d, ()):
                    if s in office:
                        for r in site.get(s, ()):
                            out.add((e, r))
    print("relations:")
    for n in NAMES:
        print(f"  {n}: {len(set(rel[n]))}")
    print(f"  eligible: {len(out)}")


if __name__ == "__main__":
    main(sys.argv[1])
