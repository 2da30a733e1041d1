"""An independent proof checker for results written by ``run --format json --proofs``.

``converge verify RESULT.json`` re-reads the rule files and input facts named in
the result's ``job`` and re-checks every recorded proof against them. The check
is deliberately separate from the evaluator: this module imports the front end
(to read the rules), the fact loaders, the AST and the value helpers, and never
``converge_rules.engine`` (code generation, the loop, the runtime, the store),
``converge_rules.api`` or ``converge_rules.explain.proofs``. Expressions,
comparisons, builtins and aggregates are evaluated by the small interpreter
below, written from the language reference, not from the engine's code.

Per proof (and per alternative derivation of a ``--proofs all`` result) it checks that: the agent exists; one of its ``emit`` atoms of the
fact's relation, instantiated with the bindings, gives exactly the fact; every
positive body atom instantiated with the bindings equals its premise (premises
are listed in body order) and the premise is in the final facts (a premise of a
keyed relation that was superseded, so that a strictly preferred fact of its key
is in the final facts, is accepted with a note); every negated atom
instantiated with the bindings equals the recorded pattern and no final fact
matches it; every comparison and condition holds; every aggregate recomputes,
over the final facts, to the value bound; every premise was known before the
fact (its cycle, 0 for an input, is smaller). It also checks that every fact of
the result has a proof or is an input fact, that every proof's fact is in the
result, that no fact is listed twice, and that ``counts`` matches the facts listed.

Not checked: the ``confidence`` of a proof, the ``conditions`` texts (the
comparisons are re-evaluated from the rules instead), the results of tool
calls (taken from the bindings, with a note), the derivations of superseded
facts, the ``digest`` and ``tier``, and that the result is complete (that no other
fact should hold).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

from ..values import dumps_json, loads_json
from ..diagnostics import ConvergeError, Diagnostic, Span, quote_text
from ..syntax import ast
from ..values import Value, format_fact, format_value, str_to_int, type_name

# ------------------------------------------------------------------ report


@dataclass
class Failure:
    """A proof (or a fact) that does not check: the fact, the agent, and each problem found."""

    relation: str
    fact: tuple
    agent: str | None
    rule: str | None
    problems: list[tuple[str, str]]  # (check, why): check is agent, head, premise, negated, ...
    index: int | None = None  # position of the proof in the result's list for its relation
    whole_relation: bool = False  # a problem of the relation's listing (its count), not of one fact
    alternative: int | None = None  # which of the fact's other derivations (`--proofs all`), from 0

    @property
    def text(self) -> str:
        return format_fact(self.relation, self.fact)

    def render(self) -> str:
        if self.whole_relation:
            head = f"relation {self.relation}:"
        elif self.agent is None and self.index is None:
            head = f"fact {self.text}:"
        else:
            where = f" ({self.rule})" if self.rule else ""
            which = "proof" if self.alternative is None else f"alternative derivation {self.alternative + 1}"
            head = f"{which} of {self.text} by agent {self.agent or '?'}{where} does not check:"
        return "\n".join([head] + [f"  {check}: {why}" for check, why in self.problems])

    def to_json(self) -> dict[str, Any]:
        return {"relation": self.relation, "fact": None if self.whole_relation else list(self.fact),
                "agent": self.agent, "rule": self.rule,
                **({"alternative": self.alternative} if self.alternative is not None else {}),
                "problems": [{"check": c, "message": m} for c, m in self.problems]}


@dataclass
class Report:
    proofs: int = 0      # proofs checked
    facts: int = 0       # facts in the result
    failures: list[Failure] = field(default_factory=list)
    notes: dict[str, int] = field(default_factory=dict)  # note text -> how many proofs it concerns

    @property
    def ok(self) -> bool:
        return not self.failures

    def note(self, text: str) -> None:
        self.notes[text] = self.notes.get(text, 0) + 1

    def note_lines(self) -> list[str]:
        return [text + (f" ({n} proofs)" if n > 1 else "") for text, n in self.notes.items()]

    @property
    def summary(self) -> str:
        if self.ok:
            return f"verified {self.proofs} proof{'s' if self.proofs != 1 else ''} of {self.facts} fact{'s' if self.facts != 1 else ''}"
        bad_proofs = sum(1 for f in self.failures if f.index is not None)
        unproven = sum(1 for f in self.failures if f.index is None and not f.whole_relation
                       and [c for c, _ in f.problems] == ["proof"])
        listing = len(self.failures) - bad_proofs - unproven  # undeclared or repeated facts, wrong counts
        parts = []
        if bad_proofs:
            parts.append(f"{bad_proofs} of {self.proofs} proof{'s' if self.proofs != 1 else ''} do{'es' if bad_proofs == 1 else ''} not check")
        if unproven:
            parts.append(f"{unproven} fact{'s' if unproven != 1 else ''} without a proof")
        if listing:
            parts.append(f"{listing} problem{'s' if listing != 1 else ''} in the result's facts or counts")
        return "; ".join(parts)


# ------------------------------------------------------------------ evaluation


class _Bad(Exception):
    """An expression or literal that does not evaluate (the engine would have failed the agent)."""


class _Tool(Exception):
    """A tool call: its result is not known to the checker."""


def _num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _arith(op: str, a: Value, b: Value) -> Value:
    if isinstance(a, float) or isinstance(b, float):
        try:
            a, b = float(a), float(b)  # type: ignore[arg-type]
        except OverflowError:
            raise _Bad("int too large to convert to float") from None
    if op == "+":
        return a + b  # type: ignore[operator]
    if op == "-":
        return a - b  # type: ignore[operator]
    if op == "*":
        return a * b  # type: ignore[operator]
    if op == "/":
        return _div(a, b)
    if op == "%":
        return _mod(a, b)
    raise _Bad(f"unknown operator {op}")


def _finite(v: Value) -> Value:
    """Floats are finite: an operation that leaves the range is an error, as in the engine."""
    if isinstance(v, float) and not math.isfinite(v):
        raise _Bad(f"arithmetic overflow: {v}")
    return v


def _div(a: Value, b: Value) -> Value:
    if b == 0:
        raise _Bad("division by zero")
    if type(a) is int and type(b) is int:
        q = abs(a) // abs(b)  # truncate toward zero
        return q if (a < 0) == (b < 0) else -q
    return a / b  # type: ignore[operator]


def _mod(a: Value, b: Value) -> Value:
    if b == 0:
        raise _Bad("modulo by zero")
    if type(a) is int and type(b) is int:
        r = abs(a) % abs(b)  # the sign of the dividend
        return -r if a < 0 else r
    return math.fmod(a, b)  # type: ignore[arg-type]


def _args(func: str, args: list[Value], *types: str) -> None:
    if len(args) != len(types):
        raise _Bad(f"{func}() takes {len(types)} argument(s), got {len(args)}")
    for a, t in zip(args, types):
        ok = _num(a) if t == "num" else type_name(a) == t
        if not ok:
            raise _Bad(f"{func}() does not take ({', '.join(type_name(x) for x in args)})")


def _builtin(func: str, args: list[Value]) -> Value:
    if func in ("len", "lower", "upper"):
        _args(func, args, "str")
        s = args[0]
        assert isinstance(s, str)
        return len(s) if func == "len" else s.lower() if func == "lower" else s.upper()
    if func in ("contains", "startswith", "endswith"):
        _args(func, args, "str", "str")
        s, part = args
        assert isinstance(s, str) and isinstance(part, str)
        return part in s if func == "contains" else s.startswith(part) if func == "startswith" else s.endswith(part)
    if func == "substr":
        _args(func, args, "str", "int", "int")
        s, start, length = args
        assert isinstance(s, str) and isinstance(start, int) and isinstance(length, int)
        if start < 0 or length < 0:
            raise _Bad(f"substr: start and length must be >= 0, got {start} and {length}")
        return s[start:start + length]
    if func == "to_str":
        if len(args) != 1:
            raise _Bad("to_str() takes 1 argument")
        return args[0] if isinstance(args[0], str) else format_value(args[0])
    if func == "to_int":
        if len(args) != 1:
            raise _Bad("to_int() takes 1 argument")
        v = args[0]
        if isinstance(v, bool):
            return int(v)
        if isinstance(v, int):
            return v
        if isinstance(v, float):
            if not math.isfinite(v):
                raise _Bad(f"to_int: {v} is not finite")
            return int(v)
        try:
            return str_to_int(str(v).strip())
        except ValueError:
            raise _Bad(f"to_int: {format_value(v)} is not an integer") from None
    if func == "to_float":
        if len(args) != 1:
            raise _Bad("to_float() takes 1 argument")
        v = args[0]
        if _num(v):
            return float(v)
        if not isinstance(v, str):
            raise _Bad(f"to_float: {format_value(v)} is not a number")
        try:
            result = float(v.strip())
        except ValueError:
            raise _Bad(f"to_float: {format_value(v)} is not a number") from None
        if not math.isfinite(result):
            raise _Bad(f"to_float: {format_value(v)} is not finite")
        return result
    if func == "abs":
        _args(func, args, "num")
        return abs(args[0])  # type: ignore[arg-type]
    if func in ("min", "max"):
        _args(func, args, "num", "num")
        a, b = args
        if isinstance(a, float) or isinstance(b, float):
            a, b = float(a), float(b)  # type: ignore[arg-type]
        return min(a, b) if func == "min" else max(a, b)  # type: ignore[type-var]
    raise _Bad(f"unknown function {func}")


def evaluate(e: ast.Expr, env: Mapping[str, Value]) -> Value:
    """The value of an expression under bindings (raises _Bad, _Tool, or KeyError for an unbound variable)."""
    if isinstance(e, ast.Const):
        return e.value
    if isinstance(e, ast.Var):
        value = env[e.name]
        if value is _ANY:
            raise _Tool(f"result in {e.name}")
        return value
    if isinstance(e, ast.Neg):
        v = evaluate(e.operand, env)
        if not _num(v):
            raise _Bad(f"cannot negate {type_name(v)}")
        return -v  # type: ignore[operator]
    if isinstance(e, ast.BinOp):
        a, b = evaluate(e.left, env), evaluate(e.right, env)
        if e.op == "++":
            if isinstance(a, str) and isinstance(b, str):
                return a + b
            raise _Bad(f"cannot concatenate {type_name(a)} and {type_name(b)} with ++")
        if not (_num(a) and _num(b)):
            raise _Bad(f"cannot apply {e.op} to {type_name(a)} and {type_name(b)}")
        return _finite(_arith(e.op, a, b))
    if isinstance(e, ast.Call):
        args = [evaluate(a, env) for a in e.args]
        try:
            return _builtin(e.func, args)
        except OverflowError:
            raise _Bad(f"{e.func}(): int too large to convert to float") from None
    if isinstance(e, ast.ToolCall):
        raise _Tool(e.tool)
    raise _Bad(f"cannot evaluate {type(e).__name__} here")


def compare(op: str, a: Value, b: Value) -> bool:
    if not ((_num(a) and _num(b)) or (isinstance(a, str) and isinstance(b, str))
            or (isinstance(a, bool) and isinstance(b, bool))):
        raise _Bad(f"cannot compare {type_name(a)} and {type_name(b)}")
    if op == "=":
        return a == b
    if op == "!=":
        return a != b
    if op == "<":
        return a < b  # type: ignore[operator]
    if op == "<=":
        return a <= b  # type: ignore[operator]
    if op == ">":
        return a > b  # type: ignore[operator]
    if op == ">=":
        return a >= b  # type: ignore[operator]
    raise _Bad(f"unknown comparison {op}")


def _norm(v: Any, typ: str | None) -> Any:
    """A value as stored in a column of type ``typ`` (an int in a float column is a float)."""
    if typ == "float" and type(v) is int:
        try:
            return float(v)
        except OverflowError:  # no float column holds it: it stays an int, equal to no stored value
            return v
    return v


def _same(a: Any, b: Any) -> bool:
    """Equal values of the same type (1, 1.0 and true are three different values)."""
    return type(a) is type(b) and a == b


# ------------------------------------------------------------------ printing (source text, as proofs show it)

_PREC = {"++": 1, "+": 2, "-": 2, "*": 3, "/": 3, "%": 3}


from ..syntax.printer import show_expr, show_literal  # noqa: E402  (pure syntax, no evaluation)


def pattern_text(relation: str, pattern: Sequence[Any]) -> str:
    return f"{relation}({', '.join('_' if v is None else format_value(v) for v in pattern)})"


# ------------------------------------------------------------------ variables


def _expr_vars(e: ast.Expr) -> set[str]:
    return set(ast.expr_vars(e))


def _aggregate_vars(agg: ast.Aggregate) -> set[str]:
    out = {agg.value.name} if agg.value is not None else set()
    for lit in agg.body:
        out.update(ast.literal_vars(lit))
    return out


def _own_vars(lit: ast.Literal) -> set[str]:
    """Variables a body literal shares with the rest of the rule (an aggregate: its other side)."""
    side = ast.aggregate_side(lit)
    if side is not None:
        return _expr_vars(side[1])
    return set(ast.literal_vars(lit))


def _rule_vars(agent: Any) -> set[str]:
    """The variables a proof's bindings must give values to (aggregate-local ones excluded)."""
    out: set[str] = set()
    for head in agent.heads:
        out.update(ast.literal_vars(head))
    for lit in agent.body:
        out |= _own_vars(lit)
    return out


