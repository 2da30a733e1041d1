#!/usr/bin/env python3
"""A benchmark program run by clingo (the ASP system, through its Python package).

Usage: python benchmarks/peers/clingo_peer.py PROGRAM DATA_DIR
PROGRAM is tc, sg or unreachable. Input facts are added as ground facts; the
stratified programs are solved by grounding alone, and the count of each
output relation is the number of its atoms in the (single) answer set.
"""
from __future__ import annotations

import sys

import clingo

from programs import PROGRAMS, print_summary, read_facts


def main(program: str, data_dir: str) -> None:
    spec = PROGRAMS[program]
    parts = [spec["asp"]]
    counts: dict[str, int] = {}
    for rel in spec["inputs"]:
        rows = read_facts(data_dir, rel)
        counts[rel] = len(rows)
        parts.append("\n".join(f"{rel}(" + ",".join(f'"{v}"' for v in row) + ")." for row in rows))
    ctl = clingo.Control(["--warn=none"])
    ctl.add("base", [], "\n".join(parts))
    ctl.ground([("base", [])])
    shown: dict[str, int] = {}

    def on_model(model: clingo.Model) -> None:
        for rel, arity in spec["outputs"].items():
            shown[rel] = sum(1 for s in model.symbols(atoms=True) if s.name == rel and len(s.arguments) == arity)

    ctl.solve(on_model=on_model)
    counts.update(shown)
    print_summary(counts)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
