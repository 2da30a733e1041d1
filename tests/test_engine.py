"""Engine semantics through the public API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import converge_rules as cr


def run(src: str, facts: dict | None = None, budget: cr.Budget | None = None) -> cr.Result:
    return cr.load_text(src, "t.cvg").run(facts=facts, budget=budget)


TC = """
input relation edge(a: str, b: str)
relation path(a: str, b: str)
path(x, y) :- edge(x, y).
path(x, z) :- path(x, y), edge(y, z).
"""


def test_transitive_closure_and_proof() -> None:
    r = run(TC, {"edge": [("a", "b"), ("b", "c"), ("c", "d")]})
    assert r.tier == "converged"
    assert r.facts("path") == [("a", "b"), ("a", "c"), ("a", "d"), ("b", "c"), ("b", "d"), ("c", "d")]
    p = r.proof("path", ("a", "d"))
    assert p is not None and p.agent == "path#2" and p.cycle == 3
    assert p.bindings == {"x": "a", "y": "c", "z": "d"}
    assert p.premises == [("path", ("a", "c")), ("edge", ("c", "d"))]
    assert r.proof("edge", ("a", "b")).is_input  # type: ignore[union-attr]
    assert r.proof("path", ("d", "a")) is None


def test_body_order_does_not_matter() -> None:
    a = run(TC, {"edge": [("a", "b"), ("b", "c")]})
    b = run(TC.replace("path(x, y), edge(y, z)", "edge(y, z), path(x, y)"), {"edge": [("a", "b"), ("b", "c")]})
    assert a.facts("path") == b.facts("path")


def test_negation_is_stratified() -> None:
    src = TC + """
relation node(n: str)
relation unreachable(n: str)
node(x) :- edge(x, _).
node(x) :- edge(_, x).
unreachable(x) :- node(x), not path("a", x).
"""
    r = run(src, {"edge": [("a", "b"), ("c", "d")]})
    assert r.facts("unreachable") == [("a",), ("c",), ("d",)]
    p = r.proof("unreachable", ("c",))
    assert p is not None and p.negated == [("path", ("a", "c"))]


def test_aggregates_group_by_outer_variables() -> None:
    src = """
input relation sale(id: str, shop: str, amount: int)
input relation shop(name: str)
relation stats(shop: str, n: int, total: int)
relation extremes(shop: str, lo: int, hi: int)
stats(s, n, t) :- shop(s), n = count { sale(_, s, _) }, t = sum a { sale(_, s, a) }.
extremes(s, lo, hi) :- shop(s), lo = min a { sale(_, s, a) }, hi = max a { sale(_, s, a) }.
"""
    r = run(src, {"shop": [("x",), ("y",)], "sale": [("1", "x", 5), ("2", "x", 5), ("3", "x", 7)]})
    # two sales of the same amount both count in the sum (distinct matches, not distinct values)
    assert r.facts("stats") == [("x", 3, 17), ("y", 0, 0)]
    assert r.facts("extremes") == [("x", 5, 7)]  # min/max of an empty group give no result


def test_arithmetic_semantics() -> None:
    src = """
relation v(a: int, b: int)
relation r(a: int, b: int, q: int, m: int, s: str)
v(-7, 2). v(7, -2). v(7, 2).
r(a, b, q, m, s) :- v(a, b), q = a / b, m = a % b, s = "q=" ++ to_str(q).
"""
    r = run(src)
    assert r.facts("r") == [(-7, 2, -3, -1, "q=-3"), (7, -2, -3, 1, "q=-3"), (7, 2, 3, 1, "q=3")]


def test_builtins_and_conditions() -> None:
    src = """
relation word(w: str)
relation info(w: str, n: int, up: str, part: str)
relation has_a(w: str)
word("Banana"). word("kiwi").
info(w, len(w), upper(w), substr(w, 1, 3)) :- word(w).
has_a(w) :- word(w), contains(lower(w), "a"), not startswith(w, "k").
"""
    r = run(src)
    assert r.facts("info") == [("Banana", 6, "BANANA", "ana"), ("kiwi", 4, "KIWI", "iwi")]
    assert r.facts("has_a") == [("Banana",)]


def test_float_columns_and_expressions_in_heads() -> None:
    src = """
relation p(x: int)
relation half(x: float)
p(3). p(4).
half(x / 2.0) :- p(x).
"""
    assert run(src).facts("half") == [(1.5,), (2.0,)]


@pytest.mark.parametrize("expr,message", [("x / 0", "division by zero"), ("to_int(x * 1e308 * 10.0)", "arithmetic overflow")])
def test_runtime_error_fails_the_job_with_agent_cycle_and_span(expr: str, message: str) -> None:
    src = f"""