def _group(agent: Any, agg: ast.Aggregate) -> list[str]:
    """The aggregate's group: its variables also used outside it (heads, other literals, its other side)."""
    outside: set[str] = set()
    for head in agent.heads:
        outside.update(ast.literal_vars(head))
    for lit in agent.body:
        outside |= _own_vars(lit)  # the aggregate's own literal contributes its other side only
    return sorted(_aggregate_vars(agg) & outside)


# ------------------------------------------------------------------ facts


class _Facts:
    """The result's final facts per relation, with indexes built on demand."""

    def __init__(self, facts: Mapping[str, set[tuple]], types: Mapping[str, tuple[str, ...]]):
        self.facts = facts
        self.types = types
        self._indexes: dict[tuple[str, tuple[int, ...]], dict[tuple, list[tuple]]] = {}

    def has(self, relation: str, fact: tuple) -> bool:
        table = self.facts.get(relation)
        if table is None or fact not in table:
            return False
        # set membership treats 1, 1.0 and True alike: confirm the types
        return any(_same_tuple(f, fact) for f in self.lookup(relation, dict(enumerate(fact))))

    def lookup(self, relation: str, known: Mapping[int, Any]) -> list[tuple]:
        """Facts of a relation whose columns ``known`` hold these values (compared by type too)."""
        table = self.facts.get(relation, set())
        if not known:
            return list(table)
        cols = tuple(sorted(known))
        index = self._indexes.get((relation, cols))
        if index is None:
            index = {}
            for f in table:
                index.setdefault(tuple(f[c] for c in cols), []).append(f)
            self._indexes[(relation, cols)] = index
        try:
            candidates = index.get(tuple(known[c] for c in cols), [])
        except TypeError:
            return []
        return [f for f in candidates if all(_same(f[c], known[c]) for c in cols)]


