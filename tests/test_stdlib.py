"""The standard library (stdlib_rules/std/): its examples through the Python API, its own test
blocks through `converge test`, and its relations against plain-Python reference implementations
on generated inputs."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections import deque
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import converge_rules as cr
from converge_rules.engine.loop import Tier
from converge_rules.lint import check_file

ROOT = Path(__file__).resolve().parent.parent
STD = ROOT / "stdlib_rules" / "std"
EXAMPLES = ROOT / "examples" / "stdlib"
MODULES = ["access", "graph", "intervals", "validate"]
SETTINGS = settings(max_examples=int(os.environ.get("CVG_EXAMPLES", "60")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def run(name: str) -> cr.Result:
    return cr.load([str(EXAMPLES / name)]).run()


def acceptance_names(result: cr.Result) -> list[str]:
    return sorted(v["invariant"] for r in result.reasons if r.kind == "acceptance" for v in r.details["violations"])


# ------------------------------------------------------------------ modules and examples exist

def test_every_module_is_documented_and_has_an_example() -> None:
    doc = (ROOT / "docs" / "stdlib.md").read_text(encoding="utf-8")
    for module in MODULES:
        text = (STD / f"{module}.cvg").read_text(encoding="utf-8")
        assert text.startswith(f"# std.{module}:"), module
        assert f"module {module}\n" in text
        assert 'test "' in text
        assert f"import std.{module}\n" in (EXAMPLES / f"{module}_example.cvg").read_text(encoding="utf-8")
        assert f"## std.{module}" in doc


def test_modules_check_clean() -> None:
    """Checked alone, a module's importer-filled relations are empty: the W201/W300/W301 warnings
    that says so are suppressed inline, so `converge check` reports nothing at all."""
    for module in MODULES:
        diags = check_file(str(STD / f"{module}.cvg"))
        assert diags == [], (module, [d.message for d in diags])
    for example in sorted(EXAMPLES.glob("*.cvg")):
        diags = check_file(str(example))
        assert diags == [], (example.name, [d.message for d in diags])


# ------------------------------------------------------------------ `converge test stdlib_rules/`

def test_converge_test_runs_every_module_test_block() -> None:
    out = subprocess.run([sys.executable, "-m", "converge_rules", "test", "stdlib_rules/", "--coverage"], cwd=ROOT,
                         capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert not [line for line in lines if line.startswith(("FAIL", "ERROR"))]
    for module in MODULES:
        assert any(line.startswith(f"PASS  stdlib_rules/std/{module}.cvg::") for line in lines), module
    assert "  total: 31/31 agents (100.0%)" in lines  # every rule of every module fires in some test
    assert lines[-1].endswith("(32 tests in 4 files)") and " passed" in lines[-1]


# ------------------------------------------------------------------ std.graph

def test_graph_example() -> None:
    r = run("graph_example.cvg")
    assert r.tier == Tier.CONVERGED
    assert r.facts("circular") == [("auth",), ("session",)]
    assert r.facts("entry_point") == [("cron",), ("web",)]
    assert r.facts("foundation") == [("db",), ("static",)]
    assert r.facts("same_cluster") == [("auth", "session")]
    assert r.holds("needs", ("web", "session")) and not r.holds("needs", ("db", "web"))
    assert r.holds("graph.hops", ("web", "session", 3))
    assert r.holds("graph.hops", ("web", "db", 2))  # web -> api -> db, not web -> api -> auth -> db
    assert not r.holds("graph.hops", ("web", "db", 3))
    assert r.holds("graph.hops", ("auth", "auth", 2))  # round the auth <-> session cycle
    assert len(r.facts("graph.node")) == 7
    assert r.facts("graph.distance") == r.facts("graph.hops")
    assert r.holds("indirect", ("web", "session", 3)) and not r.holds("indirect", ("web", "api", 1))


LATE_SHORTCUT = """
import std.graph
input relation step(a: str, b: str)
relation chain(a: str, b: str)
relation copied(a: str, b: str, n: int)
relation far(a: str, b: str, n: int)
step("s0", "s1"). step("s1", "s2"). step("s2", "s3"). step("s3", "s4").
chain(a, b) :- step(a, b).
chain(a, c) :- chain(a, b), step(b, c).
graph.edge("a", "b").
graph.edge("b", "c").
graph.edge("a", "c") :- chain("s0", "s4").
copied(a, b, n) :- graph.hops(a, b, n).
far(a, b, n) :- graph.distance(a, b, n), n > 1.
"""


def test_distance_is_final_when_hops_is_superseded(tmp_path: Path) -> None:
    """An edge the importer derives late supersedes a longer hop count: a rule copying graph.hops
    keeps the stale count (what W401 warns about), graph.distance never sees it."""
    path = tmp_path / "late_shortcut.cvg"
    path.write_text(LATE_SHORTCUT, encoding="utf-8")
    assert [(d.code, d.span.line) for d in check_file(str(path))] == [("W401", 13)]  # copied#1 only
    r = cr.load([str(path)]).run()
    assert r.tier == Tier.CONVERGED
    assert r.facts("graph.hops") == [("a", "b", 1), ("a", "c", 1), ("b", "c", 1)]
    assert [(old, new) for old, new, _ in r.superseded("graph.hops")] == [(("a", "c", 2), ("a", "c", 1))]
    assert ("a", "c", 2) in r.facts("copied")  # stale
    assert r.facts("graph.distance") == r.facts("graph.hops")
    assert r.facts("far") == []


def bfs_hops(edges: set[tuple[str, str]], nodes: list[str]) -> set[tuple[str, str, int]]:
    """Least number of edges (at least one) on a path between each pair."""
    out: set[tuple[str, str, int]] = set()
    succ = {n: sorted(b for a, b in edges if a == n) for n in nodes}
    for start in nodes:
        dist: dict[str, int] = {}
        queue = deque((nxt, 1) for nxt in succ[start])
        while queue:
            n, d = queue.popleft()
            if n in dist:
                continue
            dist[n] = d
            queue.extend((nxt, d + 1) for nxt in succ[n] if nxt not in dist)
        out |= {(start, n, d) for n, d in dist.items()}
    return out


@SETTINGS
@given(st.sets(st.tuples(st.sampled_from("abcdef"), st.sampled_from("abcdef")), max_size=14),
       st.sets(st.sampled_from("abcdefgh"), max_size=2))
def test_graph_relations_match_a_reference(edges: set[tuple[str, str]], extra: set[str]) -> None:
    r = cr.load([str(STD / "graph.cvg")]).run(facts={"edge": sorted(edges), "node": [(n,) for n in sorted(extra)]})
    assert r.tier == Tier.CONVERGED
    nodes = sorted({a for a, _ in edges} | {b for _, b in edges} | extra)
    hops = bfs_hops(edges, nodes)
    reach = {(a, b) for a, b, _ in hops}
    assert set(r.facts("node")) == {(n,) for n in nodes}
    assert set(r.facts("hops")) == hops
    assert set(r.facts("distance")) == hops
    assert set(r.facts("reach")) == reach
    assert set(r.facts("on_cycle")) == {(n,) for n in nodes if (n, n) in reach}
    assert set(r.facts("scc_pair")) == {(a, b) for a, b in reach if a != b and (b, a) in reach}
    assert set(r.facts("leaf")) == {(n,) for n in nodes if not any(a == n for a, _ in edges)}
    assert set(r.facts("root")) == {(n,) for n in nodes if not any(b == n for _, b in edges)}


# ------------------------------------------------------------------ std.access

def test_access_example_converges_with_a_waived_violation() -> None:
    r = run("access_example.cvg")
    assert r.tier == Tier.CONVERGED
    assert r.facts("sod_finding") == [("dana", "create_payment", "approve_payment")]
    assert r.facts("access.waiver") == [("dana", "create_payment", "approve_payment")]
    assert r.facts("dual_role") == [("dana",)]
    # permissions flow up the hierarchy: staff -> clerk -> head_of_finance
    assert r.holds("may", ("dana", "read_ledger")) and r.holds("may", ("dana", "set_limits"))
    assert r.holds("access.role_of", ("dana", "staff"))
    assert r.holds("access.role_can", ("head_of_finance", "approve_payment"))
    assert not r.holds("may", ("ann", "approve_payment"))
    assert not r.holds("may", ("carl", "approve_payment"))  # so no export/approve conflict either
    assert r.facts("access.role_cycle") == []


def test_access_violation_fails_on_separation_of_duty() -> None:
    r = run("access_violation.cvg")
    assert r.tier == Tier.FAILED
    assert acceptance_names(r) == ["access.separation_of_duty"]
    [violation] = r.reasons[0].details["violations"]
    assert violation["matches"][0]["bindings"] == {"a": "create_payment", "b": "approve_payment", "u": "dana"}
    assert r.facts("sod_finding") == [("dana", "create_payment", "approve_payment")]


def test_access_report_only_turns_the_failure_into_a_report() -> None:
    text = (EXAMPLES / "access_violation.cvg").read_text(encoding="utf-8") + "\naccess.report_only().\n"
    r = cr.load_text(text, str(EXAMPLES / "report_only.cvg")).run()
    assert r.tier == Tier.CONVERGED
    assert r.facts("access.violation") == [("dana", "create_payment", "approve_payment")]


def transitive(pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    closure = set(pairs)
    while True:
        more = {(a, d) for a, b in closure for c, d in pairs if b == c} - closure
        if not more:
            return closure
        closure |= more


@SETTINGS
@given(st.sets(st.tuples(st.sampled_from("uv"), st.sampled_from("rstw")), max_size=4),
       st.sets(st.tuples(st.sampled_from("rstw"), st.sampled_from("rstw")), max_size=5),
       st.sets(st.tuples(st.sampled_from("rstw"), st.sampled_from("pqx")), max_size=5),
       st.sets(st.tuples(st.sampled_from("pqx"), st.sampled_from("pqx")), max_size=3),
       st.sets(st.tuples(st.sampled_from("uv"), st.sampled_from("pqx"), st.sampled_from("pqx")), max_size=2),
       st.booleans())
def test_access_relations_match_a_reference(assigned: set, inherits: set, grant: set, conflict: set,
                                            waiver: set, report_only: bool) -> None:
    """Every relation of std.access, and whether the run fails, as docs/stdlib.md defines them."""
    facts = {"assigned": sorted(assigned), "inherits": sorted(inherits), "grant": sorted(grant),
             "conflict": sorted(conflict), "waiver": sorted(waiver), "report_only": [()] if report_only else []}
    r = cr.load([str(STD / "access.cvg")]).run(facts=facts)
    includes = transitive(inherits)
    role_of = assigned | {(u, p) for u, role in assigned for r2, p in includes if r2 == role}
    role_can = grant | {(role, p) for role, q in includes for q2, p in grant if q == q2}
    can = {(u, p) for u, role in role_of for r2, p in role_can if r2 == role}
    violation = {(u, a, b) for a, b in conflict if a != b for u in "uv" if (u, a) in can and (u, b) in can}
    assert set(r.facts("role_includes")) == includes
    assert set(r.facts("role_cycle")) == {(a,) for a, b in includes if a == b}
    assert set(r.facts("role_of")) == role_of
    assert set(r.facts("role_can")) == role_can
    assert set(r.facts("can")) == can
    assert set(r.facts("violation")) == violation
    unwaived = {(u, a, b) for u, a, b in violation if (u, a, b) not in waiver and (u, b, a) not in waiver}
    assert r.tier == (Tier.FAILED if unwaived and not report_only else Tier.CONVERGED)


# ------------------------------------------------------------------ std.intervals

def test_intervals_example() -> None:
    r = run("intervals_example.cvg")
    assert r.tier == Tier.CONVERGED
    assert r.facts("double_booked") == [("design", "lunch_talk"), ("design", "review")]
    assert r.facts("inside") == [("lunch_talk", "design")]
    assert r.facts("free_slot") == [(13, 15)]  # 16-17 touches 15-16: no slot between them
    assert r.facts("bad_booking") == [("typo",)]
    assert not r.holds("double_booked", ("review", "standup"))  # 9-10 and 10-12 only touch
    assert r.facts("intervals.gap") == [("design", "one_on_one", 13, 15), ("lunch_talk", "one_on_one", 13, 15)]


def reference_intervals(ivs: list[tuple[str, int, int]]) -> dict[str, set]:
    good = [(i, lo, hi) for i, lo, hi in ivs if lo < hi]
    points = {x for _, lo, hi in good for x in range(lo, hi)}
    holes = set()
    if points:
        x, top = min(points), max(points)
        while x <= top:
            if x in points:
                x += 1
                continue
            start = x
            while x not in points:
                x += 1
            holes.add((start, x))
    pairs = [(a, b) for a, b in itertools.product(good, good) if a[0] != b[0]]
    return {
        "malformed": {(i,) for i, lo, hi in ivs if lo >= hi},
        "overlaps": {(a[0], b[0]) for a, b in pairs if set(range(a[1], a[2])) & set(range(b[1], b[2]))},
        "encloses": {(a[0], b[0]) for a, b in pairs if set(range(b[1], b[2])) <= set(range(a[1], a[2]))},
        "hole": holes,
        "gap": {(a[0], b[0], lo, hi) for lo, hi in holes for a in good for b in good if a[2] == lo and b[1] == hi},
    }


@SETTINGS
@given(st.lists(st.tuples(st.integers(-3, 12), st.integers(-3, 12)), max_size=7))
def test_interval_relations_match_a_point_set_reference(bounds: list[tuple[int, int]]) -> None:
    ivs = [(f"i{k}", lo, hi) for k, (lo, hi) in enumerate(bounds)]
    r = cr.load([str(STD / "intervals.cvg")]).run(facts={"interval": ivs})
    assert r.tier == Tier.CONVERGED
    for relation, expected in reference_intervals(ivs).items():
        assert set(r.facts(relation)) == expected, relation


SAME_ID_PIECES = """import std.intervals
intervals.interval("x", 1, 2).
intervals.interval("x", 5, 6).
intervals.interval("x", 3, 4).
intervals.interval("x", 9, 7).
"""


def test_intervals_pieces_with_one_id_leave_holes_but_are_not_related(tmp_path: Path) -> None:
    """docs/stdlib.md: overlaps/encloses never relate two facts with the same id, but holes do not
    depend on ids (gap names the id on both sides), and malformed is about the one bad fact."""
    r = cr.load_text(SAME_ID_PIECES, str(tmp_path / "pieces.cvg")).run()
    assert r.tier == Tier.CONVERGED
    assert r.facts("intervals.overlaps") == r.facts("intervals.encloses") == []
    assert r.facts("intervals.hole") == [(2, 3), (4, 5)]
    assert r.facts("intervals.gap") == [("x", "x", 2, 3), ("x", "x", 4, 5)]
    assert r.facts("intervals.malformed") == [("x",)]
    assert r.count("intervals.well_formed") == 3
    path = tmp_path / "pieces.cvg"
    path.write_text(SAME_ID_PIECES, encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "converge_rules", "query", str(path), "intervals.gap(a, b, lo, hi)"],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines() == ['intervals.gap("x", "x", 2, 3)', 'intervals.gap("x", "x", 4, 5)']


# ------------------------------------------------------------------ std.validate

def test_validate_example_reports_without_failing() -> None:
    r = run("validate_example.cvg")
    assert r.tier == Tier.CONVERGED
    assert r.facts("validate.missing") == [("c2", "email")]
    assert r.facts("validate.duplicate") == [("customer", "ann@example.com", "c1", "c3")]
    assert r.facts("validate.dangling") == [("o2", "c9")]
    assert r.facts("problem") == [("c2", "missing email"), ("c3", "same customer key as c1"),
                                  ("o2", "refers to unknown c9")]
    assert not r.holds("validate.missing", ("c2", "name"))


def test_validate_acceptance_fails_on_every_check() -> None:
    r = run("validate_acceptance.cvg")
    assert r.tier == Tier.FAILED
    assert acceptance_names(r) == ["no_dangling", "no_missing", "unique_email"]


def test_validate_acceptance_passes_on_clean_data() -> None:
    text = (EXAMPLES / "validate_acceptance.cvg").read_text(encoding="utf-8")
    text = (text.replace('email("c3", "ann@example.com").', 'email("c3", "cid@example.com").\nemail("c2", "bob@example.com").')
                .replace('order("o2", "c9", 80).', 'order("o2", "c2", 80).'))
    r = cr.load_text(text, str(EXAMPLES / "clean.cvg")).run()
    assert r.tier == Tier.CONVERGED, r.reasons
    assert r.count("validate.missing") == r.count("validate.duplicate") == r.count("validate.dangling") == 0


@SETTINGS
@given(st.sets(st.tuples(st.sampled_from(["e1", "e2", "e3"]), st.sampled_from("kl")), max_size=4),
       st.sets(st.tuples(st.sampled_from("kl"), st.sampled_from("mn")), max_size=3),
       st.sets(st.tuples(st.sampled_from(["e1", "e2", "e4"]), st.sampled_from("mn"), st.sampled_from(["", "v"])), max_size=5),
       st.sets(st.tuples(st.sampled_from("kl"), st.sampled_from(["e1", "e2", "e3"]), st.sampled_from(["", "v", "w"])), max_size=5),
       st.sets(st.tuples(st.sampled_from(["e1", "e2"]), st.sampled_from(["e1", "e3", "e5"])), max_size=4))
def test_validate_relations_match_a_reference(entity: set, required: set, attr: set, keyed: set, ref: set) -> None:
    """Every check of std.validate as docs/stdlib.md defines it; the module itself fails nothing."""
    facts = {"entity": sorted(entity), "required": sorted(required), "attr": sorted(attr),
             "keyed": sorted(keyed), "ref": sorted(ref)}
    r = cr.load([str(STD / "validate.cvg")]).run(facts=facts)
    assert r.tier == Tier.CONVERGED
    has = {(i, a) for i, a, _ in attr}  # "" counts as present
    ids = {i for i, _ in entity}
    assert set(r.facts("has_attr")) == has
    assert set(r.facts("missing")) == {(i, a) for i, k in entity for k2, a in required if k == k2 and (i, a) not in has}
    assert set(r.facts("duplicate")) == {(k, v, i1, i2) for k, i1, v in keyed for k2, i2, v2 in keyed
                                         if k == k2 and v == v2 and i1 < i2}
    assert set(r.facts("dangling")) == {(f, t) for f, t in ref if t not in ids}


@pytest.mark.parametrize("name", ["access_violation.cvg", "validate_acceptance.cvg"])
def test_failing_examples_say_so_and_exit_5(name: str) -> None:
    assert "FAILS ON PURPOSE" in (EXAMPLES / name).read_text(encoding="utf-8").splitlines()[0]
    out = subprocess.run([sys.executable, "-m", "converge_rules", "run", str(EXAMPLES / name), "--format", "summary", "-q"],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 5, out.stdout + out.stderr


@pytest.mark.parametrize("name", [f"{m}_example.cvg" for m in MODULES])
def test_examples_converge_from_the_command_line(name: str) -> None:
    out = subprocess.run([sys.executable, "-m", "converge_rules", "run", str(EXAMPLES / name), "--format", "summary", "-q"],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "tier: converged" in out.stdout
