"""The ``converge`` command line.

Exit codes (stable, documented in docs/cli.md):
  0 converged / success      1 invalid rules, facts or trace (diagnostics on stderr)
  2 usage error              3 degraded      4 bounded      5 failed
  6 the fact asked about does not hold       7 a replay differs from its trace
  8 a proof does not check (verify)          70 internal error
  74 the output could not be written (standard output closed, disk full)
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Any, NoReturn, Sequence

import click

from . import __version__
from .commands.stdin import STDIN_OPTIONS

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
EXIT_TIER = {"converged": 0, "degraded": 3, "bounded": 4, "failed": 5}
EXIT_ABSENT = 6
EXIT_REPLAY_DIFFERS = 7
EXIT_INTERNAL = 70
EXIT_OUTPUT = 74  # the output could not be written (closed stdout, full disk): sysexits EX_IOERR


def dumps_json(value: Any, **kwargs: Any) -> str:
    """``values.dumps_json``, imported when first needed so ``--version`` and ``--help`` start small."""
    from .values import dumps_json as dumps

    return dumps(value, **kwargs)


class _Out:
    """Writes to stdout/stderr; colour (rich) only when the stream is a terminal."""

    @property
    def color(self) -> bool:
        return sys.stdout is not None and sys.stdout.isatty() and not os.environ.get("NO_COLOR")

    def print(self, text: str = "", style: str | None = None, err: bool = False) -> None:
        """Print a line; control characters (from fact values, tool messages, ...) are escaped."""
        from .textsafe import escape_controls

        text = escape_controls(text)
        stream = sys.stderr if err else sys.stdout
        if style and (stream.isatty() and not os.environ.get("NO_COLOR")):
            from rich.console import Console
            from rich.text import Text

            Console(file=stream, highlight=False, soft_wrap=True).print(Text(text, style=style))
        else:
            click.echo(text, file=stream)


OUT = _Out()


def write_text(text: str) -> None:
    """Write rendered text (a proof tree, an explanation) to stdout, control characters escaped
    and ending with a newline."""
    from .textsafe import escape_controls

    text = escape_controls(text)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _fail_diagnostics(err: Any) -> NoReturn:
    from .commands.common import fail_diagnostics

    fail_diagnostics(err)


def load_tools(spec: str) -> dict[str, Any]:
    """``module:object`` (a dict of callables) or ``module`` / ``module:submodule`` (its public functions);
    the module may be a ``.py`` file path. ``sys.path`` is never modified (see import_tools_module)."""
    from .engine.tools import ToolSpecError, load_tools_spec

    try:
        return load_tools_spec(spec)
    except ToolSpecError as err:
        raise click.BadParameter(str(err), param_hint="--tools")


class _Progress:
    """A one-line progress display on stderr, only when it is a terminal."""

    def __init__(self) -> None:
        import time

        self.time = time.monotonic
        self.last = 0.0
        self.shown = False

    def __call__(self, cycle: int, facts: int, eligible: int) -> None:
        now = self.time()
        if now - self.last >= 0.1:
            self.last = now
            self.shown = True
            sys.stderr.write(f"\rcycle {cycle} · {facts} facts · {eligible} agent(s) eligible\x1b[K")
            sys.stderr.flush()

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def _run_job(rules: Sequence[str], facts: Sequence[str], opts: dict[str, Any], trace: bool = False,
             all_proofs: bool = False, proofs: bool = True) -> Any:
    from .api import load
    from .diagnostics import ConvergeError
    from .engine.loop import Budget

    budget = Budget(opts.get("max_cycles"), opts.get("max_facts"), opts.get("max_agents_per_cycle"),
                    opts.get("max_steps"), opts.get("min_confidence"), opts.get("max_bytes"), opts.get("timeout"))
    tools: dict[str, Any] = {}
    for spec in opts.get("tools") or ():
        tools.update(load_tools(spec))
    from .commands.stdin import fact_sources as stdin_sources

    progress = _Progress() if sys.stderr.isatty() and not opts.get("quiet") else None
    try:
        facts = stdin_sources(facts, opts.get("facts_format"), opts.get("stdin_filename"))
        ruleset = load(list(rules))
        for w in ruleset.warnings:
            OUT.print(w.render(), err=True)
        return ruleset.run(fact_files=fact_sources(facts, opts.get("table")), budget=budget, tools=tools, workers=opts.get("workers") or 4,
                           tool_timeout=opts.get("tool_timeout"), on_failure=opts.get("on_failure"),
                           goals=list(opts.get("goal") or ()), trace=trace, timestamps=bool(opts.get("timestamps")),
                           progress=progress, all_proofs=all_proofs,
                           tool_isolation=opts.get("tool_isolation") or "thread", proofs=proofs)
    except ConvergeError as err:
        if progress:
            progress.close()
        _fail_diagnostics(err)
    finally:
        if progress:
            progress.close()


_TIER_STYLE = {"converged": "bold green", "degraded": "bold yellow", "bounded": "bold yellow", "failed": "bold red"}


def _header(result: Any) -> None:
    OUT.print(f"tier: {result.tier.value}", style=_TIER_STYLE[result.tier.value])
    if not result.reasons:
        OUT.print("reasons: none")
    else:
        OUT.print("reasons:")
        for reason in result.reasons:
            OUT.print(f"  - [{reason.kind}] {reason.message}")
            for v in reason.details.get("violations", []):
                for match in v["matches"]:
                    binding = ", ".join(f"{k} = {dumps_json(val, ensure_ascii=False)}" for k, val in match["bindings"].items())
                    OUT.print(f"      {v['invariant']}: {', '.join(match['facts']) or '(no facts)'}" + (f"  with {binding}" if binding else ""))
    OUT.print(f"cycles: {result.cycles}")
    OUT.print(f"facts: {result.total_facts}")
    OUT.print(f"digest: {result.digest}")


def _relations(result: Any, only: Sequence[str]) -> list[str]:
    names = result.relations()
    for name in only:
        if name not in names:
            raise click.UsageError(f"no relation named {name!r}; relations: {', '.join(names)}")
    return list(only) or names


EXAMPLE_RUN = "Example: converge run examples/loans/loans.cvg --facts examples/loans/facts.json"
EXAMPLE_WHY = "Example: converge why examples/loans/loans.cvg --facts examples/loans/facts.json 'decision(\"l1\", \"reject\")'"


# Commands defined in their own modules, imported only when used (start-up stays fast).
LAZY_COMMANDS = {
    "check": "converge_rules.commands.check:check",
    "replay": "converge_rules.commands.replay:replay",
    "report": "converge_rules.commands.report:report",
    "verify": "converge_rules.commands.verify:verify",
    "why-not": "converge_rules.commands.whynot:why_not",
    "fmt": "converge_rules.commands.fmt:fmt",
    "graph": "converge_rules.commands.graph:graph",
    "test": "converge_rules.commands.test:test",
    "plan": "converge_rules.commands.plan:plan",
    "query": "converge_rules.commands.query:query",
    "serve": "converge_rules.commands.serve:serve",
    "decisions": "converge_rules.commands.decisions:decisions",
    "batch": "converge_rules.commands.batch:batch",
    "lsp": "converge_rules.commands.lsp:lsp",
}


class LazyGroup(click.Group):
    """A group whose commands may live in other modules, imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        import importlib.util

        available = {n for n, target in LAZY_COMMANDS.items()
                     if importlib.util.find_spec(target.split(":")[0]) is not None}
        return sorted(set(super().list_commands(ctx)) | available)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY_COMMANDS:
            import importlib

            module, attr = LAZY_COMMANDS[name].split(":")
            try:
                return getattr(importlib.import_module(module), attr)
            except ModuleNotFoundError:
                return None
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog="Example: converge run examples/loans/loans.cvg --facts examples/loans/facts.json")
@click.version_option(version=__version__, prog_name="converge")  # not package_name: reading metadata costs ~40 ms
def cli() -> None:
    """Converge Rules: a deterministic, explainable rule engine.

    Exit codes: 0 converged/success, 1 invalid rules or facts, 2 usage error,
    3 degraded, 4 bounded, 5 failed, 6 fact does not hold, 7 replay differs,
    8 a proof does not check, 70 internal error, 74 output could not be written.
    """


