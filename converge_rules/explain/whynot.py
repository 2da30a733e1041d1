"""Why-not: explaining a fact that does not hold.

For an absent fact the question is "which rule could have derived it, and
what stopped it?". For every agent with an ``emit``/head atom that unifies
with the fact, the body is evaluated against the final facts of the result
(in body order; a literal whose variables are not bound yet is evaluated as
soon as they are), enumerating the partial matches literal by literal. The
first literal that no partial match satisfies is where the agent stopped:
the report shows how many literals were satisfied, that literal, the
bindings of the deepest partial matches, and, when the literal is a negation
``not r(...)``, the proof of the fact ``r(...)`` that blocked it. With
``depth > 1`` a missing positive premise of a derived relation is explained
in turn (instantiated with the bindings; unbound columns shown as ``_``).

The evaluation here is an independent interpreter over ``Result.facts`` and
``runtime.eval_expr``/``compare``; it does not touch the engine's state. It
calls no tool: a tool call ``@t(...)`` takes the result (or the error) the run
recorded for the same tool and arguments (``Result.tool_calls``, also kept in
a decision record), and a call the run never made cannot be evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generator, Iterator, Sequence

from ..values import dumps_json
from ..compile.plan import aggregate_vars, outside_map
from ..compile.program import AgentDef, Program
from .. import catalogue
from ..engine.tools import tool_key
from ..engine.runtime import NO_MATCH, EvalError, as_column, call_builtin, compare, eval_expr
from ..syntax import ast
from ..values import Value, format_value, type_name
from ..syntax.printer import show_expr, show_literal
from .render import ProofNode, dumps_tree_json, render_text as render_proof_text

MAX_PARTIAL = 10_000      # partial matches kept per literal (the search is cut beyond)
SHOW_MATCHES = 3          # partial matches shown per agent
MAX_PREMISES = 3          # missing premises explained per agent when depth > 1

Pattern = tuple  # values, None where a column is unknown (shown as `_`)


# ------------------------------------------------------------------ results

@dataclass
class LiteralStep:
    """One body literal, in evaluation order, and how far the search got."""

    index: int                 # position in the body (0-based)
    text: str                  # the literal as written
    status: str                # "satisfied" | "blocked" | "not reached"
    matches: int | None = None  # partial matches after it (satisfied literals)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "literal": self.text, "status": self.status}
        if self.matches is not None:
            out["matches"] = self.matches
        return out


@dataclass
class PartialMatch:
    """Bindings reached by the deepest partial matches, the facts they used and why they stopped."""

    bindings: dict[str, Value]
    facts: list[str]
    reason: str = ""
    blocker: str | None = None          # the fact that blocked a negation
    blocker_proof: ProofNode | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"bindings": dict(sorted(self.bindings.items())), "facts": self.facts, "reason": self.reason}
        if self.blocker is not None:
            out["blocked_by"] = self.blocker
            if self.blocker_proof is not None:
                out["blocked_by_proof"] = self.blocker_proof.to_json()
        return out


@dataclass
class Attempt:
    """One agent whose head unifies with the fact, and where its body stopped."""

    agent: str
    kind: str                           # "agent" | "rule"
    description: str | None
    location: str                       # file:line
    rule: str                           # the rule as text
    head_bindings: dict[str, Value]
    head_notes: list[str]
    steps: list[LiteralStep]
    satisfied: int                      # literals satisfied, in evaluation order
    total: int
    blocking: int | None                # body index of the first literal no partial match satisfies
    blocking_text: str | None
    matches: int                        # partial matches at the deepest point
    shown: list[PartialMatch]
    outcome: str                        # "blocked" | "head differs" | "would derive"
    summary: str
    truncated: bool = False
    premises: list["WhyNot"] = field(default_factory=list)
    not_run: str | None = None          # why the agent never ran or its facts were discarded (pruned, skipped)

    def to_json(self) -> dict[str, Any]:
        out = self._own_json()
        if self.premises:
            out["premises"] = [p.to_json() for p in self.premises]
        return out

    def _own_json(self) -> dict[str, Any]:
        """The attempt's JSON without its premises' explanations (WhyNot.to_json adds them)."""
        out: dict[str, Any] = {
            "agent": self.agent, "kind": self.kind, "description": self.description, "rule": self.location,
            "text": self.rule, "head_bindings": dict(sorted(self.head_bindings.items())),
            "head_notes": self.head_notes, "literals": [s.to_json() for s in self.steps],
            "satisfied": self.satisfied, "total": self.total, "outcome": self.outcome, "summary": self.summary,
            "blocking_literal": self.blocking_text, "blocking_index": self.blocking,
            "partial_matches": self.matches, "shown": [m.to_json() for m in self.shown],
        }
        if self.truncated:
            out["truncated"] = True
        if self.not_run is not None:
            out["not_run"] = self.not_run
        return out


@dataclass
class Mismatch:
    """An agent writing the relation whose head cannot produce this fact."""

    agent: str
    location: str
    head: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"agent": self.agent, "rule": self.location, "head": self.head, "reason": self.reason}


@dataclass
class WhyNot:
    """The explanation of an absent fact (or the note that it holds)."""

    relation: str
    values: Pattern
    status: str          # "holds" | "superseded" | "dropped" | "input" | "no_rules" | "no_unifying_agent" | "explained" | "repeated"
    message: str
    tier: str
    cycles: int
    attempts: list[Attempt] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    proof: ProofNode | None = None
    holds_as: str | None = None   # for a pattern: the fact that matched it

    @property
    def text(self) -> str:
        return pattern_fact(self.relation, self.values)

    @property
    def holds(self) -> bool:
        return self.status == "holds"

    def to_json(self) -> dict[str, Any]:
        """The explanation as nested dicts; premises explained further (``depth`` > 1)
        sit under their agent's "premises". Built with an explicit stack: as deep as
        the depth asked for, so write it with ``render_json``, not ``json.dumps``."""
        todo: list[tuple[list[Any], list[WhyNot]]] = []  # premises lists still to fill

        def one(w: WhyNot) -> dict[str, Any]:
            out: dict[str, Any] = {
                "fact": w.text, "relation": w.relation, "values": list(w.values), "holds": w.holds,
                "status": w.status, "message": w.message, "tier": w.tier, "cycles": w.cycles,
            }
            if w.proof is not None:
                out["proof"] = w.proof.to_json()
            if w.holds_as is not None:
                out["holds_as"] = w.holds_as
            agents = out["agents"] = []
            for a in w.attempts:
                agent = a._own_json()
                if a.premises:
                    agent["premises"] = []
                    todo.append((agent["premises"], a.premises))
                agents.append(agent)
            out["other_agents"] = [m.to_json() for m in w.mismatches]
            out["notes"] = w.notes
            return out

        root = one(self)
        while todo:
            target, premises = todo.pop()
            target.extend(one(p) for p in premises)
        return root

    def render_text(self) -> str:
        return render_text(self)

    def render_json(self) -> str:
        return render_json(self)


def pattern_fact(relation: str, values: Sequence[Value | None]) -> str:
    return f"{relation}({', '.join('_' if v is None else format_value(v) for v in values)})"


def _bind_text(env: dict[str, Value]) -> str:
    return ", ".join(f"{k} = {format_value(v)}" for k, v in sorted(env.items()))


# ------------------------------------------------------------------ entry point

def why_not(result: Any, relation: str, values: Sequence[Value | None] | None = None, depth: int = 1) -> WhyNot:
    """Explain why ``relation(values)`` does not hold in ``result``.

    ``relation`` may also be a fact written as text (``'decision("l1", "approve")'``)
    with ``values`` omitted. A value ``None`` stands for an unknown column
    (``_``). ``depth`` > 1 explains missing premises of derived relations
    recursively, ``depth - 1`` levels further. Raises KeyError for an unknown
    relation, ValueError for a wrong number of values, and ConvergeError E540 for a
    result run without proofs.
    """
    if not getattr(result, "proofs_kept", True):
        result._need_proofs("why-not")  # E540, whatever the fact: the proofs it shows are not kept
    if values is None:
        relation, values = result.parse_fact(relation)
    program: Program = result.program
    rel = program.relations.get(relation)
    if rel is None:
        raise KeyError(f"no relation named {relation!r}")
    values = tuple(values)
    if len(values) != rel.arity:
        raise ValueError(f"{relation} has {rel.arity} column(s), got {len(values)} value(s)")
    values = tuple(float(v) if c.type == "float" and type(v) is int else v for v, c in zip(values, rel.columns))
    return _Explainer(result).explain(relation, values, max(1, depth), set())


class _Explainer:
    def __init__(self, result: Any):
        self.result = result
        self.program: Program = result.program
        self._facts: dict[str, list[tuple]] = {}
        self._index: dict[tuple[str, tuple[int, ...]], dict[tuple, list[tuple]]] = {}
        self.tier = result.tier.value
        self.cycles = result.cycles
        # (tool, arguments) -> the last outcome the run recorded for that call
        self.tool_log: dict[tuple[str, tuple, tuple], dict[str, Any]] = {}
        self.var_types: dict[str, str | None] = {}  # of the agent being explained (an empty float sum is 0.0)
        for call in getattr(result, "tool_calls", None) or ():
            self.tool_log[tool_key(call["tool"], tuple(call["args"]))] = call

    # ------------------------------------------------------------ expressions
    def ev(self, expr: ast.Expr, env: dict[str, Value]) -> Value:
        """``runtime.eval_expr``, with a tool call answered from the run's recorded calls."""
        if isinstance(expr, ast.ToolCall):
            args = [self.ev(a, env) for a in expr.args]
            call = self.tool_log.get(tool_key(expr.tool, tuple(args)))
            shown = f"@{expr.tool}({', '.join(format_value(a) for a in args)})"
            if call is None:
                raise EvalError(-1, f"the run never called {shown}, and why-not calls no tool")
            if "error" in call:
                raise EvalError(-1, f"{shown} failed in cycle {call['cycle']}: {call['error']}")
            return call["result"]
        if isinstance(expr, ast.BinOp):
            return catalogue.call(expr.op, [self.ev(expr.left, env), self.ev(expr.right, env)], -1)
        if isinstance(expr, ast.Neg):
            return catalogue.call("neg", [self.ev(expr.operand, env)], -1)
        if isinstance(expr, ast.Call):
            return call_builtin(expr.func, [self.ev(a, env) for a in expr.args])
        return eval_expr(expr, env)

    def tool_results(self, lit: ast.Comparison, env: dict[str, Value]) -> str:
        """The recorded results of the tool calls of a literal, as text ("" without any)."""
        out: list[str] = []
        stack: list[ast.Expr] = [lit.left, lit.right]
        while stack:
            e = stack.pop(0)
            if isinstance(e, ast.ToolCall):
                try:
                    args = [self.ev(a, env) for a in e.args]
                except (EvalError, KeyError):
                    continue
                call = self.tool_log.get(tool_key(e.tool, tuple(args)))
                if call is not None and "result" in call:
                    out.append(f"@{e.tool}({', '.join(format_value(a) for a in args)}) returned "
                               f"{format_value(call['result'])} in cycle {call['cycle']}")
            elif isinstance(e, ast.BinOp):
                stack += [e.left, e.right]
            elif isinstance(e, ast.Neg):
                stack.append(e.operand)
            elif isinstance(e, ast.Call):
                stack += list(e.args)
        return "; ".join(out)

    # ------------------------------------------------------------ fact access
    def facts(self, relation: str) -> list[tuple]:
        got = self._facts.get(relation)
        if got is None:
            try:
                got = self.result.facts(relation)
            except KeyError:
                got = []
            self._facts[relation] = got
        return got

    def lookup(self, relation: str, pattern: Pattern) -> list[tuple]:
        """Facts of ``relation`` equal to ``pattern`` on its known (non-None) columns, sorted."""
        cols = tuple(i for i, v in enumerate(pattern) if v is not None)
        if not cols:
            return self.facts(relation)
        # as the engine looks a value up: a tool's value of another type than the column's
        # matches nothing (1, 1.0 and true are different values), an int is widened for a float column
        columns = self.program.relations[relation].columns
        pattern = tuple(as_column(v, columns[i].type) if v is not None else None for i, v in enumerate(pattern))
        if any(v is NO_MATCH for v in pattern):
            return []
        key = (relation, cols)
        index = self._index.get(key)
        if index is None:
            index = {}
            for f in self.facts(relation):
                index.setdefault(tuple(_key(f[i]) for i in cols), []).append(f)
            self._index[key] = index
        return index.get(tuple(_key(pattern[i]) for i in cols), [])

    # ------------------------------------------------------------ explanation
    def explain(self, relation: str, pattern: Pattern, depth: int, seen: set[tuple[str, tuple]]) -> WhyNot:
        """The explanation of one fact or pattern, missing premises explained ``depth - 1``
        levels further.

        A premise's explanation is asked for by ``_explain`` yielding its arguments and
        receiving the result; this loop runs those requests on an explicit stack, so a
        chain of missing premises thousands long needs no recursion."""
        stack = [self._explain(relation, pattern, depth, seen)]
        answer: WhyNot | None = None
        while True:
            try:
                request = stack[-1].send(answer)
            except StopIteration as done:
                stack.pop()
                answer = done.value
                if not stack:
                    return answer  # type: ignore[return-value]
                continue
            stack.append(self._explain(*request))
            answer = None

    def _explain(self, relation: str, pattern: Pattern, depth: int,
                 seen: set[tuple[str, tuple]]) -> Generator[tuple[str, Pattern, int, set[tuple[str, tuple]]], WhyNot | None, WhyNot]:
        text = pattern_fact(relation, pattern)
        base = dict(relation=relation, values=pattern, tier=self.tier, cycles=self.cycles)
        matching = self.lookup(relation, pattern)
        if matching:
            fact = matching[0]
            proof = self.result.why((relation, fact))
            shown = pattern_fact(relation, fact)
            msg = f"{text} holds" if shown == text else f"{text} holds: {shown}"
            return WhyNot(status="holds", message=msg, proof=proof, holds_as=None if shown == text else shown, **base)
        dropped = self.superseded(relation, pattern)
        if dropped is not None:
            fact, by, cycle = dropped
            shown = pattern_fact(relation, fact)
            proof = self.result.why((relation, fact))
            origin = "given as input" if proof is not None and proof.proof.is_input else "derived"
            return WhyNot(status="superseded", proof=proof,
                          message=(f"{text} does not hold: {shown} was {origin}, then superseded in cycle {cycle} "
                                   f"by {pattern_fact(relation, by)} (the relation keeps one preferred fact per key)"),
                          holds_as=None if shown == text else shown, **base)
        getter = getattr(self.result, "dropped", None)
        if getter is not None and all(v is not None for v in pattern):
            info = getter(relation, tuple(pattern))  # derived, but dominance or a budget kept it out
            if info is not None:
                return WhyNot(status="dropped", message=f"{text} does not hold: it was {info['message']}",
                              notes=self.tier_notes(), **base)
        key = (relation, tuple(_key(v) for v in pattern))
        if key in seen:
            return WhyNot(status="repeated", message=f"{text} does not hold (explained above)", **base)
        seen.add(key)
        notes = self.tier_notes()
        rel = self.program.relations[relation]
        if rel.is_input:
            return WhyNot(status="input", message=f"{text} does not hold: {relation} is an input relation and no such input fact was given",
                          notes=notes, **base)
        writers = [(a, h) for a in self.program.agents for h in a.heads if h.relation == relation]
        if not writers:
            return WhyNot(status="no_rules", message=f"{text} does not hold: no agent or rule derives {relation}, and no such fact was given",
                          notes=notes, **base)
        attempts: list[Attempt] = []
        mismatches: list[Mismatch] = []
        for agent, head in writers:
            unified = _unify_head(head, pattern)
            if isinstance(unified, str):
                mismatches.append(Mismatch(agent.name, _loc(agent), _show_lit(head), unified))
                continue
            env, post, notes_h = unified
            attempt = self.attempt(agent, head, pattern, env, post, notes_h)
            if depth > 1:
                yield from self.explain_premises(agent, attempt, depth, seen)
            attempts.append(attempt)
        if not attempts:
            n = len(mismatches)
            message = (f"{text} does not hold: no agent can derive it; "
                       f"{n} agent{'s' if n != 1 else ''} write{'s' if n == 1 else ''} {relation}, but no head matches this fact")
            return WhyNot(status="no_unifying_agent", message=message, mismatches=mismatches, notes=notes, **base)
        n = len(attempts)
        message = (f"{text} does not hold (tier {self.tier}, {self.cycles} cycle{'s' if self.cycles != 1 else ''}); "
                   f"{n} agent{'s' if n != 1 else ''} could derive it")
        return WhyNot(status="explained", message=message, attempts=attempts, mismatches=mismatches, notes=notes, **base)

    def superseded(self, relation: str, pattern: Pattern) -> tuple[tuple, tuple, int] | None:
        """A fact matching the pattern that was derived and then superseded (keyed relations)."""
        getter = getattr(self.result, "superseded", None)
        if getter is None:
            return None
        try:
            rows = getter(relation)
        except (KeyError, AttributeError):
            return None
        for fact, by, cycle in rows:
            if all(p is None or _same(p, v) for p, v in zip(pattern, fact)):
                return fact, by, cycle
        return None

    def tier_notes(self) -> list[str]:
        """One note per reason the run ended below converged, saying what that reason means for a
        missing fact: only a run that stopped early might have derived it later."""
        if self.tier == "converged":
            return []
        notes: list[str] = []
        checks = {inv.name: inv.kind for inv in self.program.invariants}
        for reason in self.result.reasons:
            details = reason.details
            if reason.kind == "budget" and details.get("budget") == "min_confidence":
                what = ("the run reached its fixed point, but facts below min_confidence were dropped, "
                        "and facts that only they would have derived are missing too")
            elif reason.kind == "budget":
                what = "the run stopped on a budget before its fixed point, so the fact might have been derived later"
            elif reason.kind == "agent_skipped":
                what = "the run ended degraded"
            elif reason.kind == "acceptance" or (reason.kind == "invariant_error"
                                                 and checks.get(details.get("invariant")) == "acceptance"):
                what = ("the run reached its fixed point and then failed an acceptance check, "
                        "so every fact it derived is in the result")
            elif self.tier == "failed":
                what = "the run failed, so facts of the cycle that failed (and of later cycles) were not committed"
            else:
                what = f"the run ended {self.tier}"
            notes.append(f"{what}: {reason.message}")
        return notes or [f"the run ended {self.tier}"]

    def not_run(self, agent: AgentDef) -> str | None:
        """Why ``agent`` never ran (pruned for the goals) or its facts were discarded (skipped
        after failures), as the result records it; None when neither happened."""
        if agent.name in getattr(self.result, "pruned_agents", ()):
            goals = list(getattr(self.result, "goals", ()))
            return (f"{agent.name} was pruned: it cannot contribute to the goal{'s' if len(goals) != 1 else ''} "
                    f"{', '.join(goals)}, so it never ran")
        for reason in self.result.reasons:
            if reason.kind == "agent_skipped" and reason.details.get("agent") == agent.name:
                return f"its facts were discarded: {reason.message}"
        return None

    # ------------------------------------------------------------ one agent
    def attempt(self, agent: AgentDef, head: ast.Atom, pattern: Pattern, env0: dict[str, Value],
                post: list[tuple[int, ast.Expr]], head_notes: list[str]) -> Attempt:
        body = agent.body
        self.var_types = getattr(agent, "var_types", None) or {}
        order, stuck = _order(body, set(env0), outside_map(body, agent.heads))
        frontier: list[tuple[dict[str, Value], tuple[tuple[str, tuple], ...]]] = [(dict(env0), ())]
        steps: list[LiteralStep] = []
        blocking: int | None = None
        truncated = False
        shown: list[PartialMatch] = []
        satisfied = 0
        for k, i in enumerate(order):
            lit = body[i]
            nxt: list[tuple[dict[str, Value], tuple[tuple[str, tuple], ...]]] = []
            for env, used in frontier:
                for ext in self.extend(lit, env, used):
                    nxt.append(ext)
                    if len(nxt) >= MAX_PARTIAL:
                        break
                if len(nxt) >= MAX_PARTIAL:
                    truncated = True
                    break
            if not nxt:
                blocking = i
                steps.append(LiteralStep(i, _show_lit(lit), "blocked"))
                steps += [LiteralStep(j, _show_lit(body[j]), "not reached") for j in order[k + 1:]]
                shown = [self.blocked_match(lit, env, used) for env, used in frontier[:SHOW_MATCHES]]
                break
            satisfied += 1
            steps.append(LiteralStep(i, _show_lit(lit), "satisfied", len(nxt)))
            frontier = nxt
        steps += [LiteralStep(j, _show_lit(body[j]), "not reached") for j in stuck]
        total = len(body)
        text = _rule_text(agent)
        not_run = self.not_run(agent)
        common = dict(agent=agent.name, kind=agent.kind, description=agent.description, location=_loc(agent), rule=text,
                      head_bindings=dict(sorted(env0.items())), head_notes=head_notes, steps=steps,
                      satisfied=satisfied, total=total, truncated=truncated, not_run=not_run)
        why_not_derived = (f"; it did not: {not_run}" if not_run is not None
                           else f"; it did not, because the run ended {self.tier}" if self.tier != "converged" else "")
        if blocking is not None:
            lit = body[blocking]
            matches = len(frontier)
            inst = _show_lit(lit, frontier[0][0]) if frontier else _show_lit(lit)
            summary = (f"{satisfied} of {total} literal{'s' if total != 1 else ''} satisfied; "
                       f"no partial match satisfies {_show_lit(lit)}")
            return Attempt(blocking=blocking, blocking_text=inst, matches=matches, shown=shown,
                           outcome="blocked", summary=summary, **common)
        if stuck:  # never happens for a checked (safe) program
            summary = f"{satisfied} of {total} literals satisfied; the rest have unbound variables"
            return Attempt(blocking=stuck[0], blocking_text=_show_lit(body[stuck[0]]), matches=len(frontier),
                           shown=[PartialMatch(e, _facts_text(u), "unbound variables") for e, u in frontier[:SHOW_MATCHES]],
                           outcome="blocked", summary=summary, **common)
        # The whole body matches: check the head's computed columns.
        complete, wrong = [], []
        for env, used in frontier:
            problem = _check_post(post, env, pattern)
            (wrong if problem else complete).append((env, used, problem))
        if complete and total == 0:
            summary = "the agent has no `when` clause: it derives the fact once it runs" + why_not_derived
            return Attempt(blocking=None, blocking_text=None, matches=1, shown=[], outcome="would derive",
                           summary=summary, **common)
        if complete:
            summary = (f"all {total} literal{'s' if total != 1 else ''} are satisfied ({len(complete)} match"
                       f"{'es' if len(complete) != 1 else ''}): this agent derives the fact once it runs"
                       + why_not_derived)
            return Attempt(blocking=None, blocking_text=None, matches=len(complete),
                           shown=[PartialMatch(e, _facts_text(u), "every literal holds") for e, u, _ in complete[:SHOW_MATCHES]],
                           outcome="would derive", summary=summary, **common)
        summary = (f"all {total} literal{'s' if total != 1 else ''} are satisfied ({len(wrong)} match"
                   f"{'es' if len(wrong) != 1 else ''}), but the head computes other values")
        return Attempt(blocking=None, blocking_text=_show_lit(head), matches=len(wrong),
                       shown=[PartialMatch(e, _facts_text(u), p or "") for e, u, p in wrong[:SHOW_MATCHES]],
                       outcome="head differs", summary=summary, **common)

    def explain_premises(self, agent: AgentDef, attempt: Attempt, depth: int,
                         seen: set[tuple[str, tuple]]) -> Generator[tuple[str, Pattern, int, set[tuple[str, tuple]]], Any, None]:
        """Explain the missing instances of the literal that blocked ``attempt`` (each
        explanation is requested from ``explain``'s loop by yielding its arguments)."""
        if attempt.blocking is None or attempt.outcome != "blocked":
            return
        lit = agent.body[attempt.blocking]
        if not isinstance(lit, ast.Atom):
            return
        rel = self.program.relations.get(lit.relation)
        if rel is None or rel.is_input:
            return
        patterns: list[Pattern] = []
        for m in attempt.shown:
            if _constrained(lit, m.bindings):
                continue  # `q(y, y)`: a pattern with `_` would ask for far less than the literal does
            p = _instantiate(lit, m.bindings)
            if p not in patterns:
                patterns.append(p)
        for p in patterns[:MAX_PREMISES]:
            attempt.premises.append((yield (lit.relation, p, depth - 1, seen)))

    # ------------------------------------------------------------ literal evaluation
    def extend(self, lit: ast.Literal, env: dict[str, Value],
               used: tuple[tuple[str, tuple], ...]) -> Iterator[tuple[dict[str, Value], tuple[tuple[str, tuple], ...]]]:
        """Every extension of a partial match by one literal."""
        if isinstance(lit, ast.Atom):
            for fact, new in self.match_atom(lit, env):
                yield new, used + ((lit.relation, fact),)
            return
        if isinstance(lit, ast.Negation):
            try:
                if not self.negation_blockers(lit, env):
                    yield env, used
            except EvalError:
                pass
            return
        if isinstance(lit, ast.Condition):
            try:
                if bool(self.ev(lit.call, env)) != lit.negated:
                    yield env, used
            except (EvalError, TypeError, ValueError, AttributeError, IndexError):
                pass
            return
        if isinstance(lit, ast.Fail):
            return  # reaching `fail` makes the agent fail: it derives nothing
        assert isinstance(lit, ast.Comparison)
        new = self.comparison(lit, env)
        if isinstance(new, dict):
            yield new, used

    def match_atom(self, atom: ast.Atom, env: dict[str, Value]) -> Iterator[tuple[tuple, dict[str, Value]]]:
        pattern: list[Value | None] = []
        later: list[tuple[int, ast.Expr]] = []
        for arg in atom.args:
            if isinstance(arg, ast.Const):
                pattern.append(arg.value)
            elif isinstance(arg, ast.Var):
                pattern.append(env.get(arg.name))
            elif isinstance(arg, ast.Wildcard):
                pattern.append(None)
            elif set(ast.expr_vars(arg)) <= set(env):
                try:
                    pattern.append(self.ev(arg, env))
                except EvalError:
                    return
            else:
                pattern.append(None)
                later.append((len(pattern) - 1, arg))
        for fact in self.lookup(atom.relation, tuple(pattern)):
            new = dict(env)
            ok = True
            for arg, value in zip(atom.args, fact):
                if isinstance(arg, ast.Var) and arg.name not in env:
                    if arg.name in new and not _same(new[arg.name], value):
                        ok = False
                        break
                    new[arg.name] = value
            if ok:
                for col, expr in later:
                    try:
                        if not _same(self.ev(expr, new), fact[col]):
                            ok = False
                            break
                    except (EvalError, KeyError):
                        ok = False
                        break
            if ok:
                yield fact, new

    def negation_blockers(self, lit: ast.Negation, env: dict[str, Value]) -> list[tuple]:
        pattern = tuple(None if isinstance(a, ast.Wildcard) else self.ev(a, env) for a in lit.atom.args)
        return self.lookup(lit.atom.relation, pattern)

    def comparison(self, lit: ast.Comparison, env: dict[str, Value]) -> dict[str, Value] | str:
        """The extended bindings, or the reason the comparison fails."""
        agg_side = ast.aggregate_side(lit)
        try:
            if agg_side is not None:
                agg, other = agg_side
                value = self.aggregate(agg, env)
                if value is None:
                    return f"{_show_agg(agg, env)} has no value: its group is empty"
                if isinstance(other, ast.Var) and other.name not in env:
                    return {**env, other.name: value}
                expected = self.ev(other, env)
                left, right = (expected, value) if agg is lit.right else (value, expected)
                if _compare(lit.op, left, right):
                    return env
                if lit.op == "=":
                    return f"{_show_agg(agg, env)} = {format_value(value)}, not {format_value(expected)}"
                return (f"{_show_agg(agg, env)} = {format_value(value)}, so "
                        f"{format_value(left)} {lit.op} {format_value(right)} is false")
            if lit.op == "=":
                for var_side, expr_side in ((lit.left, lit.right), (lit.right, lit.left)):
                    if isinstance(var_side, ast.Var) and var_side.name not in env:
                        return {**env, var_side.name: self.ev(expr_side, env)}
            a, b = self.ev(lit.left, env), self.ev(lit.right, env)
            if _compare(lit.op, a, b):
                return env
            tools = self.tool_results(lit, env)
            return f"{_show_lit(lit, env)} is false" + (f": {tools}" if tools else "")
        except EvalError as err:
            return f"{_show_lit(lit, env)}: {err.message}"
        except _CompareError as err:
            return f"{_show_lit(lit, env)}: {err}"

    def aggregate(self, agg: ast.Aggregate, env: dict[str, Value]) -> Value | None:
        inner = agg.body
        order, stuck = _order(inner, set(env), {j: set(env) for j in range(len(inner))})
        matches: list[tuple[dict[str, Value], tuple]] = [(dict(env), ())]
        if stuck:
            raise EvalError(-1, "the aggregate has unbound variables")
        for i in order:
            nxt = []
            for e, used in matches:
                nxt.extend(self.extend(inner[i], e, used))
            matches = nxt
            if not matches:
                break
        distinct: dict[tuple, Value | None] = {}
        for e, used in matches:
            value = e.get(agg.value.name) if agg.value is not None else None
            distinct.setdefault((used, _key(value)), value)
        value_type = self.var_types.get(agg.value.name) if agg.value is not None else None
        value = catalogue.aggregate(agg.op, list(distinct.values()), -1, value_type)  # type: ignore[arg-type]
        return None if value is catalogue.NO_RESULT else value

    def blocked_match(self, lit: ast.Literal, env: dict[str, Value], used: tuple[tuple[str, tuple], ...]) -> PartialMatch:
        m = PartialMatch({k: v for k, v in env.items()}, _facts_text(used))
        if isinstance(lit, ast.Atom):
            rel = self.program.relations.get(lit.relation)
            m.reason = f"no fact matches {_atom_shape(lit, env)}"
            if rel is not None and rel.is_input:
                m.reason += f" ({lit.relation} is an input relation)"
            elif rel is not None and not self.facts(lit.relation):
                m.reason += f" ({lit.relation} is empty)"
        elif isinstance(lit, ast.Negation):
            try:
                blockers = self.negation_blockers(lit, env)
            except EvalError as err:
                m.reason = f"{_show_lit(lit, env)}: {err.message}"
                return m
            fact = blockers[0]
            m.blocker = pattern_fact(lit.atom.relation, fact)
            more = f" (and {len(blockers) - 1} more)" if len(blockers) > 1 else ""
            m.reason = f"{_show_lit(lit, env)} fails: {m.blocker} holds{more}"
            m.blocker_proof = self.result.why((lit.atom.relation, fact))
        elif isinstance(lit, ast.Condition):
            try:
                value = self.ev(lit.call, env)
                m.reason = f"{_show_lit(lit, env)} is false" if not lit.negated else f"{show_expr(lit.call, env)} is {format_value(value)}"
            except (EvalError, TypeError, ValueError, AttributeError, IndexError) as err:
                m.reason = f"{_show_lit(lit, env)}: {getattr(err, 'message', err)}"
        elif isinstance(lit, ast.Fail):
            m.reason = f"fail {dumps_json(lit.message, ensure_ascii=False)}: the agent fails when it reaches this literal"
        else:
            assert isinstance(lit, ast.Comparison)
            got = self.comparison(lit, env)
            m.reason = got if isinstance(got, str) else "satisfied"
        return m


