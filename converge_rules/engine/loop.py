"""The fixed-point engine: parallel compute, serialized commit.

Each cycle: the eligible agents (dirty since they last ran, ready — every
relation they negate or aggregate is complete —, not pruned, capped by
``max_agents_per_cycle`` by priority then declaration order) compute against
the same snapshot into effect buffers. Tool calls they need are batched and
run concurrently between compute rounds; an agent that fails is retried on
the same snapshot, then skipped or the job aborted, by its policy. Buffers
merge in ascending agent id, then emission order, applying dominance and
budgets; structural invariants check the merge (a violation rolls it back
and fails the job). At the fixed point the acceptance invariants run.
Nothing here iterates a set to decide order.
"""

from __future__ import annotations

import math
import time
from itertools import repeat
from operator import itemgetter
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Mapping

from ..compile.graph import Strata, body_reads, goal_pruned
from ..compile.program import FailurePolicy, InvariantDef, Program
from ..diagnostics import Span
from ..syntax import ast
from ..values import format_fact
from .codegen import PENDING, CodeCache, RuleCode
from .effects import INPUT_PROOF, EffectBuffer, Match
from .runtime import COLUMN_BYTES, FACT_BYTES, EvalError, SizeExceeded, StepsExceeded
from .store import Context, RelationStore
from .tools import ProcessPool, StuckCalls, ToolKey, ToolOutcome, call_batch, tool_key

DEFAULT_MAX_CYCLES = 100_000
DEFAULT_MAX_FACTS = 10_000_000
DEFAULT_MAX_BYTES = 256 * 1024 * 1024  # counted bytes: a run (digest and output included) stays near 1 GB
_CHECKPOINT = 1 << 20  # inside a cycle, max_bytes and the time-out are checked every MiB counted
_TICKS = 1 << 14  # with a time-out, it is also checked every 16,384 iterations of a join's loops


class Tier(str, Enum):
    """Outcome of a job, best to worst."""

    CONVERGED = "converged"
    DEGRADED = "degraded"
    BOUNDED = "bounded"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


_RANK = {Tier.CONVERGED: 0, Tier.DEGRADED: 1, Tier.BOUNDED: 2, Tier.FAILED: 3}


def worst(a: Tier, b: Tier) -> Tier:
    return a if _RANK[a] >= _RANK[b] else b


@dataclass(frozen=True)
class Budget:
    """Limits on a job; None means the rule files' setting, then the default."""

    max_cycles: int | None = None
    max_facts: int | None = None
    max_agents_per_cycle: int | None = None
    max_steps: int | None = None
    min_confidence: float | None = None
    max_bytes: int | None = None
    timeout: float | None = None   # wall-clock seconds; not deterministic, so never in a rule file

    def __post_init__(self) -> None:
        """Refuse what the rule files (E206) and the command line refuse: a count that is not a
        whole number >= 0 (>= 1 for max_agents_per_cycle), a min_confidence outside [0, 1], a
        timeout that is not a finite number of seconds > 0. ValueError names the setting."""
        for name in ("max_cycles", "max_facts", "max_agents_per_cycle", "max_steps", "max_bytes"):
            value = getattr(self, name)
            low = 1 if name == "max_agents_per_cycle" else 0
            if value is not None and (type(value) is not int or value < low):
                raise ValueError(f"Budget {name} must be an int >= {low} or None, not {value!r}")
        for name, ok in (("min_confidence", lambda v: 0 <= v <= 1), ("timeout", lambda v: v > 0)):
            value = getattr(self, name)
            if value is not None and (type(value) not in (int, float) or not math.isfinite(value) or not ok(value)):
                what = "a number in [0, 1]" if name == "min_confidence" else "a finite number of seconds > 0"
                raise ValueError(f"Budget {name} must be {what} or None, not {value!r}")

    def merged_over(self, file_budget: Mapping[str, Any]) -> "Budget":
        """Explicit settings (API, CLI) override the rule files' budget."""
        def pick(name: str, default: Any) -> Any:
            mine = getattr(self, name)
            return mine if mine is not None else file_budget.get(name, default)

        return Budget(pick("max_cycles", DEFAULT_MAX_CYCLES), pick("max_facts", DEFAULT_MAX_FACTS),
                      pick("max_agents_per_cycle", None), pick("max_steps", None), pick("min_confidence", None),
                      pick("max_bytes", DEFAULT_MAX_BYTES), self.timeout)

    def to_json(self) -> dict[str, Any]:
        return {"max_cycles": self.max_cycles, "max_facts": self.max_facts,
                "max_agents_per_cycle": self.max_agents_per_cycle, "max_steps": self.max_steps,
                "min_confidence": self.min_confidence, "max_bytes": self.max_bytes, "timeout": self.timeout}


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
    fired: tuple[int, ...] = ()     # agents that committed at least one new fact, by id
    steps: int = 0
    confidence: dict[str, dict[tuple, float]] | None = None
    alternatives: dict[str, dict[tuple, list[tuple]]] | None = None
    dropped: dict[str, dict[tuple, tuple[str, int, Any]]] = field(default_factory=dict)
    # input facts whose proof a more confident derivation replaced: relation -> fact -> the
    # confidence they were given with (a decision record gives them to its replay again)
    replaced_inputs: dict[str, dict[tuple, float]] = field(default_factory=dict)
    # with analyze: agent name -> (its last plan per driver, rows out of each step per driver)
    analysis: dict[str, tuple[dict[Any, Any], dict[Any, dict[int, int]]]] | None = None
    bytes: int = 0                  # what the facts count against max_bytes
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # every tool call with its outcome, in order
    pruned: tuple[int, ...] = ()    # agents pruned for the goals (never ran), by id


def _bytes_of(columns: Any, facts: list[tuple]) -> int:
    """runtime.fact_bytes summed over facts of one relation, a column at a time."""
    total = (FACT_BYTES + COLUMN_BYTES * len(columns)) * len(facts)
    for k, col in enumerate(columns):
        if col.type == "str":
            total += sum(map(len, map(itemgetter(k), facts)))
        elif col.type == "int":
            wide = [b for b in map(int.bit_length, map(itemgetter(k), facts)) if b > 64]
            total += (sum(wide) - 64 * len(wide)) << 4
    return total


