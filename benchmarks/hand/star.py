"""Hand-written baseline for rules/star.cvg (a star join).

Usage: python benchmarks/hand/star.py DATA_DIR
"""
import os
import sys


def read(data_dir, relation):
    with open(os.path.join(data_dir, relation + ".facts"), encoding="utf-8") as f:
        return [tuple(line.split("\t")) for line in f.read().splitlines()]


def index(rows):
    out = {}
    for k, v in rows:
        out.setdefault(k, []).append(v)
    return out


def main(data_dir):
    sale = read(data_dir, "sale")
    product, store, day = (index(read(data_dir, n)) for n in ("product", "store", "day"))
    out = set()
    for i, p, s, d in sale:
        for cat in product.get(p, ()):
            for city in store.get(s, ()):
                for m in day.get(d, ()):
                    out.add((i, cat, city, m))
    print("relations:")
    print(f"  sale: {len(set(sale))}")
    for n, idx in (("product", product), ("store", store), ("day", day)):
        print(f"  {n}: {sum(len(v) for v in idx.values())}")
    print(f"  report: {len(out)}")


if __name__ == "__main__":
    main(sys.argv[1])
