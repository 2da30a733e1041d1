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

from ..values import type_name

ToolKey = tuple[str, tuple]


def import_tools_module(name: str, cwd: str | None = None) -> Any:
    """Import the module that ``--tools`` names, without touching ``sys.path``.

    A file path (``tools.py``, ``dir/tools.py``) is loaded from that file. A dotted name is
    looked up in the working directory first (``a/b.py`` or ``a/b/__init__.py`` for
    ``a.b``), explicitly, then among installed modules. A module found on disk is
    registered under a private name (``converge_tools_<hash>``), so a ``./lark/`` or
    ``./json.py`` next to the rules can never shadow a library for later imports.
    """
    import hashlib
    import importlib
    import importlib.util
    import os
    import sys

    base = cwd or os.getcwd()
    path: str | None = None
    if name.endswith(".py") or os.sep in name or (os.altsep and os.altsep in name):
        path = os.path.join(base, name)
        if not os.path.isfile(path):
            raise ImportError(f"no such file: {name}")
    elif all(part.isidentifier() for part in name.split(".")):
        parts = name.split(".")
        for candidate in (os.path.join(base, *parts) + ".py", os.path.join(base, *parts, "__init__.py")):
            if os.path.isfile(candidate):
                path = candidate
                break
    else:
        raise ImportError(f"{name!r} is neither a module name nor a .py file")
    if path is None:  # not in the working directory: an installed module
        return importlib.import_module(name)
    path = os.path.abspath(path)
    private = "converge_tools_" + hashlib.sha256(path.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    if private in sys.modules:
        return sys.modules[private]
    spec = importlib.util.spec_from_file_location(private, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {name}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[private] = module  # under its private name only: nothing is shadowed
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(private, None)
        raise
    return module


class ToolOutcome:
    __slots__ = ("ok", "value", "error")

    def __init__(self, ok: bool, value: Any = None, error: str = ""):
        self.ok, self.value, self.error = ok, value, error

    def to_json(self) -> dict[str, Any]:
        return {"result": self.value} if self.ok else {"error": self.error}


def _valid(value: Any) -> bool:
    return type_name(value) in ("int", "float", "str", "bool") and not (isinstance(value, float) and value != value)


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
                out = ToolOutcome(True, value) if _valid(value) else ToolOutcome(
                    False, error=f"tool {name} returned {'NaN' if isinstance(value, float) else type(value).__name__}; "
                                 "expected int, float, str or bool")
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