class _AgentState:
    __slots__ = ("code", "heads", "pos_rels", "nonmono_rels", "marks", "ran", "id", "reads", "seen",
                 "name", "priority", "policy")

    def __init__(self, code: RuleCode, body: tuple[ast.Literal, ...], heads: tuple[ast.Atom, ...], rid: int,
                 name: str, priority: int = 0, policy: FailurePolicy | None = None):
        self.code = code
        self.id = rid
        self.name = name
        self.heads = heads
        self.priority = priority
        self.policy = policy
        self.pos_rels = list(dict.fromkeys(lit.relation for lit in body if isinstance(lit, ast.Atom)))
        self.nonmono_rels = list(dict.fromkeys(rel for rel, kind, _ in body_reads(body) if kind != "positive"))
        self.marks = {r: 0 for r in self.pos_rels}
        self.ran = False
        self.reads = list(dict.fromkeys(rel for rel, _kind, _ in body_reads(body)))
        self.seen: dict[str, int] | None = None


class _Failed(Exception):
    """An agent failed for good under ``abort``."""

    def __init__(self, reason: Reason):
        self.reason = reason


TraceSink = Callable[[dict[str, Any]], None]



def check_tool_settings(workers: Any, tool_timeout: Any) -> None:
    """ValueError naming the setting unless ``workers`` is an int and ``tool_timeout`` a finite
    number of seconds > 0 or None (no limit): the one rule for the engine, sessions and the API."""
    if type(workers) is not int:
        raise ValueError(f"workers must be an int (at least 1 is used), not {workers!r}")
    if tool_timeout is not None and (type(tool_timeout) not in (int, float) or not math.isfinite(tool_timeout)
                                     or tool_timeout <= 0):
        raise ValueError(f"tool_timeout must be a finite number of seconds > 0 or None (no limit), not {tool_timeout!r}")


