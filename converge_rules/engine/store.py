"""The context: one store per relation, append-only within a job.

``facts`` maps each fact to its proof record (so membership and proof are one
lookup), ``order`` keeps facts in commit order (deltas are slices of it), and
hash indexes on bound columns are built on first use and then maintained at
every merge. Iteration only ever walks ``order`` or index lists, never a set,
so evaluation order is deterministic.
"""

from __future__ import annotations

from typing import Any

from .effects import INPUT_AGENT, INPUT_PROOF  # noqa: F401  (re-exported: the record layout lives in effects)


class RelationStore:
    __slots__ = ("name", "arity", "facts", "order", "indexes", "key", "keymap", "superseded", "improved")

    def __init__(self, name: str, arity: int, key: Any = None):
        self.name = name
        self.arity = arity
        self.facts: dict[tuple, tuple] = {}
        self.order: list[tuple] = []
        self.indexes: dict[tuple[int, ...], dict[Any, list[tuple]]] = {}
        self.key = key            # KeySpec for a relation with dominance, else None
        self.keymap: dict[Any, tuple] = {}
        self.superseded: dict[tuple, tuple] = {}  # fact -> (its proof, the fact that superseded it, cycle)
        self.improved: list[tuple] = []  # facts whose confidence rose, in commit order (a delta of their own)

    def __len__(self) -> int:
        """Facts in the context now (superseded ones excluded)."""
        return len(self.facts)

    def live_order(self) -> list[tuple]:
        """Facts in commit order, superseded ones left out."""
        if not self.superseded:
            return self.order
        facts = self.facts
        return [f for f in self.order if f in facts]

    def index(self, cols: tuple[int, ...]) -> dict[Any, list[tuple]]:
        """The index on these columns (a single column's key is the bare value)."""
        idx = self.indexes.get(cols)
        if idx is None:
            idx = {}
            _fill(idx, cols, self.order)
            self.indexes[cols] = idx
        return idx

    def extend(self, new: "list[tuple] | dict[tuple, Any]") -> None:
        """Append facts already recorded in ``facts`` (a list, or a buffer's keys) to the order and every index."""
        self.order.extend(new)
        for cols, idx in self.indexes.items():
            _fill(idx, cols, new)

    def truncate(self, length: int, restore: dict[tuple, tuple] | None = None) -> None:
        """Undo every commit after ``length`` (an invariant rejected the merge);
        ``restore`` gives back facts that the undone commits superseded."""
        removed = self.order[length:]
        del self.order[length:]
        for fact in removed:
            self.facts.pop(fact, None)
            self.superseded.pop(fact, None)
        undone = set(removed)
        for fact, proof in (restore or {}).items():
            if fact in undone:  # committed by an undone commit itself: it goes too
                continue
            self.superseded.pop(fact, None)
            self.facts[fact] = proof
            if self.key is not None:
                self.keymap[tuple(fact[c] for c in self.key.columns)] = fact
        if self.key is not None:
            for fact in removed:
                k = tuple(fact[c] for c in self.key.columns)
                if self.keymap.get(k) == fact:
                    del self.keymap[k]
        for cols, idx in self.indexes.items():
            for fact in reversed(removed):
                key = fact[cols[0]] if len(cols) == 1 else tuple(fact[c] for c in cols)
                bucket = idx[key]
                bucket.pop()
                if not bucket:
                    del idx[key]


def _fill(idx: dict[Any, list[tuple]], cols: tuple[int, ...], facts: "list[tuple] | dict[tuple, Any]") -> None:
    get = idx.get
    if len(cols) == 1:
        c = cols[0]
        for f in facts:
            k = f[c]
            bucket = get(k)
            if bucket is None:
                idx[k] = [f]
            else:
                bucket.append(f)
    else:
        for f in facts:
            k = tuple([f[c] for c in cols])
            bucket = get(k)
            if bucket is None:
                idx[k] = [f]
            else:
                bucket.append(f)


class Context:
    """All relation stores of a job."""

    def __init__(self, arities: dict[str, int], keys: dict[str, Any] | None = None):
        keys = keys or {}
        self.relations = {name: RelationStore(name, arity, keys.get(name)) for name, arity in sorted(arities.items())}

    def __getitem__(self, name: str) -> RelationStore:
        return self.relations[name]

    def size(self) -> int:
        return sum(len(r) for r in self.relations.values())

    def lengths(self) -> dict[str, int]:
        """Committed-list lengths (the marks deltas are sliced from)."""
        return {name: len(r.order) for name, r in self.relations.items()}
