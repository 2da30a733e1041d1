"""The public Python API: load rules, run a job, inspect and explain the result."""

from __future__ import annotations

import hashlib
import json
import math
import os
from functools import cached_property
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

from .values import dumps_json
from .compile.pipeline import Compilation, compile_sources
from .compile.program import Program
from .diagnostics import ConvergeError, Diagnostic, Span
from .regularfile import read_regular_text
from .compile.program import FailurePolicy
from .engine.effects import INPUT_PROOF
from .engine.loop import Budget, Outcome, Reason, Tier
if TYPE_CHECKING:
    from .explain.proofs import Proof
    from .explain.render import ProofNode
from .syntax import ast
from .values import Value, clipped, format_fact

RESULT_FORMAT = "converge-result/1"
TRACE_FORMAT = "converge-trace/1"


def _source_sha256(source: Any) -> str | None:
    from .io.digests import source_sha256  # the one definition, shared with replay and verify

    return source_sha256(source)


def _fact_label(source: Any) -> str:
    """A facts path as given, or a database URL without its password."""
    from .io.database import is_database_url, redact

    if hasattr(source, "text"):  # facts given as text (io.FactText): its name
        return source.name
    text = str(source)
    return redact(text) if is_database_url(text) else text


def _fact_entry(source: Any) -> dict[str, Any]:
    """A facts source in a trace header: its path (or URL without password), SHA-256 of a file,
    and a database's ``--table`` queries (so a replay reads the same)."""
    label = _fact_label(source)
    if hasattr(source, "text"):  # facts given as text (standard input): `replay` reads them there again
        return {"path": label, "sha256": _source_sha256(source), "stdin": True, "format": source.format}
    if label != str(source) or "://" in label or not isinstance(source, str):
        entry: dict[str, Any] = {"path": label, "sha256": None}
        tables = getattr(source, "tables", ())
        if tables:
            entry["tables"] = [list(t) for t in tables]
        return entry
    return {"path": source, "sha256": _source_sha256(source)}


def _source_name(source: Any) -> str:
    """A facts file's path, or the name of facts given as text (io.FactText)."""
    return source.name if hasattr(source, "text") else str(source)


def _plain(facts: Mapping[str, Iterable[Any]] | None) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for rel, items in (facts or {}).items():
        out[rel] = [list(v.values()) if isinstance(v, Mapping) else list(v) for v in items]
    return out


def check(paths: Sequence[str] | str = (), texts: Mapping[str, str] | None = None) -> list[Diagnostic]:
    """Every diagnostic for these rule files: errors, then (when there are none) the lints'
    warnings, with inline suppressions applied; sorted by position. A file given twice (two
    spellings of one path), or given and imported, is checked once and reported under the
    spelling whose absolute path sorts first, whatever the order given. A directory stands for its ``*.cvg`` files, searched as ``converge
    check`` searches it; one without any is a ValueError (the command's usage error).

    ``texts`` are rule files given as text, ``{name: text}`` (an editor's buffer, as
    ``converge check -`` reads standard input), checked as the files are, their imports
    read from disk. A text named as a file the check reads from disk (one of ``paths``, or
    a file they import) is a ValueError: one name cannot stand for two texts in a report."""
    from .compile.sources import collect_rule_files
    from .lint import check_files

    files = collect_rule_files([paths] if isinstance(paths, (str, os.PathLike)) else list(paths))
    return check_files(files, texts={str(name): text for name, text in (texts or {}).items()})


def load(paths: Sequence[str] | str) -> "RuleSet":
    """Compile rule files into a RuleSet; raises ConvergeError with diagnostics."""
    if isinstance(paths, str):
        paths = [paths]
    return RuleSet._from(compile_sources([(str(p), None) for p in paths]))


def load_text(text: str, name: str = "<text>") -> "RuleSet":
    """Compile rules given as a string (imports resolve against the working directory)."""
    return RuleSet._from(compile_sources([(name, text)]))


def load_sources(files: Mapping[str, str], roots: Sequence[str] | None = None) -> "RuleSet":
    """Compile rules from texts alone, ``{path: text}``: imports and standard modules are
    looked up among them, nothing is read from disk (a service receiving rule files, a record).
    ``roots`` are the root files, which share one namespace (default: every file given)."""
    texts = {str(p): t for p, t in files.items()}
    missing = [str(r) for r in (roots or ()) if str(r) not in texts]
    if missing:
        raise ConvergeError([Diagnostic("E001", f"root rule file not among the rule texts given: {r}", Span(r, 0, 0))
                             for r in missing])
    return RuleSet._from(compile_sources([(p, None) for p in (roots or sorted(texts))], virtual=texts))