relation p(x: int)
relation q(x: int)
p(1).
agent broken {{
  when p(x), y = {expr}
  emit q(y)
}}
"""
    r = run(src)
    assert r.tier == "failed"
    (reason,) = r.reasons
    assert reason.kind == "agent_failed"
    assert reason.details["agent"] == "broken" and reason.details["cycle"] == 1
    assert message in reason.details["error"]
    assert reason.details["span"]["line"] == 6
    assert r.facts("q") == []  # the buffer was discarded


def test_invariant_violation_rolls_back_the_merge() -> None:
    src = """
relation order(id: str)
relation discount(id: str, pct: int)
order("o1").
discount(o, 5) :- order(o).
discount(o, 10) :- discount(o, 5).
invariant one_discount "at most one discount" { forbid discount(o, a), discount(o, b), a != b }
"""
    r = run(src)
    assert r.tier == "failed"
    assert r.reasons[0].kind == "invariant"
    (violation,) = r.reasons[0].details["violations"]
    assert violation["invariant"] == "one_discount"
    assert len(violation["matches"]) == 2  # both orders of (a, b) match
    assert r.facts("discount") == [("o1", 5)]  # the offending merge was not committed


def test_acceptance_checked_at_fixed_point() -> None:
    src = """
relation order(id: str)
relation shipped(id: str)
order("o1"). order("o2"). shipped("o1").
acceptance all_shipped "every order ships" { forbid order(o), not shipped(o) }
"""
    r = run(src)
    assert r.tier == "failed" and r.reasons[0].kind == "acceptance"
    assert r.reasons[0].details["violations"][0]["matches"][0]["bindings"] == {"o": "o2"}


def test_budgets_give_bounded_and_sound_results() -> None:
    src = "relation n(x: int)\nn(0).\nn(x + 1) :- n(x).\n"
    r = run(src, budget=cr.Budget(max_cycles=10))
    assert r.tier == "bounded" and r.cycles == 10
    assert r.reasons[0].details == {"budget": "max_cycles", "limit": 10, "reached": 10}
    assert r.facts("n") == [(i,) for i in range(11)]
    r2 = run(src, budget=cr.Budget(max_facts=5))
    assert r2.tier == "bounded" and r2.reasons[0].details["budget"] == "max_facts"
    assert r2.total_facts == 5
    for (x,) in r2.facts("n")[1:]:
        assert r2.proof("n", (x,)).premises == [("n", (x - 1,))]  # type: ignore[union-attr]
    file_budget = run(src + "budget { max_cycles = 3 }\n")
    assert file_budget.tier == "bounded" and file_budget.cycles == 3
    assert run(src + "budget { max_cycles = 3 }\n", budget=cr.Budget(max_cycles=6)).cycles == 6


def test_agent_blocks_emit_several_facts() -> None:
    src = """
relation loan(id: str, amount: int)
relation risk(id: str, level: str)
relation audit(id: str)
loan("l1", 900). loan("l2", 100).
agent flag "big loans are risky" {
  when loan(l, amount), amount > 500
  emit risk(l, "high"), audit(l)
}
"""
    r = run(src)
    assert r.facts("risk") == [("l1", "high")] and r.facts("audit") == [("l1",)]
    assert r.proof("audit", ("l1",)).agent == "flag"  # type: ignore[union-attr]


def test_imports_std_and_local(tmp_path: Path) -> None:
    (tmp_path / "lib.cvg").write_text("relation base(x: int)\nrelation doubled(x: int)\ndoubled(x * 2) :- base(x).\n")
    main = tmp_path / "main.cvg"
    main.write_text("""