def _same_tuple(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(map(_same, a, b))


# ------------------------------------------------------------------ the checker


class Checker:
    """Checks the proofs of one result against a compiled program and the job's input facts."""

    def __init__(self, program: Any, inputs: Mapping[str, set[tuple]]):
        self.program = program
        self.agents = {a.name: a for a in program.agents}
        self.types = {name: tuple(c.type for c in rel.columns) for name, rel in program.relations.items()}
        self.inputs = inputs
        self._agg_memo: dict[tuple[str, int, tuple], Any] = {}
        self.facts = _Facts({}, self.types)
        self.cycle_of: dict[tuple[str, tuple], Any] = {}
        self.proven: set[tuple[str, tuple]] = set()
        self.premise_keys: list[tuple[str, tuple] | None] = []  # the current proof's premises that hold
        self.premises_of: dict[tuple[str, tuple], list[tuple[str, tuple]]] = {}  # a fact's recorded premises
        self.tracks_confidence = False

    # ---------------------------------------------------------------- entry point
    def check(self, result: Mapping[str, Any]) -> Report:
        report = Report()
        final: dict[str, set[tuple]] = {}
        undeclared: list[tuple[str, tuple]] = []
        repeated: list[tuple[str, tuple]] = []
        for rel, rows in result["facts"].items():
            typ = self.types.get(rel)
            table = final.setdefault(rel, set())
            for row in rows:
                fact = tuple(_norm(v, typ[i] if typ and i < len(typ) else None) for i, v in enumerate(row))
                if fact in table:
                    repeated.append((rel, fact))
                table.add(fact)
                if typ is None:
                    undeclared.append((rel, fact))
        self.facts = _Facts(final, self.types)
        report.facts = sum(len(rows) for rows in result["facts"].values())
        cycles = result.get("cycles")
        proofs: list[tuple[str, int, Mapping[str, Any]]] = []
        alternative_of: dict[int, int] = {}  # id of an alternative proof -> its position among the fact's alternatives
        for rel, items in result["proofs"].items():
            for i, p in enumerate(items):
                proofs.append((rel, i, p))
                # `--proofs all`: every other derivation of the fact is a proof too, checked the same way
                for k, alt in enumerate(p.get("alternatives", ())):
                    proofs.append((rel, i, alt))
                    alternative_of[id(alt)] = k
        # the cycle of every derived fact with a proof (the first proof listed for it)
        self.cycle_of = {}
        self.proven = set()
        self.premises_of = {}
        for rel, _i, p in proofs:
            key = (p.get("relation", rel), self._fact(p.get("relation", rel), p.get("fact", [])))
            self.proven.add(key)
            self.cycle_of.setdefault(key, p.get("cycle"))
            if key not in self.premises_of:
                self.premises_of[key] = [(r, self._fact(r, f)) for r, f in _premise_pairs(p.get("premises"))]
        # docs/semantics.md: a job tracks confidence when an input fact has one below 1, an agent a
        # weight below 1, or min_confidence is set; then a fact's proof may be replaced by a later one
        budget = result.get("budget")
        self.tracks_confidence = (bool(result.get("confidence"))
                                  or any(getattr(a, "confidence", 1.0) < 1.0 for a in self.program.agents)
                                  or (isinstance(budget, Mapping) and budget.get("min_confidence") is not None))
        for rel, i, p in proofs:
            report.proofs += 1
            failure = self._check_proof(rel, i, p, cycles, report)
            if failure is not None:
                failure.alternative = alternative_of.get(id(p))
                report.failures.append(failure)
        for rel, fact in undeclared:
            report.failures.append(Failure(rel, fact, None, None, [(
                "fact", f"relation {rel!r} is not declared by the rules")]))
        for rel in sorted(final):
            if rel not in self.types:
                continue
            for fact in sorted(final[rel], key=_sort_key):
                if (rel, fact) in self.proven or fact in self.inputs.get(rel, ()):
                    continue
                report.failures.append(Failure(rel, fact, None, None, [(
                    "proof", "the fact is in the result but has no proof, and it is not an input fact "
                             "(neither in the rule files nor in the job's facts files)")]))
        for rel, fact in repeated:  # a relation is a set: a fact listed twice was not written by run
            report.failures.append(Failure(rel, fact, None, None, [(
                "fact", "the fact is listed more than once in the result's facts")]))
        counts = result.get("counts")
        if isinstance(counts, Mapping):
            for rel in sorted(set(counts) | set(final)):
                listed, claimed = len(final.get(rel, ())), counts.get(rel, 0)
                if rel in result["facts"] and claimed != listed:
                    report.failures.append(Failure(rel, (), None, None, [(
                        "count", f"'counts' says {claimed!r} fact(s), the result lists {listed}")],
                        whole_relation=True))
        return report

    def _fact(self, relation: str, values: Sequence[Any]) -> tuple:
        typ = self.types.get(relation, ())
        return tuple(_norm(v, typ[i] if i < len(typ) else None) for i, v in enumerate(values))

    # ---------------------------------------------------------------- one proof
    def _check_proof(self, listed_under: str, index: int, p: Mapping[str, Any], cycles: Any,
                     report: Report) -> Failure | None:
        relation = p.get("relation", listed_under)
        fact = self._fact(relation, p.get("fact", []))
        agent_name = p.get("agent")
        problems: list[tuple[str, str]] = []
        failure = Failure(relation, fact, agent_name, p.get("rule"), problems, index)
        text = format_fact(relation, fact)
        if relation != listed_under:
            problems.append(("relation", f"the proof of a {relation} fact is listed under {listed_under!r}"))
        if relation not in self.types:
            problems.append(("relation", f"relation {relation!r} is not declared by the rules"))
            return failure
        if p.get("input"):
            if fact not in self.inputs.get(relation, ()):
                problems.append(("input", f"{text} is marked as an input fact, but no rule file or facts file gives it"))
            return failure if problems else None
        if not self.facts.has(relation, fact):
            problems.append(("fact", f"{text} is not in the result's facts"))
        agent = self.agents.get(agent_name) if isinstance(agent_name, str) else None
        if agent is None:
            known = ", ".join(sorted(self.agents)) or "none"
            problems.append(("agent", f"no agent named {agent_name!r} in the rules (agents: {known})"))
            return failure
        failure.rule = failure.rule or f"{agent.span.file}:{agent.span.line}"
        rule = p.get("rule")
        if isinstance(rule, str) and rule:
            file, _, line = rule.rpartition(":")
            if line != str(agent.span.line) or os.path.basename(file) != os.path.basename(agent.span.file):
                problems.append(("agent", f"the proof places agent {agent.name} at {rule}, the rules declare it at "
                                          f"{agent.span.file}:{agent.span.line}"))
        if any(isinstance(lit, ast.Fail) for lit in agent.body):
            problems.append(("agent", f"agent {agent.name} ends in `fail`: a full match of its body fails the agent, "
                                      "so it derives nothing"))
            return failure

        env: dict[str, Value] = dict(p.get("bindings") or {})
        for name in _rule_vars(agent):
            var_type = agent.var_types.get(name)
            if name in env:
                env[name] = _norm(env[name], var_type)
        needed = _rule_vars(agent)
        self._tool_values(agent, relation, fact, p, env, report)
        missing = sorted(needed - set(env))
        extra = sorted(set(env) - needed)
        if missing:
            problems.append(("bindings", f"no value for variable{'s' if len(missing) > 1 else ''} {', '.join(missing)}"))
        if extra:
            problems.append(("bindings", f"{', '.join(extra)} {'is not a variable' if len(extra) == 1 else 'are not variables'} "
                                         f"of agent {agent.name}"))
        if missing:
            return failure

        self._check_head(agent, relation, fact, env, problems, report)
        self._check_premises(agent, p, env, problems, report, text)
        self._check_cycle(p, cycles, problems, (relation, fact), report)
        self._check_negated(agent, p, env, problems)
        self._check_literals(agent, p, env, problems, report)
        return failure if problems else None

    def _tool_values(self, agent: Any, relation: str, fact: tuple, p: Mapping[str, Any], env: dict[str, Any],
                     report: Report) -> None:
        """Variables bound by ``v = @tool(...)`` that the proof does not bind: read them off the fact or a
        premise where they stand as a plain argument, else leave them unknown (checks using them are skipped)."""
        tool_vars = []
        for lit in agent.body:
            if isinstance(lit, ast.Comparison) and lit.op == "=":
                for var, other in ((lit.left, lit.right), (lit.right, lit.left)):
                    if isinstance(var, ast.Var) and isinstance(other, ast.ToolCall):
                        if var.name in env:  # the engine records tool values in the proof
                            report.note(f"agent {agent.name}: {var.name} = @{other.tool}(...) is a tool result, "
                                        "not re-evaluated (taken from the proof's bindings)")
                        else:
                            tool_vars.append((var.name, other.tool))
        if not tool_vars:
            return
        sources: list[tuple[ast.Atom, Sequence[Any]]] = [(h, fact) for h in agent.heads if h.relation == relation]
        atoms = [lit for lit in agent.body if isinstance(lit, ast.Atom)]
        for atom, premise in zip(atoms, p.get("premises") or []):
            sources.append((atom, premise[1]))
        for name, tool in tool_vars:
            value: Any = _ANY
            for atom, values in sources:
                for arg, v in zip(atom.args, values):
                    if isinstance(arg, ast.Var) and arg.name == name:
                        value = v
                        break
                if value is not _ANY:
                    break
            env[name] = value
            how = "read off the fact or a premise" if value is not _ANY else "unknown: checks that use it are skipped"
            report.note(f"agent {agent.name}: {name} = @{tool}(...) is a tool result, not re-evaluated ({how})")

    def _check_head(self, agent: Any, relation: str, fact: tuple, env: Mapping[str, Value],
                    problems: list[tuple[str, str]], report: Report) -> None:
        heads = [h for h in agent.heads if h.relation == relation]
        if not heads:
            problems.append(("head", f"agent {agent.name} emits no {relation} fact (it emits "
                                     f"{', '.join(sorted({h.relation for h in agent.heads}))})"))
            return
        given = []
        for head in heads:
            values = self._instantiate(head, env, report, agent)
            if isinstance(values, str):
                given.append(f"{show_literal(head)}: {values}")
                continue
            if len(values) == len(fact) and all(v is _ANY or _same(v, f) for v, f in zip(values, fact)):
                return
            given.append(f"emit {show_literal(head)} gives {pattern_text(relation, [None if v is _ANY else v for v in values])}")
        problems.append(("head", f"{'; '.join(given)}, not {format_fact(relation, fact)}"))

    def _instantiate(self, atom: ast.Atom, env: Mapping[str, Value], report: Report, agent: Any) -> list[Any] | str:
        """An atom's values under the bindings (None for `_`, _ANY for a tool's value), or why it fails."""
        types = self.types.get(atom.relation, ())
        out: list[Any] = []
        for i, arg in enumerate(atom.args):
            if isinstance(arg, ast.Wildcard):
                out.append(None)
                continue
            try:
                out.append(_norm(evaluate(arg, env), types[i] if i < len(types) else None))
            except _Tool as tool:
                report.note(f"agent {agent.name}: the result of tool @{tool} in {show_literal(atom)} is not re-evaluated")
                out.append(_ANY)
            except _Bad as err:
                return f"{show_expr(arg, env)} does not evaluate: {err}"
        return out

    def _check_premises(self, agent: Any, p: Mapping[str, Any], env: Mapping[str, Value],
                        problems: list[tuple[str, str]], report: Report, text: str) -> None:
        atoms = [lit for lit in agent.body if isinstance(lit, ast.Atom)]
        premises = list(p.get("premises") or [])
        if len(premises) != len(atoms):
            problems.append(("premise", f"{len(premises)} premise(s) listed for the {len(atoms)} positive atom(s) of "
                                        f"agent {agent.name}"))
        self.premise_keys = []
        for atom, (prel, pvalues) in zip(atoms, premises):
            pfact = self._fact(prel, pvalues)
            shown = format_fact(prel, pfact)
            key = (prel, pfact)
            self.premise_keys.append(None)
            if prel not in self.types:
                problems.append(("premise", f"{shown}: relation {prel!r} is not declared by the rules"))
                continue
            present = self.facts.has(prel, pfact)
            if not present:
                key = self.program.relations[prel].key
                if key is not None and prel == atom.relation:
                    kept = self._preferred_over(prel, key, pfact)
                    if kept is not None:
                        report.note(f"premise {shown} of {text} is not in the final facts: {prel} is keyed and the fact "
                                    "was superseded; its own derivation is not in the result and is not checked")
                    else:
                        # a superseded fact leaves a strictly preferred fact of its key for good
                        problems.append(("premise", f"{shown} is not in the result's facts, and it was not superseded: "
                                                    f"no fact of {prel} with its key is preferred to it"))
                else:
                    problems.append(("premise", f"{shown} is not in the result's facts"))
            if prel != atom.relation:
                problems.append(("premise", f"{shown} is listed for body atom {show_literal(atom)}"))
                continue
            values = self._instantiate(atom, env, report, agent)
            if isinstance(values, str):
                problems.append(("premise", f"{show_literal(atom)}: {values}"))
                continue
            if len(values) != len(pfact) or not all(v is None or v is _ANY or _same(v, f) for v, f in zip(values, pfact)):
                problems.append(("premise", f"body atom {show_literal(atom)} with the bindings is "
                                            f"{pattern_text(prel, [None if v is _ANY else v for v in values])}, "
                                            f"the premise listed is {shown}"))
                continue
            if present:
                self.premise_keys[-1] = key

    def _preferred_over(self, relation: str, key: Any, fact: tuple) -> tuple | None:
        """A fact of the result with the same key as ``fact`` whose preferred column is strictly better
        (smaller for ``prefer min``, larger for ``max``): what a superseded fact leaves behind, since
        a newcomer supersedes only a fact it is strictly preferred to (language.md, dominance keys)."""
        arity = len(self.types.get(relation, ()))
        if len(fact) != arity:
            return None
        for kept in sorted(self.facts.lookup(relation, {c: fact[c] for c in key.columns}), key=_sort_key):
            try:
                if compare("<" if key.prefer == "min" else ">", kept[key.column], fact[key.column]):
                    return kept
            except _Bad:
                continue
        return None

    def _check_cycle(self, p: Mapping[str, Any], cycles: Any, problems: list[tuple[str, str]],
                     proved: tuple[str, tuple], report: Report) -> None:
        cycle = p.get("cycle")
        if type(cycle) is not int or cycle < 1:
            problems.append(("cycle", f"a derived fact's cycle must be a whole number >= 1, got {dumps_json(cycle)}"))
            return
        if type(cycles) is int and cycle > cycles:
            problems.append(("cycle", f"derived in cycle {cycle}, but the run has {cycles} cycle(s)"))
        for key in self.premise_keys:
            if key is None:
                continue
            rel, pfact = key
            fact_is_input = pfact in self.inputs.get(rel, ())
            if fact_is_input:
                before: Any = 0
            elif key in self.proven:
                before = self.cycle_of.get(key)
            else:
                continue  # no proof and not an input: reported for the fact itself
            if type(before) is not int:
                continue  # that proof's own cycle is reported where it is checked
            if before >= cycle and not fact_is_input and self.tracks_confidence and not self._leads_to(key, proved):
                # The premise was derived again later with a higher confidence, and that derivation
                # replaced its proof; this fact used the earlier one. Still well-founded: its recorded
                # proofs never come back to this fact.
                report.note(f"premise {format_fact(rel, pfact)} of {format_fact(*proved)} (cycle {cycle}) has a proof "
                            f"from cycle {before}: a more confident derivation that replaced the one it was derived from")
                continue
            if before >= cycle:
                origin = "an input fact (cycle 0)" if fact_is_input else f"derived in cycle {before}"
                problems.append(("cycle", f"premise {format_fact(rel, pfact)} is {origin}, not before cycle {cycle} of "
                                          "the fact it proves: the proofs are not well-founded"))

    def _leads_to(self, start: tuple[str, tuple], target: tuple[str, tuple]) -> bool:
        """True when following the recorded proofs from ``start`` reaches ``target`` (a circle)."""
        seen = {start}
        todo = [start]
        while todo:
            key = todo.pop()
            if key == target:
                return True
            for premise in self.premises_of.get(key, ()):
                if premise not in seen:
                    seen.add(premise)
                    todo.append(premise)
        return False

    def _check_negated(self, agent: Any, p: Mapping[str, Any], env: Mapping[str, Value],
                       problems: list[tuple[str, str]]) -> None:
        negations = [lit for lit in agent.body if isinstance(lit, ast.Negation)]
        listed = list(p.get("negated") or [])
        if len(listed) != len(negations):
            problems.append(("negated", f"{len(listed)} negated atom(s) listed for the {len(negations)} of agent {agent.name}"))
        for k, lit in enumerate(negations):
            atom = lit.atom
            types = self.types.get(atom.relation, ())
            pattern: list[Any] = []
            try:
                for i, arg in enumerate(atom.args):
                    pattern.append(None if isinstance(arg, ast.Wildcard)
                                   else _norm(evaluate(arg, env), types[i] if i < len(types) else None))
            except (_Bad, _Tool) as err:
                problems.append(("negated", f"{show_literal(lit, env)} does not evaluate: {err}"))
                continue
            shown = pattern_text(atom.relation, pattern)
            if k < len(listed):
                lrel, lvalues = listed[k]
                lpattern = [None if v is None else _norm(v, types[i] if i < len(types) else None)
                            for i, v in enumerate(lvalues)]
                if lrel != atom.relation or len(lpattern) != len(pattern) or not all(
                        (a is None and b is None) or (a is not None and b is not None and _same(a, b))
                        for a, b in zip(lpattern, pattern)):
                    problems.append(("negated", f"not {shown} is the body's negated atom under the bindings, "
                                                f"the proof lists not {pattern_text(lrel, lpattern)}"))
            hits = self.facts.lookup(atom.relation, {i: v for i, v in enumerate(pattern) if v is not None})
            if hits:
                hit = sorted(hits, key=_sort_key)[0]
                problems.append(("negated", f"not {shown} must have no match, but {format_fact(atom.relation, hit)} "
                                            "holds in the result"))

    def _check_literals(self, agent: Any, p: Mapping[str, Any], env: Mapping[str, Value],
                        problems: list[tuple[str, str]], report: Report) -> None:
        recorded = list(p.get("aggregates") or [])
        used = [False] * len(recorded)
        for index, lit in enumerate(agent.body):
            side = ast.aggregate_side(lit)
            if side is not None:
                assert isinstance(lit, ast.Comparison)
                self._check_aggregate(agent, index, lit, side[0], side[1], env, recorded, used, problems, report)
            elif isinstance(lit, ast.Comparison):
                if isinstance(lit.left, ast.ToolCall) or isinstance(lit.right, ast.ToolCall):
                    continue  # v = @tool(...): noted where v got its value
                try:
                    holds = compare(lit.op, evaluate(lit.left, env), evaluate(lit.right, env))
                except _Tool as tool:
                    report.note(f"agent {agent.name}: {show_literal(lit)} uses tool @{tool}: not re-evaluated")
                    continue
                except _Bad as err:
                    problems.append(("comparison", f"{show_literal(lit)} does not evaluate with "
                                                   f"{show_literal(lit, env)}: {err}"))
                    continue
                if not holds:
                    problems.append(("comparison", f"{show_literal(lit)} is false: {show_literal(lit, env)}"))
            elif isinstance(lit, ast.Condition):
                try:
                    value = evaluate(lit.call, env)
                except _Tool as tool:
                    report.note(f"agent {agent.name}: {show_literal(lit)} uses tool @{tool}: not re-evaluated")
                    continue
                except _Bad as err:
                    problems.append(("condition", f"{show_literal(lit, env)} does not evaluate: {err}"))
                    continue
                if not isinstance(value, bool):
                    problems.append(("condition", f"{show_literal(lit, env)} is {type_name(value)}, not a bool"))
                elif value == lit.negated:
                    problems.append(("condition", f"{show_literal(lit)} is false: {show_literal(lit, env)}"))
        for k, entry in enumerate(recorded):
            if not used[k]:
                problems.append(("aggregate", f"the proof lists aggregate {entry[0]}, which agent {agent.name} does not have"))

    # ---------------------------------------------------------------- aggregates
    def _check_aggregate(self, agent: Any, index: int, lit: ast.Comparison, agg: ast.Aggregate, other: ast.Expr,
                         env: Mapping[str, Value], recorded: list[Any], used: list[bool],
                         problems: list[tuple[str, str]], report: Report) -> None:
        text = show_expr(agg)
        group = _group(agent, agg)
        key = (agent.name, index, tuple((g, type_name(env.get(g)), env.get(g)) for g in group))
        try:
            if key not in self._agg_memo:
                self._agg_memo[key] = self._aggregate(agg, {g: env[g] for g in group if g in env})
            value = self._agg_memo[key]
        except _Bad as err:
            problems.append(("aggregate", f"{text} does not evaluate: {err}"))
            return
        except _Tool as tool:
            report.note(f"agent {agent.name}: {text} uses tool @{tool}: not re-evaluated")
            return
        where = f" for {', '.join(f'{g} = {format_value(env[g])}' for g in group if g in env)}" if group else ""
        if value is _EMPTY:
            problems.append(("aggregate", f"{text} has no value{where} (no match: {agg.op} of nothing), "
                                          "so the rule cannot fire"))
        else:
            try:
                bound = evaluate(other, env)
            except (_Bad, _Tool) as err:
                problems.append(("aggregate", f"{show_expr(other)} does not evaluate: {err}"))
                bound = None
            if bound is not None and not _agg_equal(value, bound):
                problems.append(("aggregate", f"{show_expr(other)} = {text} is false: the aggregate recomputes to "
                                              f"{format_value(value)}{where} over the result's facts, the bindings say "
                                              f"{format_value(bound)}"))
        for k, entry in enumerate(recorded):
            if not used[k] and isinstance(entry, (list, tuple)) and len(entry) == 2 and entry[0] == text:
                used[k] = True
                if value is not _EMPTY and not _agg_equal(value, entry[1]):
                    problems.append(("aggregate", f"the proof records {text} = {format_value(entry[1])}, it recomputes "
                                                  f"to {format_value(value)}{where}"))
                break
        else:
            if recorded:
                problems.append(("aggregate", f"the proof does not record the value of {text}"))

    def _aggregate(self, agg: ast.Aggregate, env: dict[str, Value]) -> Any:
        """count / sum / min / max over the distinct matches of the body (one fact per atom) in the final facts."""
        if agg.op == "count":
            return sum(1 for _ in self._solve(list(agg.body), env))
        assert agg.value is not None
        values = [m[agg.value.name] for m in self._solve(list(agg.body), env)]
        if agg.op == "sum":
            if not all(_num(v) for v in values):
                raise _Bad("sum needs numbers")
            if any(isinstance(v, float) for v in values):
                try:
                    total = math.fsum(values)
                except OverflowError:
                    raise _Bad("arithmetic overflow in a float sum") from None
                return _finite(total)
            return sum(values)  # type: ignore[arg-type]
        if not values:
            return _EMPTY
        best = values[0]
        for v in values[1:]:
            if compare("<" if agg.op == "min" else ">", v, best):
                best = v
        return best

    def _solve(self, lits: list[ast.Literal], env: dict[str, Value]) -> Iterator[dict[str, Value]]:
        """Every match of a conjunction, one per combination of facts of its positive atoms."""
        if not lits:
            yield env
            return
        for i, lit in enumerate(lits):
            if isinstance(lit, ast.Atom):
                continue
            rest = lits[:i] + lits[i + 1:]
            if isinstance(lit, ast.Negation):
                if not set(ast.literal_vars(lit)) <= set(env):
                    continue
                types = self.types.get(lit.atom.relation, ())
                known = {c: _norm(evaluate(a, env), types[c] if c < len(types) else None)
                         for c, a in enumerate(lit.atom.args) if not isinstance(a, ast.Wildcard)}
                if not self.facts.lookup(lit.atom.relation, known):
                    yield from self._solve(rest, env)
                return
            if isinstance(lit, ast.Condition):
                if not _expr_vars(lit.call) <= set(env):
                    continue
                if evaluate(lit.call, env) != lit.negated:
                    yield from self._solve(rest, env)
                return
            if isinstance(lit, ast.Comparison):
                left, right = _expr_vars(lit.left), _expr_vars(lit.right)
                if left <= set(env) and right <= set(env):
                    if compare(lit.op, evaluate(lit.left, env), evaluate(lit.right, env)):
                        yield from self._solve(rest, env)
                    return
                if lit.op == "=":
                    for var, expr, vs in ((lit.left, lit.right, right), (lit.right, lit.left, left)):
                        if isinstance(var, ast.Var) and var.name not in env and vs <= set(env):
                            yield from self._solve(rest, {**env, var.name: evaluate(expr, env)})
                            return
                continue
            if isinstance(lit, ast.Fail):
                raise _Bad("`fail` inside an aggregate")
        # no other literal is ready: scan the positive atom with the most known columns
        best: tuple[int, int] | None = None
        for i, lit in enumerate(lits):
            if not isinstance(lit, ast.Atom):
                continue
            own = set(env) | {a.name for a in lit.args if isinstance(a, ast.Var)}
            if not all(_expr_vars(a) <= own for a in lit.args if not isinstance(a, (ast.Var, ast.Wildcard, ast.Const))):
                continue
            score = sum(1 for a in lit.args if not isinstance(a, ast.Wildcard) and _expr_vars(a) <= set(env))
            if best is None or score > best[0]:
                best = (score, i)
        if best is None:
            raise _Bad(f"cannot evaluate {', '.join(show_literal(lit) for lit in lits)}: a variable is never bound")
        atom = lits[best[1]]
        assert isinstance(atom, ast.Atom)
        rest = lits[:best[1]] + lits[best[1] + 1:]
        types = self.types.get(atom.relation, ())
        known = {}
        for c, a in enumerate(atom.args):
            if not isinstance(a, ast.Wildcard) and _expr_vars(a) <= set(env):
                known[c] = _norm(evaluate(a, env), types[c] if c < len(types) else None)
        for f in sorted(self.facts.lookup(atom.relation, known), key=_sort_key):
            new = dict(env)
            ok = True
            for c, a in enumerate(atom.args):
                if isinstance(a, ast.Var) and a.name not in new:
                    new[a.name] = f[c]
                elif isinstance(a, ast.Var) and c not in known and not _same(_norm(new[a.name], types[c]), f[c]):
                    ok = False  # a variable repeated inside the atom
                    break
            if ok:
                for c, a in enumerate(atom.args):
                    if c not in known and not isinstance(a, (ast.Var, ast.Wildcard)):
                        if not _same(_norm(evaluate(a, new), types[c]), f[c]):
                            ok = False
                            break
            if ok:
                yield from self._solve(rest, new)


class _Marker:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


_EMPTY = _Marker("<no value>")  # min / max of an empty group
_ANY = _Marker("<tool value>")  # an argument computed by a tool: not re-evaluated


def _agg_equal(a: Any, b: Any) -> bool:
    if _num(a) and _num(b):
        if isinstance(a, float) or isinstance(b, float):
            return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)  # float sums depend on the order of addition
        return bool(a == b)
    return _same(a, b)


