"""RuleSet.run(proofs=False) / converge run --proofs none: the same answer, no explanations."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

import converge_rules as cr

from test_reuse import RULES, facts_strategy

ROOT = Path(__file__).resolve().parent.parent


@settings(max_examples=20, deadline=None)
@given(facts_strategy)
def test_same_facts_tier_and_digest_without_proofs(facts: dict) -> None:
    rs = cr.load_text(RULES, "t.cvg")
    kept = rs.run(facts=facts)
    bare = rs.run(facts=facts, proofs=False)
    assert bare.digest == kept.digest
    assert str(bare.tier) == str(kept.tier) and bare.cycles == kept.cycles
    assert json.loads(bare.to_json()) == json.loads(kept.to_json())
    assert bare.proofs_kept is False and kept.proofs_kept is True


def test_explanations_refused_with_e540() -> None:
    rs = cr.load_text(RULES, "t.cvg")
    r = rs.run(facts={"edge": [("a", "b")]}, proofs=False)
    assert r.holds("path", ("a", "b"))
    for ask in (lambda: r.proof("path", ("a", "b")), lambda: r.why('path("a", "b")'),
                lambda: r.support("path", ("a", "b")), lambda: r.proofs("path", ("a", "b")),
                lambda: r.to_json(proofs=True), lambda: r.to_record(),
                # records.md: `result.to_record()  # or cr.Record.from_result(result)` (was an IndexError)
                lambda: cr.Record.from_result(r), lambda: cr.Record.from_result(r, key=b"k" * 16)):
        with pytest.raises(cr.ConvergeError) as err:
            ask()
        assert err.value.diagnostics[0].code == "E540"
        assert "without" in err.value.diagnostics[0].message
    # the same rule set still explains a run with proofs
    assert rs.run(facts={"edge": [("a", "b")]}).proof("path", ("a", "b")) is not None
    with pytest.raises(ValueError):
        rs.run(facts={}, proofs=False, all_proofs=True)


def test_cli_proofs_none(tmp_path: Path) -> None:
    rules = tmp_path / "r.cvg"
    rules.write_text(RULES)
    facts = tmp_path / "f.json"
    facts.write_text(json.dumps({"edge": [["a", "b"], ["b", "c"]], "weight": [["a", 9]]}))

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "converge_rules", "run", str(rules), "--facts", str(facts), *args],
                              cwd=ROOT, capture_output=True, text=True)

    bare, full = cli("--format", "json", "--proofs", "none"), cli("--format", "json", "--proofs")
    assert bare.returncode == 0 and full.returncode == 0, bare.stderr + full.stderr
    b, f = json.loads(bare.stdout), json.loads(full.stdout)
    assert "proofs" not in b and "proofs" in f
    assert b["digest"] == f["digest"] and b["facts"] == f["facts"]
    summary = cli("--format", "summary", "--proofs", "none")
    assert summary.returncode == 0 and "path: 3" in summary.stdout
    refused = cli("--proofs", "none", "--record", str(tmp_path / "rec.json"))
    assert refused.returncode == 2 and "--record needs proofs" in refused.stderr
    assert not (tmp_path / "rec.json").exists()


def test_why_not_refused_with_e540_whatever_the_fact() -> None:
    """why_not on a result without proofs answered some facts (those whose explanation needs no
    proof) and raised E540 ('a proof needs proofs') for others, depending on the fact asked."""
    from converge_rules.explain.whynot import why_not

    loans = ROOT / "examples" / "loans"
    r = cr.load([str(loans / "loans.cvg")]).run(fact_files=[str(loans / "facts.json")], proofs=False)
    for fact in ('decision("l9", "reject")',      # no loan l9: used to be answered
                 'decision("l1", "approve")',     # blocked by a risk fact, whose proof it shows
                 'decision("l1", "reject")'):     # holds
        for ask in (lambda: r.why_not(fact), lambda: why_not(r, fact)):
            with pytest.raises(cr.ConvergeError) as err:
                ask()
            d = err.value.diagnostics[0]
            assert d.code == "E540" and d.message.startswith("why-not needs proofs, but this job ran without them")
