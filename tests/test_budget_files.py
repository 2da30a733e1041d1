"""When several rule files set one budget item, the tightest value wins: the smallest count and
the largest min_confidence (the docs said the smallest, "the least strict", for min_confidence)."""

from __future__ import annotations

import json
from pathlib import Path

import converge_rules as cr
from cli_process import converge


A = "relation p(x: int)\nagent a { confidence 0.6 when x = 1 emit p(x) }\nbudget { min_confidence = 0.5, max_cycles = 9 }\n"
B = "budget { min_confidence = 0.7, max_cycles = 12 }\n"


def test_the_tightest_budget_of_several_files_wins(tmp_path: Path) -> None:
    (tmp_path / "a.cvg").write_text(A)
    (tmp_path / "b.cvg").write_text(B)
    for order in (["a.cvg", "b.cvg"], ["b.cvg", "a.cvg"]):
        r = cr.load([str(tmp_path / f) for f in order]).run()
        assert (r.budget.min_confidence, r.budget.max_cycles) == (0.7, 9)
        assert r.tier == "bounded" and r.facts("p") == []  # p(1) has confidence 0.6 < 0.7
    out = converge("run", "b.cvg", "a.cvg", "--format", "json", cwd=tmp_path)
    assert out.returncode == 4, out.stdout + out.stderr
    data = json.loads(out.stdout)
    assert (data["budget"]["min_confidence"], data["budget"]["max_cycles"]) == (0.7, 9)
