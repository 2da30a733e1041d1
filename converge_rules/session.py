"""A session: a loaded rule set with its tools and options, making decisions.

The decision service (``converge serve``) is a thin HTTP adapter over this
class; a Python program can use it directly::

    session = converge_rules.Session(["loans.cvg"], tools={...})
    decision = session.decide({"loan": [["l1", "a1", 6000]], "applicant": [["a1", 1000]]})
    decision.result.tier, decision.response()["facts"]["decision"], decision.record

A session is safe to share between threads: each decision takes the rule set
current when it starts and finishes on it, while ``swap`` replaces the rule set
atomically for later decisions. It holds no process-wide state. The client's
budget is capped by the session's (``cap``): a request can ask for less, never
for more.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from .api import Result, RuleSet
from .diagnostics import ConvergeError, Diagnostic, Span
from .engine.loop import Budget

_REQUEST = "<request>"


@dataclass(frozen=True)
class RuleFile:
    """One rule file of a loaded rule set: its name and SHA-256."""

    path: str
    sha256: str


@dataclass(frozen=True)
class LoadedRules:
    """A checked rule set, the files it came from, their digest and when it was loaded."""

    ruleset: RuleSet
    files: tuple[RuleFile, ...]
    digest: str
    loaded_at: float
    sources: tuple[tuple[str, str], ...] = ()   # (name, text) when loaded from texts (PUT /v1/ruleset)

    def to_json(self) -> dict[str, Any]:
        from .store.base import iso_time

        return {"digest": self.digest, "loaded_at": iso_time(self.loaded_at),
                "files": [{"path": f.path, "sha256": f.sha256} for f in self.files],
                "relations": self.ruleset.relations}


@dataclass(frozen=True)
class Decision:
    """One decision: its id and time, the rule set digest it ran under, the result and its record."""

    id: str
    created_at: float
    ruleset_digest: str
    result: Result
    record: Any
    relations: tuple[str, ...] | None = None   # the relations the answer lists; None: all of them

    def response(self) -> dict[str, Any]:
        """The service's answer: id, tier, reasons, cycles, digest, rule set digest and the facts."""
        r = self.result
        names = r.relations() if self.relations is None else list(self.relations)
        from .store.base import iso_time

        return {"decision_id": self.id, "created_at": iso_time(self.created_at), "tier": r.tier.value,
                "reasons": [x.to_json() for x in r.reasons], "cycles": r.cycles, "digest": r.digest,
                "ruleset": {"digest": self.ruleset_digest},
                "facts": {n: [list(f) for f in r.facts(n)] for n in names}}


def _bad(message: str, where: str = "", code: str = "E944", at: tuple = (), kind: str = "value") -> ConvergeError:
    """An error about the request, noted ``at where``; ``at``: the JSON path of the offending value (or
    key, ``kind="key"``) in the request, e.g. ``("budget", "max_cycles")``, so that a decision given the
    request's text locates it there (``<request>:line:col``, see ``_located``)."""
    notes = (f"at {where}",) if where else ()
    err = ConvergeError([Diagnostic(code, message, Span(_REQUEST, 0, 0), notes=notes)])
    err.request_paths = [(at, kind)] if at else [None]  # type: ignore[attr-defined]
    return err


def _located(err: ConvergeError, text: str) -> ConvergeError:
    """``err`` with its request diagnostics at their line:col in the request text ``text`` (the JSON
    paths ``_bad`` recorded); the same error when it has none or they are not in the text."""
    from dataclasses import replace

    from .io import jsonpos

    paths = getattr(err, "request_paths", None)
    if not paths or not any(paths) or len(paths) != len(err.diagnostics):
        return err
    wanted = {(tuple(p), k) for p, k in filter(None, paths)}
    try:
        found = jsonpos.scan(text, wanted, max(len(p) for p, _ in wanted))
    except ValueError:  # not the JSON the request was decoded from
        return err
    index = jsonpos.LineIndex(text)
    out = []
    for d, where in zip(err.diagnostics, paths):
        span = found.get((tuple(where[0]), where[1])) if where else None
        if span is None or d.span.file != _REQUEST or d.span.line:
            out.append(d)
            continue
        line, col = index.position(span[0])
        end_line, end_col = index.position(span[1])
        out.append(replace(d, span=Span(_REQUEST, line, col, line if end_line == line else 0,
                                        end_col if end_line == line else 0)))
    return ConvergeError(out)


