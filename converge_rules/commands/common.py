"""What every command shares: exit codes, output, running a job from command-line options,
budget and tool options, fact sources, diagnostics. cli.py and each module of
``commands`` import from here; no command reaches into another's privates."""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn, Sequence

import click

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
EXIT_TIER = {"converged": 0, "degraded": 3, "bounded": 4, "failed": 5}
EXIT_ABSENT = 6
EXIT_REPLAY_DIFFERS = 7
EXIT_INTERNAL = 70
EXIT_OUTPUT = 74  # the output could not be written (closed stdout, full disk): sysexits EX_IOERR



class Number(click.FloatRange):
    """``click.FloatRange`` that also refuses NaN (which compares false with every bound, so a plain
    FloatRange lets ``--keep-days nan`` or ``--timeout nan`` through): a usage error, exit 2.
    ``finite=True`` refuses ``inf`` and ``-inf`` too (a number of seconds to wait for a tool)."""

    def __init__(self, *args: Any, finite: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.finite = finite

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        result = super().convert(value, param, ctx)
        if result != result:
            self.fail(f"{value!r} is not a number", param, ctx)
        if self.finite and result in (float("inf"), float("-inf")):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return result


def dumps_json(value: Any, **kwargs: Any) -> str:
    """``values.dumps_json``, imported when first needed so ``--version`` and ``--help`` start small."""
    from ..values import dumps_json as dumps

    return dumps(value, **kwargs)


class Out:
    """Writes to stdout/stderr; colour (rich) only when the stream is a terminal."""

    @property
    def color(self) -> bool:
        return sys.stdout is not None and sys.stdout.isatty() and not os.environ.get("NO_COLOR")

    def print(self, text: str = "", style: str | None = None, err: bool = False) -> None:
        """Print a line; control characters (from fact values, tool messages, ...) are escaped."""
        from ..textsafe import escape_controls

        text = escape_controls(text)
        stream = sys.stderr if err else sys.stdout
        if style and (stream.isatty() and not os.environ.get("NO_COLOR")):
            from rich.console import Console
            from rich.text import Text

            Console(file=stream, highlight=False, soft_wrap=True).print(Text(text, style=style))
        else:
            click.echo(text, file=stream)


OUT = Out()


def write_text(text: str) -> None:
    """Write rendered text (a proof tree, an explanation) to stdout, control characters escaped
    and ending with a newline."""
    from ..textsafe import escape_controls

    text = escape_controls(text)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def write_json(text: str) -> None:
    """Write a JSON document to stdout as UTF-8 whatever the stream's error handler: a lone
    surrogate (how Python reads a file name that is not UTF-8) is written as its JSON escape
    ``\\udcff``, as the service does, and reads back as the same name."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    sys.stdout.write(text)


def load_tools(spec: str) -> dict[str, Any]:
    """``module:object`` (a dict of callables) or ``module`` / ``module:submodule`` (its public functions);
    the module may be a ``.py`` file path. ``sys.path`` is never modified (see import_tools_module)."""
    from ..engine.tools import ToolSpecError, load_tools_spec

    try:
        return load_tools_spec(spec)
    except ToolSpecError as err:
        raise click.BadParameter(str(err), param_hint="--tools")


class Progress:
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


def run_job(rules: Sequence[str], facts: Sequence[str], opts: dict[str, Any], trace: bool = False,
             all_proofs: bool = False, proofs: bool = True, analyze: bool = False) -> Any:
    """Compile the rules and run one job as the command-line options say (exit 1 with the
    diagnostics when the rules or facts are invalid)."""
    from ..api import load
    from ..diagnostics import ConvergeError
    from ..engine.loop import Budget

    budget = Budget(opts.get("max_cycles"), opts.get("max_facts"), opts.get("max_agents_per_cycle"),
                    opts.get("max_steps"), opts.get("min_confidence"), opts.get("max_bytes"), opts.get("timeout"))
    tools: dict[str, Any] = {}
    for spec in opts.get("tools") or ():
        tools.update(load_tools(spec))
    from .stdin import fact_sources as stdin_sources

    progress = Progress() if sys.stderr.isatty() and not opts.get("quiet") else None
    try:
        facts = stdin_sources(facts, opts.get("facts_format"), opts.get("stdin_filename"))
        ruleset = load(list(rules))
        for w in ruleset.warnings:
            OUT.print(w.render(), err=True)
        return ruleset.run(fact_files=fact_sources(facts, opts.get("table")), budget=budget, tools=tools, workers=opts.get("workers") or 4,
                           tool_timeout=opts.get("tool_timeout"), on_failure=opts.get("on_failure"),
                           goals=list(opts.get("goal") or ()), trace=trace, timestamps=bool(opts.get("timestamps")),
                           progress=progress, all_proofs=all_proofs,
                           tool_isolation=opts.get("tool_isolation") or "thread", proofs=proofs, analyze=analyze)
    except ConvergeError as err:
        if progress:
            progress.close()
        fail_diagnostics(err)
    finally:
        if progress:
            progress.close()


def job_relations(result: Any, only: Sequence[str]) -> list[str]:
    """The relations to show: ``--relation`` names, each once in the order first given (a usage
    error for an unknown one), else all."""
    names = result.relations()
    for name in only:
        if name not in names:
            raise click.UsageError(f"no relation named {name!r}; relations: {', '.join(names)}")
    return list(dict.fromkeys(only)) or names


def policy_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    from ..compile.program import FailurePolicy

    try:
        FailurePolicy.parse(value)
    except ValueError as err:
        raise click.BadParameter(str(err))
    return value


SECONDS = Number(min=0, min_open=True, finite=True)  # a time limit: a finite number of seconds > 0


budget_options = [
    click.option("--max-cycles", type=click.IntRange(min=0), help="Stop after N cycles (tier bounded)."),
    click.option("--max-facts", type=click.IntRange(min=0), help="Keep at most N facts (tier bounded)."),
    click.option("--max-agents-per-cycle", type=click.IntRange(min=1), help="Run at most N agents per cycle (by priority, then declaration order)."),
    click.option("--max-steps", type=click.IntRange(min=0), help="Stop after N rule firings, a deterministic fuel (tier bounded)."),
    click.option("--max-bytes", type=click.IntRange(min=0), help="Stop when the facts would count more than N bytes (a fixed cost per fact, string lengths, big ints; default 268435456; tier bounded)."),
    click.option("--timeout", type=SECONDS, metavar="SECONDS", help="Stop after SECONDS of wall-clock time (tier bounded; not deterministic)."),
    click.option("--min-confidence", type=Number(0, 1, finite=True), help="Drop derived facts below this confidence (tier bounded)."),
    click.option("--tools", "tools", multiple=True, metavar="MODULE[:OBJECT]", help="Host tools: a dict of callables or a module's functions (repeatable)."),
    click.option("--workers", type=click.IntRange(min=1), default=4, show_default=True, help="Threads for the tool calls of one cycle."),
    click.option("--tool-timeout", type=SECONDS, default=30.0, show_default=True, help="Seconds each tool call may take."),
    click.option("--tool-isolation", type=click.Choice(["thread", "process"]), default="thread", show_default=True,
                 help="Run tool calls on threads, or in worker processes that are killed on time-out."),
    click.option("--on-failure", callback=policy_option, metavar="POLICY", help="Default failure policy: abort, skip, or 'retry N then skip|abort'."),
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
    from ..io.database import DatabaseFacts, is_database_url

    out: list[Any] = [DatabaseFacts(f, tuple(sorted((tables or {}).items()))) if isinstance(f, str) and is_database_url(f)
                      else f for f in facts]
    if tables and not any(isinstance(f, DatabaseFacts) for f in out):
        raise click.UsageError("--table needs a database in --facts (sqlite:///PATH.db or postgresql://...)")
    return out


def with_options(options: list[Any]) -> Any:
    """A decorator applying click options in order (a shared option list on several commands)."""
    def wrap(fn: Any) -> Any:
        for opt in reversed(options):
            fn = opt(fn)
        return fn
    return wrap



def fail_diagnostics(err: Any) -> NoReturn:
    """Print a ConvergeError's diagnostics on stderr and exit 1."""
    for d in err.diagnostics:
        OUT.print(d.render(), err=True)
    n = sum(1 for d in err.diagnostics if d.is_error)
    OUT.print(f"{n} error{'s' if n != 1 else ''}", style="bold red", err=True)
    sys.exit(EXIT_INVALID)


record_option = click.option(
    "--record", "record_file", type=click.Path(dir_okay=False), metavar="FILE",
    help="Explain the decision recorded in FILE (written by `run --record`): no re-run, no tool call, "
         "no rule or facts file read.")


record_key_option = click.option(
    "--record-key", "record_key_file", type=click.Path(), metavar="FILE", envvar="CONVERGE_RECORD_KEY_FILE",
    help="Record key: a file holding a secret (at least 16 bytes, not readable by all users); records are then "
         "sealed, or verified, with HMAC-SHA256 under it. Default: $CONVERGE_RECORD_KEY_FILE.")


def record_key_given(name: str = "record_key_file") -> bool:
    """Whether the record key was given on the command line (not taken from the environment):
    an explicit key where no record is written or read is a usage error, the variable is not."""
    ctx = click.get_current_context(silent=True)
    source = ctx.get_parameter_source(name) if ctx is not None else None
    return source is not None and source.name == "COMMANDLINE"


def read_record_key_or_exit(path: str) -> bytes:
    """The secret of a record key file (exit 1 with an E615 diagnostic when it cannot be used;
    the key itself is never printed)."""
    from ..record import RecordError, read_record_key

    try:
        return read_record_key(path)
    except RecordError as err:
        fail_diagnostics(err)


def open_record_or_exit(path: str) -> Any:
    """The record in ``path`` (exit 1 with a located diagnostic when it cannot be read)."""
    from ..diagnostics import ConvergeError
    from ..record import open_record

    try:
        record = open_record(path)
        record.result  # compile the recorded rules now, so a broken record fails here, clearly
    except ConvergeError as err:
        fail_diagnostics(err)
    return record


def no_job_options(record_file: str, facts: Any = (), opts: Any = None) -> None:
    """With --record, options that describe a new job make no sense: refuse them (exit 2)."""
    ctx = click.get_current_context(silent=True)

    def defaulted(name: str) -> bool:
        source = ctx.get_parameter_source(name) if ctx is not None else None
        return source is not None and source.name in ("DEFAULT", "DEFAULT_MAP")

    given = [name for name, value in (opts or {}).items()
             if value not in (None, (), False) and name not in ("workers", "tool_timeout", "quiet")
             and not defaulted(name)]
    if facts:
        given.insert(0, "facts")
    if given:
        flags = ", ".join("--" + g.replace("_", "-") for g in given)
        raise click.UsageError(f"{flags}: not with --record {record_file} (a record explains the job it recorded)")
