"""How fast can CPython evaluate the large workloads at all? A study of join kernels.

`run.py` compares the engine with a hand-written loop per program. This script
asks the question under that one: how close to the hand loop can *any*
evaluation strategy written in CPython get, and what does each piece of the
engine's per-fact work cost? It runs, in one child process each (so peak
memory is per variant), the semi-naive evaluation of `tc` (tc-chain 1000,
tc-random) and `sg` (same-generation 2000) in several forms:

- ``hand``: the loop of ``hand/tc.py`` / ``hand/sg.py`` itself (imported; gc on, as there);
- ``engine-loop``: the loop the engine generates for the recursive rule (full
  proof record, the ``max_bytes`` count, the effect-buffer check, a dict store
  merged once per cycle), gc off as the CLI runs it;
- ``no-byte-count``, ``shared-proof``, ``no-buffer-check``, ``none-of-the-3``: the
  same without the byte count, with one shared per-cycle proof record instead of
  a tuple per fact, without the buffer check, and without all three;
- set-at-a-time pipelines with one shared proof record per cycle (the
  premises would be rebuilt when explaining): ``zip-extend`` (a Python loop per
  delta fact, C per candidate), ``map-product`` (C loops end to end over
  ``map``/``itertools.product``/``filterfalse``/``dict.fromkeys``), and for tc
  ``functional-probe`` (a pure C pipeline, valid only when every join key has
  one match, as on a chain: a floor for this data, not a general strategy).

Every variant must give the hand loop's count. Usage::

    python benchmarks/kernels.py             # median of 3 runs per variant
    python benchmarks/kernels.py --runs 5
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import time
from itertools import chain, compress, filterfalse, product, repeat, starmap
from operator import itemgetter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from workloads import BY_NAME  # noqa: E402

g0, g1 = itemgetter(0), itemgetter(1)


def read(data_dir: str, relation: str) -> list[tuple[str, ...]]:
    with open(os.path.join(data_dir, relation + ".facts"), encoding="utf-8") as f:
        return sorted({tuple(line.split("\t")) for line in f.read().splitlines()})


# ---------------------------------------------------------------- tc: path(x, z) :- path(x, y), edge(y, z).

def _hand(name: str):
    """A hand loop module of hand/ (its loop is a function: the very code run.py times)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"hand_{name}", os.path.join(os.path.dirname(os.path.abspath(__file__)), "hand", name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tc_hand(edge):
    return len(_hand("tc").closure(edge))


_TC_ENGINE = '''
def run(edge):
    idx = {{}}
    for t in edge:
        idx.setdefault(t[0], []).append(t)
    path = dict.fromkeys(edge, (-1, 0))
    delta = list(path)
    C = 0
    Z = [0, 1 << 40]
    while delta:
        C += 1
        B0 = {{}}
        for t0 in delta:
            v_x, v_y = t0
            for t1 in idx.get(v_y, ()):
                v_z = t1[1]
                f = (v_x, v_z)
                if f not in path{buffer}:
                    B0[f] = {proof}
{count}
        path.update(B0)
        delta = list(B0)
    return len(path)
'''

_COUNT = "                    Z[0] += 192 + len(v_x) + len(v_z)\n                    if Z[0] > Z[1]:\n                        raise MemoryError\n"


def _engine_variant(template: str, count: str, *, bytes_: bool, proof: bool, buffer: bool):
    src = template.format(buffer=" and f not in B0" if buffer else "",
                          proof="(1, C, t0, t1)" if proof else "(1, C)",
                          count=count if bytes_ else "")
    ns: dict = {}
    exec(compile(src, "<variant>", "exec"), ns)
    return ns["run"]


def tc_zip_extend(edge):
    succ = {}
    for a, b in edge:
        succ.setdefault(a, []).append(b)
    path = dict.fromkeys(edge, (-1, 0))
    delta = list(path)
    c = 0
    while delta:
        c += 1
        cand = []
        extend, get = cand.extend, succ.get
        for x, y in delta:
            zs = get(y)
            if zs:
                extend(zip(repeat(x), zs))
        new = dict.fromkeys(filterfalse(path.__contains__, cand), (1, c))
        path.update(new)
        delta = list(new)
    return len(path)


def tc_map_product(edge):
    succ = {}
    for a, b in edge:
        succ.setdefault(a, []).append(b)
    path = dict.fromkeys(edge, (-1, 0))
    delta = list(path)
    c = 0
    while delta:
        c += 1
        buckets = map(succ.get, map(g1, delta), repeat(()))
        cand = chain.from_iterable(map(product, zip(map(g0, delta)), buckets))
        new = dict.fromkeys(filterfalse(path.__contains__, cand), (1, c))
        path.update(new)
        delta = list(new)
    return len(path)


def tc_functional_probe(edge):
    succ = {}
    for a, b in edge:
        succ.setdefault(a, []).append(b)
    if any(len(v) != 1 for v in succ.values()):
        return None  # not applicable: some key has several matches
    one = {k: v[0] for k, v in succ.items()}
    path = dict.fromkeys(edge, (-1, 0))
    delta = list(path)
    c = 0
    while delta:
        c += 1
        ys = list(map(g1, delta))
        cand = compress(zip(map(g0, delta), map(one.get, ys)), map(one.__contains__, ys))
        new = dict.fromkeys(filterfalse(path.__contains__, cand), (1, c))
        path.update(new)
        delta = list(new)
    return len(path)


# ---------------------------------------------------------------- sg: sg(x, y) :- parent(x, xp), sg(xp, yp), parent(y, yp).

def sg_hand(parent):
    return len(_hand("sg").same_generation(parent))


_SG_ENGINE = '''
def run(parent):
    idx = {{}}
    for t in parent:
        idx.setdefault(t[1], []).append(t)
    sg = {{}}
    B0 = {{}}
    for t0 in parent:
        v_x, v_p = t0
        for t1 in idx.get(v_p, ()):
            v_y = t1[0]
            if v_x != v_y:
                f = (v_x, v_y)
                if f not in sg and f not in B0:
                    B0[f] = (0, 1, t0, t1)
    sg.update(B0)
    delta = list(B0)
    C = 1
    Z = [0, 1 << 40]
    while delta:
        C += 1
        B0 = {{}}
        for t1 in delta:
            v_xp, v_yp = t1
            for t0 in idx.get(v_xp, ()):
                v_x = t0[0]
                for t2 in idx.get(v_yp, ()):
                    v_y = t2[0]
                    f = (v_x, v_y)
                    if f not in sg{buffer}:
                        B0[f] = {proof}
{count}
        sg.update(B0)
        delta = list(B0)
    return len(sg)
'''

_SG_COUNT = _COUNT.replace("v_x) + len(v_z)", "v_x) + len(v_y)").replace("                    ", "                        ")


def sg_map_product(parent):
    kids = {}
    for c, p in parent:
        kids.setdefault(p, []).append(c)
    cand = []
    for cs in kids.values():
        cand.extend(product(cs, cs))
    sg = dict.fromkeys((t for t in cand if t[0] != t[1]), (0, 1))
    delta = list(sg)
    c = 1
    while delta:
        c += 1
        get = kids.get
        cand = chain.from_iterable(starmap(product, zip(map(get, map(g0, delta), repeat(())),
                                                         map(get, map(g1, delta), repeat(())))))
        new = dict.fromkeys(filterfalse(sg.__contains__, cand), (1, c))
        sg.update(new)
        delta = list(new)
    return len(sg)


def _variants():
    tc = {"hand": tc_hand}
    sg = {"hand": sg_hand}
    sg_proof = "(1, C, t0, t1, t2)"
    for name, kw in (("engine-loop", {}), ("no-byte-count", {"bytes_": False}), ("shared-proof", {"proof": False}),
                     ("no-buffer-check", {"buffer": False}), ("none-of-the-3", {"bytes_": False, "proof": False, "buffer": False})):
        opts = {"bytes_": True, "proof": True, "buffer": True, **kw}
        tc[name] = _engine_variant(_TC_ENGINE, _COUNT, **opts)
        sg[name] = _engine_variant(_SG_ENGINE.replace("{proof}", sg_proof if opts["proof"] else "(1, C)")
                                   .replace("{buffer}", "{buffer}"), _SG_COUNT, **opts)
    tc.update({"zip-extend": tc_zip_extend, "map-product": tc_map_product, "functional-probe": tc_functional_probe})
    sg.update({"map-product": sg_map_product})
    return {"tc-chain": ("edge", tc), "tc-random": ("edge", tc), "same-generation": ("parent", sg)}


SIZES = {"tc-chain": "1000", "tc-random": "1000n/2000e", "same-generation": "2000"}  # the sizes of the README table


def _size(workload: str):
    return next(s for s in BY_NAME[workload].sizes if s.label == SIZES[workload])


def _one(workload: str, variant: str) -> None:
    """Child: load, time one variant, print 'seconds count'."""
    relation, table = _variants()[workload]
    data = str(BY_NAME[workload].ensure_data(_size(workload)))
    facts = read(data, relation)
    if variant != "hand":
        gc.disable()  # as the engine's CLI runs a job
    t = time.perf_counter()
    count = table[variant](facts)
    print(f"{time.perf_counter() - t:.6f} {count}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="runs per variant; the median is shown (default 3)")
    ap.add_argument("--one", nargs=2, metavar=("WORKLOAD", "VARIANT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        _one(*args.one)
        return 0
    print(f"{'workload':16} {'size':12} {'variant':17} {'facts':>8} {'median s':>9} {'vs hand':>8} {'peak MB':>8}")
    for workload, (_rel, table) in _variants().items():
        size = _size(workload)
        BY_NAME[workload].ensure_data(size)
        hand_s = None
        expected = None
        for variant in table:
            times, peak, count = [], 0, None
            for _ in range(args.runs):
                proc = subprocess.Popen([sys.executable, __file__, "--one", workload, variant], stdout=subprocess.PIPE, text=True)
                out = proc.stdout.read()
                _pid, status, usage = os.wait4(proc.pid, 0)
                proc.stdout.close()
                if status != 0:
                    raise SystemExit(f"{workload} {variant}: the child failed ({status})")
                secs, count = out.split()
                times.append(float(secs))
                peak = max(peak, usage.ru_maxrss / 1024)
            med = statistics.median(times)
            if count == "None":
                print(f"{workload:16} {size.label:12} {variant:17} {'n/a':>8}")
                continue
            if variant == "hand":
                hand_s, expected = med, count
            elif count != expected:
                raise SystemExit(f"{workload} {variant}: {count} facts, the hand loop has {expected}")
            print(f"{workload:16} {size.label:12} {variant:17} {int(count):>8,} {med:>9.3f} {med / hand_s:>7.2f}x {peak:>8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