# ------------------------------------------------------------------ helpers

class _CompareError(Exception):
    pass


def _key(v: Any) -> Any:
    """A hashable key that keeps true and 1 apart."""
    return (type(v) is bool, v)


def _same(a: Value, b: Value) -> bool:
    return (type(a) is bool) == (type(b) is bool) and a == b


def _compare(op: str, a: Value, b: Value) -> bool:
    num_a = isinstance(a, (int, float)) and not isinstance(a, bool)
    num_b = isinstance(b, (int, float)) and not isinstance(b, bool)
    if not ((num_a and num_b) or type(a) is type(b)):
        raise _CompareError(f"cannot compare {type_name(a)} and {type_name(b)}")
    return compare(op, a, b)


def _vars(e: ast.Expr) -> set[str]:
    return set(ast.expr_vars(e))


def _order(body: tuple[ast.Literal, ...], bound: set[str], outside: dict[int, set[str]]) -> tuple[list[int], list[int]]:
    """Body order, except that a literal whose variables are not bound yet waits until they are.

    Returns the evaluation order and the literals that never become ready
    (none in a safe program). ``fail`` literals come last."""
    bound = set(bound)
    order: list[int] = []
    waiting: list[int] = []
    fails = [i for i, lit in enumerate(body) if isinstance(lit, ast.Fail)]

    def take(i: int) -> bool:
        lit = body[i]
        if isinstance(lit, ast.Atom):
            own = bound | {a.name for a in lit.args if isinstance(a, ast.Var)}
            if any(not isinstance(a, (ast.Var, ast.Wildcard, ast.Const)) and not _vars(a) <= own for a in lit.args):
                return False
            bound.update(a.name for a in lit.args if isinstance(a, ast.Var))
            return True
        if isinstance(lit, ast.Negation):
            return set(ast.literal_vars(lit)) <= bound
        if isinstance(lit, ast.Condition):
            return _vars(lit.call) <= bound
        assert isinstance(lit, ast.Comparison)
        side = ast.aggregate_side(lit)
        if side is not None:
            agg, other = side
            group = aggregate_vars(agg) & outside.get(i, set())
            if not group <= bound:
                return False
            if isinstance(other, ast.Var) and other.name not in bound:
                bound.add(other.name)
                return True
            return _vars(other) <= bound
        left, right = _vars(lit.left), _vars(lit.right)
        if left <= bound and right <= bound:
            return True
        if lit.op == "=":
            if isinstance(lit.left, ast.Var) and lit.left.name not in bound and right <= bound:
                bound.add(lit.left.name)
                return True
            if isinstance(lit.right, ast.Var) and lit.right.name not in bound and left <= bound:
                bound.add(lit.right.name)
                return True
        return False

    for i in range(len(body)):
        if i in fails:
            continue
        if not take(i):
            waiting.append(i)
            continue
        order.append(i)
        progressed = True
        while progressed:
            progressed = False
            for j in list(waiting):
                if take(j):
                    waiting.remove(j)
                    order.append(j)
                    progressed = True
    return order + ([] if waiting else fails), waiting + (fails if waiting else [])


