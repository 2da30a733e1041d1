"""Facts given from Python hold plain values, whatever subclass they were given as.

``Session.decide({"p": [[Color.RED]]})`` with ``Color`` an ``IntEnum`` raised ``RecordError
E612 malformed record: each tool call needs 'tool' and 'args'``: the member went into the
context as it was, then as a tool's argument into the decision record, whose check accepts
plain values only; a tool call keyed by the argument's type (``Color``, not ``int``) would
not match its replay from the record either. A tool's value was already made plain; the
loader now does the same for an ``int`` or ``str`` subclass (a float already was)."""

from __future__ import annotations

import enum

import converge_rules as cr

RULES = """
input relation p(x: int, s: str)
relation q(x: int, s: str, y: int)
agent a { when p(x, s), y = @dbl(x) emit q(x, s, y) }
"""


class Color(enum.IntEnum):
    RED = 1


class Name(str):
    def __str__(self) -> str:  # what str() would show is not the value
        return "weird"


def dbl(x: int) -> int:
    return x * 2


def test_python_facts_are_plain_values() -> None:
    rs = cr.load_text(RULES, "p.cvg")
    r = rs.run(facts={"p": [[Color.RED, Name("abc")]]}, tools={"dbl": dbl})
    assert r.tier == "converged"
    assert r.facts("q") == [(1, "abc", 2)]
    assert [type(v) for v in r.facts("p")[0] + r.facts("q")[0]] == [int, str, int, str, int]
    plain = rs.run(facts={"p": [[1, "abc"]]}, tools={"dbl": dbl})
    assert r.digest == plain.digest


def test_a_decision_with_an_enum_fact_is_recorded_and_replays(tmp_path) -> None:
    path = tmp_path / "p.cvg"
    path.write_text(RULES, encoding="utf-8")
    session = cr.Session([str(path)], tools={"dbl": dbl})
    decision = session.decide({"p": [[Color.RED, Name("abc")]]})
    assert decision.response()["facts"]["q"] == [[1, "abc", 2]]
    record = cr.Record.from_json(decision.record.to_json())
    replayed, difference = record.replay()
    assert difference is None and replayed.digest == decision.record.digest
    assert record.verify().ok
