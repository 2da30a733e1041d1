"""Source spans and diagnostics: every problem a user can cause is a Diagnostic.

A Diagnostic has a stable code (documented in docs/diagnostics.md), a
severity, a message, a Span pointing into the source, and optional notes.
Rendering follows the compiler convention
``file:line:col: error[E200]: message`` plus the source line and a caret.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Literal, Mapping, Sequence

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

MESSAGE_CHARS = 4000  # the longest message or note of a diagnostic (see Diagnostic.__post_init__)


def _clip(text: str) -> str:
    """``text`` cut to its first and last characters with the length in between."""
    return f"{text[:MESSAGE_CHARS - 1000]} … ({len(text)} characters) … {text[-500:]}"


@frozen
class Diagnostic:
    """One problem found in rules or facts, with a stable code.

    ``quote`` is the text of the span's line as the reader that found the problem read it
    (``SourceTexts.quote`` attaches it), so that rendering needs nothing but the diagnostic:
    whatever is compiled or loaded later under the same file name, and whatever the file
    on disk holds by then, a diagnostic quotes the text it was found in. It takes no part
    in equality."""

    code: str
    message: str
    span: Span = NO_SPAN
    severity: Severity = "error"
    notes: tuple[str, ...] = field(default=())
    quote: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        # A message or note quotes what it is about (a name, a token, a value): one written by a
        # user may be huge (a 100,000-character name), and a message that repeats it three times
        # helps nobody. Past MESSAGE_CHARS, it is cut and says how long it was.
        if len(self.message) > MESSAGE_CHARS:
            object.__setattr__(self, "message", _clip(self.message))
        if any(len(n) > MESSAGE_CHARS for n in self.notes):
            object.__setattr__(self, "notes", tuple(_clip(n) if len(n) > MESSAGE_CHARS else n for n in self.notes))

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.span.file, self.span.line, self.span.col, self.code, self.message)

    def quoting(self, lines: Sequence[str]) -> "Diagnostic":
        """This diagnostic quoting its line of ``lines`` (the text its span points into, split
        as its line numbers count); as it is when it already quotes one, or has no line there."""
        if self.quote is not None or not 0 < self.span.line <= len(lines):
            return self
        return replace(self, quote=lines[self.span.line - 1])

    def render(self) -> str:
        """``file:line:col: severity[code]: message``, the quoted source line and a caret
        (a pure function of the diagnostic: see ``quote``)."""
        from .textsafe import one_line

        file = one_line(self.span.file)  # a line break in a file name would start a line of its own
        loc = f"{file}:{self.span.line}:{self.span.col}" if self.span.line else file
        out = [f"{loc}: {self.severity}[{self.code}]: {self.message}"]
        text = self.quote if self.span.line > 0 else None
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


class SourceTexts:
    """The lines of the texts one reader (a compilation, a facts loader, a parser) read, by
    file name, so that the diagnostics it makes quote them (``quote``) and its lints can look
    at them (``line``). Owned by that reader and dropped with it: never shared between two
    compilations, never filled from disk behind the reader's back."""

    def __init__(self, texts: Mapping[str, str] | None = None) -> None:
        self._lines: dict[str, list[str]] = {}
        for file, text in (texts or {}).items():
            self.add(file, text)

    def add(self, file: str, text: str) -> None:
        self._lines[file] = split_lines(text)

    def add_lines(self, file: str, lines: list[str]) -> None:
        """Keep ``file`` split into lines by the caller (a loader that counts lines its own way)."""
        self._lines[file] = lines

    def files(self) -> list[str]:
        """The names of the texts kept, in the order they were added."""
        return list(self._lines)

    def line(self, file: str, line: int) -> str | None:
        """Line ``line`` (1-based) of ``file``, or None when the file or the line is not here."""
        lines = self._lines.get(file)
        return lines[line - 1] if lines is not None and 0 < line <= len(lines) else None

    def quote(self, diags: Iterable[Diagnostic]) -> list[Diagnostic]:
        """The diagnostics, each quoting its line of these texts (``Diagnostic.quoting``)."""
        out = []
        for d in diags:
            lines = self._lines.get(d.span.file)
            out.append(d.quoting(lines) if lines is not None else d)
        return out


def quote_text(diags: Iterable[Diagnostic], file: str, text: str) -> list[Diagnostic]:
    """The diagnostics, those pointing into ``file`` quoting their line of ``text``."""
    return SourceTexts({file: text}).quote(diags)


class ConvergeError(Exception):
    """Raised by the public API when rules or facts are invalid; carries diagnostics."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics = sorted(diagnostics, key=Diagnostic.sort_key)
        super().__init__("\n".join(d.render() for d in self.diagnostics))


def sort_diagnostics(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Sorted by position, then code; duplicates removed."""
    unique = {(d.sort_key(), d.severity): d for d in diags}
    return [unique[k] for k in sorted(unique)]
