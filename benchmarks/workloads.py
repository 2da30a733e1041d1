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


def gen_exists(n: int, seed: int) -> Relations:
    """Small relations for the existence rule: n facts in d, h, i; n/2 in k, l; 6 in f."""
    del seed
    ints = lambda m: [(str(v),) for v in range(1, m + 1)]  # noqa: E731
    return {"d": ints(n), "h": ints(n), "i": ints(n), "k": ints(max(1, n // 2)), "l": ints(max(1, n // 2)),
            "f": [(str(v), str(v + 1)) for v in range(1, 7)]}


def gen_wide(n: int, seed: int) -> Relations:
    """n employees over 100 departments, sites and offices; badges, audits and
    trainings for most employees; a few blocked."""
    rng = random.Random(seed)
    emps = [f"e{i}" for i in range(n)]
    return {
        "emp": [(e, f"d{rng.randrange(100)}") for e in emps],
        "dept": [(f"d{k}", f"s{rng.randrange(100)}") for k in range(100)],
        "site": [(f"s{k}", f"r{k % 7}") for k in range(100)],
        "badge": [(e, f"b{k}") for k, e in enumerate(emps) if k % 10 != 3],
        "audit": [(e, f"y{2000 + k % 20}") for k, e in enumerate(emps) if k % 10 != 5],
        "holiday": [(f"h{k}",) for k in range(100)],
        "training": [(e, f"c{k % 30}") for k, e in enumerate(emps)],
        "blocked": [(e,) for k, e in enumerate(emps) if k % 10 == 7],
        "manager": [(f"m{k}", f"d{k}") for k in range(0, 100, 2)],
        "office": [(f"s{k}", f"o{j}") for k in range(100) for j in range(3) if k % 4 != 1],
    }


def gen_star(n: int, seed: int) -> Relations:
    """n sales over 100 products, 100 stores and 365 days."""
    rng = random.Random(seed)
    return {
        "sale": [(f"t{k}", f"p{rng.randrange(100)}", f"s{rng.randrange(100)}", f"d{rng.randrange(365)}")
                 for k in range(n)],
        "product": [(f"p{k}", f"cat{k % 12}") for k in range(100)],
        "store": [(f"s{k}", f"city{k % 20}") for k in range(100)],
        "day": [(f"d{k}", f"m{k // 31}") for k in range(365)],
    }


def gen_aggs(n: int, seed: int) -> Relations:
    """n sales over 100 shops (a few shops sell nothing)."""
    rng = random.Random(seed)
    return {
        "shop": [(f"s{k}",) for k in range(100)],
        "sold": [(f"t{k}", f"s{rng.randrange(95)}", str(rng.randrange(1, 1000))) for k in range(n)],
    }


# --------------------------------------------------------------------------
# workload table


@dataclass(frozen=True)
class Size:
    label: str                 # shown in the table, e.g. "1000" or "1000n/2000e"
    params: tuple[int, ...]    # positional arguments of the generator
    quick: bool = False        # a --quick size (small, seconds in total)
    engine_args: tuple[str, ...] = ()  # extra `converge run` options this size needs (a larger budget)


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
        # 2000 derives 1,999,000 facts: more than the default max_bytes (256 MiB counted) allows
        sizes=(Size("200", (200,)), Size("500", (500,)), Size("1000", (1000,)),
               Size("2000", (2000,), engine_args=("--max-bytes", str(1 << 30))),
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

# Wide rules: planning matters more than raw speed (each must stay under 0.5 s).
WIDE_WORKLOADS: tuple[Workload, ...] = (
    Workload(
        name="exists-rec", rules="exists.cvg", hand="exists.py", output="query",
        generator=gen_exists,
        sizes=(Size("100", (100,)), Size("20", (20,), quick=True)),
        expected=lambda p: p[0],
    ),
    Workload(
        name="wide-join", rules="wide.cvg", hand="wide.py", output="eligible",
        generator=gen_wide,
        sizes=(Size("10000", (10_000,)), Size("1000", (1_000,), quick=True)),
    ),
    Workload(
        name="star-join", rules="star.cvg", hand="star.py", output="report",
        generator=gen_star,
        sizes=(Size("10000", (10_000,)), Size("1000", (1_000,), quick=True)),
        expected=lambda p: p[0],
    ),
    Workload(
        name="three-aggregates", rules="aggs.cvg", hand="aggs.py", output="stats",
        generator=gen_aggs,
        sizes=(Size("10000", (10_000,)), Size("1000", (1_000,), quick=True)),
        expected=lambda p: 95,
    ),
)

WORKLOADS = WORKLOADS + WIDE_WORKLOADS

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
