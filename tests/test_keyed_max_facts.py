"""At the ``max_facts`` limit a fact that supersedes another of its key is committed: it does
not grow the context (docs/semantics.md, Dominance). A job that tracked confidence (here only
because ``min_confidence`` was set, dropping nothing) counted every new fact against the room
left, so the superseding fact was dropped and the job ended ``bounded`` with the old fact."""

from __future__ import annotations

from pathlib import Path

import pytest

import converge_rules as cr
from cli_process import converge

RULES = """
relation c(v: int)
relation best(k: str, v: int) key(k) prefer min(v)
c(5).
best("a", 10).
agent a { when c(v) emit best("a", v) }
"""

# two derivations for a key that holds no fact yet, with room for one fact: the key is
# granted once, the other derivation supersedes or is dominated, as without confidence
NEW_KEY = """
relation c(v: int)
relation w(v: int)
relation best(k: str, v: int) key(k) prefer min(v)
c(5). w(3).
agent strong { when c(v) emit best("a", v) }
agent weak { confidence 0.5 when w(v) emit best("a", v) }
"""


@pytest.mark.parametrize("floor", [None, 0.1])
def test_a_superseding_fact_needs_no_room(floor: float | None) -> None:
    r = cr.load_text(RULES, "k.cvg").run(budget=cr.Budget(max_facts=2, min_confidence=floor))
    assert r.tier == "converged"
    assert r.facts("best") == [("a", 5)]
    assert r.superseded("best") == [(("a", 10), ("a", 5), 1)]


def test_two_derivations_for_a_new_key_take_the_room_of_one() -> None:
    plain = cr.load_text(NEW_KEY.replace("confidence 0.5 ", ""), "n.cvg").run(budget=cr.Budget(max_facts=3))
    assert plain.tier == "converged" and plain.facts("best") == [("a", 3)]
    r = cr.load_text(NEW_KEY, "n.cvg").run(budget=cr.Budget(max_facts=3))
    assert r.tier == "converged"
    assert r.facts("best") == [("a", 3)]
    # no room at all: the new key is refused, both derivations dropped
    full = cr.load_text(NEW_KEY, "n.cvg").run(budget=cr.Budget(max_facts=2))
    assert full.tier == "bounded" and full.facts("best") == []
    assert full.reasons[0].details["dropped"] == 2


def test_cli_min_confidence_does_not_change_the_result(tmp_path: Path) -> None:
    (tmp_path / "k.cvg").write_text(RULES, encoding="utf-8")
    plain = converge("run", "k.cvg", "--max-facts", "2", "--format", "json", cwd=tmp_path)
    floor = converge("run", "k.cvg", "--max-facts", "2", "--min-confidence", "0.1", "--format", "json", cwd=tmp_path)
    assert plain.returncode == 0 and floor.returncode == 0, floor.stdout + floor.stderr
    assert '"tier": "converged"' in floor.stdout
    assert '"best": [\n   [\n    "a",\n    5\n   ]\n  ]' in floor.stdout
