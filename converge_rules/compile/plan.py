"""Join planning: an ordered list of steps for a rule body.

Body order carries no meaning, so the planner chooses: the driving atom
first (the one reading new facts in a semi-naive version); then, after every
step that binds, each filter whose variables are bound (guards that cannot
raise first), then one assignment, aggregate or tool call (those that cannot
raise first; one that can raise waits for the joins unless an atom needs its
value); otherwise the next atom to join: bound columns first, then the
smaller relation (when sizes are known), then body order. With reductions on,
an atom that binds nothing needed elsewhere is an existence check and a scan
keeps one tuple per distinct needed binding. The same procedure decides
safety: a literal that never becomes ready holds an unsafe variable.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Mapping, Union

from .._frozen import frozen
from ..diagnostics import Span
from ..catalogue import FUNCTIONS
from ..syntax import ast
from .types import operation


@frozen
class Scan:
    """Iterate the facts of a positive atom matching the bound columns (or,
    as an existence check, find the first one)."""

    lit: int
    atom: ast.Atom
    keys: tuple[tuple[int, ast.Expr], ...]   # (column, expression giving its value)
    binds: tuple[tuple[int, str], ...]       # (column, variable) first bound here
    equal: tuple[tuple[int, int], ...]       # (column, earlier column) for a variable repeated in the atom
    driver: bool = False
    exists: bool = False                     # stop at the first match: nothing it binds is needed later
    distinct: tuple[int, ...] | None = None  # keep one tuple per distinct value of these columns


@frozen
class ColumnCheck:
    """A driving atom's column holding an expression computable only later."""

    lit: int
    col: int
    expr: ast.Expr


@frozen
class Filter:
    lit: int
    literal: ast.Literal  # Comparison or Condition


@frozen
class Assign:
    lit: int
    var: str
    expr: ast.Expr


@frozen
class NegCheck:
    lit: int
    atom: ast.Atom
    keys: tuple[tuple[int, ast.Expr], ...]   # columns that are not `_`


@frozen
class AggStep:
    lit: int
    aggregate: ast.Aggregate
    result: ast.Expr      # a Var to bind (bind=True) or an expression to compare with
    bind: bool
    group: tuple[str, ...]
    inner: tuple["Step", ...]


@frozen
class FailStep:
    """``fail "message"``: reached by a full match of the rest of the body."""

    lit: int
    message: str
    span: Span


Step = Union[Scan, ColumnCheck, Filter, Assign, NegCheck, AggStep, FailStep]


@frozen
class Unsafe:
    var: str
    span: Span


def _vars(expr: ast.Expr) -> set[str]:
    return set(ast.expr_vars(expr))


def aggregate_vars(agg: ast.Aggregate) -> set[str]:
    out: set[str] = set()
    for lit in agg.body:
        out.update(ast.literal_vars(lit))
    if agg.value is not None:
        out.add(agg.value.name)
    return out


def literal_vars_deep(lit: ast.Literal) -> set[str]:
    """Every variable a literal mentions, aggregate bodies included."""
    if isinstance(lit, ast.Comparison):
        side = ast.aggregate_side(lit)
        if side is not None:
            return aggregate_vars(side[0]) | _vars(side[1])
    return set(ast.literal_vars(lit))


def group_vars(agg: ast.Aggregate, outside: set[str]) -> tuple[str, ...]:
    return tuple(sorted(aggregate_vars(agg) & outside))


# The most literals one body may hold (a located E406 from `check`): planning and
# code generation stay near-linear below it.
MAX_BODY_LITERALS = 2000

# Builtins that never raise on well-typed arguments (the others, `/`, `%` and
# tool calls can fail, so guards run before them).
# Whether each catalogue operator or builtin may raise for some argument types (float overflow, division, ...).
_MAY_FAIL = {key: function.can_fail() for key, function in FUNCTIONS.items()}


def expr_can_raise(expr: ast.Expr) -> bool:
    """Whether evaluating an expression can fail at run time (as the catalogue says, or a tool)."""
    if isinstance(expr, ast.ToolCall):
        return True
    op = operation(expr)
    if op is None:
        return False
    key, args = op
    return _MAY_FAIL.get(key, True) or any(expr_can_raise(a) for a in args)


