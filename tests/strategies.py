"""Hypothesis strategies that generate random *valid* Converge programs.

The programs live in a small intermediate representation (IR) defined here;
``render(ir)`` turns one into rule text, and ``tests/reference.py`` evaluates
the IR with a naive reference evaluator that shares no code with the engine.

Every generated program is valid by construction:

* **declared** — every relation is declared, input relations with ``input``;
  derived relations are never filled by facts and input relations never
  appear in a rule head;
* **well typed** — every column is ``int`` or ``str``; a variable has one type
  (the type of the first column that binds it) and is only reused in
  positions and comparisons of that type; arithmetic and aggregates are int;
* **safe** — every body has at least one positive atom; the head, negated
  atoms, comparisons, aggregate group variables and the right-hand side of an
  assignment only use variables bound by a positive atom, by an assignment
  ``z = y + k`` or by an aggregate result ``n = count {...}``; aggregate-local
  variables are fresh names that occur only inside their aggregate (where
  they may join its atoms); ``_`` never stands in a head or a comparison;
* **stratified** — each derived relation gets a stratum ``>= 1`` (inputs are
  stratum 0).  A rule for a relation of stratum ``s`` reads positive atoms of
  strata ``<= s`` (same-stratum atoms are recursion) but negates and
  aggregates only relations of strata ``< s``;
* **finite, and small** — values only come from the finite fact domain,
  constants, assignments and head arithmetic.  A rule with a same-stratum
  body atom (a possibly recursive rule) never has head arithmetic, and its
  only value-creating assignment is ``z = y + k`` (``k > 0``) with
  ``c - 5 <= z <= c``, or ``z = y - k`` with ``c <= z <= c + 5``: a value
  created inside a recursive component lies in a fixed window of six values,
  so the fixed point is reached after a handful of rounds however large the
  values coming from lower strata are.  Non-recursive rules may use any
  ``z = x op k``, ``z = x op y`` (``+ - *``), ``z = k`` and ``x op k`` in the
  head: their output is finite because their body reads only complete lower
  strata.  Counts and sums are likewise computed over complete lower strata.

Body literals are rendered in a random order (order carries no meaning in the
language) and rules of different relations are interleaved.  To make more
rules fire, bodies lean on input relations, some relations get a
transitive-closure shape (deeper recursion), and ~15% of programs use an
"exotic" value domain (escapes, non-ASCII, "", integers beyond 64 bits).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Union

from hypothesis import strategies as st

# ---------------------------------------------------------------- the IR

STR_DOMAIN = ("a", "b", "c", "d", "e")
INT_DOMAIN = (-1, 0, 1, 2, 3, 4)
# Some programs use these instead: escapes, non-ASCII, the empty string, and
# integers beyond 64 bits (the language's int has arbitrary precision).
EXOTIC_STR_DOMAIN = ("a", "", "é", 'q"\\x', "b\n", "☃")
EXOTIC_INT_DOMAIN = (-1, 0, 2, 10**20, -(10**19))


@dataclass(frozen=True)
class Var:
    name: str


@dataclass(frozen=True)
class Const:
    value: Union[int, str]


@dataclass(frozen=True)
class Wild:
    pass


Term = Union[Var, Const, Wild, "Expr"]


@dataclass(frozen=True)
class Atom:
    rel: str
    args: tuple  # tuple[Term, ...]


@dataclass(frozen=True)
class Neg:
    atom: Atom


@dataclass(frozen=True)
class Cmp:
    op: str  # = != < <= > >=
    left: Term  # Var or Const
    right: Term


@dataclass(frozen=True)
class Assign:
    """``var = src`` or ``var = src op arg`` (src, arg: Var or Const; op: + - *).

    When ``var`` is also bound elsewhere in the body this is an equality test.
    """

    var: str
    src: Term
    op: Union[str, None] = None
    arg: Union[Term, None] = None


@dataclass(frozen=True)
class Expr:
    """An arithmetic head argument ``left op right`` (only in heads)."""

    left: Term
    op: str
    right: Term


@dataclass(frozen=True)
class Agg:
    """``var = count { atoms }`` or ``var = sum target { atoms }``.

    Ranges over the distinct matching combinations of facts (one fact per
    atom); the atoms use variables bound outside (the group), constants,
    ``_`` and local variables (which may join the atoms).  The atoms are over
    distinct relations, so "combination of facts" is unambiguous.  When
    ``var`` is also bound by a positive atom this is an equality test.
    """

    var: str
    kind: str  # count | sum
    target: Union[str, None]
    atoms: tuple  # tuple[Atom, ...]


Literal = Union[Atom, Neg, Cmp, Assign, Agg]


@dataclass(frozen=True)
class Rule:
    head: Atom
    body: tuple  # tuple[Literal, ...], in rendered order


@dataclass(frozen=True)
class Relation:
    name: str
    types: tuple  # tuple[str, ...]
    is_input: bool
    stratum: int


@dataclass(frozen=True)
class Program:
    relations: tuple  # tuple[Relation, ...], in declaration order
    rules: tuple  # tuple[Rule, ...], in rendered order
    facts: dict = field(hash=False, compare=False)  # input relation -> tuple of fact tuples

    def relation(self, name: str) -> Relation:
        for r in self.relations:
            if r.name == name:
                return r
        raise KeyError(name)

    def rules_for(self, rel: str) -> list:
        """Rules whose head is ``rel``, in declaration order (``rel#1`` is the first)."""
        return [r for r in self.rules if r.head.rel == rel]

    @property
    def derived(self) -> list:
        return [r for r in self.relations if not r.is_input]

    @property
    def inputs(self) -> list:
        return [r for r in self.relations if r.is_input]

    def facts_dict(self) -> dict:
        """Input facts as the API takes them: relation -> list of tuples."""
        return {rel: [tuple(f) for f in facts] for rel, facts in self.facts.items()}


# ---------------------------------------------------------------- rendering


def render_value(v: Union[int, str]) -> str:
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


def render_term(t: Term) -> str:
    if isinstance(t, Var):
        return t.name
    if isinstance(t, Const):
        return render_value(t.value)
    if isinstance(t, Expr):
        return f"{render_term(t.left)} {t.op} {render_term(t.right)}"
    return "_"


def render_atom(a: Atom) -> str:
    return f"{a.rel}({', '.join(render_term(t) for t in a.args)})"


def render_literal(lit: Literal) -> str:
    if isinstance(lit, Atom):
        return render_atom(lit)
    if isinstance(lit, Neg):
        return "not " + render_atom(lit.atom)
    if isinstance(lit, Cmp):
        return f"{render_term(lit.left)} {lit.op} {render_term(lit.right)}"
    if isinstance(lit, Assign):
        if lit.op is None:
            return f"{lit.var} = {render_term(lit.src)}"
        return f"{lit.var} = {render_term(lit.src)} {lit.op} {render_term(lit.arg)}"
    if isinstance(lit, Agg):
        inner = ", ".join(render_atom(a) for a in lit.atoms)
        if lit.kind == "count":
            return f"{lit.var} = count {{ {inner} }}"
        return f"{lit.var} = {lit.kind} {lit.target} {{ {inner} }}"
    raise TypeError(lit)


def render_decl(r: Relation) -> str:
    cols = ", ".join(f"c{i}: {t}" for i, t in enumerate(r.types))
    return f"{'input ' if r.is_input else ''}relation {r.name}({cols})"


def render_rule(rule: Rule) -> str:
    return f"{render_atom(rule.head)} :- {', '.join(render_literal(l) for l in rule.body)}."


def render(ir: Program) -> str:
    """The program as one rule file (declarations first, then rules in order)."""
    lines = ["# generated by tests/strategies.py"]
    lines += [render_decl(r) for r in ir.relations]
    lines.append("")
    lines += [render_rule(r) for r in ir.rules]
    return "\n".join(lines) + "\n"


def render_split(ir: Program) -> tuple:
    """The program as two rule files.

    File A declares the input relations and the first half of the derived
    relations together with all their rules; file B the rest.  All rules of
    one relation stay in one file, so ``rel#k`` names the same rule whatever
    order the files are given in.
    """
    derived = ir.derived
    half = (len(derived) + 1) // 2
    a_rels = {r.name for r in ir.inputs} | {r.name for r in derived[:half]}
    a = ["# part A"] + [render_decl(r) for r in ir.relations if r.name in a_rels] + [""]
    b = ["# part B"] + [render_decl(r) for r in ir.relations if r.name not in a_rels] + [""]
    for rule in ir.rules:
        (a if rule.head.rel in a_rels else b).append(render_rule(rule))
    return "\n".join(a) + "\n", "\n".join(b) + "\n"


def render_facts_json(ir: Program, order=None) -> str:
    """Input facts as a JSON facts file ``{"rel": [[v, ...], ...]}``."""
    facts = ir.facts if order is None else order
    return json.dumps({rel: [list(f) for f in fs] for rel, fs in facts.items()})


# ---------------------------------------------------------------- generation


def _value(draw, typ: str, dom: tuple):
    return draw(st.sampled_from(dom[0] if typ == "str" else dom[1]))


def _chance(draw, percent: int) -> bool:
    return draw(st.integers(0, 99)) < percent


class _RuleBuilder:
    """Builds one safe, well-typed rule body."""

    def __init__(self, draw, dom: tuple):
        self.draw = draw
        self.dom = dom  # (str values, int values)
        self.types: dict[str, str] = {}  # variable -> type
        self.pos_vars: list[str] = []  # bound by positive atoms, in order of binding
        self.other_bound: list[str] = []  # bound by assignments / aggregates
        self.counter = 0

    def fresh(self, prefix: str = "v") -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def bound(self, typ: str, include_other: bool = True) -> list[str]:
        pool = self.pos_vars + (self.other_bound if include_other else [])
        return [v for v in pool if self.types[v] == typ]

    def positive_atom(self, rel: Relation) -> Atom:
        draw = self.draw
        args = []
        new_here: list[str] = []
        for typ in rel.types:
            existing = [v for v in self.bound(typ, include_other=False)] + [v for v in new_here if self.types[v] == typ]
            roll = draw(st.integers(0, 99))
            if existing and roll < 45:
                args.append(Var(draw(st.sampled_from(existing))))
            elif roll < 80 or not existing and roll < 88:
                name = self.fresh()
                self.types[name] = typ
                new_here.append(name)
                args.append(Var(name))
            elif roll < 92:
                args.append(Const(_value(draw, typ, self.dom)))
            else:
                args.append(Wild())
        for name in new_here:
            self.pos_vars.append(name)
        return Atom(rel.name, tuple(args))

    def pattern_atom(self, rel: Relation, allow_local: bool, sum_pos=None, locals_=None) -> tuple:
        """An atom for a negation or an aggregate body: bound vars, constants, `_`.

        In an aggregate (``allow_local``) it may also use local variables:
        fresh ones, or ones of ``locals_`` (name -> type, local variables of
        the aggregate's earlier atoms) to join on.
        """
        draw = self.draw
        args = []
        target = None
        locals_ = {} if locals_ is None else locals_
        new_locals = {}
        for i, typ in enumerate(rel.types):
            if i == sum_pos:
                target = self.fresh("s")
                new_locals[target] = typ
                args.append(Var(target))
                continue
            existing = self.bound(typ)
            joinable = sorted(v for v, t in locals_.items() if t == typ)
            roll = draw(st.integers(0, 99))
            if joinable and roll < 50:
                args.append(Var(draw(st.sampled_from(joinable))))
            elif existing and roll < 55:
                args.append(Var(draw(st.sampled_from(existing))))
            elif roll < 70:
                args.append(Const(_value(draw, typ, self.dom)))
            elif allow_local and roll < 85:
                name = self.fresh("l")
                new_locals[name] = typ
                args.append(Var(name))
            else:
                args.append(Wild())
        locals_.update(new_locals)
        return Atom(rel.name, tuple(args)), target


@st.composite
def programs(draw, max_derived: int = 6, max_facts: int = 30, max_inputs: int = 3):
    """A random valid program (see the module docstring for the guarantees)."""
    relations: list[Relation] = []
    n_inputs = draw(st.integers(1, max_inputs))
    for i in range(n_inputs):
        if i == 0 and _chance(draw, 50):  # a graph: edges between nodes of one type
            types = (draw(st.sampled_from(("str", "int"))),) * 2
        else:
            arity = draw(st.integers(1, 3))
            types = tuple(draw(st.sampled_from(("str", "int"))) for _ in range(arity))
        relations.append(Relation(f"e{i}", types, True, 0))

    n_derived = draw(st.integers(1, max_derived))
    stratum = 1
    for i in range(n_derived):
        if i > 0 and _chance(draw, 35):
            stratum += 1
        graphs = [r for r in relations if len(r.types) == 2 and r.types[0] == r.types[1]]
        if graphs and _chance(draw, 30):  # likely to get a transitive-closure shape
            types = draw(st.sampled_from(graphs)).types
        else:
            arity = draw(st.integers(1, 3))
            types = tuple(draw(st.sampled_from(("str", "int"))) for _ in range(arity))
        relations.append(Relation(f"r{i}", types, False, stratum))

    # input facts: at most max_facts in total, small domain
    dom = (EXOTIC_STR_DOMAIN, EXOTIC_INT_DOMAIN) if _chance(draw, 15) else (STR_DOMAIN, INT_DOMAIN)
    facts: dict = {}
    budget = max_facts
    for rel in relations[:n_inputs]:
        fact = st.tuples(*[st.sampled_from(dom[0] if t == "str" else dom[1]) for t in rel.types])
        if _chance(draw, 8):
            fs = []
        else:
            fs = draw(st.lists(fact, min_size=min(budget, 2), max_size=min(budget, 12), unique=True))
        budget -= len(fs)
        if fs or _chance(draw, 50):  # an input relation may get no entry at all
            facts[rel.name] = tuple(fs)

    rules: list[Rule] = []
    for idx, rel in enumerate(relations[n_inputs:]):
        earlier = relations[: n_inputs + idx]
        n_rules = draw(st.integers(1, 3))
        edges = [e for e in earlier if len(e.types) == 2 and e.types == rel.types and e.types[0] == e.types[1]]
        if edges and _chance(draw, 60):
            # a transitive-closure shape, for deeper recursion
            rules += _closure_rules(draw, rel, draw(st.sampled_from(edges)))
            n_rules = draw(st.integers(0, 1))
        for k in range(n_rules):
            # the first rule only reads earlier relations (a base case), the
            # others may read anything of stratum <= s (recursion)
            if k == 0:
                pos_pool = earlier
            else:
                pos_pool = [r for r in relations if r.stratum <= rel.stratum]
            lower = [r for r in relations if r.stratum < rel.stratum]
            rules.append(draw(_rule(rel, pos_pool, lower, dom)))

    order = draw(st.permutations(range(len(rules))))
    rules = [rules[i] for i in order]
    return Program(tuple(relations), tuple(rules), facts)


@st.composite
def _rule(draw, head_rel: Relation, pos_pool: list, lower: list, dom: tuple):
    b = _RuleBuilder(draw, dom)
    body: list = []
    n_pos = draw(st.integers(1, 3))
    inputs = [r for r in pos_pool if r.is_input]
    for _ in range(n_pos):
        # lean on input relations (never empty) so that more rules fire
        pool = inputs if inputs and _chance(draw, 40) else pos_pool
        body.append(b.positive_atom(draw(st.sampled_from(pool))))
    recursive = any(isinstance(l, Atom) and head_rel.stratum == _stratum_of(l.rel, pos_pool) for l in body)

    # assignment  z = y op k
    int_vars = b.bound("int", include_other=False)
    if int_vars and _chance(draw, 35):
        src = Var(draw(st.sampled_from(int_vars)))
        k = Const(draw(st.integers(0, 3)))
        if _chance(draw, 15):
            # the target is already bound: an equality test, any op is fine
            target = draw(st.sampled_from(int_vars))
            op = draw(st.sampled_from(["+", "-", "*", None]))
            body.append(Assign(target, src, op, k if op else None))
        else:
            target = b.fresh("z")
            b.types[target] = "int"
            if _chance(draw, 10):
                body.append(Assign(target, k))  # z = 3
            elif not recursive:
                op = draw(st.sampled_from(["+", "-", "*", None]))
                if op and _chance(draw, 25):
                    k = Var(draw(st.sampled_from(int_vars)))  # z = x + y
                body.append(Assign(target, src, op, k if op else None))
            elif _chance(draw, 70):
                # z only climbs, inside a window [c - 5, c]: at most 6 new values
                c = draw(st.integers(0, 4))
                body.append(Assign(target, src, "+", Const(draw(st.integers(1, 2)))))
                body.append(Cmp("<=", Var(target), Const(c)))
                body.append(Cmp(">=", Var(target), Const(c - 5)))
            elif _chance(draw, 50):
                c = draw(st.integers(-3, 1))
                body.append(Assign(target, src, "-", Const(draw(st.integers(1, 2)))))
                body.append(Cmp(">=", Var(target), Const(c)))
                body.append(Cmp("<=", Var(target), Const(c + 5)))
            else:
                body.append(Assign(target, src))
            b.other_bound.append(target)

    # count / sum aggregate over a strictly lower stratum
    if lower and _chance(draw, 25):
        agg_rel = draw(st.sampled_from(lower))
        int_cols = [i for i, t in enumerate(agg_rel.types) if t == "int"]
        locals_: dict = {}
        if int_cols and _chance(draw, 40):
            atom, target = b.pattern_atom(agg_rel, allow_local=True, sum_pos=draw(st.sampled_from(int_cols)),
                                          locals_=locals_)
            kind = "sum"
        else:
            atom, target = b.pattern_atom(agg_rel, allow_local=True, locals_=locals_)
            kind = "count"
        atoms = [atom]
        others = [r for r in lower if r.name != agg_rel.name]
        if others and _chance(draw, 30):
            atoms.append(b.pattern_atom(draw(st.sampled_from(others)), allow_local=True, locals_=locals_)[0])
        pos_ints = b.bound("int", include_other=False)
        if pos_ints and _chance(draw, 12):
            # the result variable is bound by a positive atom: an equality test
            body.append(Agg(draw(st.sampled_from(pos_ints)), kind, target, tuple(atoms)))
            n = None
        else:
            n = b.fresh("n")
            b.types[n] = "int"
            body.append(Agg(n, kind, target, tuple(atoms)))
            b.other_bound.append(n)
        if n is not None and _chance(draw, 30):
            body.append(Cmp(draw(st.sampled_from([">", ">=", "!=", "<"])), Var(n), Const(draw(st.integers(0, 3)))))

    # negation over a strictly lower stratum
    if lower and _chance(draw, 30):
        atom, _ = b.pattern_atom(draw(st.sampled_from(lower)), allow_local=False)
        body.append(Neg(atom))

    # comparison between bound terms of one type
    if _chance(draw, 35):
        typ = draw(st.sampled_from(("int", "str")))
        vs = b.bound(typ)
        if vs:
            left = Var(draw(st.sampled_from(vs)))
            others = [v for v in vs if v != left.name]
            if others and _chance(draw, 50):
                right = Var(draw(st.sampled_from(others)))
            else:
                right = Const(_value(draw, typ, dom))
            op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">="]))
            if typ == "str" and _chance(draw, 50):
                op = draw(st.sampled_from(["=", "!="]))
            body.append(Cmp(op, left, right))

    # head: bound variables (rarely arithmetic on them) or constants
    head_args = []
    for typ in head_rel.types:
        vs = b.bound(typ)
        if vs and typ == "int" and not recursive and _chance(draw, 12):
            # arithmetic in the head, only where no recursion can feed it back
            head_args.append(Expr(Var(draw(st.sampled_from(vs))), draw(st.sampled_from(["+", "-", "*"])),
                                  Const(draw(st.integers(0, 2)))))
        elif vs and _chance(draw, 90):
            head_args.append(Var(draw(st.sampled_from(vs))))
        else:
            head_args.append(Const(_value(draw, typ, dom)))
    order = draw(st.permutations(range(len(body))))
    return Rule(Atom(head_rel.name, tuple(head_args)), tuple(body[i] for i in order))


