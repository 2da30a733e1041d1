"""`converge verify`: the independent proof checker (converge_rules/explain/checker.py).

Results of the examples and of generated programs verify; tampered results
are caught, each with the check that fails and why; malformed input gives a
located diagnostic; and the checker never loads the evaluator.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import converge_rules as cr  # noqa: E402
import strategies  # noqa: E402
from converge_rules.diagnostics import ConvergeError  # noqa: E402
from converge_rules.explain import checker  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXIT_PROOF_FAILS = 8


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "converge_rules", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def _run_json(*args: str, cwd: Path = ROOT) -> str:
    proc = _cli("run", *args, "--format", "json", "--proofs", cwd=cwd)
    assert proc.returncode in (0, 3, 4, 5), proc.stderr
    return proc.stdout


def _write(path: Path, data: Any) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def _proof(data: dict, relation: str, fact: list) -> dict:
    for p in data["proofs"][relation]:
        if p["fact"] == fact:
            return p
    raise AssertionError(f"no proof of {relation}{fact}")


def _failure(report: checker.Report, relation: str, fact: list) -> checker.Failure:
    for f in report.failures:
        if f.relation == relation and list(f.fact) == fact:
            return f
    raise AssertionError(f"no failure for {relation}{fact}: {[f.render() for f in report.failures]}")


def _has(failure: checker.Failure, check: str, *parts: str) -> None:
    for c, message in failure.problems:
        if c == check and all(p in message for p in parts):
            return
    raise AssertionError(f"no {check!r} problem with {parts}:\n{failure.render()}")


# ------------------------------------------------------------------ the examples verify

EXAMPLES = {
    "loans": ["examples/loans/loans.cvg", "--facts", "examples/loans/facts.json"],
    "graph": ["examples/graph/graph.cvg", "--facts", "examples/graph/facts"],
    "acceptance": ["examples/failures/acceptance.cvg"],
    "divzero": ["examples/failures/divzero.cvg"],
    "invariant": ["examples/failures/invariant.cvg"],
    "runaway": ["examples/failures/runaway.cvg"],
    "scoring": ["examples/scoring/scoring.cvg", "--facts", "examples/scoring/facts.json",
                "--tools", "examples.scoring.tools:RELIABLE"],
}
# the standard library's examples hold their facts in the rule files
EXAMPLES.update({f"stdlib/{p.stem}": [str(p.relative_to(ROOT))] for p in sorted((ROOT / "examples/stdlib").glob("*.cvg"))})


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_verify_passes_on_every_example(name: str, tmp_path: Path) -> None:
    args = EXAMPLES[name]
    if not (ROOT / args[0]).exists():
        pytest.skip(f"{args[0]} is not in this tree")
    result = _write(tmp_path / "result.json", _run_json(*args))
    proc = _cli("verify", str(result))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("verified "), proc.stdout
    data = json.loads(result.read_text())
    n_proofs = sum(len(v) for v in data["proofs"].values())
    n_facts = sum(len(v) for v in data["facts"].values())
    assert lines[0] == f"verified {n_proofs} proofs of {n_facts} facts"
    if name in ("loans", "graph"):
        assert n_proofs > 0 and not proc.stderr


def test_tool_results_are_noted_not_checked(tmp_path: Path) -> None:
    if not (ROOT / EXAMPLES["scoring"][0]).exists():
        pytest.skip("no scoring example")
    result = _write(tmp_path / "result.json", _run_json(*EXAMPLES["scoring"]))
    proc = _cli("verify", str(result))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "note: agent bureau: s = @credit_score(...) is a tool result, not re-evaluated" in proc.stderr


KEYED = """\
input relation edge(a: str, b: str, w: int)
relation dist(a: str, d: int) key(a) prefer min(d)
relation far(a: str)
dist("s", 0).
dist(y, d + w) :- dist(x, d), edge(x, y, w), d + w < 100.
far(a) :- dist(a, d), d > 3, not edge(a, _, _).
"""


def test_a_superseded_premise_of_a_keyed_relation_is_a_note(tmp_path: Path) -> None:
    rules = _write(tmp_path / "k.cvg", KEYED)
    facts = _write(tmp_path / "k.json", {"edge": [["s", "a", 5], ["s", "b", 1], ["b", "a", 1], ["a", "c", 1]]})
    result = _write(tmp_path / "r.json", _run_json(str(rules), "--facts", str(facts)))
    proc = _cli("verify", str(result))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'note: premise dist("c", 6) of far("c") is not in the final facts: dist is keyed' in proc.stderr


def test_a_made_up_premise_of_a_keyed_relation_is_not_taken_for_a_superseded_one(tmp_path: Path) -> None:
    """A premise of a keyed relation missing from the result was accepted with the note 'the fact
    was superseded', whatever it was: a fact added to the result with a proof from a made-up
    dist("z", 10) verified (exit 0). A superseded fact leaves a strictly preferred fact of its key
    in the result; without one the premise does not check."""
    rules = _write(tmp_path / "k.cvg", KEYED)
    facts = _write(tmp_path / "k.json", {"edge": [["s", "a", 5], ["s", "b", 1], ["b", "a", 1], ["a", "c", 1]]})
    data = json.loads(_run_json(str(rules), "--facts", str(facts)))
    real = _proof(data, "far", ["c"])
    assert real["premises"][0] == ["dist", ["c", 6]]  # superseded by dist("c", 3): still a note
    made_up = 'dist("z", 10) is not in the result\'s facts, and it was not superseded: no fact of dist with its key is preferred to it'
    data["facts"]["far"].append(["z"])
    data["counts"]["far"] += 1
    data["proofs"]["far"].append(dict(copy.deepcopy(real), fact=["z"], bindings={"a": "z", "d": 10},
                                      premises=[["dist", ["z", 10]]], negated=[["edge", ["z", None, None]]]))
    report = _check(data, tmp_path)
    assert _failure(report, "far", ["z"]).problems == [("premise", made_up)] and len(report.failures) == 1
    assert 'premise dist("c", 6) of far("c") is not in the final facts: dist is keyed' in "".join(report.notes)
    proc = _cli("verify", str(_write(tmp_path / "forged.json", data)))
    assert proc.returncode == EXIT_PROOF_FAILS and proc.stdout.startswith('proof of far("z") by agent far#1'), proc.stdout
    # a missing premise better than the fact its key kept cannot have been superseded either
    _proof(data, "far", ["c"])["premises"] = [["dist", ["c", 2]]]
    _has(_failure(_check(data, tmp_path), "far", ["c"]), "premise", 'dist("c", 2) is not in the result\'s facts, and it was '
         "not superseded")


IMPROVED = """
input relation a(x: str)
input relation b(x: str)
input relation w(x: str)
relation p(x: str)
relation q(x: str)
relation r(x: str)
q(x) :- b(x).
p(x) :- a(x).
p(x) :- q(x).
r(x) :- p(x), w(x).
"""


def test_a_premise_whose_proof_was_replaced_by_a_more_confident_one_still_verifies(tmp_path: Path) -> None:
    """p("k") is derived at 0.25 in cycle 1 and r("k") from it in cycle 2, while p("k") is derived again
    at 1.0 in cycle 2, which replaces its proof. r's proof keeps its premise p("k"), now proved in
    cycle 2: verify said "not well-founded" (exit 8) on a result run wrote. Following the recorded
    proofs never comes back to r, so they are well-founded; a real circle is still refused."""
    rules = _write(tmp_path / "wf.cvg", IMPROVED)
    facts = _write(tmp_path / "wf.json", {"a": [["k", 0.25]], "b": [["k"]], "w": [["k", 0.1]]})
    text = _run_json(str(rules), "--facts", str(facts))
    data = json.loads(text)
    assert data["proofs"]["p"][0]["cycle"] == data["proofs"]["r"][0]["cycle"] == 2
    result = _write(tmp_path / "r.json", text)
    proc = _cli("verify", str(result))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'premise p("k") of r("k") (cycle 2) has a proof from cycle 2' in proc.stderr
    # A real circle is refused: p("k") edited to rest on q("k") (a later cycle), while q("k") rests on p("k").
    rules = _write(tmp_path / "c.cvg", "input relation a(x: str)\ninput relation w(x: str)\nrelation p(x: str)\n"
                                       "relation q(x: str)\np(x) :- a(x).\np(x) :- q(x).\nq(x) :- p(x), w(x).\n")
    facts = _write(tmp_path / "c.json", {"a": [["k", 0.5]], "w": [["k"]]})
    circle = json.loads(_run_json(str(rules), "--facts", str(facts)))
    assert _cli("verify", str(_write(tmp_path / "c1.json", circle))).returncode == 0
    proof = _proof(circle, "p", ["k"])
    proof.update(agent="p#2", cycle=3, premises=[["q", ["k"]]])
    proof.pop("rule", None)
    circle["cycles"] = max(circle["cycles"], 3)
    proc = _cli("verify", str(_write(tmp_path / "c2.json", circle)))
    assert proc.returncode == 8 and "not well-founded" in proc.stdout, proc.stdout + proc.stderr


# ------------------------------------------------------------------ generated programs verify

@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strategies.programs())
def test_verify_passes_on_generated_programs(ir: strategies.Program) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rules = _write(Path(tmp) / "gen.cvg", strategies.render(ir))
        facts = _write(Path(tmp) / "facts.json", strategies.render_facts_json(ir))
        result = cr.load([str(rules)]).run(fact_files=[str(facts)], budget=cr.Budget(max_cycles=10_000, max_facts=1_000_000))
        out = _write(Path(tmp) / "result.json", result.to_json(proofs=True))
        report = checker.verify_file(str(out))
        assert report.ok, "\n".join(f.render() for f in report.failures) + "\n" + strategies.render(ir)
        assert report.proofs == sum(1 for rel in result.relations() for f in result.facts(rel)
                                    if not result.proof(rel, f).is_input)


# ------------------------------------------------------------------ tampered results are caught

@pytest.fixture(scope="module")
def loans() -> dict:
    """The loans result, with absolute job paths so it verifies from any directory."""
    text = _run_json(str(ROOT / "examples/loans/loans.cvg"), "--facts", str(ROOT / "examples/loans/facts.json"))
    return json.loads(text)


def _check(data: dict, tmp_path: Path) -> checker.Report:
    return checker.verify_file(str(_write(tmp_path / "tampered.json", data)))


def test_the_untouched_result_verifies(loans: dict, tmp_path: Path) -> None:
    report = _check(loans, tmp_path)
    assert report.ok and report.proofs == 24 and report.facts == 37 and not report.notes


def test_a_changed_binding_is_caught(loans: dict, tmp_path: Path) -> None:
    data = copy.deepcopy(loans)
    _proof(data, "decided", ["l1"])["bindings"]["l"] = "l2"
    f = _failure(_check(data, tmp_path), "decided", ["l1"])
    assert f.agent == "decided#1" and f.problems[0][0] == "head"
    _has(f, "head", 'emit decided(l) gives decided("l2")', 'not decided("l1")')
    _has(f, "premise", 'body atom decision(l, _) with the bindings is decision("l2", _)', 'decision("l1", "reject")')


def test_a_premise_that_does_not_exist_is_caught(loans: dict, tmp_path: Path) -> None:
    data = copy.deepcopy(loans)
    _proof(data, "decided", ["l1"])["premises"][0] = ["decision", ["l1", "maybe"]]
    report = _check(data, tmp_path)
    f = _failure(report, "decided", ["l1"])
    assert f.problems == [("premise", 'decision("l1", "maybe") is not in the result\'s facts')]
    assert len(report.failures) == 1


def test_a_negated_atom_that_holds_is_caught(loans: dict, tmp_path: Path) -> None:
    data = copy.deepcopy(loans)
    fake = copy.deepcopy(_proof(data, "risk", ["l1", "amount above 5x income"]))
    fake["fact"] = ["l2", "manual review"]
    data["facts"]["risk"].append(["l2", "manual review"])
    data["proofs"]["risk"].append(fake)
    report = _check(data, tmp_path)
    f = _failure(report, "decision", ["l2", "approve"])
    assert f.agent == "decision#1"
    assert f.problems == [("negated", 'not risk("l2", _) must have no match, but risk("l2", "manual review") holds '
                                      "in the result")]
    # the first failure printed is this one (decision comes before risk), and the fake proof fails too
    assert report.failures[0] is f
    _has(_failure(report, "risk", ["l2", "manual review"]), "head", 'gives risk("l1", "amount above 5x income")')


COMPARE = """\
input relation item(id: str, price: int)
relation priced(id: str, total: int)
priced(i, t) :- item(i, p), t = p + 10, t < 100.
"""


def test_a_comparison_that_fails_is_caught(tmp_path: Path) -> None:
    rules = _write(tmp_path / "c.cvg", COMPARE)
    facts = _write(tmp_path / "c.json", {"item": [["a", 50], ["b", 80]]})
    data = json.loads(_run_json(str(rules), "--facts", str(facts)))
    assert checker.verify_file(str(_write(tmp_path / "ok.json", data))).ok
    proof = _proof(data, "priced", ["a", 60])
    proof["bindings"]["t"] = 120  # the binding and the fact, consistently
    proof["fact"] = ["a", 120]
    data["facts"]["priced"] = [["a", 120] if f == ["a", 60] else f for f in data["facts"]["priced"]]
    report = _check(data, tmp_path)
    assert len(report.failures) == 1
    f = _failure(report, "priced", ["a", 120])
    assert f.problems == [("comparison", "t = p + 10 is false: 120 = 50 + 10"),
                          ("comparison", "t < 100 is false: 120 < 100")]


def test_a_cycle_that_is_not_well_founded_is_caught(loans: dict, tmp_path: Path) -> None:
    data = copy.deepcopy(loans)
    proof = _proof(data, "decided", ["l1"])
    premise = _proof(data, "decision", ["l1", "reject"])
    proof["cycle"] = premise["cycle"]
    f = _failure(_check(data, tmp_path), "decided", ["l1"])
    assert f.problems == [("cycle", f'premise decision("l1", "reject") is derived in cycle {premise["cycle"]}, not before '
                                    f'cycle {premise["cycle"]} of the fact it proves: the proofs are not well-founded')]


def test_a_derived_fact_without_its_proof_is_caught(loans: dict, tmp_path: Path) -> None:
    data = copy.deepcopy(loans)
    data["proofs"]["decision"] = [p for p in data["proofs"]["decision"] if p["fact"] != ["l2", "approve"]]
    report = _check(data, tmp_path)
    assert len(report.failures) == 1
    f = report.failures[0]
    assert (f.relation, f.fact, f.agent) == ("decision", ("l2", "approve"), None)
    assert f.problems[0][0] == "proof" and "has no proof, and it is not an input fact" in f.problems[0][1]


def test_a_fact_changed_without_its_proof_is_caught(loans: dict, tmp_path: Path) -> None:
    data = copy.deepcopy(loans)
    data["facts"]["risk"][0] = ["l1", "amount above 6x income"]
    report = _check(data, tmp_path)
    first = report.failures[0]
    assert (first.relation, first.fact) == ("decision", ("l1", "reject"))  # its premise is gone
    _has(first, "premise", 'risk("l1", "amount above 5x income") is not in the result\'s facts')
    _has(_failure(report, "risk", ["l1", "amount above 5x income"]), "fact",
         'risk("l1", "amount above 5x income") is not in the result\'s facts')
    _has(_failure(report, "risk", ["l1", "amount above 6x income"]), "proof", "has no proof")


def test_an_agent_that_does_not_exist_is_caught(loans: dict, tmp_path: Path) -> None:
    data = copy.deepcopy(loans)
    _proof(data, "decided", ["l1"])["agent"] = "decided#9"
    report = _check(data, tmp_path)
    assert len(report.failures) == 1
    f = report.failures[0]
    assert f.agent == "decided#9" and f.problems[0][0] == "agent"
    assert f.problems[0][1].startswith("no agent named 'decided#9' in the rules (agents: decided#1, decision#1")


def test_an_altered_aggregate_value_is_caught(loans: dict, tmp_path: Path) -> None:
    data = copy.deepcopy(loans)
    proof = _proof(data, "portfolio", ["a2", 2, 9000])
    proof["aggregates"][1][1] = 9500
    f = _failure(_check(data, tmp_path), "portfolio", ["a2", 2, 9000])
    assert f.problems == [("aggregate", 'the proof records sum amt { loan(_, a, amt) } = 9500, it recomputes to 9000 '
                                        'for a = "a2"')]
    # the bound value and the fact, consistently
    data = copy.deepcopy(loans)
    proof = _proof(data, "portfolio", ["a2", 2, 9000])
    proof["bindings"]["n"] = 3
    proof["fact"] = ["a2", 3, 9000]
    proof["aggregates"][0][1] = 3
    data["facts"]["portfolio"] = [["a2", 3, 9000] if f == ["a2", 2, 9000] else f for f in data["facts"]["portfolio"]]
    report = _check(data, tmp_path)
    assert len(report.failures) == 1
    f = _failure(report, "portfolio", ["a2", 3, 9000])
    _has(f, "aggregate", "n = count { loan(_, a, _) } is false: the aggregate recomputes to 2 for a = \"a2\" over the "
                         "result's facts, the bindings say 3")


def test_the_cli_prints_the_first_bad_proof_and_exits_8(loans: dict, tmp_path: Path) -> None:
    data = copy.deepcopy(loans)
    _proof(data, "decided", ["l1"])["agent"] = "decided#9"
    _proof(data, "decision", ["l2", "approve"])["bindings"]["l"] = "l3"
    path = _write(tmp_path / "bad.json", data)
    proc = _cli("verify", str(path))
    assert proc.returncode == EXIT_PROOF_FAILS, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith('proof of decided("l1") by agent decided#9 (')  # the rule's path as the result gives it
    assert lines[0].endswith("examples/loans/loans.cvg:41) does not check:")
    assert lines[1].startswith("  agent: no agent named 'decided#9'")
    assert lines[-1] == "2 of 24 proofs do not check (--all lists every failure)"
    assert "decision(" not in proc.stdout
    proc = _cli("verify", str(path), "--all")
    assert proc.returncode == EXIT_PROOF_FAILS
    assert 'proof of decision("l2", "approve") by agent decision#1' in proc.stdout
    assert '  head: emit decision(l, "approve") gives decision("l3", "approve"), not decision("l2", "approve")' in proc.stdout
    assert proc.stdout.splitlines()[-1] == "2 of 24 proofs do not check"


def test_edited_counts_and_repeated_facts_are_caught(loans: dict, tmp_path: Path) -> None:
    """The result's listing is checked too: 'counts' must be the number of facts listed per relation,
    and a relation is a set, so no fact is listed twice."""
    data = copy.deepcopy(loans)
    data["counts"]["decision"] = 99
    data["facts"]["risk"].append(list(data["facts"]["risk"][0]))
    report = _check(data, tmp_path)
    assert [(f.relation, f.whole_relation, f.problems[0][0]) for f in report.failures] == [
        ("risk", False, "fact"), ("decision", True, "count")]
    assert report.failures[1].problems == [("count", "'counts' says 99 fact(s), the result lists 8")]
    assert report.failures[1].to_json()["fact"] is None
    assert report.summary == "2 problems in the result's facts or counts"
    proc = _cli("verify", str(_write(tmp_path / "edited.json", data)), "--all")
    assert proc.returncode == EXIT_PROOF_FAILS, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [
        'fact risk("l1", "amount above 5x income"):',
        "  fact: the fact is listed more than once in the result's facts",
        "relation decision:",
        "  count: 'counts' says 99 fact(s), the result lists 8",
        "2 problems in the result's facts or counts"]


def test_every_alternative_derivation_of_a_proofs_all_result_is_checked(tmp_path: Path) -> None:
    """`--proofs all` writes each fact's other derivations: verify checks them all, so a tampered
    alternative is caught (it used to verify, exit 0)."""
    graph = ROOT / "examples/stdlib/graph_example.cvg"
    proc = _cli("run", str(graph), "--format", "json", "--proofs", "all")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    clean = checker.verify_file(str(_write(tmp_path / "all.json", data)))
    alternatives = sum(len(p.get("alternatives", ())) for items in data["proofs"].values() for p in items)
    first = sum(len(items) for items in data["proofs"].values())
    assert clean.ok and alternatives > 0 and clean.proofs == first + alternatives
    fact = next(p for items in data["proofs"].values() for p in items if p.get("alternatives"))
    fact["alternatives"][0]["premises"][0][1] = ["nowhere", "x"]
    path = _write(tmp_path / "tampered.json", data)
    report = checker.verify_file(str(path))
    (failure,) = report.failures
    assert failure.alternative == 0 and failure.to_json()["alternative"] == 0
    assert failure.problems[0][0] == "premise"
    proc = _cli("verify", str(path))
    assert proc.returncode == EXIT_PROOF_FAILS, proc.stdout + proc.stderr
    assert proc.stdout.startswith(f"alternative derivation 1 of {failure.text} by agent ")


# ------------------------------------------------------------------ malformed input

def test_malformed_json_is_a_located_diagnostic(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.json", '{\n "tier": "converged",\n "facts": {,}\n}\n')
    proc = _cli("verify", str(path))
    assert proc.returncode == 1
    assert f"{path}:3:12: error[E501]: malformed result file" in proc.stderr


def test_a_missing_file_is_a_diagnostic(tmp_path: Path) -> None:
    proc = _cli("verify", str(tmp_path / "nope.json"))
    assert proc.returncode == 1
    assert "error[E500]: cannot read result file" in proc.stderr


def test_a_result_without_proofs_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.json", _cli("run", "examples/loans/loans.cvg", "--facts", "examples/loans/facts.json",
                                            "--format", "json").stdout)
    proc = _cli("verify", str(path))
    assert proc.returncode == 1
    assert "error[E501]: not a result written with --proofs: it has no 'proofs'" in proc.stderr


def test_bad_shapes_and_missing_job_files_are_located(loans: dict, tmp_path: Path) -> None:
    data = copy.deepcopy(loans)
    _proof(data, "decided", ["l1"])["premises"] = [["decision"]]
    path = _write(tmp_path / "shape.json", data)
    with pytest.raises(ConvergeError) as err:
        checker.verify_file(str(path))
    d = err.value.diagnostics[0]
    assert d.code == "E501" and d.message == "a premise must be [relation, [values...]]"
    line = path.read_text().splitlines()[d.span.line - 1]
    assert line.strip().startswith("[") or line.strip().startswith('"decision"'), line

    data = copy.deepcopy(loans)
    data["job"]["facts"] = [str(tmp_path / "gone.json")]
    path = _write(tmp_path / "job.json", data)
    proc = _cli("verify", str(path))
    assert proc.returncode == 1
    assert f"error[E500]: facts file of the job not found: {tmp_path / 'gone.json'}" in proc.stderr
    assert f"{path}:" in proc.stderr


def test_job_paths_fall_back_to_the_result_files_directory(tmp_path: Path) -> None:
    rules = _write(tmp_path / "c.cvg", COMPARE)
    _write(tmp_path / "c.json", {"item": [["a", 50]]})
    _write(tmp_path / "r.json", _run_json("c.cvg", "--facts", "c.json", cwd=tmp_path))
    assert rules.exists()
    proc = _cli("verify", str(tmp_path / "r.json"))  # run from ROOT: c.cvg is found beside the result
    assert proc.returncode == 0 and proc.stdout == "verified 1 proof of 2 facts\n", proc.stdout + proc.stderr


# ------------------------------------------------------------------ independence from the evaluator

ISOLATION = textwrap.dedent("""\
    import importlib.abc, os, sys, types

    FORBIDDEN = ("converge_rules.engine", "converge_rules.api", "converge_rules.explain.proofs",
                 "converge_rules.explain.render")

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                raise ImportError("the checker imported " + name)
            return None

    sys.meta_path.insert(0, Block())
    # converge_rules/__init__.py itself imports the API (and so the engine) for `import converge_rules as cr`;
    # stand in for the package so that only what the checker imports gets loaded.
    package = types.ModuleType("converge_rules")
    package.__path__ = [os.path.join(sys.argv[1], "converge_rules")]
    sys.modules["converge_rules"] = package

    from converge_rules.explain import checker

    report = checker.verify_file(sys.argv[2])
    assert report.ok, [f.render() for f in report.failures]
    loaded = sorted(m for m in sys.modules if m.startswith(FORBIDDEN))
    assert not loaded, loaded
    print(report.summary)
