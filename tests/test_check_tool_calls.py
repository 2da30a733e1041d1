"""Tool calls in invariant and acceptance bodies: the check waits for the results like an agent.

They used to be evaluated without any tool round: every match that needed a tool result
was silently dropped, so a violated check passed (tier converged)."""

from __future__ import annotations

import json
from pathlib import Path

import converge_rules as cr
from cli_process import converge


RULES = """
input relation p(x: int)
relation q(x: int)
p(1). p(2).
q(x) :- p(x).
invariant small "t of q stays at most LIMIT" { forbid q(x), y = @t(x), y > LIMIT }
acceptance tiny "t of q stays at most ACCEPT" { forbid q(x), y = @t(x), y > ACCEPT }
"""


def rules(limit: int, accept: int) -> str:
    return RULES.replace("LIMIT", str(limit)).replace("ACCEPT", str(accept))


cli = converge


def test_an_invariant_that_calls_a_tool_is_violated_and_its_merge_rolled_back() -> None:
    calls: list[int] = []

    def t(x: int) -> int:
        calls.append(x)
        return 3 * x

    r = cr.load_text(rules(5, 100), "r.cvg").run(tools={"t": t})
    assert r.tier == "failed"
    [reason] = r.reasons
    assert reason.kind == "invariant" and reason.details["cycle"] == 1
    [violation] = reason.details["violations"]
    assert violation["invariant"] == "small"
    assert violation["matches"] == [{"bindings": {"x": 2, "y": 6}, "facts": ["q(2)"]}]
    assert r.facts("q") == []  # the merge of cycle 1 was rolled back
    assert sorted(calls) == [1, 2]


def test_an_acceptance_check_that_calls_a_tool_is_violated() -> None:
    r = cr.load_text(rules(100, 4), "r.cvg").run(tools={"t": lambda x: 3 * x})
    assert r.tier == "failed"
    [reason] = r.reasons
    assert reason.kind == "acceptance"
    [violation] = reason.details["violations"]
    assert violation["matches"] == [{"bindings": {"x": 2, "y": 6}, "facts": ["q(2)"]}]
    assert r.facts("q") == [(1,), (2,)]


def test_checks_that_call_a_tool_and_hold_leave_the_job_converged_and_call_it_once_per_value() -> None:
    calls: list[int] = []

    def t(x: int) -> int:
        calls.append(x)
        return x

    r = cr.load_text(rules(5, 5), "r.cvg").run(tools={"t": t}, trace=True)
    assert r.tier == "converged", r.reasons
    assert sorted(calls) == [1, 2]  # remembered: the acceptance check reuses the invariant's results
    assert [(e["cycle"], e["args"], e["result"]) for e in r.trace if e["event"] == "tool"] == [(1, [1], 1), (1, [2], 2)]


def test_a_failed_tool_call_in_a_check_fails_the_job_as_an_invariant_error() -> None:
    def t(x: int) -> int:
        if x == 2:
            raise LookupError("no value for 2")
        return x

    r = cr.load_text(rules(5, 5), "r.cvg").run(tools={"t": t})
    assert r.tier == "failed"
    [reason] = r.reasons
    assert reason.kind == "invariant_error"
    assert reason.details["invariant"] == "small" and reason.details["cycle"] == 1
    assert reason.details["error"] == "tool t raised LookupError: no value for 2"
    assert (reason.details["span"]["line"], reason.details["span"]["col"]) == (6, 61)
    assert r.facts("q") == []


def test_a_check_that_calls_a_tool_from_the_cli_fails_and_replays(tmp_path: Path) -> None:
    (tmp_path / "rules.cvg").write_text(rules(5, 100))
    (tmp_path / "tools.py").write_text("def t(x):\n    return 3 * x\n")
    out = cli("run", "rules.cvg", "--tools", "tools", "--format", "json", "--trace", "trace.jsonl", cwd=tmp_path)
    assert out.returncode == 5, out.stdout + out.stderr
    data = json.loads(out.stdout)
    assert data["tier"] == "failed" and [r["kind"] for r in data["reasons"]] == ["invariant"]
    assert data["facts"]["q"] == []
    replay = cli("replay", "trace.jsonl", cwd=tmp_path)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "replay identical" in replay.stdout

    (tmp_path / "tools.py").write_text("def t(x):\n    raise LookupError('down')\n")
    out = cli("run", "rules.cvg", "--tools", "tools", "--format", "summary", cwd=tmp_path)
    assert out.returncode == 5, out.stdout + out.stderr
    assert ("[invariant_error] invariant 'small' could not be evaluated in cycle 1: "
            "tool t raised LookupError: down at rules.cvg:6:61") in out.stdout


def test_the_jobs_timeout_during_a_checks_tool_calls_stops_it_bounded() -> None:
    import time

    def slow(x: int) -> int:
        time.sleep(10)
        return x

    invariant = cr.load_text(rules(5, 100), "r.cvg").run(tools={"t": slow}, budget=cr.Budget(timeout=2.0))
    assert invariant.tier == "bounded"
    assert [(r.kind, r.details["budget"], r.details["cycle"]) for r in invariant.reasons] == [("budget", "timeout", 1)]
    assert invariant.facts("q") == []  # the cycle whose invariant could not be checked is not committed
    accept = cr.load_text(RULES.replace("invariant small", "# ").replace("LIMIT", "0").replace("ACCEPT", "100"),
                          "r.cvg").run(tools={"t": slow}, budget=cr.Budget(timeout=2.0))
    assert accept.tier == "bounded"
    [reason] = accept.reasons
    assert reason.details["budget"] == "timeout"
    assert "at the fixed point, while the acceptance checks called tools" in reason.message
    assert accept.facts("q") == [(1,), (2,)]