def _closure_rules(draw, rel: Relation, edge: Relation) -> list:
    x, y, z = Var("v1"), Var("v2"), Var("v3")
    base = Rule(Atom(rel.name, (x, y)), (Atom(edge.name, (x, y)),))
    shape = draw(st.sampled_from(["left", "right", "double"]))
    if shape == "left":
        body = (Atom(rel.name, (x, y)), Atom(edge.name, (y, z)))
    elif shape == "right":
        body = (Atom(edge.name, (x, y)), Atom(rel.name, (y, z)))
    else:
        body = (Atom(rel.name, (x, y)), Atom(rel.name, (y, z)))
    if draw(st.booleans()):
        body = body[::-1]
    return [base, Rule(Atom(rel.name, (x, z)), body)]


def _stratum_of(name: str, pool: list) -> int:
    for r in pool:
        if r.name == name:
            return r.stratum
    raise KeyError(name)


def shuffled_facts(rnd, ir: Program, duplicates: bool = False) -> dict:
    """The input facts with relations and facts in a random order.

    ``rnd`` is a ``random.Random``; with ``duplicates`` some facts are repeated
    (the facts of a relation are a set, so this must not change anything).
    """
    rels = list(ir.facts)
    rnd.shuffle(rels)
    out = {}
    for rel in rels:
        fs = list(ir.facts[rel])
        if duplicates and fs:
            fs += rnd.choices(fs, k=rnd.randint(0, 3))
        rnd.shuffle(fs)
        out[rel] = fs
    return out
