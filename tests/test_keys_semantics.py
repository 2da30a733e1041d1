"""Less common semantics: dominance keys, confidence, goals (hunt-keys)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import converge_rules as cr  # noqa: E402
import strategies  # noqa: E402

SUPERSEDED = """
input relation s(k: str, v: int)
input relation t(k: str, v: int)
relation p(k: str, v: int) key(k) prefer min(v)
relation r(k: str, v: int)
agent first {CONF1} when s(k, v) emit p(k, v) }}
agent second {CONF2} when t(k, v) emit p(k, v) }}
agent late {{ when p(k, v) emit r(k, v) }}
"""
FACTS = {"s": [["a", 5], ["b", 1]], "t": [["a", 3]]}


def superseded_src(conf1: str = "", conf2: str = "") -> str:
    return SUPERSEDED.replace("{CONF1}", "{ " + conf1).replace("{CONF2}", "{ " + conf2).replace("}}", "}").replace("{{", "{")


def test_a_fact_superseded_before_an_agent_runs_is_not_read_by_it() -> None:
    # p("a", 5) and p("a", 3) are merged in cycle 1, the second superseding the first;
    # `late` runs in cycle 2, when p("a", 5) is no longer in the context.
    for conf1, conf2 in [("", ""), ("confidence 0.5", ""), ("", "confidence 0.5")]:
        r = cr.load_text(superseded_src(conf1, conf2), "sup.cvg").run(facts=FACTS)
        assert r.tier == "converged"
        assert r.facts("p") == [("a", 3), ("b", 1)]
        assert r.facts("r") == [("a", 3), ("b", 1)], (conf1, conf2)
        assert r.superseded("p") == [(("a", 5), ("a", 3), 1)]


def test_superseded_fact_not_read_through_the_cli(tmp_path: Path) -> None:
    (tmp_path / "sup.cvg").write_text(superseded_src(), encoding="utf-8")
    (tmp_path / "f.json").write_text(json.dumps(FACTS), encoding="utf-8")
    env = dict(os.environ, NO_COLOR="1")
    out = subprocess.run([sys.executable, "-m", "converge_rules", "run", "sup.cvg", "--facts", "f.json",
                          "--format", "json", "--relation", "r"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["facts"]["r"] == [["a", 3], ["b", 1]]
    why = subprocess.run([sys.executable, "-m", "converge_rules", "why", "sup.cvg", "--facts", "f.json",
                          'r("a", 5)'], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert why.returncode != 0 and "does not hold" in why.stdout + why.stderr


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(strategies.programs(), st.data())
def test_goal_pruning_never_changes_the_goal_relations(ir, data) -> None:
    rs = cr.load_text(strategies.render(ir), name="gen.cvg")
    budget = cr.Budget(max_cycles=10_000, max_facts=1_000_000)
    full = rs.run(facts=ir.facts_dict(), budget=budget)
    goals = data.draw(st.lists(st.sampled_from([r.name for r in ir.derived]), min_size=1, max_size=2, unique=True))
    pruned = rs.run(facts=ir.facts_dict(), budget=budget, goals=goals)
    assert pruned.tier == full.tier
    for goal in goals:
        assert pruned.facts(goal) == full.facts(goal), (strategies.render(ir), goals)


ROLLBACK = """
input relation s(k: str, v: int)
input relation t(k: str, v: int)
relation p(k: str, v: int) key(k) prefer min(v)
agent first { CONF when s(k, v) emit p(k, v) }
agent second { when t(k, v) emit p(k, v) }
invariant no3 { forbid p(_, 3) }
s("a", 5).
t("a", 3).
"""


def test_rollback_does_not_restore_a_fact_the_rolled_back_merge_added() -> None:
    # p("a", 5) is added and superseded by p("a", 3) in the merge of cycle 1, which the invariant
    # rejects: the last consistent context is the input, so p is empty.
    for conf in ("", "confidence 0.5"):
        r = cr.load_text(ROLLBACK.replace("CONF", conf), "rb.cvg").run()
        assert r.tier == "failed" and r.cycles == 1
        assert r.facts("p") == [] and r.superseded("p") == []
        assert r.count("p") == 0


def test_rollback_restores_a_fact_superseded_by_the_rolled_back_merge_with_confidence() -> None:
    src = ROLLBACK.replace("agent second { when t(k, v)", "relation t2(k: str, v: int)\n"
                           "agent delay { when t(k, v) emit t2(k, v) }\nagent second { when t2(k, v)")
    r = cr.load_text(src.replace("CONF", "confidence 0.5"), "rb.cvg").run()
    assert r.tier == "failed" and r.cycles == 2
    assert r.facts("p") == [("a", 5)] and r.confidence("p", ("a", 5)) == 0.5


def test_rollback_through_the_cli(tmp_path: Path) -> None:
    (tmp_path / "rb.cvg").write_text(ROLLBACK.replace("CONF", ""), encoding="utf-8")
    env = dict(os.environ, NO_COLOR="1")
    out = subprocess.run([sys.executable, "-m", "converge_rules", "run", "rb.cvg", "--format", "json"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    result = json.loads(out.stdout)
    assert result["tier"] == "failed" and result["facts"].get("p", []) == [] and result["counts"].get("p", 0) == 0


TWO = """
input relation s(k: str)
relation p(k: str)
relation r(k: str)
agent A { confidence WA when s(k) emit p(k) }
agent B { confidence WB when s(k) emit p(k) }
agent use { when p(k) emit r(k) }
s("a").
"""


def test_same_new_fact_from_two_agents_keeps_the_best_confidence_whatever_the_order() -> None:
    for wa, wb in (("0.3", "0.9"), ("0.9", "0.3")):
        r = cr.load_text(TWO.replace("WA", wa).replace("WB", wb), "two.cvg").run()
        assert r.confidence("p", ("a",)) == 0.9 and r.confidence("r", ("a",)) == 0.9



SAME_CYCLE = """
input relation e(a: str)
relation r(a: str)
relation m(a: str)
budget { min_confidence = 0.9 }
e("a").
r(x) :- e(x).
agent weak { confidence 0.5 when e(x) emit r(x), m(x) }
"""


def test_a_fact_that_holds_is_not_reported_dropped_below_min_confidence(tmp_path: Path) -> None:
    # weak's r("a") (0.5) is dropped and counted at the merge of cycle 1 (semantics.md,
    # "Confidence"), but r#1 derives r("a") with 1.0 in the same cycle, or in a later one:
    # Result.dropped said r("a") was dropped although it holds ("derived in cycle 1 with
    # confidence 0.5, below min_confidence 0.9"). Only m("a") is missing.
    later = SAME_CYCLE.replace("r(x) :- e(x).", "relation p(a: str)\np(x) :- e(x).\nr(x) :- p(x).")
    for src, cap in ((SAME_CYCLE, None), (SAME_CYCLE, 1), (later, None)):
        r = cr.load_text(src, "same.cvg").run(budget=cr.Budget(max_agents_per_cycle=cap))
        assert r.tier == "bounded", (cap, r.reasons)
        assert r.facts("r") == [("a",)] and r.confidence("r", ("a",)) == 1.0
        assert r.dropped("r", ("a",)) is None, (src, cap)
        assert r.facts("m") == [] and r.dropped("m", ("a",))["reason"] == "min_confidence"
    (tmp_path / "same.cvg").write_text(SAME_CYCLE, encoding="utf-8")
    env = dict(os.environ, NO_COLOR="1")
    rec = subprocess.run([sys.executable, "-m", "converge_rules", "run", "same.cvg", "--record", "rec.json", "--quiet"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert rec.returncode == 4, rec.stderr
    record = json.loads((tmp_path / "rec.json").read_text(encoding="utf-8"))
    assert record["dropped"] == {"m": [[["a"], "min_confidence", 1, 0.5]]}  # not r("a"), which holds