def _premise_pairs(premises: Any) -> list[tuple[str, Sequence[Any]]]:
    """The well-formed ``[relation, values]`` entries of a proof's premises (the others are
    reported where the proof itself is checked)."""
    if not isinstance(premises, list):
        return []
    return [(item[0], item[1]) for item in premises
            if isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)
            and isinstance(item[1], (list, tuple))]


def _sort_key(fact: tuple) -> tuple:
    return tuple((type_name(v), v) for v in fact)


# ------------------------------------------------------------------ reading a result file


def _located(code: str, message: str, path: str, text: str | None, where: tuple = (), *notes: str) -> ConvergeError:
    """A diagnostic at the position of the JSON value at ``where`` (a path of keys and indexes)."""
    line, col = 1, 1
    if text is not None and where:
        try:
            from ..io.jsonpos import VALUE, LineIndex, scan

            found = scan(text, {(tuple(where), VALUE)}, len(where))
            span = found.get((tuple(where), VALUE))
            if span is not None:
                line, col = LineIndex(text).position(span[0])
        except Exception:  # a position is a courtesy: never fail on it
            pass
    diag = Diagnostic(code, message, Span(path, line, col), "error", tuple(notes))
    return ConvergeError(quote_text([diag], path, text) if text is not None else [diag])


