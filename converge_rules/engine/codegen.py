"""Join plans → Python functions.

Each agent gets one generated function per semi-naive version (which body
atom reads the delta, and which earlier atoms must exclude it). The code is
specialised once: literals in planned order, index lookups on bound
columns, relation objects bound as default arguments (locals), statically
typed arithmetic inline and helper calls only where semantics differ from
Python's. A match that is new writes ``fact -> proof record`` into the
agent's effect buffer; it never touches the context.
"""

from __future__ import annotations

from typing import Any, Callable

from ..compile.plan import AggStep, Assign, ColumnCheck, FailStep, Filter, NegCheck, Scan, Step, outside_map, plan_body
from ..compile.program import AgentDef, InvariantDef, Program
from ..compile.types import NUMERIC, comparable, expr_type
from ..diagnostics import Span
from ..syntax import ast
from . import runtime
from .store import Context

_MISSING = object()
NO_RESULT = object()  # an aggregate over an empty group with no value (min, max)
PENDING = object()    # a tool result not known yet: the match waits for the next tool round

_PY_CMP = {"=": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


class _Code:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 1

    def line(self, text: str) -> None:
        self.lines.append("    " * self.depth + text)

    def open(self, text: str) -> None:
        self.line(text)
        self.depth += 1


class RuleCode:
    """Generated evaluation code for one agent or invariant."""

    def __init__(self, rule: AgentDef | InvariantDef, program: Program, context: Context, *, invariant: bool = False,
                 tool_call: Callable[..., Any] | None = None, steps: list[int] | None = None,
                 confidence: dict[str, dict[tuple, float]] | None = None, alternatives: bool = False,
                 code_cache: dict[tuple[str, str], Any] | None = None):
        self.rule = rule
        self.code_cache = code_cache  # (source, name) -> code object, shared by the runs of one RuleSet
        self.alternatives = alternatives  # also record every other derivation of a known fact
        self.confidence = confidence  # per relation: fact -> confidence below 1 (None: no confidence in this job)
        self.tool_call = tool_call
        self.steps = steps  # [count, limit] when max_steps is set: every firing counts
        self.program = program
        self.context = context
        self.invariant = invariant
        self.memo = not invariant  # aggregates read complete relations: results never change
        self.spans: list[Span] = []
        self.heads: tuple[ast.Atom, ...] = () if isinstance(rule, InvariantDef) else rule.heads
        self.body = rule.body
        self.types = rule.var_types
        self.positive = [i for i, lit in enumerate(self.body) if isinstance(lit, ast.Atom)]
        self.aggregates = [i for i, lit in enumerate(self.body) if ast.aggregate_side(lit) is not None]
        # `v = @tool(...)` literals: their values join the proof record, after aggregate values
        self.tool_vars = [(i, lit.left.name) for i, lit in enumerate(self.body) if isinstance(lit, ast.Comparison)
                          and isinstance(lit.right, ast.ToolCall) and isinstance(lit.left, ast.Var)]
        self.outside = outside_map(self.body, self.heads)
        self.versions: dict[tuple[int | None, frozenset[int]], Callable[..., Any]] = {}
        self.continuations = 0
        self.agg_memos: dict[int, dict[Any, Any]] = {}
        self.sources: list[str] = []

    # -------------------------------------------------------------- versions
    def version(self, driver: int | None, mask: frozenset[int]) -> Callable[..., Any]:
        key = (driver, mask)
        fn = self.versions.get(key)
        if fn is None:
            fn = self._build(driver, mask)
            self.versions[key] = fn
        return fn

    def _build(self, driver: int | None, mask: frozenset[int]) -> Callable[..., Any]:
        steps, unsafe = plan_body(self.body, set(), driver, self.outside)
        assert not unsafe, unsafe
        self.ns: dict[str, Any] = dict(runtime.HELPERS)
        self.ns["_NONE"] = NO_RESULT
        self.ns["_MISS"] = _MISSING
        self.ns["_PENDING"] = PENDING
        self.ns["_tool"] = self.tool_call
        self.ns["_coerce"] = runtime.coerce
        self.ns["_S"] = self.steps
        self.ns["_steps_exceeded"] = runtime.steps_exceeded
        self.defaults: list[str] = []
        self.pre: list[str] = []
        code = _Code()
        for h in range(len(self.heads)):
            code.line(f"B{h} = B[{h}]")
            if self.confidence is not None:  # confidence buffers follow the fact buffers
                code.line(f"BC{h} = B[{len(self.heads) + h}]")
                code.line(f"BI{h} = B[{2 * len(self.heads) + h}]")
            if self.alternatives:  # then one buffer of other derivations per head
                width = 3 if self.confidence is not None else 1
                code.line(f"BA{h} = B[{width * len(self.heads) + h}]")
        for i in sorted(mask):
            code.line(f"X{i} = X[{i}]")
        self._steps(code, steps, "", mask, lambda: self._emit(code))
        params = ", ".join(["D", "X", "B", "C"] + [f"{d}={d}" for d in self.defaults])
        src = "\n".join(self.pre + [f"def _run({params}):"] + (code.lines or ["    pass"]) + ["    return None"])
        self.sources.append(src)
        name = f"<converge {self.rule.name} v{driver}>"
        compiled = self.code_cache.get((src, name)) if self.code_cache is not None else None
        if compiled is None:  # the source alone determines the code object; bound values live in self.ns
            compiled = compile(src, name, "exec")
            if self.code_cache is not None:
                self.code_cache[(src, name)] = compiled
        exec(compiled, self.ns)
        return self.ns["_run"]

    def _bind(self, name: str, value: Any) -> str:
        if name not in self.ns:
            self.ns[name] = value
            self.defaults.append(name)
        return name

    def sid(self, span: Span) -> int:
        self.spans.append(span)
        return len(self.spans) - 1

    # -------------------------------------------------------------- steps
    # CPython allows 20 statically nested loops per function; long bodies continue in a closure.
    LOOPS_PER_FUNCTION = 12

    def _steps(self, code: _Code, steps: list[Step] | tuple[Step, ...], pfx: str, mask: frozenset[int],
               tail: Callable[[], None], nonlocals: tuple[str, ...] = ()) -> None:
        """Emit the steps, then ``tail`` (what a full match does) at the innermost level."""
        bound: set[str] = set()
        hoisted: dict[int, str] = {}
        steps = list(steps)
        loops = 0
        for k, step in enumerate(steps):
            if isinstance(step, Scan) and loops >= self.LOOPS_PER_FUNCTION:
                self.continuations += 1
                name = f"_c{self.continuations}"
                level = code.depth
                code.line(f"def {name}():")  # a closure: it sees every variable bound so far
                code.depth += 1
                if nonlocals:
                    code.line(f"nonlocal {', '.join(nonlocals)}")
                self._steps(code, steps[k:], pfx, mask, tail, nonlocals)
                code.depth = level
                code.line(f"{name}()")
                return
            if isinstance(step, Scan):
                loops += 1
                # Loop-invariant index probes of later atoms move above this loop;
                # an empty probe means no match at all, so it also guards the loop.
                for later in steps[k + 1:]:
                    if (isinstance(later, Scan) and later.keys and later.lit not in hoisted
                            and len(later.keys) < len(later.atom.args)
                            and all(set(ast.expr_vars(e)) <= bound for _, e in later.keys)):
                        name = f"L{pfx}{later.lit}"
                        code.line(f"{name} = {self._probe(later)}")
                        code.open(f"if {name}:")
                        hoisted[later.lit] = name
                self._scan(code, step, pfx, mask, hoisted.get(step.lit))
                bound.update(v for _, v in step.binds)
            elif isinstance(step, ColumnCheck):
                code.open(f"if t{pfx}{step.lit}[{step.col}] == {self.expr(step.expr)}:")
            elif isinstance(step, Filter):
                code.open(f"if {self._condition(step.literal)}:")
            elif isinstance(step, Assign) and isinstance(step.expr, ast.ToolCall):
                args = "".join(self.expr(a) + ", " for a in step.expr.args)
                code.line(f"v_{step.var} = _tool({step.expr.tool!r}, ({args}), {self.sid(step.expr.span)})")
                code.open(f"if v_{step.var} is not _PENDING:")
                bound.add(step.var)
            elif isinstance(step, Assign):
                code.line(f"v_{step.var} = {self.expr(step.expr)}")
                bound.add(step.var)
            elif isinstance(step, NegCheck):
                self._neg(code, step, pfx)
            elif isinstance(step, FailStep):
                code.line(f"_type_error({self.sid(step.span)}, {('fail: ' + step.message)!r})")
            elif isinstance(step, AggStep):
                self._aggregate(code, step, pfx)
                if step.bind and isinstance(step.result, ast.Var):
                    bound.add(step.result.name)
        tail()

    def _probe(self, step: Scan) -> str:
        rel = self.context[step.atom.relation]
        cols = tuple(c for c, _ in step.keys)
        name = self._bind(f"I_{_ident(rel.name)}_{'_'.join(map(str, cols))}", rel.index(cols))
        key = self.expr(step.keys[0][1]) if len(cols) == 1 else "(" + ", ".join(self.expr(e) for _, e in step.keys) + ")"
        return f"{name}.get({key}, ())"

    def _scan(self, code: _Code, step: Scan, pfx: str, mask: frozenset[int], hoisted: str | None = None) -> None:
        rel = self.context[step.atom.relation]
        tv = f"t{pfx}{step.lit}"
        keys = list(step.keys)
        if hoisted is not None:
            code.open(f"for {tv} in {hoisted}:")
        elif step.driver:
            code.open(f"for {tv} in D:")
            for col, expr in keys:
                code.open(f"if {tv}[{col}] == {self.expr(expr)}:")
        elif keys and len(keys) == rel.arity:
            name = self._bind(f"T_{_ident(rel.name)}", rel.facts)
            values = ", ".join(self.expr(e) for _, e in keys)
            code.line(f"{tv} = ({values},)")
            code.open(f"if {tv} in {name}:")
        elif keys:
            code.open(f"for {tv} in {self._probe(step)}:")
        else:
            name = self._bind(f"O_{_ident(rel.name)}", rel.order)
            code.open(f"for {tv} in {name}:")
        if rel.key is not None and not (keys and len(keys) == rel.arity and hoisted is None and not step.driver):
            live = self._bind(f"T_{_ident(rel.name)}", rel.facts)
            code.open(f"if {tv} in {live}:")  # superseded facts stay in lists, not in the live set
        if step.lit in mask and not pfx:
            code.open(f"if {tv} not in X{step.lit}:")
        if len(step.binds) > 1 or (step.binds and rel.arity == 1):
            names = ["_"] * rel.arity  # unpacking beats one subscript per column
            for col, var in step.binds:
                names[col] = f"v_{var}"
            code.line(f"{', '.join(names)}{',' if rel.arity == 1 else ''} = {tv}")
        else:
            for col, var in step.binds:
                code.line(f"v_{var} = {tv}[{col}]")
        for col, other in step.equal:
            code.open(f"if {tv}[{col}] == {tv}[{other}]:")

    def _neg(self, code: _Code, step: NegCheck, pfx: str) -> None:
        rel = self.context[step.atom.relation]
        if len(step.keys) == rel.arity and rel.arity > 0:
            name = self._bind(f"T_{_ident(rel.name)}", rel.facts)
            code.open(f"if ({', '.join(self.expr(e) for _, e in step.keys)},) not in {name}:")
        elif step.keys:
            cols = tuple(c for c, _ in step.keys)
            name = self._bind(f"I_{_ident(rel.name)}_{'_'.join(map(str, cols))}", rel.index(cols))
            key = self.expr(step.keys[0][1]) if len(cols) == 1 else "(" + ", ".join(self.expr(e) for _, e in step.keys) + ")"
            if rel.key is not None:
                live = self._bind(f"T_{_ident(rel.name)}", rel.facts)
                code.open(f"if not any(t in {live} for t in {name}.get({key}, ())):")
            else:
                code.open(f"if {key} not in {name}:")
        else:
            name = self._bind(f"T_{_ident(rel.name)}", rel.facts)
            code.open(f"if not {name}:")

    def _aggregate(self, code: _Code, step: AggStep, pfx: str) -> None:
        agg = step.aggregate
        fname = f"A{pfx}{step.lit}"
        inner_pfx = f"{pfx}{step.lit}_"
        memo = self.agg_memos.setdefault(step.lit, {}) if self.memo else {}
        self._bind(f"M{pfx}{step.lit}", memo)
        # Generate the aggregate function into the namespace, with its own defaults.
        saved_defaults = self.defaults
        self.defaults = []
        inner = _Code()
        params = [f"g{k}" for k in range(len(step.group))]
        key = "()" if not params else (params[0] if len(params) == 1 else "(" + ", ".join(params) + ")")
        inner.line(f"k = {key}")
        if self.memo:
            inner.line(f"r = M{pfx}{step.lit}.get(k, _MISS)")
            inner.open("if r is not _MISS:")
            inner.line("return r")
            inner.depth -= 1
        for k, var in enumerate(step.group):
            inner.line(f"v_{var} = g{k}")
        value_type = self.types.get(agg.value.name) if agg.value is not None else "int"
        if agg.op == "count":
            inner.line("acc = 0")
        elif agg.op == "sum":
            inner.line("acc = 0.0" if value_type == "float" else "acc = 0")
        else:
            inner.line("acc = _MISS")
        depth = inner.depth

        def accumulate() -> None:
            if agg.op == "count":
                inner.line("acc += 1")
            elif agg.op == "sum":
                if value_type in NUMERIC:
                    inner.line(f"acc += v_{agg.value.name}")  # type: ignore[union-attr]
                else:
                    inner.line(f"_type_error({self.sid(agg.span)}, 'sum needs numbers, got {value_type}')")
            else:
                v = f"v_{agg.value.name}"  # type: ignore[union-attr]
                better = "<" if agg.op == "min" else ">"
                inner.open(f"if acc is _MISS or {v} {better} acc:")
                inner.line(f"acc = {v}")
                inner.depth -= 1

        self._steps(inner, step.inner, inner_pfx, frozenset(), accumulate, ("acc",))
        inner.depth = depth
        inner.line("r = _NONE if acc is _MISS else acc")
        if self.memo:
            inner.line(f"M{pfx}{step.lit}[k] = r")
        inner.line("return r")
        args = ", ".join(params + [f"{d}={d}" for d in self.defaults + [f'M{pfx}{step.lit}']])
        self.pre.append(f"def {fname}({args}):\n" + "\n".join(inner.lines))
        self.defaults = saved_defaults
        self.defaults.append(fname)  # defined by the generated source itself
        group = ", ".join(f"v_{g}" for g in step.group)
        code.line(f"r{pfx}{step.lit} = {fname}({group})")
        if step.bind:
            assert isinstance(step.result, ast.Var)
            code.open(f"if r{pfx}{step.lit} is not _NONE:")
            code.line(f"v_{step.result.name} = r{pfx}{step.lit}")
        else:
            other = self.expr(step.result)
            rtype = expr_type(agg, self.types)
            if not comparable("=", rtype, expr_type(step.result, self.types)):
                other = f"_type_error({self.sid(step.result.span)}, 'cannot compare {rtype} and {expr_type(step.result, self.types)}')"
            code.open(f"if r{pfx}{step.lit} is not _NONE and r{pfx}{step.lit} == {other}:")

    # -------------------------------------------------------------- emit
    def _emit(self, code: _Code) -> None:
        prem = [f"t{i}" for i in self.positive]
        extras = [f"r{i}" for i in self.aggregates] + [f"v_{var}" for _, var in self.tool_vars]
        if self.invariant:
            names = sorted(v for v in self.types)
            values = "".join(f"v_{v}, " for v in names)
            record = f"(({''.join(p + ', ' for p in prem)}), ({''.join(e + ', ' for e in extras)}), ({values}))"
            code.line(f"B.append({record})")
            return
        proof = ", ".join([str(self.rule.id), "C"] + prem + ([f"({', '.join(extras)},)"] if extras else []))
        if self.steps is not None:
            code.line("_S[0] += 1")
            code.open("if _S[0] > _S[1]:")
            code.line("_steps_exceeded()")
            code.depth -= 1
        for h, head in enumerate(self.heads):
            rel = self.program.relations[head.relation]
            self._bind(f"H{h}", self.context[head.relation].facts)
            values = []
            for arg, col in zip(head.args, rel.columns):
                text = self.expr(arg)
                typ = expr_type(arg, self.types)
                if col.type == "float" and typ == "int":
                    text = f"float({text})"
                if col.type == "float" and not isinstance(arg, (ast.Var, ast.Const)):
                    text = f"_finite({text}, {self.sid(arg.span)})"
                if typ is None and not isinstance(arg, ast.Const):  # a tool's value: checked when it arrives
                    text = f"_coerce({text}, {col.type!r}, {self.sid(arg.span)})"
                values.append(text)
            fact = "(" + "".join(v + ", " for v in values) + ")"
            same = self._same_tuple(head)
            code.line(f"f = {same if same is not None else fact}")
            if self.confidence is None:
                code.open(f"if f not in H{h} and f not in B{h}:")
                code.line(f"B{h}[f] = ({proof},)")
                code.depth -= 1
                if self.alternatives:
                    code.open("else:")
                    code.line(f"BA{h}.setdefault(f, []).append(({proof},))")
                    code.depth -= 1
                continue
            # derived confidence = agent weight x the weakest premise; a fact keeps its best
            weight = getattr(self.rule, "confidence", 1.0)
            premises = []
            for i in self.positive:
                name = self._bind(f"CF_{_ident(self.body[i].relation)}", self.confidence.setdefault(self.body[i].relation, {}))  # type: ignore[union-attr]
                premises.append(f"{name}.get(t{i}, 1.0)")
            conf = f"{weight!r} * min({', '.join(premises)})" if len(premises) > 1 else (f"{weight!r} * {premises[0]}" if premises else repr(weight))
            head_conf = self._bind(f"CF_{_ident(head.relation)}", self.confidence.setdefault(head.relation, {}))
            code.line(f"c = {conf}")
            code.open(f"if f not in H{h}:")
            code.open(f"if f not in B{h} or c > BC{h}[f]:")
            code.line(f"B{h}[f] = ({proof},)")
            code.line(f"BC{h}[f] = c")
            code.depth -= 2
            code.open(f"elif c > {head_conf}.get(f, 1.0) and c > BI{h}.get(f, (0.0,))[0]:")
            code.line(f"BI{h}[f] = (c, ({proof},))")
            code.depth -= 1

    def _same_tuple(self, head: ast.Atom) -> str | None:
        """A scanned tuple that equals the emitted fact (same variables, same order, same
        column types), so the fact can reuse it instead of building a new tuple."""
        if not head.args or not all(isinstance(a, ast.Var) for a in head.args):
            return None
        names = [a.name for a in head.args]  # type: ignore[union-attr]
        head_types = [c.type for c in self.program.relations[head.relation].columns]
        for i in self.positive:
            atom = self.body[i]
            assert isinstance(atom, ast.Atom)
            if [a.name if isinstance(a, ast.Var) else None for a in atom.args] == names \
                    and [c.type for c in self.program.relations[atom.relation].columns] == head_types:
                return f"t{i}"
        return None

    # -------------------------------------------------------------- expressions
    def _condition(self, lit: ast.Literal) -> str:
        if isinstance(lit, ast.Condition):
            text = self.expr(lit.call)
            return f"not ({text})" if lit.negated else text
        assert isinstance(lit, ast.Comparison)
        lt, rt = expr_type(lit.left, self.types), expr_type(lit.right, self.types)
        if not comparable(lit.op, lt, rt):
            if lt is not None and rt is not None:
                return f"_type_error({self.sid(lit.span)}, 'cannot compare {lt} and {rt}')"
        return f"({self.expr(lit.left)}) {_PY_CMP[lit.op]} ({self.expr(lit.right)})"

    def expr(self, e: ast.Expr) -> str:
        if isinstance(e, ast.Const):
            return repr(e.value)
        if isinstance(e, ast.Var):
            return f"v_{e.name}"
        if isinstance(e, ast.Neg):
            t = expr_type(e.operand, self.types)
            if t in NUMERIC:
                return f"(-{self.expr(e.operand)})"
            return f"_type_error({self.sid(e.span)}, {f'cannot negate {t}'!r})"
        if isinstance(e, ast.BinOp):
            lt, rt = expr_type(e.left, self.types), expr_type(e.right, self.types)
            a, b = self.expr(e.left), self.expr(e.right)
            if e.op == "++":
                if lt == rt == "str":
                    return f"({a} + {b})"
                return f"_type_error({self.sid(e.span)}, {f'cannot concatenate {lt} and {rt} with ++ (use to_str)'!r})"
            if lt in NUMERIC and rt in NUMERIC:
                if e.op == "/":
                    return f"_div({a}, {b}, {self.sid(e.span)})"
                if e.op == "%":
                    return f"_mod({a}, {b}, {self.sid(e.span)})"
                return f"({a} {e.op} {b})"
            return f"_type_error({self.sid(e.span)}, {f'cannot apply {e.op} to {lt} and {rt}'!r})"
        if isinstance(e, ast.Call):
            args = [self.expr(a) for a in e.args]
            if expr_type(e, self.types) is None:
                types = ", ".join(str(expr_type(a, self.types)) for a in e.args)
                return f"_type_error({self.sid(e.span)}, {f'{e.func}() does not take ({types})'!r})"
            f = e.func
            if f == "len":
                return f"len({args[0]})"
            if f in ("lower", "upper"):
                return f"{args[0]}.{f}()"
            if f == "contains":
                return f"({args[1]} in {args[0]})"
            if f in ("startswith", "endswith"):
                return f"{args[0]}.{f}({args[1]})"
            if f == "substr":
                return f"_substr({args[0]}, {args[1]}, {args[2]}, {self.sid(e.span)})"
            if f == "to_str":
                return f"_to_str({args[0]})"
            if f in ("to_int", "to_float"):
                return f"_{f}({args[0]}, {self.sid(e.span)})"
            if f in ("min", "max") and expr_type(e, self.types) == "float":
                args = [f"float({a})" for a in args]
            return f"{f}({', '.join(args)})"  # abs, min, max
        return f"_type_error({self.sid(getattr(e, 'span', self.rule.span))}, 'unsupported expression')"


def _ident(name: str) -> str:
    return name.replace(".", "__")
