"""Proofs: decoding the engine's compact proof records into explanations.

The engine stores, per derived fact, one compact proof record (its layout and
typed view live in ``engine.effects``). Everything else a person wants to see (bindings, negated atoms
checked absent, comparisons that held) follows from the agent's body and is
rebuilt here, so recording a proof costs the engine one tuple.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..compile.plan import AggStep, Assign, outside_map, plan_body
from ..compile.program import Program
from ..diagnostics import Span
from ..engine.runtime import EvalError, eval_expr
from ..engine.effects import ProofRecord, is_input_record
from ..engine.store import Context
from ..syntax import ast
from ..values import Value, format_fact, format_value


@dataclass(frozen=True)
class Proof:
    """One derivation step: how a fact entered the context."""

    relation: str
    fact: tuple
    is_input: bool
    cycle: int
    agent: str | None = None
    agent_id: int | None = None
    agent_span: Span | None = None
    bindings: dict[str, Value] = field(default_factory=dict)
    premises: list[tuple[str, tuple]] = field(default_factory=list)
    negated: list[tuple[str, tuple]] = field(default_factory=list)   # pattern: None where `_`
    conditions: list[str] = field(default_factory=list)
    aggregates: list[tuple[str, Value]] = field(default_factory=list)
    source: tuple[str, int] | None = None
    superseded_by: tuple[tuple, int] | None = None  # (the fact that superseded it, cycle) for keyed relations
    confidence: float = 1.0

    @property
    def text(self) -> str:
        return format_fact(self.relation, self.fact)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"relation": self.relation, "fact": list(self.fact), "cycle": self.cycle}
        if self.confidence < 1.0:
            out["confidence"] = self.confidence
        if self.is_input:
            out["input"] = True
            if self.source is not None:
                out["source"] = {"file": self.source[0], "line": self.source[1]}
            return out
        out.update({
            "agent": self.agent,
            "rule": f"{self.agent_span.file}:{self.agent_span.line}" if self.agent_span else None,
            "bindings": dict(sorted(self.bindings.items())),
            "premises": [[r, list(f)] for r, f in self.premises],
            "negated": [[r, list(p)] for r, p in self.negated],
            "conditions": self.conditions,
        })
        if self.aggregates:
            out["aggregates"] = [[t, v] for t, v in self.aggregates]
        return out


def pattern_text(relation: str, pattern: tuple) -> str:
    return f"{relation}({', '.join('_' if v is None else format_value(v) for v in pattern)})"


def decode(program: Program, context: Context, relation: str, fact: tuple,
           source_of: Callable[[str, tuple], tuple[str, int] | None],
           confidence: Mapping[str, Mapping[tuple, float]] | None = None,
           cache: dict[int, Any] | None = None) -> Proof | None:
    """The proof of a fact in the context, or None when the fact is absent
    (``cache``: a dict kept by the caller, so each agent's body is analysed once)."""
    store = context.relations.get(relation)
    if store is None:
        return None
    record = store.facts.get(fact)
    superseded_by = None
    if record is None:
        old = store.superseded.get(fact)
        if old is None:
            return None
        record, superseded_by = old[0], (old[1], old[2])
    conf = (confidence or {}).get(relation, {}).get(fact, 1.0)
    if is_input_record(record):
        return Proof(relation, fact, True, 0, source=source_of(relation, fact), superseded_by=superseded_by, confidence=conf)
    return decode_record(program, relation, fact, record, confidence, superseded_by, cache)


def _shape(program: Program, agent_id: int, cache: dict[int, Any] | None) -> tuple:
    """An agent's positive atoms, aggregate and tool literals and the plan that
    rebuilds its bindings from the premises (the same for every record)."""
    if cache is not None and agent_id in cache:
        return cache[agent_id]
    agent = program.agents[agent_id]
    positive = [lit for lit in agent.body if isinstance(lit, ast.Atom)]
    bound = {a.name for atom in positive for a in atom.args if isinstance(a, ast.Var)}
    agg_lits = [i for i, lit in enumerate(agent.body) if ast.aggregate_side(lit) is not None]
    tool_lits = [i for i, lit in enumerate(agent.body) if isinstance(lit, ast.Comparison)
                 and isinstance(lit.right, ast.ToolCall) and isinstance(lit.left, ast.Var)]
    steps, _ = plan_body(agent.body, bound, None, outside_map(agent.body, agent.heads))
    shape = (positive, agg_lits, tool_lits, steps)
    if cache is not None:
        cache[agent_id] = shape
    return shape


def decode_record(program: Program, relation: str, fact: tuple, record: tuple,
                  confidence: Mapping[str, Mapping[tuple, float]] | None = None,
                  superseded_by: tuple[tuple, int] | None = None, cache: dict[int, Any] | None = None) -> Proof:
    """One stored derivation record (see ``engine.effects.ProofRecord``) as a Proof."""
    conf = (confidence or {}).get(relation, {}).get(fact, 1.0)
    positive, agg_lits, tool_lits, steps = _shape(program, record[0], cache)
    rec = ProofRecord.decode(record, len(positive))
    agent = program.agents[rec.agent]
    premises = list(rec.premises)
    extras = rec.extras
    env: dict[str, Value] = {}
    for atom, pf in zip(positive, premises):
        for arg, value in zip(atom.args, pf):
            if isinstance(arg, ast.Var):
                env[arg.name] = value
    aggregates: list[tuple[str, Value]] = []
    agg_values = dict(zip(agg_lits, extras))
    tool_values = dict(zip(tool_lits, extras[len(agg_lits):]))
    for step in steps:
        try:
            if isinstance(step, Assign) and isinstance(step.expr, ast.ToolCall):
                if step.lit in tool_values:
                    env[step.var] = tool_values[step.lit]  # recorded when the agent fired
            elif isinstance(step, Assign):
                env[step.var] = eval_expr(step.expr, env)
            elif isinstance(step, AggStep):
                value = agg_values.get(step.lit)
                if step.bind and isinstance(step.result, ast.Var):
                    env[step.result.name] = value  # type: ignore[assignment]
                aggregates.append((show_expr(step.aggregate), value))  # type: ignore[arg-type]
        except (EvalError, KeyError):
            pass
    negated = []
    conditions = []
    for lit in agent.body:
        if isinstance(lit, ast.Negation):
            try:
                pattern = tuple(None if isinstance(a, ast.Wildcard) else eval_expr(a, env) for a in lit.atom.args)
            except (EvalError, KeyError):
                continue
            negated.append((lit.atom.relation, pattern))
        elif isinstance(lit, ast.Comparison) and ast.aggregate_side(lit) is None:
            conditions.append(show_literal(lit, env))
        elif isinstance(lit, ast.Condition):
            conditions.append(show_literal(lit, env))
    return Proof(relation, fact, False, rec.cycle, agent.name, agent.id, agent.span,
                 {k: env[k] for k in sorted(env)}, [(a.relation, f) for a, f in zip(positive, premises)],
                 negated, conditions, aggregates, superseded_by=superseded_by, confidence=conf)


# Printing lives in the syntax layer (shared with the independent checker).
from ..syntax.printer import show_expr, show_literal  # noqa: E402,F401
