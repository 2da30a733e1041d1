"""Result's fact lookups (holds, proof, why, confidence, support, dropped) take a fact as a tuple
of values; 1, 1.0 and true are different values. They used Python's equality, so
``why(("q", (True,)))`` returned the proof of ``q(1)`` (as an input fact ``q(true)``) while
``why_not`` of the same fact said it does not hold, and a tuple with an extra value held too."""

from __future__ import annotations

import converge_rules as cr

RULES = """
input relation q(x: int)
input relation f(x: float)
relation r(x: int)
q(1).
f(2.0).
r(x) :- q(x).
"""


def test_a_value_of_another_type_than_its_column_never_holds() -> None:
    result = cr.load_text(RULES, "r.cvg").run()
    for relation, fact in [("q", (True,)), ("q", (1.0,)), ("r", (True,)), ("f", (True,)), ("q", (1, 2)), ("q", ())]:
        assert not result.holds(relation, fact), (relation, fact)
        assert result.proof(relation, fact) is None, (relation, fact)
        assert result.why((relation, fact)) is None, (relation, fact)
        assert result.confidence(relation, fact) == 0.0
        assert result.support(relation, fact) == []
        assert result.dropped(relation, fact) is None
    assert not result.why_not(("q", (True,))).holds


def test_the_columns_own_values_still_hold_and_an_int_widens_for_a_float_column() -> None:
    result = cr.load_text(RULES, "r.cvg").run()
    assert result.holds("q", (1,)) and result.proof("q", (1,)).is_input
    proof = result.proof("r", (1,))
    assert proof is not None and proof.fact == (1,) and proof.premises == [("q", (1,))]
    assert result.holds("f", (2,)) and result.proof("f", (2,)).fact == (2.0,)
    assert result.support("r", (1,)) == [("q", (1,))]


def test_an_unknown_relation_is_a_key_error_naming_it_and_a_value_that_is_no_value_a_type_error() -> None:
    import pytest

    result = cr.load_text(RULES).run()
    for lookup in (result.facts, result.count, result.weak_facts, result.superseded):
        with pytest.raises(KeyError, match="no relation named 'nope'"):
            lookup("nope")
    for ask in (lambda: result.holds("q", ([1],)), lambda: result.why(("q", ({},))),
                lambda: result.why_not(("q", ([1],))), lambda: result.proof("q", (object(),))):
        with pytest.raises(TypeError, match="a fact's values are int, float, str or bool: q was given a"):
            ask()
    with pytest.raises(TypeError, match="a sequence of values, not str"):
        result.holds("q", "1")
    assert result.holds("q", (1,)) and result.holds("q", [1]) and not result.holds("q", (True,))
