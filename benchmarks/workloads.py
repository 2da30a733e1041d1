"""Benchmark workloads: deterministic data generators and their metadata.

Every data set is produced from ``random.Random(seed)`` alone, so the same
workload + size always yields byte-identical ``.facts`` files.  Files are
Soufflé-style: one ``<relation>.facts`` per relation, one fact per line,
columns separated by a tab, no quoting.  Node ids are strings ``n<int>``.

A data directory is written to a temporary sibling and renamed into place,
so an interrupted generation never leaves a half-written directory behind;
an existing directory is reused as is.
"""
from __future__ import annotations

import os
import random
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = BENCH_DIR / "data"
RULES_DIR = BENCH_DIR / "rules"
HAND_DIR = BENCH_DIR / "hand"

SEED = 20240611

Relations = dict[str, list[tuple[str, ...]]]


def node(i: int) -> str:
    return f"n{i}"


# --------------------------------------------------------------------------
# generators: each returns {relation: [row, ...]} in a deterministic order


def gen_chain(n: int, seed: int) -> Relations:
    """edge(n_i, n_{i+1}) for a chain of n nodes (n - 1 edges)."""
    del seed  # no randomness
    return {"edge": [(node(i), node(i + 1)) for i in range(n - 1)]}


def _distinct_edges(rng: random.Random, n_nodes: int, n_edges: int,
                    seen: set[tuple[int, int]], out: list[tuple[int, int]]) -> None:
    """Append random distinct directed edges without self loops until
    ``len(out) == n_edges``.  ``seen`` mirrors ``out``; order is the order of
    generation (never set iteration order)."""
    while len(out) < n_edges:
        a = rng.randrange(n_nodes)
        b = rng.randrange(n_nodes)
        if a != b and (a, b) not in seen:
            seen.add((a, b))
            out.append((a, b))


def gen_random_graph(n_nodes: int, n_edges: int, seed: int) -> Relations:
    """n_edges distinct random directed edges over n_nodes, no self loops."""
    rng = random.Random(seed)
    seen: set[tuple[int, int]] = set()
    out: list[tuple[int, int]] = []
    _distinct_edges(rng, n_nodes, n_edges, seen, out)
    return {"edge": [(node(a), node(b)) for a, b in out]}


def gen_tree(n: int, seed: int) -> Relations:
    """Random recursive tree: the parent of node i (i >= 1) is uniform in
    [0, i).  Node 0 is the root and has no parent fact."""
    rng = random.Random(seed)
    return {"parent": [(node(i), node(rng.randrange(i))) for i in range(1, n)]}


def gen_negation(n_nodes: int, n_edges: int, seed: int,
                 source_fanout: int = 50) -> Relations:
    """A sparse random graph plus one well-connected source (node 0).

    Node 0 first gets ``source_fanout`` out-edges to distinct random nodes;
    the remaining edges are distinct random edges (no self loops) over all
    nodes, for ``n_edges`` edges in total.  ``node`` lists every node."""
    rng = random.Random(seed)
    seen: set[tuple[int, int]] = set()
    out: list[tuple[int, int]] = []
    fanout = min(source_fanout, n_nodes - 1, n_edges)
    for b in rng.sample(range(1, n_nodes), fanout):
        seen.add((0, b))
        out.append((0, b))
    _distinct_edges(rng, n_nodes, n_edges, seen, out)
    return {
        "node": [(node(i),) for i in range(n_nodes)],
        "edge": [(node(a), node(b)) for a, b in out],
        "source": [(node(0),)],
    }


# --------------------------------------------------------------------------
# workload table


@dataclass(frozen=True)
class Size:
    label: str                 # shown in the table, e.g. "1000" or "1000n/2000e"
    params: tuple[int, ...]    # positional arguments of the generator
    quick: bool = False        # a --quick size (small, seconds in total)


@dataclass(frozen=True)
class Workload:
    name: str
    rules: str                 # file name under rules/
    hand: str                  # file name under hand/
    output: str                # the relation whose count is "facts out"
    generator: Callable[..., Relations]
    sizes: tuple[Size, ...] = field(default_factory=tuple)
    expected: Callable[[tuple[int, ...]], int] | None = None  # known answer

    @property
    def rules_path(self) -> Path:
        return RULES_DIR / self.rules

    @property
    def hand_path(self) -> Path:
        return HAND_DIR / self.hand

    def sizes_for(self, quick: bool) -> list[Size]:
        return [s for s in self.sizes if s.quick == quick]

    def data_dir(self, size: Size) -> Path:
        tag = "-".join(str(p) for p in size.params)
        return DATA_DIR / f"{self.name}-{tag}-s{SEED}"

    def ensure_data(self, size: Size) -> Path:
        """Generate the data directory unless it already exists."""
        target = self.data_dir(size)
        if target.is_dir():
            return target
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        try:
            rels = self.generator(*size.params, SEED)
            for rel, rows in rels.items():
                with open(tmp / f"{rel}.facts", "w", encoding="utf-8",
                          newline="\n") as f:
                    f.writelines("\t".join(row) + "\n" for row in rows)
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if target.is_dir():   # another process won the race: fine
                return target
            raise
        return target


WORKLOADS: tuple[Workload, ...] = (
    Workload(
        name="tc-chain", rules="tc.cvg", hand="tc.py", output="path",
        generator=gen_chain,
        sizes=(Size("200", (200,)), Size("500", (500,)), Size("1000", (1000,)),
               Size("50", (50,), quick=True), Size("100", (100,), quick=True)),
        expected=lambda p: p[0] * (p[0] - 1) // 2,
    ),
    Workload(
        name="tc-random", rules="tc.cvg", hand="tc.py", output="path",
        generator=gen_random_graph,
        sizes=(Size("1000n/2000e", (1000, 2000)),
               Size("100n/200e", (100, 200), quick=True)),
    ),
    Workload(
        name="same-generation", rules="sg.cvg", hand="sg.py", output="sg",
        generator=gen_tree,
        sizes=(Size("2000", (2000,)), Size("200", (200,), quick=True)),
    ),
    Workload(
        name="negation", rules="unreachable.cvg", hand="unreachable.py",
        output="unreachable",
        generator=gen_negation,
        sizes=(Size("200000n/300000e", (200_000, 300_000)),
               Size("2000n/3000e", (2_000, 3_000), quick=True)),
    ),
)

BY_NAME = {w.name: w for w in WORKLOADS}


def _main(argv: list[str]) -> int:
    """python benchmarks/workloads.py            generate every data set
    python benchmarks/workloads.py NAME P...    generate one (sizes by params)"""
    if not argv:
        todo = [(w, s) for w in WORKLOADS for s in w.sizes]
    else:
        wl = BY_NAME.get(argv[0])
        if wl is None:
            print(f"unknown workload {argv[0]!r}", file=sys.stderr)
            return 2
        params = tuple(int(a) for a in argv[1:])
        matches = [s for s in wl.sizes if s.params == params]
        if not matches:
            print(f"{wl.name}: no size with params {params}", file=sys.stderr)
            return 2
        todo = [(wl, matches[0])]
    for wl, size in todo:
        print(wl.ensure_data(size))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