class Engine:
    def __init__(self, program: Program, strata: Strata, budget: Budget, *,
                 tools: Mapping[str, Callable[..., Any]] | None = None, workers: int = 4,
                 tool_timeout: float | None = 30.0, on_failure: FailurePolicy | None = None,
                 goals: tuple[str, ...] = (), trace: TraceSink | None = None,
                 replay_tools: Mapping[ToolKey, list[ToolOutcome]] | None = None,
                 progress: Callable[[int, int, int], None] | None = None,
                 input_confidence: Mapping[str, Mapping[tuple, float]] | None = None,
                 all_proofs: bool = False, tool_isolation: str = "thread", analyze: bool = False,
                 code_cache: CodeCache | None = None, proofs: bool = True, stuck_calls: StuckCalls | None = None,
                 tool_pool: ProcessPool | None = None):
        self.program = program
        self.stuck_calls = stuck_calls  # the owner's bound on threads of abandoned tool calls
        self.proofs = proofs  # False: no premises recorded (no explanations; see Result.proofs_kept)
        self.code_cache = code_cache  # the rule set's plans and compiled code, reused across runs
        self.tool_isolation = tool_isolation
        # worker processes, started on the first tool call; or the owner's (a session's), kept after the job
        self.pool: ProcessPool | None = tool_pool
        self.own_pool = tool_pool is None
        # relation -> fact -> other derivations (besides the recorded first one), when asked for
        self.alternatives: dict[str, dict[tuple, list[tuple]]] | None = {} if all_proofs else None
        # relation -> fact -> (why it was dropped, cycle, detail): derived but never committed
        self.dropped: dict[str, dict[tuple, tuple[str, int, Any]]] = {}
        self.replaced_inputs: dict[str, dict[tuple, float]] = {}
        self.strata = strata
        self.budget = budget
        self.tools = dict(tools or {})
        check_tool_settings(workers, tool_timeout)
        self.workers = max(1, workers)
        self.tool_timeout = tool_timeout
        self.default_policy = on_failure or FailurePolicy()
        self.trace = trace
        self.replay_tools = {k: list(v) for k, v in replay_tools.items()} if replay_tools is not None else None
        self.progress = progress
        self.memo: dict[ToolKey, Any] = {}
        self.tool_log: list[dict[str, Any]] = []  # kept even without a trace: a decision record needs it
        self.tool_errors: dict[ToolKey, str] = {}
        self.requests: dict[ToolKey, None] = {}
        self.current_check: RuleCode | None = None  # the invariant being evaluated, for error reports
        self.waiting = False             # the agent being computed needs a tool result not known yet
        self.touched: set[ToolKey] = set()  # tool calls the agent being computed looked up
        self.steps: list[int] | None = [0, budget.max_steps] if budget.max_steps is not None else None
        # max_bytes: [bytes counted, next checkpoint, checkpoint hook], shared with the generated code
        self.deadline = time.monotonic() + budget.timeout if budget.timeout is not None else None
        self.size: list[Any] = [0, 0, self._checkpoint]
        self._next_checkpoint()
        # with a time-out: [loop iterations, next check, hook], so a join that derives nothing
        # (no byte is counted) still stops in time; without one no code counts them
        self.ticks: list[Any] | None = [0, _TICKS, self._tick] if self.deadline is not None else None
        keys = {name: rel.key for name, rel in program.relations.items() if rel.key is not None}
        self.context = Context({name: rel.arity for name, rel in program.relations.items()}, keys)
        uses_confidence = (bool(input_confidence and any(input_confidence.values()))
                           or any(a.confidence < 1.0 for a in program.agents) or budget.min_confidence is not None)
        # per relation: fact -> confidence, only for facts below 1 (None when the job has no confidence at all)
        self.conf: dict[str, dict[tuple, float]] | None = (
            {name: dict(input_confidence.get(name, {})) if input_confidence else {} for name in program.relations}
            if uses_confidence else None)
        if self.alternatives is not None and uses_confidence:
            self.alternatives = None  # alternative proofs are recorded for jobs without confidence only
        self.analyze = analyze  # count the rows out of every plan step (converge plan --facts)
        self.agents = [_AgentState(RuleCode(a, program, self.context, tool_call=self._tool, steps=self.steps,
                                            confidence=self.conf, alternatives=self.alternatives is not None,
                                            analyze={} if analyze else None, size=self.size, cache=code_cache,
                                            proofs=proofs, ticks=self.ticks),
                                   a.body, a.heads, a.id, a.name, a.priority, a.on_failure)
                       for a in program.agents]
        self.structural = [_AgentState(RuleCode(i, program, self.context, invariant=True, tool_call=self._tool, cache=code_cache,
                                                ticks=self.ticks), i.body, (), i.id, i.name)
                           for i in program.invariants if i.kind == "invariant"]
        self.acceptance = [i for i in program.invariants if i.kind == "acceptance"]
        self.total = 0
        self.fired: set[int] = set()
        self.journal: list[tuple] | None = None  # the current merge's undo entries, when an invariant may reject it
        self.pruned = self._prune(goals)

    # ---------------------------------------------------------------- size and time
    def _next_checkpoint(self) -> None:
        used, limit = self.size[0], self.budget.max_bytes
        self.size[1] = used + _CHECKPOINT if limit is None else min(limit, used + _CHECKPOINT)

    def _checkpoint(self) -> None:
        """Called by generated code when the byte count passes a checkpoint (a pure function
        of the job, so max_bytes stops every run at the same fact); also checks the time-out."""
        limit = self.budget.max_bytes
        if limit is not None and self.size[0] > limit:
            raise SizeExceeded("max_bytes")
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise SizeExceeded("timeout")
        self._next_checkpoint()

    def _tick(self) -> None:
        """Called by generated code every _TICKS loop iterations when the job has a time-out."""
        assert self.ticks is not None and self.deadline is not None
        if time.monotonic() > self.deadline:
            raise SizeExceeded("timeout")
        self.ticks[1] = self.ticks[0] + _TICKS

    def _size_reason(self, exc: SizeExceeded, cycle: int, between: bool = False, when: str | None = None) -> Reason:
        if exc.budget == "timeout":
            limit = self.budget.timeout
            where = when or (f"after cycle {cycle}" if between else f"in cycle {cycle}; the cycle was not committed")
            return Reason("budget", f"timeout of {limit:g} s reached {where}. "
                                    "Wall-clock time is not deterministic: the same job may stop at another point",
                          {"budget": "timeout", "limit": limit, "cycle": cycle, "deterministic": False})
        limit = self.budget.max_bytes
        where = f"in cycle {cycle}" if cycle else "by the input facts"
        return Reason("budget", f"max_bytes exhausted {where}: the facts count {self.size[0]} bytes, the budget is {limit}"
                                + ("; the cycle was not committed" if cycle else ""),
                      {"budget": "max_bytes", "limit": limit, "reached": self.size[0], "cycle": cycle})

    # ---------------------------------------------------------------- set-up
    def _emit(self, event: dict[str, Any]) -> None:
        if self.trace is not None:
            self.trace(event)

    def _prune(self, goals: tuple[str, ...]) -> set[int]:
        """Agents that cannot contribute to a goal (or to a relation an invariant reads)."""
        return set(goal_pruned(self.program, self.strata, goals))

    def load(self, facts: dict[str, list[tuple]]) -> None:
        """Commit canonicalised input facts (sorted, distinct) before cycle 1; input facts
        below min_confidence are dropped like derived ones."""
        floor = self.budget.min_confidence
        for name, items in facts.items():
            store = self.context[name]
            weak = self.conf.get(name) if self.conf is not None and floor is not None else None
            if weak:
                kept = [f for f in items if weak.get(f, 1.0) >= floor]  # type: ignore[operator]
                for f in items:
                    if weak.get(f, 1.0) < floor:  # type: ignore[operator]
                        self.dropped.setdefault(name, {}).setdefault(f, ("min_confidence", 0, weak[f]))
                        del weak[f]
                items = kept
            if store.key is not None:
                self._commit(store, [(f, INPUT_PROOF) for f in items], 0, None, None)
                continue
            store.facts.update(zip(items, repeat(INPUT_PROOF)))  # no temporary dict of half a million facts
            store.order.extend(items)
            self.total += len(items)
        self.size[0] += sum(_bytes_of(self.program.relations[name].columns, items) for name, items in facts.items())
        self._next_checkpoint()

    # ---------------------------------------------------------------- tools
    def _tool(self, name: str, args: tuple, sid: int) -> Any:
        key = tool_key(name, args)
        self.touched.add(key)
        value = self.memo.get(key, PENDING)
        if value is not PENDING:
            return value
        error = self.tool_errors.get(key)
        if error is not None:
            raise EvalError(sid, error)
        self.requests[key] = None
        self.waiting = True
        return PENDING

    def _run_tools(self, cycle: int) -> None:
        keys = list(self.requests)
        self.requests = {}
        if self.replay_tools is not None:  # recorded outcomes, consumed in the order they were recorded
            outcomes = {}
            for k in keys:
                recorded = self.replay_tools.get(k)
                outcomes[k] = recorded.pop(0) if recorded else ToolOutcome(False, error=f"tool {k[0]} has no recorded result for {list(k[1])!r}")
        else:
            if self.tool_isolation == "process" and self.pool is None:
                self.pool = ProcessPool(self.tools, self.workers)
            outcomes = call_batch(keys, self.tools, self.workers, self.tool_timeout, self.tool_isolation, self.pool,
                                  self.deadline, self.stuck_calls)
        for key in keys:  # recorded in request order, never completion order
            out = outcomes[key]
            call = {"cycle": cycle, "tool": key[0], "args": list(key[1]), **out.to_json()}
            self.tool_log.append(call)
            self._emit({"event": "tool", **call})
            if out.ok:
                self.memo[key] = out.value
            else:
                self.tool_errors[key] = out.error

    # ---------------------------------------------------------------- run
    def run(self) -> Outcome:
        try:
            outcome = self._run()
        finally:
            if self.pool is not None and self.own_pool:  # no worker process of its own outlives the job
                self.pool.close()
                self.pool = None
        outcome.fired = tuple(sorted(self.fired))
        outcome.pruned = tuple(sorted(self.pruned))
        outcome.steps = self.steps[0] if self.steps is not None else 0
        outcome.confidence = self.conf
        outcome.alternatives = self.alternatives
        outcome.dropped = self.dropped
        outcome.replaced_inputs = self.replaced_inputs
        outcome.bytes = self.size[0]
        outcome.tool_calls = self.tool_log
        if self.analyze:
            outcome.analysis = {a.name: (dict(a.code.plans), a.code.analyze or {}) for a in self.agents}
        return outcome

    def _outcome(self, tier: Tier, reasons: list[Reason], cycle: int) -> Outcome:
        """The job's outcome. A job that another budget stopped before its fixed point also
        names the facts min_confidence left out so far (a failed job names its failure)."""
        if tier is Tier.BOUNDED and not any(r.details.get("budget") == "min_confidence" for r in reasons):
            missing = self._confidence_reason()
            if missing is not None:
                reasons = reasons + [missing]
        return Outcome(tier, reasons, cycle, self.context, self.budget)

    def _confidence_reason(self) -> Reason | None:
        """The reason for the facts missing because of min_confidence: dropped and never committed
        (a weak derivation of a fact that a stronger one committed is no loss, and a fact dropped
        twice is one fact), so the count and the tier follow the result, never the scheduling.
        With goals, a relation that pruned agents write is left out: only they write it (what
        leads to a goal is kept whole), and they might have derived the fact."""
        pruned_heads = {h.relation for a in self.program.agents if a.id in self.pruned for h in a.heads}
        missing = sum(why[0] == "min_confidence" for name, facts in self.dropped.items() if name not in pruned_heads
                      for why in facts.values())
        if not missing:
            return None
        floor = self.budget.min_confidence
        return Reason("budget", f"min_confidence {floor}: {missing} fact(s) below it were dropped",
                      {"budget": "min_confidence", "limit": floor, "dropped": missing})

    def _run(self) -> Outcome:
        budget = self.budget
        max_cycles = budget.max_cycles if budget.max_cycles is not None else DEFAULT_MAX_CYCLES
        max_facts = budget.max_facts if budget.max_facts is not None else DEFAULT_MAX_FACTS
        reasons: list[Reason] = []
        tier = Tier.CONVERGED
        cycle = 0
        if self.pruned:
            self._emit({"event": "prune", "reason": "goal", "agents": [a.name for a in self.agents if a.id in self.pruned]})
        if self.total > max_facts:
            reasons.append(Reason("budget", f"max_facts exhausted: the input holds {self.total} facts, the budget is {max_facts}",
                                  {"budget": "max_facts", "limit": max_facts, "reached": self.total}))
            return self._outcome(Tier.BOUNDED, reasons, 0)
        if self.budget.max_bytes is not None and self.size[0] > self.budget.max_bytes:
            return self._outcome(Tier.BOUNDED, [self._size_reason(SizeExceeded("max_bytes"), 0)], 0)
        try:
            violations = self._check_structural(0)
        except EvalError as err:
            return self._outcome(Tier.FAILED, [self._invariant_error(err, 0)], 0)
        except SizeExceeded as exc:  # the job's timeout ran out during an invariant's tool calls
            return self._outcome(Tier.BOUNDED, [self._size_reason(exc, 0, when="while the invariants checked the input facts")], 0)
        if violations:
            return self._outcome(Tier.FAILED, [self._violation_reason(violations, 0)], 0)
        ancestors = self.strata.ancestor_agents
        retired: set[int] = set()
        live = [a for a in self.agents if a.id not in self.pruned]
        while True:
            pending = [a for a in live if a.id not in retired
                       and (not a.ran or any(len(self.context[r].order) > a.marks[r]
                                             or len(self.context[r].improved) > a.marks.get((r, "+"), 0)  # type: ignore[call-overload]
                                             for r in a.pos_rels))]
            if not pending:
                break
            pending_ids = {a.id for a in pending}
            ready = [a for a in pending
                     if not any(anc in pending_ids for r in a.nonmono_rels for anc in ancestors[r])]
            newly_retired = [a for a in ready if a.pos_rels and any(
                not self.context[r].facts and not any(anc in pending_ids and anc != a.id for anc in ancestors[r])
                for r in a.pos_rels)]
            if newly_retired:  # a positive input is complete and empty: the agent can never fire
                retired.update(a.id for a in newly_retired)
                self._emit({"event": "retire", "cycle": cycle, "agents": [a.name for a in newly_retired]})
                continue
            assert ready, "stratification guarantees a ready agent"
            if cycle >= max_cycles:
                reasons.append(Reason("budget", f"max_cycles exhausted after {cycle} cycles with {len(ready)} agent(s) still eligible",
                                      {"budget": "max_cycles", "limit": max_cycles, "reached": cycle}))
                return self._outcome(Tier.BOUNDED, reasons, cycle)
            if self.deadline is not None and time.monotonic() > self.deadline:
                reasons.append(self._size_reason(SizeExceeded("timeout"), cycle, between=True))
                return self._outcome(worst(tier, Tier.BOUNDED), reasons, cycle)
            cycle += 1
            eligible = ready
            deferred: list[_AgentState] = []
            cap = budget.max_agents_per_cycle
            if cap is not None and len(ready) > cap:
                ranked = sorted(ready, key=lambda a: (-a.priority, a.id))
                chosen = {a.id for a in ranked[:max(cap, 1)]}
                eligible = [a for a in ready if a.id in chosen]
                deferred = [a for a in ready if a.id not in chosen]
            self._emit({"event": "cycle", "cycle": cycle, "eligible": [a.name for a in eligible],
                        "deferred": [a.name for a in deferred]})
            if self.progress is not None:
                self.progress(cycle, self.total, len(eligible))
            steps_before = self.steps[0] if self.steps is not None else 0
            try:
                buffers, skipped = self._compute(eligible, cycle)
            except _Failed as failure:
                return self._outcome(worst(tier, Tier.FAILED), reasons + [failure.reason], cycle)
            except StepsExceeded:
                assert self.steps is not None
                reasons.append(Reason("budget", f"max_steps exhausted in cycle {cycle}: more than {self.steps[1]} rule firings; the cycle was not committed",
                                      {"budget": "max_steps", "limit": self.steps[1], "reached": self.steps[0], "cycle": cycle}))
                self.steps[0] = steps_before
                return self._outcome(worst(tier, Tier.BOUNDED), reasons, cycle)
            except SizeExceeded as exc:
                reasons.append(self._size_reason(exc, cycle))
                if self.steps is not None:
                    self.steps[0] = steps_before
                return self._outcome(worst(tier, Tier.BOUNDED), reasons, cycle)
            for reason in skipped:
                reasons.append(reason)
                tier = worst(tier, Tier.DEGRADED)
            before = self.context.lengths()
            fired = set(self.fired)
            restore: dict[str, dict[tuple, tuple]] = {}
            self.journal = [] if self.structural else None  # what a rollback of this merge must undo
            added, dropped = self._merge(buffers, max_facts, cycle, restore)
            try:
                violations = self._check_structural(cycle)
            except EvalError as err:
                self._roll_back(added, before, restore, cycle, fired)
                return self._outcome(Tier.FAILED, reasons + [self._invariant_error(err, cycle)], cycle)
            except SizeExceeded as exc:  # the job's timeout ran out during an invariant's tool calls
                self._roll_back(added, before, restore, cycle, fired)
                return self._outcome(worst(tier, Tier.BOUNDED), reasons + [self._size_reason(exc, cycle)], cycle)
            if violations:
                self._roll_back(added, before, restore, cycle, fired)
                return self._outcome(Tier.FAILED, reasons + [self._violation_reason(violations, cycle)], cycle)
            if dropped:
                reasons.append(Reason("budget", f"max_facts exhausted in cycle {cycle}: {dropped} derived fact(s) dropped at the limit of {max_facts}",
                                      {"budget": "max_facts", "limit": max_facts, "reached": self.total, "dropped": dropped,
                                       "cycle": cycle}))
                return self._outcome(worst(tier, Tier.BOUNDED), reasons, cycle)
        missing = self._confidence_reason()  # before the acceptance checks' reasons
        if missing is not None:
            reasons.append(missing)
            tier = worst(tier, Tier.BOUNDED)
        for inv in self.acceptance:
            code = RuleCode(inv, self.program, self.context, invariant=True, tool_call=self._tool, cache=self.code_cache,
                            ticks=self.ticks)
            self.current_check = code
            try:
                full = code.version(None, frozenset())
                found = self._evaluate_check(lambda out: full([], {}, out, cycle), cycle)
            except EvalError as err:
                reasons.append(self._invariant_error(err, cycle))
                tier = Tier.FAILED
                continue
            except SizeExceeded as exc:  # the job's timeout ran out during its tool calls
                reasons.append(self._size_reason(exc, cycle, when="at the fixed point, while the acceptance checks "
                                                             "called tools; they were not all evaluated"))
                return self._outcome(worst(tier, Tier.BOUNDED), reasons, cycle)
            self._emit({"event": "acceptance", "invariant": inv.name, "violations": len(found.matches)})
            if found.matches:
                reasons.append(self._violation_reason(self._violations(inv, code, found.matches), cycle))
                tier = Tier.FAILED
        return self._outcome(tier, reasons, cycle)

    # ---------------------------------------------------------------- compute
    def _compute(self, eligible: list[_AgentState], cycle: int) -> tuple[list[tuple[_AgentState, EffectBuffer]], list[Reason]]:
        """Compute every eligible agent, with tool rounds and failure policies."""
        done: dict[int, EffectBuffer] = {}
        attempts = {a.id: 1 for a in eligible}
        skipped: list[Reason] = []
        todo = list(eligible)
        lengths: dict[Any, int] = {r: len(self.context[r].order) for a in eligible for r in a.pos_rels}
        lengths.update({(r, "+"): len(self.context[r].improved) for a in eligible for r in a.pos_rels})
        while todo:
            waiting: list[_AgentState] = []
            for agent in todo:
                buffers = EffectBuffer(len(agent.heads), confidence=self.conf is not None,
                                       alternatives=self.alternatives is not None)
                if self.deadline is not None and time.monotonic() > self.deadline:
                    raise SizeExceeded("timeout")  # also between agents: some cycles derive nothing new
                self.waiting = False
                self.touched = set()
                counted = self.size[0]  # a discarded buffer gives its bytes back
                try:
                    self._semi_naive(agent, buffers, cycle, lengths)
                except EvalError as err:
                    self.size[0] = counted
                    span = agent.code.spans[err.sid] if 0 <= err.sid < len(agent.code.spans) else agent.code.rule.span
                    self._failure(agent, cycle, attempts, err.message, span, waiting, skipped)
                    continue
                except (ArithmeticError, ValueError, TypeError, RecursionError, MemoryError) as err:
                    self.size[0] = counted
                    self._failure(agent, cycle, attempts, f"{type(err).__name__}: {err}", agent.code.rule.span, waiting, skipped)
                    continue
                if self.waiting:
                    self.size[0] = counted
                    waiting.append(agent)  # it needs tool results: run again after this round's calls
                    self._emit({"event": "execute", "cycle": cycle, "agent": agent.name, "attempt": attempts[agent.id], "status": "waiting for tools"})
                    continue
                done[agent.id] = buffers
                self._emit({"event": "execute", "cycle": cycle, "agent": agent.name, "attempt": attempts[agent.id],
                            "status": "ok", "facts": buffers.count()})
            if self.requests:
                self._run_tools(cycle)
            todo = waiting
        for agent in eligible:  # an agent's marks advance once it ran (or was skipped) this cycle
            agent.marks = {r: lengths[r] for r in agent.pos_rels}
            agent.marks.update({(r, "+"): lengths[(r, "+")] for r in agent.pos_rels})  # type: ignore[dict-item]
            agent.ran = True
        return [(a, done[a.id]) for a in eligible if a.id in done], skipped

    def _failure(self, agent: _AgentState, cycle: int, attempts: dict[int, int], message: str, span: Span,
                 waiting: list[_AgentState], skipped: list[Reason]) -> None:
        policy = agent.policy or self.default_policy
        attempt = attempts[agent.id]
        self._emit({"event": "failure", "cycle": cycle, "agent": agent.name, "attempt": attempt, "error": message,
                    "span": str(span)})
        # the failed tool calls this agent looked up are forgotten, so that a retry calls them again
        forgotten = [k for k in self.tool_errors if k in self.touched]
        for key in forgotten:
            del self.tool_errors[key]
        # Only a failed tool call can turn out differently: without one, another attempt on the same
        # snapshot (and the same remembered tool values) fails the same way, so it is not made
        # (`retry 100000000` would otherwise spin for minutes, counting no step).
        if attempt <= policy.retries and forgotten:
            attempts[agent.id] = attempt + 1
            self._emit({"event": "retry", "cycle": cycle, "agent": agent.name, "attempt": attempt + 1})
            waiting.append(agent)
            return
        details = {"agent": agent.name, "cycle": cycle, "attempts": attempt, "error": message, "span": span.to_json(),
                   "policy": str(policy)}
        unretried = ""
        if attempt <= policy.retries:
            details["not_retried"] = "no tool call failed, so another attempt would fail the same way"
            unretried = " (not retried: no tool call failed, so another attempt would fail the same way)"
        if policy.then == "skip":
            self._emit({"event": "skip", "cycle": cycle, "agent": agent.name, "attempts": attempt})
            skipped.append(Reason("agent_skipped", f"agent {agent.name!r} skipped in cycle {cycle} after {attempt} failed attempt(s): {message} at {span}"
                                  + unretried, details))
            return
        raise _Failed(Reason("agent_failed", f"agent {agent.name!r} failed in cycle {cycle}" +
                             (f" after {attempt} attempts" if attempt > 1 else "") + f": {message} at {span}" + unretried,
                             details))

    def _semi_naive(self, agent: _AgentState, out: Any, cycle: int, lengths: Mapping[str, int] | None = None) -> None:
        """Run every version of the agent that can see a new fact (marks advance in the caller)."""
        code = agent.code
        ctx = self.context
        if lengths is None:
            lengths = {r: len(ctx[r].order) for r in agent.pos_rels}
        if not code.positive:
            if not agent.ran:
                code.version(None, frozenset())([], {}, out, cycle)
            return
        body = code.body
        marks = agent.marks
        for i in code.positive:
            rel_i = body[i].relation  # type: ignore[union-attr]
            improved = ctx[rel_i].improved[marks.get((rel_i, "+"), 0):lengths.get((rel_i, "+"), 0)] if self.conf is not None else []  # type: ignore[call-overload]
            if lengths[rel_i] <= marks[rel_i] and not improved:
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
            delta = ctx[rel_i].order[marks[rel_i]:lengths[rel_i]] + improved
            exclude = {j: set(ctx[body[j].relation].order[marks[body[j].relation]:lengths[body[j].relation]])  # type: ignore[union-attr]
                       for j in mask}
            code.version(i, frozenset(mask))(delta, exclude, out, cycle)

    # ---------------------------------------------------------------- commit
    def _merge(self, buffers: list[tuple[_AgentState, EffectBuffer]], max_facts: int, cycle: int,
               restore: dict[str, dict[tuple, tuple]]) -> tuple[dict[str, list[tuple]], int]:
        if self.conf is not None:
            return self._merge_confidence(buffers, max_facts, cycle, restore)
        added: dict[str, list[tuple]] = {}
        dropped = 0
        alternatives = self.alternatives
        if alternatives is not None:  # other derivations of known facts, in merge order
            journal = self.journal
            for agent, effects in buffers:
                for head, others in zip(agent.heads, effects.alternatives):
                    for fact, proofs in others.items():
                        known = alternatives.setdefault(head.relation, {}).setdefault(fact, [])
                        if journal is not None:
                            journal.append(("alternatives", head.relation, fact, len(known)))
                        known.extend(proofs)
        for agent, effects in buffers:
            for head, buf in zip(agent.heads, effects.facts):
                if not buf:
                    continue
                name = head.relation
                store = self.context[name]
                if store.key is not None:
                    new, counts = self._commit(store, list(buf.items()), cycle, max_facts, restore.setdefault(name, {}))
                    added.setdefault(name, []).extend(new)
                    if new:  # an agent fired when it added a fact: not when all it derived was dominated or dropped
                        self.fired.add(agent.id)
                    dropped += counts["dropped"]
                    self._emit({"event": "merge", "cycle": cycle, "agent": agent.name, "relation": name, **counts})
                    continue
                facts = store.facts
                if name not in added and self.total + len(buf) <= max_facts:
                    facts.update(buf)  # nothing in buf is known yet: commit it whole, no copy
                    self.context[name].extend(buf)  # type: ignore[arg-type]
                    added[name] = []
                    self.total += len(buf)
                    self.fired.add(agent.id)
                    self._emit({"event": "merge", "cycle": cycle, "agent": agent.name, "relation": name,
                                "new": len(buf), "duplicate": 0, "dropped": 0})
                    continue
                new = added.setdefault(name, [])
                n_new = n_dup = n_drop = 0
                for fact, proof in buf.items():
                    if fact in facts:
                        n_dup += 1
                        if alternatives is not None:
                            alternatives.setdefault(name, {}).setdefault(fact, []).append(proof)
                        continue
                    if self.total >= max_facts:
                        n_drop += 1
                        self.dropped.setdefault(name, {}).setdefault(fact, ("max_facts", cycle, max_facts))
                        continue
                    facts[fact] = proof
                    new.append(fact)
                    self.total += 1
                    n_new += 1
                dropped += n_drop
                if n_new:
                    self.fired.add(agent.id)
                self._emit({"event": "merge", "cycle": cycle, "agent": agent.name, "relation": name,
                            "new": n_new, "duplicate": n_dup, "dropped": n_drop})
        for name, new in added.items():
            if self.context[name].key is None:
                self.context[name].extend(new)
        return added, dropped

    def _merge_confidence(self, buffers: list[tuple[_AgentState, EffectBuffer]], max_facts: int,
                          cycle: int, restore: dict[str, dict[tuple, tuple]]) -> tuple[dict[str, list[tuple]], int]:
        """Merge when facts carry confidence: below min_confidence is dropped, a better
        confidence for a known fact replaces its proof and re-propagates, and at the
        max_facts limit the weakest newcomers give way first (ties: merge order)."""
        assert self.conf is not None
        floor = self.budget.min_confidence
        candidates: list[tuple[float, int, str, tuple, tuple, str]] = []
        for agent, effects in buffers:
            for h, head in enumerate(agent.heads):
                buf, confs, better = effects.facts[h], effects.confidence[h], effects.improved[h]
                name = head.relation
                conf = self.conf[name]
                store = self.context[name]
                for fact, (c, proof) in better.items():
                    if fact in store.facts and c > conf.get(fact, 1.0) and (floor is None or c >= floor):
                        if self.journal is not None:
                            restore.setdefault(name, {}).setdefault(fact, store.facts[fact])
                            self.journal.append(("improved", name, fact, conf.get(fact),
                                                 fact in self.replaced_inputs.get(name, {})))
                        if store.facts[fact][0] == INPUT_PROOF[0]:
                            self.replaced_inputs.setdefault(name, {}).setdefault(fact, conf.get(fact, 1.0))
                        store.facts[fact] = proof
                        if c >= 1.0:
                            conf.pop(fact, None)
                        else:
                            conf[fact] = c
                        store.improved.append(fact)
                        self._emit({"event": "confidence", "cycle": cycle, "relation": name, "fact": list(fact), "confidence": c})
                for fact, proof in buf.items():
                    c = confs[fact]
                    if floor is not None and c < floor:
                        self.dropped.setdefault(name, {}).setdefault(fact, ("min_confidence", cycle, c))
                        continue
                    candidates.append((c, len(candidates), name, fact, proof, agent.name))
        # several agents may derive the same new fact in one cycle: the most confident derivation
        # wins (ties: merge order), at the position of the first one
        best: dict[tuple[str, tuple], int] = {}
        for k, cand in enumerate(candidates):
            key = (cand[2], cand[3])
            if key not in best or cand[0] > candidates[best[key]][0]:
                best[key] = k
        firsts: dict[tuple[str, tuple], int] = {}
        for k, cand in enumerate(candidates):
            firsts.setdefault((cand[2], cand[3]), k)
        candidates = [candidates[best[key]][:1] + (first,) + candidates[best[key]][2:]
                      for key, first in sorted(firsts.items(), key=lambda kv: kv[1])]
        room = max_facts - self.total
        dropped = 0
        if len(candidates) > room:  # the weakest go first; the order of the rest is kept
            # A fact of a keyed relation for a key that holds a fact (or for a key a stronger
            # candidate already took) does not grow the context: it supersedes or is
            # dominated, as without confidence, so it needs no room.
            keep: set[int] = set()
            granted: set[tuple[str, tuple]] = set()
            for _c, i, name, fact, _proof, _agent in sorted(candidates, key=lambda x: (-x[0], x[1])):
                spec = self.context[name].key
                slot = (name, tuple(fact[c] for c in spec.columns)) if spec is not None else None
                if slot is not None and (slot[1] in self.context[name].keymap or slot in granted):
                    keep.add(i)
                elif room > 0:
                    room -= 1
                    keep.add(i)
                    if slot is not None:
                        granted.add(slot)
            dropped = len(candidates) - len(keep)
            for c, i, name, fact, _proof, _agent in candidates:
                if i not in keep:
                    self.dropped.setdefault(name, {}).setdefault(fact, ("max_facts", cycle, max_facts))
            candidates = [c for c in candidates if c[1] in keep]
        added: dict[str, list[tuple]] = {}
        for c, _i, name, fact, proof, agent_name in candidates:
            store = self.context[name]
            if fact in store.facts:
                continue
            stale = self.dropped.get(name)
            if stale and stale.get(fact, ("",))[0] == "min_confidence":
                if self.journal is not None:
                    self.journal.append(("dropped", name, fact, stale[fact]))
                del stale[fact]  # a weaker derivation was dropped, this one holds
            if store.key is not None:
                new, _counts = self._commit(store, [(fact, proof)], cycle, None, restore.setdefault(name, {}))
                added.setdefault(name, []).extend(new)
                if not new:  # dominated: the agent added nothing
                    continue
            else:
                store.facts[fact] = proof
                added.setdefault(name, []).append(fact)
                self.total += 1
            if c < 1.0:
                self.conf[name][fact] = c
            self.fired.add(self.program.agent(agent_name).id)  # type: ignore[union-attr]
        for name, new in added.items():
            if self.context[name].key is None:
                self.context[name].extend(new)
            self._emit({"event": "merge", "cycle": cycle, "relation": name, "new": len(new)})
        return added, dropped

    def _commit(self, store: RelationStore, items: list[tuple[tuple, tuple]], cycle: int, max_facts: int | None,
                restore: dict[tuple, tuple] | None) -> tuple[list[tuple], dict[str, int]]:
        """Merge into a keyed relation: per key keep the preferred fact; the trace records both sides."""
        key = store.key
        assert key is not None
        better = (lambda a, b: a < b) if key.prefer == "min" else (lambda a, b: a > b)
        counts = {"new": 0, "duplicate": 0, "dominated": 0, "superseded": 0, "dropped": 0}
        new: list[tuple] = []
        for fact, proof in items:
            if fact in store.facts:
                counts["duplicate"] += 1
                continue
            k = tuple(fact[c] for c in key.columns)
            current = store.keymap.get(k)
            if current is not None and not better(fact[key.column], current[key.column]):
                counts["dominated"] += 1
                self.dropped.setdefault(store.name, {}).setdefault(fact, ("dominated", cycle, current))
                self._emit({"event": "dominated", "cycle": cycle, "relation": store.name,
                            "fact": list(fact), "kept": list(current)})
                continue
            if current is None and max_facts is not None and self.total >= max_facts:
                counts["dropped"] += 1
                self.dropped.setdefault(store.name, {}).setdefault(fact, ("max_facts", cycle, max_facts))
                continue
            if current is not None:
                old_proof = store.facts.pop(current)
                store.superseded[current] = (old_proof, fact, cycle)
                if restore is not None and current not in restore:
                    restore[current] = old_proof
                counts["superseded"] += 1
                self.total -= 1
                self._emit({"event": "superseded", "cycle": cycle, "relation": store.name,
                            "fact": list(current), "by": list(fact)})
            store.keymap[k] = fact
            store.facts[fact] = proof
            new.append(fact)
            self.total += 1
            counts["new"] += 1
        store.extend(new)
        return new, counts

    def _evaluate_check(self, evaluate: Callable[[EffectBuffer], None], cycle: int) -> EffectBuffer:
        """Evaluate an invariant or acceptance check with its tool rounds, like an agent: while a
        match waits for a tool result not known yet, the round's calls run and the check is
        evaluated again, from scratch, on the same context. A failed call raises EvalError (the
        check could not be evaluated: the job fails); the job's timeout raises SizeExceeded."""
        while True:
            found = EffectBuffer()
            self.waiting = False
            self.touched = set()
            evaluate(found)
            if not self.waiting:
                return found
            self._run_tools(cycle)
            if self.deadline is not None and time.monotonic() > self.deadline:
                raise SizeExceeded("timeout")

    def _roll_back(self, added: Mapping[str, list[tuple]], before: Mapping[str, int],
                   restore: Mapping[str, dict[tuple, tuple]], cycle: int, fired: set[int]) -> None:
        """Undo the merge of ``cycle`` (a structural invariant rejected it): its facts go, the facts
        it superseded come back, facts whose confidence it raised get their old proof and
        confidence back, and so does everything it recorded about them — which facts it
        dropped (dominated by a fact that is gone now, at max_facts, ...), which agents fired,
        the alternative proofs it added (``self.journal``, in reverse)."""
        for name in sorted(set(added) | set(restore)):
            store = self.context[name]
            if self.conf is not None:
                for fact in store.order[before[name]:]:
                    self.conf[name].pop(fact, None)
            store.truncate(before[name], restore.get(name))
        self.total = self.context.size()
        for name, facts in self.dropped.items():
            for fact in [f for f, entry in facts.items() if entry[1] == cycle]:
                del facts[fact]
        for entry in reversed(self.journal or ()):
            kind, name, fact = entry[:3]
            if kind == "alternatives":
                del self.alternatives[name][fact][entry[3]:]  # type: ignore[index]
            elif kind == "dropped":
                self.dropped.setdefault(name, {})[fact] = entry[3]
            elif kind == "improved":
                old, was_replaced = entry[3], entry[4]
                if old is None:
                    self.conf[name].pop(fact, None)  # type: ignore[index]
                else:
                    self.conf[name][fact] = old  # type: ignore[index]
                self.context[name].improved.pop()
                if not was_replaced:
                    self.replaced_inputs.get(name, {}).pop(fact, None)
        self.journal = None
        self.fired = fired

    def _check_structural(self, cycle: int) -> list[Violation]:
        out: list[Violation] = []
        names = []
        for state in self.structural:
            found = EffectBuffer()
            self.current_check = state.code
            if state.code.aggregates or not state.code.positive or any(
                    self.context[r].key is not None for r in state.nonmono_rels):
                # Aggregates are not monotone, nor is a negated keyed relation (a superseded
                # fact leaves it): a merge can create a match that uses only old facts, so
                # these invariants are checked in full.
                lengths = {r: len(self.context[r].order) for r in state.reads}
                if lengths != state.seen:
                    full = state.code.version(None, frozenset())
                    found = self._evaluate_check(lambda out: full([], {}, out, cycle), cycle)
                    state.seen = lengths
            else:
                lengths = {r: len(self.context[r].order) for r in state.pos_rels}
                found = self._evaluate_check(lambda out: self._semi_naive(state, out, cycle, lengths), cycle)
                state.marks = lengths
                state.ran = True
            names.append(state.name)
            if found.matches:
                assert isinstance(state.code.rule, InvariantDef)
                out.extend(self._violations(state.code.rule, state.code, found.matches))
        if names:
            self._emit({"event": "invariants", "cycle": cycle, "checked": names, "violations": len(out)})
        return out

    # ---------------------------------------------------------------- reports
    def _invariant_error(self, err: EvalError, cycle: int) -> Reason:
        """An invariant or acceptance check that could not be evaluated fails the job."""
        code = self.current_check
        span = code.spans[err.sid] if 0 <= err.sid < len(code.spans) else code.rule.span
        name = code.rule.name
        return Reason("invariant_error", f"{code.rule.kind} {name!r} could not be evaluated in cycle {cycle}: {err.message} at {span}",
                      {"invariant": name, "cycle": cycle, "error": err.message, "span": span.to_json()})

    def _violations(self, inv: InvariantDef, code: RuleCode, found: list[Match]) -> list[Violation]:
        names = sorted(inv.var_types)
        atoms = [inv.body[i] for i in code.positive]
        out = []
        for match in found:
            bindings = {n: v for n, v in zip(names, match.values)}
            prem = [(a.relation, f) for a, f in zip(atoms, match.premises)]  # type: ignore[union-attr]
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
