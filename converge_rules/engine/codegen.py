"""The code-generation backend: plans → Python functions.

``RuleCode.prepare(plan, mask)`` turns one plan (see ``compile.lower``) into a
function ``fn(delta, exclude, buffer, cycle)`` for that semi-naive version
(which body atom reads the delta, and which earlier atoms must exclude it).
The code is specialised once: steps in planned order, index lookups on bound
columns, existence checks that stop at the first match, relation objects
bound as default arguments (locals) under numbered names (so no relation
name can collide with another generated name), statically typed arithmetic
inline and helper calls only where semantics differ from Python's. A match
that is new writes ``fact -> proof record`` into the agent's EffectBuffer; it
never touches the context. A long body continues in further top-level
functions, so any body the parser accepts compiles.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Callable

from ..compile.lower import REORDERED, Plan, lower, proof_layout, stale
from ..compile.plan import AggStep, Assign, ColumnCheck, FailStep, Filter, NegCheck, Scan, Step
from ..compile.program import AgentDef, InvariantDef, Program
from .. import catalogue
from ..compile.types import expr_type
from ..diagnostics import Span
from ..syntax import ast
from . import runtime
from .effects import Match, record_template
from .store import Context

_MISSING = object()
NO_RESULT = catalogue.NO_RESULT  # an aggregate over an empty group with no value (min, max)
PENDING = object()    # a tool result not known yet: the match waits for the next tool round

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PY_CMP = {"=": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


class _Code:
    """The lines of one generated function; ``loops`` counts its open for-loops
    (inside one, a failed guard ``continue``s instead of nesting an ``if``)."""

    def __init__(self, depth: int = 1) -> None:
        self.lines: list[str] = []
        self.depth = depth
        self.loops = 0

    def line(self, text: str) -> None:
        self.lines.append("    " * self.depth + text)

    def open(self, text: str) -> None:
        self.line(text)
        self.depth += 1

    def guard(self, cond: str) -> None:
        """The rest runs only when ``cond`` holds."""
        if self.loops:
            self.line(f"if not ({cond}): continue")
        else:
            self.open(f"if {cond}:")

    def loop(self, text: str) -> None:
        self.open(text)
        self.loops += 1


def _distinct(items: list, cols: tuple) -> list:
    """The first tuple for each distinct value of ``cols`` (a projection), in order."""
    seen: dict = {}
    if len(cols) == 1:
        c = cols[0]
        for t in items:
            seen.setdefault(t[c], t)
    else:
        for t in items:
            seen.setdefault(tuple([t[c] for c in cols]), t)
    return list(seen.values())


class CodeCache:
    """Plans and compiled code of one rule set, reused by its later runs.

    Lives on a ``RuleSet`` (never at class or module level). A plan is a pure
    function of (rule, driver, relation sizes, reduce), and the generated code a
    pure function of (rule, plan steps, mask, the options that change code): a
    later run looks both up and only re-binds the run's own objects (relation
    dicts, indexes, memos) into a fresh namespace, so results are those of a
    fresh rule set. Spans referenced by generated code (``sid``) are shared per
    rule so the numbers baked into cached code stay valid; a span gets one number
    for good, so code generated again (after the cache starts over) reuses it and
    the list holds each span of the rule once. Bounded: past ``LIMIT`` entries
    the cache starts over."""

    LIMIT = 4096

    def __init__(self) -> None:
        self.lock = threading.RLock()  # generation appends to shared span lists
        self.plans: dict[Any, tuple[Plan, int]] = {}
        self.steps: dict[Any, int] = {}   # plan steps -> a small token (steps are hashed once)
        self.tokens = 0
        self.code: dict[Any, tuple[Any, tuple[tuple[Any, str], ...], str]] = {}
        self.spans: dict[Any, tuple[list[Span], dict[Span, int]]] = {}  # rule -> spans and their numbers
        self.hits = 0
        self.misses = 0

    def rule_spans(self, rule_key: Any) -> tuple[list[Span], dict[Span, int]]:
        with self.lock:
            return self.spans.setdefault(rule_key, ([], {}))

    def plan(self, rule_key: Any, rule: Any, driver: int | None, sizes: dict[str, int] | None,
             reduce: bool) -> tuple[Plan, int]:
        key = (rule_key, driver, tuple(sorted(sizes.items())) if sizes is not None else None, reduce)
        entry = self.plans.get(key)
        if entry is None:
            plan = lower(rule, driver, sizes=sizes, reduce=reduce)
            with self.lock:
                if len(self.plans) > self.LIMIT or len(self.code) > self.LIMIT:
                    self.plans.clear()
                    self.steps.clear()
                    self.code.clear()
                token = self.steps.get(plan.steps)
                if token is None:  # tokens are never reused, so no stale entry can match a new plan
                    token = self.steps[plan.steps] = self.tokens
                    self.tokens += 1
                entry = self.plans.setdefault(key, (plan, token))
        return entry

    def store(self, key: Any, value: tuple[Any, tuple[tuple[Any, str], ...], str]) -> None:
        with self.lock:
            self.code[key] = value


class RuleCode:
    """Generated evaluation code for one agent or invariant: the code-generation
    backend. ``version(driver, mask)`` lowers the body to a plan (re-planned when
    relation sizes change a lot) and prepares it as a Python function that runs
    the version into an EffectBuffer."""

    # CPython allows 20 statically nested blocks and 100 indentation levels per
    # function: a long body continues in another generated function.
    LOOPS_PER_FUNCTION = 12
    DEPTH_PER_FUNCTION = 40

    def __init__(self, rule: AgentDef | InvariantDef, program: Program, context: Context, *, invariant: bool = False,
                 tool_call: Callable[..., Any] | None = None, steps: list[int] | None = None,
                 confidence: dict[str, dict[tuple, float]] | None = None, alternatives: bool = False,
                 analyze: dict[int | None, dict[int, int]] | None = None, plan_sizes: bool = True,
                 size: list[Any] | None = None, cache: CodeCache | None = None, proofs: bool = True,
                 ticks: list[Any] | None = None):
        self.rule = rule
        self.ticks = ticks  # [iterations, next check, hook] when the job has a time-out: every loop counts
        self.proofs = proofs  # False: a derived fact records only (agent, cycle), no premises
        # [bytes counted, next checkpoint, checkpoint hook] when max_bytes is set: every new fact
        # in a buffer adds its cost; past the checkpoint the hook checks the budget and the time-out
        self.size = size
        self.alternatives = alternatives  # also record every other derivation of a known fact
        self.confidence = confidence  # per relation: fact -> confidence below 1 (None: no confidence in this job)
        self.tool_call = tool_call
        self.steps = steps  # [count, limit] when max_steps is set: every firing counts
        self.program = program
        self.context = context
        self.invariant = invariant
        self.memo = not invariant  # aggregates read complete relations: results never change
        self.spans: list[Span] = []
        self.span_ids: dict[Span, int] = {}  # span -> its index in spans: each span once
        self.heads: tuple[ast.Atom, ...] = () if isinstance(rule, InvariantDef) else rule.heads
        self.body = rule.body
        self.types = rule.var_types
        self.scanned_relations: dict[tuple[str, int], str] = {}  # (prefix, literal) -> the relation its scan reads
        self.layout = proof_layout(self.body)
        self.positive = list(self.layout.premises)
        self.aggregates = list(self.layout.aggregates)
        self.tool_vars = list(self.layout.tools)  # `v = @tool(...)`: values join the proof record after aggregates
        # every match counts when all derivations or the best confidence are wanted
        self.reduce = confidence is None and not alternatives
        self.analyze = analyze    # driver -> literal index -> rows out of that step (-1: emitted; REORDERED: re-plans)
        self.plan_sizes = plan_sizes
        self.versions: dict[tuple[int | None, frozenset[int]], tuple[Callable[..., Any], Plan]] = {}
        self.plans: dict[int | None, Plan] = {}
        self.replans = 0
        self.continuations = 0
        self.agg_memos: dict[int, dict[Any, Any]] = {}
        self.sources: list[str] = []
        # reuse across runs of one rule set (never with per-step counters: they are per run)
        self.cache = cache if analyze is None else None
        self.rule_key = (type(rule).__name__, rule.id)
        self.tokens: dict[int | None, int] = {}
        if self.cache is not None:
            self.spans, self.span_ids = self.cache.rule_spans(self.rule_key)

    # -------------------------------------------------------------- versions
    def sizes(self) -> dict[str, int]:
        return {lit.relation: len(self.context[lit.relation].facts) for lit in self.body if isinstance(lit, ast.Atom)}

    def plan(self, driver: int | None) -> Plan:
        """The current plan of a version (made, or re-made when sizes moved a lot)."""
        plan = self.plans.get(driver)
        if plan is None or (plan.sizes is not None and stale(plan, self.sizes())):
            old = plan
            if old is not None:
                self.replans += 1
                for key in [k for k in self.versions if k[0] == driver]:
                    del self.versions[key]
            sizes = self.sizes() if self.plan_sizes else None
            if self.cache is not None:
                plan, self.tokens[driver] = self.cache.plan(self.rule_key, self.rule, driver, sizes, self.reduce)
            else:
                plan = lower(self.rule, driver, sizes=sizes, reduce=self.reduce)
            if old is not None and self.analyze is not None and plan.steps != old.steps:
                # rows are counted per step: the old plan's counts say nothing of the new order's
                # steps, so they restart (versions are re-prepared and pick up the new counter)
                self.analyze[driver] = {REORDERED: self.analyze.get(driver, {}).get(REORDERED, 0) + 1}
            self.plans[driver] = plan
        return plan

    def version(self, driver: int | None, mask: frozenset[int]) -> Callable[..., Any]:
        """The prepared function of a version: ``fn(delta, exclude, buffer, cycle)``."""
        plan = self.plan(driver)
        key = (driver, mask)
        entry = self.versions.get(key)
        if entry is None or entry[1] is not plan:
            entry = (self.prepare_cached(plan, mask) if self.cache is not None else self.prepare(plan, mask), plan)
            self.versions[key] = entry
        return entry[0]

    def _namespace(self) -> dict[str, Any]:
        ns: dict[str, Any] = dict(catalogue.HELPERS)
        ns["_NONE"] = NO_RESULT
        ns["_MISS"] = _MISSING
        ns["_PENDING"] = PENDING
        ns["_tool"] = self.tool_call
        ns["_coerce"] = runtime.coerce
        ns["_as_column"] = runtime.as_column
        ns["_S"] = self.steps
        ns["_steps_exceeded"] = runtime.steps_exceeded
        ns["_distinct"] = _distinct
        ns["_Match"] = Match
        ns["_Z"] = self.size
        ns["_T"] = self.ticks
        return ns

    def _resolve(self, key: tuple) -> Any:
        """This run's object for a bind key recorded when the code was generated."""
        kind = key[0]
        if kind == "facts":
            return self.context[key[1]].facts
        if kind == "order":
            return self.context[key[1]].order
        if kind == "index":
            return self.context[key[1]].index(key[2])
        if kind == "memo":
            return self.agg_memos.setdefault(key[1], {}) if self.memo else {}
        if kind == "confidence":
            assert self.confidence is not None
            return self.confidence.setdefault(key[1], {})
        raise AssertionError(key)

    def prepare_cached(self, plan: Plan, mask: frozenset[int]) -> Callable[..., Any]:
        """``prepare`` through the rule set's cache: a hit re-binds this run's objects
        into a fresh namespace and runs the cached code object (no generation, no compile)."""
        cache = self.cache
        assert cache is not None
        options = (self.invariant, self.confidence is None, self.alternatives, self.steps is None, self.size is None,
                   self.reduce, self.proofs, self.ticks is None)
        key = (self.rule_key, self.tokens.get(plan.driver), mask, options)
        entry = cache.code.get(key)
        if entry is None:
            with cache.lock:  # sids index the shared span list: generate one at a time
                fn = self.prepare(plan, mask)
                cache.store(key, (self._compiled, tuple(self.names.items()), self.sources[-1]))
            cache.misses += 1
            return fn
        cache.hits += 1
        compiled, binds, src = entry
        ns = self._namespace()
        for bkey, name in binds:
            ns[name] = self._resolve(bkey)
        self.sources.append(src)
        exec(compiled, ns)
        return ns["_run"]

    def prepare(self, plan: Plan, mask: frozenset[int]) -> Callable[..., Any]:
        """Compile a plan (with the atoms in ``mask`` excluding the new facts) to a function."""
        driver = plan.driver
        self.ns = self._namespace()
        self.names: dict[Any, str] = {}
        self.counter = self.analyze.setdefault(driver, {}) if self.analyze is not None else None
        if self.counter is not None:
            self.ns["_K"] = self.counter
        self.defaults: list[str] = []
        self.pre: list[str] = []
        self.mask = mask
        # variables bound by a scan: they hold stored values (a float one is never -0.0)
        self.scan_bound = {var for step in plan.steps if isinstance(step, Scan) for _, var in step.binds}
        code = _Code()
        self._prelude(code)
        self._steps(code, list(plan.steps), "", lambda c: self._emit(c), ())
        src = "\n".join(self.pre + [f"def _run(D, X, B, C{self._params()}):"] + (code.lines or ["    pass"]) + ["    return None"])
        self.sources.append(src)
        self._compiled = compile(src, f"<converge {self.rule.name} v{driver}>", "exec")
        exec(self._compiled, self.ns)
        return self.ns["_run"]

    def _params(self) -> str:
        return "".join(f", {d}={d}" for d in self.defaults)

    def _prelude(self, code: _Code) -> None:
        """Locals for the effect buffer's per-head dicts and the masks."""
        if self.invariant:
            code.line("BM = B.matches")
        for h in range(len(self.heads)):
            code.line(f"B{h} = B.facts[{h}]")
            if self.confidence is not None:
                code.line(f"BC{h} = B.confidence[{h}]")
                code.line(f"BI{h} = B.improved[{h}]")
            if self.alternatives:
                code.line(f"BA{h} = B.alternatives[{h}]")
        for i in sorted(self.mask):
            code.line(f"X{i} = X[{i}]")
        if not self.proofs and not self.invariant:
            code.line(f"P = {record_template(self.rule.id, 'C', (), ())}")  # one record per call, shared

    def _bind(self, key: Any, value: Any) -> str:
        """A generated name for an object the code reads (a relation's facts, an
        index...): numbered, so no two objects ever share a name whatever the
        relation names are."""
        name = self.names.get(key)
        if name is None:
            name = f"o{len(self.names)}"
            self.names[key] = name
            self.ns[name] = value
        if name not in self.defaults:
            self.defaults.append(name)  # a default argument: a fast local in the function
        return name

    def sid(self, span: Span) -> int:
        """The number generated code uses for ``span`` (the same every time the span is met)."""
        k = self.span_ids.get(span)
        if k is None:
            k = self.span_ids[span] = len(self.spans)
            self.spans.append(span)
        return k

    def _count(self, code: _Code, lit: int) -> None:
        if self.counter is not None:
            self.counter.setdefault(lit, 0)
            code.line(f"_K[{lit}] += 1")

    # -------------------------------------------------------------- steps
    def _steps(self, code: _Code, steps: list[Step], pfx: str, tail: Callable[[_Code], None],
               live: tuple[str, ...], acc: bool = False) -> None:
        """Emit the steps, then ``tail`` (what a full match does) at the innermost level.
        ``live``: names bound so far (passed on when the body continues in another function)."""
        live_list = list(live)
        hoisted: dict[int, str] = {}
        bound: set[str] = set()
        scanned: list[int] = []  # body atoms whose tuple is bound in this function
        base = code.depth
        for k, step in enumerate(steps):
            if (isinstance(step, Scan) and not step.exists and code.loops >= self.LOOPS_PER_FUNCTION) \
                    or code.depth - base >= self.DEPTH_PER_FUNCTION:
                self._continue(code, steps[k:], pfx, tail, tuple(live_list), acc)
                return
            if isinstance(step, Scan):
                self.scanned_relations[(pfx, step.lit)] = step.atom.relation
                # Loop-invariant index probes of later atoms move above this loop;
                # an empty probe means no match at all, so it also guards the loop.
                if not step.exists:
                    for later in steps[k + 1:k + 1 + 2 * self.LOOPS_PER_FUNCTION]:
                        if (isinstance(later, Scan) and later.keys and later.lit not in hoisted
                                and not later.driver and len(later.keys) < len(later.atom.args)
                                and all(set(ast.expr_vars(e)) <= bound for _, e in later.keys)):
                            name = f"L{pfx}{later.lit}"
                            code.line(f"{name} = {self._probe(later)}")
                            code.guard(name)
                            hoisted[later.lit] = name
                            live_list.append(name)
                self._scan(code, step, pfx, hoisted.get(step.lit))
                scanned.append(step.lit)
                live_list.append(f"t{pfx}{step.lit}")
                for _, v in step.binds:
                    bound.add(v)
                    live_list.append(f"v_{v}")
            elif isinstance(step, ColumnCheck):
                relation = self.scanned_relations[(pfx, step.lit)]
                code.guard(f"t{pfx}{step.lit}[{step.col}] == {self._column_key(relation, step.col, step.expr)}")
            elif isinstance(step, Filter):
                code.guard(self._condition(step.literal))
            elif isinstance(step, Assign) and isinstance(step.expr, ast.ToolCall):
                args = "".join(self.expr(a) + ", " for a in step.expr.args)
                code.line(f"v_{step.var} = _tool({step.expr.tool!r}, ({args}), {self.sid(step.expr.span)})")
                code.guard(f"v_{step.var} is not _PENDING")
                bound.add(step.var)
                live_list.append(f"v_{step.var}")
            elif isinstance(step, Assign):
                code.line(f"v_{step.var} = {self.expr(step.expr)}")
                bound.add(step.var)
                live_list.append(f"v_{step.var}")
            elif isinstance(step, NegCheck):
                self._neg(code, step, scanned, pfx)
            elif isinstance(step, FailStep):
                code.line(f"_type_error({self.sid(step.span)}, {('fail: ' + step.message)!r})")
            elif isinstance(step, AggStep):
                self._aggregate(code, step, pfx)
                live_list.append(f"r{pfx}{step.lit}")
                if step.bind and isinstance(step.result, ast.Var):
                    bound.add(step.result.name)
                    live_list.append(f"v_{step.result.name}")
            if not pfx and not isinstance(step, (FailStep,)):
                self._count(code, step.lit)
        tail(code)

    def _continue(self, code: _Code, rest: list[Step], pfx: str, tail: Callable[[_Code], None],
                  live: tuple[str, ...], acc: bool) -> None:
        """The rest of a long body in a new top-level function, called with every name bound so far."""
        self.continuations += 1
        name = f"_c{self.continuations}"
        names = tuple(dict.fromkeys(live))
        inner = _Code()
        saved = self.defaults
        self.defaults = []
        if not pfx:
            self._prelude(inner)
        self._steps(inner, rest, pfx, tail, names, acc)
        text = "\n".join(inner.lines)
        words = set(_WORD.findall(text))
        used = tuple(n for n in names if n in words)  # only the names the rest reads
        args = (() if pfx else ("D", "X", "B", "C")) + used + (("acc",) if acc else ())
        header = f"def {name}({', '.join(args + tuple(f'{d}={d}' for d in self.defaults))}):"
        self.pre.append("\n".join([header] + (inner.lines or ["    pass"])))
        self.defaults = saved
        self.defaults.append(name)
        code.line(f"{name}({', '.join(args)})")

    def _source(self, step: Scan, pfx: str, hoisted: str | None) -> tuple[str, list[str], str | None]:
        """Where a scan's tuples come from, the per-tuple conditions, and (when
        every column is bound) the one tuple to test for membership."""
        rel = self.context[step.atom.relation]
        tv = f"t{pfx}{step.lit}"
        conds: list[str] = []
        keys = list(step.keys)
        member = None
        if hoisted is not None:
            src = hoisted
        elif step.driver:
            src = "D"
            conds += [f"{tv}[{col}] == {self._column_key(rel.name, col, expr)}" for col, expr in keys]
        elif keys and len(keys) == rel.arity:
            src = self._bind(("facts", rel.name), rel.facts)
            member = "(" + "".join(self._column_key(rel.name, c, e) + ", " for c, e in keys) + ")"
        elif keys:
            src = self._probe(step)
        else:
            src = self._bind(("order", rel.name), rel.order)
        if rel.key is not None and member is None:
            # superseded facts stay in lists, deltas included: a fact superseded
            # before the agent runs is no longer in the context for it to read
            conds.append(f"{tv} in {self._bind(('facts', rel.name), rel.facts)}")
        if step.lit in self.mask and not pfx:
            conds.append(f"{tv} not in X{step.lit}")
        conds += [f"{tv}[{col}] == {tv}[{other}]" for col, other in step.equal]
        return src, conds, member

    def _probe(self, step: Scan) -> str:
        rel = self.context[step.atom.relation]
        cols = tuple(c for c, _ in step.keys)
        name = self._bind(("index", rel.name, cols), rel.index(cols))
        key = self._index_key(rel.name, step.keys)
        return f"{name}.get({key}, ())"

    def _column_key(self, relation: str, col: int, e: ast.Expr) -> str:
        """Code for the value of ``e`` looked up in a column of ``relation`` (an index key, a
        membership tuple, a column test). A value of statically unknown type (a tool's) goes
        through ``_as_column``: 1, 1.0 and true are different values, though equal in Python,
        so a value of another type than the column's matches nothing (an int is widened for a
        float column, as when it is stored there). So is an ``int`` constant or expression in a
        float column: ``qf(9007199254740993)`` in a body looks up the value the fact
        ``qf(9007199254740993).`` holds, ``9007199254740992.0``."""
        text = self.expr(e)
        column = self.program.relations[relation].columns[col].type
        static = type(e.value).__name__ if isinstance(e, ast.Const) else expr_type(e, self.types)
        if static == "int" and column == "float":
            if isinstance(e, ast.Const):
                try:
                    return repr(float(e.value))
                except OverflowError:  # no float column holds it: NO_MATCH
                    pass
            return f"_as_column({text}, 'float')"
        if static is not None:
            return text
        return f"_as_column({text}, {column!r})"

    def _index_key(self, relation: str, keys: tuple[tuple[int, ast.Expr], ...]) -> str:
        """Code for the key of the index on ``keys``' columns (a bare value for one column)."""
        if len(keys) == 1:
            return self._column_key(relation, *keys[0])
        return "(" + ", ".join(self._column_key(relation, c, e) for c, e in keys) + ")"

    def _scan(self, code: _Code, step: Scan, pfx: str, hoisted: str | None = None) -> None:
        rel = self.context[step.atom.relation]
        tv = f"t{pfx}{step.lit}"
        src, conds, member = self._source(step, pfx, hoisted)
        if member is not None:  # every column bound: one membership test
            code.line(f"{tv} = {member}")
            code.guard(f"{tv} in {src}")
            for cond in conds:
                code.guard(cond)
        elif step.exists:  # stop at the first match
            if not conds:
                code.line(f"{tv} = {src}")
                code.guard(tv)
                code.line(f"{tv} = {tv}[0]")
            else:
                code.open(f"for {tv} in {src}:")
                code.open(f"if {' and '.join(conds)}:")
                code.line("break")
                code.depth -= 2
                code.open("else:")
                code.line(f"{tv} = _MISS")
                code.depth -= 1
                code.guard(f"{tv} is not _MISS")
        elif step.distinct is not None:
            cols = "(" + "".join(f"{c}, " for c in step.distinct) + ")"
            filt = f" if {' and '.join(conds)}" if conds else ""
            code.loop(f"for {tv} in _distinct([{tv} for {tv} in {src}{filt}], {cols}):")
            self._tick(code)
        else:
            code.loop(f"for {tv} in {src}:")
            self._tick(code)
            for cond in conds:
                code.guard(cond)
        if len(step.binds) > 1 or (step.binds and rel.arity == 1):
            names = ["_"] * rel.arity  # unpacking beats one subscript per column
            for col, var in step.binds:
                names[col] = f"v_{var}"
            code.line(f"{', '.join(names)}{',' if rel.arity == 1 else ''} = {tv}")
        else:
            for col, var in step.binds:
                code.line(f"v_{var} = {tv}[{col}]")

    def _neg(self, code: _Code, step: NegCheck, scanned: list[int], pfx: str) -> None:
        rel = self.context[step.atom.relation]
        if len(step.keys) == rel.arity and rel.arity > 0:
            name = self._bind(("facts", rel.name), rel.facts)
            same = self._same_tuple(step.atom, scanned, pfx) if [c for c, _ in step.keys] == list(range(rel.arity)) else None
            code.guard(f"{same or '(' + ''.join(self._column_key(rel.name, c, e) + ', ' for c, e in step.keys) + ')'} not in {name}")
        elif step.keys:
            cols = tuple(c for c, _ in step.keys)
            name = self._bind(("index", rel.name, cols), rel.index(cols))
            key = self._index_key(rel.name, step.keys)
            if rel.key is not None:
                live = self._bind(("facts", rel.name), rel.facts)
                code.guard(f"not any(t in {live} for t in {name}.get({key}, ()))")
            else:
                code.guard(f"{key} not in {name}")
        else:
            name = self._bind(("facts", rel.name), rel.facts)
            code.guard(f"not {name}")

    def _count_length(self, step: AggStep) -> str | None:
        """``count { rel(...) }`` over one atom whose other columns are free: the
        length of an index bucket (or of the relation), no loop at all."""
        if step.aggregate.op != "count" or len(step.inner) != 1 or not isinstance(step.inner[0], Scan):
            return None
        scan = step.inner[0]
        rel = self.context[scan.atom.relation]
        if scan.equal or scan.exists or rel.key is not None or not all(
                isinstance(e, ast.Var) and e.name in step.group for _, e in scan.keys):
            return None
        if not scan.keys:
            return f"len({self._bind(('order', rel.name), rel.order)})"
        if len(scan.keys) == rel.arity:
            facts = self._bind(("facts", rel.name), rel.facts)
            return f"(1 if ({''.join(self._column_key(rel.name, c, e) + ', ' for c, e in scan.keys)}) in {facts} else 0)"
        return f"len({self._probe(scan)})"

    def _aggregate(self, code: _Code, step: AggStep, pfx: str) -> None:
        agg = step.aggregate
        length = self._count_length(step)
        if length is not None:
            code.line(f"r{pfx}{step.lit} = {length}")
            if step.bind:
                assert isinstance(step.result, ast.Var)
                code.line(f"v_{step.result.name} = r{pfx}{step.lit}")
            else:  # the comparison `=` of the catalogue, as on the general path below (`true` is no count)
                code.guard(catalogue.emit_call("=", [f"r{pfx}{step.lit}", self.expr(step.result)],
                                               ["int", expr_type(step.result, self.types)], self.sid(step.result.span)))
            return
        fname = f"A{pfx}{step.lit}"
        inner_pfx = f"{pfx}{step.lit}_"
        memo = self.agg_memos.setdefault(step.lit, {}) if self.memo else {}
        memo_name = self._bind(("memo", step.lit), memo)
        # Generate the aggregate function into the namespace, with its own defaults.
        saved_defaults = self.defaults
        self.defaults = [memo_name]
        inner = _Code()
        params = [f"g{k}" for k in range(len(step.group))]
        # 1, 1.0 and true are different values, equal in Python: a group value of statically unknown
        # type (a tool's) keys the memo with its type
        typed = [p if self.types.get(g) is not None else f"({p}, {p}.__class__)" for p, g in zip(params, step.group)]
        key = "()" if not typed else (typed[0] if len(typed) == 1 else "(" + ", ".join(typed) + ")")
        inner.line(f"k = {key}")
        if self.memo:
            inner.line(f"r = {memo_name}.get(k, _MISS)")
            inner.open("if r is not _MISS:")
            inner.line("return r")
            inner.depth -= 1
        for k, var in enumerate(step.group):
            inner.line(f"v_{var} = g{k}")
        # init / step / finish come from the catalogue, for the aggregated value's static type
        templates = catalogue.emit_aggregate(agg.op, self.types.get(agg.value.name) if agg.value is not None else None)
        # the accumulator is a one-item list: the body may continue in other functions
        inner.line("acc = [None]")
        inner.line(templates.init.format(acc="acc[0]"))
        depth = inner.depth

        def accumulate(c: _Code) -> None:
            value = f"v_{agg.value.name}" if agg.value is not None else ""
            for text in templates.step.format(acc="acc[0]", v=value).split("\n"):
                c.line(text)

        self._steps(inner, list(step.inner), inner_pfx, accumulate, tuple(f"v_{g}" for g in step.group), acc=True)
        inner.depth = depth
        inner.loops = 0
        inner.line(f"r = {templates.finish.format(acc='acc[0]', sid=self.sid(agg.span))}")
        if self.memo:
            inner.line(f"{memo_name}[k] = r")
        inner.line("return r")
        args = ", ".join(params + [f"{d}={d}" for d in self.defaults])
        self.pre.append(f"def {fname}({args}):\n" + "\n".join(inner.lines))
        self.defaults = saved_defaults
        self.defaults.append(fname)  # defined by the generated source itself
        group = ", ".join(f"v_{g}" for g in step.group)
        code.line(f"r{pfx}{step.lit} = {fname}({group})")
        if step.bind:
            assert isinstance(step.result, ast.Var)
            code.guard(f"r{pfx}{step.lit} is not _NONE")
            code.line(f"v_{step.result.name} = r{pfx}{step.lit}")
        else:
            test = catalogue.emit_call("=", [f"r{pfx}{step.lit}", self.expr(step.result)],
                                       [expr_type(agg, self.types), expr_type(step.result, self.types)], self.sid(step.result.span))
            code.guard(f"r{pfx}{step.lit} is not _NONE and {test}")

    # -------------------------------------------------------------- emit
    def _emit(self, code: _Code) -> None:
        prem = [f"t{i}" for i in self.positive]
        extras = [f"r{i}" for i in self.aggregates] + [f"v_{var}" for _, var in self.tool_vars]
        if self.counter is not None:
            self.counter.setdefault(-1, 0)
            code.line("_K[-1] += 1")
        if self.invariant:
            names = sorted(v for v in self.types)
            values = "".join(f"v_{v}, " for v in names)
            code.line(f"BM.append(_Match(({''.join(p + ', ' for p in prem)}), ({''.join(e + ', ' for e in extras)}), ({values})))")
            return
        proof = record_template(self.rule.id, "C", prem, extras) if self.proofs else "P"
        if self.steps is not None:
            code.line("_S[0] += 1")
            code.open("if _S[0] > _S[1]:")
            code.line("_steps_exceeded()")
            code.depth -= 1
        for h, head in enumerate(self.heads):
            rel = self.program.relations[head.relation]
            known = self._bind(("facts", head.relation), self.context[head.relation].facts)
            values = []
            for arg, col in zip(head.args, rel.columns):
                text = self.expr(arg)
                typ = expr_type(arg, self.types)
                if col.type == "float" and typ == "int":  # float results are finite: the catalogue checks each operation
                    text = catalogue.widen_code(text, self.sid(arg.span))
                if typ is None and not isinstance(arg, ast.Const):  # a tool's value: checked when it arrives
                    text = f"_coerce({text}, {col.type!r}, {self.sid(arg.span)})"
                if col.type == "float":  # one zero, as inputs hold: -0.0 + 0.0 is 0.0, any other float unchanged
                    if isinstance(arg, ast.Const):
                        text = "0.0" if arg.value == 0 else text
                    elif not (isinstance(arg, ast.Var) and arg.name in self.scan_bound and typ == "float"):
                        text = f"({text}) + 0.0"
                values.append(text)
            fact = "(" + "".join(v + ", " for v in values) + ")"
            same = self._same_tuple(head)
            code.line(f"f = {same if same is not None else fact}")
            if self.confidence is None:
                code.open(f"if f not in {known} and f not in B{h}:")
                code.line(f"B{h}[f] = {proof}")
                self._count_size(code, head)
                code.depth -= 1
                if self.alternatives:
                    code.open("else:")
                    code.line(f"BA{h}.setdefault(f, []).append({proof})")
                    code.depth -= 1
                continue
            # derived confidence = agent weight x the weakest premise; a fact keeps its best
            weight = getattr(self.rule, "confidence", 1.0)
            premises = []
            for i in self.positive:
                relation = self.body[i].relation  # type: ignore[union-attr]
                name = self._bind(("confidence", relation), self.confidence.setdefault(relation, {}))
                premises.append(f"{name}.get(t{i}, 1.0)")
            conf = f"{weight!r} * min({', '.join(premises)})" if len(premises) > 1 else (f"{weight!r} * {premises[0]}" if premises else repr(weight))
            head_conf = self._bind(("confidence", head.relation), self.confidence.setdefault(head.relation, {}))
            code.line(f"c = {conf}")
            code.open(f"if f not in {known}:")
            code.open(f"if f not in B{h} or c > BC{h}[f]:")
            if self.size is not None:
                code.open(f"if f not in B{h}:")
                self._count_size(code, head)
                code.depth -= 1
            code.line(f"B{h}[f] = {proof}")
            code.line(f"BC{h}[f] = c")
            code.depth -= 2
            code.open(f"elif c > {head_conf}.get(f, 1.0) and c > BI{h}.get(f, (0.0,))[0]:")
            code.line(f"BI{h}[f] = (c, {proof})")
            code.depth -= 1

    def _tick(self, code: _Code) -> None:
        """Count one iteration of a join's loop when the job has a time-out (see Engine._tick)."""
        if self.ticks is None:
            return
        if "_T" not in self.defaults:
            self.defaults.append("_T")  # a fast local, not a global lookup per iteration
        code.line("_T[0] += 1")
        code.open("if _T[0] > _T[1]:")
        code.line("_T[2]()")
        code.depth -= 1

    def _count_size(self, code: _Code, head: ast.Atom) -> None:
        """Add a new fact's cost (runtime.fact_bytes, inlined) to the max_bytes count."""
        if self.size is None:
            return
        columns = self.program.relations[head.relation].columns
        cost = [str(runtime.FACT_BYTES + runtime.COLUMN_BYTES * len(columns))]
        for k, (col, arg) in enumerate(zip(columns, head.args)):
            if col.type == "str":  # a head variable is the fact's value: no subscript needed
                cost.append(f"len(v_{arg.name})" if isinstance(arg, ast.Var) and self.types.get(arg.name) == "str"
                            else f"len(f[{k}])")
            elif col.type == "int":
                cost.append(f"(f[{k}].bit_length() >> 6 and (f[{k}].bit_length() - 64) << 4)")
        if "_Z" not in self.defaults:
            self.defaults.append("_Z")  # a fast local, not a global lookup per fact
        code.line(f"_Z[0] += {' + '.join(cost)}")
        code.open("if _Z[0] > _Z[1]:")
        code.line("_Z[2]()")
        code.depth -= 1

    def _same_tuple(self, head: ast.Atom, scanned: list[int] | None = None, pfx: str = "") -> str | None:
        """A scanned tuple that equals the fact ``head`` stands for (same variables, same order,
        same column types), so the code can reuse it instead of building a new tuple.
        ``scanned``: the body atoms bound so far (default: every positive atom)."""
        if not head.args or not all(isinstance(a, ast.Var) for a in head.args):
            return None
        names = [a.name for a in head.args]  # type: ignore[union-attr]
        head_types = [c.type for c in self.program.relations[head.relation].columns]
        for i in (self.positive if scanned is None else scanned):
            atom = self.body[i] if not pfx else None
            if not isinstance(atom, ast.Atom):
                continue
            if [a.name if isinstance(a, ast.Var) else None for a in atom.args] == names \
                    and [c.type for c in self.program.relations[atom.relation].columns] == head_types:
                return f"t{pfx}{i}"
        return None

    # -------------------------------------------------------------- expressions
    def _condition(self, lit: ast.Literal) -> str:
        if isinstance(lit, ast.Condition):
            text = self.expr(lit.call)
            return f"not ({text})" if lit.negated else text
        assert isinstance(lit, ast.Comparison)
        return self._apply(lit.op, (lit.left, lit.right), lit.span)

    def _apply(self, key: str, args: tuple[ast.Expr, ...], span: Span) -> str:
        """An operator, comparison or builtin: its code comes from the catalogue."""
        return catalogue.emit_call(key, [self.expr(a) for a in args], [expr_type(a, self.types) for a in args], self.sid(span))

    def expr(self, e: ast.Expr) -> str:
        if isinstance(e, ast.Const):
            return repr(e.value)
        if isinstance(e, ast.Var):
            return f"v_{e.name}"
        if isinstance(e, ast.Neg):
            return self._apply("neg", (e.operand,), e.span)
        if isinstance(e, ast.BinOp):
            return self._apply(e.op, (e.left, e.right), e.span)
        if isinstance(e, ast.Call):
            return self._apply(e.func, e.args, e.span)
        return f"_type_error({self.sid(getattr(e, 'span', self.rule.span))}, 'unsupported expression')"

