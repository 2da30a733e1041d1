"""Source spans and diagnostics: every problem a user can cause is a Diagnostic.

A Diagnostic has a stable code (documented in docs/diagnostics.md), a
severity, a message, a Span pointing into the source, and optional notes.
Rendering follows the compiler convention
``file:line:col: error[E200]: message`` plus the source line and a caret.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Iterable, Literal

from ._frozen import frozen

Severity = Literal["error", "warning", "note"]


def normalize_newlines(text: str) -> str:
    """Text with every line ending written as LF: CRLF and a lone CR (classic Mac) end a
    line too, as they do for a file read in Python's universal-newlines mode and for an
    editor (LSP). Other characters Unicode calls line breaks (U+2028, U+0085, form feed)
    do not end a line."""
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def split_lines(text: str) -> list[str]:
    """The lines of a text as line numbers count them: split at LF only (a CR before it
    dropped), not at every line break ``str.splitlines`` knows, so a quoted line is the
    line a diagnostic's span points at."""
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


@dataclass(frozen=True, order=True)
class Span:
    """A region of a source file (1-based lines and columns, end exclusive)."""

    file: str
    line: int
    col: int
    end_line: int = 0
    end_col: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    def to_json(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "col": self.col,
                "end_line": self.end_line or self.line, "end_col": self.end_col or self.col}


NO_SPAN = Span("<unknown>", 0, 0)


@frozen
class Diagnostic:
    """One problem found in rules or facts, with a stable code."""

    code: str
    message: str
    span: Span = NO_SPAN
    severity: Severity = "error"
    notes: tuple[str, ...] = field(default=())

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.span.file, self.span.line, self.span.col, self.code, self.message)

    def render(self, sources: "SourceCache | None" = None) -> str:
        """``file:line:col: severity[code]: message``, the source line and a caret."""
        loc = f"{self.span.file}:{self.span.line}:{self.span.col}" if self.span.line else self.span.file
        out = [f"{loc}: {self.severity}[{self.code}]: {self.message}"]
        text = (sources or SourceCache()).line(self.span.file, self.span.line)
        if text is not None:
            width = 1
            if self.span.end_line == self.span.line and self.span.end_col > self.span.col:
                width = self.span.end_col - self.span.col
            text, col = text.expandtabs(1), max(self.span.col - 1, 0)
            if len(text) > 160:  # quote a window around the column, not a whole huge line
                start = max(0, col - 60)
                text = ("…" if start else "") + text[start:start + 150] + ("…" if start + 150 < len(text) else "")
                col = col - start + (1 if start else 0)
                width = min(width, 150 - (col - 1))
            # The caret counts the cells a terminal shows: a control character as its \uXXXX
            # escape (as the output shows it), a wide character (CJK, emoji) as two.
            from .textsafe import escape_controls

            before, under = escape_controls(text[:col]), escape_controls(text[col:col + max(min(width, 150), 1)])
            gutter = f"{self.span.line:>4} | "
            out.append(gutter + escape_controls(text))
            out.append(" " * (len(gutter) + _cells(before)) + "^" * max(_cells(under), 1))
        out.extend(f"  = note: {n}" for n in self.notes)
        return "\n".join(out)

    def to_json(self) -> dict[str, object]:
        return {"code": self.code, "severity": self.severity, "message": self.message,
                "span": self.span.to_json(), "notes": list(self.notes)}


def _cells(text: str) -> int:
    """The terminal cells a text takes: two for a wide character, none for a combining one."""
    import unicodedata

    return sum(0 if unicodedata.combining(ch) or ch == "\u200d" else
               2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


class SourceCache:
    """Source text by file name, so diagnostics can quote the offending line.

    Shared by every instance of one thread (a parser adds what a renderer later quotes),
    and by that thread only: two threads compiling different texts under the same name
    (two requests of a service) each quote their own. Bounded: only the LIMIT most
    recently added files are kept, and a long-lived process that reads ever new files
    does not grow without end."""

    LIMIT = 64
    _local = threading.local()

    @staticmethod
    def _texts() -> dict[str, list[str]]:
        texts: dict[str, list[str]] | None = getattr(SourceCache._local, "texts", None)
        if texts is None:
            texts = SourceCache._local.texts = {}
        return texts

    def add(self, file: str, text: str) -> None:
        self._keep(file, split_lines(text))

    def add_lines(self, file: str, lines: list[str]) -> None:
        """Keep ``file`` split into lines by the caller (a loader that counts lines its own way)."""
        self._keep(file, lines)

    @staticmethod
    def _keep(file: str, lines: list[str]) -> None:
        texts = SourceCache._texts()
        texts.pop(file, None)
        texts[file] = lines
        while len(texts) > SourceCache.LIMIT:
            del texts[next(iter(texts))]  # the oldest entry

    def line(self, file: str, line: int) -> str | None:
        if line <= 0:
            return None
        lines = SourceCache._texts().get(file)
        if lines is None:
            try:
                with open(file, encoding="utf-8") as handle:  # universal newlines, as rule files are read
                    lines = split_lines(handle.read())
            except (OSError, UnicodeDecodeError):
                return None
            self._keep(file, lines)
        return lines[line - 1] if line - 1 < len(lines) else None


class ConvergeError(Exception):
    """Raised by the public API when rules or facts are invalid; carries diagnostics."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics = sorted(diagnostics, key=Diagnostic.sort_key)
        super().__init__("\n".join(d.render() for d in self.diagnostics))


def sort_diagnostics(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Sorted by position, then code; duplicates removed."""
    unique = {(d.sort_key(), d.severity): d for d in diags}
    return [unique[k] for k in sorted(unique)]
