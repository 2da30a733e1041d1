"""Property tests of explanations on random programs (tests/strategies.py).

For random *absent* ground atoms, every reason ``why_not`` gives is re-checked
against the final context with the naive semantics of tests/reference.py (which
shares no code with the engine or with why-not's own interpreter):

* the literals it calls satisfied really have the partial matches it counts, in
  the order it evaluated them, and the literal it calls blocking really has no
  extension of any of them;
* each partial match it shows uses facts that are in the context, and its reason
  is true: no fact matches a missing atom, the fact blocking a negation holds and
  matches it, a failed comparison, assignment or aggregate really fails;
* on a converged run no agent "would derive" the absent fact.

For facts that hold, ``why`` gives a tree whose every node is a fact of the
context, and the independent proof checker (converge_rules/explain/checker.py)
accepts the result's proofs.
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
from converge_rules.explain.checker import Checker  # noqa: E402
from strategies import Agg, Assign, Atom, Cmp, Neg, Var  # noqa: E402

# CVG_EXAMPLES=2000 pytest tests/test_explain_properties.py  runs a longer hunt (a fifth of it per test)
SETTINGS = settings(max_examples=max(1, int(os.environ.get("CVG_EXAMPLES", "60")) // 5), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _keyed(ir) -> dict:
    """Derived relations to declare keyed: relation -> (key columns, "min"|"max", preferred column)."""
    out = {}
    for k, rel in enumerate(ir.derived):
        ints = [i for i, t in enumerate(rel.types) if t == "int"]
        if len(rel.types) >= 2 and ints and k % 2 == 0:
            col = ints[-1]
            out[rel.name] = (tuple(i for i in range(len(rel.types)) if i != col)[:1], "min" if k % 4 == 0 else "max", col)
    return out


def _render(ir, keys: dict) -> str:
    text = strategies.render(ir)
    for rel in ir.derived:
        if rel.name in keys:
            cols, how, col = keys[rel.name]
            decl = strategies.render_decl(rel)
            text = text.replace(decl + "\n", f"{decl} key({', '.join(f'c{i}' for i in cols)}) prefer {how}(c{col})\n", 1)
    return text


def _run(ir, keys=None):
    text = _render(ir, keys or {})
    result = cr.load_text(text, name="gen.cvg").run(facts=ir.facts_dict(),
                                                     budget=cr.Budget(max_cycles=10_000, max_facts=1_000_000))
    return text, result


def _describe(ir, text, extra="") -> str:
    return "\n".join(["--- program ---", text, "--- input facts ---", repr(ir.facts), extra])


def _model(ir, result) -> dict:
    return {r.name: set(map(tuple, result.facts(r.name))) for r in ir.relations}


def _same(a, b) -> bool:
    return type(a) is type(b) and a == b


def _extend(lit, env: dict, model: dict) -> list[dict]:
    """Every extension of ``env`` by one IR literal under the naive semantics."""
    if isinstance(lit, Atom):
        return [e for f in sorted(model[lit.rel], key=repr) if (e := reference.match(lit, f, env)) is not None]
    if isinstance(lit, Neg):
        return [env] if reference.negation_holds(lit.atom, env, model) else []
    if isinstance(lit, Cmp):
        if lit.op == "=":  # `v = t` with v not bound yet binds v
            for var, other in ((lit.left, lit.right), (lit.right, lit.left)):
                if isinstance(var, Var) and var.name not in env:
                    return [{**env, var.name: reference.term_value(other, env)}]
        l, r = reference.term_value(lit.left, env), reference.term_value(lit.right, env)
        return [env] if reference.CMP_OPS[lit.op](l, r) else []
    if isinstance(lit, Assign):
        if lit.op is None and isinstance(lit.src, Var) and lit.src.name not in env:  # `z = v`, z bound: binds v
            return [{**env, lit.src.name: env[lit.var]}]
        v = reference.assign_value(lit, env)
        if lit.var in env:
            return [env] if _same(env[lit.var], v) else []
        return [{**env, lit.var: v}]
    assert isinstance(lit, Agg)
    v = reference.aggregate(lit, env, model)
    if lit.var in env:
        return [env] if _same(env[lit.var], v) else []
    return [{**env, lit.var: v}]


def _candidates(ir, rel, model: dict, rnd) -> list[tuple]:
    """A few ground atoms of ``rel`` that do not hold, from the values the program uses."""
    values: dict[str, list] = {"int": [], "str": []}
    for name, facts in sorted(model.items()):
        types = ir.relation(name).types
        for f in sorted(facts, key=repr):
            for t, v in zip(types, f):
                if v not in values[t]:
                    values[t].append(v)
    dom = {"int": values["int"] + [0, 1, 7], "str": values["str"] + ["a", "zz"]}
    out = []
    for _ in range(12):
        fact = tuple(rnd.choice(dom[t]) for t in rel.types)
        if fact not in model[rel.name] and fact not in out:
            out.append(fact)
        if len(out) >= 4:
            break
    return out


def _preferred(keys, relation, kept: tuple, other: tuple) -> bool:
    """Whether ``kept`` has ``other``'s key and is at least as preferred."""
    cols, how, col = keys[relation]
    same_key = all(_same(kept[i], other[i]) for i in cols)
    return same_key and (kept[col] <= other[col] if how == "min" else kept[col] >= other[col])


