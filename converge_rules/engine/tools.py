"""Host tools: Python callables that rules call as ``s = @name(args)``.

Calls of one cycle are batched and run on a small pool of daemon threads,
each with a time-out; results come back keyed by (tool, arguments), so the
order in which calls finish never reaches the result. A successful result is
remembered for the whole job (a tool is called at most once per distinct
arguments); a failure is not, so a retried agent calls again. A replay uses
recorded results instead of calling anything.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable, Mapping

from ..values import type_name, value_problem

ToolKey = tuple[str, tuple]


class ToolOutcome:
    __slots__ = ("ok", "value", "error")

    def __init__(self, ok: bool, value: Any = None, error: str = ""):
        self.ok, self.value, self.error = ok, value, error

    def to_json(self) -> dict[str, Any]:
        return {"result": self.value} if self.ok else {"error": self.error}


def _problem(name: str, value: Any) -> str | None:
    """Why a tool's value cannot be used (wrong type, not finite, not valid Unicode), or None."""
    if type_name(value) not in ("int", "float", "str", "bool"):
        return f"tool {name} returned {type(value).__name__}; expected int, float, str or bool"
    problem = value_problem(value)
    return f"tool {name} returned an invalid value: {problem}" if problem else None


def call_batch(keys: list[ToolKey], tools: Mapping[str, Callable[..., Any]], workers: int,
               timeout: float | None) -> dict[ToolKey, ToolOutcome]:
    """Run the calls concurrently; every call gets an outcome (value, error or time-out)."""
    results: dict[ToolKey, ToolOutcome] = {}
    if not keys:
        return results
    todo: "queue.Queue[int]" = queue.Queue()
    for i in range(len(keys)):
        todo.put(i)
    started: dict[int, float] = {}
    done = [threading.Event() for _ in keys]
    outcomes: list[ToolOutcome | None] = [None] * len(keys)
    lock = threading.Lock()

    def worker() -> None:
        while True:
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            name, args = keys[i]
            with lock:
                started[i] = time.monotonic()
            try:
                value = tools[name](*args)
                problem = _problem(name, value)
                out = ToolOutcome(True, value) if problem is None else ToolOutcome(False, error=problem)
            except Exception as err:  # a tool's failure is the agent's failure, never the engine's
                out = ToolOutcome(False, error=f"tool {name} raised {type(err).__name__}: {err}")
            outcomes[i] = out
            done[i].set()

    def spawn() -> None:
        threading.Thread(target=worker, daemon=True, name="converge-tool").start()

    for _ in range(max(1, min(workers, len(keys)))):
        spawn()
    for i in range(len(keys)):
        while not done[i].is_set():
            with lock:
                begun = started.get(i)
            if begun is None:
                done[i].wait(0.01)
                continue
            remaining = None if timeout is None else begun + timeout - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            done[i].wait(remaining if remaining is not None else 0.1)
        out = outcomes[i]
        if out is None:  # timed out: abandon the thread (daemon) and replace the worker it held
            out = ToolOutcome(False, error=f"tool {keys[i][0]} timed out after {timeout:g}s")
            spawn()
        results[keys[i]] = out
    return results