def _policy(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    from .compile.program import FailurePolicy

    try:
        FailurePolicy.parse(value)
    except ValueError as err:
        raise click.BadParameter(str(err))
    return value


_budget_options = [
    click.option("--max-cycles", type=click.IntRange(min=0), help="Stop after N cycles (tier bounded)."),
    click.option("--max-facts", type=click.IntRange(min=0), help="Keep at most N facts (tier bounded)."),
    click.option("--max-agents-per-cycle", type=click.IntRange(min=1), help="Run at most N agents per cycle (by priority, then declaration order)."),
    click.option("--max-steps", type=click.IntRange(min=0), help="Stop after N rule firings, a deterministic fuel (tier bounded)."),
    click.option("--max-bytes", type=click.IntRange(min=0), help="Stop when the facts would count more than N bytes (a fixed cost per fact, string lengths, big ints; default 268435456; tier bounded)."),
    click.option("--timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS", help="Stop after SECONDS of wall-clock time (tier bounded; not deterministic)."),
    click.option("--min-confidence", type=click.FloatRange(0, 1), help="Drop derived facts below this confidence (tier bounded)."),
    click.option("--tools", "tools", multiple=True, metavar="MODULE[:OBJECT]", help="Host tools: a dict of callables or a module's functions (repeatable)."),
    click.option("--workers", type=click.IntRange(min=1), default=4, show_default=True, help="Threads for the tool calls of one cycle."),
    click.option("--tool-timeout", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True, help="Seconds each tool call may take."),
    click.option("--tool-isolation", type=click.Choice(["thread", "process"]), default="thread", show_default=True,
                 help="Run tool calls on threads, or in worker processes that are killed on time-out."),
    click.option("--on-failure", callback=_policy, metavar="POLICY", help="Default failure policy: abort, skip, or 'retry N then skip|abort'."),
    click.option("--goal", "goal", multiple=True, metavar="RELATION", help="Prune agents that cannot contribute to RELATION (repeatable)."),
    click.option("--quiet", "-q", is_flag=True, help="No progress line on stderr."),
    click.option("--table", "table", multiple=True, metavar="REL=SQL", callback=lambda c, p, v: table_queries(v),
                 help="With --facts sqlite:///... or postgresql://...: read relation REL with this SELECT (repeatable)."),
]


def table_queries(values: Sequence[str]) -> dict[str, str]:
    """``--table REL=SQL`` options as a dict (a usage error when one has no ``=``)."""
    out: dict[str, str] = {}
    for v in values:
        rel, eq, query = v.partition("=")
        if not eq or not rel.strip() or not query.strip():
            raise click.BadParameter(f"expected REL=SQL, got {v!r}", param_hint="--table")
        out[rel.strip()] = query
    return out


def fact_sources(facts: Sequence[str], tables: dict[str, str] | None) -> list[Any]:
    """``--facts`` values: paths (and facts read from standard input) stay as they are, database URLs become ``DatabaseFacts`` with the ``--table`` queries."""
    from .io.database import DatabaseFacts, is_database_url

    out: list[Any] = [DatabaseFacts(f, tuple(sorted((tables or {}).items()))) if isinstance(f, str) and is_database_url(f)
                      else f for f in facts]
    if tables and not any(isinstance(f, DatabaseFacts) for f in out):
        raise click.UsageError("--table needs a database in --facts (sqlite:///PATH.db or postgresql://...)")
    return out


def _with(options: list[Any]) -> Any:
    def wrap(fn: Any) -> Any:
        for opt in reversed(options):
            fn = opt(fn)
        return fn
    return wrap


@cli.command(epilog=EXAMPLE_RUN)
@click.argument("rules", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--facts", "facts", multiple=True, type=click.Path(), help="Facts file or directory (repeatable); - reads standard input.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "summary"]), default="text", show_default=True)
@click.option("--relation", "only", multiple=True, help="Show only this relation (repeatable).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Also write one CSV file per relation into DIR.")
@click.option("--proofs", type=click.Choice(["first", "all", "none"]), is_flag=False, flag_value="first", default=None,
              help="Include proofs in JSON output: the first derivation of each fact, or all of them (--proofs all); "
                   "--proofs none keeps no proofs at all (faster; no explanations, no --record).")