class RuleSet:
    """A compiled, checked program, ready to run over facts."""

    def __init__(self, compilation: Compilation):
        assert compilation.program is not None and compilation.strata is not None
        self._compilation = compilation
        self.program: Program = compilation.program
        self.warnings = [d for d in compilation.diagnostics if not d.is_error]
        self.files = _read_sources(compilation)
        from .engine.codegen import CodeCache

        self._code_cache = CodeCache()  # plans and compiled join code, reused by every run of this rule set
        from .engine.tools import StuckCalls

        # tool calls abandoned at their time-out whose threads still run, over every run of this rule set:
        # at the limit (StuckCalls.LIMIT) new calls fail at once instead of adding a thread each
        self.stuck_tool_calls = StuckCalls()

    @property
    def digest(self) -> str:
        """SHA-256 over the rule files' names and contents (imports and standard modules included):
        the version of the rule set a decision ran under."""
        return ruleset_digest(self.files)

    def __getstate__(self) -> dict[str, Any]:
        """A RuleSet pickles as its checked program (as the compile cache stores it), so batch
        workers receive it once and never compile again."""
        c = self._compilation
        return {"roots": c.roots, "program": c.program, "strata": c.strata, "diagnostics": c.diagnostics}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(Compilation(state["roots"], program=state["program"], strata=state["strata"],  # type: ignore[misc]
                                  diagnostics=state["diagnostics"]))

    def run_many(self, jobs: Iterable[Any], *, workers: int = 1, client: Any = None,
                 relations: Sequence[str] | None = None, budget: Budget | None = None,
                 on_failure: str | None = None, goals: Sequence[str] = (), tools: Mapping[str, Any] | None = None,
                 tool_timeout: float | None = 30.0) -> Iterator[Any]:
        """Run independent jobs, yielding one ``batch.JobResult`` per job in the jobs' order.

        ``jobs`` holds ``batch.Job`` objects or ``(id, facts)`` pairs. They run in this process
        (``workers=1``), on a pool of ``workers`` processes, or on a Dask cluster (``client``, a
        ``distributed.Client``); the rule set is sent once per worker. One job's failure is
        recorded in its result and never stops the others. ``relations`` chooses the facts kept
        in each result (default: every relation that is not ``input``). ``tools`` are sent to the
        workers, so on a pool or cluster they must be module-level functions (picklable)."""
        from .batch.runner import BatchSettings, run_ordered

        settings = BatchSettings.make(self, relations, budget, on_failure, goals, tools, tool_timeout)
        return run_ordered(self, jobs, settings, workers=workers, client=client)

    @classmethod
    def _from(cls, compilation: Compilation) -> "RuleSet":
        if not compilation.ok:
            raise ConvergeError([d for d in compilation.diagnostics if d.is_error])
        return cls(compilation)

    @property
    def relations(self) -> list[str]:
        return sorted(self.program.relations)

    def tool_names(self) -> list[tuple[str, Span]]:
        """Every tool the rules call, with the span of its first call."""
        seen: dict[str, Span] = {}
        for rule in list(self.program.agents) + list(self.program.invariants):
            for lit in rule.body:
                if isinstance(lit, ast.Comparison):
                    for side in (lit.left, lit.right):
                        for e in ast.sub_exprs(side):
                            if isinstance(e, ast.ToolCall):
                                seen.setdefault(e.tool, e.span)
        return sorted(seen.items())

    def run(self, facts: Mapping[str, Iterable[Sequence[Any] | Mapping[str, Any]]] | None = None,
            fact_files: Sequence[Any] = (), budget: Budget | None = None, *,
            tools: Mapping[str, Any] | None = None, workers: int = 4, tool_timeout: float | None = 30.0,
            on_failure: str | FailurePolicy | None = None, goals: Sequence[str] = (),
            trace: bool = False, timestamps: bool = False, all_proofs: bool = False,
            progress: Any = None, tool_isolation: str = "thread",
            _replay_tools: Mapping[Any, Any] | None = None, analyze: bool = False, proofs: bool = True,
            _stuck_calls: Any = None, _tool_pool: Any = None) -> "Result":
        """Evaluate to a fixed point (or a budget) over the rule files' facts plus ``facts`` and ``fact_files``
        (paths, or ``io.FactText`` for facts given as text, such as standard input).

        ``tools`` maps names to Python callables (``s = @name(args)`` in rules), or is a module whose public
        functions are the tools (as ``converge run --tools module``); tool calls of one cycle
        run on ``workers`` threads with ``tool_timeout`` seconds each. ``on_failure`` is the job's default
        policy (``"abort"``, ``"skip"``, ``"retry N then skip|abort"``); ``goals`` prunes agents that
        cannot reach these relations; ``trace=True`` records every event (``Result.trace``);
        ``all_proofs=True`` records every derivation of each fact, not only the first (``Result.proofs``);
        ``analyze=True`` counts the rows out of every plan step (``Result.analysis``, ``converge plan --facts``);
        ``tool_isolation="process"`` runs tool calls in worker processes instead of threads: a call that
        times out has its process killed, even inside a long C call that holds the GIL.
        ``proofs=False`` keeps no proof records (faster, less memory): the facts, tier and digest are the
        same, but the result gives no explanations (``proof``/``why``/``support``/``to_json(proofs=True)``
        and decision records raise ConvergeError E540)."""
        from .engine.tools import TOOL_ISOLATION, tool_table

        tools = tool_table(tools)
        if not proofs and all_proofs:
            raise ValueError("all_proofs=True needs proofs: it cannot be combined with proofs=False")
        if tool_isolation not in TOOL_ISOLATION:
            raise ValueError(f"tool_isolation must be one of {', '.join(TOOL_ISOLATION)}, not {tool_isolation!r}")
        from .engine.loop import Engine

        policy = FailurePolicy.parse(on_failure) if isinstance(on_failure, str) else on_failure
        goal_names = list(self.program.goals) + [g for g in goals if g not in self.program.goals]
        for g in goal_names:
            if g not in self.program.relations:
                raise ConvergeError([Diagnostic("E200", f"undefined goal relation {g!r}", Span("<goal>", 0, 0))])
        missing = [(name, span) for name, span in self.tool_names() if name not in (tools or {}) and _replay_tools is None]
        if missing:
            raise ConvergeError([Diagnostic("E220", f"unknown tool {name!r}: the rules call it but no tool of that name was given", span,
                                            "error", ("register it: RuleSet.run(tools={...}) or converge run --tools module:object",))
                                 for name, span in missing])
        # No gc tuning here: a library never changes process-wide state (the CLI may, for its own process).
        outcome, inputs, events, header, effective = self._evaluate(
            facts, fact_files, budget, tools, workers, tool_timeout, policy, goal_names, trace, timestamps,
            progress, _replay_tools, all_proofs, tool_isolation, analyze, proofs, _stuck_calls or self.stuck_tool_calls,
            _tool_pool)
        result = Result(self.program, outcome, inputs, events, header)
        result.proofs_kept = proofs
        import os

        from .io.digests import content_sha256

        job_rules = sorted((p for p, _ in self._compilation.roots), key=os.path.abspath)
        # file order never changes a result; a database is named without its password
        job_facts = sorted(map(_fact_label, fact_files), key=os.path.abspath)
        # each file's SHA-256: `verify` refuses to read a file that does not match
        result.job = {"rules": job_rules, "facts": job_facts,
                      "sha256": {p: content_sha256(p) for p in job_rules + job_facts if os.path.exists(p)}}
        # facts given as text (standard input): the SHA-256 of that text, never of a file that
        # happens to bear its name; `verify` reads the same text from standard input again
        texts = [src for src in fact_files if hasattr(src, "text")]
        for src in texts:
            result.job["sha256"][src.name] = _source_sha256(src)
        if texts:
            result.job["stdin"] = {src.name: src.format for src in sorted(texts, key=lambda t: t.name)}
        result._ruleset_files = self.files
        result._options = {"budget": effective.to_json(), "on_failure": str(policy) if policy else "abort",
                           "goals": list(goal_names), "all_proofs": all_proofs, "tool_timeout": tool_timeout}
        return result


    def _evaluate(self, facts: Any, fact_files: Sequence[Any], budget: Budget | None, tools: Any, workers: int,
                  tool_timeout: float | None, policy: FailurePolicy | None, goal_names: list[str], trace: bool,
                  timestamps: bool, progress: Any, _replay_tools: Any, all_proofs: bool,
                  tool_isolation: str = "thread", analyze: bool = False, proofs: bool = True,
                  stuck_calls: Any = None, tool_pool: Any = None) -> Any:
        from .engine.loop import Engine

        from .io.facts import LoadedFacts

        schema = self.program.schema()
        loaded = []
        if fact_files:
            from .io import load_fact_paths

            loaded.append(load_fact_paths(list(fact_files), schema))
        if isinstance(facts, LoadedFacts):  # already converted (a batch job's database rows)
            loaded.append(facts)
        elif facts is not None:  # an empty array, 0 or "" is not "no facts": convert_facts refuses it (E501)
            from .io import convert_facts

            loaded.append(convert_facts(facts, schema))
        inputs = _Inputs(self.program, loaded)
        effective = (budget or Budget()).merged_over(self.program.budget)
        events: list[dict[str, Any]] | None = [] if trace else None
        sink = None
        if events is not None:
            import time

            def sink(event: dict[str, Any]) -> None:
                if timestamps:
                    event = {**event, "time": round(time.time(), 6)}
                events.append(event)  # type: ignore[union-attr]
        engine = Engine(self.program, self._compilation.strata, effective, tools=tools, workers=workers,  # type: ignore[arg-type]
                        tool_timeout=tool_timeout, on_failure=policy, goals=tuple(goal_names), trace=sink,
                        replay_tools=_replay_tools, progress=progress, input_confidence=inputs.confidence(effective.min_confidence),
                        all_proofs=all_proofs, tool_isolation=tool_isolation, analyze=analyze,
                        code_cache=self._code_cache, proofs=proofs, stuck_calls=stuck_calls,
                        tool_pool=tool_pool)
        engine.load(inputs.canonical())
        outcome = engine.run()
        roots = {p for p, _ in self._compilation.roots}
        header = {"event": "header", "format": TRACE_FORMAT,
                  # a file only imported is marked: `replay` compiles the root files, which import it again
                  "rules": [{"path": p, "sha256": _source_sha256(p), **({} if p in roots else {"imported": True})}
                            for p in self.program.files],
                  "facts": [_fact_entry(p) for p in fact_files],
                  "inline_facts": {k: [list(v) for v in vs] for k, vs in sorted(_plain(
                      facts.facts if isinstance(facts, LoadedFacts) else facts).items())} if facts else {},
                  "budget": effective.to_json(), "on_failure": str(policy) if policy else "abort",
                  "goals": goal_names, "timestamps": timestamps}
        return outcome, inputs, events, header, effective

