"""``SourceList``: where each loaded fact came from, computed cheaply.

A relation's facts may come from several files; for each file the loader adds
one *segment* describing the (file, line) of its facts. Segments store as
little as they can: a TSV file without blank lines is just "lines 1..N of
this file", and a JSON file computes its line numbers only when somebody
asks (by re-scanning the text once).

``SourceList`` behaves like a read-only list of ``(path, line)`` tuples:
indexing (also negative and slices), ``len``, iteration, ``==`` with lists.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from typing import Callable, Iterator


class _Segment:
    __slots__ = ("path", "length")

    def __init__(self, path: str, length: int):
        self.path = path
        self.length = length

    def line(self, k: int) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def lines(self) -> Sequence[int]:  # pragma: no cover - abstract
        raise NotImplementedError

    def item(self, k: int) -> tuple[str, int]:
        """The source of the k-th fact; a segment may vary the path per fact (database keys)."""
        return (self.path, self.line(k))

    def items(self) -> Iterator[tuple[str, int]]:
        path = self.path
        for line in self.lines():
            yield (path, line)


class RangeSegment(_Segment):
    """Facts on consecutive lines ``first, first + 1, ...``."""

    __slots__ = ("first",)

    def __init__(self, path: str, first: int, length: int):
        super().__init__(path, length)
        self.first = first

    def line(self, k: int) -> int:
        return self.first + k

    def lines(self) -> Sequence[int]:
        return range(self.first, self.first + self.length)


class ConstSegment(_Segment):
    """Every fact has the same line (``("<api>", 0)`` for Python facts)."""

    __slots__ = ("value",)

    def __init__(self, path: str, value: int, length: int):
        super().__init__(path, length)
        self.value = value

    def line(self, k: int) -> int:
        return self.value

    def lines(self) -> Sequence[int]:
        return [self.value] * self.length


class LinesSegment(_Segment):
    """An explicit line number per fact."""

    __slots__ = ("_lines",)

    def __init__(self, path: str, lines: Sequence[int]):
        super().__init__(path, len(lines))
        self._lines = lines

    def line(self, k: int) -> int:
        return self._lines[k]

    def lines(self) -> Sequence[int]:
        return self._lines


class LazySegment(_Segment):
    """Line numbers computed on first use by ``resolve()`` (which returns ``length`` lines)."""

    __slots__ = ("_resolve", "_lines")

    def __init__(self, path: str, length: int, resolve: Callable[[], Sequence[int]]):
        super().__init__(path, length)
        self._resolve: Callable[[], Sequence[int]] | None = resolve
        self._lines: Sequence[int] | None = None

    def lines(self) -> Sequence[int]:
        if self._lines is None:
            assert self._resolve is not None
            self._lines = self._resolve()
            self._resolve = None  # drop the reference to the file text
        return self._lines

    def line(self, k: int) -> int:
        return self.lines()[k]


class SourceList(Sequence):
    """A read-only list of ``(path, line)``, one per fact of a relation."""

    __slots__ = ("_segments", "_starts", "_length")

    def __init__(self) -> None:
        self._segments: list[_Segment] = []
        self._starts: list[int] = []
        self._length = 0

    def add(self, segment: _Segment) -> None:
        if segment.length:
            self._segments.append(segment)
            self._starts.append(self._length)
            self._length += segment.length

    def extend(self, other: "SourceList") -> None:
        """Append another list's sources (segments are shared, not copied)."""
        for segment in other._segments:
            self.add(segment)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._length))]
        if not isinstance(index, int):
            raise TypeError(f"SourceList indices must be integers or slices, not {type(index).__name__}")
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError("SourceList index out of range")
        k = bisect_right(self._starts, index) - 1
        return self._segments[k].item(index - self._starts[k])

    def __iter__(self) -> Iterator[tuple[str, int]]:
        for segment in self._segments:
            yield from segment.items()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (SourceList, list, tuple)):
            return len(self) == len(other) and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if self._length > 20:
            head = ", ".join(repr(x) for x in self[:10])
            return f"SourceList([{head}, ... {self._length} in all])"
        return f"SourceList({list(self)!r})"
