"""Static checks on a resolved program: arity, types, wildcards, aggregates,
safety, writes into input relations. Each check reports Diagnostics with
stable codes; none of them evaluates anything."""

from __future__ import annotations

from dataclasses import replace
from typing import Iterator

from ..diagnostics import Diagnostic, Span
from ..syntax import ast
from ..values import format_value
from .plan import MAX_BODY_LITERALS, AggStep, Assign, Scan, outside_map, plan_body
from .program import Program
from ..catalogue import AGGREGATES, COMPARISONS, FUNCTIONS
from .types import BUILTINS, assignable, comparable, const_type, expr_type, operation, type_error


def check_program(program: Program) -> tuple[Program, list[Diagnostic]]:
    """Run every check; returns the program annotated with variable types."""
    diags: list[Diagnostic] = []
    agents = []
    for rule in (*program.agents, *program.invariants):
        if len(rule.body) > MAX_BODY_LITERALS:
            diags.append(Diagnostic("E406", f"{rule.name!r} has {len(rule.body)} body literals; the limit is {MAX_BODY_LITERALS}",
                                    rule.span, "error", ("split it: derive a helper relation from part of the body",)))
    if diags:
        return program, diags
    for agent in program.agents:
        diags.extend(_check_rule(program, agent.body, agent.heads, agent.name))
        for head in agent.heads:
            rel = program.relations.get(head.relation)
            if rel is not None and rel.is_input:
                diags.append(Diagnostic("E403", f"agent {agent.name!r} emits into input relation {rel.name!r}; input relations are filled by facts only",
                                        head.span, "error", (f"declared input at {rel.span}",)))
        types, tdiags = infer_types(program, agent.body, agent.heads)
        diags.extend(tdiags)
        agents.append(replace(agent, var_types=types))
    invariants = []
    for inv in program.invariants:
        diags.extend(_check_rule(program, inv.body, (), inv.name))
        types, tdiags = infer_types(program, inv.body, ())
        diags.extend(tdiags)
        invariants.append(replace(inv, var_types=types))
    return replace(program, agents=tuple(agents), invariants=tuple(invariants)), diags


def _atoms(body: tuple[ast.Literal, ...]) -> Iterator[tuple[ast.Atom, bool]]:
    """Every atom of a body (positive or negated), aggregate bodies included."""
    for lit in body:
        if isinstance(lit, ast.Atom):
            yield lit, False
        elif isinstance(lit, ast.Negation):
            yield lit.atom, True
        elif isinstance(lit, ast.Comparison):
            for side in (lit.left, lit.right):
                if isinstance(side, ast.Aggregate):
                    yield from _atoms(side.body)


_exprs = ast.sub_exprs


def _fits_float(value: object) -> bool:
    """Whether a constant stored in, or looked up in, a float column widens (as a fact's does)."""
    if type(value) is not int:
        return True
    try:
        float(value)
    except OverflowError:
        return False
    return True


