#!/usr/bin/env python3
"""A benchmark program run by pyDatalog (a Datalog library for Python).

Usage: python benchmarks/peers/pydatalog_peer.py PROGRAM DATA_DIR
"""
from __future__ import annotations

import sys

from pyDatalog import pyDatalog

from programs import PROGRAMS, print_summary, read_facts


def main(program: str, data_dir: str) -> None:
    spec = PROGRAMS[program]
    counts: dict[str, int] = {}
    pyDatalog.create_terms("X, Y, Z, P, XP, YP")
    terms = list(spec["inputs"]) + list(spec["outputs"])
    pyDatalog.create_terms(", ".join(terms))
    for rel in spec["inputs"]:
        rows = read_facts(data_dir, rel)
        counts[rel] = len(rows)
        for row in rows:
            pyDatalog.assert_fact(rel, *row)
    rules = {
        "tc": "path(X,Y) <= edge(X,Y)\npath(X,Z) <= path(X,Y) & edge(Y,Z)",
        "sg": "sg(X,Y) <= parent(X,P) & parent(Y,P) & (X != Y)\nsg(X,Y) <= parent(X,XP) & sg(XP,YP) & parent(Y,YP)",
        "unreachable": "reach(X) <= source(X)\nreach(Y) <= reach(X) & edge(X,Y)\nunreachable(X) <= node(X) & ~reach(X)",
    }[program]
    pyDatalog.load(rules)
    for rel, arity in spec["outputs"].items():
        args = ", ".join(["X", "Y"][:arity])
        answer = pyDatalog.ask(f"{rel}({args})")
        counts[rel] = len(answer.answers) if answer else 0
    print_summary(counts)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