def _unify_head(head: ast.Atom, pattern: Pattern) -> tuple[dict[str, Value], list[tuple[int, ast.Expr]], list[str]] | str:
    """Bindings making the head equal to the fact, the computed columns to check
    after the body matched, and notes; or the reason they cannot unify."""
    env: dict[str, Value] = {}
    computed: list[tuple[int, ast.Expr]] = []
    for col, (arg, value) in enumerate(zip(head.args, pattern)):
        if value is None:
            if not isinstance(arg, (ast.Var, ast.Const)):
                computed.append((col, arg))
            continue
        if isinstance(arg, ast.Var):
            if arg.name in env and not _same(env[arg.name], value):
                return (f"its head {_show_lit(head)} needs {arg.name} = {format_value(env[arg.name])} and "
                        f"{arg.name} = {format_value(value)} at once")
            env[arg.name] = value
        elif isinstance(arg, ast.Const):
            if not _same(arg.value, value):
                return f"its head {_show_lit(head)} has {format_value(arg.value)} in column {col + 1}, the fact {format_value(value)}"
        else:
            computed.append((col, arg))
    notes: list[str] = []
    post: list[tuple[int, ast.Expr]] = []
    for col, expr in computed:
        if pattern[col] is None:
            continue
        if _vars(expr) <= set(env):
            try:
                got = eval_expr(expr, env)
            except EvalError as err:
                return f"its head computes column {col + 1} as {show_expr(expr)}, which fails: {err.message}"
            if not _same(got, pattern[col]):
                return (f"its head computes column {col + 1} as {show_expr(expr, env)} = {format_value(got)}, "
                        f"the fact has {format_value(pattern[col])}")
        else:
            notes.append(f"column {col + 1} is computed as {show_expr(expr)}: checked once the body matches")
            post.append((col, expr))
    return env, post, notes


