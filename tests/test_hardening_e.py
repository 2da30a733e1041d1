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


# ---------------------------------------------------------------- item 14
TOOL_RULES = """
relation n(x: int)
relation m(x: int)
n(1). n(2).
m(y) :- n(x), y = @double(x).
"""


def _tool_dir(tmp_path: Path) -> Path:
    (tmp_path / "rules.cvg").write_text(TOOL_RULES)
    (tmp_path / "lark").mkdir()
    (tmp_path / "lark" / "__init__.py").write_text("raise RuntimeError('shadowed lark imported')\n")
    (tmp_path / "json.py").write_text("raise RuntimeError('shadowed json imported')\n")
    (tmp_path / "mytools.py").write_text("def double(x):\n    return 2 * x\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "more.py").write_text("TOOLS = {'double': lambda x: 2 * x}\n")
    return tmp_path


def test_item14_tools_module_never_shadows_libraries(tmp_path, monkeypatch):
    import subprocess

    d = _tool_dir(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CONVERGE_NO_CACHE": "1"}
    # -P: the interpreter itself puts nothing on sys.path; only converge could have
    for spec in ("mytools", "mytools.py", "pkg.more:TOOLS", "./pkg/more.py:TOOLS"):
        proc = subprocess.run([sys.executable, "-P", "-c", "from converge_rules.cli import main; main()",
                               "run", "rules.cvg", "--tools", spec, "--format", "json"],
                              cwd=d, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, (spec, proc.stderr)
        import json

        assert json.loads(proc.stdout)["facts"]["m"] == [[2], [4]]


def test_item14_api_load_tools_keeps_sys_path(tmp_path, monkeypatch):
    from converge_rules.cli import load_tools

    d = _tool_dir(tmp_path)
    monkeypatch.chdir(d)
    before = list(sys.path)
    tools = load_tools("mytools")
    assert tools["double"](4) == 8
    assert sys.path == before
    assert "mytools" not in sys.modules
    import lark

    assert "site-packages" in lark.__file__ or "shadowed" not in Path(lark.__file__).read_text()
    result = invoke(["run", str(d / "rules.cvg"), "--tools", "nosuchmodule"])
    assert result.exit_code == 2 and "cannot load tools" in result.output
