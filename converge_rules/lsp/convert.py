"""Compiler structures → LSP types: ranges from spans, diagnostics with codes and notes."""

from __future__ import annotations

import os
from typing import Iterable

from lsprotocol import types as lsp

from ..diagnostics import Diagnostic, Span, normalize_newlines
from .analysis import Occurrence

_SEVERITY = {"error": lsp.DiagnosticSeverity.Error, "warning": lsp.DiagnosticSeverity.Warning,
             "note": lsp.DiagnosticSeverity.Information}


def occ_range(occ: Occurrence) -> lsp.Range:
    return lsp.Range(lsp.Position(occ.line, occ.col), lsp.Position(occ.line, occ.end_col))


def span_range(span: Span, lines: list[str] | None = None) -> lsp.Range:
    """A span as a range; a span with no end covers the word (or one character) at its start."""
    if span.line <= 0:
        return lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0))
    line, col = span.line - 1, max(span.col - 1, 0)
    if (span.end_line, span.end_col) > (span.line, span.col):
        return lsp.Range(lsp.Position(line, col), lsp.Position(span.end_line - 1, max(span.end_col - 1, 0)))
    end = col + 1
    if lines is not None and line < len(lines):
        text = lines[line]
        while end < len(text) and (text[end].isalnum() or text[end] == "_"):
            end += 1
    return lsp.Range(lsp.Position(line, col), lsp.Position(line, end))


def to_lsp(d: Diagnostic, real: str, lines: list[str]) -> lsp.Diagnostic:
    """One diagnostic for the file ``real``; one in another file is shown at the top, saying where."""
    message = "\n".join([d.message, *(f"note: {n}" for n in d.notes)])
    if os.path.realpath(d.span.file) == real:
        rng = span_range(d.span, lines)
    else:
        rng = lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0))
        where = f"{d.span.file}:{d.span.line}:{d.span.col}" if d.span.line else d.span.file
        message = f"in {where}: {message}"
    return lsp.Diagnostic(range=rng, message=message, severity=_SEVERITY.get(d.severity, lsp.DiagnosticSeverity.Error),
                          code=d.code, source="converge")


def diagnostics_for(diags: Iterable[Diagnostic], real: str, text: str) -> list[lsp.Diagnostic]:
    lines = normalize_newlines(text).split("\n")
    return [to_lsp(d, real, lines) for d in diags]
