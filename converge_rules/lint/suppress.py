"""Inline suppressions: ``# converge: disable=W100`` (codes separated by commas).

The comment silences the listed warnings on its own line, or, when it
stands alone on a line, on the next line. It never silences errors: a
program with errors does not run, whatever the comments say.
"""

from __future__ import annotations

import re

from typing import Protocol

from ..diagnostics import Diagnostic

_DIRECTIVE = re.compile(r"#\s*converge:\s*disable\s*=\s*([A-Za-z0-9_]+(?:\s*,\s*[A-Za-z0-9_]+)*)")


def _comment(line: str) -> tuple[str, str] | None:
    """(code before the comment, the comment) of a source line; strings are skipped."""
    in_str = False
    i = 0
    while i < len(line):
        ch = line[i]
        if in_str:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch == "#":
            return line[:i], line[i:]
        i += 1
    return None


def codes_in(line: str | None) -> tuple[frozenset[str], bool]:
    """The codes a line's comment disables, and whether the comment stands alone on the line."""
    if line is None:
        return frozenset(), False
    found = _comment(line)
    if found is None:
        return frozenset(), False
    code, comment = found
    match = _DIRECTIVE.match(comment)
    if match is None:
        return frozenset(), False
    codes = frozenset(c.strip().upper() for c in match.group(1).split(","))
    return codes, not code.strip()


class Lines(Protocol):
    """Where the lines of the checked texts are looked up (diagnostics.SourceTexts)."""

    def line(self, file: str, line: int) -> str | None: ...


def is_suppressed(diag: Diagnostic, sources: Lines) -> bool:
    """Whether an inline comment in ``sources`` (the texts that were checked) disables this warning."""
    if diag.is_error or diag.span.line <= 0:
        return False
    same, _alone = codes_in(sources.line(diag.span.file, diag.span.line))
    if diag.code in same:
        return True
    before, alone = codes_in(sources.line(diag.span.file, diag.span.line - 1))
    return alone and diag.code in before