@click.option("--trace", "trace_file", type=click.Path(dir_okay=False), help="Write every event of the run to FILE (JSON Lines).")
@click.option("--timestamps", is_flag=True, help="Add wall-clock times to trace events (the trace is then not reproducible).")
@click.option("--record", "record_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Write the decision record to FILE: rules, inputs, tool results, outcome, facts and proofs "
                   "(explain it later with why/why-not/report/verify/query --record FILE).")
@_with(_budget_options + STDIN_OPTIONS)
def run(rules: tuple[str, ...], facts: tuple[str, ...], fmt: str, only: tuple[str, ...], out_dir: str | None,
        proofs: str | None, trace_file: str | None, record_file: str | None, **opts: Any) -> None:
    """Evaluate RULES over facts to a fixed point and print the result."""
    if proofs == "none" and record_file:
        raise click.UsageError("--record needs proofs: it cannot be combined with --proofs none")
    result = _run_job(rules, facts, opts, trace=trace_file is not None or record_file is not None,
                      all_proofs=proofs == "all", proofs=proofs != "none")
    if proofs == "none":
        proofs = None  # nothing to print
    if record_file:
        from .diagnostics import ConvergeError

        try:
            result.to_record().write(record_file)
        except ConvergeError as err:
            _fail_diagnostics(err)
    if trace_file:
        from .diagnostics import ConvergeError
        from .io import write_atomic

        try:
            write_atomic(trace_file, result.trace_jsonl())
        except ConvergeError as err:
            _fail_diagnostics(err)
    names = _relations(result, only)
    if out_dir:
        from .diagnostics import ConvergeError
        from .io import write_csv_dir

        try:
            write_csv_dir(out_dir, {n: result.facts(n) for n in names}, result.program.schema())
        except ConvergeError as err:
            _fail_diagnostics(err)
    if fmt == "json":
        sys.stdout.write(result.to_json(proofs=proofs is not None, relations=only or None, all_proofs=proofs == "all"))
    else:
        _header(result)
        OUT.print("relations:")
        for name in names:
            OUT.print(f"  {name}: {result.count(name)}")
        if fmt == "text":
            from .io import format_table

            schema = result.program.schema()
            for name in names:
                OUT.print()
                OUT.print(f"{name} ({result.count(name)})", style="bold")
                OUT.print(format_table(name, result.facts(name), schema).rstrip("\n"))
                weak = result.weak_facts(name)
                if weak:
                    from .values import format_fact

                    OUT.print(f"confidence below 1 in {name}:")
                    for fact, conf in weak:
                        OUT.print(f"  {format_fact(name, fact)}  {conf:g}")
    sys.exit(EXIT_TIER[result.tier.value])


