"""Plans: guard placement, existence checks, projections, injective generated
names and long bodies (issues 8 and 9), through the API and the CLI."""

from __future__ import annotations

import json
import keyword
import os
import sys
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

import converge_rules as cr
from converge_rules.cli import cli

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import strategies  # noqa: E402

DATA = Path(__file__).parent / "data"


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def cli_facts(path: Path, relation: str, *extra: str) -> tuple[int, list[list]]:
    """Run through the CLI and read one relation's facts from the JSON output."""
    code, out = run_cli("run", str(path), "--format", "json", "--relation", relation, *extra)
    if code != 0:
        return code, [out]
    return code, json.loads(out)["facts"][relation]


# ---------------------------------------------------------------- issue 8 item 1: guards


def test_guard_before_anything_that_can_raise_division() -> None:
    r = cr.load(str(DATA / "soundness/guard_after_division.cvg")).run()
    assert r.tier == "converged", r.reasons
    assert r.facts("q") == [(7, 3)]


def test_guard_before_anything_that_can_raise_bound_by_assignment() -> None:
    r = cr.load(str(DATA / "soundness/guard_bound_late.cvg")).run()
    assert r.tier == "converged", r.reasons
    assert r.facts("q") == [(0,), (3,)]


def test_guard_before_anything_that_can_raise_without_delta_atom() -> None:
    for name, expected in (("guard_after_division", [(7, 3)]), ("guard_bound_late", [(0,), (3,)])):
        rules = cr.load(str(DATA / f"soundness/{name}.cvg"))
        r = rules.run(budget=cr.Budget(max_agents_per_cycle=1))
        assert r.tier == "converged", r.reasons
        assert r.facts("q") == expected


def test_guard_before_anything_that_can_raise_cli() -> None:
    assert cli_facts(DATA / "soundness/guard_after_division.cvg", "q") == (0, [[7, 3]])
    assert cli_facts(DATA / "soundness/guard_bound_late.cvg", "q", "--max-agents-per-cycle", "1") == (0, [[0], [3]])


def test_guard_that_does_not_reject_still_fails_the_agent() -> None:
    src = """input relation p(a: int, b: int)
relation q(a: int, c: int)
p(7, 0).
q(a, c) :- p(a, b), c = a / b, a != 0."""
    r = cr.load_text(src, "t.cvg").run()
    assert r.tier == "failed"
    assert "division by zero" in r.reasons[0].message


# ---------------------------------------------------------------- issue 9: existence checks


def test_existence_atoms_are_checks_not_loops() -> None:
    r = cr.load(str(DATA / "plans/existence.cvg")).run()
    assert r.tier == "converged"
    assert r.count("query") == 20 and r.count("e") == 101 and r.count("c") == 606
    p = r.proof("query", (5,))
    assert p is not None and ("i", (5,)) in p.premises and len(p.premises) == 10
    code, out = run_cli("plan", str(DATA / "plans/existence.cvg"), "--agent", "query#1")
    assert code == 0, out
    for atom in ("a()", "b()", "c(_, _, _)", "d(_)", "e(_)", "f(_, _)", "h(_)", "k(_)", "l(_)"):
        assert f"exists {atom}" in out or f"exists Δ{atom}" in out, atom
    assert "scan i(x)" in out or "scan Δi(x)" in out


def test_projection_keeps_one_tuple_per_needed_binding() -> None:
    src = """input relation p(x: int, y: int)
input relation q(x: int, z: int)
relation out(x: int, z: int)
out(x, z) :- p(x, _y), q(x, z).
"""
    facts = {"p": [(1, k) for k in range(50)], "q": [(1, 7), (1, 8), (2, 9)]}
    r = cr.load_text(src, "t.cvg").run(facts=facts)
    assert r.facts("out") == [(1, 7), (1, 8)]
    every = cr.load_text(src, "t.cvg").run(facts=facts, all_proofs=True)
    assert every.facts("out") == r.facts("out")
    assert len(every.proofs("out", (1, 7))) == 50  # all proofs keeps every derivation


