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
from .commands.common import (EXIT_ABSENT, EXIT_INTERNAL, EXIT_OUTPUT, EXIT_TIER, OUT, budget_options, dumps_json,
                              fail_diagnostics, job_relations, run_job, with_options, write_json, write_text)
from .commands.stdin import STDIN_OPTIONS
from .textsafe import one_line

_TIER_STYLE = {"converged": "bold green", "degraded": "bold yellow", "bounded": "bold yellow", "failed": "bold red"}


def _header(result: Any) -> None:
    OUT.print(f"tier: {result.tier.value}", style=_TIER_STYLE[result.tier.value])
    if not result.reasons:
        OUT.print("reasons: none")
    else:
        OUT.print("reasons:")
        for reason in result.reasons:
            OUT.print(f"  - [{reason.kind}] {one_line(reason.message)}")  # a `fail` or tool message may hold line breaks
            for v in reason.details.get("violations", []):
                for match in v["matches"]:
                    binding = ", ".join(f"{k} = {dumps_json(val, ensure_ascii=False)}" for k, val in match["bindings"].items())
                    OUT.print(f"      {v['invariant']}: {', '.join(match['facts']) or '(no facts)'}" + (f"  with {binding}" if binding else ""))
    OUT.print(f"cycles: {result.cycles}")
    OUT.print(f"facts: {result.total_facts}")
    OUT.print(f"digest: {result.digest}")


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
@click.option("--record-key", "record_key_file", type=click.Path(), metavar="FILE", envvar="CONVERGE_RECORD_KEY_FILE",
              help="Seal the --record with HMAC-SHA256 under the secret in FILE (at least 16 bytes, not readable by "
                   "all users), so `verify --record-key FILE` can tell it from a forged one. "
                   "Default: $CONVERGE_RECORD_KEY_FILE.")