@cli.command(epilog=EXAMPLE_WHY + "\n\nFrom a record: converge why --record r.json 'approved(\"a1\")'")
@click.argument("args", nargs=-1, required=True)
@click.option("--facts", "facts", multiple=True, type=click.Path(), help="Facts file or directory (repeatable); - reads standard input.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "dot", "mermaid"]), default="text", show_default=True)
@click.option("--depth", type=click.IntRange(min=0), help="Expand the proof tree at most N levels deep.")
@click.option("--all", "all_", is_flag=True, help="List every derivation of the fact, not only the first.")
@click.option("--limit", type=click.IntRange(min=1), default=10, show_default=True,
              help="With --all: at most K derivations; for a pattern: explain at most K matches.")
@click.option("--support", is_flag=True, help="Print the input facts the proof rests on instead of the tree.")
@click.option("--record", "record_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Explain from the decision record FILE (no re-run, no tool call); give only the fact.")
@_with(_budget_options + STDIN_OPTIONS)
def why(args: tuple[str, ...], facts: tuple[str, ...], fmt: str, depth: int | None, all_: bool, limit: int,
        support: bool, record_file: str | None, **opts: Any) -> None:
    """Explain why FACT holds: its proof tree down to input facts.

    Arguments: RULES... FACT (the fact is the last argument), or with
    --record FILE only FACT. A pattern with variables or _ (such as
    'decision(l, "reject")') explains each matching fact, at most --limit.
    """
    from .diagnostics import ConvergeError
    from .explain.render import RENDERERS

    if record_file:
        from .commands.common import no_job_options, open_record_or_exit

        if len(args) != 1:
            raise click.UsageError("with --record give only the fact, e.g. converge why --record r.json 'approved(\"a1\")'")
        no_job_options(record_file, facts, opts)
        fact_text = args[0]
        result = open_record_or_exit(record_file).result
    else:
        if len(args) < 2:
            raise click.UsageError("give the rule files and then the fact, e.g. converge why rules.cvg 'path(\"a\", \"c\")'")
        rules, fact_text = args[:-1], args[-1]
        if fact_text.endswith(".cvg") and os.path.exists(fact_text):
            raise click.UsageError("the last argument must be a fact such as 'decision(\"l1\", \"reject\")'")
        result = None
    pattern = _is_pattern(fact_text)
    if result is None:
        result = _run_job(rules, facts, opts, all_proofs=all_)
    if pattern:
        _why_pattern(result, fact_text, fmt, depth, limit)
        return
    try:
        relation, values = result.parse_fact(fact_text)
    except ConvergeError as err:
        _fail_diagnostics(err)
    tree = result.why((relation, values), depth=depth) if result.holds(relation, values) else None
    from .values import format_fact

    shown = format_fact(relation, values)
    if tree is None:
        dropped = result.dropped(relation, values)
        if dropped is not None:
            OUT.print(f"{shown} does not hold: it was {dropped['message']}", err=True)
            sys.exit(EXIT_ABSENT)
        rel = result.program.relations[relation]
        if rel.is_input:
            OUT.print(f"{shown} does not hold: no such input fact was given", err=True)
        else:
            OUT.print(f"{shown} does not hold: no agent derived it (tier {result.tier.value}, {result.cycles} cycles)", err=True)
        sys.exit(EXIT_ABSENT)
    if result.tier.value != "converged" and fmt == "text":
        OUT.print(f"note: the job ended {result.tier.value}; the proof is still valid", err=True)
    if support:
        rows = result.support(relation, values)
        if fmt == "json":
            sys.stdout.write(dumps_json({"fact": shown, "support": [format_fact(r, f) for r, f in rows]}, indent=2,
                                        ensure_ascii=False) + "\n")
        else:
            OUT.print(f"{shown} rests on {len(rows)} input fact{'s' if len(rows) != 1 else ''}:")
            for r, f in rows:
                src = result.proof(r, f).source  # type: ignore[union-attr]
                where = f"  [{src[0]}:{src[1]}]" if src and src[1] else (f"  [{src[0]}]" if src else "")
                OUT.print(f"  {format_fact(r, f)}{where}")
        return
    if all_:
        from .explain.render import build_tree, dumps_tree_json

        proofs = result.proofs(relation, values, limit=limit)
        trees = [build_tree(p, result.proof, depth) for p in proofs]
        if fmt == "json":
            sys.stdout.write(dumps_tree_json({"fact": shown, "derivations": [t.to_json() for t in trees]}) + "\n")
            return
        for k, t in enumerate(trees, 1):
            OUT.print(f"derivation {k} of {len(trees)}" + (" (first)" if k == 1 else ""), style="bold")
            text = RENDERERS[fmt](t)
            write_text(text)
        return
    write_text(RENDERERS[fmt](tree))


_OUTPUT_ERRNOS = {errno.ENOSPC, errno.EBADF, errno.EIO, errno.EFBIG, errno.EROFS, getattr(errno, "EDQUOT", errno.ENOSPC)}


class _ClosedOutput:
    """Stands for a standard output that was closed before converge started."""

    encoding = "utf-8"

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "standard output is closed")

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise OSError(errno.EBADF, "standard output is closed")


