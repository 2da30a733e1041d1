"""pytest plugin: collect the ``test`` blocks of ``*.cvg`` files as pytest items.

Registered through the ``pytest11`` entry point ``converge``, so
``pytest rules/`` runs rule tests next to Python tests. A ``.cvg`` file is
collected only when its text contains a test block (``test "`` outside comments
and strings, ``runner.has_test_blocks``): rule files without tests, broken or
not, are ignored; a file with test blocks that does not parse or compile, and
a file that cannot be read (not UTF-8), are collection errors showing their
diagnostics, as ``converge test`` reports them. Each test
block is one item, named by the test's name; a failing item shows the same
text as ``converge test`` (missing facts with their why-not explanation,
unexpected facts with their proof, tier and violation mismatches).

Rules that call host tools get them from ``--converge-tools MODULE[:OBJECT]``
(repeatable) or the ini option ``converge_tools`` (one spec a line), as
``converge test --tools`` takes them.

Disable with ``-p no:converge``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from ..regularfile import read_regular_text


def _display(path: Path) -> str:
    """The path relative to the working directory when it is below it (as ``converge test`` prints it)."""
    text = os.fspath(path)
    try:
        rel = os.path.relpath(text)
    except ValueError:  # another drive (Windows)
        return text
    return text if rel.startswith("..") else rel


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> "CvgFile | None":
    if file_path.suffix != ".cvg":
        return None
    from .runner import has_test_blocks

    try:
        text = read_regular_text(file_path)
    except (OSError, UnicodeDecodeError):  # whether it has tests is unknown: its E002 is a
        return CvgFile.from_parent(parent, path=file_path)  # collection error, as `converge test` reports it
    if not has_test_blocks(text):
        return None
    return CvgFile.from_parent(parent, path=file_path)


class CvgLoadError(Exception):
    """A test file that does not parse or compile."""


class CvgTestFailure(Exception):
    """A rule test whose expectations are not met."""

    def __init__(self, outcome: Any):
        super().__init__(outcome.failure_text())
        self.outcome = outcome


class CvgFile(pytest.File):
    def collect(self) -> Iterator["CvgItem"]:
        from .runner import load_file

        loaded = load_file(_display(self.path))
        if loaded is None:
            return
        if not loaded.ok:
            raise CvgLoadError(loaded.diagnostics_text())
        for test in loaded.tests:
            yield CvgItem.from_parent(self, name=test.name, loaded=loaded, test=test)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:  # type: ignore[override]
        if isinstance(excinfo.value, CvgLoadError):
            return f"rule file does not compile:\n{excinfo.value}"
        return super().repr_failure(excinfo)


class CvgItem(pytest.Item):
    def __init__(self, *, loaded: Any, test: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.loaded = loaded
        self.test = test
        # no fixtures: an empty funcargs, as other plugins' hooks (pytest-lsp's) expect of an item
        self.funcargs: dict[str, Any] = {}
        self.add_marker("converge")

    def runtest(self) -> None:
        from .runner import run_test

        outcome = run_test(self.loaded, self.test, tools=_tools(self.config))
        if not outcome.passed:
            raise CvgTestFailure(outcome)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:  # type: ignore[override]
        if isinstance(excinfo.value, CvgTestFailure):
            return excinfo.value.outcome.failure_text()
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, self.test.span.line - 1, f"converge test: {self.test.name}"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("converge", "Converge rule tests")
    group.addoption("--converge-tools", action="append", default=[], metavar="MODULE[:OBJECT]",
                    help="host tools for the rules' @name(...) calls, as converge test --tools (repeatable)")
    parser.addini("converge_tools", type="linelist", default=[],
                  help="host tools for rule tests, one MODULE[:OBJECT] a line (as converge test --tools)")


_TOOLS = pytest.StashKey[dict]()


def _tools(config: pytest.Config) -> dict[str, Any] | None:
    """The tools of this pytest run, loaded once at configure time (kept on the run's config, not
    in the module); none given, nothing is imported."""
    if _TOOLS not in config.stash:
        from ..engine.tools import ToolSpecError, load_tools_spec

        tools: dict[str, Any] = {}
        for spec in list(config.getini("converge_tools")) + list(config.getoption("converge_tools") or []):
            try:
                tools.update(load_tools_spec(spec))
            except ToolSpecError as err:
                raise pytest.UsageError(f"converge tools: {err}") from None
        config.stash[_TOOLS] = tools
    return config.stash[_TOOLS] or None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "converge: a test block of a .cvg rule file (converge test)")
    _tools(config)  # a tools spec that does not load is a usage error now, not a failure of every item