def budget_fields() -> list[tuple[str, bool]]:
    """Every Budget setting and whether it is a number with a fraction (float) rather than a count."""
    from dataclasses import fields

    return [(f.name, "float" in str(f.type)) for f in fields(Budget)]


def budget_from_json(data: Any, where: str = "budget") -> Budget:
    """A Budget from a JSON object such as ``{"max_cycles": 10}``; ConvergeError E944 otherwise."""
    if data is None:
        return Budget()
    known = dict(budget_fields())
    at = tuple(where.split("."))  # the budget's JSON path in a request
    if not isinstance(data, Mapping):
        raise _bad("the budget must be an object such as {\"max_cycles\": 10}", where, at=at)
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise _bad(f"unknown budget setting {key!r}; known: {', '.join(known)}", f"{where}.{key}",
                       at=at + (key,), kind="key")
        if value is None:
            continue
        if key == "min_confidence":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise _bad(f"{key} must be a number in [0, 1]", f"{where}.{key}", at=at + (key,))
            values[key] = float(value)
        elif known[key]:  # a quantity such as seconds
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise _bad(f"{key} must be a finite number > 0", f"{where}.{key}", at=at + (key,))
            values[key] = float(value)
        else:
            low = 1 if key == "max_agents_per_cycle" else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise _bad(f"{key} must be an integer >= {low}", f"{where}.{key}", at=at + (key,))
            values[key] = value
    return Budget(**values)


def _check_settings(budget: Any, workers: Any, tool_timeout: Any, on_failure: Any) -> None:
    """Refuse, when the session is made, a setting every decision would then fail on (ValueError
    naming it): the rule of ``RuleSet.run`` and ``Budget`` -- a number of seconds is finite and > 0."""
    from .compile.program import FailurePolicy
    from .engine.loop import check_tool_settings

    if budget is not None and not isinstance(budget, Budget):
        raise ValueError(f"budget must be a Budget or None, not {budget!r}")
    check_tool_settings(workers, tool_timeout)
    if on_failure is not None:
        if not isinstance(on_failure, (str, FailurePolicy)):
            raise ValueError(f"on_failure must be a failure policy such as 'skip', not {on_failure!r}")
        if isinstance(on_failure, str):
            try:
                FailurePolicy.parse(on_failure)
            except ValueError as err:
                raise ValueError(f"on_failure: {err}") from None


def _check_picklable(tools: Mapping[str, Any]) -> None:
    """Refuse (ValueError naming the tool) tools that a worker process could not receive."""
    import pickle

    for name in sorted(tools):
        try:
            pickle.dumps(tools[name])
        except Exception as err:
            raise ValueError(f"tool_isolation='process' sends the tools to worker processes, and tool {name!r} cannot "
                             f"be sent ({type(err).__name__}: {err}): give a module-level function, or "
                             "converge_rules.engine.tools.ToolRef(spec, name)") from None


