"""A stronger program generator and its own naive reference evaluator (differential fuzzing).

``tests/strategies.py`` + ``tests/reference.py`` cover plain Datalog over ``int``/``str``.
This module covers what they leave out, with an IR of its own and an evaluator that
shares no code with ``converge_rules``:

* 3-8 relations (1-3 inputs), several relations per stratum (mutual recursion),
  stratified negation, negation and aggregation of relations defined by aggregates;
* ``count`` / ``sum`` / ``min`` / ``max`` aggregates with groups (empty groups: ``count``
  and ``sum`` give 0, ``min``/``max`` no result), over distinct combinations of facts;
* ``int``, ``float`` and ``str`` columns; arithmetic ``+ - * / %`` and ``++``, and the
  builtins of the catalogue (``len lower upper contains startswith endswith substr
  to_str to_int to_float abs min max``), including expressions that fail at run time
  (division by zero, ``to_int("x")``, ``substr`` with a negative start): at most one
  such *fallible* point per rule (aggregates, which cannot fail here, run before it), so that the
  documented policy ("guards first", then the failure) decides the outcome alone;
* keyed relations ``key(...) prefer min|max(v)`` whose non-preferred columns are all
  key columns (so the kept fact is the best one, whatever the order), read by other
  rules only through negation and aggregates (which wait until they are complete);
* confidences: input facts with a confidence, agents with a ``confidence`` weight;
* ``_``-only atoms, repeated variables (``e(x, x)``), constants in atoms;
* ``bool`` columns and values (``contains(...)`` as a value, ``to_str``/``to_int`` of a bool,
  ``min``/``max`` of bools), ints stored in ``float`` columns and widened by ``min``/``max``;
* a variable bound twice (``z = e1, z = e2``: a constant binds, else the first written, the
  other tests by value), ``fail "..."`` as a rule's fallible point, agents that emit into two
  relations of one stratum;
* ``budget { min_confidence = W }`` (facts below it dropped, the job ``bounded``) and
  ``acceptance`` checks evaluated on the fixed point (the job ``failed``).

Values stay finite: a rule with a body atom of its own stratum (possibly recursive)
only uses operations that cannot create ever new values (``abs``, ``min``, ``max``,
``% k``, ``/ k`` with ``k >= 2``, ``len``, ``lower``, ``upper``, ``substr``, ``to_str``,
``to_int``, comparisons) — no ``+``, ``*``, ``++`` or float arithmetic.

``reference(prog)`` returns the perfect model (relation -> {fact: confidence}) of the
program with every failing binding dropped, and the list of failing bindings;
``reference_info(prog)`` adds what decides the tier (facts dropped below min_confidence,
violated acceptance checks).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from hypothesis import strategies as st

# ---------------------------------------------------------------- the IR

INTS = (-2, -1, 0, 1, 2, 3, 4)
FLOATS = (0.0, 0.5, -1.5, 2.0, 3.25)
STRS = ("a", "b", "ab", "", "7", " 12 ", "-3", "x1", "é", "ß", "1_0")


@dataclass(frozen=True)
class V:
    name: str


@dataclass(frozen=True)
class C:
    value: Any


@dataclass(frozen=True)
class W:
    pass


@dataclass(frozen=True)
class B:
    """``left op right``: + - * / % ++"""
    op: str
    left: Any
    right: Any


@dataclass(frozen=True)
class F:
    """A builtin call."""
    fn: str
    args: tuple


@dataclass(frozen=True)
class Tool:
    """A host tool call ``@name(args)`` (only as the whole right side of a binding)."""
    name: str
    args: tuple


def _twice(x: int) -> int:
    return 2 * x


def _norm(s: str) -> str:
    return s.strip().lower()


def _parse(s: str) -> int:
    return int(s.strip())  # raises ValueError on "ab": a tool failure


# the tools the generated programs call (``--tools richgen:TOOLS``)
TOOLS = {"twice": _twice, "norm": _norm, "parse": _parse}
TOOL_TYPES = {"twice": ("int", "int"), "norm": ("str", "str"), "parse": ("str", "int")}


@dataclass(frozen=True)
class A:
    rel: str
    args: tuple


@dataclass(frozen=True)
class N:
    atom: A


@dataclass(frozen=True)
class T:
    """A comparison test ``left op right``."""
    op: str
    left: Any
    right: Any


@dataclass(frozen=True)
class P:
    """A boolean builtin literal, possibly negated."""
    fn: str
    args: tuple
    neg: bool = False


@dataclass(frozen=True)
class S:
    """A binding ``var = expr`` (``var`` not bound elsewhere)."""
    var: str
    expr: Any


@dataclass(frozen=True)
class S2:
    """``var = first, var = second`` (written in this order; ``var`` not bound elsewhere): one binds
    ``var`` (a constant before an expression over variables, otherwise the first written) and the
    other tests it by value (language.md, "Comparisons and binding")."""
    var: str
    first: Any
    second: Any
    strong: tuple = (False, False)  # whether first/second only use variables atoms or tools bind

    def _rank(self, k: int) -> int:
        e = (self.first, self.second)[k]
        return 0 if isinstance(e, C) else 1 if self.strong[k] else 2

    @property
    def binder(self) -> Any:
        return self.second if self._rank(1) < self._rank(0) else self.first

    @property
    def tester(self) -> Any:
        return self.first if self.binder is self.second else self.second


@dataclass(frozen=True)
class G:
    """``var = kind target { atoms }``; ``test``: ``var`` is bound elsewhere (an equality test)."""
    var: str
    kind: str
    target: Optional[str]
    atoms: tuple
    test: bool = False
    ttype: str = "int"  # the type of target


@dataclass(frozen=True)
class Fail:
    """``fail "message"``: never holds; reaching it fails the agent."""
    message: str


@dataclass(frozen=True)
class Rel:
    name: str
    types: tuple
    is_input: bool
    stratum: int
    key: Optional[tuple] = None  # (pref column, "min"|"max"): every other column is a key column,
    loose: Optional[int] = None  # but this one: facts may tie on the preferred value (the first is kept)


@dataclass(frozen=True)
class Rule:
    head: A
    body: tuple  # in dependency order (each literal's inputs bound by earlier ones)
    weight: Optional[float] = None  # rendered as an agent with `confidence W`
    fallible: frozenset = frozenset()  # indexes (in body) of the fallible literal and those that depend on it;
    # -1 stands for the head
    shown: tuple = ()  # the order in which the body is written
    extra: tuple = ()  # more emitted atoms (plain variables and constants): an agent `emit h, h2, ...`


@dataclass
class Program:
    rels: tuple
    rules: tuple
    facts: dict  # rel -> list of (tuple, confidence or None)
    goal: Optional[str] = None
    policy: Optional[str] = None  # job default on_failure
    min_conf: Optional[float] = None  # budget { min_confidence = W } in the rule file
    checks: tuple = ()  # acceptance bodies (atoms, negated atoms, comparisons with constants)

    def rel(self, name: str) -> Rel:
        return next(r for r in self.rels if r.name == name)

    @property
    def derived(self) -> list:
        return [r for r in self.rels if not r.is_input]

    def tools(self) -> dict:
        """The tools the program calls (RuleSet.run(tools=...))."""
        names = set()
        for rule in self.rules:
            for lit in rule.body:
                if isinstance(lit, S) and isinstance(lit.expr, Tool):
                    names.add(lit.expr.name)
        return {n: TOOLS[n] for n in sorted(names)}

    def facts_api(self) -> dict:
        """Input facts as RuleSet.run(facts=...) takes them (a trailing confidence when given)."""
        return {rel: [f if c is None else (*f, c) for f, c in fs] for rel, fs in self.facts.items()}

    def facts_json(self) -> str:
        return json.dumps({rel: [list(f) if c is None else [*f, c] for f, c in fs] for rel, fs in self.facts.items()},
                          ensure_ascii=False)


# ---------------------------------------------------------------- rendering


def rv(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, float):
        return repr(v)
    return str(v)


PREC = {"++": 1, "+": 2, "-": 2, "*": 3, "/": 3, "%": 3}


def rexpr(e: Any, parent: int = 0, right: bool = False) -> str:
    if isinstance(e, V):
        return e.name
    if isinstance(e, W):
        return "_"
    if isinstance(e, C):
        text = rv(e.value)
        return f"({text})" if text.startswith("-") and parent else text
    if isinstance(e, F):
        return f"{e.fn}({', '.join(rexpr(a) for a in e.args)})"
    if isinstance(e, Tool):
        return f"@{e.name}({', '.join(rexpr(a) for a in e.args)})"
    if isinstance(e, B):
        p = PREC[e.op]
        text = f"{rexpr(e.left, p)} {e.op} {rexpr(e.right, p, True)}"
        return f"({text})" if p < parent or (p == parent and right) else text
    raise TypeError(e)


def ratom(a: A) -> str:
    return f"{a.rel}({', '.join(rexpr(t) for t in a.args)})"


def rlit(l: Any) -> str:
    if isinstance(l, A):
        return ratom(l)
    if isinstance(l, N):
        return "not " + ratom(l.atom)
    if isinstance(l, T):
        return f"{rexpr(l.left)} {l.op} {rexpr(l.right)}"
    if isinstance(l, P):
        return ("not " if l.neg else "") + rexpr(F(l.fn, l.args))
    if isinstance(l, S):
        return f"{l.var} = {rexpr(l.expr)}"
    if isinstance(l, Fail):
        return f"fail {rv(l.message)}"
    if isinstance(l, S2):
        return f"{l.var} = {rexpr(l.first)}, {l.var} = {rexpr(l.second)}"
    if isinstance(l, G):
        inner = ", ".join(ratom(a) for a in l.atoms)
        kind = l.kind if l.kind == "count" else f"{l.kind} {l.target}"
        return f"{l.var} = {kind} {{ {inner} }}"
    raise TypeError(l)


def render(prog: Program) -> str:
    lines = ["# generated by tests/richgen.py"]
    for r in prog.rels:
        cols = ", ".join(f"c{i}: {t}" for i, t in enumerate(r.types))
        decl = f"{'input ' if r.is_input else ''}relation {r.name}({cols})"
        if r.key is not None:
            pref, how = r.key
            keys = ", ".join(f"c{i}" for i in range(len(r.types)) if i not in (pref, r.loose))
            decl += f" key({keys}) prefer {how}(c{pref})"
        lines.append(decl)
    lines.append("")
    if prog.min_conf is not None:
        lines.append(f"budget {{ min_confidence = {prog.min_conf} }}")
    for i, body in enumerate(prog.checks):
        lines.append(f"acceptance ok{i} {{ forbid {', '.join(rlit(l) for l in body)} }}")
    for i, rule in enumerate(prog.rules):
        body = ", ".join(rlit(rule.body[k]) for k in (rule.shown or range(len(rule.body))))
        if rule.weight is None and not rule.extra:
            lines.append(f"{ratom(rule.head)} :- {body}.")
        else:
            conf = "" if rule.weight is None else f"  confidence {rule.weight}\n"
            emit = ", ".join(ratom(h) for h in (rule.head, *rule.extra))
            lines.append(f"agent ag{i} {{\n{conf}  when {body}\n  emit {emit}\n}}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the reference evaluator


class Failure(Exception):
    pass


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _num(v: Any) -> float:
    return float(v) if isinstance(v, int) else v


def _fin(x: float) -> float:
    if not math.isfinite(x):
        raise Failure("not finite")
    return x


def _to_str(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        text = repr(v)
        return text if ("." in text or "e" in text or "n" in text) else text + ".0"
    return str(v)


def _parse_int(s: str) -> int:
    t = s.strip()
    body = t[1:] if t[:1] in "+-" else t
    parts = body.split("_")
    if not body or not all(p and p.isascii() and p.isdigit() for p in parts):
        raise Failure(f"to_int: {s!r}")
    return int(t)


def _parse_float(s: str) -> float:
    try:
        x = float(s.strip())
    except ValueError:
        raise Failure(f"to_float: {s!r}") from None
    return _fin(x)


def ev(e: Any, env: dict) -> Any:
    if isinstance(e, C):
        return e.value
    if isinstance(e, V):
        return env[e.name]
    if isinstance(e, B):
        a, b = ev(e.left, env), ev(e.right, env)
        if e.op == "++":
            return a + b
        if isinstance(a, int) and isinstance(b, int):
            if e.op in "/%" and b == 0:
                raise Failure("division by zero")
            if e.op == "/":
                return _trunc_div(a, b)
            if e.op == "%":
                return a - b * _trunc_div(a, b)
            return {"+": a + b, "-": a - b, "*": a * b}[e.op]
        a, b = _num(a), _num(b)
        if e.op in "/%" and b == 0:
            raise Failure("division by zero")
        if e.op == "%":
            return _fin(math.fmod(a, b))
        return _fin({"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else 0.0}[e.op])
    if isinstance(e, Tool):
        try:
            return TOOLS[e.name](*[ev(x, env) for x in e.args])
        except ValueError:
            raise Failure(f"tool {e.name}") from None
    if isinstance(e, F):
        args = [ev(x, env) for x in e.args]
        fn = e.fn
        if fn == "len":
            return len(args[0])
        if fn == "lower":
            return args[0].lower()
        if fn == "upper":
            return args[0].upper()
        if fn == "contains":
            return args[1] in args[0]
        if fn == "startswith":
            return args[0].startswith(args[1])
        if fn == "endswith":
            return args[0].endswith(args[1])
        if fn == "substr":
            s, start, length = args
            if start < 0 or length < 0:
                raise Failure("substr")
            return s[start:start + length]
        if fn == "to_str":
            return _to_str(args[0])
        if fn == "to_int":
            v = args[0]
            return int(v) if isinstance(v, (float, bool)) else v if isinstance(v, int) else _parse_int(v)
        if fn == "to_float":
            v = args[0]
            return float(v) if isinstance(v, int) else v if isinstance(v, float) else _parse_float(v)
        if fn == "abs":
            return abs(args[0])
        if fn in ("min", "max"):
            a, b = args
            if type(a) is not type(b):
                a, b = _num(a), _num(b)
            return (min if fn == "min" else max)(a, b) if a != b else a
    raise TypeError(e)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def match(atom: A, fact: tuple, env: dict) -> Optional[dict]:
    out = env
    for t, v in zip(atom.args, fact):
        if isinstance(t, W):
            continue
        if isinstance(t, C):
            if not _same(t.value, v):
                return None
            continue
        if not isinstance(t, V):  # an expression over variables bound elsewhere
            if not _same(ev(t, env), v):
                return None
            continue
        if t.name in out:
            if not _same(out[t.name], v):
                return None
        else:
            if out is env:
                out = dict(env)
            out[t.name] = v
    return out


CMP = {"=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
       "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


def _agg(g: G, env: dict, model: dict) -> Any:
    envs = [env]
    for atom in g.atoms:
        envs = [e2 for e in envs for f in model[atom.rel] if (e2 := match(atom, f, e)) is not None]
    if g.kind == "count":
        return len(envs)
    vals = [e[g.target] for e in envs]
    if g.kind == "sum":
        if g.ttype == "float":
            return _fin(math.fsum(vals))
        return sum(vals)
    if not vals:
        raise LookupError  # no result
    return min(vals) if g.kind == "min" else max(vals)


def _literal(l: Any, env: dict, model: dict) -> Optional[dict]:
    """Apply one non-atom literal: the extended env, or None when it does not hold."""
    if isinstance(l, N):
        return None if any(match(l.atom, f, env) is not None for f in model[l.atom.rel]) else env
    if isinstance(l, T):
        return env if CMP[l.op](ev(l.left, env), ev(l.right, env)) else None
    if isinstance(l, P):
        return env if ev(F(l.fn, l.args), env) != l.neg else None
    if isinstance(l, S):
        return {**env, l.var: ev(l.expr, env)}
    if isinstance(l, G):
        try:
            v = _agg(l, env, model)
        except LookupError:
            return None
        if l.test:
            return env if _same(env[l.var], v) else None
        return {**env, l.var: v}
    if isinstance(l, Fail):
        raise Failure(f"fail: {l.message}")
    if isinstance(l, S2):
        v = ev(l.binder, env)
        return {**env, l.var: v} if v == ev(l.tester, env) else None
    raise TypeError(l)


def matches(rule: Rule, model: dict, conf: dict, errors: list, idx: int):
    """(env, min premise confidence) for every body match; failing matches go to ``errors``."""
    atoms = [l for l in rule.body if isinstance(l, A)]
    envs = [({}, 1.0)]
    for a in atoms:
        rel = conf[a.rel]
        envs = [(e2, min(c, rel[f])) for e, c in envs for f in model[a.rel] if (e2 := match(a, f, e)) is not None]
    first = [l for k, l in enumerate(rule.body) if not isinstance(l, A) and k not in rule.fallible]
    last = [l for k, l in enumerate(rule.body) if not isinstance(l, A) and k in rule.fallible]
    for env, c in envs:
        for l in first:
            env = _literal(l, env, model)
            if env is None:
                break
        if env is None:
            continue
        try:
            for l in last:
                env = _literal(l, env, model)
                if env is None:
                    break
            if env is None:
                continue
            heads = [(h.rel, head_fact(h, env, None)) for h in (rule.head, *rule.extra)]
        except Failure as err:
            errors.append((idx, dict(env), str(err)))
            continue
        yield env, c, heads


def head_fact(head: A, env: dict, types: Optional[tuple]) -> tuple:
    return tuple(ev(t, env) for t in head.args)


def reference(prog: Program) -> tuple:
    """(model: rel -> {fact: confidence}, failures: [(rule index, env, error)])."""
    model, errors, _info = reference_info(prog)
    return model, errors


def check_matches(body: tuple, model: dict) -> list:
    """The matches of an acceptance body (atoms first, then the other literals) in ``model``."""
    envs = [{}]
    for a in (l for l in body if isinstance(l, A)):
        envs = [e2 for e in envs for f in model[a.rel] if (e2 := match(a, f, e)) is not None]
    for l in (l for l in body if not isinstance(l, A)):
        envs = [e2 for e in envs if (e2 := _literal(l, e, model)) is not None]
    return envs


def reference_info(prog: Program) -> tuple:
    """``reference`` plus what decides the tier: ``{"dropped": facts below min_confidence that the
    engine must have dropped (derivable from the final model, or given, never at or above it), "violated": acceptance
    checks with a match at the fixed point}``. A derived -0.0 is stored as 0.0, as an input one is
    (semantics.md, "One zero")."""
    floor = prog.min_conf
    model: dict = {r.name: {} for r in prog.rels}
    given: dict = {}
    for rel, fs in prog.facts.items():
        for f, c in fs:
            c = 1.0 if c is None else c
            given.setdefault(rel, {})[f] = max(given.get(rel, {}).get(f, 0.0), c)
    for rel, fs in prog.facts.items():
        for f, c0 in fs:
            if c0 is None:  # given with and without a confidence: confidence 1
                given[rel][f] = 1.0
    low: set = set()
    strong: set = set()  # facts with a derivation at or above the floor (dominance may remove them later)
    for rel, fs in given.items():
        for f, c in fs.items():
            if floor is not None and c < floor:
                low.add((rel, f))
                continue
            model[rel][f] = c
    facts_of = {r: set(m) for r, m in model.items()}
    errors: list = []
    for s in sorted({r.stratum for r in prog.derived}):
        rules = [(i, r) for i, r in enumerate(prog.rules) if prog.rel(r.head.rel).stratum == s]
        while True:
            changed = False
            errs: list = []
            for i, rule in rules:
                w = 1.0 if rule.weight is None else rule.weight
                for env, c, heads in matches(rule, facts_of, model, errs, i):
                    for name, fact in heads:
                        types = prog.rel(name).types
                        # a derived float holds one zero, as inputs do (-0.0 + 0.0 is 0.0)
                        fact = tuple(float(v) + 0.0 if t == "float" and isinstance(v, (int, float)) else v
                                     for v, t in zip(fact, types))
                        cf = w * c
                        if floor is not None and cf < floor:
                            low.add((name, fact))
                            continue
                        strong.add((name, fact))
                        rel = model[name]
                        if fact not in rel or cf > rel[fact]:
                            rel[fact] = cf
                            facts_of[name].add(fact)
                            changed = True
            if not changed:
                errors += errs
                break
        for r in prog.derived:
            if r.stratum == s and r.key is not None:
                pref, how = r.key
                best: dict = {}
                for f in model[r.name]:
                    k = tuple(v for i, v in enumerate(f) if i not in (pref, r.loose))
                    if k not in best or (f[pref] < best[k][pref] if how == "min" else f[pref] > best[k][pref]):
                        best[k] = f
                # a loose relation keeps one of the facts that tie for the best value: all are candidates
                model[r.name] = {f: c for f, c in model[r.name].items()
                                 if f[pref] == best[tuple(v for i, v in enumerate(f) if i not in (pref, r.loose))][pref]}
                facts_of[r.name] = set(model[r.name])
    # missing because of min_confidence: only weak derivations (a fact that a strong one derived
    # and dominance removed is missing because of its key, not of the floor)
    dropped = sorted(((r, f) for r, f in low - strong if f not in model[r]), key=repr)
    violated = [i for i, body in enumerate(prog.checks) if check_matches(body, facts_of)]
    return model, errors, {"dropped": dropped, "violated": violated}


# ---------------------------------------------------------------- generation


def _pick(draw, xs):
    return draw(st.sampled_from(list(xs)))


def _chance(draw, percent: int) -> bool:
    return draw(st.integers(0, 99)) < percent


_DOM: list = []  # the value domain of the program being drawn (a subset of INTS, FLOATS, STRS)


def _const(draw, typ: str) -> Any:
    dom = _DOM[-1] if _DOM else {"int": INTS, "float": FLOATS, "str": STRS, "bool": (False, True)}
    return _pick(draw, dom[typ])


class _Body:
    def __init__(self, draw, recursive_ok: bool):
        self.draw = draw
        self.types: dict = {}
        self.lits: list = []
        self.n = 0
        self.tainted: set = set()  # variables whose value comes from the fallible point
        self.fallible_at: Optional[int] = None
        self.atom_vars: set = set()  # bound by positive atoms
        self.tool_vars: set = set()  # bound by tool calls

    def fresh(self, p: str = "v") -> str:
        self.n += 1
        return f"{p}{self.n}"

    def stored(self, typ: str) -> list:
        """Variables whose value a column of ``typ`` can store (an int is widened to a float column)."""
        vs = self.bound(typ)
        if typ == "float" and self.draw(st.integers(0, 99)) < 25:
            vs += self.bound("int")
        return vs

    def bound(self, typ: str, clean: bool = False) -> list:
        return [v for v, t in self.types.items() if t == typ and not (clean and v in self.tainted)]

    # expressions: (expr, fallible, tainted)
    def expr(self, typ: str, depth: int, grow: bool, allow_fail: bool, force_fail: bool = False) -> tuple:
        draw = self.draw
        vs = self.bound(typ)
        roll = draw(st.integers(0, 99))
        if not force_fail and (depth >= 2 or roll < 35):
            if vs and (roll % 4 or depth >= 2):
                v = _pick(draw, vs)
                return V(v), False, v in self.tainted
            return C(_const(draw, typ)), False, False
        sub = lambda t: self.expr(t, depth + 1, grow, allow_fail)  # noqa: E731
        choices = []
        if typ == "int":
            choices += ["len", "abs", "minmax", "modk", "divk", "to_int_f", "to_int_b"]
            if grow:
                choices += ["+", "-", "*"]
            if allow_fail:
                choices += ["div", "mod", "to_int_s"]
        elif typ == "bool":
            choices += ["pred"]
        elif typ == "str":
            choices += ["lower", "upper", "to_str", "substr"]
            if grow:
                choices += ["++"]
            if allow_fail:
                choices += ["substr_neg"]
        else:
            choices += ["abs", "minmax", "to_float_i"]
            if grow:
                choices += ["+", "-", "*", "mixed"]
            if allow_fail:
                choices += ["div", "to_float_s"]
        if force_fail:
            choices = {"int": ["div", "mod", "to_int_s"], "str": ["substr_neg"], "float": ["div", "to_float_s"]}[typ]
        elif typ == "bool" and not vs and roll % 3 == 0:
            return C(_const(draw, typ)), False, False
        k = _pick(draw, choices)

        def comb(*parts):
            return any(p[1] for p in parts), any(p[2] for p in parts)

        if k in ("+", "-", "*", "++", "div", "mod"):
            l, r = sub(typ), sub(typ)
            op = {"div": "/", "mod": "%"}.get(k, k)
            fail = comb(l, r)
            return B(op, l[0], r[0]), fail[0] or k in ("div", "mod"), fail[1]
        if k == "mixed":
            l, r = sub("int"), sub("float")
            f = comb(l, r)
            return B(_pick(draw, "+-*"), l[0], r[0]), f[0], f[1]
        if k == "len":
            s = sub("str")
            return F("len", (s[0],)), s[1], s[2]
        if k == "abs":
            x = sub(typ)
            return F("abs", (x[0],)), x[1], x[2]
        if k == "minmax":  # a float min/max widens an int argument
            l, r = sub(typ), sub(typ if typ == "int" or not _chance(draw, 30) else "int")
            f = comb(l, r)
            return F(_pick(draw, ("min", "max")), (l[0], r[0])), f[0], f[1]
        if k in ("modk", "divk"):
            x = sub("int")
            return B("%" if k == "modk" else "/", x[0], C(draw(st.integers(2, 3)))), x[1], x[2]
        if k == "pred":  # a boolean builtin as a value
            l, r = sub("str"), sub("str")
            f = comb(l, r)
            return F(_pick(draw, ("contains", "startswith", "endswith")), (l[0], r[0])), f[0], f[1]
        if k == "to_int_b":
            x = sub("bool")
            return F("to_int", (x[0],)), x[1], x[2]
        if k == "to_int_f":
            x = sub("float")
            return F("to_int", (x[0],)), x[1], x[2]
        if k == "to_int_s":
            x = sub("str")
            return F("to_int", (x[0],)), True, x[2]
        if k == "to_float_i":
            x = sub("int")
            return F("to_float", (x[0],)), x[1], x[2]
        if k == "to_float_s":
            x = sub("str")
            return F("to_float", (x[0],)), True, x[2]
        if k in ("lower", "upper"):
            x = sub("str")
            return F(k, (x[0],)), x[1], x[2]
        if k == "to_str":
            x = sub(_pick(draw, ("int", "float", "str", "bool")))
            return F("to_str", (x[0],)), x[1], x[2]
        if k == "substr":
            x = sub("str")
            return F("substr", (x[0], C(draw(st.integers(0, 2))), C(draw(st.integers(0, 3))))), x[1], x[2]
        if k == "substr_neg":
            x, i, n = sub("str"), sub("int"), sub("int")
            f = comb(x, i, n)
            return F("substr", (x[0], i[0], n[0])), True, f[1]
        raise AssertionError(k)


def _atom(draw, b: _Body, rel: Rel, pattern: bool = False, locals_: Optional[dict] = None) -> A:
    """A positive atom (binds new variables) or, with ``pattern``, a negated/aggregate atom.

    An argument may be an expression over variables bound by *other* literals (earlier
    atoms: the reference matches atoms in body order), never over the atom's own."""
    args = []
    before = dict(b.types)
    for typ in rel.types:
        roll = draw(st.integers(0, 99))
        vs = b.bound(typ, clean=True)
        if locals_ is None and any(t == typ and v not in b.tainted for v, t in before.items()) and _chance(draw, 8):
            now, b.types = b.types, {v: t for v, t in before.items() if v not in b.tainted}
            try:
                e, _, _ = b.expr(typ, 1, True, False)
            finally:
                b.types = now
            args.append(e)
            continue
        if pattern:
            loc = [v for v, t in (locals_ or {}).items() if t == typ]
            if loc and roll < 40:
                args.append(V(_pick(draw, loc)))
            elif vs and roll < 60:
                args.append(V(_pick(draw, vs)))
            elif roll < 75:
                args.append(C(_const(draw, typ)))
            elif locals_ is not None and roll < 92:
                name = b.fresh("l")
                locals_[name] = typ
                args.append(V(name))
            else:
                args.append(W())
        else:
            if vs and roll < 25:
                args.append(V(_pick(draw, vs)))
            elif roll < 87:
                name = b.fresh()
                b.types[name] = typ
                b.atom_vars.add(name)
                args.append(V(name))
            elif roll < 92:
                args.append(C(_const(draw, typ)))
            else:
                args.append(W())
    return A(rel.name, tuple(args))