def _discard_stdout() -> None:
    """Point fd 1 at /dev/null, so the interpreter's last flush of what could not be written
    neither fails nor changes the exit code."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, 1)
        os.close(fd)
    except OSError:
        pass


_ONE_SHOT = {"run", "why", "why-not", "report", "replay", "verify", "test", "check", "fmt", "graph"}


def _is_pattern(text: str) -> bool:
    """A fact text with a variable or ``_`` in it (a pattern, not one fact)."""
    from .diagnostics import ConvergeError
    from .syntax import ast
    from .syntax.parser import parse_atom

    try:
        atom = parse_atom(text)
    except ConvergeError:
        return False  # parse_fact reports it
    return any(isinstance(a, (ast.Var, ast.Wildcard)) for a in atom.args)


def _why_pattern(result: Any, pattern: str, fmt: str, depth: int | None, limit: int) -> None:
    """Explain every fact matching a pattern (at most ``limit``); exit 6 when none matches."""
    from .diagnostics import ConvergeError
    from .explain.render import RENDERERS, dumps_tree_json
    from .record import query
    from .values import format_fact

    try:
        matches = query(result, pattern)
    except ConvergeError as err:
        _fail_diagnostics(err)
    if not matches:
        OUT.print(f"no fact matches {pattern}", err=True)
        sys.exit(EXIT_ABSENT)
    shown = matches[:limit]
    trees = [result.why(m, depth=depth) for m in shown]
    if fmt == "json":
        sys.stdout.write(dumps_tree_json({"pattern": pattern, "matches": len(matches),
                                          "explained": [t.to_json() for t in trees]}) + "\n")
        return
    for k, ((rel, fact), t) in enumerate(zip(shown, trees), 1):
        OUT.print(f"match {k} of {len(matches)}: {format_fact(rel, fact)}", style="bold")
        text = RENDERERS[fmt](t)
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    if len(matches) > limit:
        OUT.print(f"... {len(matches) - limit} more match(es); raise --limit to see them", err=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: never lets a traceback reach the user.

    Started as the ``converge`` program (no ``argv``), a command that runs one job ends the
    process as soon as its output is written, exit handlers run and streams flushed: tearing
    down a big job's facts one object at a time would only add time (0.2-0.3 s on half a
    million facts) after the answer is out. Called with ``argv`` (tests, embedding), it returns
    or raises SystemExit as usual."""
    args = list(argv) if argv is not None else sys.argv[1:]
    if argv is not None or next((a for a in args if not a.startswith("-")), None) not in _ONE_SHOT:
        _main(argv)
        return
    try:
        _main(None)
        code: Any = 0
    except SystemExit as done:
        code = done.code
    _exit_now(code)