_SCALAR = (str, int, float, bool)


def _shape(data: Any, path: str, text: str) -> None:
    """Raise E501 unless ``data`` has the shape of a result written with ``--proofs``."""
    def bad(message: str, where: tuple = (), *notes: str) -> ConvergeError:
        return _located("E501", message, path, text, where, *notes)

    if not isinstance(data, dict):
        raise bad("not a converge result: the document must be a JSON object")
    for key in ("facts", "proofs", "job"):
        if key not in data:
            raise bad(f"not a result written with --proofs: it has no {key!r}", (),
                      "write it with: converge run RULES... --facts F --format json --proofs > result.json")
    facts, proofs, job = data["facts"], data["proofs"], data["job"]
    if not isinstance(facts, dict):
        raise bad("'facts' must be an object of relation: [[values]...]", ("facts",))
    for rel, rows in facts.items():
        if not isinstance(rows, list):
            raise bad(f"facts of {rel!r} must be a list", ("facts", rel))
        for i, row in enumerate(rows):
            if not isinstance(row, list) or not all(isinstance(v, _SCALAR) for v in row):
                raise bad(f"fact {i} of {rel!r} must be a list of strings, numbers and booleans", ("facts", rel, i))
    counts = data.get("counts")
    if isinstance(counts, dict):
        missing = sorted(r for r, n in counts.items() if r not in facts and n)
        if missing:
            raise bad(f"the result lists the facts of only some relations (not {', '.join(missing)}): "
                      "verify needs them all", ("facts",), "write the result without --relation")
    if not isinstance(job, dict) or not isinstance(job.get("rules"), list) or not job["rules"] \
            or not all(isinstance(p, str) for p in job["rules"]) \
            or not isinstance(job.get("facts", []), list) or not all(isinstance(p, str) for p in job.get("facts", [])):
        raise bad("'job' must be {\"rules\": [paths...], \"facts\": [paths...]} with at least one rule file", ("job",))
    stdin = job.get("stdin", {})
    if not isinstance(stdin, dict) or not all(isinstance(f, str) for f in stdin.values()):
        raise bad("'job.stdin' must be an object of facts name: format", ("job", "stdin"))
    if not isinstance(proofs, dict):
        raise bad("'proofs' must be an object of relation: [proofs...]", ("proofs",))
    for rel, items in proofs.items():
        if not isinstance(items, list):
            raise bad(f"proofs of {rel!r} must be a list", ("proofs", rel))
        alternatives = [(("proofs", rel, i, "alternatives", k), alt) for i, p in enumerate(items) if isinstance(p, dict)
                        for k, alt in enumerate(p.get("alternatives") if isinstance(p.get("alternatives"), list) else ())]
        for i, p in enumerate(items):
            if isinstance(p, dict) and "alternatives" in p and not isinstance(p["alternatives"], list):
                raise bad("a proof's 'alternatives' must be a list of proofs", ("proofs", rel, i, "alternatives"))
        for where, p in [(("proofs", rel, i), p) for i, p in enumerate(items)] + alternatives:
            if not isinstance(p, dict):
                raise bad("a proof must be an object", where)
            if not isinstance(p.get("relation", rel), str):
                raise bad("a proof's 'relation' must be a string", where + ("relation",))
            if not isinstance(p.get("fact"), list) or not all(isinstance(v, _SCALAR) for v in p["fact"]):
                raise bad("a proof's 'fact' must be a list of strings, numbers and booleans", where + ("fact",))
            if p.get("input"):
                continue
            bindings = p.get("bindings", {})
            if not isinstance(bindings, dict) or not all(isinstance(v, _SCALAR) for v in bindings.values()):
                raise bad("a proof's 'bindings' must be an object of variable: value", where + ("bindings",))
            for k, prem in enumerate(p.get("premises", [])):
                if not (isinstance(prem, list) and len(prem) == 2 and isinstance(prem[0], str) and isinstance(prem[1], list)
                        and all(isinstance(v, _SCALAR) for v in prem[1])):
                    raise bad("a premise must be [relation, [values...]]", where + ("premises", k))
            for k, neg in enumerate(p.get("negated", [])):
                if not (isinstance(neg, list) and len(neg) == 2 and isinstance(neg[0], str) and isinstance(neg[1], list)
                        and all(v is None or isinstance(v, _SCALAR) for v in neg[1])):
                    raise bad("a negated atom must be [relation, [values or null...]]", where + ("negated", k))
            for k, entry in enumerate(p.get("aggregates", [])):
                if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
                        and isinstance(entry[1], _SCALAR)):
                    raise bad("an aggregate must be [text, value]", where + ("aggregates", k))
            for key in ("premises", "negated", "conditions", "aggregates"):
                if key in p and not isinstance(p[key], list):
                    raise bad(f"a proof's {key!r} must be a list", where + (key,))


