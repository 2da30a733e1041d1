"""`converge verify RESULT`: re-check every proof of a result with the independent checker."""

from __future__ import annotations

import sys
from typing import Any

import click

from .common import EXIT_OK, OUT, fail_diagnostics, read_record_key_or_exit, record_key_given, record_key_option

EXIT_PROOF_FAILS = 8  # a proof does not check (or a fact of the result has none)


@click.command(epilog="Example: converge run examples/loans/loans.cvg --facts examples/loans/facts.json "
                      "--format json --proofs > result.json && converge verify result.json")
@click.argument("result_file", type=click.Path(dir_okay=False), required=False)
@click.option("--all", "show_all", is_flag=True, help="List every failure, not only the first.")
@click.option("--record", "record_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Verify the decision record FILE (a record given as RESULT_FILE is recognised too).")
@record_key_option
def verify(result_file: str | None, show_all: bool, record_file: str | None, record_key_file: str | None) -> None:
    """Re-check every proof in RESULT_FILE (written by `run --format json --proofs`).

    The rule files and facts files named in the result's "job" are read again
    and each proof is checked by a small checker that does not use the
    evaluator: the agent's emit gives the fact, the premises match the body and
    hold, negated atoms have no match, comparisons and aggregates hold, and
    every premise came before the fact. Exit 0 when all hold, 8 with the first
    bad proof otherwise (--all: every one), 1 when the file or the job cannot
    be read.

    A decision record (`run --record`) is checked from its own contents: its
    seal, each rule file's SHA-256, the rule set digest and the facts' digest
    must match (a record changed after it was written is refused, exit 8),
    then every proof is checked against the recorded rules. With --record-key
    FILE (or $CONVERGE_RECORD_KEY_FILE) the record must carry an HMAC-SHA256
    seal under that key (E616 altered or another key, E617 a plain seal: exit
    8); without a key, a keyed record's authenticity is not checked (a note
    says so). An unusable key file is E615, exit 1.
    """
    from ..diagnostics import ConvergeError
    from ..explain.checker import verify_file
    from ..record import looks_like_record

    if (result_file is None) == (record_file is None):
        raise click.UsageError("give a RESULT_FILE or --record FILE")
    is_record = record_file is not None or looks_like_record(result_file)  # type: ignore[arg-type]
    if record_key_file and not is_record and record_key_given():
        raise click.UsageError("--record-key checks a decision record; RESULT_FILE is a result (run --format json)")
    key = read_record_key_or_exit(record_key_file) if record_key_file and is_record else None
    try:
        if is_record:
            from ..record import NOT_AUTHENTICATED, open_record

            record = open_record(record_file or result_file)  # type: ignore[arg-type]
            report = record.verify(key=key)
        else:
            report = verify_file(result_file, _read_stdin(result_file))  # type: ignore[arg-type]
    except ConvergeError as err:
        fail_diagnostics(err)
    for line in report.note_lines():
        OUT.print(f"note: {line}", err=True)
    if report.ok:
        summary = report.summary
        if is_record and key is not None:
            summary += "; the record is authentic (its hmac-sha256 seal holds under the record key)"
        elif is_record and NOT_AUTHENTICATED in report.notes:
            summary += "; authenticity NOT checked (keyed seal, no --record-key)"
        OUT.print(summary)
        sys.exit(EXIT_OK)
    shown = report.failures if show_all else report.failures[:1]
    for failure in shown:
        OUT.print(failure.render())
    more = "" if show_all or len(report.failures) == 1 else " (--all lists every failure)"
    OUT.print(f"{report.summary}{more}", style="bold red")
    sys.exit(EXIT_PROOF_FAILS)


def _read_stdin(result_file: str) -> Any:
    """A reader of standard input, for a job that read its facts there: the checker calls it only
    then, and compares the text with the SHA-256 the result records (as `replay` does)."""
    def read() -> str:
        hint = f"give the same text on standard input: converge verify {result_file} < FILE"
        if sys.stdin is None or sys.stdin.isatty():
            OUT.print(f"the job read its facts from standard input: {hint}", err=True)
            sys.exit(2)
        try:
            return sys.stdin.read()
        except (OSError, UnicodeDecodeError) as err:
            OUT.print(f"cannot read standard input: {err}", err=True)
            sys.exit(1)
    return read
