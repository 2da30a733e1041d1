"""Host tools: Python callables that rules call as ``s = @name(args)``.

Calls of one cycle are batched and run concurrently, each with a time-out;
results come back keyed by (tool, arguments), so the order in which calls
finish never reaches the result. A successful result is remembered for the
whole job (a tool is called at most once per distinct arguments); a failure
is not, so a retried agent calls again. A replay uses recorded results
instead of calling anything.

Isolation: ``"thread"`` (the default) runs calls on a small pool of daemon
threads; a call that times out is abandoned, but a tool that holds the GIL in
one long C call (a regular expression that backtracks, a huge integer power)
cannot be interrupted and stalls the job. ``"process"`` runs calls in a pool
of worker processes (see ProcessPool): a call that times out has its worker
killed and replaced, whatever it was doing.

Whatever the isolation, anything a tool raises — ``SystemExit`` and
``KeyboardInterrupt`` included — is that call's failure, never the engine's,
and every value is validated (``check_value``) before it can reach a fact.
"""

from __future__ import annotations

import math
import queue
import re
import threading
import time
from typing import Any, Callable, Mapping

from ..values import clipped, type_name

ToolKey = tuple[str, tuple, tuple]


def tool_key(name: str, args: tuple) -> ToolKey:
    """A tool call's identity: the tool's name, the argument values and their types. ``1``,
    ``1.0`` and ``true`` are three different arguments, though equal in Python: a result
    remembered (or recorded) for ``@t(true)`` is never the answer to ``@t(1)``. ``key[0]`` is
    the name and ``key[1]`` the arguments."""
    return (name, args, tuple(type(a).__name__ for a in args))


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


TOOL_ISOLATION = ("thread", "process")
MAX_VALUE_SIZE = 1 << 24  # the longest string (characters) or int (bytes) a tool may return
_SURROGATE = re.compile("[\ud800-\udfff]")


def check_value(name: str, value: Any) -> ToolOutcome:
    """A tool's value as an outcome: a plain int, float, str or bool (subclasses such as an
    IntEnum or a numpy scalar are converted), finite, at most MAX_VALUE_SIZE, valid Unicode;
    anything else is the call's failure, with a message that says why."""
    kind = type_name(value)
    try:
        if kind == "bool":
            value = bool(value)
        elif kind == "int":
            value = int(value)
            if value.bit_length() > 8 * MAX_VALUE_SIZE:
                return ToolOutcome(False, error=f"tool {name} returned an int of {value.bit_length()} bits; "
                                                f"the limit is {8 * MAX_VALUE_SIZE}")
        elif kind == "float":
            value = float(value)
            if not math.isfinite(value):
                return ToolOutcome(False, error=f"tool {name} returned {value!r}; a float must be finite")
        elif kind == "str":
            value = str.__str__(value)
            if len(value) > MAX_VALUE_SIZE:
                return ToolOutcome(False, error=f"tool {name} returned a string of {len(value)} characters; "
                                                f"the limit is {MAX_VALUE_SIZE}")
            bad = _SURROGATE.search(value)
            if bad is not None:
                return ToolOutcome(False, error=f"tool {name} returned a string that is not valid Unicode "
                                                f"(a lone surrogate \\u{ord(bad.group()):04x} at index {bad.start()})")
        else:
            return ToolOutcome(False, error=f"tool {name} returned {type(value).__name__}; expected int, float, str or bool")
    except Exception as err:  # a subclass whose conversion fails
        return ToolOutcome(False, error=f"tool {name} returned an unusable {type(value).__name__}: {type(err).__name__}")
    return ToolOutcome(True, value)


def call_one(tools: Mapping[str, Callable[..., Any]], name: str, args: tuple) -> ToolOutcome:
    """Call a tool and validate its value; any exception, BaseException included, is a failure."""
    try:
        value = tools[name](*args)
    except (SystemExit, KeyboardInterrupt, GeneratorExit) as err:
        text = _message(err)
        return ToolOutcome(False, error=f"tool {name} raised {type(err).__name__}"
                                        + (f": {text}" if text else "") + " (a tool must return a value or raise an Exception)")
    except BaseException as err:  # a tool's failure is the agent's failure, never the engine's
        return ToolOutcome(False, error=f"tool {name} raised {type(err).__name__}: {_message(err)}")
    return check_value(name, value)


def _message(err: BaseException) -> str:
    """The exception's text, with lone surrogates as ``\\udXXX`` escapes: it goes into reasons, traces
    and records written as UTF-8, which cannot hold them."""
    try:
        text = str(err)
    except Exception:
        return "(its message cannot be shown)"
    return clipped(text).encode("utf-8", "backslashreplace").decode("utf-8")


