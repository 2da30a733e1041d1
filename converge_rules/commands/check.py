"""`converge check`: every static check (errors and lint warnings) without evaluation.

Each rule file is checked as a root program (with the modules it imports);
directories are searched recursively for ``*.cvg`` files. Output formats:
``text`` (compiler style, with the source line and a caret), ``json`` (a
stable schema, documented in docs/diagnostics.md), ``sarif`` (SARIF 2.1.0,
for code-scanning tools) and ``github`` (workflow-command annotations).

Exit codes: 0 clean; 1 errors, or warnings with ``--strict``; 2 usage or
I/O error (a path that does not exist, a directory without rule files, a
rule file that cannot be read).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence
from urllib.parse import quote

import click

from ..values import dumps_json
from .common import EXIT_INVALID, EXIT_OK, EXIT_USAGE, OUT, write_json
from ..diagnostics import Diagnostic
from .stdin import stdin_filename_option

JSON_VERSION = 1
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
IO_CODES = frozenset({"E001", "E002"})  # a rule file that cannot be read: exit 2


def collect_files(paths: Sequence[str]) -> list[str]:
    """The rule files named by PATHS (``collect_rule_files``); a directory without any is a usage error."""
    from ..compile.sources import collect_rule_files

    try:
        return collect_rule_files(paths)
    except ValueError as err:
        raise click.UsageError(str(err)) from None


def _disabled_codes(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> frozenset[str]:
    from ..lint import WARNING_CODES

    codes = set()
    for value in values:
        for code in (c.strip().upper() for c in value.split(",")):
            if not code:
                continue
            if code in WARNING_CODES:
                codes.add(code)
            elif code.startswith("E"):
                raise click.BadParameter(f"{code} is an error; only warnings can be disabled", ctx, param)
            else:
                raise click.BadParameter(f"unknown warning code {code!r}; warning codes: {', '.join(WARNING_CODES)}", ctx, param)
    return frozenset(codes)


@click.command(epilog="Example: converge check rules/ --format sarif > converge.sarif")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, allow_dash=True))
@click.option("--format", "fmt", type=click.Choice(["text", "json", "sarif", "github"]), default="text",
              show_default=True, help="Output format.")
@click.option("--strict", is_flag=True, help="Exit 1 when there are warnings, not only errors.")
@click.option("--disable", "disabled", multiple=True, metavar="CODE", callback=_disabled_codes,
              help="Do not report this warning code (repeatable, or comma-separated).")
@click.option("--partition-by", "partition_by", metavar="COLUMN",
              help="Warn (W500) about rules that join partitioned relations across partitions of COLUMN (converge batch).")
@stdin_filename_option
def check(paths: tuple[str, ...], fmt: str, strict: bool, disabled: frozenset[str], partition_by: str | None,
          stdin_filename: str | None) -> None:
    """Check rule files without evaluating them: errors and warnings.

    PATHS are rule files or directories (searched recursively for *.cvg);
    each file is checked as a program of its own. Silence a warning on one
    line with a comment `# converge: disable=W100` on that line or alone on
    the line before it.

    Exit codes: 0 clean, 1 errors (or warnings with --strict), 2 usage or I/O error.
    """
    from ..diagnostics import sort_diagnostics
    from ..lint import check_files

    from ..diagnostics import ConvergeError
    from .stdin import STDIN, STDIN_NAME, one_stdin, read_stdin

    one_stdin(paths, "a path")
    files = collect_files([p for p in paths if p != STDIN])
    diags: list[Diagnostic] = []
    texts: dict[str, str] = {}
    if STDIN in paths:
        name = stdin_filename or STDIN_NAME
        try:
            texts[name] = read_stdin(name, "E002")
        except ConvergeError as err:
            diags.extend(err.diagnostics)
    try:
        diags.extend(check_files(files, disabled, partition_by, texts=texts))
    except ValueError as err:  # standard input named as a file checked (--stdin-filename)
        raise click.UsageError(f"standard input (named by --stdin-filename): {err}") from None
    if STDIN in paths:
        files.append(stdin_filename or STDIN_NAME)
    diags = sort_diagnostics(diags)
    errors = sum(1 for d in diags if d.is_error)
    warnings = sum(1 for d in diags if d.severity == "warning")
    summary = {"errors": errors, "warnings": warnings, "files": len(files)}
    if fmt == "json":
        write_json(render_json(diags, summary))
    elif fmt == "sarif":
        write_json(render_sarif(diags))
    elif fmt == "github":
        for line in render_github(diags):
            OUT.print(line)
        OUT.print(summary_line(errors, warnings))
    else:
        for d in diags:
            OUT.print(d.render())
        OUT.print(summary_line(errors, warnings))
    if any(d.code in IO_CODES for d in diags):
        sys.exit(EXIT_USAGE)
    sys.exit(EXIT_INVALID if errors or (strict and warnings) else EXIT_OK)


def summary_line(errors: int, warnings: int) -> str:
    return f"{errors} error(s), {warnings} warning(s)" if errors or warnings else "no problems found"


# ---------------------------------------------------------------- JSON

def render_json(diags: Sequence[Diagnostic], summary: dict[str, int]) -> str:
    """``{"version": 1, "diagnostics": [...], "summary": {...}}`` (docs/diagnostics.md)."""
    doc = {"version": JSON_VERSION, "diagnostics": [d.to_json() for d in diags], "summary": summary}
    return dumps_json(doc, indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------- SARIF 2.1.0

def artifact_uri(file: str) -> str:
    """A file as a URI reference relative to the current directory (absolute ``file:`` URI
    for a file outside it, such as a standard library module). Every byte of the name
    outside RFC 3986's unreserved characters is percent-encoded: UTF-8 for a name that is
    text, the name's own bytes for one that is not UTF-8."""
    absolute = Path(os.path.abspath(file))
    try:
        relative = absolute.relative_to(Path.cwd())
    except ValueError:
        return absolute.as_uri()
    return quote(os.fsencode(relative.as_posix()), safe="/")


