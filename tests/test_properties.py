"""Property tests: the engine against a naive reference evaluator on random programs.

(a) the engine's facts equal the reference's perfect model, relation by relation;
(b) every fact's proof re-checks against the rules and the result's facts;
(c) the order of the input facts (and repeating some) changes neither ``to_json()`` nor the digest.
"""

from __future__ import annotations

import os
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import converge_rules as cr  # noqa: E402
import reference  # noqa: E402
import strategies  # noqa: E402

# CVG_EXAMPLES=2000 pytest tests/test_properties.py  runs a longer bug hunt
SETTINGS = settings(max_examples=int(os.environ.get("CVG_EXAMPLES", "40")), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def budget():
    return cr.Budget(max_cycles=10_000, max_facts=1_000_000)


def run(ir, facts=None):
    text = strategies.render(ir)
    rs = cr.load_text(text, name="gen.cvg")
    result = rs.run(facts=ir.facts_dict() if facts is None else facts, budget=budget())
    return text, result


def describe(ir, text, result=None) -> str:
    lines = ["--- program ---", text, "--- input facts ---", repr(ir.facts)]
    if result is not None:
        lines += [f"--- tier {result.tier} cycles {result.cycles} reasons "
                  f"{[(r.kind, r.message) for r in result.reasons]}"]
    return "\n".join(lines)


@SETTINGS
@given(strategies.programs())
def test_engine_matches_reference_model(ir):
    text, result = run(ir)
    info = describe(ir, text, result)
    assert result.tier == "converged", info
    model = reference.evaluate(ir)
    for rel in sorted(model):
        got = result.facts(rel)
        assert got == sorted(got), f"facts({rel}) not sorted\n{info}"
        assert len(set(got)) == len(got), f"facts({rel}) has duplicates\n{info}"
        got_set = set(map(tuple, got))
        want = model[rel]
        assert got_set == want, (
            f"relation {rel}: missing {sorted(want - got_set)}, unexpected {sorted(got_set - want)}\n{info}")
    names = result.relations()
    assert names == sorted(names), info
    nonempty = {rel for rel, fs in model.items() if fs}
    assert nonempty <= set(names) <= set(model), f"relations() = {names}\n{info}"


@SETTINGS
@given(strategies.programs())
def test_every_proof_rechecks(ir):
    text, result = run(ir)
    info = describe(ir, text, result)
    assert result.tier == "converged", info
    for rel in (r.name for r in ir.relations):
        for fact in result.facts(rel):
            try:
                reference.recheck_proof(ir, result, rel, tuple(fact))
            except AssertionError as err:
                raise AssertionError(f"{err}\n{info}") from None


@SETTINGS
@given(strategies.programs(), st.randoms(use_true_random=False))
def test_input_order_does_not_matter(ir, rnd):
    text, first = run(ir)
    _, second = run(ir, strategies.shuffled_facts(rnd, ir, duplicates=True))
    info = describe(ir, text, first)
    assert first.digest == second.digest, info
    assert first.to_json() == second.to_json(), info
    # the recorded derivations do not depend on the input order either
    for rel in (r.name for r in ir.derived):
        for fact in first.facts(rel):
            p1, p2 = first.proof(rel, fact), second.proof(rel, fact)
            key1 = (p1.agent, p1.cycle, p1.bindings, list(p1.premises), list(p1.negated))
            key2 = (p2.agent, p2.cycle, p2.bindings, list(p2.premises), list(p2.negated))
            assert key1 == key2, f"proof of {rel}{fact} differs: {key1} vs {key2}\n{info}"
    # the digest is a hex SHA-256
    assert len(first.digest) == 64 and all(c in "0123456789abcdef" for c in first.digest), first.digest


def test_reference_sanity():
    """The reference evaluator itself on a hand-written program (transitive closure + negation + count)."""
    S = strategies
    e = S.Relation("edge", ("str", "str"), True, 0)
    path = S.Relation("path", ("str", "str"), False, 1)
    sink = S.Relation("sink", ("str", "int"), False, 2)
    x, y, z, n = (S.Var(v) for v in "xyzn")
    rules = (
        S.Rule(S.Atom("path", (x, y)), (S.Atom("edge", (x, y)),)),
        S.Rule(S.Atom("path", (x, z)), (S.Atom("path", (x, y)), S.Atom("edge", (y, z)))),
        S.Rule(S.Atom("sink", (y, n)), (S.Atom("path", (x, y)), S.Neg(S.Atom("edge", (y, S.Wild()))),
                                        S.Agg("n", "count", None, (S.Atom("path", (S.Var("l"), y)),)))),
    )
    ir = S.Program((e, path, sink), rules, {"edge": (("a", "b"), ("b", "c"), ("c", "d"), ("a", "c"))})
    m = reference.evaluate(ir)
    assert m["path"] == {("a", "b"), ("b", "c"), ("c", "d"), ("a", "c"), ("a", "d"), ("b", "d")}
    assert m["sink"] == {("d", 3)}
    assert "n = count { path(l, y) }" in S.render(ir)