def _read_sources(compilation: Compilation) -> list[dict[str, str]]:
    """Every file of the program with its text and SHA-256, read once when the rule set is
    loaded (a decision record carries them, so later edits never reach it); sorted by path."""
    given = {p: t for p, t in compilation.roots if t is not None}
    given.update(compilation.texts or {})
    files: dict[str, dict[str, str]] = {}
    for path in compilation.program.files if compilation.program else ():
        text = given.get(path)
        if text is None and compilation.texts is None:
            try:
                text = read_regular_text(path)
            except (OSError, UnicodeDecodeError):
                continue
        if text is None:
            continue
        files[path] = {"path": path, "sha256": hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),
                       "text": text}
    return [files[p] for p in sorted(files)]


def ruleset_digest(files: Iterable[Mapping[str, str]]) -> str:
    """SHA-256 over (name, SHA-256 of contents) of each rule file, sorted by name; a standard
    module counts by its module name, so the digest does not depend on where converge is installed."""
    from .compile.frontend import stdlib_dir

    std = os.path.join(str(stdlib_dir()), "std") + os.sep
    named = sorted(("<std>/" + f["path"][len(std):] if f["path"].startswith(std) else f["path"], f["sha256"])
                   for f in files)
    return hashlib.sha256(dumps_json(named, ensure_ascii=False).encode("utf-8", "surrogatepass")).hexdigest()


