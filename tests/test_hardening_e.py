"""Regression tests for issue 8, items 9-16 (runaway work, tools, output safety,
security, long-lived processes). Each test is named after its item."""

from __future__ import annotations

import gc
import os
import sys
import tracemalloc
from pathlib import Path

import pytest

import converge_rules
from converge_rules.cli import cli

ROOT = Path(__file__).resolve().parent.parent
LOANS = ROOT / "examples" / "loans"


def invoke(args, **kw):
    from click.testing import CliRunner

    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False, **kw)


# ---------------------------------------------------------------- item 16
def _rss() -> int:
    """Resident set size in bytes (Linux /proc; elsewhere the peak from getrusage)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


SMALL = """
input relation edge(a: str, b: str)
relation path(a: str, b: str)
path(a, b) :- edge(a, b).
path(a, c) :- path(a, b), edge(b, c).
"""


def test_item16_run_changes_no_process_state_and_does_not_leak():
    rules = converge_rules.load_text(SMALL)
    facts = {"edge": [[f"n{i}", f"n{i + 1}"] for i in range(12)]}
    path_before = list(sys.path)
    enabled = gc.isenabled()
    frozen = gc.get_freeze_count()
    first = rules.run(facts)
    assert gc.isenabled() == enabled and gc.get_freeze_count() == frozen
    assert sys.path == path_before
    for _ in range(200):  # warm up: lazily built caches of the compiled rules, allocator pools
        rules.run(facts)
    gc.collect()
    base = _rss()
    for _ in range(2000):
        result = rules.run(facts)
    gc.collect()
    grown = _rss() - base
    assert result.digest == first.digest
    # gc.freeze() after each run kept every run's context alive: megabytes per hundred runs
    assert grown < 8_000_000, f"2,000 runs grew RSS by {grown} bytes"
    assert gc.isenabled() == enabled and gc.get_freeze_count() == frozen


def test_item16_loans_many_runs_keep_gc_state():
    rules = converge_rules.load([str(LOANS / "loans.cvg")])
    before = gc.get_freeze_count()
    for _ in range(20):
        rules.run(fact_files=[str(LOANS / "facts.json")])
    assert gc.get_freeze_count() == before and gc.isenabled()
