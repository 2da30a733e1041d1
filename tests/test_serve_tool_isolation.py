"""Tool calls in worker processes for a long-lived session and `converge serve --tool-isolation process`.

The session keeps one pool of worker processes, started from a fork server (forking a threaded
service is unsafe), for all its decisions: a call past its time-out has its process killed, so a
hanging tool holds no thread and no process; a tool that ends its process fails its call only.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx
import pytest

import converge_rules as cr
from converge_rules.engine.tools import ToolRef
from test_serve import Server

RULES = ("relation a(x: int)\nrelation b(x: int)\nrelation c(x: int)\nrelation d(x: int)\n"
         "b(y) :- a(x), y = @double(x).\n"
         "c(y) :- a(x), x > 100, y = @hang(x).\n"
         "d(y) :- a(x), x < 0, y = @die(x).\n")
TOOLS = ("import os\nimport time\n\n"
         "def double(x):\n    return 2 * x\n\n"
         "def hang(x):\n    time.sleep(3600)\n    return x\n\n"
         "def die(x):\n    os._exit(3)\n")


def _children(pid: int) -> set[int]:
    """Every process whose parent chain reaches ``pid``."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


@pytest.fixture()
def tools_file(tmp_path: Path) -> str:
    (tmp_path / "tools.py").write_text(TOOLS)
    return str(tmp_path / "tools.py")


def test_a_session_runs_tools_in_shared_worker_processes_and_kills_a_hanging_one(tools_file: str) -> None:
    tools = {name: ToolRef(tools_file, name) for name in ("double", "hang", "die")}
    session = cr.Session(sources=[("r.cvg", RULES)], tools=tools, tool_timeout=0.5, on_failure="skip",
                         tool_isolation="process")
    threads = threading.active_count()
    try:
        first = session.decide({"a": [[1], [2]]})
        assert first.result.tier.value == "converged" and sorted(first.result.facts("b")) == [(2,), (4,)]
        for k in range(3):
            hung = session.decide({"a": [[101 + k]]})
            assert hung.result.tier.value == "degraded"
            assert "(its worker process was killed)" in hung.result.reasons[0].message
        died = session.decide({"a": [[-1]]})
        assert died.result.tier.value == "degraded" and "ended its worker process" in died.result.reasons[0].message
        again = session.decide({"a": [[5]]})  # the pool goes on with new workers
        assert again.result.tier.value == "converged" and again.result.facts("b") == [(10,)]
        # no thread is left behind (threads of earlier tests in this process may end meanwhile)
        assert threading.active_count() <= threads and session.stuck_tool_calls.count == 0
        assert again.result.digest == cr.load_text(RULES).run({"a": [[5]]}, tools=tools).digest
        assert _workers()  # idle workers wait for the next decision
    finally:
        session.close()
    deadline = time.monotonic() + 10
    while _workers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _workers()  # close() stops them all


def _workers() -> set[int]:
    """The worker processes: children of this process's fork server."""
    servers = {p for p in _children(os.getpid()) if _direct_parent(p) == os.getpid() and _is_fork_server(p)}
    return {p for p in _children(os.getpid()) if _direct_parent(p) in servers}


def _direct_parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return -1


def _is_fork_server(pid: int) -> bool:
    try:
        return b"forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def test_process_isolation_needs_tools_another_process_can_receive() -> None:
    with pytest.raises(ValueError, match="tool 'double' cannot be sent"):
        cr.Session(sources=[("r.cvg", RULES)], tools={"double": lambda x: 2 * x, "hang": abs, "die": abs},
                   tool_isolation="process")
    with pytest.raises(ValueError, match="tool_isolation must be one of"):
        cr.Session(sources=[("r.cvg", RULES)], tools={"double": abs, "hang": abs, "die": abs}, tool_isolation="fork")


def test_serve_with_process_isolation_kills_hanging_tools_and_leaves_no_process(tmp_path: Path, tools_file: str) -> None:
    (tmp_path / "r.cvg").write_text(RULES)
    srv = Server([str(tmp_path / "r.cvg")], f"sqlite:///{tmp_path / 'd.db'}", "--tools", tools_file,
                 "--tool-isolation", "process", "--tool-timeout", "0.5", "--on-failure", "skip").start()
    try:
        assert srv.proc is not None
        post = lambda facts: httpx.post(srv.url + "/v1/decisions", json={"facts": facts}, timeout=60).json()  # noqa: E731
        assert post({"a": [[1]]})["facts"]["b"] == [[2]]
        for k in range(4):
            body = post({"a": [[200 + k]]})
            assert body["tier"] == "degraded" and "(its worker process was killed)" in body["reasons"][0]["message"]
        assert "ended its worker process" in post({"a": [[-5]]})["reasons"][0]["message"]
        assert post({"a": [[7]]})["facts"]["b"] == [[14]]
        assert "converge_tool_calls_stuck 0.0" in httpx.get(srv.url + "/metrics").text
        helpers = _children(srv.proc.pid)
        assert helpers  # the fork server and the idle workers
        assert len(helpers) <= 4
    finally:
        out = srv.stop()
    assert "Traceback" not in out
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{p}").exists() for p in helpers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(Path(f"/proc/{p}").exists() for p in helpers)  # none outlives the service
