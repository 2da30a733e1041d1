"""A naive reference evaluator and a proof re-checker for the IR of tests/strategies.py.

Independent of the engine: it shares no code with ``converge_rules``.  It
evaluates stratum by stratum (the strata the generator assigned), re-running
every rule of the stratum on the whole current model until nothing new is
derived — the textbook naive fixed point, which gives the perfect model of a
stratified program.
"""

from __future__ import annotations

import operator
import os
import sys
from typing import Iterable, Iterator, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from strategies import Agg, Assign, Atom, Cmp, Const, Expr, Neg, Program, Rule, Var, Wild

CMP_OPS = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
ARITH_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul}

Model = dict  # relation -> set of fact tuples


_MISSING = object()


def match(atom: Atom, fact: tuple, env: dict) -> Optional[dict]:
    """Extend ``env`` so that ``atom`` matches ``fact``, or None."""
    if len(fact) != len(atom.args):
        return None
    out = env
    for term, value in zip(atom.args, fact):
        if isinstance(term, Wild):
            continue
        if isinstance(term, Const):
            if type(term.value) is not type(value) or term.value != value:
                return None
            continue
        bound = out.get(term.name, _MISSING)
        if bound is _MISSING:
            if out is env:
                out = dict(env)
            out[term.name] = value
        elif type(bound) is not type(value) or bound != value:
            return None
    return out


def term_value(term, env: dict):
    if isinstance(term, Const):
        return term.value
    if isinstance(term, Var):
        return env[term.name]
    if isinstance(term, Expr):
        return ARITH_OPS[term.op](term_value(term.left, env), term_value(term.right, env))
    raise ValueError("`_` has no value")


def assign_value(lit: Assign, env: dict) -> int:
    src = term_value(lit.src, env)
    return src if lit.op is None else ARITH_OPS[lit.op](src, term_value(lit.arg, env))


def aggregate(lit: Agg, env: dict, model: Model) -> int:
    """count / sum over the distinct matching combinations of facts (one fact per atom).

    Nested loops over the facts of each atom visit every combination once, so
    each matching combination counts once (two facts with the same summed
    value both count).
    """
    envs = [env]
    for atom in lit.atoms:
        envs = [e2 for e in envs for f in model.get(atom.rel, ()) if (e2 := match(atom, f, e)) is not None]
    if lit.kind == "count":
        return len(envs)
    return sum(e[lit.target] for e in envs)


def negation_holds(atom: Atom, env: dict, model: Model) -> bool:
    """True when no fact matches the (ground except `_`) negated atom."""
    return not any(match(atom, f, env) is not None for f in model.get(atom.rel, ()))


def bindings(rule: Rule, model: Model) -> Iterator[dict]:
    """Every variable binding that satisfies the rule body in ``model``."""
    body = rule.body
    envs: list = [{}]
    for lit in body:
        if isinstance(lit, Atom):
            facts = model.get(lit.rel, ())
            envs = [e2 for e in envs for f in facts if (e2 := match(lit, f, e)) is not None]
    for lit in body:
        if isinstance(lit, Assign):
            nxt = []
            for e in envs:
                v = assign_value(lit, e)
                if lit.var in e:
                    if e[lit.var] == v:
                        nxt.append(e)
                else:
                    nxt.append({**e, lit.var: v})
            envs = nxt
    for lit in body:
        if isinstance(lit, Agg):
            nxt = []
            for e in envs:
                v = aggregate(lit, e, model)
                if lit.var in e:  # bound elsewhere: an equality test
                    if e[lit.var] == v:
                        nxt.append(e)
                else:
                    nxt.append({**e, lit.var: v})
            envs = nxt
    for lit in body:
        if isinstance(lit, Cmp):
            envs = [e for e in envs if CMP_OPS[lit.op](term_value(lit.left, e), term_value(lit.right, e))]
        elif isinstance(lit, Neg):
            envs = [e for e in envs if negation_holds(lit.atom, e, model)]
    return iter(envs)


def instantiate(atom: Atom, env: dict) -> tuple:
    return tuple(term_value(t, env) for t in atom.args)


def evaluate(ir: Program) -> Model:
    """The perfect model: relation -> set of facts, for every declared relation."""
    model: Model = {r.name: set() for r in ir.relations}
    for rel, facts in ir.facts.items():
        model[rel] |= {tuple(f) for f in facts}
    strata = sorted({r.stratum for r in ir.derived})
    for s in strata:
        rules = [r for r in ir.rules if ir.relation(r.head.rel).stratum == s]
        while True:
            new = []
            for rule in rules:
                for env in bindings(rule, model):
                    fact = instantiate(rule.head, env)
                    if fact not in model[rule.head.rel]:
                        new.append((rule.head.rel, fact))
            if not new:
                break
            for rel, fact in new:
                model[rel].add(fact)
    return model


# ---------------------------------------------------------------- proof checking


