"""A tool that hangs for good costs a bounded number of threads, however many jobs call it.

A thread cannot be stopped: a call abandoned at its time-out keeps its thread until the tool
returns. Each owner (a rule set, a session, a decision service) counts those threads and, at
its limit, fails new calls at once instead of starting them (engine.tools.StuckCalls).
Through the API (RuleSet, Session) and through a real `converge serve` process.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

import converge_rules as cr
from converge_rules.engine.tools import StuckCalls
from test_serve import Server

RULES = "relation a(x: int)\nrelation b(x: int)\nb(y) :- a(x), y = @hang(x).\n"


def _hanging() -> tuple[threading.Event, dict]:
    release = threading.Event()

    def hang(x: int) -> int:
        release.wait(60)
        return x

    return release, {"hang": hang}


def _wait_until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_a_rule_set_holds_at_most_its_limit_of_stuck_threads_and_says_why_calls_fail() -> None:
    rules = cr.load_text(RULES)
    rules.stuck_tool_calls.limit = 3
    release, tools = _hanging()
    before = threading.active_count()
    tiers, messages = [], []
    try:
        for job in range(8):
            result = rules.run({"a": [[job * 10], [job * 10 + 1]]}, tools=tools, tool_timeout=0.1, workers=2,
                               on_failure="skip")
            tiers.append(result.tier.value)
            messages.append(" ".join(r.message for r in result.reasons))
            # the limit, plus the calls already running when it was reached (at most `workers`)
            assert rules.stuck_tool_calls.count <= 3 + 1
            assert threading.active_count() - before <= 3 + 1
        assert set(tiers) == {"degraded"}  # the agent is skipped: its policy applies, the job goes on
        assert "timed out after 0.1s" in messages[0]
        late = messages[-1]
        assert "tool hang was not called" in late and "still running past their time-out" in late and "at most 3" in late
    finally:
        release.set()
    _wait_until(lambda: rules.stuck_tool_calls.count == 0)  # every stuck call returned: its count is given back
    _wait_until(lambda: threading.active_count() <= before)
    result = rules.run({"a": [[5]]}, tools=tools, tool_timeout=5)
    assert result.tier.value == "converged" and result.count("b") == 1  # calls start again


def test_without_stuck_calls_nothing_changes_and_the_limit_is_checked() -> None:
    rules = cr.load_text(RULES)
    result = rules.run({"a": [[i] for i in range(20)]}, tools={"hang": lambda x: x + 1}, workers=4)
    assert result.tier.value == "converged" and result.count("b") == 20 and rules.stuck_tool_calls.count == 0
    try:
        StuckCalls(0)
    except ValueError as err:
        assert "at least 1" in str(err)
    else:
        raise AssertionError("a limit of 0 was accepted")


def test_a_session_keeps_its_count_across_rule_set_swaps(tmp_path: Path) -> None:
    release, tools = _hanging()
    session = cr.Session(sources=[("r.cvg", RULES)], tools=tools, tool_timeout=0.1, on_failure="skip")
    session.stuck_tool_calls.limit = 2
    try:
        session.decide({"a": [[1]]})
        session.decide({"a": [[2]]})
        assert session.stuck_tool_calls.count == 2
        session.swap([("r.cvg", RULES + "\n")])  # a new rule set does not forget the threads still held
        decision = session.decide({"a": [[3]]})
        assert "tool hang was not called" in " ".join(r.message for r in decision.result.reasons)
        assert session.stuck_tool_calls.count == 2
    finally:
        release.set()
    _wait_until(lambda: session.stuck_tool_calls.count == 0)


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no thread count")


def test_serve_bounds_the_threads_a_hanging_tool_takes(tmp_path: Path) -> None:
    (tmp_path / "r.cvg").write_text(RULES)
    (tmp_path / "hanging.py").write_text("import time\n\ndef hang(x):\n    time.sleep(3600)\n    return x\n")
    srv = Server([str(tmp_path / "r.cvg")], f"sqlite:///{tmp_path / 'd.db'}", "--tools", str(tmp_path / "hanging.py"),
                 "--tool-timeout", "0.2", "--max-stuck-tool-calls", "3", "--on-failure", "skip").start()
    try:
        assert srv.proc is not None
        pid = srv.proc.pid
        bodies = []
        for k in range(10):
            bodies.append(httpx.post(srv.url + "/v1/decisions", json={"facts": {"a": [[k]]}}, timeout=60).json())
        threads_after_ten = _threads(pid)
        for k in range(10, 20):
            bodies.append(httpx.post(srv.url + "/v1/decisions", json={"facts": {"a": [[k]]}}, timeout=60).json())
        assert all(b["tier"] == "degraded" for b in bodies)  # stored and answered: the agent was skipped
        assert "timed out after 0.2s" in bodies[0]["reasons"][0]["message"]
        assert "tool hang was not called" in bodies[-1]["reasons"][0]["message"]
        assert _threads(pid) <= threads_after_ten  # ten more decisions took no thread
        metrics = httpx.get(srv.url + "/metrics").text
        assert "converge_tool_calls_stuck 3.0" in metrics
    finally:
        out = srv.stop()
    assert "Traceback" not in out


def test_serve_refuses_a_limit_below_one(tmp_path: Path) -> None:
    from cli_process import converge

    (tmp_path / "r.cvg").write_text("relation a(x: int)\n")
    done = converge("serve", "r.cvg", "--max-stuck-tool-calls", "0", "--store", f"sqlite:///{tmp_path / 'd.db'}",
                    cwd=tmp_path)
    assert done.returncode == 2 and "--max-stuck-tool-calls" in done.stderr and "Traceback" not in done.stderr
