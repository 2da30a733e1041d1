"""An ``int`` in a ``float`` column is widened where it is looked up, as where it is stored.

The fact ``qf(9007199254740993).`` holds ``9007199254740992.0`` (the int widened, the one
implicit conversion), and so does a fact an agent emits. A body atom ``qf(9007199254740993)``
looked the int up unchanged: it matched nothing, ``not qf(9007199254740993)`` held next to
the fact, and ``converge verify`` rejected the engine's own proof (the proof checker and
why-not widen, as the engine already did for a tool's value). A constant too large for any
float is ``E301`` in a body atom, as it already was in a fact."""

from __future__ import annotations

import json
from pathlib import Path

import converge_rules as cr
from cli_process import converge

RULES = """
relation qf(x: float)
relation qi(x: int)
relation df(x: float)
relation o(s: str)
qf(9007199254740993).
qi(1).
df(y + 9007199254740992) :- qi(y).
o("pos") :- qf(9007199254740993).
o("neg") :- not qf(9007199254740993).
o("exp") :- qi(y), qf(y + 9007199254740992).
o("derived") :- qi(y), df(y + 9007199254740992).
o("not-derived") :- qi(y), not df(y + 9007199254740992).
o("count") :- n = count { qf(9007199254740993) }, n = 1.
o("small") :- qf(9007199254740992), qi(1).
"""

WANT = [("count",), ("derived",), ("exp",), ("pos",), ("small",)]


def test_an_int_looked_up_in_a_float_column_is_widened() -> None:
    rs = cr.load_text(RULES, "w.cvg")
    for kw in ({}, {"all_proofs": True}, {"budget": cr.Budget(min_confidence=0.5)}):
        r = rs.run(**kw)
        assert r.tier == "converged"
        assert sorted(r.facts("o")) == WANT, kw
    assert rs.run().facts("qf") == [(9007199254740992.0,)]


def test_a_constant_too_large_for_a_float_column_is_e301_in_a_body() -> None:
    big = "1" + "0" * 400
    src = f"relation qf(x: float)\nrelation o(s: str)\nqf(1.0).\no(\"n\") :- not qf({big}).\no(\"p\") :- qf({big}).\n"
    try:
        cr.load_text(src, "big.cvg")
    except cr.ConvergeError as err:
        found = err.diagnostics
    else:
        raise AssertionError("load_text accepted a constant too large for a float column")
    assert [(d.code, d.span.line, d.span.col) for d in found] == [("E301", 4, 18), ("E301", 5, 14)]
    assert all("too large for a float" in d.message for d in found)


def test_cli_run_and_verify_agree(tmp_path: Path) -> None:
    (tmp_path / "w.cvg").write_text(RULES, encoding="utf-8")
    run = converge("run", "w.cvg", "--format", "json", "--proofs", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["facts"]["o"] == [list(f) for f in WANT]
    (tmp_path / "w.json").write_text(run.stdout, encoding="utf-8")
    verify = converge("verify", "w.json", cwd=tmp_path)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "verified" in verify.stdout
    why = converge("why", "w.cvg", 'o("pos")', cwd=tmp_path)
    assert why.returncode == 0 and "qf(9007199254740992.0)" in why.stdout, why.stdout + why.stderr