def rule_variables(rule: Rule) -> set:
    """Variables bound at rule level (positive atoms, assignments, aggregate results)."""
    out = set()
    for lit in rule.body:
        if isinstance(lit, Atom):
            out |= {t.name for t in lit.args if isinstance(t, Var)}
        elif isinstance(lit, (Assign, Agg)):
            out.add(lit.var)
    return out


def rule_for_agent(ir: Program, relation: str, agent: str) -> Rule:
    name, _, k = agent.rpartition("#")
    assert name == relation, f"agent {agent!r} does not belong to relation {relation!r}"
    rules = ir.rules_for(relation)
    assert k.isdigit() and 1 <= int(k) <= len(rules), f"agent {agent!r}: {relation} has {len(rules)} rules"
    return rules[int(k) - 1]


def _pattern(atom: Atom, env: dict) -> tuple:
    return tuple(None if isinstance(t, Wild) else term_value(t, env) for t in atom.args)


def _same_value(a, b) -> bool:
    return type(a) is type(b) and a == b


def recheck_proof(ir: Program, result, relation: str, fact: tuple) -> None:
    """Re-validate ``result.proof(relation, fact)`` against the IR and the result's facts.

    Raises AssertionError with a description of the first problem found.
    """
    fact = tuple(fact)
    proof = result.proof(relation, fact)
    assert proof is not None, f"no proof for {relation}{fact}"
    assert proof.relation == relation and tuple(proof.fact) == fact, f"proof is for {proof.relation}{proof.fact}"
    facts_of = {}

    def facts(rel):
        if rel not in facts_of:
            facts_of[rel] = set(map(tuple, result.facts(rel)))
        return facts_of[rel]

    if ir.relation(relation).is_input:
        assert proof.is_input and proof.agent is None and proof.cycle == 0, f"input fact {relation}{fact}: {proof}"
        assert fact in {tuple(f) for f in ir.facts.get(relation, ())}, f"{relation}{fact} is not an input fact"
        return

    assert not proof.is_input and proof.agent is not None, f"derived fact {relation}{fact} has an input proof"
    assert 1 <= proof.cycle <= result.cycles, (
        f"derived fact {relation}{fact} at cycle {proof.cycle} of {result.cycles}")
    rule = rule_for_agent(ir, relation, proof.agent)
    env = dict(proof.bindings)
    where = f"{relation}{fact} by {proof.agent}, bindings {env}"

    missing = rule_variables(rule) - set(env)
    assert not missing, f"{where}: bindings lack {sorted(missing)}"

    # the head instantiated with the bindings is the fact
    head = instantiate(rule.head, env)
    assert len(head) == len(fact) and all(map(_same_value, head, fact)), f"{where}: head gives {head}"

    # positive premises: in body order, each matching its atom, each in the result
    atoms = [l for l in rule.body if isinstance(l, Atom)]
    premises = [(rel, tuple(f)) for rel, f in proof.premises]
    assert len(premises) == len(atoms), f"{where}: {len(premises)} premises for {len(atoms)} atoms"
    for atom, (prel, pfact) in zip(atoms, premises):
        assert prel == atom.rel, f"{where}: premise {prel}{pfact} for atom {atom.rel}"
        m = match(atom, pfact, env)
        assert m is not None and m == env, f"{where}: premise {prel}{pfact} does not match the bindings"
        assert pfact in facts(prel), f"{where}: premise {prel}{pfact} is not in the result"
        pp = result.proof(prel, pfact)
        assert pp is not None, f"{where}: premise {prel}{pfact} has no proof"
        assert pp.cycle < proof.cycle, (
            f"{where}: premise {prel}{pfact} derived at cycle {pp.cycle}, not before cycle {proof.cycle}")

    # negated atoms: in body order, patterns with None for `_`, no fact matches
    negs = [l.atom for l in rule.body if isinstance(l, Neg)]
    negated = [(rel, tuple(p)) for rel, p in proof.negated]
    expected_neg = [(a.rel, _pattern(a, env)) for a in negs]
    assert negated == expected_neg, f"{where}: negated {negated}, expected {expected_neg}"
    for atom in negs:
        hits = [f for f in facts(atom.rel) if match(atom, f, env) is not None]
        assert not hits, f"{where}: negated not {atom.rel}{_pattern(atom, env)} but {hits[0]} holds"

    # assignments, aggregates and comparisons hold under the bindings
    for lit in rule.body:
        if isinstance(lit, Assign):
            v = assign_value(lit, env)
            assert _same_value(env[lit.var], v), f"{where}: {lit.var} = {v} fails"
        elif isinstance(lit, Agg):
            model = {a.rel: facts(a.rel) for a in lit.atoms}
            v = aggregate(lit, env, model)
            assert _same_value(env[lit.var], v), f"{where}: aggregate {lit.var} is {v}, bindings say {env[lit.var]}"
        elif isinstance(lit, Cmp):
            l, r = term_value(lit.left, env), term_value(lit.right, env)
            assert CMP_OPS[lit.op](l, r), f"{where}: {l!r} {lit.op} {r!r} is false"


def all_facts(model: Model) -> Iterable:
    for rel in sorted(model):
        for f in sorted(model[rel]):
            yield rel, f