@st.composite
def _rule(draw, head: Rel, pos_pool: list, lower: list, recursive_pool: bool, peers: tuple = ()) -> Rule:
    b = _Body(draw, recursive_pool)
    n_pos = draw(st.integers(1, 3))
    inputs = [r for r in pos_pool if r.is_input]
    for _ in range(n_pos):
        pool = inputs if inputs and _chance(draw, 50) else pos_pool
        b.lits.append(_atom(draw, b, _pick(draw, pool)))
    recursive = any(isinstance(l, A) and next(r for r in pos_pool if r.name == l.rel).stratum == head.stratum
                    for l in b.lits)
    grow = not recursive
    has_agg = False
    # an aggregate over a lower stratum
    if lower and _chance(draw, 35):
        has_agg = True
        rel = _pick(draw, lower)
        locals_: dict = {}
        kind = _pick(draw, ("count", "sum", "min", "max"))
        target = None
        atom = _atom(draw, b, rel, pattern=True, locals_=locals_)
        if kind != "count":
            cols = [i for i, t in enumerate(rel.types) if kind in ("min", "max") or t in ("int", "float")]
            if not cols:
                kind = "count"
            else:
                pos = _pick(draw, cols)
                target = b.fresh("t")
                args = list(atom.args)
                args[pos] = V(target)
                atom = A(atom.rel, tuple(args))
                locals_[target] = rel.types[pos]
        atoms = [atom]
        others = [r for r in lower if r.name != rel.name]
        if others and _chance(draw, 25):
            atoms.append(_atom(draw, b, _pick(draw, others), pattern=True, locals_=locals_))
        rtype = "int" if kind == "count" else locals_[target]
        same = b.bound(rtype, clean=True)
        if same and _chance(draw, 10):
            b.lits.append(G(_pick(draw, same), kind, target, tuple(atoms), test=True, ttype=rtype))
        else:
            var = b.fresh("n")
            b.lits.append(G(var, kind, target, tuple(atoms), ttype=rtype))
            b.types[var] = rtype
            if _chance(draw, 40):
                b.lits.append(T(_pick(draw, ("<", "<=", ">", ">=", "!=")), V(var), C(_const(draw, rtype))))
    # the fallible point, at most one
    allow_fail = _chance(draw, 40)
    # assignments
    for _ in range(draw(st.integers(1 if allow_fail else 0, 2))):
        typ = _pick(draw, ("int", "str", "float", "int", "str", "float", "bool"))
        force = allow_fail and b.fallible_at is None and typ != "bool" and _chance(draw, 60)
        e, fail, taint = b.expr(typ, 0, grow, allow_fail and b.fallible_at is None, force)
        var = b.fresh("z")
        if fail and b.fallible_at is None:
            taint = True
            if _chance(draw, 50):
                # a guard that protects it (wherever it is written: guards run first)
                for div in _divisors(e):
                    b.lits.append(T("!=", div, C(0 if _int_expr(div, b) else 0.0)))
            b.fallible_at = len(b.lits)
        if not allow_fail and typ in ("int", "float") and _chance(draw, 15):
            # bound twice: `var = e, var = e2`; the binder gives the type (int or float). Only
            # in rules without a fallible point: the binder may be a step that can raise (float
            # `*`, to_float), and which of two such steps feeding guards runs first is the
            # planner's choice
            typ2 = _pick(draw, ("int", "float"))
            e2, _, taint2 = b.expr(typ2, 1 if _chance(draw, 50) else 2, grow, False)
            first, second = (e, e2) if _chance(draw, 50) else (e2, e)
            pair = S2(var, first, second, (_vars(first) <= b.atom_vars | b.tool_vars,
                                           _vars(second) <= b.atom_vars | b.tool_vars))
            b.lits.append(pair)
            typ = typ if pair.binder is e else typ2
            taint = taint or taint2
        else:
            b.lits.append(S(var, e))
        b.types[var] = typ
        if taint:
            b.tainted.add(var)
    # a tool call: `parse` can fail (then it is the rule's fallible point); `twice` and
    # `norm` cannot, and stand only in rules without a fallible point (the order of two
    # steps that may raise is the planner's choice)
    if _chance(draw, 15):
        if allow_fail and b.fallible_at is None:
            name = "parse"
        elif not allow_fail:
            name = _pick(draw, ("twice", "norm") if grow else ("norm",))
        else:
            name = None
        arg_t, res_t = TOOL_TYPES.get(name, ("", ""))
        vs = b.bound(arg_t, clean=True) if name else []
        if vs:
            var = b.fresh("u")
            if name == "parse":
                b.fallible_at = len(b.lits)
                b.tainted.add(var)
            b.lits.append(S(var, Tool(name, (V(_pick(draw, vs)),))))
            b.types[var] = res_t
            b.tool_vars.add(var)
    # `fail "..."`: the fallible point of a rule that has none yet (reached once the rest holds)
    if allow_fail and b.fallible_at is None and _chance(draw, 20):
        b.fallible_at = len(b.lits)
        b.lits.append(Fail(_pick(draw, ("stop", "bad \"x\""))))
    # tests
    for _ in range(draw(st.integers(0, 1))):
        typ = _pick(draw, ("int", "str", "float", "int", "str", "float", "bool"))
        if typ == "str" and _chance(draw, 40):
            l, lf, lt = b.expr("str", 1, grow, False)
            r, rf, rt = b.expr("str", 1, grow, False)
            b.lits.append(P(_pick(draw, ("contains", "startswith", "endswith")), (l, r), _chance(draw, 30)))
            if lt or rt:
                b.tainted.add(f"__lit{len(b.lits) - 1}")
            continue
        l, lf, lt = b.expr(typ, 1, grow, False)
        r, rf, rt = b.expr(typ if typ in ("str", "bool") else _pick(draw, ("int", "float")), 1, grow, False)
        op = _pick(draw, ("=", "!=", "<", "<=", ">", ">="))
        if op == "=" and any(isinstance(x, V) and x.name not in b.atom_vars for x in (l, r)):
            op = "!="  # `x = e` would bind (or rebind) x: not a plain test
        b.lits.append(T(op, l, r))
        if lt or rt:
            b.tainted.add(f"__lit{len(b.lits) - 1}")
    # negation over a lower stratum
    if lower and _chance(draw, 35):
        b.lits.append(N(_atom(draw, b, _pick(draw, lower), pattern=True)))
    # the head
    args = []
    head_fail = False
    for typ in head.types:
        if head.key is not None:
            vs = b.stored(typ)
            args.append(V(_pick(draw, vs)) if vs and _chance(draw, 85) else C(_const(draw, typ)))
            continue
        if _chance(draw, 20):
            allow = allow_fail and b.fallible_at is None and not head_fail
            e, fail, _ = b.expr(typ if typ != "float" or not _chance(draw, 30) else "int", 0, grow, allow)
            head_fail = head_fail or fail
            args.append(e)
            continue
        vs = b.stored(typ)
        args.append(V(_pick(draw, vs)) if vs and _chance(draw, 90) else C(_const(draw, typ)))
    body = tuple(b.lits)
    fallible = set()
    if b.fallible_at is not None or head_fail:
        for k, l in enumerate(body):
            if k == b.fallible_at or _uses(l, b.tainted) or f"__lit{k}" in b.tainted:
                fallible.add(k)
        fallible.add(-1)
    order = tuple(draw(st.permutations(range(len(body)))))
    weight = _pick(draw, (0.5, 0.9, 0.8)) if _chance(draw, 20) else None
    # an agent that emits into a second relation of its stratum too
    extra = ()
    if peers and _chance(draw, 15):
        other = _pick(draw, peers)
        xs = []
        for typ in other.types:
            vs = b.stored(typ)
            xs.append(V(_pick(draw, vs)) if vs and _chance(draw, 85) else C(_const(draw, typ)))
        extra = (A(other.name, tuple(xs)),)
    return Rule(A(head.name, tuple(args)), body, weight, frozenset(fallible), order, extra)