class Session:
    """A loaded rule set, its tools and options; thread-safe; makes decisions."""

    def __init__(self, rules: Sequence[str] = (), *, sources: Sequence[tuple[str, str]] = (),
                 tools: Mapping[str, Any] | None = None, budget: Budget | None = None, workers: int = 1,
                 tool_timeout: float | None = 30.0, on_failure: str | None = None,
                 record_key: bytes | str | None = None, tool_isolation: str = "thread"):
        from .record import record_key as as_key

        _check_settings(budget, workers, tool_timeout, on_failure)
        from .engine.tools import tool_table

        self.tools = tool_table(tools) or {}
        self.record_key = as_key(record_key)  # seals every decision record with HMAC-SHA256 when given
        self.budget = budget or Budget()
        self.workers = workers
        self.tool_timeout = tool_timeout
        self.on_failure = on_failure
        from .engine.tools import TOOL_ISOLATION, ProcessPool, StuckCalls

        # threads of tool calls abandoned at their time-out, bounded over every decision and rule set
        # of the session (a PUT /v1/ruleset does not forget the threads a hanging tool still holds)
        self.stuck_tool_calls = StuckCalls()
        if tool_isolation not in TOOL_ISOLATION:
            raise ValueError(f"tool_isolation must be one of {', '.join(TOOL_ISOLATION)}, not {tool_isolation!r}")
        self.tool_isolation = tool_isolation
        # "process": one pool of worker processes for all decisions, started from a fork server (forking
        # a threaded service is unsafe), so the tools must pickle: module-level functions or ToolRef
        self._tool_pool: ProcessPool | None = None
        if tool_isolation == "process":
            _check_picklable(self.tools)
            self._tool_pool = ProcessPool(self.tools, workers, start_method="forkserver")
        self._lock = threading.Lock()
        self._paths = tuple(str(p) for p in rules)
        if not rules and not sources:
            raise ValueError("a session needs rule files or rule texts")
        self._rules = self._compile_paths(self._paths) if rules else self._compile_texts(sources)

    def close(self) -> None:
        """Stop the session's idle tool worker processes (``tool_isolation="process"``); a later
        decision starts new ones."""
        if self._tool_pool is not None:
            self._tool_pool.close()

    # -- the rule set
    @property
    def rules(self) -> LoadedRules:
        """The current rule set (a decision started now runs on it)."""
        return self._rules

    def _checked(self, ruleset: RuleSet) -> RuleSet:
        missing = [(n, s) for n, s in ruleset.tool_names() if n not in self.tools]
        if missing:
            raise ConvergeError([Diagnostic("E220", f"unknown tool {n!r}: the rules call it but the session has no tool "
                                                    "of that name", s) for n, s in missing])
        return ruleset

    def _loaded(self, ruleset: RuleSet, sources: Sequence[tuple[str, str]] = ()) -> LoadedRules:
        ruleset = self._checked(ruleset)
        files = tuple(RuleFile(f["path"], f["sha256"]) for f in ruleset.files)
        return LoadedRules(ruleset, files, ruleset.digest, time.time(), tuple(sorted(sources)))

    def _compile_paths(self, paths: Sequence[str]) -> LoadedRules:
        from .api import load

        return self._loaded(load(list(paths)))

    def _compile_texts(self, sources: Sequence[tuple[str, str]], roots: Sequence[str] | None = None) -> LoadedRules:
        from .api import load_sources

        names = [n for n, _ in sources]
        from .values import has_surrogate

        for name in names:  # a name is quoted in every record and answer: it must be text UTF-8 can hold
            if has_surrogate(name):
                raise _bad(f"rule file name {name!r} is not valid Unicode (it holds a lone surrogate)", "files", "E945")
        if len(set(names)) != len(names):
            raise _bad("two rule files have the same name", "files", "E945")
        if roots is not None and not roots:  # [] is no program, not "every file" (that is: no roots key)
            raise _bad("roots is empty: name at least one root file, or leave roots out for all of them", "roots", "E945")
        unknown = [r for r in roots or () if r not in names]
        if unknown:
            raise _bad(f"root {unknown[0]!r} is not among the files given", "roots", "E945")
        # texts only: imports resolve among the files given (and the standard library), never on disk
        return self._loaded(load_sources(dict(sources), list(roots) if roots else None), sources)

    def swap(self, sources: Sequence[tuple[str, str]], roots: Sequence[str] | None = None) -> LoadedRules:
        """Check new rule files given as ``(name, text)`` and make them current; on any error
        raise ConvergeError and keep the old rule set. Decisions in flight finish on the old one.
        ``roots``: the files that form the program (default: all); the others are only imported."""
        loaded = self._compile_texts(sources, roots)
        with self._lock:
            self._rules = loaded
        return loaded

    def reload(self) -> LoadedRules:
        """Re-read the rule files the session was started with (same checks as ``swap``)."""
        if not self._paths:
            raise ValueError("this session was not loaded from files")
        loaded = self._compile_paths(self._paths)
        with self._lock:
            self._rules = loaded
        return loaded

    # -- decisions
    def cap(self, requested: Budget | None, rules: LoadedRules | None = None) -> Budget:
        """The client's budget capped by the session's (and the rule files') budget, setting by
        setting: the smaller limit wins, and for a floor (``min_*``) the higher one."""
        server = self.budget.merged_over((rules or self._rules).ruleset.program.budget)
        req = requested or Budget()
        out: dict[str, Any] = {}
        for name, _ in budget_fields():
            a, b = getattr(req, name), getattr(server, name)
            if a is None or b is None:
                out[name] = b if a is None else a
            else:
                out[name] = max(a, b) if name.startswith("min_") else min(a, b)
        return Budget(**out)

    def decide(self, facts: Mapping[str, Iterable[Any]] | None, budget: Budget | Mapping[str, Any] | None = None,
               goals: Sequence[str] | None = None, relations: Sequence[str] | None = None, *,
               source_text: str | None = None) -> Decision:
        """Run the current rule set over ``facts`` (rows as arrays or objects by column name) and
        return the decision with its record. Raises ConvergeError (located, coded diagnostics)
        for malformed facts, budgets, goals or relations. A tier below converged is a decision too.

        ``source_text``: the JSON request the facts were decoded from (its ``"facts"`` key), so
        that diagnostics about facts point at ``<request>:line:col``."""
        loaded = self._rules  # one read: the whole decision runs on this rule set
        ruleset = loaded.ruleset
        try:
            if budget is not None and not isinstance(budget, Budget):
                budget = budget_from_json(budget)
            _check_names(ruleset, goals, relations)
        except ConvergeError as err:
            raise (err if source_text is None else _located(err, source_text)) from None
        try:
            result = ruleset.run({} if facts is None else facts, budget=self.cap(budget, loaded), tools=self.tools, workers=self.workers,
                                 tool_timeout=self.tool_timeout, on_failure=self.on_failure, goals=list(goals or ()),
                                 _stuck_calls=self.stuck_tool_calls, tool_isolation=self.tool_isolation,
                                 _tool_pool=self._tool_pool)
        except ConvergeError as err:
            if source_text is not None:
                _relocate(err, facts, ruleset, source_text)
            raise
        record = make_record(result, self.record_key)
        return Decision(uuid.uuid4().hex, time.time(), loaded.digest, result, record,
                        None if relations is None else tuple(dict.fromkeys(relations)))


