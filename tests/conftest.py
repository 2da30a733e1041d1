"""Shared pytest configuration for the test suite.

The suite runs on three pytest-xdist workers (``-n 3`` in pyproject.toml's
``addopts``: on 2 cores the third fills the time the others spend waiting on
servers, time-outs and child processes), so every fixture here keeps one
worker out of another's way:

- each worker gets its own converge cache directory (``CONVERGE_CACHE_DIR``)
  and data directory (``CONVERGE_DATA_DIR``), set in ``pytest_configure``
  and removed at the end, so no two workers write the same Lark parser
  cache, compile cache or default decision log, and the suite never writes
  into the user's ``~/.cache`` or ``~/.local/share``. Per worker, not per
  test: a fresh cache for every test made each test's first ``converge``
  subprocess a cold start and the suite 70 s slower (322 s against 251 s on
  2 cores). The CLI subprocesses of the tests run with the caches on, as users
  do (a cache never changes a result): with ``CONVERGE_NO_CACHE=1`` each one
  rebuilt Lark's parser tables and recompiled its rules (0.4 s of a 0.6 s
  subprocess). Tests about the caches themselves point these variables at
  their own ``tmp_path``;
- PostgreSQL objects live in schemas named after the worker plus a random
  suffix (``pg_schema``), created by the test and dropped by the fixture;
- with ``PYTHONDONTWRITEBYTECODE`` set (or ``python -B``), the package's
  bytecode is compiled once before the workers start and removed at the
  end: the hundreds of ``python -m converge_rules`` subprocesses import the
  package from this source tree and would otherwise each compile all of it
  again (0.17 s of every subprocess);
- servers listen on ports the kernel picked (``bind(("127.0.0.1", 0))``, see
  ``free_port`` in test_serve.py) and Dask clusters run in process with no
  dashboard, so nothing binds a fixed port.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest

PG_ENV = "CONVERGE_TEST_POSTGRES"
ROOT = Path(__file__).resolve().parent.parent
_DIRS = ("CONVERGE_CACHE_DIR", "CONVERGE_DATA_DIR")
_saved: dict[str, str | None] = {}
_base: list[str] = []
_compiled: list[Path] = []


def worker_name() -> str:
    """``gw0``, ``gw1``... under pytest-xdist, ``main`` in a run without workers."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def pytest_configure(config: pytest.Config) -> None:
    # `browser`: tests that drive headless Chromium (Debian's `chromium`); they skip when it is missing.
    config.addinivalue_line("markers", "browser: loads pages in headless Chromium (/usr/bin/chromium); skipped when it is not installed")
    if "PYTEST_XDIST_WORKER" not in os.environ:  # the controller (or a run without xdist), before any worker starts
        _precompile_package()
    # This process's own cache and data directories, before collection imports anything, for every
    # subprocess and server it starts. Each xdist worker runs this hook too and gets its own.
    base = tempfile.mkdtemp(prefix=f"converge-tests-{worker_name()}-")
    _base.append(base)
    for name, sub in zip(_DIRS, ("cache", "data")):
        _saved.setdefault(name, os.environ.get(name))
        os.environ[name] = os.path.join(base, sub)


def pytest_unconfigure(config: pytest.Config) -> None:
    for name, value in _saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _saved.clear()
    while _base:
        shutil.rmtree(_base.pop(), ignore_errors=True)
    while _compiled:
        pyc = _compiled.pop()
        pyc.unlink(missing_ok=True)
        try:
            pyc.parent.rmdir()  # only when empty: a __pycache__ that held nothing before
        except OSError:
            pass


def _precompile_package() -> None:
    """Bytecode for converge_rules/ when Python writes none itself (it still reads it): the files made
    here are removed in pytest_unconfigure, so the tree is left as it was found."""
    if not sys.flags.dont_write_bytecode:
        return  # the first import writes it, as usual
    import importlib.util
    import py_compile

    for source in sorted((ROOT / "converge_rules").rglob("*.py")):
        pyc = Path(importlib.util.cache_from_source(str(source)))
        if pyc.exists():
            continue
        try:
            py_compile.compile(str(source), cfile=str(pyc), doraise=True)
        except (OSError, py_compile.PyCompileError):
            continue
        _compiled.append(pyc)


@pytest.fixture
def pg_url() -> str:
    """The PostgreSQL server of ``CONVERGE_TEST_POSTGRES``; skipped locally when unset, a failure in CI."""
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{PG_ENV} is not set in CI: the PostgreSQL tests must run")
        pytest.skip(f"{PG_ENV} is not set")
    return url


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[Callable[[str], str]]:
    """``pg_schema("g_facts")`` creates and returns a fresh schema name of this worker
    (``g_facts_gw0_1a2b3c4d``); every schema made so is dropped after the test."""
    import psycopg

    made: list[str] = []

    def make(prefix: str) -> str:
        name = re.sub(r"[^a-z0-9_]", "_", f"{prefix}_{worker_name()}_{uuid.uuid4().hex[:8]}".lower())
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        made.append(name)
        return name

    yield make
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for name in made:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture(autouse=True, scope="module")
def _collector_left_as_found() -> Iterator[None]:
    """A test module must leave the garbage collector on (the library never turns it off; only the
    `converge` entry point does, for one-shot commands): running the entry point in this process and
    forgetting to restore it made a later module on the same worker fail far from the cause."""
    import gc

    was = gc.isenabled()
    yield
    if was and not gc.isenabled():
        gc.enable()
        pytest.fail("this test module left the garbage collector turned off (the `converge` entry point, run "
                    "in this process, turns it off for a one-shot command: restore it)")