def _check_rule(program: Program, body: tuple[ast.Literal, ...], heads: tuple[ast.Atom, ...], name: str) -> list[Diagnostic]:
    diags: list[Diagnostic] = []

    def err(code: str, msg: str, span: Span, *notes: str) -> None:
        diags.append(Diagnostic(code, msg, span, "error", tuple(notes)))

    def check_atom(atom: ast.Atom, where: str) -> None:
        rel = program.relations.get(atom.relation)
        if rel is None:
            return  # reported by resolution
        if len(atom.args) != rel.arity:
            cols = ", ".join(f"{c.name}: {c.type}" for c in rel.columns)
            err("E300", f"{rel.name} has {rel.arity} column(s), {where} gives {len(atom.args)}", atom.span,
                f"declared as {rel.name}({cols}) at {rel.span}")
            return
        for arg, col in zip(atom.args, rel.columns):
            if where == "emit" and isinstance(arg, ast.Wildcard):
                err("E401", "`_` cannot stand in an emitted fact; every column needs a value", arg.span)
            if isinstance(arg, ast.Const) and not assignable(col.type, const_type(arg.value)):
                err("E301", f"column {col.name!r} of {rel.name} is {col.type}, got {const_type(arg.value)} constant {format_value(arg.value)}",
                    arg.span)
            elif isinstance(arg, ast.Const) and col.type == "float" and not _fits_float(arg.value):
                err("E301", f"column {col.name!r} of {rel.name} is float, and this int is too large for a float", arg.span)
            for sub in _exprs(arg) if not isinstance(arg, ast.Wildcard) else ():
                check_expr(sub, top=sub is arg)

    positive_vars = {v for lit in body if isinstance(lit, ast.Atom) for v in ast.literal_vars(lit)}
    tool_targets: dict[str, ast.ToolCall] = {}  # variable -> the tool call that binds it (plan.tool_bindings)

    def check_expr(expr: ast.Expr, top: bool) -> None:
        if isinstance(expr, ast.ToolCall):
            err("E221", "a tool call stands alone on the right of `=`: `s = @tool(args)`", expr.span)
        elif isinstance(expr, ast.Wildcard) and not top:
            err("E401", "`_` cannot stand in an expression", expr.span)
        elif isinstance(expr, ast.Aggregate):
            err("E404", "an aggregate stands alone on one side of `=`: `n = count { ... }`", expr.span)
        elif isinstance(expr, ast.Call) and expr.func in BUILTINS:
            arity = BUILTINS[expr.func].arity
            if len(expr.args) != arity:
                err("E302", f"{expr.func}() takes {arity} argument(s), got {len(expr.args)}", expr.span)

    def check_body(lits: tuple[ast.Literal, ...], nested: bool) -> None:
        for lit in lits:
            if isinstance(lit, ast.Atom):
                check_atom(lit, "this atom")
            elif isinstance(lit, ast.Negation):
                check_atom(lit.atom, "this atom")
            elif isinstance(lit, ast.Condition):
                for sub in _exprs(lit.call):
                    check_expr(sub, top=False)
            elif isinstance(lit, ast.Fail):
                if nested:
                    err("E404", "`fail` cannot stand inside an aggregate", lit.span)
            else:
                tool = lit.right if isinstance(lit.right, ast.ToolCall) else None
                if tool is not None and lit.op == "=" and isinstance(lit.left, ast.Var) and nested:
                    # the form of a binding, in the one place a binding cannot call a tool
                    err("E221", "a tool call cannot stand inside an aggregate", tool.span,
                        "derive a relation of its results in a rule of its own (`r(t, v) :- q(t), v = @tool(t).`) "
                        "and aggregate over that relation")
                    for arg in tool.args:
                        for sub in _exprs(arg):
                            check_expr(sub, top=False)
                    continue
                if tool is not None and lit.op == "=" and isinstance(lit.left, ast.Var) and lit.left.name not in positive_vars and not nested:
                    first = tool_targets.setdefault(lit.left.name, tool)
                    if first is not tool:
                        err("E221", f"{lit.left.name!r} is already bound by the tool call at {first.span}: a tool call "
                                    f"binds a fresh variable (`t = @tool(args)`, then compare: `t = {lit.left.name}`)",
                            tool.span)
                    for arg in tool.args:
                        for sub in _exprs(arg):
                            check_expr(sub, top=False)
                    continue
                for side in (lit.left, lit.right):
                    if isinstance(side, ast.Wildcard):
                        err("E401", "`_` cannot stand in a comparison", side.span)
                    elif isinstance(side, ast.Aggregate):
                        if nested:
                            err("E404", "aggregates cannot be nested", side.span)
                        elif lit.op != "=":
                            err("E404", "an aggregate is used as `x = count { ... }`", side.span)
                        check_body(side.body, True)
                    else:
                        for sub in _exprs(side):
                            check_expr(sub, top=False)

    check_body(body, False)
    for head in heads:
        check_atom(head, "emit")
    if diags:
        return diags
    outside = outside_map(body, heads)
    steps, unsafe = plan_body(body, set(), None, outside)
    for u in unsafe:
        if u.var:
            err("E400", f"unsafe variable {u.var!r}: it is not bound by a positive atom or `{u.var} = expression`", u.span,
                "variables in emit, negations, comparisons and aggregate results must be bound")
        else:
            err("E400", "this literal can never be evaluated: its variables are not bound", u.span)
    if not unsafe:
        bound = _bound_vars(steps)
        for head in heads:
            for arg in head.args:
                for var in ast.expr_vars(arg):
                    if var not in bound:
                        err("E400", f"unsafe variable {var!r} in emit: it is not bound in the body", arg.span,
                            "bind it with a positive atom or `x = expression`")
    return diags


def _bound_vars(steps: list) -> set[str]:
    out: set[str] = set()
    for step in steps:
        if isinstance(step, Scan):
            out.update(v for _, v in step.binds)
        elif isinstance(step, Assign):
            out.add(step.var)
        elif isinstance(step, AggStep) and step.bind:
            assert isinstance(step.result, ast.Var)
            out.add(step.result.name)
    return out


