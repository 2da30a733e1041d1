"""`converge test`: run the ``test`` blocks of rule files.

Exit codes: 0 every selected test passed (and coverage met the threshold),
1 a test failed or errored, or coverage is below ``--coverage-threshold``,
2 usage error, a path that does not exist, a test file that does not
compile, or a JUnit file that cannot be written.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ..values import dumps_json
from .common import OUT, Number, write_json

EXIT_PASS, EXIT_FAIL, EXIT_LOAD = 0, 1, 2
EXIT_NO_TESTS = 5  # as pytest: a CI job whose tests all went missing (a moved file, a -k typo) must not pass


@click.command(epilog="Example: converge test examples/ --junit report.xml --coverage")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-k", "pattern", metavar="PATTERN",
              help="Run only tests whose 'file::test name' contains PATTERN or matches it as a glob.")
@click.option("--junit", "junit", type=click.Path(dir_okay=False), metavar="FILE", help="Also write a JUnit XML report to FILE.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--coverage", is_flag=True, help="Report, per file, the agents that fired in at least one test and those that never did.")
@click.option("--coverage-threshold", "threshold", type=Number(0, 100), metavar="PCT",
              help="Fail (exit 1) when the total agent coverage is below PCT percent (implies --coverage).")
@click.option("--why-depth", type=click.IntRange(min=1), default=1, show_default=True,
              help="Depth of the why-not explanation of a missing expected fact.")
@click.option("--facts", "facts", multiple=True, metavar="PATH|URL",
              help="Facts every test runs over, under its own given facts: a file, a directory, "
                   "sqlite:///PATH.db or postgresql://... (repeatable).")
@click.option("--table", "tables", multiple=True, metavar="REL=SQL",
              help="With a database in --facts: read REL with this SELECT (repeatable).")
@click.option("--tools", "tools", multiple=True, metavar="MODULE[:OBJECT]",
              help="Host tools for the rules' @name(...) calls, given to every test, as for run (repeatable).")
@click.option("--allow-no-tests", is_flag=True,
              help="Exit 0 when no test ran (none found or none selected by -k); without it that is exit 5.")
def test(paths: tuple[str, ...], pattern: str | None, junit: str | None, fmt: str, coverage: bool,
         threshold: float | None, why_depth: int, facts: tuple[str, ...], tables: tuple[str, ...],
         tools: tuple[str, ...], allow_no_tests: bool) -> None:
    """Run the test blocks in PATHS (files, or directories searched for *.cvg)."""
    from .common import fact_sources, load_tools, table_queries
    from ..diagnostics import ConvergeError
    from ..testing.runner import run_paths

    base = fact_sources(list(facts), table_queries(tables))
    registered: dict[str, Any] = {}
    for spec in tools:
        registered.update(load_tools(spec))
    report = run_paths(list(paths), pattern=pattern, why_depth=why_depth, base_facts=base, tools=registered or None)
    for f in report.load_errors:
        OUT.print(f.diagnostics_text(), err=True)
    if report.load_errors:
        n = len(report.load_errors)
        OUT.print(f"{n} test file{'s' if n != 1 else ''} could not be loaded", style="bold red", err=True)
    if junit is not None:  # "" too: E507, never a silent no-op
        from ..io import write_atomic

        try:
            write_atomic(junit, report.junit_xml())
        except ConvergeError as err:
            for d in err.diagnostics:
                OUT.print(d.render(), err=True)
            sys.exit(EXIT_LOAD)
    show_coverage = coverage or threshold is not None
    if fmt == "json":
        write_json(dumps_json(report.to_json(show_coverage, threshold), indent=1, ensure_ascii=False) + "\n")
    else:
        OUT.print(report.render_text(show_coverage, threshold))
    if report.load_errors:
        sys.exit(EXIT_LOAD)
    if report.failed or report.coverage_failed(threshold):
        sys.exit(EXIT_FAIL)
    if not report.outcomes and not allow_no_tests:
        OUT.print("converge test: no test ran, so nothing was checked (exit 5; --allow-no-tests accepts that)",
                  err=True)
        sys.exit(EXIT_NO_TESTS)
    sys.exit(EXIT_PASS)
