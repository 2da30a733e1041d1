"""The public Python API: load rules, run a job, inspect and explain the result."""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from typing import Any, Iterable, Mapping, Sequence

from .compile.pipeline import Compilation, compile_sources
from .compile.program import Program
from .diagnostics import ConvergeError, Diagnostic, Span
from .engine.loop import Budget, Engine, Outcome, Reason, Tier
from .explain.proofs import Proof, decode
from .explain.render import ProofNode, build_tree
from .syntax import ast
from .values import Value, format_fact

RESULT_FORMAT = "converge-result/1"


def check(paths: Sequence[str]) -> list[Diagnostic]:
    """Every diagnostic for these rule files (errors and warnings), sorted by position."""
    return compile_sources([(str(p), None) for p in paths]).diagnostics


def load(paths: Sequence[str] | str) -> "RuleSet":
    """Compile rule files into a RuleSet; raises ConvergeError with diagnostics."""
    if isinstance(paths, str):
        paths = [paths]
    return RuleSet._from(compile_sources([(str(p), None) for p in paths]))


def load_text(text: str, name: str = "<text>") -> "RuleSet":
    """Compile rules given as a string (imports resolve against the working directory)."""
    return RuleSet._from(compile_sources([(name, text)]))


class RuleSet:
    """A compiled, checked program, ready to run over facts."""

    def __init__(self, compilation: Compilation):
        assert compilation.program is not None and compilation.strata is not None
        self._compilation = compilation
        self.program: Program = compilation.program
        self.warnings = [d for d in compilation.diagnostics if not d.is_error]

    @classmethod
    def _from(cls, compilation: Compilation) -> "RuleSet":
        if not compilation.ok:
            raise ConvergeError([d for d in compilation.diagnostics if d.is_error])
        return cls(compilation)

    @property
    def relations(self) -> list[str]:
        return sorted(self.program.relations)

    def run(self, facts: Mapping[str, Iterable[Sequence[Any] | Mapping[str, Any]]] | None = None,
            fact_files: Sequence[str] = (), budget: Budget | None = None) -> "Result":
        """Evaluate to a fixed point (or a budget) over the rule files' facts plus ``facts`` and ``fact_files``."""
        schema = self.program.schema()
        loaded = []
        if fact_files:
            from .io import load_fact_paths

            loaded.append(load_fact_paths(list(fact_files), schema))
        if facts:
            from .io import convert_facts

            loaded.append(convert_facts(facts, schema))
        inputs = _Inputs(self.program, loaded)
        effective = (budget or Budget()).merged_over(self.program.budget)
        engine = Engine(self.program, self._compilation.strata, effective)  # type: ignore[arg-type]
        engine.load(inputs.canonical())
        outcome = engine.run()
        return Result(self.program, outcome, inputs)


class _Inputs:
    """Input facts from rule files, facts files and the API, with their sources."""

    def __init__(self, program: Program, loaded: list[Any]):
        self.program = program
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

    def canonical(self) -> dict[str, list[tuple]]:
        """Per relation: distinct facts in a canonical order (input order never matters)."""
        grouped: dict[str, list[tuple]] = {}
        for name, facts, _ in self.parts:
            grouped.setdefault(name, []).extend(facts)
        out = {}
        for name, facts in grouped.items():
            all_str = all(c.type == "str" for c in self.program.relations[name].columns)
            out[name] = canonical_order(facts, all_str)
        return out

    def source(self, relation: str, fact: tuple) -> tuple[str, int] | None:
        """Where an input fact came from (the smallest file:line when given twice)."""
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
        return self._sources.get(relation, {}).get(fact)


_SEP = "\x00"


def canonical_order(facts: list[tuple], all_str: bool) -> list[tuple]:
    """Distinct facts sorted by a total order that depends on the facts alone.

    Tuples of strings sort fastest by their joined text; that order is used
    when joining is injective on these facts (checked), otherwise the tuple order.
    """
    distinct = list(dict.fromkeys(facts))
    if all_str and distinct and len(distinct[0]) > 0:
        keys = list(map(_SEP.join, distinct))
        if len(set(keys)) == len(keys):
            return sorted(distinct, key=_SEP.join)
    return sorted(distinct)


class Result:
    """The outcome of a job: tier, reasons, cycles, facts with proofs, digest."""

    def __init__(self, program: Program, outcome: Outcome, inputs: _Inputs):
        self.program = program
        self._outcome = outcome
        self._inputs = inputs
        self._context = outcome.context

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

    def relations(self) -> list[str]:
        return sorted(self._context.relations)

    def fired_agents(self) -> list[str]:
        """Names of the agents that contributed at least one new fact, in declaration order."""
        return [self.program.agents[i].name for i in self._outcome.fired]

    def facts(self, relation: str) -> list[tuple]:
        """The facts of a relation, sorted."""
        store = self._context.relations.get(relation)
        if store is None:
            raise KeyError(f"no relation named {relation!r}")
        return sorted(store.facts)

    def count(self, relation: str) -> int:
        return len(self._context[relation])

    @property
    def total_facts(self) -> int:
        return self._context.size()

    def holds(self, relation: str, fact: Sequence[Value]) -> bool:
        store = self._context.relations.get(relation)
        return store is not None and _normalise(self.program, relation, fact) in store.facts

    def proof(self, relation: str, fact: Sequence[Value]) -> Proof | None:
        """The recorded derivation of a fact (None when it does not hold)."""
        return decode(self.program, self._context, relation, _normalise(self.program, relation, fact), self._inputs.source)

    def why(self, fact: str | tuple[str, Sequence[Value]], depth: int | None = None) -> ProofNode | None:
        """The proof tree of a fact, down to input facts; None when the fact does not hold."""
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
            h.update(json.dumps([name, store.arity, len(store)], ensure_ascii=False).encode())
            h.update(b"\n")
            h.update(json.dumps(store.order, ensure_ascii=False, separators=(",", ":")).encode())
            h.update(b"\n")
        return h.hexdigest()

    def to_dict(self, proofs: bool = False, relations: Sequence[str] | None = None) -> dict[str, Any]:
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
        if proofs:
            table: dict[str, list[Any]] = {}
            for n in names:
                rows = []
                for f in self.facts(n):
                    p = self.proof(n, f)
                    if p is not None and not p.is_input:
                        rows.append(p.to_json())
                table[n] = rows
            out["proofs"] = table
        return out

    def to_json(self, proofs: bool = False, relations: Sequence[str] | None = None) -> str:
        """Canonical JSON: identical bytes for identical jobs."""
        return json.dumps(self.to_dict(proofs, relations), ensure_ascii=False, indent=1) + "\n"

    def __repr__(self) -> str:
        return f"<Result {self.tier.value} cycles={self.cycles} facts={self.total_facts}>"


def _normalise(program: Program, relation: str, fact: Sequence[Value]) -> tuple:
    rel = program.relations.get(relation)
    values = tuple(fact)
    if rel is None:
        return values
    return tuple(float(v) if c.type == "float" and type(v) is int else v for v, c in zip(values, rel.columns))


__all__ = ["Budget", "ConvergeError", "Diagnostic", "Proof", "ProofNode", "Reason", "Result", "RuleSet", "Span",
           "Tier", "check", "load", "load_text"]