def test_aggregates_count_every_match() -> None:
    src = """input relation sale(item: str, amount: int)
relation total(n: int, s: int)
total(n, s) :- n = count { sale(_, _) }, s = sum a { sale(_, a) }.
"""
    r = cr.load_text(src, "t.cvg").run(facts={"sale": [("a", 5), ("b", 5), ("c", 1)]})
    assert r.facts("total") == [(3, 11)]


# ---------------------------------------------------------------- issue 8 item 2: names


def test_generated_names_are_injective() -> None:
    r = cr.load(str(DATA / "soundness/injective_names.cvg")).run()
    assert r.tier == "converged"
    assert r.facts("r") == []  # every road is in g.reach
    assert cli_facts(DATA / "soundness/injective_names.cvg", "r") == (0, [])


_NAME_PARTS = st.sampled_from(["g", "reach", "_", "__", "o0", "o1", "t0", "v_x", "L1", "D", "X", "B", "C",
                               "acc", "k", "r0", "_run", "_c1", "A0", "f", "c"] + keyword.kwlist[:8])


@st.composite
def _relation_names(draw: st.DrawFn) -> list[str]:
    names: list[str] = []
    for _ in range(draw(st.integers(2, 5))):
        parts = draw(st.lists(_NAME_PARTS, min_size=1, max_size=3))
        name = "r" + "".join(parts)
        if name not in names:
            names.append(name)
    return names


@settings(max_examples=25, deadline=None)
@given(_relation_names())
def test_generated_names_are_injective_for_adversarial_relation_names(names: list[str]) -> None:
    """Each relation holds its own facts and a negation reads its own relation,
    whatever the names (double underscores, keywords, names of generated helpers)."""
    decls = "".join(f"input relation {n}(a: int)\n" for n in names)
    decls += "relation out(n: str, a: int)\n"
    rules = "".join(f'out("{n}", a) :- {n}(a), not {names[(k + 1) % len(names)]}(a).\n'
                    for k, n in enumerate(names))
    facts = {n: [(k,), (100,)] for k, n in enumerate(names)}
    r = cr.load_text(decls + rules, "t.cvg").run(facts=facts)
    assert r.tier == "converged", r.reasons
    expected = sorted((n, k) for k, n in enumerate(names) if len(names) > 1)
    assert r.facts("out") == expected


# ---------------------------------------------------------------- issue 8 item 7: long bodies


def _chain_rule(n: int) -> str:
    body = ", ".join(f"e(x{i}, x{i + 1})" for i in range(n))
    return f"input relation e(a: int, b: int)\nrelation long(a: int, b: int)\nlong(x0, x{n}) :- {body}.\n"


def test_long_bodies_compile_and_run() -> None:
    for n in (91, 300):
        facts = {"e": [(i, i + 1) for i in range(n + 2)]}
        r = cr.load_text(_chain_rule(n), "t.cvg").run(facts=facts)
        assert r.tier == "converged", r.reasons
        assert r.facts("long") == [(0, n), (1, n + 1), (2, n + 2)]


def test_long_bodies_cli(tmp_path: Path) -> None:
    path = tmp_path / "long.cvg"
    path.write_text(_chain_rule(120) + "".join(f"e({i}, {i + 1}).\n" for i in range(121)))
    assert cli_facts(path, "long") == (0, [[0, 120], [1, 121]])


def test_body_limit_is_a_located_check_error(tmp_path: Path) -> None:
    path = tmp_path / "huge.cvg"
    path.write_text(_chain_rule(2001))
    diags = cr.check([str(path)])
    assert [d.code for d in diags if d.is_error] == ["E406"]
    assert diags[0].span.line == 3 and diags[0].span.col == 1
    code, out = run_cli("check", str(path))
    assert code == 1 and "E406" in out and "Traceback" not in out


def test_many_imports_of_one_module(tmp_path: Path) -> None:
    path = tmp_path / "imports.cvg"
    path.write_text("".join(f"import std.graph as g{i}\n" for i in range(40))
                    + 'input relation road(a: str, b: str)\nroad("a", "b").\ng7.edge(a, b) :- road(a, b).\n')
    r = cr.load(str(path)).run()
    assert r.tier == "converged" and r.facts("g7.reach") == [("a", "b")] and r.facts("g8.reach") == []
    assert cli_facts(path, "g7.reach") == (0, [["a", "b"]])


