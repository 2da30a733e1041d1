"""Hand-written baseline for rules/aggs.cvg (three aggregates per group).

Usage: python benchmarks/hand/aggs.py DATA_DIR
"""
import os
import sys


def read(data_dir, relation):
    with open(os.path.join(data_dir, relation + ".facts"), encoding="utf-8") as f:
        return [tuple(line.split("\t")) for line in f.read().splitlines()]


def main(data_dir):
    shops = {s for (s,) in read(data_dir, "shop")}
    sold = {(i, s, int(a)) for i, s, a in read(data_dir, "sold")}
    groups = {}
    for _i, s, a in sold:
        groups.setdefault(s, []).append(a)
    stats = set()
    for s in shops:
        amounts = groups.get(s, [])
        if amounts:  # max over an empty group has no value: no stats fact
            stats.add((s, len(amounts), sum(amounts), max(amounts)))
    print("relations:")
    print(f"  shop: {len(shops)}")
    print(f"  sold: {len(sold)}")
    print(f"  stats: {len(stats)}")


if __name__ == "__main__":
    main(sys.argv[1])
