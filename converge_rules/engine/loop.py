"""The fixed-point engine: parallel compute, serialized commit.

Each cycle: the eligible agents (dirty since they last ran, and ready: every
relation they negate or aggregate is complete) compute against the same
snapshot into effect buffers; the buffers are merged in ascending agent id,
then emission order; structural invariants check the merge (a violation
rolls it back and fails the job); budgets bound the work. At the fixed point
the acceptance invariants run. Nothing here iterates a set to decide order.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ..compile.graph import Strata, body_reads
from ..compile.program import AgentDef, InvariantDef, Program
from ..diagnostics import Span
from ..syntax import ast
from ..values import format_fact
from .codegen import RuleCode
from .runtime import EvalError
from .store import INPUT_PROOF, Context

DEFAULT_MAX_CYCLES = 100_000
DEFAULT_MAX_FACTS = 10_000_000


class Tier(str, Enum):
    """Outcome of a job, best to worst."""

    CONVERGED = "converged"
    DEGRADED = "degraded"
    BOUNDED = "bounded"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Budget:
    """Limits on a job; None means the default."""

    max_cycles: int | None = None
    max_facts: int | None = None

    def merged_over(self, file_budget: dict[str, int]) -> "Budget":
        """Explicit settings (API, CLI) override the rule files' budget."""
        return Budget(
            self.max_cycles if self.max_cycles is not None else file_budget.get("max_cycles", DEFAULT_MAX_CYCLES),
            self.max_facts if self.max_facts is not None else file_budget.get("max_facts", DEFAULT_MAX_FACTS),
        )

    def to_json(self) -> dict[str, int | None]:
        return {"max_cycles": self.max_cycles, "max_facts": self.max_facts}


@dataclass(frozen=True)
class Reason:
    """Why a job is below ``converged``: a kind, a message, and structured details."""

    kind: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, **self.details}


@dataclass
class Violation:
    invariant: InvariantDef
    bindings: dict[str, Any]
    premises: list[tuple[str, tuple]]

    def to_json(self) -> dict[str, Any]:
        return {"bindings": self.bindings,
                "facts": [format_fact(r, f) for r, f in self.premises]}


@dataclass
class Outcome:
    tier: Tier
    reasons: list[Reason]
    cycles: int
    context: Context
    budget: Budget
    fired: tuple[int, ...] = ()  # agents that committed at least one new fact, by id


class _AgentState:
    __slots__ = ("code", "heads", "pos_rels", "nonmono_rels", "marks", "ran", "id", "reads", "seen")

    def __init__(self, code: RuleCode, body: tuple[ast.Literal, ...], heads: tuple[ast.Atom, ...], rid: int):
        self.code = code
        self.id = rid
        self.heads = heads
        self.pos_rels = list(dict.fromkeys(lit.relation for lit in body if isinstance(lit, ast.Atom)))
        self.nonmono_rels = list(dict.fromkeys(rel for rel, kind, _ in body_reads(body) if kind != "positive"))
        self.marks = {r: 0 for r in self.pos_rels}
        self.ran = False
        self.reads = list(dict.fromkeys(rel for rel, _kind, _ in body_reads(body)))
        self.seen: dict[str, int] | None = None


