"""W600 a test's facts file does not exist: ``given "cases/a.json"`` names a path
(relative to the test's file) where there is no regular file or directory.

The test can never pass: when it runs, reading the file fails (E500). ``check``
says so before the tests run, at the clause that names the file.
"""

from __future__ import annotations

import os
from typing import Iterator

from ..diagnostics import Diagnostic
from ._context import LintContext

CODE = "W600"
TITLE = "a test's given facts file does not exist"


def check(ctx: LintContext) -> Iterator[Diagnostic]:
    for test in ctx.program.tests:
        for path, span in zip(test.given_files, test.given_spans):
            if os.path.isfile(path) or os.path.isdir(path):  # a facts file or a directory of them
                continue
            what = "is neither a regular file nor a directory" if os.path.exists(path) else "does not exist"
            yield ctx.warn(CODE, f"test {test.name!r} reads facts from {path!r}, which {what}: the test will fail "
                                 "when it runs (E500)", span,
                           "the path is relative to the file that holds the test")