import std.graph
import "./lib.cvg" as lib
relation road(a: str, b: str)
road("x", "y"). road("y", "z").
graph.edge(a, b) :- road(a, b).
lib.base(21).
relation far(a: str, b: str)
far(a, b) :- graph.reach(a, b), not graph.edge(a, b).
""")
    r = cr.load([str(main)]).run()
    assert r.facts("far") == [("x", "z")]
    assert r.facts("lib.doubled") == [(42,)]


def test_import_outside_project_is_rejected(tmp_path: Path) -> None:
    inner = tmp_path / "proj"
    inner.mkdir()
    (tmp_path / "secret.cvg").write_text("relation s(x: int)\n")
    (inner / "main.cvg").write_text('import "../secret.cvg" as s\n')
    with pytest.raises(cr.ConvergeError) as info:
        cr.load([str(inner / "main.cvg")])
    assert info.value.diagnostics[0].code == "E112"


def test_why_tree_reaches_inputs_and_renders() -> None:
    r = run(TC, {"edge": [("a", "b"), ("b", "c")]})
    tree = r.why('path("a", "c")')
    assert tree is not None
    text = cr.render_text(tree)
    assert 'path("a", "c")  [path#2 at t.cvg:5, cycle 2]' in text
    assert 'edge("b", "c")  [input' in text
    assert cr.render_dot(tree).startswith("digraph proof {")
    assert cr.render_mermaid(tree).startswith("graph BT")
    assert '"premises"' in cr.render_json(tree)
    assert r.why('path("c", "a")') is None


def test_result_json_and_digest_are_stable() -> None:
    a = run(TC, {"edge": [("a", "b"), ("b", "c"), ("c", "a")]})
    b = run(TC, {"edge": [("c", "a"), ("a", "b"), ("b", "c"), ("a", "b")]})
    assert a.to_json() == b.to_json() and a.digest == b.digest
    assert a.to_json(proofs=True) == b.to_json(proofs=True)
    c = run(TC, {"edge": [("a", "b")]})
    assert c.digest != a.digest


def test_aggregate_invariants_are_rechecked_after_every_merge() -> None:
    src = "relation n(x: int)\nn(0).\nn(x + 1) :- n(x), x < 10.\ninvariant small { forbid c = count { n(_) }, c > 3 }\n"
    r = run(src)
    assert r.tier == "failed" and r.reasons[0].kind == "invariant"
    assert len(r.facts("n")) <= 3


def test_unbound_aggregate_value_is_unsafe() -> None:
    with pytest.raises(cr.ConvergeError) as info:
        cr.load_text("relation a(x: int)\nrelation b(x: int, s: int)\nb(x, s) :- a(x), s = max y { a(z) }.\n")
    assert info.value.diagnostics[0].code == "E400"


def test_min_max_widen_to_float_and_atoms_compute_from_own_columns() -> None:
    src = """
relation one(x: int)
relation fl(v: float)
relation e(a: int, b: int)
relation l(x: int)
one(2). e(1, 2). e(2, 2). e(3, 4).
fl(max(x, 0.5)) :- one(x).
l(x) :- e(x, x + 1).
"""
    r = run(src)
    assert r.facts("fl") == [(2.0,)] and type(r.facts("fl")[0][0]) is float
    assert r.facts("l") == [(1,), (3,)]


def test_all_proofs_lists_alternative_derivations_and_support() -> None:
    rs = cr.load_text(TC, "t.cvg")
    facts = {"edge": [("a", "b"), ("b", "c"), ("a", "c")]}
    r = rs.run(facts=facts, all_proofs=True)
    proofs = r.proofs("path", ("a", "c"))
    assert [(p.agent, p.premises) for p in proofs] == [
        ("path#1", [("edge", ("a", "c"))]),
        ("path#2", [("path", ("a", "b")), ("edge", ("b", "c"))]),
    ]
    assert len(r.proofs("path", ("a", "c"), limit=1)) == 1
    assert len(rs.run(facts=facts).proofs("path", ("a", "c"))) == 1  # first-only by default
    assert r.digest == rs.run(facts=facts).digest
    assert r.support("path", ("a", "c")) == [("edge", ("a", "c"))]
    assert r.support("path", ("b", "c")) == [("edge", ("b", "c"))]
    data = json.loads(r.to_json(proofs=True, all_proofs=True))
    (row,) = [p for p in data["proofs"]["path"] if p["fact"] == ["a", "c"]]
    assert row["alternatives"][0]["agent"] == "path#2"


def test_a_standard_module_can_be_imported_twice_under_aliases(tmp_path: Path) -> None:
    main = tmp_path / "two.cvg"
    main.write_text("""