def test_agent_with_many_emits_and_proofs(tmp_path: Path) -> None:
    path = tmp_path / "emits.cvg"
    path.write_text("input relation s(a: int)\nrelation t(a: int, b: int)\ns(1).\nagent many {\n  when s(x)\n"
                    + "".join(f"  emit t(x, {i})\n" for i in range(1500)) + "}\n")
    r = cr.load(str(path)).run()
    assert r.count("t") == 1500
    data = json.loads(r.to_json(proofs=True))
    assert len(data["proofs"]["t"]) == 1500
    code, out = run_cli("run", str(path), "--format", "json", "--proofs", "first", "--relation", "t")
    assert code == 0 and len(json.loads(out)["proofs"]["t"]) == 1500


def test_plans_follow_relation_sizes_and_replan() -> None:
    from converge_rules.compile.lower import REPLAN_FACTOR, lower, stale

    rules = cr.load_text("""input relation big(a: int, b: int)
input relation small(b: int, c: int)
relation out(a: int, c: int)
out(a, c) :- big(a, b), small(b, c).
""", "t.cvg")
    agent = rules.program.agents[0]
    a = lower(agent, None, sizes={"big": 10_000, "small": 10})
    b = lower(agent, None, sizes={"big": 10, "small": 10_000})
    assert [s.atom.relation for s in a.steps] == ["small", "big"]  # type: ignore[union-attr]
    assert [s.atom.relation for s in b.steps] == ["big", "small"]  # type: ignore[union-attr]
    assert not stale(a, {"big": 10_000 * REPLAN_FACTOR, "small": 10})
    assert stale(a, {"big": 10_000, "small": 10 * REPLAN_FACTOR + 20})
    facts = {"big": [(i, i % 5) for i in range(200)], "small": [(k, k * 10) for k in range(5)]}
    r = rules.run(facts=facts)
    assert r.count("out") == 200 and r.proof("out", (7, 20)).premises == [("big", (7, 2)), ("small", (2, 20))]  # type: ignore[union-attr]


def test_guard_before_anything_that_can_raise_guard_after_a_join() -> None:
    src = """input relation p(a: int, b: int)
input relation s(b: int, ok: int)
relation q(a: int, c: int)
p(7, 0). p(7, 2). s(2, 1). s(0, 0).
q(a, c) :- p(a, b), c = a / b, s(b, ok), ok = 1.
"""
    r = cr.load_text(src, "t.cvg").run()
    assert r.tier == "converged", r.reasons
    assert r.facts("q") == [(7, 3)]


_GUARD_BODY = ("p(a, b)", "c = a / b", "b != 0", "d = c % b", "not z(b)")


@settings(max_examples=30, deadline=None)
@given(st.permutations(_GUARD_BODY),
       st.lists(st.tuples(st.integers(-3, 3), st.integers(-2, 2)), max_size=8, unique=True))
def test_guard_placement_ignores_body_order(order: list[str], rows: list[tuple[int, int]]) -> None:
    """Whatever the body order, no binding a guard rejects reaches a division."""
    src = ("input relation p(a: int, b: int)\ninput relation z(b: int)\nrelation q(a: int, c: int, d: int)\n"
           f"q(a, c, d) :- {', '.join(order)}.\n")
    r = cr.load_text(src, "t.cvg").run(facts={"p": rows, "z": []})
    assert r.tier == "converged", r.reasons

    def div(x: int, y: int) -> int:
        q = abs(x) // abs(y)
        return q if (x >= 0) == (y >= 0) else -q

    def mod(x: int, y: int) -> int:
        m = abs(x) % abs(y)
        return m if x >= 0 else -m

    expected = sorted({(a, div(a, b), mod(div(a, b), b)) for a, b in rows if b != 0})
    assert r.facts("q") == expected


