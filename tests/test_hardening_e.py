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
    for spec in ("mytools", "./pkg/more.py:TOOLS"):
        proc = subprocess.run([sys.executable, "-P", "-c", "from converge_rules.cli import main; main()",
                               "run", "rules.cvg", "--tools", spec, "--format", "json"],
                              cwd=d, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, (spec, proc.stderr)
        import json

        assert json.loads(proc.stdout)["facts"]["m"] == [[2], [4]]


def test_item14_api_load_tools_keeps_sys_path(tmp_path, monkeypatch):
    from converge_rules.commands.common import load_tools

    d = _tool_dir(tmp_path)
    monkeypatch.chdir(d)
    before = list(sys.path)
    for spec in ("mytools", "mytools.py", "pkg.more:TOOLS", "./pkg/more.py:TOOLS"):
        assert load_tools(spec)["double"](4) == 8
    assert sys.path == before
    assert "mytools" not in sys.modules
    import lark

    assert "site-packages" in lark.__file__ or "shadowed" not in Path(lark.__file__).read_text()
    result = invoke(["run", str(d / "rules.cvg"), "--tools", "nosuchmodule"])
    assert result.exit_code == 2 and "cannot load tools" in result.output


# ---------------------------------------------------------------- item 13
_EVIL = """
import os, pickle
class Evil:
    def __reduce__(self):
        return (os.system, ("touch " + {marker!r},))
open({path!r}, "wb").write(b"{head}\\n" + pickle.dumps(Evil()))
"""


def _fresh_python(code: str, env: dict[str, str], cwd: Path) -> "subprocess.CompletedProcess[str]":
    import subprocess

    return subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_item13_parser_cache_is_per_user_and_never_unpickles_foreign_files(tmp_path):
    from converge_rules import usercache

    xdg, tmp = tmp_path / "xdg", tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(xdg), "TMPDIR": str(tmp)}
    env.pop("CONVERGE_CACHE_DIR", None)
    env.pop("CONVERGE_NO_CACHE", None)
    parse = "from converge_rules.syntax.parser import parse_atom; parse_atom('p(1)'); print('ok')"
    proc = _fresh_python(parse, env, tmp_path)
    assert proc.stdout.strip() == "ok", proc.stderr
    directory = xdg / "converge-rules"
    assert directory.is_dir() and (directory.stat().st_mode & 0o777) == 0o700
    caches = sorted(directory.glob("lark-parser-*.cache"))
    assert len(caches) == 1 and (caches[0].stat().st_mode & 0o777) == 0o600
    assert list(tmp.iterdir()) == []  # nothing in the shared temporary directory
    # a planted pickle that this user did not write (someone else's, or writable by others) is never loaded
    marker = tmp_path / "pwned"
    for owner, mode in ((65534, 0o600), (os.getuid(), 0o666)):
        caches[0].unlink()
        made = _fresh_python(_EVIL.format(marker=str(marker), path=str(caches[0]), head="x"), env, tmp_path)
        assert made.returncode == 0, made.stderr
        os.chmod(caches[0], mode)
        if owner != os.getuid():
            if os.getuid() != 0:
                continue  # only root can give a file away; the mode case still runs
            os.chown(caches[0], owner, -1)
        assert not usercache.trusted_file(caches[0]) or not caches[0].exists()
        proc = _fresh_python(parse, env, tmp_path)
        assert proc.stdout.strip() == "ok", proc.stderr
        assert not marker.exists()
    # a cache directory owned by someone else is not used at all
    if os.getuid() == 0:
        other = tmp_path / "other"
        other.mkdir()
        os.chown(other, 65534, -1)
        env2 = {**env, "CONVERGE_CACHE_DIR": str(other)}
        proc = _fresh_python("from converge_rules.usercache import cache_dir; print(cache_dir())", env2, tmp_path)
        assert proc.stdout.strip() == "None"