import std.graph as roads
import std.graph as rails
roads.edge("a", "b"). roads.edge("b", "c").
rails.edge("x", "y").
""")
    r = cr.load([str(main)]).run()
    assert r.facts("roads.reach") == [("a", "b"), ("a", "c"), ("b", "c")]
    assert r.facts("rails.reach") == [("x", "y")]


def test_input_facts_below_min_confidence_are_dropped() -> None:
    src = "input relation e(a: str)\nrelation p(a: str)\np(x) :- e(x).\n"
    r = cr.load_text(src, "m.cvg").run(facts={"e": [("a", 0.2), ("b",)]}, budget=cr.Budget(min_confidence=0.5))
    assert r.facts("e") == [("b",)] and r.facts("p") == [("b",)]
    assert r.tier == "bounded" and r.dropped("e", ("a",))["reason"] == "min_confidence"  # type: ignore[index]


def test_long_bodies_compile_past_the_nested_loop_limit() -> None:
    atoms = ", ".join(f"p(x{i})" for i in range(26))
    src = f"relation p(x: int)\nrelation q(x: int)\nrelation c(n: int)\np(1). p(2).\nq(x0) :- {atoms}.\n"
    src += "c(n) :- n = count { " + ", ".join(f"p(x{i})" for i in range(16)) + " }.\n"
    r = run(src)
    assert r.facts("q") == [(1,), (2,)] and r.facts("c") == [(2 ** 16,)]


def test_too_deeply_nested_expressions_are_a_diagnostic() -> None:
    deep = "+".join(["x"] * 5000)
    with pytest.raises(cr.ConvergeError) as info:
        cr.load_text(f"relation p(x: int)\nrelation q(x: int)\nq(y) :- p(x), y = {deep}.\n", "deep.cvg")
    (d,) = info.value.diagnostics
    assert d.code == "E102" and d.span.line == 3
    assert len(d.render().splitlines()[1]) < 200  # a huge line is quoted around the column


_DEEP_SHAPES = {  # an expression nesting `n` levels deep, of each kind of nesting
    "sum": lambda n: "x" + " + 1" * (n - 1),
    "parentheses": lambda n: "(" * (n - 1) + "x" + " + 1)" * (n - 1),
    "signs": lambda n: "-" * (n - 1) + "x",
    "calls": lambda n: "abs(" * (n - 1) + "x" + ")" * (n - 1),
    "concatenation": lambda n: "to_int(s" + ' ++ "1"' * (n - 2) + ")",
}


def _deep_program(shape: str, depth: int) -> str:
    return ('relation p(x: int)\nrelation q(x: int, s: str)\nq(1, "1").\n'
            f"p(y) :- q(x, s), y = {_DEEP_SHAPES[shape](depth)}.\n")


@pytest.mark.parametrize("shape", sorted(_DEEP_SHAPES))
def test_expressions_nest_at_most_the_documented_depth(shape: str) -> None:
    """Between about 200 and 1,000 levels an expression passed the parser but crashed a later
    stage (`run`: SyntaxError "too many nested parentheses" in the generated code; `check`
    and `fmt`: RecursionError). The parser now stops every item deeper than one fixed depth
    with E102, whatever the shape; one level less checks, formats and runs."""
    from converge_rules.syntax.format import format_source
    from converge_rules.syntax.parser import MAX_EXPR_DEPTH

    ok = _deep_program(shape, MAX_EXPR_DEPTH)
    assert format_source(ok, "ok.cvg")
    assert cr.load_text(ok, "ok.cvg").run().tier == "converged"
    for depth in (MAX_EXPR_DEPTH + 1, 300, 700):
        for attempt in (lambda src: cr.load_text(src, "deep.cvg"), lambda src: format_source(src, "deep.cvg")):
            with pytest.raises(cr.ConvergeError) as info:
                attempt(_deep_program(shape, depth))
            (d,) = info.value.diagnostics
            assert d.code == "E102" and d.span.line == 4 and f"more than {MAX_EXPR_DEPTH} levels" in d.message


def test_a_too_deep_expression_is_e102_for_every_command(tmp_path: Path) -> None:
    from cli_process import converge

    (tmp_path / "deep.cvg").write_text(_deep_program("sum", 300), encoding="utf-8")
    for args in (["check", "deep.cvg"], ["fmt", "--check", "deep.cvg"], ["run", "deep.cvg"], ["test", "deep.cvg"]):
        out = converge(*args, cwd=tmp_path)
        assert "internal error" not in out.stderr and "Traceback" not in out.stderr, (args, out.stderr)
        if args[0] != "test":  # a file without test blocks is not a test file
            assert out.returncode == 1 and "deep.cvg:4:1: error[E102]" in out.stdout + out.stderr, (args, out)
    (tmp_path / "ok.cvg").write_text(_deep_program("sum", 2), encoding="utf-8")
    out = converge("why", "ok.cvg", "p(" + "-" * 300 + "1)", cwd=tmp_path)
    assert out.returncode == 1 and "error[E102]" in out.stderr and "internal error" not in out.stderr