def _check_whynot(ir, result, model, rel, fact, info, keys=None) -> None:
    w = result.why_not((rel.name, fact))
    where = f"why_not {rel.name}{fact}\n{w.render_text()}\n{info}"
    assert not w.holds, where
    if rel.is_input:
        assert w.status == "input", where
        return
    if w.status in ("superseded", "dropped"):
        assert keys and rel.name in keys, f"{w.status} in a relation without a key\n{where}"
        info_ = result.dropped(rel.name, fact)
        assert info_ is not None and info_["reason"] in ("superseded", "dominated"), where
        by = tuple(info_["by"] if info_["reason"] == "superseded" else info_["detail"])
        if info_["reason"] == "dominated":  # the fact it lost to was kept, or was itself superseded later
            assert by in model[rel.name] or result.dropped(rel.name, by) is not None, where
        assert _preferred(keys, rel.name, by, fact), f"{by} does not dominate {fact}\n{where}"
        kept = [f for f in model[rel.name] if _preferred(keys, rel.name, f, fact)]
        assert kept, f"nothing kept for the key of {fact}\n{where}"
        return
    rules = ir.rules_for(rel.name)
    assert w.status in ("explained", "no_unifying_agent"), where
    for a in w.attempts:
        assert a.outcome != "would derive", f"converged, yet {a.agent} would derive it\n{where}"
        rule = reference.rule_for_agent(ir, rel.name, a.agent)
        assert len(rule.body) == a.total, where
        # the head's bindings make the head equal to the fact
        env0 = dict(a.head_bindings)
        for term, v in zip(rule.head.args, fact):
            if isinstance(term, Var):
                assert term.name in env0 and _same(env0[term.name], v), where
        # replay the evaluation order it reports, counting partial matches naively
        frontier = [env0]
        for step in a.steps:
            if step.status == "not reached":
                continue
            lit = rule.body[step.index]
            nxt = [e for env in frontier for e in _extend(lit, env, model)]
            if step.status == "satisfied":
                assert nxt, f"literal {step.index + 1} called satisfied has no match\n{where}"
                if not a.truncated:
                    assert step.matches == len(nxt), (
                        f"literal {step.index + 1}: {step.matches} partial matches reported, {len(nxt)} naive\n{where}")
                frontier = nxt
            else:
                assert step.status == "blocked" and step.index == a.blocking, where
                assert not nxt, f"literal {step.index + 1} called blocking has an extension {nxt[0]}\n{where}"
                if not a.truncated:
                    assert a.matches == len(frontier), where
        if a.outcome == "blocked":
            lit = rule.body[a.blocking]
            for m in a.shown:
                for text in m.facts:
                    r2, vals = result.parse_fact(text)
                    assert tuple(vals) in model[r2], f"shown fact {text} is not in the context\n{where}"
                assert not _extend(lit, dict(m.bindings), model), (
                    f"shown match {m.bindings} does satisfy literal {a.blocking + 1}\n{where}")
                if isinstance(lit, Neg):
                    assert m.blocker is not None, where
                    r2, vals = result.parse_fact(m.blocker)
                    assert r2 == lit.atom.rel and tuple(vals) in model[r2], where
                    assert reference.match(lit.atom, tuple(vals), dict(m.bindings)) is not None, (
                        f"blocker {m.blocker} does not match the negated atom\n{where}")
        else:
            assert a.outcome == "head differs", where
        # whatever the order: no complete match of the body derives the fact
        for env in reference.bindings(rule, model):
            if all(_same(env.get(k), v) for k, v in env0.items()):
                head = reference.instantiate(rule.head, env)
                assert head != fact, f"{a.agent} derives {fact} with {env}\n{where}"
    assert len(w.attempts) + len(w.mismatches) == len(rules), where
    # one level deeper: a premise explained because its literal blocked cannot hold
    deep = result.why_not((rel.name, fact), depth=2)
    for a in deep.attempts:
        for p in a.premises:
            assert not p.holds, f"{a.agent} is blocked on a premise that holds: {p.message}\n{deep.render_text()}\n{info}"


@SETTINGS
@given(strategies.programs(), st.randoms(use_true_random=False))
def test_why_not_reasons_hold_in_the_final_context(ir, rnd):
    text, result = _run(ir)
    info = _describe(ir, text, f"tier {result.tier}")
    assert result.tier == "converged", info
    model = _model(ir, result)
    for rel in ir.relations:
        for fact in _candidates(ir, rel, model, rnd):
            _check_whynot(ir, result, model, rel, fact, info)


