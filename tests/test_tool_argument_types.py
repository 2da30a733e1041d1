"""Tool calls are remembered (and replayed) per argument values *with their types*.

``@t(1)``, ``@t(1.0)`` and ``@t(true)`` are equal keys in Python, so the engine called the tool
once and gave all three the first answer; a replay matched recorded calls the same way."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import converge_rules as cr
from cli_process import converge


RULES = """
relation a(x: str)
relation b(x: str)
relation c(x: str)
agent ab { when y = @kind(true) emit a(y) }
agent bb { when y = @kind(1) emit b(y) }
agent cb { when y = @kind(1.0) emit c(y) }
"""

TOOLS = "def kind(v):\n    return type(v).__name__\n"


def kind(v: object) -> str:
    return type(v).__name__


def test_equal_arguments_of_different_types_are_different_calls() -> None:
    for isolation in ("thread", "process"):
        r = cr.load_text(RULES, "r.cvg").run(tools={"kind": kind}, trace=True, tool_isolation=isolation)
        assert r.tier == "converged", r.reasons
        assert (r.facts("a"), r.facts("b"), r.facts("c")) == ([("bool",)], [("int",)], [("float",)])
        assert [(e["args"], e["result"]) for e in r.trace if e["event"] == "tool"] == [
            ([True], "bool"), ([1], "int"), ([1.0], "float")]


def test_each_call_is_made_once_in_thread_mode() -> None:
    calls: list[object] = []

    def spy(v: object) -> str:
        calls.append(v)
        return kind(v)

    cr.load_text(RULES + "relation d(x: str)\nagent db { when y = @kind(1) emit d(y) }\n", "r.cvg").run(tools={"kind": spy})
    assert sorted((type(v).__name__, v) for v in calls) == [("bool", True), ("float", 1.0), ("int", 1)]


def test_a_trace_and_a_record_replay_each_typed_call_from_the_cli(tmp_path: Path) -> None:
    (tmp_path / "rules.cvg").write_text(RULES)
    (tmp_path / "tools.py").write_text(TOOLS)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return converge(*args, cwd=tmp_path)

    out = cli("run", "rules.cvg", "--tools", "tools", "--format", "json", "--trace", "trace.jsonl",
              "--record", "record.json")
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["facts"] == {"a": [["bool"]], "b": [["int"]], "c": [["float"]]}
    replay = cli("replay", "trace.jsonl")
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "replay identical" in replay.stdout
    record = cli("replay", "record.json")
    assert record.returncode == 0, record.stdout + record.stderr
    why_not = cli("why-not", "--record", "record.json", 'b("bool")')
    assert '@kind(1) returned "int" in cycle 1' in why_not.stdout, why_not.stdout + why_not.stderr
