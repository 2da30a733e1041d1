"""Lowering: a checked agent (or invariant) → one plan per semi-naive version.

A plan is plain typed data: the ordered steps (scan on an index, existence
check, filter, assignment, negation, aggregate, tool call, fail), the head
templates and the proof layout. Code generation is one backend that runs
plans; ``converge plan`` prints them. Planning choices are deterministic:
they depend on the body and on relation sizes only.
"""

from __future__ import annotations

from typing import Mapping

from .._frozen import frozen
from ..syntax import ast
from ..syntax.printer import show_expr, show_literal
from .plan import AggStep, Assign, ColumnCheck, FailStep, Filter, NegCheck, Scan, Step, outside_map, plan_body
from .program import AgentDef, InvariantDef

# A relation whose size changed by more than this factor since a plan was made
# gets a new plan (join order follows sizes).
REPLAN_FACTOR = 8
# In a version's row counts (EXPLAIN ANALYZE): how many times the run re-planned it with
# another step order. Rows are counted by step, so the counts restart with each new order:
# they are the rows out of each step of the last plan, while it was in use.
REORDERED = -2


@frozen
class ProofLayout:
    """What a proof record holds, in order: the fact matched by each positive
    atom (body order), then each aggregate's value, then each tool value."""

    premises: tuple[int, ...]
    aggregates: tuple[int, ...]
    tools: tuple[tuple[int, str], ...]


@frozen
class Plan:
    """The plan of one semi-naive version of an agent or invariant.

    ``driver``: the positive atom that reads only the new facts (None: the body
    runs over whole relations); ``sizes``: the relation sizes it was planned
    for (None: unknown, body order decides ties)."""

    rule: str
    kind: str                       # "agent", "rule", "invariant" or "acceptance"
    driver: int | None
    steps: tuple[Step, ...]
    heads: tuple[ast.Atom, ...]
    layout: ProofLayout
    reduced: bool                   # existence checks and projections are on
    sizes: tuple[tuple[str, int], ...] | None = None


def proof_layout(body: tuple[ast.Literal, ...]) -> ProofLayout:
    return ProofLayout(
        tuple(i for i, lit in enumerate(body) if isinstance(lit, ast.Atom)),
        tuple(i for i, lit in enumerate(body) if ast.aggregate_side(lit) is not None),
        tuple((i, lit.left.name) for i, lit in enumerate(body) if isinstance(lit, ast.Comparison)
              and isinstance(lit.right, ast.ToolCall) and isinstance(lit.left, ast.Var)))


def needed_vars(rule: AgentDef | InvariantDef) -> set[str]:
    """Variables whose values leave the body: an agent's head variables, every
    variable of an invariant (its matches report them)."""
    if isinstance(rule, InvariantDef):
        return set(rule.var_types)
    out: set[str] = set()
    for head in rule.heads:
        out.update(ast.literal_vars(head))
    return out


def lower(rule: AgentDef | InvariantDef, driver: int | None, *, sizes: Mapping[str, int] | None = None,
          reduce: bool = True) -> Plan:
    """The plan of one version. ``reduce=False`` keeps every match (all proofs, confidence)."""
    heads = () if isinstance(rule, InvariantDef) else rule.heads
    steps, unsafe = plan_body(rule.body, set(), driver, outside_map(rule.body, heads),
                              needed=needed_vars(rule) if reduce else None, sizes=sizes)
    assert not unsafe, unsafe  # the checker rejected unsafe bodies
    used = None
    if sizes is not None:
        rels = sorted({lit.relation for lit in rule.body if isinstance(lit, ast.Atom)})
        used = tuple((r, sizes.get(r, 0)) for r in rels)
    return Plan(rule.name, rule.kind, driver, tuple(steps), heads, proof_layout(rule.body), reduce, used)


def versions(rule: AgentDef | InvariantDef) -> list[int | None]:
    """The drivers the engine runs: each positive atom, or None for a body without one."""
    drivers: list[int | None] = [i for i, lit in enumerate(rule.body) if isinstance(lit, ast.Atom)]
    return drivers or [None]


def stale(plan: Plan, sizes: Mapping[str, int]) -> bool:
    """Whether a relation grew or shrank by more than REPLAN_FACTOR since the plan was made."""
    if plan.sizes is None:
        return False
    for rel, then in plan.sizes:
        now = sizes.get(rel, 0)
        if max(now, 1) > REPLAN_FACTOR * max(then, 1) or max(then, 1) > REPLAN_FACTOR * max(now, 1):
            return True
    return False


# ---------------------------------------------------------------- printing

