"""`converge query`: every fact matching a pattern, from a job or a decision record."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from ..values import dumps_json
from .common import fail_diagnostics, open_record_or_exit, record_option, write_json

EXIT_NO_MATCH = 6  # as for why: the fact (here: any match) does not hold

EXAMPLE = ("Example: converge query examples/loans/loans.cvg --facts examples/loans/facts.json 'decision(l, \"reject\")'"
           "\n\nFrom a record: converge query --record r.json 'decision(l, \"reject\")' --why")


@click.command(epilog=EXAMPLE)
@click.argument("args", nargs=-1, required=True)
@click.option("--facts", "facts", multiple=True, type=click.Path(), help="Facts file or directory (repeatable).")
@click.option("--tools", "tools", multiple=True, metavar="MODULE[:OBJECT]", help="Host tools for the job (repeatable).")
@record_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--why", "explain", is_flag=True, help="Explain each match: its proof tree.")
@click.option("--depth", type=click.IntRange(min=0), help="With --why: expand each proof at most N levels deep.")
@click.option("--limit", type=click.IntRange(min=1), help="Show (and explain) at most K matches.")
def query(args: tuple[str, ...], facts: tuple[str, ...], tools: tuple[str, ...], record_file: str | None, fmt: str,
          explain: bool, depth: int | None, limit: int | None) -> None:
    """Print every fact matching PATTERN, such as 'decision(l, "reject")'.

    Arguments: RULES... PATTERN (the job is run), or with --record FILE only
    PATTERN (read from the record: no re-run, no tool call). Constants must
    match, a variable used twice binds one value, _ matches anything. Facts
    are printed sorted. Exit 0 when something matches, 6 when nothing does,
    1 for invalid rules, facts, record or pattern.
    """
    from ..diagnostics import ConvergeError
    from ..record import query as run_query

    if record_file is not None:  # "" too: a record that cannot be read (E610), never a silent re-run
        if len(args) != 1:
            raise click.UsageError("with --record give only the pattern, e.g. converge query --record r.json 'decision(l, _)'")
        if facts or tools:
            raise click.UsageError(f"--facts/--tools: not with --record {record_file} (a record holds its job)")
        result = open_record_or_exit(record_file).result
    else:
        if len(args) < 2:
            raise click.UsageError("give the rule files and then the pattern, e.g. converge query rules.cvg 'path(x, \"c\")'")
        if args[-1].endswith(".cvg") and os.path.exists(args[-1]):
            raise click.UsageError("the last argument must be a pattern such as 'decision(l, \"reject\")'")
        result = _run(args[:-1], facts, tools)
    pattern = args[-1]
    try:
        matches = run_query(result, pattern)
    except ConvergeError as err:
        fail_diagnostics(err)
    shown = matches[:limit] if limit is not None else matches
    from ..values import format_fact

    if fmt == "json":
        out: dict[str, Any] = {"pattern": pattern, "count": len(matches),
                               "facts": [{"relation": r, "fact": list(f), "text": format_fact(r, f)} for r, f in shown]}
        if explain:
            from ..explain.render import dumps_tree_json

            for item, (r, f) in zip(out["facts"], shown):
                tree = result.why((r, f), depth=depth)
                item["proof"] = tree.to_json() if tree is not None else None
            write_json(dumps_tree_json(out) + "\n")  # proofs may be thousands of levels deep
        else:
            write_json(dumps_json(out, indent=2, ensure_ascii=False) + "\n")
    else:
        from ..explain.render import render_text
        from .common import OUT

        for r, f in shown:  # OUT.print: control characters in values are shown escaped
            OUT.print(format_fact(r, f))
            if explain:
                tree = result.why((r, f), depth=depth)
                if tree is not None:
                    text = render_text(tree)
                    OUT.print("    " + text.rstrip("\n").replace("\n", "\n    "))
        more = f" (showing {len(shown)})" if len(shown) < len(matches) else ""
        click.echo(f"{len(matches)} match{'es' if len(matches) != 1 else ''}{more}", err=True)
    sys.exit(0 if matches else EXIT_NO_MATCH)


def _run(rules: tuple[str, ...], facts: tuple[str, ...], tool_specs: tuple[str, ...]) -> Any:
    from ..api import load
    from .common import OUT, load_tools
    from ..diagnostics import ConvergeError

    tools: dict[str, Any] = {}
    for spec in tool_specs:
        tools.update(load_tools(spec))
    try:
        ruleset = load(list(rules))
        for w in ruleset.warnings:
            OUT.print(w.render(), err=True)
        return ruleset.run(fact_files=list(facts), tools=tools)
    except ConvergeError as err:
        fail_diagnostics(err)