def _divisors(e: Any) -> list:
    """The right operands of / and % in ``e`` that are not constants."""
    out = []
    if isinstance(e, B):
        if e.op in "/%" and isinstance(e.right, V):
            out.append(e.right)
        out += _divisors(e.left) + _divisors(e.right)
    elif isinstance(e, F):
        for a in e.args:
            out += _divisors(a)
    return out


def _int_expr(e: Any, b: _Body) -> bool:
    if isinstance(e, V):
        return b.types[e.name] == "int"
    if isinstance(e, C):
        return isinstance(e.value, int)
    if isinstance(e, F):
        return e.fn in ("len", "to_int") or (e.fn in ("abs", "min", "max") and _int_expr(e.args[0], b))
    if isinstance(e, B):
        return _int_expr(e.left, b) and _int_expr(e.right, b)
    return False


def _vars(e: Any) -> set:
    if isinstance(e, V):
        return {e.name}
    if isinstance(e, B):
        return _vars(e.left) | _vars(e.right)
    if isinstance(e, (F, Tool)):
        return set().union(*(_vars(a) for a in e.args)) if e.args else set()
    if isinstance(e, A):
        return set().union(*(_vars(a) for a in e.args)) if e.args else set()
    return set()


def _uses(l: Any, names: set) -> bool:
    if isinstance(l, A):
        return False
    if isinstance(l, N):
        return bool(_vars(l.atom) & names)
    if isinstance(l, (T,)):
        return bool((_vars(l.left) | _vars(l.right)) & names)
    if isinstance(l, P):
        return bool(_vars(F(l.fn, l.args)) & names)
    if isinstance(l, S):
        return bool(_vars(l.expr) & names)
    if isinstance(l, S2):
        return bool((_vars(l.first) | _vars(l.second)) & names)
    if isinstance(l, G):
        return bool(set().union(*(_vars(a) for a in l.atoms)) & names)
    return False