def _check_post(post: list[tuple[int, ast.Expr]], env: dict[str, Value], pattern: Pattern) -> str | None:
    for col, expr in post:
        try:
            got = eval_expr(expr, env)
        except (EvalError, KeyError) as err:
            return f"the head's {show_expr(expr)} cannot be computed: {getattr(err, 'message', err)}"
        if not _same(got, pattern[col]):
            return f"the head computes {show_expr(expr)} = {format_value(got)}, not {format_value(pattern[col])}"
    return None


def _instantiate(atom: ast.Atom, env: dict[str, Value]) -> Pattern:
    out: list[Value | None] = []
    for arg in atom.args:
        if isinstance(arg, ast.Const):
            out.append(arg.value)
        elif isinstance(arg, ast.Var):
            out.append(env.get(arg.name))
        elif isinstance(arg, ast.Wildcard):
            out.append(None)
        else:
            try:
                out.append(eval_expr(arg, env))
            except (EvalError, KeyError):
                out.append(None)
    return tuple(out)


def _constrained(atom: ast.Atom, env: dict[str, Value]) -> bool:
    """Whether the atom asks more of an unknown column than a pattern with `_` can say: a
    variable not bound yet that occurs twice (``q(y, y)``), or an expression over one
    (``q(y, y + 1)``)."""
    unbound = [a.name for a in atom.args if isinstance(a, ast.Var) and a.name not in env]
    if len(unbound) != len(set(unbound)):
        return True
    return any(not isinstance(a, (ast.Var, ast.Const, ast.Wildcard)) and not _vars(a) <= set(env) for a in atom.args)