def _message(d: Diagnostic) -> str:
    return "\n".join([d.message, *(f"note: {n}" for n in d.notes)])


def render_sarif(diags: Sequence[Diagnostic]) -> str:
    from .. import __version__
    from ..lint.codes import describe, docs_reference, help_text

    codes = sorted({d.code for d in diags})
    level = {d.code: ("error" if d.is_error else "warning" if d.severity == "warning" else "note") for d in diags}
    rules = []
    for code in codes:
        # No helpUri: SARIF wants an absolute URI there, and the docs have no address yet.
        text = help_text(code) or describe(code)
        rule: dict[str, object] = {
            "id": code, "shortDescription": {"text": describe(code)},
            "help": {"text": f"{text}\n\nDocumentation: {docs_reference(code)} in the Converge repository."},
            "defaultConfiguration": {"level": level[code]},
        }
        rules.append(rule)
    index = {code: i for i, code in enumerate(codes)}
    results = []
    for d in diags:
        location: dict[str, object] = {"artifactLocation": {"uri": artifact_uri(d.span.file)}}
        if d.span.line > 0:
            end_line = max(d.span.end_line, d.span.line)
            end_col = d.span.end_col if (end_line, d.span.end_col) > (d.span.line, d.span.col) else d.span.col + 1
            location["region"] = {"startLine": d.span.line, "startColumn": max(d.span.col, 1),
                                  "endLine": end_line, "endColumn": max(end_col, 1)}
        results.append({"ruleId": d.code, "ruleIndex": index[d.code], "level": level[d.code],
                        "message": {"text": _message(d)}, "locations": [{"physicalLocation": location}]})
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "converge", "version": __version__, "semanticVersion": __version__,
                                "rules": rules}},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    }
    return dumps_json(log, indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------- GitHub Actions

def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(diags: Sequence[Diagnostic]) -> list[str]:
    """One workflow command per diagnostic: ``::error file=F,line=L,col=C,title=E200::message``."""
    out = []
    for d in diags:
        command = "error" if d.is_error else "warning" if d.severity == "warning" else "notice"
        props = [f"file={_escape_property(_relative(d.span.file))}"]
        if d.span.line > 0:
            props += [f"line={d.span.line}", f"col={max(d.span.col, 1)}"]
        props.append(f"title={_escape_property(d.code)}")
        out.append(f"::{command} {','.join(props)}::{_escape_data(_message(d))}")
    return out


def _relative(file: str) -> str:
    absolute = os.path.abspath(file)
    relative = os.path.relpath(absolute)
    return file if relative.startswith("..") else Path(relative).as_posix()
