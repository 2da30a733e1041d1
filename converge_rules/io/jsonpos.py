"""Positions of values inside JSON text.

``json.loads`` is fast but forgets where things were. Loaders decode with it
first and only come here when they need a position (to report an error, or
when someone asks for the source line of a fact): one linear, non-recursive
re-scan of text that ``json.loads`` already accepted, recording the offsets
of the values (and object keys) on the paths asked for.

A path is a tuple of steps from the root: an ``int`` index into an array or a
``str`` key of an object, e.g. ``("edge", 3, 1)``.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from typing import Collection

# One token, after optional JSON whitespace: a string, a punctuation mark, or
# a bare scalar (number, true, false, null, NaN, Infinity, -Infinity).
_TOKEN = re.compile(
    r'[ \t\n\r]*(?:("[^"\\]*(?:\\.[^"\\]*)*")|([\[\]{}:,])|([^ \t\n\r\[\]{}:,"]+))', re.S)

VALUE = "value"
KEY = "key"

Path = tuple  # tuple[int | str, ...]


def scan(text: str, wanted: Collection[tuple[Path, str]] | None, max_depth: int,
         base: int = 0) -> dict[tuple[Path, str], tuple[int, int]]:
    """``{(path, kind): (start, end)}`` character offsets for values/keys up to ``max_depth``.

    With ``wanted`` None every value (not key) of depth <= max_depth is
    recorded; otherwise only the ``(path, kind)`` pairs in ``wanted``.
    Duplicate keys: the last occurrence wins (as in ``json.loads``).
    """
    found: dict[tuple[Path, str], tuple[int, int]] = {}
    # A frame is [is_object, path, next_index, current_key, expecting_key].
    stack: list[list] = []
    for match in _TOKEN.finditer(text, base):
        punct = match.group(2)
        if punct is None or punct in "[{":
            if stack:
                frame = stack[-1]
                if frame[0] and frame[4]:  # an object key
                    frame[4] = False
                    if len(frame[1]) < max_depth:
                        key = json.loads(match.group(1))
                        frame[3] = key
                        if wanted is not None and (frame[1] + (key,), KEY) in wanted:
                            found[(frame[1] + (key,), KEY)] = match.span(1)
                    continue
                if len(frame[1]) < max_depth:
                    path = frame[1] + ((frame[3],) if frame[0] else (frame[2],))
                else:
                    path = None  # deeper than anything asked for
            else:
                path = ()
            if path is not None and (wanted is None or (path, VALUE) in wanted):
                if punct is None:
                    found[(path, VALUE)] = match.span(1) if match.group(1) is not None else match.span(3)
                else:
                    start = match.start(2)
                    found[(path, VALUE)] = (start, start + 1)
            if punct is not None:
                stack.append([punct == "{", path if path is not None else (None,) * (max_depth + 1),
                              0, None, True])
            elif not stack:
                break  # a scalar document
        elif punct in "]}":
            stack.pop()
            if not stack:
                break  # end of the document
        elif punct == ",":
            frame = stack[-1]
            if frame[0]:
                frame[4] = True
            else:
                frame[2] += 1
    return found


class LineIndex:
    """Offsets → 1-based (line, column), columns counted in characters."""

    def __init__(self, text: str, breaks: str = "\n"):
        # offsets of the last character of each line break (CSV also breaks lines at a bare CR)
        self._newlines = [m.end() - 1 for m in re.finditer(breaks, text)]

    def position(self, offset: int) -> tuple[int, int]:
        k = bisect_right(self._newlines, offset - 1)
        line_start = self._newlines[k - 1] + 1 if k else 0
        return k + 1, offset - line_start + 1

    def line_start(self, line: int) -> int:
        """Offset of the first character of a 1-based line."""
        if line <= 1 or not self._newlines:
            return 0
        return self._newlines[min(line - 2, len(self._newlines) - 1)] + 1


class _Repeated(dict):
    """A decoded JSON object that had a key more than once (``json.loads`` keeps the last value)."""

    repeated: str = ""


class RepeatedKey(ValueError):
    """JSON text with a key twice in one object (``loads_unique``): ``path`` is the JSON path of the
    first such key in document order, ``start`` and ``end`` the offsets of its second occurrence."""

    def __init__(self, text: str, value: object):
        path: Path = ()
        stack: list[tuple[Path, object]] = [((), value)]  # depth first, in document order, without recursion
        while stack:
            at, node = stack.pop()
            if isinstance(node, _Repeated):
                path = at + (node.repeated,)
                break
            children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
            stack.extend(reversed([(at + (k,), v) for k, v in children]))
        self.path = path
        self.start, self.end = scan(text, {(path, KEY)}, len(path)).get((path, KEY), (0, 1))
        super().__init__(f"key {path[-1]!r} appears twice in one object")


def loads_unique(text: str, **kwargs: object) -> object:
    """``json.loads`` (ints of any size, as ``values.loads_json``) that raises ``RepeatedKey`` when an
    object has a key twice: JSON keeps only the last value, so the earlier ones would be lost
    silently. Other errors as ``json.loads`` (``json.JSONDecodeError``, ``RecursionError``)."""
    from ..values import loads_json

    repeated: list[bool] = []

    def pairs(items: list[tuple[str, object]]) -> dict:
        out = dict(items)
        if len(out) == len(items):
            return out
        twice = _Repeated(items)
        names: set[str] = set()
        twice.repeated = next(k for k, _ in items if k in names or names.add(k))  # type: ignore[func-returns-value]
        repeated.append(True)
        return twice

    value = loads_json(text, object_pairs_hook=pairs, **kwargs)
    if repeated:
        raise RepeatedKey(text, value)
    return value