def _atom_shape(atom: ast.Atom, env: dict[str, Value]) -> str:
    """The atom under the bindings: known columns as values, an unknown one as `_`, except a
    variable not bound yet that occurs twice, alone or in an expression (kept by name:
    ``q(1, y, y)``, ``q(y, y + 1)``), whose constraint `_` would drop."""
    unbound = [v for a in atom.args if not isinstance(a, ast.Wildcard) for v in ast.expr_vars(a) if v not in env]
    parts: list[str] = []
    for arg, value in zip(atom.args, _instantiate(atom, env)):
        if value is not None:
            parts.append(format_value(value))
        elif isinstance(arg, ast.Var) and unbound.count(arg.name) > 1:
            parts.append(arg.name)
        elif isinstance(arg, (ast.Var, ast.Wildcard)):
            parts.append("_")
        else:
            parts.append(show_expr(arg, env))
    return f"{atom.relation}({', '.join(parts)})"


def _show_lit(lit: ast.Literal, env: dict[str, Value] | None = None) -> str:
    """Like the shared printer, but an aggregate shows its group variables' values."""
    if ast.aggregate_side(lit) is None:
        return show_literal(lit, env)
    assert isinstance(lit, ast.Comparison)
    sides = [_show_agg(e, env or {}) if isinstance(e, ast.Aggregate) else show_expr(e, env) for e in (lit.left, lit.right)]
    return f"{sides[0]} {lit.op} {sides[1]}"