def test_item13_program_cache_refuses_foreign_pickles(tmp_path, monkeypatch):
    import pickle

    from converge_rules.compile import cache

    monkeypatch.setenv("CONVERGE_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.delenv("CONVERGE_NO_CACHE", raising=False)
    rules = tmp_path / "r.cvg"
    rules.write_text("relation p(x: int)\np(1).\n")
    monkeypatch.chdir(tmp_path)
    first = converge_rules.load([str(rules)]).run()
    entries = list((tmp_path / "c").glob("*.pickle"))
    assert len(entries) == 1 and (entries[0].stat().st_mode & 0o777) == 0o600
    assert cache.load([str(rules)]) is not None
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(marker),))

    entries[0].write_bytes(pickle.dumps(Evil()))
    os.chmod(entries[0], 0o646)  # writable by others: not something only this user wrote
    assert cache.load([str(rules)]) is None
    assert not marker.exists()
    assert converge_rules.load([str(rules)]).run().digest == first.digest
    result = invoke(["run", str(rules), "--format", "summary"])
    assert result.exit_code == 0 and not marker.exists()


def test_program_from_texts_with_an_installed_std_module_is_cached(tmp_path, monkeypatch):
    """Texts that lack a standard module they import (a decision record of an older install)
    compile once: the next load of the same texts is a cache hit that still carries the added
    module's text, and a changed installed module refuses the entry."""
    from converge_rules.compile import cache, pipeline

    monkeypatch.setenv("CONVERGE_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.delenv("CONVERGE_NO_CACHE", raising=False)
    texts = {"main.cvg": "import std.graph\ninput relation e(a: str, b: str)\ngraph.edge(a, b) :- e(a, b).\n"
                         "e(\"x\", \"y\"). e(\"y\", \"z\").\n"}
    first = converge_rules.load_sources(texts)
    assert any(p.endswith("graph.cvg") for p in first._compilation.texts)
    stages = []
    monkeypatch.setattr(pipeline, "STAGES", [(n, (lambda f: lambda c: stages.append(n) or f(c))(f)) for n, f in pipeline.STAGES])
    again = converge_rules.load_sources(texts)
    assert stages == []  # no stage ran: the compiled program came from the cache
    assert again._compilation.texts == first._compilation.texts
    assert again.run().count("graph.reach") == first.run().count("graph.reach") == 3
    # the installed module changed (another version of the file): the entry is refused
    graph = next(p for p in first._compilation.texts if p.endswith("graph.cvg"))
    original = cache._sha
    monkeypatch.setattr(cache, "_sha", lambda p: "changed" if p == graph else original(p))
    assert cache.load_texts(["main.cvg"], dict(texts)) is None


def test_the_program_cache_keeps_the_most_recently_used_entries(tmp_path, monkeypatch):
    """Every distinct rule text compiled is an entry; the directory must not grow without end. Past
    MAX_ENTRIES the least recently used go (a cache hit counts as a use), and a temporary file a
    killed writer left behind long ago is removed too. The results never change."""
    import time

    from converge_rules.compile import cache

    directory = tmp_path / "c"
    monkeypatch.setenv("CONVERGE_CACHE_DIR", str(directory))
    monkeypatch.delenv("CONVERGE_NO_CACHE", raising=False)
    monkeypatch.setattr(cache, "MAX_ENTRIES", 5)
    monkeypatch.chdir(tmp_path)
    files = []
    for i in range(5):
        rules = tmp_path / f"r{i}.cvg"
        rules.write_text(f"relation p(x: int)\np({i}).\n")
        files.append(str(rules))
        converge_rules.load([str(rules)])
    entries = sorted(directory.glob("*.pickle"))
    assert len(entries) == 5
    old = time.time() - 7200
    for k, entry in enumerate(entries):  # give them distinct, old use times
        os.utime(entry, (old + k, old + k))
    key0 = cache.key([files[0]])
    os.utime(directory / f"{key0}.pickle", (old - 10, old - 10))  # r0 is the least recently used...
    assert cache.load([files[0]]) is not None                       # ...until this hit uses it again
    leftover = directory / "abandoned.tmp"
    leftover.write_bytes(b"half a pickle")
    os.utime(leftover, (old, old))
    sixth = tmp_path / "r5.cvg"
    sixth.write_text("relation p(x: int)\np(5).\n")
    converge_rules.load([str(sixth)])  # the sixth entry: prune down to 4 (nine tenths of 5)
    kept = {e.name for e in directory.glob("*.pickle")}
    assert len(kept) == 4 and not leftover.exists()
    assert f"{key0}.pickle" in kept and f"{cache.key([str(sixth)])}.pickle" in kept
    for path in files + [str(sixth)]:  # pruned or not, every program still loads and runs the same
        assert converge_rules.load([path]).run().count("p") == 1


# ---------------------------------------------------------------- item 9
STRINGS = 's("a").\ns(x ++ "a") :- s(x).\n'
SQUARES = "n(2).\nn(x * x) :- n(x).\n"


def _reason(result, budget):
    found = [r for r in result.reasons if r.details.get("budget") == budget]
    assert found, result.reasons
    return found[0]


@pytest.mark.parametrize("decl,body,limit", [("relation s(x: str)\n", STRINGS, 200_000),
                                             ("relation n(x: int)\n", SQUARES, 3_000)])
def test_item9_max_bytes_stops_runaway_values(decl, body, limit):
    from converge_rules.engine.loop import DEFAULT_MAX_BYTES

    assert cr_budget().merged_over({}).max_bytes == DEFAULT_MAX_BYTES == 256 * 1024 * 1024
    in_file = converge_rules.load_text(decl + f"budget {{ max_bytes = {limit} }}\n" + body).run()
    by_api = converge_rules.load_text(decl + body).run(budget=cr_budget(max_bytes=limit))
    for result in (in_file, by_api):
        assert result.tier.value == "bounded"
        reason = _reason(result, "max_bytes")
        assert reason.details["limit"] == limit and reason.details["reached"] > limit
        assert "max_bytes exhausted" in reason.message and str(limit) in reason.message
    assert in_file.digest == by_api.digest and in_file.cycles == by_api.cycles


def cr_budget(**kw):
    return converge_rules.Budget(**kw)


def test_item9_max_bytes_cli_and_hash_seeds(tmp_path):
    import subprocess

    rules = tmp_path / "s.cvg"
    rules.write_text("relation s(x: str)\n" + STRINGS)
    result = invoke(["run", rules, "--max-bytes", "150000", "--format", "json"])
    assert result.exit_code == 4
    import json

    data = json.loads(result.output)
    assert data["budget"]["max_bytes"] == 150000
    assert data["reasons"][0]["budget"] == "max_bytes" and data["reasons"][0]["limit"] == 150000
    digests = set()
    for seed in ("0", "1", "12345"):
        proc = subprocess.run([sys.executable, "-m", "converge_rules", "run", str(rules), "--max-bytes", "150000",
                               "--format", "summary"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONHASHSEED": seed})
        assert proc.returncode == 4, proc.stderr
        digests.add([line for line in proc.stdout.splitlines() if line.startswith("digest:")][0])
    assert digests == {f"digest: {data['digest']}"}


def test_item9_max_bytes_is_checked_inside_a_cycle():
    rules = converge_rules.load_text("relation a(x: int)\nrelation p(x: int, y: int)\np(x, y) :- a(x), a(y).\n")
    facts = {"a": [[i] for i in range(400)]}  # one cycle derives 160,000 facts
    result = rules.run(facts, budget=cr_budget(max_bytes=1_000_000))
    assert result.tier.value == "bounded" and result.count("p") == 0  # the cycle was not committed
    reason = _reason(result, "max_bytes")
    assert reason.details["cycle"] == 1 and reason.details["reached"] <= 1_000_000 + 1000
    # input facts alone over the budget
    small = rules.run(facts, budget=cr_budget(max_bytes=100))
    assert small.tier.value == "bounded" and small.cycles == 0 and "by the input facts" in _reason(small, "max_bytes").message


def test_item9_counted_bytes_match_the_formula():
    """The generated code's inline count equals runtime.fact_bytes: a budget of exactly the
    job's total converges, one byte less does not."""
    from hypothesis import given, settings, strategies as st

    from converge_rules.engine.runtime import fact_bytes

    rules = converge_rules.load_text("relation e(a: str, b: int)\nrelation p(a: str, b: int)\n"
                                     "p(a, b) :- e(a, b).\np(a, c) :- p(a, b), e(x, c), b < c.\n")

    @settings(max_examples=25, deadline=None)
    @given(st.lists(st.tuples(st.text(max_size=40), st.integers(-2**70, 2**70)), max_size=12))
    def prop(edges):
        full = rules.run({"e": edges})
        assert full.tier.value == "converged"
        total = sum(fact_bytes(f) for name in full.relations() for f in full.facts(name))
        assert full.bytes_counted == total
        assert rules.run({"e": edges}, budget=cr_budget(max_bytes=total)).tier.value == "converged"
        if total:
            tight = rules.run({"e": edges}, budget=cr_budget(max_bytes=total - 1))
            assert tight.tier.value == "bounded" and _reason(tight, "max_bytes").details["reached"] == total

    prop()


def test_item9_timeout_is_bounded_and_says_not_deterministic(tmp_path):
    body = "relation n(x: int)\nn(0).\nn(x + 1) :- n(x).\n"
    result = converge_rules.load_text(body).run(budget=cr_budget(max_cycles=10**9, timeout=0.3))
    assert result.tier.value == "bounded"
    reason = _reason(result, "timeout")
    assert reason.details["deterministic"] is False and "not deterministic" in reason.message
    rules = tmp_path / "n.cvg"
    rules.write_text(body)
    cli_result = invoke(["run", rules, "--timeout", "0.3", "--max-cycles", "1000000000", "--format", "summary"])
    assert cli_result.exit_code == 4 and "timeout of 0.3 s" in cli_result.output
    assert invoke(["run", rules, "--timeout", "0"]).exit_code == 2


# ---------------------------------------------------------------- item 11
CONTROL_RULES = r'''
relation p(x: str)
relation q(x: str)
p("red\u001b[31m\u0007bell\u009b").
q(y) :- p(x), y = @shout(x).
test "bad\u0001name \u001b[2J" {
  given { p("a\u0001"). }
  expect { p("b\u0002"). }
}
'''


def test_item11_text_output_escapes_control_characters(tmp_path, monkeypatch):
    rules = tmp_path / "c.cvg"
    rules.write_text(CONTROL_RULES)
    (tmp_path / "ctltools.py").write_text("def shout(x):\n    raise ValueError('\\x1b]0;owned\\x07 ' + x)\n")
    monkeypatch.chdir(tmp_path)
    for fmt in ("text", "summary"):
        out = invoke(["run", rules, "--tools", "ctltools", "--on-failure", "skip", "--format", fmt])
        assert out.exit_code == 3, out.output
        for bad in ("\x1b", "\x07", "\x9b"):
            assert bad not in out.output
        assert "\\u001b]0;owned\\u0007" in out.output  # the tool's message, escaped
    text = invoke(["run", rules, "--tools", "ctltools", "--on-failure", "skip", "--relation", "p"]).output
    assert "\\u009b" in text and "\x9b" not in text
    why = invoke(["why", rules, "--tools", "ctltools", "--on-failure", "skip", 'p("red\\u001b[31m\\u0007bell\\u009b")'])
    assert why.exit_code == 0 and "\x1b" not in why.output and "\x9b" not in why.output
    from converge_rules.textsafe import escape_controls

    assert escape_controls("plain\ttext\nok é") == "plain\ttext\nok é"
    assert escape_controls("\x1b\u202e\ud800") == "\\u001b\\u202e\\ud800"


def test_item11_junit_is_valid_xml_for_any_name_or_value(tmp_path):
    import xml.etree.ElementTree as ET

    rules = tmp_path / "c.cvg"
    rules.write_text(CONTROL_RULES.replace("q(y) :- p(x), y = @shout(x).\n", ""))
    report = tmp_path / "junit.xml"
    out = invoke(["test", rules, "--junit", report])
    assert out.exit_code == 1  # the test fails (p("b\u0002") is not given)
    assert "\x01" not in out.output and "\x1b" not in out.output
    root = ET.fromstring(report.read_bytes())
    case = root.find("./testsuite/testcase")
    assert case is not None and case.get("name") == "bad\\u0001name \\u001b[2J"
    assert case.find("failure") is not None
    from converge_rules.testing.runner import _xml_text

    from hypothesis import given, settings, strategies as st

    @settings(max_examples=200, deadline=None)
    @given(st.text())
    def prop(name):
        element = ET.Element("t", {"name": _xml_text(name)})
        element.text = _xml_text(name)
        ET.fromstring(ET.tostring(element, encoding="unicode").encode("utf-8"))

    prop()


# ---------------------------------------------------------------- item 12
LOANS_RUN = ["run", str(LOANS / "loans.cvg"), "--facts", str(LOANS / "facts.json")]


def test_item12_device_and_fifo_targets_are_refused(tmp_path):
    import stat as st

    from converge_rules.diagnostics import ConvergeError
    from converge_rules.io import write_atomic

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for target in ("/dev/null", str(fifo), str(tmp_path)):
        with pytest.raises(ConvergeError) as info:
            write_atomic(target, "x")
        assert info.value.diagnostics[0].code == "E507" and "not a regular file" in info.value.diagnostics[0].message
    assert st.S_ISCHR(os.stat("/dev/null").st_mode) and st.S_ISFIFO(os.stat(fifo).st_mode)
    for args in (LOANS_RUN + ["--trace", "/dev/null"], LOANS_RUN + ["--trace", str(fifo)],
                 ["report", str(LOANS / "loans.cvg"), "--facts", str(LOANS / "facts.json"), "-o", "/dev/null"]):
        result = invoke(args)
        assert result.exit_code == 1 and "E507" in result.output and "Traceback" not in result.output
    assert st.S_ISCHR(os.stat("/dev/null").st_mode) and st.S_ISFIFO(os.stat(fifo).st_mode)
    ok = tmp_path / "trace.jsonl"
    assert invoke(LOANS_RUN + ["--trace", ok, "--format", "summary"]).exit_code == 0 and ok.stat().st_size > 0


def test_item12_out_dir_is_never_missing(tmp_path, monkeypatch):
    import shutil

    from converge_rules.io import writers

    out = tmp_path / "out"
    assert invoke(LOANS_RUN + ["--out", out, "--relation", "decision", "--format", "summary"]).exit_code == 0
    old = (out / "decision.csv").read_text()
    (out / "decision.csv").write_text("decision\nold\n")
    renames = []
    real_rename = os.rename
    monkeypatch.setattr(os, "rename", lambda a, b: (renames.append((a, b)), real_rename(a, b))[1])

    def killed(*a, **k):  # killed right after the swap, before the old copy is removed
        raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "rmtree", killed)
    with pytest.raises(KeyboardInterrupt):
        writers.write_csv_dir(str(out), {"d": [("x",)]}, {"d": _schema()})
    assert sorted(p.name for p in out.iterdir()) == ["d.csv"]  # the new output, complete
    assert not any(os.path.abspath(a) == str(out) for a, _ in renames)  # never renamed away
    monkeypatch.undo()
    # killed before the swap: the old output, complete
    monkeypatch.setattr(writers, "_exchange", killed)
    with pytest.raises(KeyboardInterrupt):
        writers.write_csv_dir(str(out), {"e": [("y",)]}, {"e": _schema()})
    assert sorted(p.name for p in out.iterdir()) == ["d.csv"]
    monkeypatch.undo()
    for leftover in tmp_path.iterdir():  # what a kill leaves is hidden temporary directories
        if leftover.name.startswith("."):
            shutil.rmtree(leftover)
    assert invoke(LOANS_RUN + ["--out", out, "--relation", "decision", "--format", "summary"]).exit_code == 0
    assert (out / "decision.csv").read_text() == old and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def _schema():
    from converge_rules.values import ColumnSchema, RelationSchema

    return RelationSchema("d", (ColumnSchema("x", "str"),))


def test_item12_closed_or_full_stdout_is_one_line_and_exit_74():
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    base = [sys.executable, "-m", "converge_rules"] + LOANS_RUN
    with open("/dev/full", "w") as full:
        proc = subprocess.run(base, stdout=full, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 74 and proc.stderr.strip() == "converge: cannot write the output: no space left on device"
    proc = subprocess.run(base + ["--format", "json"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env=env, cwd=ROOT, timeout=120, preexec_fn=lambda: os.close(1))
    assert proc.returncode == 74 and proc.stderr.strip() == "converge: cannot write the output: standard output is closed"


def test_item12_a_reader_that_stops_early_is_not_an_error(tmp_path):
    """`converge run ... | head -1`: the broken pipe ends the command quietly with exit 0."""
    import subprocess

    rules = tmp_path / "n.cvg"
    rules.write_text("relation n(x: int)\nn(0).\nn(x + 1) :- n(x), x < 20000.\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "converge_rules", "run", str(rules), "--format", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    assert proc.stdout.read(10)
    proc.stdout.close()
    assert proc.wait(timeout=120) == 0 and proc.stderr.read() == b""


def test_one_shot_commands_exit_fast_but_complete(tmp_path):
    """A one-shot command skips the interpreter's teardown, yet its output is whole and exit
    handlers run (a sitecustomize hook registers one here)."""
    import subprocess

    hook = tmp_path / "sitecustomize.py"
    hook.write_text(f"import atexit\natexit.register(lambda: open({str(tmp_path / 'ran')!r}, 'w').close())\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    proc = subprocess.run([sys.executable, "-m", "converge_rules"] + LOANS_RUN + ["--format", "json"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    import json

    assert proc.returncode == 0 and json.loads(proc.stdout)["tier"] == "converged"
    assert (tmp_path / "ran").exists()


def test_a_job_with_tools_exits_the_ordinary_way(tmp_path):
    """With --tools the user's code runs in the process: a file its tool wrote and never
    closed is flushed at exit (the fast exit of one-shot commands would lose its buffer)."""
    import subprocess

    log = tmp_path / "calls.log"
    tools = tmp_path / "mytools.py"
    tools.write_text(f"LOG = open({str(log)!r}, 'w', buffering=1 << 20)\n"
                     "def score(x):\n    LOG.write(f'score {x}\\n')\n    return x * 2\n")
    rules = tmp_path / "r.cvg"
    rules.write_text("relation a(x: int)\nrelation b(x: int, y: int)\na(1). a(2). a(3).\n"
                     "b(x, y) :- a(x), y = @score(x).\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "converge_rules", "run", str(rules), "--tools", str(tools),
                           "--format", "summary"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "b: 3" in proc.stdout
    assert sorted(log.read_text().splitlines()) == ["score 1", "score 2", "score 3"]


# ---------------------------------------------------------------- item 15
def test_item15_verify_reads_only_files_with_the_recorded_hash(tmp_path):
    import json

    from converge_rules.diagnostics import ConvergeError
    from converge_rules.explain.checker import verify_file

    result = converge_rules.load([str(LOANS / "loans.cvg")]).run(fact_files=[str(LOANS / "facts.json")])
    data = json.loads(result.to_json(proofs=True))
    assert set(data["job"]["sha256"]) == {str(LOANS / "loans.cvg"), str(LOANS / "facts.json")}
    good = tmp_path / "good.json"
    good.write_text(json.dumps(data))
    assert verify_file(str(good)).ok
    secret = tmp_path / "secret.cvg"
    secret.write_text("TOP SECRET password=hunter2\n")
    cases = []
    crafted = json.loads(json.dumps(data))
    crafted["job"]["rules"] = [str(secret)]  # absolute path, no hash recorded for it
    cases.append(crafted)
    forged = json.loads(json.dumps(crafted))
    forged["job"]["sha256"][str(secret)] = "0" * 64  # a hash that does not match
    cases.append(forged)
    no_hashes = json.loads(json.dumps(crafted))
    del no_hashes["job"]["sha256"]
    cases.append(no_hashes)
    for k, case in enumerate(cases):
        path = tmp_path / f"crafted{k}.json"
        path.write_text(json.dumps(case, indent=1))
        with pytest.raises(ConvergeError) as info:
            verify_file(str(path))
        assert info.value.diagnostics[0].code == "E515"
        out = invoke(["verify", path])
        assert out.exit_code == 1 and "E515" in out.output
        assert "hunter2" not in out.output and "SECRET" not in out.output
    # a facts file changed since the run is refused too
    facts = tmp_path / "facts.json"
    facts.write_text((LOANS / "facts.json").read_text())
    changed = converge_rules.load([str(LOANS / "loans.cvg")]).run(fact_files=[str(facts)])
    path = tmp_path / "changed.json"
    path.write_text(changed.to_json(proofs=True))
    assert invoke(["verify", path]).exit_code == 0
    facts.write_text(facts.read_text().replace("l1", "l9"))
    out = invoke(["verify", path])
    assert out.exit_code == 1 and "E515" in out.output and "does not match" in out.output


# ---------------------------------------------------------------- item 10
def _tool_rules(col_type: str = "int") -> "converge_rules.RuleSet":
    return converge_rules.load_text(f"relation n(x: int)\nrelation m(x: int, y: {col_type})\n"
                                    "n(1).\nm(x, y) :- n(x), y = @t(x).\n")


def _failure_message(result) -> str:
    assert result.tier.value == "failed", result.reasons
    return result.reasons[0].details["error"]


def _hold_gil(x):
    import re

    return int(bool(re.match(r"(a+)+$", "a" * 40 + "b")))  # catastrophic backtracking in C, GIL held


def test_item10_process_isolation_times_out_a_gil_holding_tool():
    rules = _tool_rules()
    result = rules.run(tools={"t": _hold_gil}, tool_timeout=0.5, tool_isolation="process")
    message = _failure_message(result)
    assert "timed out after 0.5s" in message and "killed" in message
    import multiprocessing

    assert not multiprocessing.active_children()  # no worker outlives the job
    ok = rules.run(tools={"t": lambda x: x * 10}, tool_isolation="process")
    assert ok.tier.value == "converged" and ok.facts("m") == [(1, 10)]
    assert ok.digest == rules.run(tools={"t": lambda x: x * 10}).digest
    with pytest.raises(ValueError):
        rules.run(tools={"t": lambda x: x}, tool_isolation="fiber")


def _exits(x):
    raise SystemExit(3)


def _interrupts(x):
    raise KeyboardInterrupt


def _dies(x):
    os._exit(9)


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_item10_base_exceptions_are_agent_failures_at_once(isolation, capfd):
    import time

    rules = _tool_rules()
    for tool, word in ((_exits, "SystemExit"), (_interrupts, "KeyboardInterrupt")):
        started = time.monotonic()
        result = rules.run(tools={"t": tool}, tool_timeout=60, tool_isolation=isolation)
        assert time.monotonic() - started < 30  # not reported after the full 60 s wait
        message = _failure_message(result)
        assert word in message and "timed out" not in message
    assert "Traceback" not in capfd.readouterr().err
    if isolation == "process":
        message = _failure_message(rules.run(tools={"t": _dies}, tool_isolation="process"))
        assert "ended its worker process (exit code 9)" in message


class _Weird(int):
    pass


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_item10_tool_values_are_validated(isolation):
    cases = [("float", float("inf"), "must be finite"), ("float", float("nan"), "must be finite"),
             ("str", "a\ud800b", "not valid Unicode"), ("str", "x" * ((1 << 24) + 1), "the limit is"),
             ("int", 1 << (8 * (1 << 24) + 1), "the limit is"), ("int", [1], "expected int, float, str or bool"),
             ("int", None, "expected int")]
    for col, value, words in cases:
        message = _failure_message(_tool_rules(col).run(tools={"t": lambda x, v=value: v}, tool_isolation=isolation))
        assert words in message, (value if not isinstance(value, (str, int)) else type(value), message)
    # subclasses become plain values
    result = _tool_rules().run(tools={"t": lambda x: _Weird(7)}, tool_isolation=isolation)
    assert result.facts("m") == [(1, 7)] and type(result.facts("m")[0][1]) is int


def test_item10_cli_tool_isolation(tmp_path, monkeypatch):
    rules = tmp_path / "r.cvg"
    rules.write_text("relation n(x: int)\nrelation m(x: int, y: int)\nn(1).\nm(x, y) :- n(x), y = @slow(x).\n")
    (tmp_path / "gil.py").write_text("import re\n\ndef slow(x):\n    return int(bool(re.match(r'(a+)+$', 'a' * 40 + 'b')))\n")
    monkeypatch.chdir(tmp_path)
    result = invoke(["run", rules, "--tools", "gil", "--tool-isolation", "process", "--tool-timeout", "0.5",
                     "--format", "summary"])
    assert result.exit_code == 5 and "timed out after 0.5s" in result.output
    assert invoke(["run", rules, "--tool-isolation", "fiber"]).exit_code == 2


def test_item16_facts_texts_are_not_kept_by_the_process(tmp_path):
    """A long-lived process reading ever new facts files keeps none of their texts: a
    diagnostic carries the one line it quotes (there is no cache of texts by file name)."""
    from converge_rules import diagnostics

    assert not hasattr(diagnostics, "SourceCache")
    rules = converge_rules.load_text("relation p(x: int)\nrelation q(x: int)\nq(x) :- p(x).\n")
    for k in range(100):
        facts = tmp_path / f"f{k}.json"
        facts.write_text('{"p": [[%d], ["bad %d"]]}' % (k, k))
        with pytest.raises(converge_rules.ConvergeError) as err:
            rules.run(fact_files=[str(facts)])
        assert err.value.diagnostics[0].quote == '{"p": [[%d], ["bad %d"]]}' % (k, k)
        facts.unlink()
        assert f'["bad {k}"]' in err.value.diagnostics[0].render()
