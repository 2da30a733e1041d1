"""`converge check`: static checks without evaluation."""

from __future__ import annotations

import json
import sys

import click

from ..cli import EXIT_INVALID, EXIT_OK, OUT


@click.command(epilog="Example: converge check examples/loans/loans.cvg")
@click.argument("rules", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def check(rules: tuple[str, ...], fmt: str) -> None:
    """Check RULES without evaluating them; print every diagnostic."""
    from ..api import check as check_paths

    diags = check_paths(list(rules))
    if fmt == "json":
        sys.stdout.write(json.dumps({"diagnostics": [d.to_json() for d in diags]}, indent=1) + "\n")
    else:
        for d in diags:
            OUT.print(d.render())
        errors = sum(1 for d in diags if d.is_error)
        OUT.print(f"{errors} error(s), {len(diags) - errors} warning(s)" if diags else "no problems found")
    sys.exit(EXIT_INVALID if any(d.is_error for d in diags) else EXIT_OK)
