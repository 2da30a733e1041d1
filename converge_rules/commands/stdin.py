"""Standard input for the commands: ``-`` as a rule file (``check -``, ``fmt -``) or a
facts source (``--facts -``), named for diagnostics by ``--stdin-filename``.

Standard input is read once, whole, as UTF-8; a second ``-`` on one command line
is a usage error (there is only one standard input).
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

import click

STDIN = "-"
STDIN_NAME = "<stdin>"

stdin_filename_option = click.option(
    "--stdin-filename", metavar="NAME",
    help="The file name for text read from standard input (`-`): shown in diagnostics; its extension "
         "gives the facts format and a CSV file's relation (edge.csv).")
facts_format_option = click.option(
    "--facts-format", type=click.Choice(["json", "jsonl", "csv", "tsv", "facts", "cvg"]),
    help="The format of facts read from standard input (--facts -), when neither --stdin-filename "
         "nor the text tells it.")

# The options of every command with --facts (run, why, why-not).
STDIN_OPTIONS = [facts_format_option, stdin_filename_option]


def read_stdin(name: str, code: str = "E500") -> str:
    """All of standard input as text; a ConvergeError (``code``) when it is not UTF-8."""
    from ..diagnostics import ConvergeError, Diagnostic, Span  # here, not at the top: the CLI imports this module at start-up

    data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode("utf-8")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ConvergeError([Diagnostic(code, f"standard input is not valid UTF-8 (byte 0x{data[err.start]:02x})",
                                        Span(name, line, 0), notes=("is it a binary file?",))]) from None
    return text.removeprefix("\ufeff")


def one_stdin(paths: Sequence[str], what: str) -> None:
    """A usage error when ``-`` appears more than once."""
    if sum(1 for p in paths if p == STDIN) > 1:
        raise click.UsageError(f"standard input (`-`) can be read only once; it is given twice as {what}")


def fact_sources(paths: Sequence[str], facts_format: str | None, stdin_filename: str | None) -> list[Any]:
    """Facts paths with ``-`` replaced by the text of standard input (an ``io.FactText``)."""
    if STDIN not in paths:
        if facts_format is not None:
            raise click.UsageError("--facts-format applies to facts read from standard input (--facts -)")
        return list(paths)
    from ..io import FactText, guess_format

    one_stdin(paths, "--facts")
    name = stdin_filename or STDIN_NAME
    text = read_stdin(name)
    fmt = facts_format or guess_format(text, stdin_filename or "")
    if fmt is None:
        raise click.UsageError("cannot tell the format of the facts on standard input; "
                               "give --facts-format json|jsonl|csv (or --stdin-filename with an extension)")
    if fmt in ("csv", "tsv") and stdin_filename is None:
        raise click.UsageError(f"{fmt.upper()} facts name their relation by the file name: "
                               f"give --stdin-filename RELATION.{fmt} for facts on standard input")
    return [FactText(name, text, fmt) if p == STDIN else p for p in paths]
