"""Hand-written baseline for rules/tc.cvg (transitive closure).

    path(x, y) :- edge(x, y).
    path(x, z) :- path(x, y), edge(y, z).

Semi-naive evaluation specialised to this one program: relations are sets of
tuples, edge is indexed by its first column, and each iteration joins only
the previous iteration's new paths (the delta) with edge.

Usage: python benchmarks/hand/tc.py DATA_DIR   (reads DATA_DIR/edge.facts)
"""
import os
import sys


def read_facts(data_dir, relation):
    with open(os.path.join(data_dir, relation + ".facts"), encoding="utf-8") as f:
        return {tuple(line.split("\t")) for line in f.read().splitlines()}


def closure(edge):
    """The semi-naive loop itself (also timed by benchmarks/kernels.py)."""
    succ = {}                       # edge indexed by a: a -> [b, ...]
    for a, b in edge:
        succ.setdefault(a, []).append(b)

    # path(x, y) :- edge(x, y).
    path = set(edge)
    delta = list(path)
    add = path.add
    # path(x, z) :- path(x, y), edge(y, z).   (path read as the delta)
    while delta:
        new = []
        append = new.append
        for x, y in delta:
            zs = succ.get(y)
            if zs:
                for z in zs:
                    t = (x, z)
                    if t not in path:
                        add(t)
                        append(t)
        delta = new
    return path


def main(data_dir):
    edge = read_facts(data_dir, "edge")

    path = closure(edge)

    print("relations:")
    print(f"  edge: {len(edge)}")
    print(f"  path: {len(path)}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: tc.py DATA_DIR")
    main(sys.argv[1])