def literal_can_raise(lit: ast.Literal) -> bool:
    if isinstance(lit, ast.Atom):
        return any(expr_can_raise(a) for a in lit.args)
    if isinstance(lit, ast.Negation):
        return any(expr_can_raise(a) for a in lit.atom.args)
    if isinstance(lit, ast.Condition):
        return expr_can_raise(lit.call)
    if isinstance(lit, ast.Comparison):
        side = ast.aggregate_side(lit)
        if side is not None:
            return expr_can_raise(side[1])
        return expr_can_raise(lit.left) or expr_can_raise(lit.right)
    return False


def plan_body(body: tuple[ast.Literal, ...], bound: set[str], driver: int | None,
              outside: "Outside | dict[int, set[str]]", *, needed: set[str] | None = None,
              sizes: Mapping[str, int] | None = None) -> tuple[list[Step], list[Unsafe]]:
    """Plan a body. ``outside[i]``: variables used outside literal i (for aggregates' grouping).

    Guards first: after every binding step, each filter whose variables are
    bound is placed (those that cannot raise first), before any assignment,
    aggregate or tool call; assignments that cannot raise go before those that
    can. ``needed`` (the head's variables) turns on the reductions: an atom
    that binds no variable needed elsewhere is an existence check, and a scan
    keeps one tuple per distinct needed binding. ``sizes`` (facts per
    relation) orders the joins: bound columns first, then the smaller
    relation, then body order."""
    bound = set(bound)
    steps: list[Step] = []
    reduce = needed is not None
    deep = [literal_vars_deep(lit) for lit in body]
    mentions: dict[str, int] = {}
    for vs in deep:
        for v in vs:
            mentions[v] = mentions.get(v, 0) + 1
    head_needed = needed or set()

    def needed_elsewhere(v: str, i: int) -> bool:
        return v in head_needed or mentions.get(v, 0) - (1 if v in deep[i] else 0) > 0

    remaining = [i for i in range(len(body)) if i != driver]
    fails = [i for i in remaining if isinstance(body[i], ast.Fail)]
    remaining = [i for i in remaining if i not in fails]
    raising = {i: literal_can_raise(body[i]) for i in remaining}
    aggs = {i for i in remaining if ast.aggregate_side(body[i]) is not None}
    flat = {i: set(ast.literal_vars(body[i])) for i in remaining if i not in aggs}
    agg_cache: dict[int, Any] = {}
    pending: list[tuple[int, int, ast.Expr]] = []
    # Who may bind a variable with `=`: a tool call binds its own variable; a variable
    # that a positive atom binds is bound by that atom, so `x = e` on it is a test
    # (language.md, "Comparisons and binding"): binding it from `e` first would give it
    # e's value and type (`p = 5` over a float column is a test, by value, not an int).
    # Only when no atom can be joined otherwise (`e(y * 2, x), x = 3, y = x`) may an
    # equality bind an atom's variable, the atom then testing it.
    tools = tool_bindings(body)
    strict = dict(tools)
    for lit in body:
        if isinstance(lit, ast.Atom):
            for arg in lit.args:
                if isinstance(arg, ast.Var):
                    strict.setdefault(arg.name, -1)
    # When several `x = e` could bind the same x, one binds it and the others test it: one
    # whose e is a constant (`x = 2.0`, `x = -1`), then one whose e only uses variables that
    # positive atoms or tool calls bind (not other `=`), otherwise the first written
    # (language.md, "Comparisons and binding"). Decided here from the body,
    # not by which becomes ready first: the type checker plans without a driver atom and
    # each semi-naive version with one, and all must give x the same value and type.
    candidates: dict[str, list[tuple[bool, int, set[str]]]] = {}
    for i, lit in enumerate(body):
        if not isinstance(lit, ast.Comparison) or lit.op != "=":
            continue
        for side, other in ((lit.left, lit.right), (lit.right, lit.left)):
            if isinstance(side, ast.Var) and side.name not in strict and side.name not in _vars(other):
                rank = 0 if isinstance(other, ast.Const) else 1 if _vars(other) <= strict.keys() else 2
                candidates.setdefault(side.name, []).append((rank, i, _vars(other)))
    for var, found in candidates.items():
        # `y = x` cannot bind x when nothing else can bind y
        found = [c for c in found if all(y in strict or any(j != c[1] for _k, j, _o in candidates.get(y, ()))
                                         for y in c[2])]
        if len(found) > 1:
            strict[var] = min(found)[:2][1]
    reserved = strict

    def exists_step(i: int, atom: ast.Atom, is_driver: bool) -> Scan | None:
        """The atom as an existence check, when it binds nothing needed elsewhere."""
        if not reduce:
            return None
        for arg in atom.args:
            if isinstance(arg, ast.Var):
                if arg.name not in bound and needed_elsewhere(arg.name, i):
                    return None
            elif not isinstance(arg, (ast.Wildcard, ast.Const)) and not _vars(arg) <= bound:
                return None
        scan = _scan(i, atom, set(bound), is_driver)
        return Scan(scan.lit, scan.atom, scan.keys, (), scan.equal, is_driver, exists=True)

    if driver is not None:
        atom = body[driver]
        assert isinstance(atom, ast.Atom)
        step = exists_step(driver, atom, True)
        if step is not None:
            steps.append(step)
        else:
            before = set(bound)
            scan = _scan(driver, atom, bound, True)
            now = tuple((c, e) for c, e in scan.keys if _vars(e) <= before)
            pending = [(driver, c, e) for c, e in scan.keys if not _vars(e) <= before]
            steps.append(Scan(scan.lit, scan.atom, now, scan.binds, scan.equal, True))
    # Incremental bookkeeping: a literal's readiness and an atom's score change
    # only when one of its variables becomes bound, so only those are re-examined.
    left = set(remaining)
    watch: dict[str, list[int]] = {}
    for i in remaining:
        for v in deep[i]:
            watch.setdefault(v, []).append(i)
    dirty = set(remaining)
    ready: set[int] = set()
    scores: dict[int, tuple | None] = {}
    seen_bound = set(bound)

    def refresh() -> None:
        """Re-examine the literals whose variables were bound since the last look."""
        new = bound - seen_bound
        seen_bound.update(new)
        for v in new:
            dirty.update(watch.get(v, ()))
        for i in dirty:
            if i not in left:
                continue
            lit = body[i]
            if isinstance(lit, ast.Atom):
                if exists_step(i, lit, False) is not None:
                    ready.add(i)
                    scores[i] = None
                elif _atom_usable(lit, bound):
                    k = sum(1 for a in lit.args if not isinstance(a, ast.Wildcard) and _vars(a) <= bound)
                    size = sizes.get(lit.relation, 0) if sizes is not None else 0
                    scores[i] = (-k, i) if sizes is None else (k == 0, size // (8 ** k), -k, i)
                else:
                    scores[i] = None
            elif _ready(i, lit, set(bound), outside.get(i, set()), agg_cache, reserved) is not None:
                ready.add(i)
        dirty.clear()

    while left or pending:
        while True:
            refresh()
            # 1. every filter whose variables are bound: the ones that cannot raise first
            for item in list(pending):
                if _vars(item[2]) <= bound:
                    steps.append(ColumnCheck(*item))
                    pending.remove(item)
            for want_raise in (False, True):
                for i in sorted(ready):
                    if raising[i] != want_raise:
                        continue
                    lit = body[i]
                    if isinstance(lit, ast.Atom):
                        step = exists_step(i, lit, False)
                    elif i not in aggs and flat[i] <= bound:
                        step = _ready(i, lit, bound, outside.get(i, set()), agg_cache, reserved)
                    else:
                        continue
                    if step is not None:
                        steps.append(step)
                        left.discard(i)
                        ready.discard(i)
            # 2. one assignment, aggregate or tool call (those that cannot raise first;
            #    one that can raise waits until the atoms are joined, since a later
            #    guard may reject the binding, unless an atom needs its value)
            #    Of those that can raise, one whose value a guard needs goes first, so that
            #    the guard runs before the others and rejects what it rejects (language.md,
            #    "Guards run first"): `not e2(z), y = to_int(s), z = x % 3` evaluates z, then
            #    the negation, then to_int.
            chosen = None
            scannable = any(sc is not None and j in left for j, sc in scores.items())
            for want_raise in (False, True):
                order = sorted(ready)
                if want_raise and sum(1 for i in order if raising[i] and not isinstance(body[i], ast.Atom)) > 1:
                    guarded = _guard_inputs(body, left, bound, reserved)
                    order.sort(key=lambda i: not (_binds(body[i], bound, reserved, i) & guarded))
                for i in order:
                    if raising[i] != want_raise or isinstance(body[i], ast.Atom):
                        continue
                    if want_raise and scannable and not _feeds_atom(body[i], body, left, bound):
                        continue
                    step = _ready(i, body[i], bound, outside.get(i, set()), agg_cache, reserved)
                    if step is not None:
                        chosen = (i, step)
                        break
                if chosen is not None:
                    break
            if chosen is None and not scannable and reserved is strict and left:
                reserved = tools  # stuck: let an equality bind an atom's variable after all
                dirty.update(left)
                continue
            if chosen is None:
                break
            steps.append(chosen[1])
            left.discard(chosen[0])
            ready.discard(chosen[0])
        best: tuple[tuple, int] | None = None
        for i, score in scores.items():
            if score is not None and i in left and (best is None or score < best[0]):
                best = (score, i)
        if best is None:
            break
        atom = body[best[1]]
        assert isinstance(atom, ast.Atom)
        before = set(bound)
        scan = _scan(best[1], atom, bound, False)
        now = tuple((c, e) for c, e in scan.keys if _vars(e) <= before)
        pending += [(best[1], c, e) for c, e in scan.keys if not _vars(e) <= before]
        steps.append(Scan(scan.lit, scan.atom, now, scan.binds, scan.equal, False))
        left.discard(best[1])
        scores.pop(best[1], None)
    remaining = sorted(left)
    if not remaining and not pending:
        for i in fails:
            lit = body[i]
            assert isinstance(lit, ast.Fail)
            steps.append(FailStep(i, lit.message, lit.span))
    if reduce:
        steps = _project(steps, needed_elsewhere)
    unsafe: list[Unsafe] = []
    for lit_index, _col, expr in pending:
        for var in ast.expr_vars(expr):
            if var not in bound:
                unsafe.append(Unsafe(var, expr.span))
                break
    for i in remaining:
        lit = body[i]
        spans = _var_spans(lit)
        side = ast.aggregate_side(lit)
        if side is not None:  # an unbound group variable is the cause: `n = count {...}` waits for it
            group = aggregate_vars(side[0]) & outside.get(i, set())
            spans.sort(key=lambda vs: vs[0] not in group)
        for var, span in spans:
            if var not in bound and (var, span) not in unsafe:
                if side is not None:
                    agg = side[0]
                    if agg.value is not None and var == agg.value.name:
                        unsafe.append(Unsafe(var, span))  # the aggregated value is never bound
                        break
                    if var in aggregate_vars(agg) and var not in outside.get(i, set()):
                        continue  # a variable local to the aggregate
                unsafe.append(Unsafe(var, span))
                break
        else:
            unsafe.append(Unsafe("", lit.span))
    return steps, unsafe


def _binds(lit: ast.Literal, bound: set[str], reserved: Mapping[str, int], i: int) -> set[str]:
    """The variables an `=` literal (body[i]) would bind: its unbound bare-variable sides
    that no other literal is to bind (``reserved``: variable -> the literal that binds it)."""
    if not isinstance(lit, ast.Comparison) or lit.op != "=":
        return set()
    return {e.name for e in (lit.left, lit.right)
            if isinstance(e, ast.Var) and e.name not in bound and reserved.get(e.name, i) == i}


def _guard_inputs(body: tuple[ast.Literal, ...], left: set[int], bound: set[str],
                  reserved: Mapping[str, int]) -> set[str]:
    """Unbound variables that a filter still to place needs, directly or through the
    `x = expr` bindings still to place that compute them. An `x = expr` that is not to
    bind x (another literal binds it) is a filter."""
    need: set[str] = set()
    binders: list[tuple[set[str], set[str]]] = []
    for j in left:
        lit = body[j]
        if isinstance(lit, (ast.Negation, ast.Condition)):
            need |= set(ast.literal_vars(lit)) - bound
        elif isinstance(lit, ast.Comparison) and ast.aggregate_side(lit) is None:
            targets = _binds(lit, bound, reserved, j)
            if lit.op != "=" or not targets:
                need |= (_vars(lit.left) | _vars(lit.right)) - bound
            else:
                binders.append((targets, (_vars(lit.left) | _vars(lit.right)) - targets - bound))
    grew = True
    while grew:
        grew = False
        for targets, inputs in binders:
            if targets & need and not inputs <= need:
                need |= inputs
                grew = True
    return need


def _feeds_atom(lit: ast.Literal, body: tuple[ast.Literal, ...], left: set[int], bound: set[str]) -> bool:
    """Whether the variable a (binding) literal would bind appears in an atom still to join."""
    if not isinstance(lit, ast.Comparison):
        return True
    targets = {e.name for e in (lit.left, lit.right) if isinstance(e, ast.Var) and e.name not in bound}
    if not targets:
        return True
    return any(isinstance(body[j], ast.Atom) and targets & set(ast.literal_vars(body[j])) for j in left)


def _project(steps: list[Step], needed_elsewhere: Callable[[str, int], bool]) -> list[Step]:
    """A scan followed by another scan keeps one tuple per distinct binding of
    the variables that something else needs (its other columns are projected away)."""
    out: list[Step] = []
    last = max((k for k, s in enumerate(steps) if isinstance(s, Scan) and not s.exists), default=-1)
    # a scan whose column is checked later (`e(abs(x), y)` scanned before x is bound) keeps
    # every tuple: projecting it would keep one column value per binding and lose the others
    checked = {s.lit for s in steps if isinstance(s, ColumnCheck)}
    for k, step in enumerate(steps):
        if isinstance(step, Scan) and not step.exists and step.binds and k < last and step.lit not in checked:
            keep = tuple(c for c, v in step.binds if needed_elsewhere(v, step.lit))
            if len(keep) < len(step.binds):
                step = replace(step, distinct=keep)
        out.append(step)
    return out


def _atom_usable(atom: ast.Atom, bound: set[str]) -> bool:
    """An atom can be scanned when its complex arguments are computable from
    variables bound before it or by its own plain-variable columns."""
    own = bound | {a.name for a in atom.args if isinstance(a, ast.Var)}
    for arg in atom.args:
        if not isinstance(arg, (ast.Var, ast.Wildcard, ast.Const)) and not _vars(arg) <= own:
            return False
    return True


def _scan(lit: int, atom: ast.Atom, bound: set[str], driver: bool) -> Scan:
    keys: list[tuple[int, ast.Expr]] = []
    binds: list[tuple[int, str]] = []
    equal: list[tuple[int, int]] = []
    first_col: dict[str, int] = {}
    for col, arg in enumerate(atom.args):
        if isinstance(arg, ast.Wildcard):
            continue
        if isinstance(arg, ast.Var) and arg.name not in bound:
            if arg.name in first_col:
                equal.append((col, first_col[arg.name]))
            else:
                first_col[arg.name] = col
                binds.append((col, arg.name))
            continue
        keys.append((col, arg))
    bound.update(v for _, v in binds)
    return Scan(lit, atom, tuple(keys), tuple(binds), tuple(equal), driver)


def tool_bindings(body: tuple[ast.Literal, ...]) -> dict[str, int]:
    """Per variable bound by a tool call (`v = @tool(...)`), the first literal that binds it.

    A tool call can only bind its variable (code calls the tool in an
    assignment, never in a filter), so no other literal may bind it: another
    `v = expr` waits and tests the tool's value (`checks` reports a second
    tool call binding the same variable, E221)."""
    out: dict[str, int] = {}
    for i, lit in enumerate(body):
        if (isinstance(lit, ast.Comparison) and lit.op == "=" and isinstance(lit.left, ast.Var)
                and isinstance(lit.right, ast.ToolCall)):
            out.setdefault(lit.left.name, i)
    return out


def _ready(i: int, lit: ast.Literal, bound: set[str], outside: set[str], cache: dict[int, Any] | None = None,
           tools: Mapping[str, int] | None = None) -> Step | None:
    """The step literal i becomes with these variables bound (binding some when it can), or None.

    ``tools``: variables that only their tool call may bind (see :func:`tool_bindings`)."""
    reserved = tools or {}

    def may_bind(var: str) -> bool:
        return reserved.get(var, i) == i

    if isinstance(lit, ast.Atom):
        return None
    if isinstance(lit, ast.Negation):
        if set(ast.literal_vars(lit)) <= bound:
            keys = tuple((c, a) for c, a in enumerate(lit.atom.args) if not isinstance(a, ast.Wildcard))
            return NegCheck(i, lit.atom, keys)
        return None
    if isinstance(lit, ast.Condition):
        return Filter(i, lit) if _vars(lit.call) <= bound else None
    side = ast.aggregate_side(lit)
    if side is not None:
        agg, other = side
        group = group_vars(agg, outside)
        if not set(group) <= bound:
            return None
        planned = cache.get(i) if cache is not None else None
        if planned is None:
            inner_outside = {j: set(group) | _others(agg.body, j) for j in range(len(agg.body))}
            planned = plan_body(agg.body, set(group), None, inner_outside)
            if cache is not None:
                cache[i] = planned
        inner, unsafe = planned
        if unsafe or (agg.value is not None and agg.value.name not in _bound_by(inner) | set(group)):
            return None
        if isinstance(other, ast.Var) and other.name not in bound:
            if not may_bind(other.name):
                return None
            bound.add(other.name)
            return AggStep(i, agg, other, True, group, tuple(inner))
        if _vars(other) <= bound:
            return AggStep(i, agg, other, False, group, tuple(inner))
        return None
    left, right = _vars(lit.left), _vars(lit.right)
    if left <= bound and right <= bound:
        return Filter(i, lit)
    if lit.op == "=":
        if isinstance(lit.left, ast.Var) and lit.left.name not in bound and right <= bound and may_bind(lit.left.name):
            bound.add(lit.left.name)
            return Assign(i, lit.left.name, lit.right)
        if isinstance(lit.right, ast.Var) and lit.right.name not in bound and left <= bound and may_bind(lit.right.name):
            bound.add(lit.right.name)
            return Assign(i, lit.right.name, lit.left)
    return None


def _bound_by(steps: list[Step]) -> set[str]:
    out: set[str] = set()
    for step in steps:
        if isinstance(step, Scan):
            out.update(v for _, v in step.binds)
        elif isinstance(step, Assign):
            out.add(step.var)
        elif isinstance(step, AggStep) and step.bind and isinstance(step.result, ast.Var):
            out.add(step.result.name)
    return out


def _others(body: tuple[ast.Literal, ...], j: int) -> set[str]:
    out: set[str] = set()
    for k, lit in enumerate(body):
        if k != j:
            out |= literal_vars_deep(lit)
    return out


def _var_spans(lit: ast.Literal) -> list[tuple[str, Span]]:
    out: list[tuple[str, Span]] = []

    def walk(e: ast.Expr) -> None:
        if isinstance(e, ast.Var):
            out.append((e.name, e.span))
        elif isinstance(e, ast.BinOp):
            walk(e.left)
            walk(e.right)
        elif isinstance(e, ast.Neg):
            walk(e.operand)
        elif isinstance(e, (ast.Call, ast.ToolCall)):
            for a in e.args:
                walk(a)
        elif isinstance(e, ast.Aggregate):
            if e.value is not None:
                walk(e.value)
            for sub in e.body:
                out.extend(_var_spans(sub))

    for e in ast.literal_exprs(lit):
        walk(e)
    return out


class Outside:
    """For each literal, the variables used elsewhere in the rule (computed on
    first use from occurrence counts: linear in the body, not quadratic).

    Another aggregate's body does not count: its variables are local to it,
    so two aggregates may both use ``a`` without grouping each other."""

    def __init__(self, body: tuple[ast.Literal, ...], heads: tuple[ast.Atom, ...]):
        self.body = body
        self.head_vars: set[str] = set()
        for h in heads:
            self.head_vars.update(ast.literal_vars(h))
        self.own: list[set[str]] = []
        for lit in body:
            side = ast.aggregate_side(lit)
            self.own.append(_vars(side[1]) if side is not None else literal_vars_deep(lit))
        self.count: dict[str, int] = {}
        for vs in self.own:
            for v in vs:
                self.count[v] = self.count.get(v, 0) + 1
        self.cache: dict[int, set[str]] = {}

    def __getitem__(self, i: int) -> set[str]:
        out = self.cache.get(i)
        if out is None:
            mine = self.own[i]
            out = set(self.head_vars) | {v for v, n in self.count.items() if n - (v in mine) > 0}
            if ast.aggregate_side(self.body[i]) is not None:
                out |= mine
            self.cache[i] = out
        return out

    def get(self, i: int, default: set[str] | None = None) -> set[str]:
        return self[i] if 0 <= i < len(self.body) else (default if default is not None else set())


def outside_map(body: tuple[ast.Literal, ...], heads: tuple[ast.Atom, ...]) -> "Outside":
    """For each literal, the variables used elsewhere in the rule (see ``Outside``)."""
    return Outside(body, heads)
