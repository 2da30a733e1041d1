"""A derived float holds one zero, 0.0, as an input one does (semantics.md, "One zero").

Before, a derived fact kept the zero its rule computed: with one agent deriving q(-0.0) and another
q(0.0), the output and the digest followed which came first (declaration order, and so
max_agents_per_cycle), and a head constant -0.0 was stored as written.
"""

from __future__ import annotations

import math
from pathlib import Path

import converge_rules as cr
from cli_process import converge

NEG_FIRST = """input relation p(x: float)
relation q(y: float)
relation k(y: float)
agent neg { when p(x), y = x * -1.0 emit q(y) }
agent pos { when p(x), y = x * 1.0 emit q(y) }
k(-0.0) :- p(_).
k(s) :- p(_), s = sum x { p(x) }.
p(0.0).
"""
POS_FIRST = NEG_FIRST.replace("agent neg {", "agent zz_neg {").replace("agent pos {", "agent aa_pos {")


def _zeros(result: cr.Result, relation: str) -> list[float]:
    return [math.copysign(1.0, fact[0]) for fact in result.facts(relation)]


def test_derived_zeros_are_positive_and_the_order_of_agents_does_not_show() -> None:
    runs = [cr.load_text(text).run() for text in (NEG_FIRST, POS_FIRST)]
    runs.append(cr.load_text(NEG_FIRST).run(budget=cr.Budget(max_agents_per_cycle=1)))
    for result in runs:
        assert result.facts("q") == [(0.0,)] and _zeros(result, "q") == [1.0]
        assert _zeros(result, "k") == [1.0]
        assert result.why(("q", (0.0,))) is not None and result.holds("q", (-0.0,))
    assert len({r.digest for r in runs}) == 1


def test_the_cli_prints_0_0_and_verify_accepts_the_proofs(tmp_path: Path) -> None:
    (tmp_path / "r.cvg").write_text(NEG_FIRST)
    done = converge("run", "r.cvg", "--format", "json", "--proofs", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    (tmp_path / "res.json").write_text(text)
    assert "-0.0" not in text.split('"proofs"')[0]  # the facts hold 0.0
    done = converge("verify", "res.json", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("verified"), done.stdout + done.stderr
    other = converge("run", "r.cvg", "--format", "summary", "--max-agents-per-cycle", "1", cwd=tmp_path)
    first = converge("run", "r.cvg", "--format", "summary", cwd=tmp_path)
    assert other.stdout.split("digest: ")[1][:64] == first.stdout.split("digest: ")[1][:64]