def read_result(path: str) -> tuple[dict[str, Any], str]:
    """The parsed result and its text; ConvergeError E500 (unreadable) or E501 (malformed)."""
    from ..regularfile import read_regular_text, reason as file_reason

    try:
        text = read_regular_text(path)
    except (OSError, UnicodeDecodeError) as err:
        reason = file_reason(err) if isinstance(err, OSError) else str(err)
        raise ConvergeError([Diagnostic("E500", f"cannot read result file: {reason}", Span(path, 0, 0))]) from None
    try:
        data = loads_json(text)
    except json.JSONDecodeError as err:
        raise ConvergeError(quote_text([Diagnostic("E501", f"malformed result file: {err.msg}", Span(path, err.lineno, err.colno))],
                                       path, text)) from None
    except RecursionError:
        raise ConvergeError(quote_text([Diagnostic("E501", "malformed result file: nested too deeply", Span(path, 1, 1))],
                                       path, text)) from None
    _shape(data, path, text)
    return data, text


def _find(entry: str, result_path: str) -> str | None:
    """A job path as written (relative to where `run` ran) or, failing that, relative to the result file;
    a database URL as it is."""
    from ..io.database import is_database_url

    if is_database_url(entry) or os.path.exists(entry):
        return entry
    if not os.path.isabs(entry):
        beside = os.path.join(os.path.dirname(os.path.abspath(result_path)), entry)
        if os.path.exists(beside):
            return os.path.relpath(beside)
    return None