def _exit_now(code: Any) -> None:
    """Exit with SystemExit's meaning of ``code``, skipping the interpreter's teardown."""
    import atexit

    if code is None:
        code = 0
    elif not isinstance(code, int):
        sys.stderr.write(f"{code}\n")
        code = 1
    atexit._run_exitfuncs()  # what the interpreter would run at exit (logging, coverage, ...)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken stream was reported by the command already
    os._exit(code)


def _main(argv: Sequence[str] | None) -> None:
    import gc

    # Process-wide tuning belongs to the CLI process alone (the library never touches gc):
    # facts are acyclic tuples, so the cyclic collector would only walk them. Only commands that
    # run one job and exit turn it off; long-lived ones (a server, a batch) keep it.
    args = list(argv) if argv is not None else sys.argv[1:]
    if next((a for a in args if not a.startswith("-")), None) in _ONE_SHOT:
        gc.disable()
    if sys.stdout is None:  # started with stdout closed: fail when (and only if) output is written
        sys.stdout = _ClosedOutput()
    from .diagnostics import ConvergeError
    try:
        try:
            cli.main(args=list(argv) if argv is not None else None, prog_name="converge", standalone_mode=True)
        finally:
            sys.stdout.flush()  # a full disk or a closed stream shows here, not at interpreter exit
    except SystemExit as done:
        if done.code == 1 and type(sys.stdout).__name__ == "_PacifyFlushWrapper":
            # click met a broken pipe (the reader, e.g. `head`, has all it wanted): not an error
            _discard_stdout()
            sys.exit(0)
        raise
    except ConvergeError as err:  # e.g. a malformed part of a decision record met while explaining
        _fail_diagnostics(err)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        _discard_stdout()
        sys.exit(0)
    except OSError as err:
        if err.errno not in _OUTPUT_ERRNOS:
            raise
        _discard_stdout()
        reason = "standard output is closed" if err.errno == errno.EBADF else (err.strerror or str(err)).lower()
        click.echo(f"converge: cannot write the output: {reason}", err=True)
        sys.exit(EXIT_OUTPUT)
    except Exception as err:  # pragma: no cover - a bug in converge itself
        if os.environ.get("CONVERGE_DEBUG"):
            raise
        from .textsafe import escape_controls

        click.echo(escape_controls(f"converge: internal error: {type(err).__name__}: {err}\n"
                                   "This is a bug in converge; set CONVERGE_DEBUG=1 for the traceback."), err=True)
        sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":  # pragma: no cover
    main()