@SETTINGS
@given(strategies.programs())
def test_why_trees_use_context_facts_and_recheck(ir):
    text, result = _run(ir)
    info = _describe(ir, text)
    model = _model(ir, result)
    for rel in ir.derived:
        for fact in sorted(model[rel.name], key=repr)[:5]:
            tree = result.why((rel.name, fact))
            assert tree is not None, info
            stack = [tree]
            while stack:
                node = stack.pop()
                p = node.proof
                assert tuple(p.fact) in model[p.relation], f"{p.text} in the proof of {rel.name}{fact}\n{info}"
                stack.extend(node.children)
    inputs = {rel: set(map(tuple, fs)) for rel, fs in ir.facts.items() if fs}
    report = Checker(result.program, inputs).check(result.to_dict(proofs=True))
    assert report.ok, "\n".join(f.render() for f in report.failures) + "\n" + info


@SETTINGS
@given(strategies.programs(), st.randoms(use_true_random=False))
def test_why_not_over_keyed_relations(ir, rnd):
    """The same, with some derived relations declared ``key(c0) prefer min|max(cN)``: a fact that was
    derived and then dominated or superseded is said to be, by a fact of the same key that is preferred."""
    keys = _keyed(ir)
    text, result = _run(ir, keys)
    info = _describe(ir, text, f"tier {result.tier}")
    assert result.tier == "converged", info
    model = _model(ir, result)
    for rel in ir.relations:
        for fact in _candidates(ir, rel, model, rnd):
            _check_whynot(ir, result, model, rel, fact, info, keys)
        for fact, by, cycle in result.superseded(rel.name) if rel.name in keys else ():
            w = result.why_not((rel.name, fact))
            assert w.status == "superseded" and w.proof is not None, f"{w.render_text()}\n{info}"
            assert by in model[rel.name] or result.dropped(rel.name, by) is not None, info


def _reaches(ir, goals) -> set:
    """Relations from which a path of rules leads to a goal (read positively, negated or aggregated)."""
    reads = {}
    for rule in ir.rules:
        for lit in rule.body:
            atoms = [lit] if isinstance(lit, Atom) else [lit.atom] if isinstance(lit, Neg) else \
                list(lit.atoms) if isinstance(lit, Agg) else []
            for a in atoms:
                reads.setdefault(a.rel, set()).add(rule.head.rel)
    out, todo = set(goals), list(goals)
    while todo:
        rel = todo.pop()
        for src, heads in reads.items():
            if rel in heads and src not in out:
                out.add(src)
                todo.append(src)
    return out


@SETTINGS
@given(strategies.programs(), st.randoms(use_true_random=False), st.integers(0, 4), st.integers(1, 40))
def test_why_not_blames_goals_and_budgets_only_when_so(ir, rnd, n_goals, max_facts):
    """With random goals and a small max_facts, every "pruned" reason names an agent that cannot reach
    a goal (and every agent that can is not said to be pruned), a fact "dropped" at max_facts comes
    with that budget among the result's reasons, and a tier is blamed only when the run ended so."""
    goals = sorted({rnd.choice(ir.derived).name for _ in range(n_goals)})
    text = strategies.render(ir)
    result = cr.load_text(text, name="gen.cvg").run(facts=ir.facts_dict(), goals=goals,
                                                     budget=cr.Budget(max_cycles=10_000, max_facts=max_facts))
    info = _describe(ir, text, f"goals {goals}, max_facts {max_facts}, tier {result.tier}, "
                               f"reasons {[r.message for r in result.reasons]}")
    useful = _reaches(ir, goals) if goals else {r.name for r in ir.relations}
    pruned = {name: rule.head.rel not in useful for rel in ir.derived
              for k, rule in enumerate(ir.rules_for(rel.name), 1) for name in [f"{rel.name}#{k}"]}
    assert result.pruned_agents == [a for a in (x.name for x in result.program.agents) if pruned[a]], info
    model = _model(ir, result)
    budgets = {r.details.get("budget") for r in result.reasons if r.kind == "budget"}
    for rel in ir.derived:
        for fact in _candidates(ir, rel, model, rnd):
            w = result.why_not((rel.name, fact))
            where = f"why_not {rel.name}{fact}\n{w.render_text()}\n{info}"
            assert not w.holds, where
            if w.status == "dropped":
                assert result.dropped(rel.name, fact)["reason"] == "max_facts" and "max_facts" in budgets, where
                continue
            for a in w.attempts:
                said_pruned = a.not_run is not None and "was pruned" in a.not_run
                assert said_pruned == pruned[a.agent], where
                if "because the run ended" in a.summary:
                    assert result.tier != "converged" and a.summary.endswith(f"the run ended {result.tier}"), where
                if a.outcome == "would derive" and not said_pruned:
                    assert result.tier == "bounded", f"{a.agent} would derive it, yet it ran to the end\n{where}"