class StuckCalls:
    """Tool calls abandoned at their time-out (or the job's) whose threads still run.

    A thread cannot be stopped: a tool that hangs keeps its thread until it returns, if
    ever. Every abandoned call counts here until then; while ``limit`` of them run, no
    new call is started, it fails at once and says why. So a long-lived owner (a rule
    set, a decision service's session) whose tool hangs holds at most ``limit`` stuck
    threads, instead of one more per decision. Thread-safe; shared by the owner's jobs."""

    LIMIT = 64

    def __init__(self, limit: int = LIMIT):
        if limit < 1:
            raise ValueError("the limit of stuck tool calls must be at least 1")
        self.limit = limit
        self.count = 0
        self._lock = threading.Lock()

    def full(self) -> bool:
        return self.count >= self.limit

    def add(self) -> None:
        with self._lock:
            self.count += 1

    def remove(self) -> None:
        with self._lock:
            self.count -= 1

    def refusal(self, name: str) -> ToolOutcome:
        return ToolOutcome(False, error=f"tool {name} was not called: {self.count} earlier tool calls are still running "
                                        f"past their time-out (at most {self.limit} may; each holds a thread until it returns)")


def call_batch(keys: list[ToolKey], tools: Mapping[str, Callable[..., Any]], workers: int,
               timeout: float | None, isolation: str = "thread", pool: "ProcessPool | None" = None,
               deadline: float | None = None, stuck: StuckCalls | None = None) -> dict[ToolKey, ToolOutcome]:
    """Run the calls concurrently (threads, or ``pool``'s processes); every call gets an outcome.

    ``deadline`` (``time.monotonic()`` seconds): the job's own wall-clock limit. No call
    outlives it: at the deadline every call still running or waiting to start is
    abandoned with an error (see :func:`deadline_outcome`), and the job, which checks
    its deadline before it evaluates an agent again, stops ``bounded``. ``stuck``
    counts the threads of abandoned calls and bounds them (see StuckCalls)."""
    if isolation == "process" and keys:
        assert pool is not None
        return pool.call_batch(keys, timeout, deadline)
    return _thread_batch(keys, tools, workers, timeout, deadline, stuck or StuckCalls())


def deadline_outcome(name: str) -> ToolOutcome:
    return ToolOutcome(False, error=f"tool {name} was stopped: the job's timeout ran out")


def _thread_batch(keys: list[ToolKey], tools: Mapping[str, Callable[..., Any]], workers: int,
                  timeout: float | None, deadline: float | None, stuck: StuckCalls) -> dict[ToolKey, ToolOutcome]:
    """Run the calls on daemon threads; every call gets an outcome (value, error, time-out,
    or refusal while too many abandoned calls still run)."""
    results: dict[ToolKey, ToolOutcome] = {}
    if not keys:
        return results
    if deadline is not None and time.monotonic() >= deadline:
        return {key: deadline_outcome(key[0]) for key in keys}
    if stuck.full():
        return {key: stuck.refusal(key[0]) for key in keys}
    todo: "queue.Queue[int]" = queue.Queue()
    for i in range(len(keys)):
        todo.put(i)
    started: dict[int, float] = {}
    done = [threading.Event() for _ in keys]
    outcomes: list[ToolOutcome | None] = [None] * len(keys)
    abandoned = [False] * len(keys)
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:  # taken and marked started at once: drain() sees every call either queued or started
                if stuck.full():
                    return  # the calls left are refused (the batch's wait sees it)
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                started[i] = time.monotonic()
            name, args = keys[i][0], keys[i][1]
            out = call_one(tools, name, args)
            with lock:
                outcomes[i] = out
                late_return = abandoned[i]
            done[i].set()
            if late_return:
                stuck.remove()
                return  # its place was taken by another worker

    def spawn() -> None:
        threading.Thread(target=worker, daemon=True, name="converge-tool").start()

    def drain() -> set[int]:
        """Take the calls not started yet off the queue: they never start."""
        taken = set()
        with lock:
            while True:
                try:
                    taken.add(todo.get_nowait())
                except queue.Empty:
                    return taken

    def abandon(i: int) -> bool:
        """Give up waiting for call ``i``; False when it returned meanwhile."""
        with lock:
            if outcomes[i] is not None:
                return False
            abandoned[i] = True
        stuck.add()
        return True

    for _ in range(max(1, min(workers, len(keys)))):
        spawn()
    late = False  # the job's deadline passed: abandon every call not done yet
    refused: set[int] = set()  # calls not started because too many abandoned ones still run
    for i in range(len(keys)):
        while not done[i].is_set() and not late and i not in refused:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                late = True
                drain()
                break
            with lock:
                begun = started.get(i)
            if begun is None:
                if stuck.full():  # no worker starts another call now
                    refused |= drain()
                    continue
                done[i].wait(0.01)
                continue
            remaining = None if timeout is None else begun + timeout - now
            if remaining is not None and remaining <= 0:
                break
            wait = remaining if remaining is not None else 0.1
            done[i].wait(wait if deadline is None else min(wait, deadline - now))
        if i in refused:
            out: ToolOutcome | None = stuck.refusal(keys[i][0])
        elif late:  # a call still running is abandoned; one not started never starts
            with lock:
                running = i in started
            out = deadline_outcome(keys[i][0]) if (running and abandon(i)) or outcomes[i] is None else outcomes[i]
        elif abandon(i):  # timed out: its thread is left to finish (daemon); another takes its place
            out = ToolOutcome(False, error=f"tool {keys[i][0]} timed out after {timeout:g}s")
            if stuck.full():
                refused |= drain()
            else:
                spawn()
        else:
            out = outcomes[i]
        assert out is not None
        results[keys[i]] = out
    return results