def load_job(data: Mapping[str, Any], path: str, text: str | None = None,
             stdin_text: "str | Callable[[], str] | None" = None) -> tuple[Any, dict[str, set[tuple]]]:
    """Compile the job's rule files and load its input facts (the rule files' facts and the facts files).
    ``stdin_text``: the text of the facts the job read from standard input (``job.stdin``), or a
    function that reads it (called once, only when the job read such facts)."""
    from ..compile.pipeline import compile_sources
    from ..io import FactText, load_fact_paths

    from ..io.database import is_database_url
    from ..io.digests import content_sha256, source_sha256

    rules, facts = [], []
    hashes = data["job"].get("sha256")
    stdin = data["job"].get("stdin", {})
    for key, out in (("rules", rules), ("facts", facts)):
        for k, entry in enumerate(data["job"].get(key, [])):
            kind = "rule" if key == "rules" else "facts"
            if key == "facts" and is_database_url(entry):  # read again through SELECTs, never quoted as a file
                out.append(entry)
                continue
            if key == "facts" and entry in stdin:  # the text read from standard input, not a file of that name
                expected = hashes.get(entry) if isinstance(hashes, dict) else None
                if stdin_text is None:
                    raise _located("E500", f"the job read its facts ({entry}) from standard input: give the same "
                                   "text on standard input", path, text, ("job", key, k),
                                   f"converge verify {path} < FILE")
                if callable(stdin_text):
                    stdin_text = stdin_text()
                given = FactText(entry, stdin_text, stdin[entry])
                if source_sha256(given) != expected:
                    raise _located("E515", f"standard input is not the text the job read as {entry} (its SHA-256 "
                                   "differs from the one the result records): refusing to read it", path, text,
                                   ("job", "stdin", entry), f"converge verify {path} < FILE")
                out.append(given)
                continue
            found = _find(entry, path)
            if found is None:
                raise _located("E500", f"{kind} file of the job not found: {entry}",
                               path, text, ("job", key, k),
                               "paths are read relative to the working directory, then to the result file's directory")
            # a crafted result could name any file (an absolute path, ~/.ssh/...) to have its lines
            # quoted in diagnostics: only a file with the recorded SHA-256 is ever read
            expected = hashes.get(entry) if isinstance(hashes, dict) else None
            if not isinstance(expected, str):
                raise _located("E515", f"the result records no SHA-256 for the {kind} file {entry}: refusing to read it",
                               path, text, ("job", "sha256") if isinstance(hashes, dict) else ("job",),
                               "write the result again with this version: converge run ... --format json --proofs")
            if content_sha256(found) != expected:
                raise _located("E515", f"the {kind} file {entry} does not match the SHA-256 the result records: "
                               "refusing to read it", path, text, ("job", "sha256", entry),
                               "the file changed since the result was written (or the result names another file)")
            out.append(found)
    compilation = compile_sources([(p, None) for p in rules], use_cache=False)
    if not compilation.ok or compilation.program is None:
        raise ConvergeError([d for d in compilation.diagnostics if d.is_error])
    program = compilation.program
    inputs: dict[str, set[tuple]] = {}
    for f in program.facts:
        rel = program.relations.get(f.relation)
        types = tuple(c.type for c in rel.columns) if rel else ()
        inputs.setdefault(f.relation, set()).add(tuple(_norm(v, types[i] if i < len(types) else None)
                                                       for i, v in enumerate(f.values)))
    if facts:
        loaded = load_fact_paths(facts, program.schema())
        for rel_name, rows in loaded.facts.items():
            inputs.setdefault(rel_name, set()).update(tuple(r) for r in rows)
    return program, inputs


def verify(data: Mapping[str, Any], program: Any, inputs: Mapping[str, set[tuple]]) -> Report:
    """Check every proof of a parsed result against a compiled program and the input facts."""
    return Checker(program, inputs).check(data)


def verify_file(path: str, stdin_text: "str | Callable[[], str] | None" = None) -> Report:
    """Read a result written with ``run --format json --proofs`` and check it; raises ConvergeError (E5xx).
    ``stdin_text``: for a job that read facts from standard input, that text again (or a function
    that reads it, called only for such a job)."""
    data, text = read_result(path)
    program, inputs = load_job(data, path, text, stdin_text)
    return verify(data, program, inputs)



__all__ = ["Checker", "Failure", "Report", "compare", "evaluate", "load_job", "read_result", "verify", "verify_file"]