def _check_names(ruleset: RuleSet, goals: Any, relations: Any) -> None:
    """``goals`` and ``relations`` of a decision: None or lists of relation names of the rule set."""
    for label, names in (("goals", goals), ("relations", relations)):
        if names is None:
            continue
        if isinstance(names, (str, bytes)) or not isinstance(names, Sequence) \
                or not all(isinstance(n, str) for n in names):  # a mapping or set is no list (order)
            raise _bad(f"{label} must be a list of relation names", label, at=(label,))
        for i, name in enumerate(names):
            if name not in ruleset.program.relations:
                err = ConvergeError([Diagnostic("E200", f"undefined relation {name!r}", Span(_REQUEST, 0, 0),
                                                notes=(f"at {label}[{i}]", "relations: " + ", ".join(ruleset.relations)))])
                err.request_paths = [((label, i), "value")]  # type: ignore[attr-defined]
                raise err


def _relocate(err: ConvergeError, facts: Any, ruleset: RuleSet, text: str) -> None:
    """Raise the facts' diagnostics again, located in the request text (line:col), when they were about facts."""
    from .io.facts import API_SOURCE, convert_facts

    if not any(d.span.file == API_SOURCE for d in err.diagnostics):
        return
    try:
        convert_facts(facts, ruleset.program.schema(), text=text, source=_REQUEST, prefix=("facts",))
    except ConvergeError as located:
        raise located from None


def make_record(result: Result, key: bytes | None = None) -> Any:
    """The decision record of a result (``converge_rules.record.Record``), sealed with HMAC-SHA256 under ``key`` if given."""
    from .record import Record

    return Record.from_result(result, key=key)


def open_record_text(text: str) -> Any:
    """A stored record back from its JSON text."""
    from .record import Record

    return Record.from_json(text)


def stored_record(found: Any) -> Any:
    """The decision record of a stored decision (``StoredDecision``); StoreError E948 when the
    stored record is not one (E611/E612/E613 of a record file: here the log is what is damaged)."""
    from .store.base import StoreError

    try:
        return open_record_text(found.record)
    except ConvergeError as err:
        raise StoreError("E948", f"the stored decision {found.id!r} is damaged: its record cannot be read "
                                 f"(error[{err.diagnostics[0].code}]: {err.diagnostics[0].message})") from None


__all__ = ["Decision", "LoadedRules", "RuleFile", "Session", "budget_from_json"]
