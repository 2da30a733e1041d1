"""Untrusted text made safe to show: fact values, tool messages and test names can hold
anything, and a terminal obeys escape sequences (ESC, BEL, CSI, ...) it is sent.

``escape_controls(text)`` rewrites every character that controls rather than shows —
C0 controls other than newline and tab, DEL, C1 controls, the bidirectional overrides
(which reorder what a reader sees), lone surrogates and the XML non-characters U+FFFE and
U+FFFF — as a visible ``\\uXXXX``. The result is also valid in XML 1.0 (JUnit reports).
Text without such characters is returned unchanged. ``one_line(text)`` also writes a line
break as ``\\n``: for a name (a file's) printed where a line break would start a line of
its own, such as a forged ``file:line:col: error`` line.
"""

from __future__ import annotations

import re

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
                      "\ud800-\udfff\ufffe\uffff]")


def _visible(match: "re.Match[str]") -> str:
    return f"\\u{ord(match.group()):04x}"


def escape_controls(text: str) -> str:
    """``text`` with every control character written as a visible ``\\uXXXX`` escape."""
    return _CONTROL.sub(_visible, text)


def one_line(text: str) -> str:
    """``escape_controls(text)`` with each line break written ``\\n``: one line, whatever the text."""
    return escape_controls(text).replace("\n", "\\n")


__all__ = ["escape_controls", "one_line"]
