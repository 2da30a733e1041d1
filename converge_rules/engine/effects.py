"""What an agent's compute produces, and how a derivation is recorded.

An agent never writes the context: each run of a plan writes an
``EffectBuffer`` (per head: new facts with their proof records, and, when the
job asks for them, confidences, improved confidences and other derivations of
known facts; for an invariant: its matches). The loop merges buffers.

A proof record is stored once per fact, so its stored form is a compact tuple
``(agent id, cycle, premise facts..., [(aggregate and tool values,)])``;
``ProofRecord`` is the one typed view of it, and this module the only place
that knows the layout (generated code builds it from ``record_template``).
"""

from __future__ import annotations

from typing import Sequence

from .._frozen import frozen

# Proof record of an input fact: (INPUT_AGENT, cycle 0). Its source is kept apart.
INPUT_AGENT = -1
INPUT_PROOF = (INPUT_AGENT, 0)


@frozen
class ProofRecord:
    """One derivation: the agent, the cycle, the premise facts (one per positive
    body atom, in body order) and the aggregate then tool values it used."""

    agent: int
    cycle: int
    premises: tuple[tuple, ...] = ()
    extras: tuple = ()

    @property
    def is_input(self) -> bool:
        return self.agent == INPUT_AGENT

    @staticmethod
    def decode(raw: tuple, premises: int) -> "ProofRecord":
        """The stored tuple of a fact whose agent has ``premises`` positive atoms."""
        if raw[0] == INPUT_AGENT:
            return ProofRecord(INPUT_AGENT, raw[1])
        extras = raw[2 + premises] if len(raw) > 2 + premises else ()
        return ProofRecord(raw[0], raw[1], tuple(raw[2:2 + premises]), tuple(extras))

    def encode(self) -> tuple:
        if self.is_input:
            return (self.agent, self.cycle)
        return (self.agent, self.cycle, *self.premises) + ((self.extras,) if self.extras else ())


def is_input_record(raw: tuple) -> bool:
    return raw[0] == INPUT_AGENT


def record_template(agent: int, cycle: str, premises: Sequence[str], extras: Sequence[str]) -> str:
    """Python source building the stored record (the inverse of ``ProofRecord.decode``)."""
    parts = [str(agent), cycle, *premises]
    if extras:
        parts.append("(" + "".join(e + ", " for e in extras) + ")")
    return "(" + ", ".join(parts) + ",)"


@frozen
class Match:
    """One match of an invariant's body: premise facts, aggregate and tool values,
    and the values of the body's variables in sorted name order."""

    premises: tuple[tuple, ...]
    extras: tuple
    values: tuple


class EffectBuffer:
    """One agent's (or invariant's) output for one compute: per head index, the
    new facts with their proof records; with confidence, each new fact's
    confidence and better confidences for known facts; with all proofs, other
    derivations of facts already known or already buffered."""

    __slots__ = ("facts", "confidence", "improved", "alternatives", "matches")

    def __init__(self, heads: int = 0, *, confidence: bool = False, alternatives: bool = False):
        self.facts: list[dict[tuple, tuple]] = [{} for _ in range(heads)]
        self.confidence: list[dict[tuple, float]] = [{} for _ in range(heads)] if confidence else []
        self.improved: list[dict[tuple, tuple[float, tuple]]] = [{} for _ in range(heads)] if confidence else []
        self.alternatives: list[dict[tuple, list[tuple]]] = [{} for _ in range(heads)] if alternatives else []
        self.matches: list[Match] = []

    def count(self) -> int:
        """New facts buffered, over all heads."""
        return sum(len(f) for f in self.facts)

    def __repr__(self) -> str:
        return f"EffectBuffer(facts={self.count()}, matches={len(self.matches)})"


__all__ = ["EffectBuffer", "INPUT_AGENT", "INPUT_PROOF", "Match", "ProofRecord", "is_input_record", "record_template"]