def _atom(atom: ast.Atom) -> str:
    return show_literal(atom)


def step_lines(step: Step, body: tuple[ast.Literal, ...]) -> list[str]:
    """One step as text (an aggregate adds its inner steps, indented)."""
    if isinstance(step, Scan):
        what = ("exists " if step.exists else "scan ") + ("Δ" if step.driver else "") + _atom(step.atom)
        extra = []
        if step.keys:
            extra.append("index (" + ", ".join(str(c) for c, _ in step.keys) + ")"
                         + (" = " + ", ".join(show_expr(e) for _, e in step.keys)))
        if step.binds:
            extra.append("binds " + ", ".join(v for _, v in step.binds))
        if step.distinct is not None:
            extra.append("distinct on (" + ", ".join(str(c) for c in step.distinct) + ")")
        if step.exists:
            extra.append("first match only")
        return [what + ("  [" + "; ".join(extra) + "]" if extra else "")]
    if isinstance(step, ColumnCheck):
        return [f"check column {step.col} of {_atom(body[step.lit])} = {show_expr(step.expr)}"]  # type: ignore[arg-type]
    if isinstance(step, Filter):
        return ["filter " + show_literal(step.literal)]
    if isinstance(step, Assign):
        kind = "tool call" if isinstance(step.expr, ast.ToolCall) else "assign"
        return [f"{kind} {step.var} = {show_expr(step.expr)}"]
    if isinstance(step, NegCheck):
        return ["not exists " + _atom(step.atom)]
    if isinstance(step, AggStep):
        group = ", ".join(step.group) or "()"
        head = (f"aggregate {step.result.name} = " if step.bind and isinstance(step.result, ast.Var)
                else f"aggregate test {show_expr(step.result)} = ") + f"{step.aggregate.op} group by {group}"
        lines = [head]
        for inner in step.inner:
            lines.extend("   " + line for line in step_lines(inner, step.aggregate.body))
        return lines
    if isinstance(step, FailStep):
        return [f"fail {step.message!r}"]
    return [repr(step)]


def render(plan: Plan, rule: AgentDef | InvariantDef, *, actual: Mapping[int, int] | None = None,
           estimates: bool = False) -> list[str]:
    """The plan as EXPLAIN text; ``actual``: rows out of each step, by literal index
    (-1: emitted matches; REORDERED: re-plans that changed the step order, after which
    the counts restarted), as counted by a run (EXPLAIN ANALYZE)."""
    body = rule.body
    what = "Δ" + _atom(body[plan.driver]) if plan.driver is not None else "whole relations"  # type: ignore[arg-type]
    lines = [f"  version {what}" + (" (existence checks and projections on)" if plan.reduced else "")]
    sizes = dict(plan.sizes or ())
    rows = 1
    for n, step in enumerate(plan.steps, 1):
        text = step_lines(step, body)
        note = ""
        if estimates and isinstance(step, Scan):
            size = sizes.get(step.atom.relation, 0)
            if step.exists or (step.keys and len(step.keys) == len(step.atom.args)):
                rows = rows if size else 0
            else:
                rows = rows * max(1 if size else 0, size // (8 ** len(step.keys)))
            note += f"  est={rows}"
        if actual is not None and hasattr(step, "lit"):
            note += f"  actual={actual.get(step.lit, 0)}"  # type: ignore[union-attr]
        lines.append(f"    {n}. {text[0]}{note}")
        lines.extend("       " + t for t in text[1:])
    for head in plan.heads:
        lines.append(f"    {len(plan.steps) + 1}. emit {_atom(head)}"
                     + (f"  actual={actual.get(-1, 0)}" if actual is not None else ""))
    if actual is not None and actual.get(REORDERED):
        n = actual[REORDERED]
        lines.append(f"    re-planned with another step order {n} time{'s' if n != 1 else ''} during the run: "
                     "actual= counts the rows of this last plan only")
    if plan.heads:
        parts = [f"{_atom(body[i])}" for i in plan.layout.premises]  # type: ignore[arg-type]
        parts += [f"value of literal {i + 1}" for i in plan.layout.aggregates]
        parts += [f"tool value {v}" for _, v in plan.layout.tools]
        lines.append("    proof: (agent, cycle" + "".join(", " + p for p in parts) + ")")
    return lines


def rule_text(rule: AgentDef | InvariantDef) -> str:
    body = ", ".join(show_literal(lit) for lit in rule.body)
    if isinstance(rule, InvariantDef):
        return f"{rule.kind} {rule.name}: {body}"
    return ", ".join(_atom(h) for h in rule.heads) + (" :- " + body if body else "") + "."
