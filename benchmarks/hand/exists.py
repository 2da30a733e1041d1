"""Hand-written baseline for rules/exists.cvg (existence checks under recursion).

    e(0). e(h1) :- e(x), x < 100, h1 = x + 1.
    c(x, y, z) :- a(), e(x), f(y, z).
    query(x) :- a(), b(), c(_, _, _), d(_), e(_), f(_, _), not g(_), h(_), i(x), k(_), l(_).

Usage: python benchmarks/hand/exists.py DATA_DIR
"""
import os
import sys


def read(data_dir, relation):
    with open(os.path.join(data_dir, relation + ".facts"), encoding="utf-8") as f:
        return [tuple(int(v) for v in line.split("\t")) for line in f.read().splitlines()]


def main(data_dir):
    rel = {name: set(read(data_dir, name)) for name in ("d", "f", "h", "i", "k", "l")}
    e = set(range(101))
    c = {(x, y, z) for x in e for (y, z) in rel["f"]}
    query = set()
    if c and all(rel[n] for n in ("d", "f", "h", "k", "l")) and e:
        query = {x for (x,) in rel["i"]}
    print("relations:")
    print("  a: 1")
    print("  b: 1")
    print(f"  c: {len(c)}")
    for name in ("d",):
        print(f"  {name}: {len(rel[name])}")
    print(f"  e: {len(e)}")
    print(f"  f: {len(rel['f'])}")
    print("  g: 0")
    for name in ("h", "i", "k", "l"):
        print(f"  {name}: {len(rel[name])}")
    print(f"  query: {len(query)}")


if __name__ == "__main__":
    main(sys.argv[1])