class Engine:
    def __init__(self, program: Program, strata: Strata, budget: Budget):
        self.program = program
        self.strata = strata
        self.budget = budget
        self.context = Context({name: rel.arity for name, rel in program.relations.items()})
        self.agents = [_AgentState(RuleCode(a, program, self.context), a.body, a.heads, a.id) for a in program.agents]
        self.structural = [_AgentState(RuleCode(i, program, self.context, invariant=True), i.body, (), i.id)
                           for i in program.invariants if i.kind == "invariant"]
        self.acceptance = [i for i in program.invariants if i.kind == "acceptance"]
        self.total = 0
        self.fired: set[int] = set()

    # ---------------------------------------------------------------- inputs
    def load(self, facts: dict[str, list[tuple]]) -> None:
        """Commit canonicalised input facts (sorted, distinct) before cycle 1."""
        for name, items in facts.items():
            store = self.context[name]
            store.facts.update(dict.fromkeys(items, INPUT_PROOF))
            store.order.extend(items)
            self.total += len(items)

    # ---------------------------------------------------------------- run
    def run(self) -> Outcome:
        enabled = gc.isenabled()
        gc.disable()  # facts are acyclic tuples; the cyclic collector only costs time here
        try:
            outcome = self._run()
            outcome.fired = tuple(sorted(self.fired))
            return outcome
        finally:
            if enabled:
                gc.enable()

    def _run(self) -> Outcome:
        budget = self.budget
        max_cycles = budget.max_cycles if budget.max_cycles is not None else DEFAULT_MAX_CYCLES
        max_facts = budget.max_facts if budget.max_facts is not None else DEFAULT_MAX_FACTS
        reasons: list[Reason] = []
        cycle = 0
        if self.total > max_facts:
            reasons.append(Reason("budget", f"max_facts exhausted: the input holds {self.total} facts, the budget is {max_facts}",
                                  {"budget": "max_facts", "limit": max_facts, "reached": self.total}))
            return Outcome(Tier.BOUNDED, reasons, 0, self.context, budget)
        violations = self._check_structural(0)
        if violations:
            return Outcome(Tier.FAILED, [self._violation_reason(violations, 0)], 0, self.context, budget)
        ancestors = self.strata.ancestor_agents
        while True:
            pending = [a for a in self.agents if not a.ran or any(len(self.context[r]) > a.marks[r] for r in a.pos_rels)]
            if not pending:
                break
            pending_ids = {a.id for a in pending}
            eligible = [a for a in pending
                        if not any(anc in pending_ids for r in a.nonmono_rels for anc in ancestors[r])]
            assert eligible, "stratification guarantees a ready agent"
            if cycle >= max_cycles:
                reasons.append(Reason("budget", f"max_cycles exhausted after {cycle} cycles with {len(eligible)} agent(s) still eligible",
                                      {"budget": "max_cycles", "limit": max_cycles, "reached": cycle}))
                return Outcome(Tier.BOUNDED, reasons, cycle, self.context, budget)
            cycle += 1
            buffers = []
            for agent in eligible:
                try:
                    buffers.append((agent, self._execute(agent, cycle)))
                except EvalError as err:
                    span = agent.code.spans[err.sid] if 0 <= err.sid < len(agent.code.spans) else agent.code.rule.span
                    return Outcome(Tier.FAILED, [self._failure(agent, cycle, err.message, span)], cycle, self.context, budget)
                except (ArithmeticError, ValueError, TypeError, RecursionError, MemoryError) as err:
                    return Outcome(Tier.FAILED, [self._failure(agent, cycle, f"{type(err).__name__}: {err}", agent.code.rule.span)],
                                   cycle, self.context, budget)
            before = self.context.lengths()
            added, dropped = self._merge(buffers, max_facts)
            violations = self._check_structural(cycle)
            if violations:
                for name in added:
                    self.context[name].truncate(before[name])
                self.total = self.context.size()
                return Outcome(Tier.FAILED, [self._violation_reason(violations, cycle)], cycle, self.context, budget)
            if dropped:
                reasons.append(Reason("budget", f"max_facts exhausted in cycle {cycle}: {dropped} derived fact(s) dropped at the limit of {max_facts}",
                                      {"budget": "max_facts", "limit": max_facts, "reached": self.total, "dropped": dropped,
                                       "cycle": cycle}))
                return Outcome(Tier.BOUNDED, reasons, cycle, self.context, budget)
        for inv in self.acceptance:
            code = RuleCode(inv, self.program, self.context, invariant=True)
            found: list[Any] = []
            code.version(None, frozenset())([], {}, found, cycle)
            if found:
                reasons.append(self._violation_reason(self._violations(inv, code, found), cycle))
        if reasons:
            return Outcome(Tier.FAILED, reasons, cycle, self.context, budget)
        return Outcome(Tier.CONVERGED, reasons, cycle, self.context, budget)

    # ---------------------------------------------------------------- compute
    def _execute(self, agent: _AgentState, cycle: int) -> list[dict[tuple, tuple]]:
        buffers: list[Any] = [{} for _ in agent.heads]
        self._semi_naive(agent, buffers, cycle)
        return buffers

    def _semi_naive(self, agent: _AgentState, out: Any, cycle: int) -> None:
        """Run every version of the agent that can see a new fact, then advance its marks."""
        code = agent.code
        ctx = self.context
        lengths = {r: len(ctx[r]) for r in agent.pos_rels}
        if not code.positive:
            if not agent.ran:
                code.version(None, frozenset())([], {}, out, cycle)
        else:
            body = code.body
            marks = agent.marks
            for i in code.positive:
                rel_i = body[i].relation  # type: ignore[union-attr]
                if lengths[rel_i] <= marks[rel_i]:
                    continue
                mask = []
                skip = False
                for j in code.positive:
                    rel_j = body[j].relation  # type: ignore[union-attr]
                    if lengths[rel_j] == 0 or (j < i and marks[rel_j] == 0):
                        skip = True
                        break
                    if j < i and lengths[rel_j] > marks[rel_j]:
                        mask.append(j)
                if skip:
                    continue
                delta = ctx[rel_i].order[marks[rel_i]:lengths[rel_i]]
                exclude = {j: set(ctx[body[j].relation].order[marks[body[j].relation]:lengths[body[j].relation]])  # type: ignore[union-attr]
                           for j in mask}
                code.version(i, frozenset(mask))(delta, exclude, out, cycle)
        agent.marks = lengths
        agent.ran = True

    # ---------------------------------------------------------------- commit
    def _merge(self, buffers: list[tuple[_AgentState, list[dict[tuple, tuple]]]], max_facts: int) -> tuple[dict[str, list[tuple]], int]:
        added: dict[str, list[tuple]] = {}
        dropped = 0
        for agent, bufs in buffers:
            for head, buf in zip(agent.heads, bufs):
                if not buf:
                    continue
                self.fired.add(agent.id)
                name = head.relation
                facts = self.context[name].facts
                if name not in added and self.total + len(buf) <= max_facts:
                    facts.update(buf)
                    added[name] = list(buf)
                    self.total += len(buf)
                    continue
                new = added.setdefault(name, [])
                for fact, proof in buf.items():
                    if fact in facts:
                        continue
                    if self.total >= max_facts:
                        dropped += 1
                        continue
                    facts[fact] = proof
                    new.append(fact)
                    self.total += 1
        for name, new in added.items():
            self.context[name].extend(new)
        return added, dropped

    def _check_structural(self, cycle: int) -> list[Violation]:
        out: list[Violation] = []
        for state in self.structural:
            found: list[Any] = []
            if state.code.aggregates or not state.code.positive:
                # Aggregates are not monotone: a new fact can create a match that
                # uses only old facts, so these invariants are checked in full.
                lengths = {r: len(self.context[r]) for r in state.reads}
                if lengths != state.seen:
                    state.code.version(None, frozenset())([], {}, found, cycle)
                    state.seen = lengths
            else:
                self._semi_naive(state, found, cycle)
            if found:
                assert isinstance(state.code.rule, InvariantDef)
                out.extend(self._violations(state.code.rule, state.code, found))
        return out

    # ---------------------------------------------------------------- reports
    def _violations(self, inv: InvariantDef, code: RuleCode, found: list[Any]) -> list[Violation]:
        names = sorted(inv.var_types)
        atoms = [inv.body[i] for i in code.positive]
        out = []
        for premises, _extras, values in found:
            bindings = {n: v for n, v in zip(names, values)}
            prem = [(a.relation, f) for a, f in zip(atoms, premises)]  # type: ignore[union-attr]
            out.append(Violation(inv, bindings, prem))
        return out

    def _violation_reason(self, violations: list[Violation], cycle: int) -> Reason:
        inv = violations[0].invariant
        by_inv: dict[str, list[Violation]] = {}
        for v in violations:
            by_inv.setdefault(v.invariant.name, []).append(v)
        parts = []
        details = []
        for name, vs in by_inv.items():
            d = vs[0].invariant
            kind = "acceptance rule" if d.kind == "acceptance" else "invariant"
            parts.append(f"{kind} {name!r} violated ({len(vs)} match{'es' if len(vs) != 1 else ''})"
                         + (f": {d.message}" if d.message else ""))
            details.append({"invariant": name, "kind": d.kind, "message": d.message, "span": d.span.to_json(),
                            "matches": [v.to_json() for v in vs]})
        when = "at the fixed point" if inv.kind == "acceptance" else ("by the input facts" if cycle == 0 else f"by the merge of cycle {cycle}")
        kind = "acceptance" if inv.kind == "acceptance" else "invariant"
        return Reason(kind, "; ".join(parts) + f" ({when})", {"cycle": cycle, "violations": details})

    def _failure(self, agent: _AgentState, cycle: int, message: str, span: Span) -> Reason:
        name = agent.code.rule.name
        return Reason("agent_failed", f"agent {name!r} failed in cycle {cycle}: {message} at {span}",
                      {"agent": name, "cycle": cycle, "error": message, "span": span.to_json(), "policy": "abort"})