def test_count_over_an_index_is_its_length() -> None:
    src = """input relation sold(id: str, shop: str, amount: int)
input relation shop(s: str)
relation n(s: str, k: int)
relation total(k: int)
relation has(s: str)
n(s, k) :- shop(s), k = count { sold(_, s, _) }.
total(k) :- k = count { sold(_, _, _) }.
has(s) :- shop(s), 1 = count { sold("t1", s, 5) }.
"""
    rules = cr.load_text(src, "t.cvg")
    facts = {"shop": [("a",), ("b",), ("c",)], "sold": [("t1", "a", 5), ("t2", "a", 6), ("t3", "b", 1)]}
    r = rules.run(facts=facts)
    assert r.facts("n") == [("a", 2), ("b", 1), ("c", 0)]
    assert r.facts("total") == [(3,)] and r.facts("has") == [("a",)]
    p = r.proof("n", ("a", 2))
    assert p is not None and p.aggregates == [("count { sold(_, s, _) }", 2)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strategies.programs())
def test_reduced_plans_derive_what_full_plans_derive(ir) -> None:  # type: ignore[no-untyped-def]
    """Existence checks, projections and size-ordered joins change how many
    matches are enumerated, never the facts: a run that keeps every match
    (all proofs) derives exactly the same facts and digest."""
    rules = cr.load_text(strategies.render(ir), "gen.cvg")
    budget = cr.Budget(max_cycles=10_000, max_facts=1_000_000)
    reduced = rules.run(facts=ir.facts_dict(), budget=budget)
    full = rules.run(facts=ir.facts_dict(), budget=budget, all_proofs=True)
    assert reduced.tier == full.tier == "converged"
    assert reduced.digest == full.digest
    for rel in full.relations():
        assert reduced.facts(rel) == full.facts(rel)


def test_plan_command_analyze_and_errors(tmp_path: Path) -> None:
    rules = DATA / "soundness/guard_after_division.cvg"
    code, out = run_cli("plan", str(rules), "--facts", str(rules.parent.parent.parent / "golden/plans/guards.facts.cvg"))
    assert code == 0, out
    assert "-- run: tier converged" in out and "filter b != 0  actual=2" in out
    code, out = run_cli("plan", str(rules), "--agent", "nope")
    assert code == 2 and "no agent named 'nope'" in out
    bad = tmp_path / "bad.cvg"
    bad.write_text("relation p(a: int)\np(x) :- q(x).\n")
    result = CliRunner().invoke(cli, ["plan", str(bad)])
    assert result.exit_code == 1 and "E200" in result.output and "Traceback" not in result.output
    broken = tmp_path / "facts.json"
    broken.write_text('{"p": [[1, 2]')
    result = CliRunner().invoke(cli, ["plan", str(rules), "--facts", str(broken)])
    assert result.exit_code == 1 and "E501" in result.output


def test_plan_api_analysis() -> None:
    r = cr.load(str(DATA / "soundness/guard_bound_late.cvg")).run(analyze=True)
    assert r.analysis is not None
    plans, counts = r.analysis["q#1"]
    (driver, plan), = plans.items()
    assert [type(s).__name__ for s in plan.steps] == ["Scan", "Assign", "Filter", "Filter"]
    assert counts[driver][-1] == 2  # two matches emitted: q(0) and q(3)
    assert cr.load(str(DATA / "soundness/guard_bound_late.cvg")).run().analysis is None


# A join whose order flips during the run: p grows (a transitive closure of a chain) past
# f, so the engine re-plans version Δs(x) with p before... or after f. Rows are counted
# per step: counts of the earlier order used to be added to the steps of the last plan,
# which then emitted more rows (2520) than its last scan produced (2340).
REORDER_RULES = """input relation e(a: int, b: int)
input relation f(a: int, b: int)
input relation seed(a: int)
relation p(a: int, b: int)
relation s(a: int)
relation r(a: int, b: int, c: int)
p(x, y) :- e(x, y).
p(x, z) :- p(x, y), e(y, z).
s(x) :- seed(x).
s(y) :- s(x), e(x, y).
r(x, y, z) :- s(x), f(x, z), p(x, y).
"""