# ---------------------------------------------------------------- process isolation

def _serve(conn: Any, tools: Mapping[str, Callable[..., Any]]) -> None:
    """A worker process: call tools for the parent until the pipe closes."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    while True:
        try:
            name, args = conn.recv()
        except (EOFError, OSError):
            return
        out = call_one(tools, name, args)
        try:
            conn.send((out.ok, out.value, out.error))
        except Exception as err:  # a value that cannot be sent back
            conn.send((False, None, f"tool {name}: its value cannot be sent back ({type(err).__name__})"))


class _Worker:
    __slots__ = ("process", "conn", "key", "started")

    def __init__(self, process: Any, conn: Any):
        self.process, self.conn = process, conn
        self.key: ToolKey | None = None
        self.started = 0.0


class ProcessPool:
    """Worker processes for tool calls, started on first use and stopped by ``close``.

    Each worker runs one call at a time. A call that outlives its time-out has its
    worker killed (SIGKILL) and replaced; a worker that dies (a tool that calls
    ``os._exit`` or crashes the interpreter) fails the call it was running. By
    default (one job's pool) the workers are forked on Linux, so any callable
    works; elsewhere they are spawned and the tools must be importable
    (module-level functions, or ``ToolRef``). A pool shared by the jobs of a
    long-lived, threaded owner (a decision service's session) asks for
    ``start_method="forkserver"``: forking a process whose other threads may hold
    locks is unsafe. Concurrent ``call_batch`` calls share the idle workers; each
    uses at most ``size`` at once.
    """

    def __init__(self, tools: Mapping[str, Callable[..., Any]], size: int, start_method: str | None = None):
        import multiprocessing

        methods = multiprocessing.get_all_start_methods()
        if start_method is None or start_method not in methods:
            start_method = "fork" if "fork" in methods else "spawn"
        self._ctx = multiprocessing.get_context(start_method)
        self.tools = dict(tools)
        self.size = max(1, size)
        self.idle: list[_Worker] = []
        self._lock = threading.Lock()  # the idle workers, shared by concurrent batches

    def _start(self) -> _Worker:
        import sys

        for stream in (sys.stdout, sys.stderr):  # a forked child must not write the parent's pending output again
            try:
                if stream is not None:
                    stream.flush()
            except (OSError, ValueError):
                pass
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(target=_serve, args=(child, self.tools), daemon=True, name="converge-tool")
        process.start()
        child.close()
        return _Worker(process, parent)

    def _stop(self, worker: _Worker) -> None:
        try:
            worker.conn.close()
        except OSError:
            pass
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(5)

    def call_batch(self, keys: list[ToolKey], timeout: float | None,
                   deadline: float | None = None) -> dict[ToolKey, ToolOutcome]:
        from multiprocessing.connection import wait

        results: dict[ToolKey, ToolOutcome] = {}
        todo = list(keys)
        busy: list[_Worker] = []
        while todo or busy:
            if deadline is not None and time.monotonic() >= deadline:  # the job's timeout: stop everything
                for worker in busy:
                    assert worker.key is not None
                    self._stop(worker)
                    results[worker.key] = deadline_outcome(worker.key[0])
                for key in todo:
                    results[key] = deadline_outcome(key[0])
                return results
            while todo and len(busy) < self.size:
                with self._lock:
                    worker = self.idle.pop() if self.idle else None
                worker = worker or self._start()
                key = todo.pop(0)
                try:
                    worker.conn.send((key[0], key[1]))
                except Exception as err:  # arguments are plain values; a broken pipe means a dead worker
                    self._stop(worker)
                    results[key] = ToolOutcome(False, error=f"tool {key[0]} could not be called: {type(err).__name__}")
                    continue
                worker.key, worker.started = key, time.monotonic()
                busy.append(worker)
            if not busy:
                continue
            now = time.monotonic()
            wait_for = None if timeout is None else max(0.0, min(w.started + timeout for w in busy) - now)
            if deadline is not None:
                wait_for = max(0.0, deadline - now) if wait_for is None else min(wait_for, max(0.0, deadline - now))
            ready = set(wait([w.conn for w in busy], wait_for))
            still: list[_Worker] = []
            for worker in busy:
                key = worker.key
                assert key is not None
                if worker.conn in ready:
                    try:
                        ok, value, error = worker.conn.recv()
                        results[key] = ToolOutcome(True, value) if ok else ToolOutcome(False, error=error)
                        worker.key = None
                        with self._lock:
                            self.idle.append(worker)
                    except (EOFError, OSError):
                        self._stop(worker)
                        code = worker.process.exitcode
                        results[key] = ToolOutcome(False, error=f"tool {key[0]} ended its worker process"
                                                                + (f" (exit code {code})" if code is not None else ""))
                elif timeout is not None and time.monotonic() - worker.started >= timeout:
                    self._stop(worker)  # killed, whatever it was doing; a new worker takes its place
                    results[key] = ToolOutcome(False, error=f"tool {key[0]} timed out after {timeout:g}s "
                                                            "(its worker process was killed)")
                else:
                    still.append(worker)
            busy = still
        return results

    def close(self) -> None:
        """Stop every idle worker (the pool can start new ones if used again)."""
        with self._lock:
            idle, self.idle = self.idle, []
        for worker in idle:
            self._stop(worker)


class ToolSpecError(ValueError):
    """A ``--tools`` specification that names no usable tools."""


def module_tools(module: Any) -> dict[str, Callable[..., Any]]:
    """A module's tools: its public callables defined in it (not the ones it imports)."""
    return {n: f for n, f in vars(module).items() if callable(f) and not n.startswith("_")
            and getattr(f, "__module__", None) == module.__name__}


def tool_table(tools: Any) -> dict[str, Callable[..., Any]] | None:
    """The ``tools`` argument of the API as a dict of name -> callable: a mapping as it is, a
    module as its public functions (``module_tools``), None as None; a TypeError naming what is
    wrong for anything else, before any job runs."""
    import inspect

    if tools is None:
        return None
    if inspect.ismodule(tools):
        return module_tools(tools)
    if not isinstance(tools, Mapping):
        raise TypeError(f"tools must be a mapping of tool names to callables, or a module of tool functions, "
                        f"not {type(tools).__name__}")
    bad = sorted(repr(n) for n, f in tools.items() if not isinstance(n, str) or not callable(f))
    if bad:
        raise TypeError(f"tools must map names (str) to callables: {', '.join(bad)} do not")
    return dict(tools)


def load_tools_spec(spec: str) -> dict[str, Callable[..., Any]]:
    """The tools a ``--tools`` specification names: ``module:object`` (a dict of callables) or
    ``module`` / ``module:submodule`` (its public functions); the module may be a ``.py`` path."""
    import inspect

    module_name, _, attr = spec.rpartition(":") if ":" in spec else (spec, "", "")
    if attr and not attr.isidentifier():  # a Windows drive letter, not an attribute
        module_name, attr = spec, ""
    try:
        target: Any = import_tools_module(module_name)
        if attr:
            target = getattr(target, attr)
    except Exception as err:
        raise ToolSpecError(f"cannot load tools from {spec!r}: {type(err).__name__}: {err}") from None
    except SystemExit:
        raise ToolSpecError(f"cannot load tools from {spec!r}: the module called exit()") from None
    if isinstance(target, dict):
        tools = dict(target)
    elif inspect.ismodule(target):
        tools = module_tools(target)
    else:
        raise ToolSpecError(f"{spec!r} is neither a dict of callables nor a module")
    bad = sorted(n for n, f in tools.items() if not callable(f))
    if bad:
        raise ToolSpecError(f"tools {', '.join(bad)} in {spec!r} are not callable")
    return tools


class ToolRef:
    """A tool named by its ``--tools`` specification: it pickles as (spec, name), so a worker
    process or a cluster node imports the module itself (a module imported from a path lives
    under a private name that another process cannot resolve)."""

    def __init__(self, spec: str, name: str):
        self.spec = spec
        self.name = name
        self._fn: Callable[..., Any] | None = None

    def __getstate__(self) -> dict[str, str]:
        return {"spec": self.spec, "name": self.name}

    def __setstate__(self, state: dict[str, str]) -> None:
        self.__init__(state["spec"], state["name"])  # type: ignore[misc]

    def __call__(self, *args: Any) -> Any:
        if self._fn is None:
            self._fn = load_tools_spec(self.spec)[self.name]
        return self._fn(*args)

    def __repr__(self) -> str:
        return f"ToolRef({self.spec!r}, {self.name!r})"