class _Inputs:
    """Input facts from rule files, facts files and the API, with their sources."""

    def __init__(self, program: Program, loaded: list[Any]):
        self.program = program
        self.loaded = loaded
        self.parts: list[tuple[str, list[tuple], Sequence[tuple[str, int]]]] = []
        by_rel: dict[str, tuple[list[tuple], list[tuple[str, int]]]] = {}
        for f in program.facts:
            facts, sources = by_rel.setdefault(f.relation, ([], []))
            facts.append(f.values)
            sources.append((f.span.file, f.span.line))
        for name, (facts, sources) in by_rel.items():
            self.parts.append((name, facts, sources))
        for lf in loaded:
            for name in lf.facts:
                self.parts.append((name, lf.facts[name], lf.sources[name]))
        self._sources: dict[str, dict[tuple, tuple[str, int]]] | None = None

    def confidence(self, floor: float | None) -> dict[str, dict[tuple, float]]:
        """Input facts given with a confidence below 1 (the best one when given twice)."""
        out: dict[str, dict[tuple, float]] = {}
        for lf in self.loaded:
            for rel, table in getattr(lf, "confidence", {}).items():
                target = out.setdefault(rel, {})
                for fact, c in table.items():
                    target[fact] = max(c, target.get(fact, 0.0))
        # a fact given both with and without a confidence has confidence 1: every fact of a rule
        # file, and every fact of a loaded set that its own confidence table leaves out, was
        # given without one (each loaded set already settled its own repeats)
        plain: list[tuple[str, Iterable[tuple], Mapping[tuple, float]]] = [
            (f.relation, (f.values,), {}) for f in self.program.facts if out.get(f.relation)]
        for lf in self.loaded:
            own = getattr(lf, "confidence", {})
            plain += [(name, lf.facts[name], own.get(name, {})) for name in lf.facts if out.get(name)]
        for name, facts, own in plain:
            table = out[name]
            for f in facts:
                if f not in own and f in table:
                    del table[f]
        return out

    def canonical(self) -> dict[str, list[tuple]]:
        """Per relation: distinct facts in a canonical order (input order never matters)."""
        grouped: dict[str, list[tuple]] = {}
        for name, facts, _ in self.parts:
            grouped.setdefault(name, []).extend(facts)
        out = {}
        for name, facts in grouped.items():
            columns = self.program.relations[name].columns
            all_str = all(c.type == "str" for c in columns)
            floats = [k for k, c in enumerate(columns) if c.type == "float"]
            out[name] = canonical_order(_positive_zeros(facts, floats) if floats else facts, all_str)
        return out

    def source(self, relation: str, fact: tuple) -> tuple[str, int] | None:
        """Where an input fact came from (the smallest file:line when given twice)."""
        return self.sources(relation).get(fact)

    def sources(self, relation: str) -> dict[tuple, tuple[str, int]]:
        """Input fact -> where it came from, for one relation (a decision record copies it)."""
        if self._sources is None:
            table: dict[str, dict[tuple, tuple[str, int]]] = {}
            for name, facts, sources in self.parts:
                rel = table.setdefault(name, {})
                for f, s in zip(facts, sources):
                    s = (s[0], s[1])
                    old = rel.get(f)
                    if old is None or s < old:
                        rel[f] = s
            self._sources = table
        return self._sources.get(relation, {})