def _reorder_facts() -> dict:
    return {"e": [[i, i + 1] for i in range(40)], "f": [[i, j] for i in range(40) for j in range(6)], "seed": [[0]]}


def test_plan_actual_rows_belong_to_the_plan_shown_after_a_reorder(tmp_path: Path) -> None:
    from converge_rules.compile.lower import REORDERED

    result = cr.load_text(REORDER_RULES, "rp.cvg").run(facts=_reorder_facts(), analyze=True)
    plans, counts = result.analysis["r#1"]
    for driver, plan in plans.items():
        rows = counts[driver]
        last = plan.steps[-1]
        assert type(last).__name__ == "Scan" and not last.exists
        # nothing filters between the last scan and the emit: every row out of it is emitted
        assert rows[-1] == rows[last.lit], (driver, rows)
    assert counts[0].get(REORDERED) == 1  # Δs(x) was re-planned with another join order
    # a version never re-ordered counts the whole run: each p fact is in one delta (but the
    # one of cycle 2, when s had no older fact to join and the version did not run)
    assert counts[2][2] == len(result.facts("p")) - 40 and REORDERED not in counts[2]
    rules, facts = tmp_path / "rp.cvg", tmp_path / "rp.json"
    rules.write_text(REORDER_RULES)
    facts.write_text(json.dumps(_reorder_facts()))
    code, out = run_cli("plan", str(rules), "--facts", str(facts), "--agent", "r#1")
    assert code == 0, out
    version = out.split("version Δs(x)")[1].split("version")[0]
    lines = version.splitlines()
    assert lines[3].split("actual=")[1] == lines[4].split("actual=")[1]  # step 3's rows are all emitted
    assert "re-planned with another step order 1 time during the run: actual= counts the rows of this last plan only" in version


def test_plan_facts_takes_the_job_options_of_run() -> None:
    """`plan --facts` ran the job without --tools (nor budgets, goals or --facts -): a rule set
    calling a tool, such as the scoring example, could not be analysed at all (E220, exit 1,
    with a note pointing to `converge run --tools`)."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONHASHSEED": "0", "NO_COLOR": "1"}

    def plan(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "converge_rules", "plan", *args], cwd=root, env=env,
                              capture_output=True, text=True, input=stdin)

    scoring = ("examples/scoring/scoring.cvg", "--facts", "examples/scoring/facts.json")
    out = plan(*scoring, "--tools", "examples.scoring.tools:RELIABLE", "--agent", "bureau")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("-- run: tier converged, 3 cycle(s)")
    assert "2. tool call s = @credit_score(a)  actual=4" in out.stdout
    # the budgets and goals of run apply too: --max-cycles 1 bounds the counted run
    out = plan(*scoring, "--tools", "examples.scoring.tools:RELIABLE", "--max-cycles", "1", "--agent", "bureau")
    assert out.returncode == 0 and out.stdout.startswith("-- run: tier bounded, 1 cycle(s)"), out.stderr
    # without a tool the job is still refused clearly
    out = plan(*scoring, "--agent", "bureau")
    assert out.returncode == 1 and "error[E220]" in out.stderr and "Traceback" not in out.stderr
    # facts on standard input, as for run
    loans = (root / "examples/loans/facts.json").read_text()
    out = plan("examples/loans/loans.cvg", "--facts", "-", "--agent", "decided#1", stdin=loans)
    assert out.returncode == 0 and out.stdout.startswith("-- run: tier converged, 4 cycle(s), 37 facts"), out.stderr
    # large#1 is pruned by `goal offer`: its version never ran, and plan says why
    out = plan(*scoring, "--tools", "examples.scoring.tools:RELIABLE", "--agent", "large#1")
    assert "version Δloan(l, _, amount): never ran (the agent was pruned for the goals)" in out.stdout, out.stderr
    # job options without --facts count nothing: a usage error
    out = plan("examples/scoring/scoring.cvg", "--tools", "examples.scoring.tools")
    assert out.returncode == 2 and "--tools: only with --facts" in out.stderr
