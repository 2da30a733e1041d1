"""Helpers shared by command modules (public, so commands never reach into cli.py's privates)."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

EXIT_INVALID = 1


def fail_diagnostics(err: Any) -> NoReturn:
    """Print a ConvergeError's diagnostics on stderr and exit 1."""
    from ..cli import OUT

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