@st.composite
def programs(draw) -> Program:
    rels: list = []
    n_in = draw(st.integers(1, 3))
    for i in range(n_in):
        if i == 0 and _chance(draw, 50):
            t = _pick(draw, ("int", "str"))
            types = (t, t)
        else:
            types = tuple(_pick(draw, ("int", "str", "float", "int", "str", "int", "str", "float", "bool")) for _ in range(draw(st.integers(1, 3))))
        rels.append(Rel(f"e{i}", types, True, 0))
    n_der = draw(st.integers(max(1, 3 - n_in), 8 - n_in))
    stratum = 1
    for i in range(n_der):
        if i > 0 and _chance(draw, 40):
            stratum += 1
        graphs = [r for r in rels if len(r.types) == 2 and r.types[0] == r.types[1]]
        if graphs and _chance(draw, 30):
            types = _pick(draw, graphs).types
        else:
            types = tuple(_pick(draw, ("int", "str", "float", "int", "str", "int", "str", "float", "bool")) for _ in range(draw(st.integers(1, 3))))
        key = loose = None
        if len(types) >= 2 and _chance(draw, 25):
            key = (draw(st.integers(0, len(types) - 1)), _pick(draw, ("min", "max")))
            if len(types) >= 3 and _chance(draw, 50):
                loose = max(c for c in range(len(types)) if c != key[0])
        rels.append(Rel(f"r{i}", types, False, stratum, key, loose))
    facts: dict = {}
    tracked = _chance(draw, 30)
    dom = {"int": draw(st.lists(st.sampled_from(INTS), min_size=2, max_size=4, unique=True)),
           "float": draw(st.lists(st.sampled_from(FLOATS), min_size=2, max_size=3, unique=True)),
           "str": draw(st.lists(st.sampled_from(STRS), min_size=2, max_size=5, unique=True)),
           "bool": (False, True)}
    for r in rels[:n_in]:
        fact = st.tuples(*[st.sampled_from(dom[t]) for t in r.types])
        fs = draw(st.lists(fact, min_size=0 if _chance(draw, 8) else 2, max_size=10, unique=True))
        out = []
        for f in fs:
            c = _pick(draw, (0.5, 0.9, 0.25)) if tracked and _chance(draw, 40) else None
            out.append((f, c))
            if _chance(draw, 10):  # given twice: the fact keeps its best confidence
                out.append((f, _pick(draw, (None, 0.5, 0.9)) if tracked else None))
        facts[r.name] = out
    for r in rels[n_in:]:
        if _chance(draw, 15):  # a derived relation may be given starting facts (a keyed one too)
            fact = st.tuples(*[st.sampled_from(dom[t]) for t in r.types])
            facts[r.name] = [(f, _pick(draw, (None, 0.5)) if tracked else None)
                             for f in draw(st.lists(fact, min_size=1, max_size=3, unique=True))]
    _DOM.append(dom)
    try:
        rules = _all_rules(draw, rels, n_in)
    finally:
        _DOM.pop()
    order = draw(st.permutations(range(len(rules))))
    rules = [rules[i] for i in order]
    derived = [r.name for r in rels[n_in:]]
    goal = _pick(draw, derived)
    min_conf = _pick(draw, (0.3, 0.5, 0.8, 0.9, 0.45)) if tracked and _chance(draw, 40) else None
    if min_conf is None and _chance(draw, 8):
        min_conf = _pick(draw, (0.5, 0.9))
    checks = []
    _DOM.append(dom)
    try:
        for _ in range(draw(st.integers(0, 2)) if _chance(draw, 20) else 0):
            checks.append(_check(draw, rels))
    finally:
        _DOM.pop()
    return Program(tuple(rels), tuple(rules), facts, goal, min_conf=min_conf, checks=tuple(checks))


