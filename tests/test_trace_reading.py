"""`converge replay TRACE` reads a trace that came back from outside: an edited or damaged
header or event is refused with E501 at its line (exit 1), never an internal error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOANS = ROOT / "examples" / "loans"


def converge(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "converge_rules", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    where = tmp_path_factory.mktemp("trace")
    shutil.copy(LOANS / "loans.cvg", where / "loans.cvg")
    shutil.copy(LOANS / "facts.json", where / "facts.json")
    proc = converge("run", "loans.cvg", "--facts", "facts.json", "--trace", "run.jsonl", "--format", "summary", cwd=where)
    assert proc.returncode == 0, proc.stderr
    return where, [json.loads(x) for x in (where / "run.jsonl").read_text().splitlines()]


def _header(**changes: object):
    def edit(events: list) -> None:
        for k, v in changes.items():
            if v is KeyError:
                del events[0][k]
            else:
                events[0][k] = v
    return edit


def _event(k: int, **changes: object):
    def edit(events: list) -> None:
        events[k].update(changes)
    return edit


def _insert(k: int, event: object):
    def edit(events: list) -> None:
        events.insert(k, event)
    return edit


CASES = [
    (_header(rules=None), 1, "the header's 'rules' must list {path, sha256} objects"),
    (_header(rules=[{}]), 1, "the header's 'rules' must list {path, sha256} objects"),
    (_header(rules=[{"path": "loans.cvg"}]), 1, "the header's 'rules' must list {path, sha256} objects"),
    (_header(rules=KeyError), 1, "the header's 'rules' must list {path, sha256} objects"),
    (_header(facts="facts.json"), 1, "the header's 'facts' must list {path, sha256} objects"),
    (_header(inline_facts=[]), 1, "the header's 'inline_facts' must map relations to lists of facts"),
    (_header(budget=None), 1, "the header's 'budget' is not an object"),
    (_header(budget={"max_cycles": "x"}), 1, "the header's 'budget.max_cycles' is \"x\""),
    (_header(budget={"bogus": 1}), 1, "the header's 'budget.bogus' is not a budget"),
    (_header(on_failure="explode"), 1, "the header's 'on_failure' is not a failure policy: \"explode\""),
    (_header(goals=None), 1, "the header's 'goals' must list relation names"),
    (_header(rules=[{"path": "loans.cvg", "sha256": None, "imported": "yes"}]), 1,
     "the header's 'rules' must list {path, sha256} objects"),
    (_header(format="converge-trace/9"), 1, "unsupported trace format \"converge-trace/9\""),
    (_insert(3, [1]), 4, "the event is not a JSON object"),
    (_insert(3, {"event": "tool", "cycle": 1, "tool": "t"}), 4, "the event (tool) has no 'args'"),
    (_insert(3, {"event": "tool", "cycle": 1, "tool": "t", "args": [1]}), 4,
     "the event (tool) needs one of 'result' and 'error'"),
    (_insert(3, {"event": "tool", "cycle": 1, "tool": "t", "args": [[1]], "result": 1}), 4,
     "the event (tool) has a malformed 'args'"),
    (_event(2, cycle=None), 3, "the event (cycle) has a malformed 'cycle'"),
    (_event(2, event="explode"), 3, "the event has an unknown kind \"explode\""),
]


@pytest.mark.parametrize("edit, line, problem", CASES)
def test_a_malformed_trace_is_e501_at_its_line(traced, edit, line: int, problem: str) -> None:
    where, events = traced
    edited = json.loads(json.dumps(events))
    assert [e["event"] for e in edited[:3]] == ["header", "invariants", "cycle"]
    edit(edited)
    (where / "edited.jsonl").write_text("".join(json.dumps(e) + "\n" for e in edited))
    proc = converge("replay", "edited.jsonl", cwd=where)
    assert proc.returncode == 1, proc.stderr
    assert f"edited.jsonl:{line}:1: error[E501]: malformed trace: {problem}" in proc.stderr, proc.stderr
    assert "internal error" not in proc.stderr


def test_an_untouched_trace_still_replays(traced) -> None:
    where, _events = traced
    proc = converge("replay", "run.jsonl", cwd=where)
    assert proc.returncode == 0 and proc.stdout.startswith("replay identical:"), proc.stderr


@pytest.mark.parametrize("before, after, ok", [("\ufeff", "", True), ("", "\n\n", True), ("", "\r\n  \n", True),
                                               ("\ufeff", "\n\n", True)])
def test_a_byte_order_mark_and_blank_lines_at_the_end_are_ignored(traced, before: str, after: str, ok: bool) -> None:
    where, _events = traced
    text = (where / "run.jsonl").read_text(encoding="utf-8")
    (where / "edited.jsonl").write_text(before + text + after, encoding="utf-8")
    proc = converge("replay", "edited.jsonl", cwd=where)
    assert proc.returncode == 0 and proc.stdout.startswith("replay identical:"), proc.stderr
    from converge_rules.commands.replay import read_trace

    assert read_trace(str(where / "edited.jsonl")) == read_trace(str(where / "run.jsonl"))


def test_a_blank_line_between_events_is_still_e501(traced) -> None:
    where, _events = traced
    lines = (where / "run.jsonl").read_text(encoding="utf-8").split("\n")
    (where / "gap.jsonl").write_text("\n".join(lines[:2] + [""] + lines[2:]), encoding="utf-8")
    proc = converge("replay", "gap.jsonl", cwd=where)
    assert proc.returncode != 0 and "gap.jsonl:3:" in proc.stderr and "E501" in proc.stderr


COMMON = "module common\nrelation base(x: int)\nrelation twice(x: int)\ntwice(y) :- base(x), y = x * 2.\n"
MAIN = 'import "./common.cvg" as c\nrelation out(x: int)\nc.base(1). c.base(2).\nout(x) :- c.twice(x).\n'


def test_a_job_with_imports_replays(tmp_path: Path) -> None:
    """replay compiled every file of the header as a root file, imported ones included: an
    imported file (or standard module) became a root too, its relations entered the root
    namespace and it was listed twice, so no traced job with an import replayed (exit 7, 'replay
    differs at event 1'). The header marks a file only imported ("imported": true); replay
    compiles the others, which import it again."""
    (tmp_path / "common.cvg").write_text(COMMON)
    (tmp_path / "main.cvg").write_text(MAIN)
    shutil.copy(ROOT / "examples" / "stdlib" / "graph_example.cvg", tmp_path / "graph_example.cvg")
    expected = {  # roots -> the header's files, and whether each is marked imported
        ("main.cvg",): [("main.cvg", False), ("common.cvg", True)],
        ("main.cvg", "common.cvg"): [("common.cvg", False), ("main.cvg", False), ("common.cvg", False)],
        ("graph_example.cvg",): [("graph_example.cvg", False), ("graph.cvg", True)],
    }
    for roots, files in expected.items():
        run = converge("run", *roots, "--trace", "t.jsonl", "--format", "summary", cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        header = json.loads((tmp_path / "t.jsonl").read_text().splitlines()[0])
        assert [(os.path.basename(e["path"]), e.get("imported", False)) for e in header["rules"]] == files, header
        replay = converge("replay", "t.jsonl", cwd=tmp_path)
        assert replay.returncode == 0 and replay.stdout.startswith("replay identical:"), replay.stdout + replay.stderr


def test_a_trace_with_line_separators_in_its_values_replays(tmp_path: Path) -> None:
    """replay split the trace with str.splitlines, which also breaks at U+2028, U+2029 and U+0085:
    JSON writes them unescaped inside strings, so the trace of a job whose facts hold one (here
    in a 'dominated' event) was refused as malformed (E501 'Unterminated string', exit 1). It is
    split at line feeds only, as JSON Lines are; a trace saved with CRLF line ends still replays."""
    (tmp_path / "ls.cvg").write_text('relation best(k: str, v: int) key(k) prefer min(v)\n'
                                     'best("a\\u2028b", 1). best("a\\u2028b", 2). best("c\\u0085d\\u2029", 3). '
                                     'best("c\\u0085d\\u2029", 4).\n')
    run = converge("run", "ls.cvg", "--trace", "t.jsonl", "--format", "summary", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    text = (tmp_path / "t.jsonl").read_text(encoding="utf-8")
    assert "\u2028" in text and "\u0085" in text and len(text.split("\n")) == 5
    replay = converge("replay", "t.jsonl", cwd=tmp_path)
    assert replay.returncode == 0 and replay.stdout.startswith("replay identical: 4 events"), replay.stdout + replay.stderr
    (tmp_path / "crlf.jsonl").write_bytes(text.replace("\n", "\r\n").encode("utf-8"))
    replay = converge("replay", "crlf.jsonl", cwd=tmp_path)
    assert replay.returncode == 0 and replay.stdout.startswith("replay identical: 4 events"), replay.stdout + replay.stderr


def test_a_trace_that_imports_a_standard_module_replays_on_another_install(tmp_path: Path) -> None:
    """The header names std modules by the recording install's path; replay finds this install's
    module of the same name and compares its SHA-256."""
    (tmp_path / "r.cvg").write_text('import std.graph\ninput relation e(a: str, b: str)\n'
                                    'relation r(a: str, b: str)\nr(a, b) :- e(a, b).\n')
    (tmp_path / "f.json").write_text('{"e": [["a", "b"]]}')
    done = converge("run", "r.cvg", "--facts", "f.json", "--trace", "t.jsonl", "--format", "summary", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "t.jsonl").read_text(encoding="utf-8").split("\n")
    header = json.loads(lines[0])
    [std] = [e for e in header["rules"] if e.get("imported")]
    assert std["path"].endswith(os.path.join("stdlib_rules", "std", "graph.cvg"))
    std["path"] = "/elsewhere/venv/lib/python3.11/site-packages/converge_rules/stdlib_rules/std/graph.cvg"
    (tmp_path / "moved.jsonl").write_text("\n".join([json.dumps(header, separators=(",", ":"))] + lines[1:]),
                                          encoding="utf-8")
    done = converge("replay", "moved.jsonl", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("replay identical:"), done.stderr
    std["sha256"] = "0" * 64  # another version of the module: the replay says so
    (tmp_path / "other.jsonl").write_text("\n".join([json.dumps(header, separators=(",", ":"))] + lines[1:]),
                                          encoding="utf-8")
    done = converge("replay", "other.jsonl", cwd=tmp_path)
    assert done.returncode == 7 and "changed since the trace was recorded" in done.stderr
    assert "this install's module is" in done.stderr