def _show_agg(agg: ast.Aggregate, env: dict[str, Value]) -> str:
    """An aggregate with its group variables replaced by their values."""
    local = {k: v for k, v in env.items() if agg.value is None or k != agg.value.name}
    head = agg.op if agg.value is None else f"{agg.op} {agg.value.name}"
    return f"{head} {{ {', '.join(_show_lit(lit, local) for lit in agg.body)} }}"


def _rule_text(agent: AgentDef) -> str:
    heads = ", ".join(_show_lit(h) for h in agent.heads)
    body = ", ".join(_show_lit(lit) for lit in agent.body)
    if agent.kind == "rule":
        return f"{heads} :- {body}." if body else f"{heads}."
    return (f"when {body} emit {heads}" if body else f"emit {heads}")


def _loc(agent: AgentDef) -> str:
    from ..textsafe import one_line

    return f"{one_line(agent.span.file)}:{agent.span.line}"  # a line break in a name would start a line


def _facts_text(used: tuple[tuple[str, tuple], ...]) -> list[str]:
    return [pattern_fact(r, f) for r, f in used]


# ------------------------------------------------------------------ rendering

def render_text(w: WhyNot, indent: str = "") -> str:
    """The explanation as text; premises explained further are indented under their agent."""
    lines: list[str] = []
    stack = [iter(_text_items(w, indent))]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
        elif isinstance(item, str):
            lines.append(item)
        else:  # a premise's explanation: its lines go here
            stack.append(iter(_text_items(*item)))
    return "\n".join(lines)