def infer_types(program: Program, body: tuple[ast.Literal, ...], heads: tuple[ast.Atom, ...]) -> tuple[dict[str, str | None], list[Diagnostic]]:
    """Static type of every variable, and the mismatches that can never work."""
    diags: list[Diagnostic] = []
    env: dict[str, str | None] = {}
    origin: dict[str, str] = {}
    steps, unsafe = plan_body(body, set(), None, outside_map(body, heads))
    if unsafe:
        return env, diags

    def walk(steps: list) -> None:
        for step in steps:
            if isinstance(step, Scan):
                rel = program.relations.get(step.atom.relation)
                if rel is None or len(step.atom.args) != rel.arity:
                    continue
                for col, var in step.binds:
                    env[var] = rel.columns[col].type
                    origin[var] = f"{rel.name}.{rel.columns[col].name}"
            elif isinstance(step, Assign):
                env[step.var] = expr_type(step.expr, env)
                origin[step.var] = "an expression"
            elif isinstance(step, AggStep):
                walk(list(step.inner))
                if step.bind:
                    assert isinstance(step.result, ast.Var)
                    env[step.result.name] = expr_type(step.aggregate, env)
                    origin[step.result.name] = f"a {step.aggregate.op} aggregate"

    walk(steps)

    def check_columns(atom: ast.Atom) -> None:
        rel = program.relations.get(atom.relation)
        if rel is None or len(atom.args) != rel.arity:
            return
        for arg, col in zip(atom.args, rel.columns):
            if isinstance(arg, (ast.Wildcard, ast.Const)):
                continue
            typ = expr_type(arg, env)
            if typ is None:
                continue
            if isinstance(arg, ast.Var) and typ != col.type and not (col.type == "float" and typ == "int" and atom in heads):
                diags.append(Diagnostic("E303", f"variable {arg.name!r} is {typ} (from {origin.get(arg.name, '?')}) but column {col.name!r} of {rel.name} is {col.type}",
                                        arg.span))
            elif not isinstance(arg, ast.Var) and not assignable(col.type, typ):
                diags.append(Diagnostic("E304", f"column {col.name!r} of {rel.name} is {col.type}, this expression is {typ}", arg.span))

    for atom, _neg in _atoms(body):
        check_columns(atom)
    for head in heads:
        check_columns(head)
    diags.extend(_type_errors(body, heads, env, origin))
    return env, diags


_TYPE_CODES = {"operator": "E305", "comparison": "E306", "builtin": "E307"}


def _type_errors(body: tuple[ast.Literal, ...], heads: tuple[ast.Atom, ...], env: dict[str, str | None],
                 origin: dict[str, str]) -> list[Diagnostic]:
    """Operators, builtins, comparisons and aggregates whose operand types are all known and fit
    no signature of the catalogue: they could only fail at run time, so they are check errors.
    Values of unknown type (tool results) stay checked at run time."""
    diags: list[Diagnostic] = []

    def notes(exprs: tuple[ast.Expr, ...]) -> tuple[str, ...]:
        seen = dict.fromkeys(v for e in exprs for v in ast.expr_vars(e) if env.get(v) is not None)
        return tuple(f"{v!r} is {env[v]} (from {origin.get(v, '?')})" for v in seen)

    def expr(e: ast.Expr) -> None:
        if isinstance(e, ast.Aggregate):
            aggregate(e)
            return
        for sub in ast.sub_exprs(e):
            if isinstance(sub, ast.Aggregate):
                aggregate(sub)
                continue
            message = type_error(sub, env)
            op = operation(sub)
            if message is not None and op is not None:
                func, operands = FUNCTIONS[op[0]], op[1]
                hint = ("convert with to_str, to_int or to_float",) if func.kind == "operator" else ()
                diags.append(Diagnostic(_TYPE_CODES[func.kind], message, sub.span, "error", notes(operands) + hint))

    def aggregate(agg: ast.Aggregate) -> None:
        lits(agg.body)
        op = AGGREGATES[agg.op]
        if agg.value is not None and op.has_value:
            value = env.get(agg.value.name)
            if value is not None and op.resolve(value) is None:
                diags.append(Diagnostic("E308", op.type_error(value), agg.span, "error", notes((agg.value,))))

    def lits(body: tuple[ast.Literal, ...]) -> None:
        for lit in body:
            for e in ast.literal_exprs(lit):
                expr(e)
            if isinstance(lit, ast.Comparison):
                lt, rt = expr_type(lit.left, env), expr_type(lit.right, env)
                if lt is not None and rt is not None and not comparable(lit.op, lt, rt):
                    diags.append(Diagnostic("E306", COMPARISONS[lit.op].type_error([lt, rt]), lit.span, "error",
                                            notes((lit.left, lit.right))))

    lits(body)
    for head in heads:
        for arg in head.args:
            expr(arg)
    return diags
