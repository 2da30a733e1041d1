"""The benchmark programs written for the peers (clingo, pyDatalog).

Each entry gives the rules in the peer's syntax, the relations read from the
data directory (with their arity) and the relations whose counts are printed.
The rules are the same programs as ``benchmarks/rules/*.cvg``.
"""
from __future__ import annotations

import os

PROGRAMS = {
    "tc": {
        "inputs": {"edge": 2},
        "outputs": {"path": 2},
        "asp": """
path(X,Y) :- edge(X,Y).
path(X,Z) :- path(X,Y), edge(Y,Z).
""",
    },
    "sg": {
        "inputs": {"parent": 2},
        "outputs": {"sg": 2},
        "asp": """
sg(X,Y) :- parent(X,P), parent(Y,P), X != Y.
sg(X,Y) :- parent(X,XP), sg(XP,YP), parent(Y,YP).
""",
    },
    "unreachable": {
        "inputs": {"node": 1, "edge": 2, "source": 1},
        "outputs": {"reach": 1, "unreachable": 1},
        "asp": """
reach(X) :- source(X).
reach(Y) :- reach(X), edge(X,Y).
unreachable(X) :- node(X), not reach(X).
""",
    },
}


def read_facts(data_dir: str, relation: str) -> list[tuple[str, ...]]:
    """Rows of DATA_DIR/<relation>.facts (tab-separated, no quoting)."""
    with open(os.path.join(data_dir, relation + ".facts"), encoding="utf-8") as f:
        return [tuple(line.split("\t")) for line in f.read().splitlines()]


def print_summary(counts: dict[str, int]) -> None:
    """The `relations:` block that benchmarks/run.py compares."""
    print("relations:")
    for name in sorted(counts):
        print(f"  {name}: {counts[name]}")