@with_options(budget_options + STDIN_OPTIONS)
def run(rules: tuple[str, ...], facts: tuple[str, ...], fmt: str, only: tuple[str, ...], out_dir: str | None,
        proofs: str | None, trace_file: str | None, record_file: str | None, record_key_file: str | None,
        **opts: Any) -> None:
    """Evaluate RULES over facts to a fixed point and print the result."""
    from .commands.common import read_record_key_or_exit, record_key_given

    if proofs == "none" and record_file is not None:
        raise click.UsageError("--record needs proofs: it cannot be combined with --proofs none")
    if record_key_file and record_file is None and record_key_given():
        raise click.UsageError("--record-key seals a decision record: give --record FILE too")
    key = read_record_key_or_exit(record_key_file) if record_key_file and record_file is not None else None  # before the run
    result = run_job(rules, facts, opts, trace=trace_file is not None or record_file is not None,
                      all_proofs=proofs == "all", proofs=proofs != "none")
    if proofs == "none":
        proofs = None  # nothing to print
    if record_file is not None:  # "" too: E507, never a silent no-op
        from .diagnostics import ConvergeError

        try:
            result.to_record(key=key).write(record_file)
        except ConvergeError as err:
            fail_diagnostics(err)
    if trace_file is not None:
        from .diagnostics import ConvergeError
        from .io import write_atomic

        try:
            write_atomic(trace_file, result.trace_jsonl())
        except ConvergeError as err:
            fail_diagnostics(err)
    names = job_relations(result, only)
    if out_dir is not None:
        from .diagnostics import ConvergeError
        from .io import write_csv_dir

        try:
            write_csv_dir(out_dir, {n: result.facts(n) for n in names}, result.program.schema())
        except ConvergeError as err:
            fail_diagnostics(err)
    if fmt == "json":
        write_json(result.to_json(proofs=proofs is not None, relations=only or None, all_proofs=proofs == "all"))
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
@with_options(budget_options + STDIN_OPTIONS)
def why(args: tuple[str, ...], facts: tuple[str, ...], fmt: str, depth: int | None, all_: bool, limit: int,
        support: bool, record_file: str | None, **opts: Any) -> None:
    """Explain why FACT holds: its proof tree down to input facts.

    Arguments: RULES... FACT (the fact is the last argument), or with
    --record FILE only FACT. A pattern with variables or _ (such as
    'decision(l, "reject")') explains each matching fact, at most --limit.
    """
    from .diagnostics import ConvergeError
    from .explain.render import RENDERERS

    if record_file is not None:  # "" too: a record that cannot be read (E610), never a silent re-run
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
    if support and fmt in ("dot", "mermaid"):
        raise click.UsageError(f"--support prints a list of input facts, not a graph: use --format text or json, not {fmt}")
    if pattern and (support or all_):
        raise click.UsageError(f"{'--support' if support else '--all'} explains one fact, and {fact_text} is a pattern: "
                               "give a fact without variables or _ (converge query lists the matches)")
    if result is None:
        result = run_job(rules, facts, opts, all_proofs=all_)
    if pattern:
        _why_pattern(result, fact_text, fmt, depth, limit)
        return
    try:
        relation, values = result.parse_fact(fact_text)
    except ConvergeError as err:
        fail_diagnostics(err)
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
            OUT.print(f"{shown} does not hold: no agent derived it (tier {result.tier.value}, {result.cycles} cycle{'' if result.cycles == 1 else 's'})", err=True)
        sys.exit(EXIT_ABSENT)
    if result.tier.value != "converged" and fmt == "text":
        OUT.print(f"note: the job ended {result.tier.value}; the proof is still valid", err=True)
    if support:
        rows = result.support(relation, values)
        if fmt == "json":
            write_json(dumps_json({"fact": shown, "support": [format_fact(r, f) for r, f in rows]}, indent=2,
                                        ensure_ascii=False) + "\n")
        else:
            OUT.print(f"{shown} rests on {len(rows)} input fact{'s' if len(rows) != 1 else ''}:")
            for r, f in rows:
                src = result.proof(r, f).source  # type: ignore[union-attr]
                where = f"  [{src[0]}:{src[1]}]" if src and src[1] else (f"  [{src[0]}]" if src else "")
                OUT.print(f"  {format_fact(r, f)}{where}")
        return
    if all_:
        from .explain.render import build_tree, comment_line, dumps_tree_json

        proofs = result.proofs(relation, values, limit=limit)
        trees = [build_tree(p, result.proof, depth) for p in proofs]
        if fmt == "json":
            write_json(dumps_tree_json({"fact": shown, "derivations": [t.to_json() for t in trees]}) + "\n")
            return
        for k, t in enumerate(trees, 1):
            OUT.print(comment_line(fmt, f"derivation {k} of {len(trees)}" + (" (first)" if k == 1 else "")), style="bold")
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
    from .explain.render import RENDERERS, comment_line, dumps_tree_json
    from .record import query
    from .values import format_fact

    try:
        matches = query(result, pattern)
    except ConvergeError as err:
        fail_diagnostics(err)
    if not matches:
        OUT.print(f"no fact matches {pattern}", err=True)
        sys.exit(EXIT_ABSENT)
    shown = matches[:limit]
    trees = [result.why(m, depth=depth) for m in shown]
    if fmt == "json":
        write_json(dumps_tree_json({"pattern": pattern, "matches": len(matches),
                                          "explained": [t.to_json() for t in trees]}) + "\n")
        return
    for k, ((rel, fact), t) in enumerate(zip(shown, trees), 1):
        OUT.print(comment_line(fmt, f"match {k} of {len(matches)}: {format_fact(rel, fact)}"), style="bold")
        write_text(RENDERERS[fmt](t))
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
    if argv is not None or not _one_shot(args):
        _main(argv)
        return
    try:
        _main(None)
        code: Any = 0
    except SystemExit as done:
        code = done.code
    _exit_now(code)


def _one_shot(args: Sequence[str]) -> bool:
    """A command that runs one job of converge's own code and exits. With ``--tools`` the
    user's code runs in this process: it gets the interpreter's ordinary collector and exit
    (its finalizers flush and close the files it writes)."""
    if any(a == "--tools" or a.startswith("--tools=") for a in args):
        return False
    return next((a for a in args if not a.startswith("-")), None) in _ONE_SHOT


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
    # run one job and exit turn it off; long-lived ones (a server, a batch) and jobs running
    # the user's tools keep it.
    args = list(argv) if argv is not None else sys.argv[1:]
    if _one_shot(args):
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
        fail_diagnostics(err)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        _discard_stdout()
        sys.exit(0)
    except OSError as err:
        if err.errno not in _OUTPUT_ERRNOS:  # not the output failing: an error no command handled
            _internal_error(err)
        _discard_stdout()
        reason = "standard output is closed" if err.errno == errno.EBADF else (err.strerror or str(err)).lower()
        click.echo(f"converge: cannot write the output: {reason}", err=True)
        sys.exit(EXIT_OUTPUT)
    except Exception as err:  # pragma: no cover - a bug in converge itself
        _internal_error(err)


def _internal_error(err: BaseException) -> NoReturn:
    """Exit 70 with one line naming the error (the traceback with CONVERGE_DEBUG=1): a bug in converge."""
    if os.environ.get("CONVERGE_DEBUG"):
        raise err
    from .textsafe import escape_controls

    click.echo(escape_controls(f"converge: internal error: {type(err).__name__}: {err}\n"
                               "This is a bug in converge; set CONVERGE_DEBUG=1 for the traceback."), err=True)
    sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":  # pragma: no cover
    main()