""")


def test_the_checker_does_not_load_the_evaluator(loans: dict, tmp_path: Path) -> None:
    path = _write(tmp_path / "r.json", loans)
    proc = subprocess.run([sys.executable, "-c", ISOLATION, str(ROOT), str(path)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "verified 24 proofs of 37 facts\n"


# ------------------------------------------------------------------ the checker's own evaluator

@pytest.mark.parametrize("text, value", [
    ("7 / 2", 3), ("-7 / 2", -3), ("7 / -2", -3), ("7 % 3", 1), ("-7 % 3", -1), ("7 % -3", 1), ("-7.5 % 2", -1.5),
    ("1 + 2.5", 3.5), ('"a" ++ "b"', "ab"), ("len(\"héllo\")", 5), ('upper("straße")', "STRASSE"),
    ('substr("hello", 1, 3)', "ell"), ('substr("hi", 5, 2)', ""), ("to_str(true)", "true"), ("to_str(2.0)", "2.0"),
    ('to_int(" 12 ")', 12), ("to_int(-2.7)", -2), ("to_int(true)", 1), ('to_float("1e3")', 1000.0),
    ("abs(-3)", 3), ("min(2, 1.5)", 1.5), ("max(1, 2)", 2), ('contains("abc", "b")', True),
])
def test_expressions(text: str, value: Any) -> None:
    from converge_rules.syntax.parser import parse_atom

    expr = parse_atom(f"r({text})").args[0]
    got = checker.evaluate(expr, {})
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("text, error", [
    ("1 / 0", "division by zero"), ("1 % 0", "modulo by zero"), ('"a" + 1', "cannot apply + to str and int"),
    ('to_int("abc")', "is not an integer"), ("to_float(true)", "is not a number"), ('substr("a", -1, 1)', ">= 0"),
])
def test_expression_errors(text: str, error: str) -> None:
    from converge_rules.syntax.parser import parse_atom

    expr = parse_atom(f"r({text})").args[0]
    with pytest.raises(Exception) as err:
        checker.evaluate(expr, {})
    assert error in str(err.value)
