"""Hand-written baseline for rules/unreachable.cvg (reachability + negation).

    reach(x) :- source(x).
    reach(y) :- reach(x), edge(x, y).
    unreachable(x) :- node(x), not reach(x).

Stratum 1 is semi-naive reachability (edge indexed by its first column, a
delta list per iteration); stratum 2 is a set difference once reach is
complete.  Unary relations are sets of plain strings.

Usage: python benchmarks/hand/unreachable.py DATA_DIR
       (reads node.facts, edge.facts and source.facts from DATA_DIR)
"""
import os
import sys


def read_lines(data_dir, relation):
    with open(os.path.join(data_dir, relation + ".facts"), encoding="utf-8") as f:
        return f.read().splitlines()


def main(data_dir):
    node = set(read_lines(data_dir, "node"))
    source = set(read_lines(data_dir, "source"))
    edge = {tuple(line.split("\t")) for line in read_lines(data_dir, "edge")}

    succ = {}                       # edge indexed by a: a -> [b, ...]
    for a, b in edge:
        succ.setdefault(a, []).append(b)

    # reach(x) :- source(x).
    reach = set(source)
    delta = list(reach)
    add = reach.add
    # reach(y) :- reach(x), edge(x, y).   (reach read as the delta)
    while delta:
        new = []
        append = new.append
        for x in delta:
            ys = succ.get(x)
            if ys:
                for y in ys:
                    if y not in reach:
                        add(y)
                        append(y)
        delta = new

    # unreachable(x) :- node(x), not reach(x).
    unreachable = node - reach

    print("relations:")
    print(f"  edge: {len(edge)}")
    print(f"  node: {len(node)}")
    print(f"  reach: {len(reach)}")
    print(f"  source: {len(source)}")
    print(f"  unreachable: {len(unreachable)}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: unreachable.py DATA_DIR")
    main(sys.argv[1])
