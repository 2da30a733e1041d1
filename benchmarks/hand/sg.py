"""Hand-written baseline for rules/sg.cvg (same generation).

    sg(x, y) :- parent(x, p), parent(y, p), x != y.
    sg(x, y) :- parent(x, xp), sg(xp, yp), parent(y, yp).

Semi-naive evaluation specialised to this one program: relations are sets of
tuples, parent is indexed by its second column (parent -> children), and each
iteration joins only the previous iteration's new sg facts (the delta).

Usage: python benchmarks/hand/sg.py DATA_DIR   (reads DATA_DIR/parent.facts)
"""
import os
import sys


def read_facts(data_dir, relation):
    with open(os.path.join(data_dir, relation + ".facts"), encoding="utf-8") as f:
        return {tuple(line.split("\t")) for line in f.read().splitlines()}


def same_generation(parent):
    """The semi-naive loop itself (also timed by benchmarks/kernels.py)."""
    kids = {}                       # parent indexed by p: p -> [child, ...]
    for c, p in parent:
        kids.setdefault(p, []).append(c)

    sg = set()
    add = sg.add
    # sg(x, y) :- parent(x, p), parent(y, p), x != y.
    delta = []
    append = delta.append
    for cs in kids.values():
        for x in cs:
            for y in cs:
                if x != y:
                    t = (x, y)
                    if t not in sg:
                        add(t)
                        append(t)
    # sg(x, y) :- parent(x, xp), sg(xp, yp), parent(y, yp).   (sg as delta)
    while delta:
        new = []
        append = new.append
        for xp, yp in delta:
            xs = kids.get(xp)
            if xs:
                ys = kids.get(yp)
                if ys:
                    for x in xs:
                        for y in ys:
                            t = (x, y)
                            if t not in sg:
                                add(t)
                                append(t)
        delta = new
    return sg


def main(data_dir):
    parent = read_facts(data_dir, "parent")

    sg = same_generation(parent)

    print("relations:")
    print(f"  parent: {len(parent)}")
    print(f"  sg: {len(sg)}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: sg.py DATA_DIR")
    main(sys.argv[1])
