"""Loading and name resolution: rule files and their imports → a Program.

Root files (the ones given by the user) share the root namespace and are
taken in sorted path order, so the order of files on a command line never
changes a result. An imported file's relations live under its alias
(``import std.graph`` → ``graph.reach``).
"""

from __future__ import annotations

import os
from dataclasses import replace

from .._frozen import frozen
from ..diagnostics import ConvergeError, Diagnostic, SourceTexts, Span, normalize_newlines
from ..syntax import ast
from ..syntax.parser import parse_text
from ..values import ColumnSchema, TYPES
from .sources import DiskSources, Problem, RuleSources, spelling_order, stdlib_dir  # noqa: F401  (stdlib_dir: imported from here by callers)
from .program import AgentDef, FailurePolicy, InvariantDef, KeySpec, Program, Relation, SourceFact, TestDef
from .types import BUILTINS, PREDICATES

BUDGET_KEYS = ("max_cycles", "max_facts", "max_agents_per_cycle", "max_steps", "min_confidence", "max_bytes")


@frozen
class Unit:
    """One parsed file in the program, with the namespace prefix of its instance."""

    path: str
    prefix: str
    source: ast.SourceFile
    aliases: dict[str, str]  # import alias -> prefix of the imported unit


class Frontend:
    """Loads root files and their imports from ``sources`` (by default the disk) and
    resolves their names into a Program; where the texts are kept is the sources' concern
    (sources.py), so loading has one code path for the disk, an editor and a record."""

    def __init__(self, sources: RuleSources | None = None) -> None:
        self.diags: list[Diagnostic] = []
        self.expected_violations: list[tuple[str, Span]] = []  # `expect violation NAME` of the tests, to check
        self.units: list[Unit] = []
        self.parsed: dict[str, ast.SourceFile] = {}  # an imported file is parsed once, however often imported
        self.texts = SourceTexts()  # the text of every file parsed, by the name its spans carry
        self.sources = sources if sources is not None else DiskSources()
        self.root_names: dict[str, str] = {}  # real path of a root file read from the sources -> its spelling
        # the imports of the root files, which share one namespace: alias -> (real path, import, name)
        self.root_imports: dict[str, tuple[str, Span, str]] = {}

    def parse(self, path: str, text: str | None = None) -> ast.SourceFile:
        """Parse a file as the sources hold it (or as ``text`` gives it), keeping its text in
        ``texts``: the diagnostics of this compilation quote it, and only they do."""
        text = self.sources.read(path) if text is None else text
        self.texts.add(path, normalize_newlines(text))
        return parse_text(text, path)

    def error(self, code: str, message: str, span: Span, *notes: str) -> None:
        self.diags.append(Diagnostic(code, message, span, "error", tuple(notes)))

    # ------------------------------------------------------------ loading
    def load(self, roots: list[tuple[str, str | None]]) -> None:
        """roots: (path, text or None to read the file). A file given twice (the same path,
        or another path to the same file) is one root file, loaded once; a root file that
        a root imports is named as the root is (its first spelling in ``spelling_order``)."""
        keyed = sorted(roots, key=lambda r: spelling_order(r[0]))
        for path, text in keyed:
            if text is None:
                self.root_names.setdefault(self.sources.real(path), path)
        seen: set[tuple[str, str | None]] = set()
        for path, text in keyed:
            identity = (self.sources.real(path) if text is None else os.path.abspath(path), text)
            if identity in seen:
                continue
            seen.add(identity)
            try:
                source = self.parse(path, text)
            except ConvergeError as err:
                self.diags.extend(err.diagnostics)
                continue
            project = os.path.dirname(os.path.realpath(path)) if text is None else os.getcwd()
            self.add_unit(path, "", source, project, [(self.sources.real(path), None)])

    def add_unit(self, path: str, prefix: str, source: ast.SourceFile, project: str,
                 stack: list[tuple[str, Span | None]]) -> None:
        """Add a unit and, depth first, what it imports; ``stack`` holds the files being
        imported (real paths), each with the import that reached it (None for a root)."""
        aliases: dict[str, str] = {}
        unit = Unit(path, prefix, source, aliases)
        self.units.append(unit)
        for item in source.items:
            if isinstance(item, ast.ImportStd):
                parts = item.module.split(".")
                if len(parts) != 2 or parts[0] != "std":
                    self.error("E113", f"unknown standard module {item.module!r}; standard modules are named std.NAME", item.span)
                    continue
                found = self.sources.std_module(parts[1])
                if isinstance(found, Problem):
                    self.error(found.code, found.message, item.span, *found.notes)
                    continue
                # a standard module's own imports stay in its directory
                self.import_unit(unit, item.alias or parts[1], found, item.span, os.path.dirname(found), stack)
            elif isinstance(item, ast.ImportFile):
                found = self.sources.resolve_import(path, item.path, project)
                if isinstance(found, Problem):
                    self.error(found.code, found.message, item.span, *found.notes)
                    continue
                self.import_unit(unit, item.alias, found, item.span, project, stack)

    def import_unit(self, unit: Unit, alias: str, target: str, span: Span, project: str,
                    stack: list[tuple[str, Span | None]]) -> None:
        real = self.sources.real(target)
        # A root file imported by another root keeps the root's name: one file, one name in
        # the program's spans (and one diagnostic for one problem in it).
        target = self.root_names.get(real, target)
        reals = [p for p, _ in stack]
        if real in reals:
            self.import_cycle(stack[reals.index(real):], span)
            return
        if alias in unit.aliases:
            self.error("E114", f"two imports use the name {alias!r}", span)
            return
        if unit.prefix == "":  # a root file: its aliases are names in the namespace all roots share
            bound = self.root_imports.get(alias)
            if bound is not None and bound[0] == real:  # another root's import of this module: one instance
                unit.aliases[alias] = f"{alias}."
                return
            if bound is not None:
                self.error("E114", f"two imports use the name {alias!r}", span,
                           f"{bound[1]} imports {bound[2]} as {alias!r} in the namespace the files given share")
                return
            self.root_imports[alias] = (real, span, os.path.basename(target))
        source = self.parsed.get(real)
        if source is None:
            try:
                source = self.parse(target)
            except ConvergeError as err:
                # A file that cannot be read at all (a directory, a FIFO, no permission) has no
                # line to point at: its diagnostic points at the import that names it.
                self.diags.extend(replace(d, span=span) if d.span.line <= 0 and d.span.file == target else d
                                  for d in err.diagnostics)
                return
            self.parsed[real] = source
        prefix = f"{unit.prefix}{alias}."
        unit.aliases[alias] = prefix
        self.add_unit(target, prefix, source, project, stack + [(real, span)])

    def import_cycle(self, cycle: list[tuple[str, Span | None]], closing: Span) -> None:
        """E111 for an import cycle (``cycle``: its files, each with the import that reached it;
        ``closing``: the import back to the first). One cycle is one diagnostic, whichever of
        its files the search started from (several roots in one program, or ``converge check``
        of each): it starts at the file with the least real path and is located at the import
        of that file by the file before it in the cycle."""
        files = [p for p, _ in cycle]
        into = [closing] + [s for _, s in cycle[1:]]  # into[i]: the import of files[i] in the cycle
        first = min(range(len(files)), key=lambda i: files[i])
        chain = files[first:] + files[:first] + [files[first]]
        location = into[first]
        assert location is not None  # every file of a cycle was reached by an import
        self.error("E111", f"import cycle: {' -> '.join(os.path.basename(p) for p in chain)}", location)

    # ------------------------------------------------------------ resolution
    def resolve(self) -> Program:
        relations: dict[str, Relation] = {}
        for unit in self.units:
            for item in unit.source.items:
                if isinstance(item, ast.RelationDecl):
                    self.declare(unit, item, relations)

        agents: list[AgentDef] = []
        invariants: list[InvariantDef] = []
        facts: list[SourceFact] = []
        budget: dict[str, int] = {}
        budget_spans: dict[str, Span] = {}
        tests: list[TestDef] = []
        goals: list[str] = []
        rule_counts: dict[str, int] = {}
        agent_names: dict[str, Span] = {}
        invariant_names: dict[str, Span] = {}

        for unit in self.units:
            for item in unit.source.items:
                if isinstance(item, ast.Rule):
                    head = self.resolve_atom(unit, item.head, relations)
                    if not item.body:
                        fact = self.fact(head, relations)
                        if fact is not None:
                            facts.append(fact)
                        continue
                    count = rule_counts.get(head.relation, 0) + 1
                    rule_counts[head.relation] = count
                    name = f"{head.relation}#{count}"
                    agent_names.setdefault(name, item.span)
                    body = self.resolve_body(unit, item.body, relations)
                    agents.append(AgentDef(len(agents), name, None, "rule", (head,), body, item.span))
                elif isinstance(item, ast.AgentDecl):
                    agent = self.agent(unit, item, relations, len(agents))
                    if agent is None:
                        continue
                    if agent.name in agent_names:
                        self.error("E202", f"duplicate agent name {agent.name!r}", item.span,
                                   f"first defined at {agent_names[agent.name]}")
                        continue
                    agent_names[agent.name] = item.span
                    agents.append(agent)
                elif isinstance(item, ast.InvariantDecl):
                    name = unit.prefix + item.name
                    if name in invariant_names:
                        self.error("E202", f"duplicate {item.kind} name {name!r}", item.span,
                                   f"first defined at {invariant_names[name]}")
                        continue
                    invariant_names[name] = item.span
                    body = self.resolve_body(unit, item.body, relations)
                    invariants.append(InvariantDef(len(invariants), item.kind, name, item.message, body, item.span))
                elif isinstance(item, ast.BudgetDecl):
                    for (key, value), span in zip(item.items, item.spans):
                        if key not in BUDGET_KEYS:
                            self.error("E206", f"unknown budget setting {key!r}", span,
                                       f"known settings: {', '.join(BUDGET_KEYS)}")
                        elif key == "min_confidence" and not (isinstance(value, (int, float)) and 0 <= value <= 1):
                            self.error("E206", "budget min_confidence must be a number between 0 and 1", span)
                        elif key != "min_confidence" and (not isinstance(value, int) or value < (1 if key == "max_agents_per_cycle" else 0)):
                            self.error("E206", f"budget {key} must be an integer of at least {1 if key == 'max_agents_per_cycle' else 0}", span)
                        else:  # several files may set a budget: the tightest wins
                            tighter = value > budget[key] if key == "min_confidence" and key in budget else (key not in budget or value < budget[key])
                            if tighter:
                                budget[key], budget_spans[key] = value, span
                elif isinstance(item, ast.GoalDecl):
                    for k, goal in enumerate(item.relations):
                        resolved = self.lookup(unit, goal, relations)
                        if resolved is None:
                            where = item.spans[k] if k < len(item.spans) else item.span  # the name itself
                            self.error("E200", f"undefined relation {goal!r} in goal", where)
                        elif resolved not in goals:
                            goals.append(resolved)
                elif isinstance(item, ast.TestDecl) and unit.prefix == "":  # an imported module's tests are its own
                    test = self.test(unit, item, relations)
                    if test is not None:
                        tests.append(test)
        known = {inv.name for inv in invariants}
        for name, span in self.expected_violations:  # checked once every invariant is known
            if name not in known:
                self.error("E214", f"`expect violation {name}` names no invariant or acceptance rule; declared: "
                                   f"{', '.join(sorted(known)) or 'none'}", span)
        names: dict[str, Span] = {}
        for test in tests:
            if test.name in names:
                self.error("E202", f"duplicate test name {test.name!r}", test.span, f"first defined at {names[test.name]}")
            names.setdefault(test.name, test.span)
        return Program(tuple(u.path for u in self.units), relations, tuple(agents), tuple(invariants),
                       tuple(facts), budget, budget_spans, tuple(tests), tuple(goals))

    def test(self, unit: Unit, decl: ast.TestDecl, relations: dict[str, Relation]) -> TestDef | None:
        lists: dict[str, list[SourceFact]] = {"given": [], "expect": [], "expect_not": []}
        files: list[str] = []
        file_spans: list[Span] = []
        tier: str | None = None
        tier_span: Span | None = None
        violations: list[str] = []
        for clause in decl.clauses:
            if clause.kind in lists:
                assert isinstance(clause.value, tuple)
                for atom in clause.value:
                    fact = self.fact(self.resolve_atom(unit, atom, relations), relations)
                    if fact is not None:
                        lists[clause.kind].append(fact)
            elif clause.kind == "given_file":
                assert isinstance(clause.value, str)
                files.append(self.sources.given_file(unit.path, clause.value))
                file_spans.append(clause.span)
            elif clause.kind == "expect_tier":
                if tier_span is not None:  # the later one would silently replace the first
                    self.error("E211", "a test has one `expect tier` clause", clause.span, f"first given at {tier_span}")
                    continue
                tier_span = clause.span
                if clause.value not in ("converged", "degraded", "bounded", "failed"):
                    self.error("E211", f"unknown tier {clause.value!r}; tiers are converged, degraded, bounded, failed", clause.span)
                tier = str(clause.value)
            else:
                violations.append(str(clause.value))
                self.expected_violations.append((str(clause.value), clause.span))
        return TestDef(decl.name, decl.span, tuple(lists["given"]), tuple(files), tuple(lists["expect"]),
                       tuple(lists["expect_not"]), tier, tuple(violations), tuple(file_spans))

    def declare(self, unit: Unit, decl: ast.RelationDecl, relations: dict[str, Relation]) -> None:
        name = unit.prefix + decl.name
        if "." in decl.name:
            self.error("E207", f"a relation is declared with a plain name, not {decl.name!r}", decl.span)
            return
        if decl.name in BUILTINS:
            self.error("E208", f"{decl.name!r} is a builtin function and cannot name a relation", decl.span)
            return
        if name in relations:
            self.error("E201", f"relation {name!r} is declared twice", decl.span,
                       f"first declared at {relations[name].span}")
            return
        cols: list[ColumnSchema] = []
        seen: set[str] = set()
        for col in decl.columns:
            if col.type not in TYPES:
                self.error("E203", f"unknown type {col.type!r}; types are int, float, str, bool", col.span)
            if col.name in seen:
                self.error("E205", f"column {col.name!r} appears twice in {name}", col.span)
            seen.add(col.name)
            cols.append(ColumnSchema(col.name, col.type))
        key = None
        if decl.key is not None:
            names = [c.name for c in cols]
            missing = [c for c in decl.key.columns + (decl.key.column,) if c not in names]
            if missing:
                self.error("E205", f"{name} has no column {missing[0]!r}", decl.key.span, f"columns: {', '.join(names)}")
            elif decl.key.column in decl.key.columns:
                self.error("E205", f"the preferred column {decl.key.column!r} cannot be part of the key", decl.key.span)
            else:
                key = KeySpec(tuple(names.index(c) for c in decl.key.columns), decl.key.prefer, names.index(decl.key.column))
        relations[name] = Relation(name, tuple(cols), decl.is_input, decl.span, key)

    def lookup(self, unit: Unit, name: str, relations: dict[str, Relation]) -> str | None:
        if unit.prefix + name in relations:
            return unit.prefix + name
        head, _, rest = name.partition(".")
        if rest and head in unit.aliases and unit.aliases[head] + rest in relations:
            return unit.aliases[head] + rest
        return None

    def resolve_atom(self, unit: Unit, atom: ast.Atom, relations: dict[str, Relation]) -> ast.Atom:
        resolved = self.lookup(unit, atom.relation, relations)
        if resolved is None:
            hint = []
            close = _close_names(atom.relation, [n[len(unit.prefix):] for n in relations if n.startswith(unit.prefix)])
            if close:
                hint.append(f"did you mean {close}?")
            hint.append(f"declare it: relation {atom.relation}(...)")
            self.error("E200", f"undefined relation {atom.relation!r}", atom.span, *hint)
            return atom
        # arguments hold expressions too: their functions and aggregates resolve like a body's
        args = tuple(self.resolve_expr(unit, a, relations) for a in atom.args)
        return replace(atom, relation=resolved, args=args)

    def resolve_body(self, unit: Unit, body: tuple[ast.Literal, ...], relations: dict[str, Relation]) -> tuple[ast.Literal, ...]:
        out: list[ast.Literal] = []
        for lit in body:
            if isinstance(lit, ast.Atom) and lit.relation in PREDICATES and self.lookup(unit, lit.relation, relations) is None:
                out.append(ast.Condition(ast.Call(lit.relation, lit.args, lit.span), False, lit.span))
            elif isinstance(lit, ast.Negation) and lit.atom.relation in PREDICATES and self.lookup(unit, lit.atom.relation, relations) is None:
                out.append(ast.Condition(ast.Call(lit.atom.relation, lit.atom.args, lit.atom.span), True, lit.span))
            elif isinstance(lit, ast.Atom):
                out.append(self.resolve_atom(unit, lit, relations))
            elif isinstance(lit, ast.Negation):
                out.append(replace(lit, atom=self.resolve_atom(unit, lit.atom, relations)))
            elif isinstance(lit, ast.Fail):
                out.append(lit)
            else:
                assert isinstance(lit, ast.Comparison)
                out.append(replace(lit, left=self.resolve_expr(unit, lit.left, relations),
                                   right=self.resolve_expr(unit, lit.right, relations)))
        return tuple(out)

    def resolve_expr(self, unit: Unit, expr: ast.Expr, relations: dict[str, Relation]) -> ast.Expr:
        if isinstance(expr, ast.Aggregate):
            return replace(expr, body=self.resolve_body(unit, expr.body, relations))
        if isinstance(expr, ast.BinOp):
            return replace(expr, left=self.resolve_expr(unit, expr.left, relations),
                           right=self.resolve_expr(unit, expr.right, relations))
        if isinstance(expr, ast.Neg):
            return replace(expr, operand=self.resolve_expr(unit, expr.operand, relations))
        if isinstance(expr, ast.Call):
            if expr.func not in BUILTINS:
                close = _close_names(expr.func, list(BUILTINS))
                self.error("E204", f"unknown function {expr.func!r}", expr.span,
                           *( [f"did you mean {close}?"] if close else []),
                           f"builtins: {', '.join(sorted(BUILTINS))}")
            return replace(expr, args=tuple(self.resolve_expr(unit, a, relations) for a in expr.args))
        if isinstance(expr, ast.ToolCall):
            return replace(expr, args=tuple(self.resolve_expr(unit, a, relations) for a in expr.args))
        return expr

    def agent(self, unit: Unit, decl: ast.AgentDecl, relations: dict[str, Relation], agent_id: int) -> AgentDef | None:
        body: tuple[ast.Literal, ...] = ()
        heads: list[ast.Atom] = []
        seen_when = False
        priority, confidence, policy = 0, 1.0, None
        first: dict[str, Span] = {}  # priority, confidence, on_failure: where each was given
        for clause in decl.clauses:
            if clause.kind in ("priority", "confidence", "on_failure"):
                if clause.kind in first:  # the later one would silently replace the first
                    self.error("E209", f"an agent has one `{clause.kind}` clause", clause.span,
                               f"first given at {first[clause.kind]}")
                    continue
                first[clause.kind] = clause.span
            if clause.kind == "when":
                if seen_when:
                    self.error("E209", "an agent has one `when` clause; join the conditions with commas", clause.span)
                seen_when = True
                assert isinstance(clause.value, tuple)
                body = self.resolve_body(unit, clause.value, relations)
            elif clause.kind == "emit":
                assert isinstance(clause.value, tuple)
                heads.extend(self.resolve_atom(unit, a, relations) for a in clause.value)
            elif clause.kind == "priority":
                if not isinstance(clause.value, int):
                    self.error("E212", "priority is an integer", clause.span)
                else:
                    priority = clause.value
            elif clause.kind == "confidence":
                value = clause.value
                if not isinstance(value, (int, float)) or not 0 < value <= 1:
                    self.error("E212", "confidence is a number in (0, 1]", clause.span)
                else:
                    confidence = float(value)
            elif clause.kind == "on_failure":
                assert isinstance(clause.value, tuple)
                if clause.value[0] == "retry":
                    if clause.value[2] not in ("skip", "abort"):
                        self.error("E213", f"after retries an agent can skip or abort, not {clause.value[2]!r}", clause.span)
                    else:
                        policy = FailurePolicy(int(clause.value[1]), str(clause.value[2]))
                elif clause.value[0] in ("skip", "abort"):
                    policy = FailurePolicy(0, str(clause.value[0]))
                else:
                    self.error("E213", f"unknown failure policy {clause.value[0]!r}; use abort, skip or retry N then skip|abort", clause.span)
        if not heads:
            self.error("E210", f"agent {decl.name!r} has no `emit` clause", decl.span)
            return None
        return AgentDef(agent_id, unit.prefix + decl.name, decl.description, "agent", tuple(heads), body, decl.span,
                        priority=priority, confidence=confidence, on_failure=policy)

    def fact(self, head: ast.Atom, relations: dict[str, Relation]) -> SourceFact | None:
        rel = relations.get(head.relation)
        if rel is None:
            return None
        if len(head.args) != rel.arity:
            self.error("E300", f"{rel.name} has {rel.arity} column(s), this fact has {len(head.args)}", head.span)
            return None
        values = []
        for arg, col in zip(head.args, rel.columns):
            if isinstance(arg, ast.Wildcard):
                self.error("E401", "`_` cannot stand in a fact", arg.span)
                return None
            if not isinstance(arg, ast.Const):
                self.error("E405", "a fact holds constants only; a rule needs a body (`head :- body.`)", arg.span)
                return None
            from .types import assignable, const_type

            typ = const_type(arg.value)
            if col.type not in TYPES:
                return None  # the declaration's unknown type is the error (E203)
            if not assignable(col.type, typ):
                self.error("E301", f"column {col.name!r} of {rel.name} is {col.type}, got {typ} constant {_show(arg.value)}", arg.span)
                return None
            try:
                values.append(float(arg.value) if col.type == "float" else arg.value)
            except OverflowError:
                self.error("E301", f"column {col.name!r} of {rel.name} is float, and this int is too large for a float",
                           arg.span)
                return None
        return SourceFact(rel.name, tuple(values), head.span)


def _show(value: object) -> str:
    from ..values import format_value

    return format_value(value)  # type: ignore[arg-type]


def _close_names(name: str, candidates: list[str]) -> str | None:
    import difflib

    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.75)
    return repr(close[0]) if close else None