def _check(draw, rels: list) -> tuple:
    """An acceptance body: one or two atoms (no loose keyed relation: which tied fact it keeps
    depends on the schedule), maybe a negated atom and a comparison with a constant."""
    pool = [r for r in rels if r.loose is None]
    b = _Body(draw, False)
    lits: list = [_atom(draw, b, _pick(draw, pool)) for _ in range(draw(st.integers(1, 2)))]
    if _chance(draw, 40):
        lits.append(N(_atom(draw, b, _pick(draw, pool), pattern=True)))
    if b.types and _chance(draw, 50):
        var = _pick(draw, sorted(b.types))
        typ = b.types[var]
        ops = ("=", "!=") if typ == "bool" else ("=", "!=", "<", ">=")
        lits.append(T(_pick(draw, ops), V(var), C(_const(draw, typ))))
    return tuple(lits)


def _all_rules(draw, rels: list, n_in: int) -> list:
    keyed = {r.name for r in rels if r.key is not None}
    rules: list = []
    for r in rels[n_in:]:
        # a keyed relation's rules read lower strata only; nobody reads a keyed relation positively
        # a loose keyed relation is read by nothing (which fact it keeps depends on the schedule)
        lower = [x for x in rels if x.stratum < r.stratum and x.loose is None]
        if r.key is not None:
            pos_pool = [x for x in lower if x.name not in keyed]
        else:
            pos_pool = [x for x in rels if x.stratum <= r.stratum and x.name not in keyed]
        base_pool = [x for x in pos_pool if x.stratum < r.stratum or x.is_input] or [rels[0]]
        n_rules = draw(st.integers(1, 3))
        graph = len(r.types) == 2 and r.types[0] == r.types[1] and r.key is None
        edges = [e for e in base_pool if e.types == r.types and e.name not in keyed] if graph else []
        if edges and _chance(draw, 60):
            # deeper recursion: a transitive closure, or two relations of one stratum defined
            # through each other (mutual recursion)
            edge = _pick(draw, edges)
            x, y, z = V("v1"), V("v2"), V("v3")
            rules.append(Rule(A(r.name, (x, y)), (A(edge.name, (x, y)),)))
            peers = [p for p in pos_pool if p.stratum == r.stratum and p.types == r.types and p.name != r.name]
            other = _pick(draw, peers) if peers and _chance(draw, 60) else r
            body = (A(other.name, (x, y)), A(edge.name, (y, z)))
            if _chance(draw, 50):
                body = (A(edge.name, (x, y)), A(other.name, (y, z)))
            weight = _pick(draw, (0.5, 0.9)) if _chance(draw, 20) else None
            rules.append(Rule(A(r.name, (x, z)), body, weight, frozenset(), (1, 0) if _chance(draw, 50) else (0, 1)))
            n_rules = draw(st.integers(0, 1))
        peers = tuple(x for x in rels[n_in:] if x.stratum == r.stratum and x.key is None and x.name != r.name)
        for k in range(n_rules):
            pool = base_pool if k == 0 else pos_pool
            rules.append(draw(_rule(r, pool, lower, True, peers)))
    return rules
