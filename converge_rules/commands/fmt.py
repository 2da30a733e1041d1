"""`converge fmt`: rewrite rule files in the canonical layout (see converge_rules.syntax.format)."""

from __future__ import annotations

import difflib
import os
import sys

import click

from ..textsafe import one_line
from .common import EXIT_INVALID, EXIT_OK, OUT
from .stdin import stdin_filename_option

EXAMPLE = "Example: converge fmt --check examples/"


def cvg_paths(paths: tuple[str, ...] | list[str]) -> list[str]:
    """Files as given, directories expanded to their ``*.cvg`` files (``rule_files_under``);
    a file given twice (another spelling, a symbolic link, a directory that holds it) once,
    in the place it is first given, under the spelling that names it in ``check`` and ``run``
    (``spelling_order``), whatever the order of the command line."""
    from ..compile.sources import rule_files_under, spelling_order

    out: dict[str, str] = {}
    for path in paths:
        found = sorted(os.path.normpath(f) for f in rule_files_under(path)) if os.path.isdir(path) else [path]
        for file in found:
            real = os.path.realpath(file)
            if real not in out or spelling_order(file) < spelling_order(out[real]):
                out[real] = file
    return list(out.values())


def _lines(text: str) -> list[str]:
    """The lines of a text as a diff (and `patch`) counts them: each ends at LF, which it keeps.
    Not str.splitlines: a CR, a form feed or U+2028 inside a line is part of it."""
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])


def _diff(path: str, old: str, new: str) -> str:
    """A unified diff from ``old`` to ``new`` that `patch` applies to the file as stored."""
    out = []
    for line in difflib.unified_diff(_lines(old), _lines(new),
                                     fromfile=f"{one_line(path)} (original)", tofile=f"{one_line(path)} (formatted)"):
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


@click.command(epilog=EXAMPLE)
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, allow_dash=True))
@click.option("--check", is_flag=True, help="Write nothing; list the files that would change (exit 1 if any).")
@click.option("--diff", is_flag=True, help="Write nothing; print a unified diff of the changes (exit 1 if any).")
@stdin_filename_option
def fmt(paths: tuple[str, ...], check: bool, diff: bool, stdin_filename: str | None) -> None:
    """Format PATHS (files, or directories searched for *.cvg) in the canonical layout.

    Comments are kept and formatting twice changes nothing. Exit codes: 0 all
    files formatted (or, with --check/--diff, already formatted), 1 a file would
    change (--check/--diff) or has a syntax error, 2 usage error.

    `-` alone reads standard input and writes the formatted text to standard
    output (as editors expect of a formatter); --stdin-filename names it in
    diagnostics.
    """
    from ..diagnostics import ConvergeError
    from ..io.writers import write_atomic
    from ..syntax.format import format_source
    from ..syntax.parser import read_rule_file

    from .stdin import STDIN, STDIN_NAME

    if STDIN in paths:
        if len(paths) > 1:
            raise click.UsageError("`-` (standard input) cannot be formatted together with files")
        _format_stdin(stdin_filename or STDIN_NAME, check, diff)
    changed = errors = 0
    for path in cvg_paths(paths):
        try:
            text = read_rule_file(path, raw=True)  # as stored: a BOM or CRLF line ends are rewritten
            formatted = format_source(text, path)
            if formatted == text:
                continue
            changed += 1
            if diff:
                sys.stdout.write(_diff(path, text, formatted))
            if check and not diff:
                OUT.print(f"would reformat {one_line(path)}")
            if not check and not diff:
                write_atomic(path, formatted)
                OUT.print(f"reformatted {one_line(path)}")
        except ConvergeError as err:
            errors += 1
            for d in err.diagnostics:
                OUT.print(d.render(), err=True)
    if errors:
        OUT.print(f"{errors} file{'s' if errors != 1 else ''} with errors", style="bold red", err=True)
    sys.exit(EXIT_INVALID if errors or (changed and (check or diff)) else EXIT_OK)


def _format_stdin(name: str, check: bool, diff: bool) -> None:
    """Standard input formatted to standard output (or, with --check/--diff, only judged); exits."""
    from ..diagnostics import ConvergeError
    from ..syntax.format import format_source
    from .stdin import read_stdin

    try:
        text = read_stdin(name, "E002")
        formatted = format_source(text, name)
    except ConvergeError as err:
        for d in err.diagnostics:
            OUT.print(d.render(), err=True)
        OUT.print("1 file with errors", style="bold red", err=True)
        sys.exit(EXIT_INVALID)
    if diff:
        sys.stdout.write(_diff(name, text, formatted))
    elif check:
        if formatted != text:
            OUT.print(f"would reformat {one_line(name)}")
    else:
        sys.stdout.write(formatted)
    sys.exit(EXIT_INVALID if (check or diff) and formatted != text else EXIT_OK)