def _text_items(w: WhyNot, indent: str) -> list[str | tuple[WhyNot, str]]:
    """The lines of one explanation, with (premise, indent) standing for a nested one."""
    lines: list[str | tuple[WhyNot, str]] = []
    out = lines.append
    if w.status in ("holds", "superseded"):
        out(f"{indent}{w.message}")
        if w.proof is not None:
            for line in render_proof_text(w.proof).split("\n"):  # not splitlines: a value may hold U+2028
                out(f"{indent}  {line}")
        return lines
    out(f"{indent}{w.message}")
    for note in w.notes:
        out(f"{indent}note: {note}")
    for a in w.attempts:
        out("")
        label = "agent" if a.kind == "agent" else "rule"
        desc = f" {format_value(a.description)}" if a.description else ""  # as written in the rules: one line
        out(f"{indent}{label} {a.agent}{desc} at {a.location}")
        out(f"{indent}  {a.rule}")
        if a.head_bindings:
            out(f"{indent}  head matches the fact with {_bind_text(a.head_bindings)}")
        for note in a.head_notes:
            out(f"{indent}  note: {note}")
        if a.not_run is not None and a.outcome != "would derive":
            out(f"{indent}  note: {a.not_run}")
        width = min(48, max((len(s.text) for s in a.steps), default=0))
        for s in a.steps:
            mark = {"satisfied": "✓", "blocked": "✗", "not reached": "·"}[s.status]
            tail = (f"{s.matches} partial match{'es' if s.matches != 1 else ''}" if s.status == "satisfied"
                    else "no partial match satisfies it" if s.status == "blocked" else "not reached")
            out(f"{indent}  {mark} {s.index + 1}. {s.text.ljust(width)}  {tail}")
        out(f"{indent}  {a.summary}")
        if a.truncated:
            out(f"{indent}  note: the search kept only the first {MAX_PARTIAL} partial matches per literal")
        if a.shown:
            head = {"blocked": "deepest partial match", "would derive": "match", "head differs": "match"}[a.outcome]
            n = a.matches
            out(f"{indent}  {head}{'es' if n != 1 else ''} ({n}{', first ' + str(len(a.shown)) + ' shown' if n > len(a.shown) else ''}):")
            for m in a.shown:
                binding = _bind_text(m.bindings) or "(no bindings)"
                via = f"  from {', '.join(m.facts)}" if m.facts else ""
                out(f"{indent}    {binding}{via}")
                if m.reason:
                    out(f"{indent}      {'✗ ' if a.outcome != 'would derive' else ''}{m.reason}")
                if m.blocker_proof is not None:
                    out(f"{indent}      proof of {m.blocker}:")
                    for line in render_proof_text(m.blocker_proof).split("\n"):
                        out(f"{indent}        {line}")
        for p in a.premises:
            out(f"{indent}  why not {p.text}:")
            out((p, indent + "    "))
    if w.mismatches:
        out("")
        out(f"{indent}agents writing {w.relation} that cannot produce this fact:")
        for m in w.mismatches:
            out(f"{indent}  {m.agent} at {m.location}: {m.reason}")
    return lines


def render_json(w: WhyNot) -> str:
    """The explanation as indented JSON, written without recursion (see render.dumps_tree_json)."""
    return dumps_tree_json(w.to_json())


RENDERERS = {"text": render_text, "json": render_json}