_SEP = "\x00"
_FIELD, _RECORD = "\x1e", "\x1f"


def _encode_facts(facts: list[tuple], all_str: bool) -> bytes:
    """Facts as bytes for the digest: JSON, or for text-only relations a compact form
    (fields joined by U+001E, facts by U+001F) used only when no value holds either
    separator, which the separator counts prove, so the encoding stays injective."""
    if all_str and facts and len(facts[0]) > 0:
        body = _RECORD.join(map(_FIELD.join, facts))
        if body.count(_FIELD) == len(facts) * (len(facts[0]) - 1) and body.count(_RECORD) == len(facts) - 1:
            return b"T" + body.encode("utf-8", "surrogatepass")
    return b"J" + dumps_json(facts, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")


def _positive_zeros(facts: list[tuple], columns: list[int]) -> list[tuple]:
    """The facts with every ``-0.0`` of these (float) columns made ``0.0``.

    ``-0.0 == 0.0``, so the two are one value to the rules and to dedupe, yet they
    print differently: a fact given as both ``p(-0.0)`` and ``p(0.0)`` would keep
    whichever came first, and the input order would change the output and the
    digest. Input values therefore hold one zero, ``0.0``."""
    if not any(v == 0.0 and math.copysign(1.0, v) < 0.0 for k in columns for v in map(itemgetter(k), facts)):
        return facts
    wanted = set(columns)
    return [tuple(v + 0.0 if k in wanted else v for k, v in enumerate(f)) for f in facts]  # -0.0 + 0.0 is 0.0


def canonical_order(facts: list[tuple], all_str: bool) -> list[tuple]:
    """Distinct facts sorted by a total order that depends on the facts alone.

    Tuples of strings sort fastest by their joined text; that order is used
    when joining is injective on these facts (checked), otherwise the tuple order.

    The order is always exactly that; the work is kept small because a big job's
    input passes through here once: facts already strictly in that order (a file
    written sorted) come back without hashing or sorting (one pass of comparisons
    proves them distinct and ordered); one-column facts sort by their value (the
    joined text of a 1-tuple is its value, so joining is injective); and when no
    value holds the separator (its count in all keys together says so) joining is
    injective, so the distinct keys are sorted and split back into facts. Those
    are new tuples and strings, made in sorted order and so lying in memory in
    that order (the loaded ones lie in file order): the engine, which commits and
    indexes them in this order, and the digest, which reads them in it, then walk
    memory forwards instead of jumping about (on 300,000 edges that saves more
    than the splitting costs).
    """
    from itertools import islice, repeat
    from operator import itemgetter, lt

    if not facts:
        return []
    if all_str and len(facts[0]) > 0:
        arity = len(facts[0])
        if arity == 1:
            if all(map(lt, facts, islice(facts, 1, None))):  # 1-tuples: the same order as their values
                return list(facts)
            return sorted(dict.fromkeys(facts), key=itemgetter(0))
        keys = list(map(_SEP.join, facts))
        if all(map(lt, keys, islice(keys, 1, None))):
            return list(facts)  # distinct keys, so distinct facts and an injective join, already in order
        if "".join(keys).count(_SEP) == len(keys) * (arity - 1):
            text = _SEP.join(sorted(dict.fromkeys(keys)))  # equal keys are equal facts: distinct keys, distinct facts
            del keys  # free them before the new facts are made (a lower peak of memory)
            values = iter(text.split(_SEP))
            del text
            return list(zip(*repeat(values, arity)))
        distinct = list(dict.fromkeys(facts))
        if len(distinct) != len(facts):
            keys = list(map(_SEP.join, distinct))
        if len(set(keys)) == len(keys):
            return sorted(distinct, key=_SEP.join)
        return sorted(distinct)
    if all(map(lt, facts, islice(facts, 1, None))):
        return list(facts)
    return sorted(dict.fromkeys(facts))


class Result:
    """The outcome of a job: tier, reasons, cycles, facts with proofs, digest."""

    def __init__(self, program: Program, outcome: Outcome, inputs: _Inputs,
                 events: list[dict[str, Any]] | None = None, header: dict[str, Any] | None = None):
        self.program = program
        self._outcome = outcome
        self._inputs = inputs
        self._proof_shapes: dict[int, Any] = {}  # per agent: how its proof records decode
        self._context = outcome.context
        self._events = events
        self._header = header or {}
        self.job: dict[str, Any] = {"rules": [], "facts": [], "sha256": {}}
        self._ruleset_files: list[dict[str, str]] = []   # set by RuleSet.run: what a record carries
        self._options: dict[str, Any] = {}
        self.proofs_kept = True  # False when run with proofs=False (--proofs none): no explanations

    def _need_proofs(self, what: str) -> None:
        if not self.proofs_kept:
            raise ConvergeError([Diagnostic(
                "E540", f"{what} needs proofs, but this job ran without them (proofs=False, --proofs none)",
                Span("<result>", 0, 0), "error", ("run the job again with proofs on (the default) to explain its facts",))])

    def to_record(self, key: bytes | str | None = None) -> Any:
        """This job as a self-contained decision record (see converge_rules.record). With
        ``key`` (a secret, e.g. ``read_record_key(path)``) its seal is HMAC-SHA256, so that
        ``verify`` with the key tells a record written by a key holder from a forged one."""
        from .record import Record

        self._need_proofs("a decision record")
        return Record.from_result(self, key=key)

    @property
    def trace(self) -> list[dict[str, Any]] | None:
        """Every event of the run (header first, outcome last) when run with ``trace=True``."""
        if self._events is None:
            return None
        outcome = {"event": "outcome", "tier": self.tier.value, "reasons": [r.to_json() for r in self.reasons],
                   "cycles": self.cycles, "facts": self.total_facts, "digest": self.digest}
        return [self._header] + self._events + [outcome]

    def trace_jsonl(self) -> str:
        """The trace as JSON Lines (one event per line, keys in a fixed order)."""
        events = self.trace or []
        return "".join(dumps_json(e, ensure_ascii=False, separators=(",", ":")) + "\n" for e in events)

    @property
    def analysis(self) -> dict[str, Any] | None:
        """With ``run(analyze=True)``: agent name -> (its plan per driver, rows out of each
        step per driver, by literal index, -1 for emitted matches); else None."""
        return self._outcome.analysis

    @property
    def steps(self) -> int:
        """Rule firings counted (only when a max_steps budget is set)."""
        return self._outcome.steps

    @property
    def bytes_counted(self) -> int | None:
        """What the facts counted against the max_bytes budget (a deterministic figure); None for
        a result rebuilt from a decision record written before records kept it."""
        return self._outcome.bytes

    @property
    def tier(self) -> Tier:
        return self._outcome.tier

    @property
    def reasons(self) -> list[Reason]:
        return self._outcome.reasons

    @property
    def cycles(self) -> int:
        return self._outcome.cycles

    @property
    def budget(self) -> Budget:
        return self._outcome.budget

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """Every tool call of the run, in order: cycle, tool, args, and result or error."""
        return list(self._outcome.tool_calls)

    @property
    def goals(self) -> list[str]:
        """The job's goal relations (from the rule files and from ``run(goals=...)``)."""
        return list(self._options.get("goals", []))

    @property
    def pruned_agents(self) -> list[str]:
        """The agents pruned for the job's goals, in declaration order: they never ran."""
        pruned = set(self._outcome.pruned)
        return [a.name for a in self.program.agents if a.id in pruned]

    def relations(self) -> list[str]:
        return sorted(self._context.relations)

    def fired_agents(self) -> list[str]:
        """Names of the agents that contributed at least one new fact, in declaration order."""
        return [self.program.agents[i].name for i in self._outcome.fired]

    def facts(self, relation: str) -> list[tuple]:
        """The facts of a relation, sorted."""
        return sorted(self._store(relation).facts)

    def _store(self, relation: str) -> Any:
        """A relation's facts; KeyError naming the relation when the program has none of that name."""
        store = self._context.relations.get(relation)
        if store is None:
            raise KeyError(f"no relation named {relation!r}")
        return store

    def count(self, relation: str) -> int:
        return len(self._store(relation))

    @property
    def total_facts(self) -> int:
        return self._context.size()

    def holds(self, relation: str, fact: Sequence[Value]) -> bool:
        store = self._context.relations.get(relation)
        return store is not None and _normalise(self.program, relation, fact) in store.facts

    def confidence(self, relation: str, fact: Sequence[Value]) -> float:
        """A fact's confidence (1.0 unless inputs or agents gave less); 0.0 when it does not hold."""
        values = _normalise(self.program, relation, fact)
        if not self.holds(relation, values):
            return 0.0
        table = self._outcome.confidence or {}
        return table.get(relation, {}).get(values, 1.0)

    def weak_facts(self, relation: str) -> list[tuple[tuple, float]]:
        """Facts of a relation with confidence below 1, sorted."""
        facts = self._store(relation).facts
        table = (self._outcome.confidence or {}).get(relation, {})
        return sorted((f, c) for f, c in table.items() if f in facts)

    def dropped(self, relation: str, fact: Sequence[Value]) -> dict[str, Any] | None:
        """Why a derived fact is not in the context although an agent derived it: superseded
        or dominated (dominance), over max_facts, below min_confidence; None otherwise."""
        values = _normalise(self.program, relation, fact)
        store = self._context.relations.get(relation)
        if store is not None and values in store.superseded:
            _proof, by, cycle = store.superseded[values]
            origin = "given as input" if _proof[0] == INPUT_PROOF[0] else "derived"
            return {"reason": "superseded", "cycle": cycle, "by": by,
                    "message": f"{origin}, then superseded in cycle {cycle} by {format_fact(relation, by)}"}
        entry = (self._outcome.dropped.get(relation) or {}).get(values)
        if entry is None:
            return None
        reason, cycle, detail = entry
        origin = "given as input" if cycle == 0 else f"derived in cycle {cycle}"
        if reason == "dominated":
            message = f"{origin} but dominated by {format_fact(relation, detail)}, which was kept"
        elif reason == "max_facts":
            message = f"{origin} but dropped: the max_facts budget ({detail}) was exhausted"
        elif cycle == 0:
            message = (f"given as input with confidence {detail:g}, below min_confidence "
                       f"{self.budget.min_confidence}, and dropped")
        else:
            message = (f"derived in cycle {cycle} with confidence {detail:g}, below min_confidence "
                       f"{self.budget.min_confidence}")
        return {"reason": reason, "cycle": cycle, "detail": list(detail) if isinstance(detail, tuple) else detail,
                "message": message}

    def superseded(self, relation: str) -> list[tuple[tuple, tuple, int]]:
        """Facts of a keyed relation that were superseded: (fact, superseded by, cycle), sorted."""
        store = self._store(relation)
        return sorted((f, by, c) for f, (_p, by, c) in store.superseded.items())

    def proof(self, relation: str, fact: Sequence[Value]) -> "Proof | None":
        """The recorded derivation of a fact (None when it does not hold)."""
        from .explain.proofs import decode

        self._need_proofs("a proof")
        return decode(self.program, self._context, relation, _normalise(self.program, relation, fact), self._inputs.source,
                      self._outcome.confidence, self._proof_shapes)

    def proofs(self, relation: str, fact: Sequence[Value], limit: int | None = None) -> "list[Proof]":
        """Every recorded derivation of a fact, the first one first (alternatives only when run
        with ``all_proofs=True``); empty when the fact does not hold."""
        from .explain.proofs import decode_record

        values = _normalise(self.program, relation, fact)
        first = self.proof(relation, values)
        if first is None:
            return []
        out = [first]
        others = ((self._outcome.alternatives or {}).get(relation) or {}).get(values, [])
        for record in others:
            if limit is not None and len(out) >= limit:
                break
            out.append(decode_record(self.program, relation, values, record, self._outcome.confidence,
                                     cache=self._proof_shapes))
        return out[:limit] if limit is not None else out

    def support(self, relation: str, fact: Sequence[Value]) -> list[tuple[str, tuple]]:
        """The input facts the (first) proof of a fact rests on, sorted."""
        seen: set[tuple[str, tuple]] = set()
        inputs: set[tuple[str, tuple]] = set()
        stack = [(relation, _normalise(self.program, relation, fact))]
        while stack:
            key = stack.pop()
            if key in seen:
                continue
            seen.add(key)
            p = self.proof(*key)
            if p is None:
                continue
            if p.is_input:
                inputs.add(key)
            else:
                stack.extend(p.premises)
        return sorted(inputs)

    def why_not(self, fact: str | tuple[str, Sequence[Value]], depth: int = 1) -> Any:
        """Why a fact does not hold: the agents that could derive it, their deepest partial
        matches and the first literal nothing satisfies (or that it holds, or was dropped)."""
        from .explain.whynot import why_not

        if isinstance(fact, str):
            return why_not(self, fact, depth=depth)
        return why_not(self, fact[0], tuple(fact[1]), depth=depth)

    def why(self, fact: str | tuple[str, Sequence[Value]], depth: int | None = None) -> "ProofNode | None":
        """The proof tree of a fact, down to input facts; None when the fact does not hold."""
        from .explain.render import build_tree

        relation, values = self.parse_fact(fact) if isinstance(fact, str) else (fact[0], tuple(fact[1]))
        root = self.proof(relation, values)
        if root is None:
            return None
        return build_tree(root, self.proof, depth)

    def parse_fact(self, text: str) -> tuple[str, tuple]:
        """``'decision("l1", "reject")'`` → ("decision", ("l1", "reject")); raises ConvergeError."""
        from .syntax.parser import parse_atom

        atom = parse_atom(text)
        rel = self.program.relations.get(atom.relation)
        if rel is None:
            raise ConvergeError([Diagnostic("E200", f"undefined relation {atom.relation!r}", atom.span)])
        if len(atom.args) != rel.arity:
            raise ConvergeError([Diagnostic("E300", f"{rel.name} has {rel.arity} column(s), the fact gives {len(atom.args)}", atom.span)])
        values = []
        for arg, col in zip(atom.args, rel.columns):
            if not isinstance(arg, ast.Const):
                raise ConvergeError([Diagnostic("E405", "a fact holds constants only", arg.span)])
            v = arg.value
            if col.type == "float" and type(v) is int:
                v = float(v)
            from .values import type_name

            if type_name(v) != col.type:
                raise ConvergeError([Diagnostic("E301", f"column {col.name!r} of {rel.name} is {col.type}, got {type_name(v)}", arg.span)])
            values.append(v)
        return rel.name, tuple(values)

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the canonical final context.

        Relations in name order; each as its name, arity and count, then its
        facts in commit order. Commit order is a function of the job alone
        (inputs are committed sorted, agents merge in declaration order of
        sorted files), so equal jobs give equal digests whatever the input
        order, file order or hash seed, at the cost of one pass, not a sort.
        """
        h = hashlib.sha256()
        for name in self.relations():
            store = self._context[name]
            h.update(dumps_json([name, store.arity, len(store)], ensure_ascii=False).encode())
            h.update(b"\n")
            h.update(_encode_facts(store.live_order(), all(c.type == "str" for c in self.program.relations[name].columns)))
            h.update(b"\n")
        return h.hexdigest()

    def to_dict(self, proofs: bool = False, relations: Sequence[str] | None = None,
                all_proofs: bool = False) -> dict[str, Any]:
        names = list(relations) if relations else self.relations()
        out: dict[str, Any] = {
            "format": RESULT_FORMAT,
            "tier": self.tier.value,
            "reasons": [r.to_json() for r in self.reasons],
            "cycles": self.cycles,
            "digest": self.digest,
            "budget": self.budget.to_json(),
            "counts": {n: self.count(n) for n in self.relations()},
            "facts": {n: [list(f) for f in self.facts(n)] for n in names},
        }
        weak = {n: [list(f) + [c] for f, c in self.weak_facts(n)] for n in names}
        if any(weak.values()):
            out["confidence"] = {n: rows for n, rows in weak.items() if rows}
        if proofs:
            self._need_proofs("JSON output with proofs")
            out["job"] = self.job  # what a verifier re-reads: the rule files and facts files
            table: dict[str, list[Any]] = {}
            for n in names:
                rows = []
                for f in self.facts(n):
                    found = self.proofs(n, f) if all_proofs else [self.proof(n, f)]
                    if found and found[0] is not None and not found[0].is_input:
                        row = found[0].to_json()  # type: ignore[union-attr]
                        if all_proofs and len(found) > 1:
                            row["alternatives"] = [p.to_json() for p in found[1:]]
                        rows.append(row)
                table[n] = rows
            out["proofs"] = table
        return out

    def to_json(self, proofs: bool = False, relations: Sequence[str] | None = None, all_proofs: bool = False) -> str:
        """Canonical JSON: identical bytes for identical jobs."""
        return dumps_json(self.to_dict(proofs, relations, all_proofs), ensure_ascii=False, indent=1) + "\n"

    def __repr__(self) -> str:
        return f"<Result {self.tier.value} cycles={self.cycles} facts={self.total_facts}>"


def _normalise(program: Program, relation: str, fact: Sequence[Value]) -> tuple:
    """A fact given to the API as the engine stores it: an int widened for a float column, and a
    value of another type than its column's (``True`` or ``1.0`` for an int column: 1, 1.0 and
    true are different values, though equal in Python) as a value equal to nothing, so that
    the fact does not hold — as ``why_not`` says."""
    from .engine.runtime import NO_MATCH, as_column

    rel = program.relations.get(relation)
    if isinstance(fact, (str, bytes)) or not isinstance(fact, Sequence):
        raise TypeError(f"a fact of {relation} is a sequence of values, not {type(fact).__name__}")
    values = tuple(fact)
    for v in values:
        if not isinstance(v, (int, float, str)) and v is not NO_MATCH:  # bool is an int; NO_MATCH: normalised already
            raise TypeError(f"a fact's values are int, float, str or bool: {relation} was given a "
                            f"{type(v).__name__} ({clipped(repr(v))})")
    if rel is None:
        return values
    return tuple(as_column(v, c.type) for v, c in zip(values, rel.columns)) + values[len(rel.columns):]


__all__ = ["Budget", "ConvergeError", "Diagnostic", "Proof", "ProofNode", "Reason", "Result", "RuleSet", "Span",
           "Tier", "check", "load", "load_sources", "load_text"]
