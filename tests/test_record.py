"""Decision records: written by a run, explained, queried, verified and replayed from the
record alone (no re-run, no tool call, no rule or facts file read)."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import converge_rules as cr  # noqa: E402
import strategies  # noqa: E402
from converge_rules.record import RECORD_FORMAT, Record, RecordError, open_record  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LOANS = ROOT / "examples" / "loans"
FLAKY = ROOT / "examples" / "flaky"
SCORING = ROOT / "examples" / "scoring"


def converge(*args: str, cwd: Path = ROOT, hashseed: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if hashseed is not None:
        env["PYTHONHASHSEED"] = hashseed
    return subprocess.run([sys.executable, "-m", "converge_rules", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def loans_result(**kw: object) -> cr.Result:
    return cr.load([str(LOANS / "loans.cvg")]).run(fact_files=[str(LOANS / "facts.json")], **kw)


def _copy_flaky(tmp: Path) -> Path:
    """The flaky example in a scratch directory, with a tools module of its own name."""
    for name in ("flaky.cvg", "facts.json"):
        shutil.copy(FLAKY / name, tmp / name)
    shutil.copy(FLAKY / "tools.py", tmp / "flaky_bureau.py")
    return tmp


# ------------------------------------------------------------------ API


def test_record_round_trip_explains_like_the_result() -> None:
    result = loans_result(trace=True)
    record = result.to_record()
    again = Record.from_json(record.to_json())
    assert again.to_json() == record.to_json()
    assert (again.tier, again.cycles, again.digest) == (result.tier.value, result.cycles, result.digest)
    assert again.reasons == [] and again.ruleset_digest == cr.load([str(LOANS / "loans.cvg")]).digest
    for rel in result.relations():
        assert again.facts(rel) == result.facts(rel)
        for fact in result.facts(rel):
            assert again.result.proof(rel, fact) == result.proof(rel, fact)
    fact = 'decision("l1", "reject")'
    assert again.why_json(fact) == result.why(fact).to_json()
    assert "flag_high_risk" in again.why_text(fact) and "6000 > 5 * 1000" in again.why_text(fact)
    assert again.why('decision("l1", "approve")') is None
    assert "not risk(l, _)" in again.why_not_text('decision("l1", "approve")')
    assert again.query('decision(l, "reject")') == [("decision", ("l1", "reject")), ("decision", ("l4", "reject")),
                                                    ("decision", ("l5", "reject"))]
    html = again.report_html()
    assert html.startswith("<!DOCTYPE html>") and "converged" in html and "cycle 1" in html.lower()
    assert again.verify().ok


def test_record_format_fields() -> None:
    data = json.loads(loans_result().to_record().to_json())
    assert data["format"] == RECORD_FORMAT == "converge-record/1"
    assert [f["path"] for f in data["ruleset"]["files"]] == [str(LOANS / "loans.cvg")]
    assert data["ruleset"]["files"][0]["text"] == (LOANS / "loans.cvg").read_text()
    assert data["inputs"]["files"][0]["path"] == str(LOANS / "facts.json")
    assert data["outcome"]["tier"] == "converged" and len(data["seal"]) == 64
    assert data["options"]["budget"]["max_cycles"] == 100  # the rule file's budget { max_cycles = 100 }
    assert str(LOANS / "facts.json") in data["sources"]


def test_query_patterns() -> None:
    record = loans_result().to_record()
    assert len(record.query("decision(_, _)")) == 8
    assert record.query('loan(l, "a3", _)') == [("loan", ("l4", "a3", 9000)), ("loan", ("l5", "a3", 8000))]
    assert record.query("risk(l, l)") == []  # a variable used twice binds one value
    with pytest.raises(cr.ConvergeError) as err:
        record.query("nope(x)")
    assert err.value.diagnostics[0].code == "E200"
    with pytest.raises(cr.ConvergeError) as err:
        record.query('loan("l1", x)')
    assert err.value.diagnostics[0].code == "E300"


def test_record_bytes_are_deterministic() -> None:
    first = loans_result().to_record().to_json()
    assert loans_result().to_record().to_json() == first
    facts = json.loads((LOANS / "facts.json").read_text())
    rs = cr.load([str(LOANS / "loans.cvg")])
    shuffled = {rel: list(reversed(rows)) for rel, rows in reversed(list(facts.items()))}
    a = rs.run(facts).to_record().to_json()
    b = rs.run(shuffled).to_record().to_json()
    assert a == b


@settings(max_examples=int(os.environ.get("CVG_EXAMPLES", "25")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(strategies.programs(), st.randoms(use_true_random=False))
def test_record_of_random_programs(ir: object, rnd: random.Random) -> None:
    text = strategies.render(ir)  # type: ignore[arg-type]
    rs = cr.load_text(text, name="gen.cvg")
    budget = cr.Budget(max_cycles=10_000, max_facts=1_000_000)
    result = rs.run(facts=ir.facts_dict(), budget=budget)  # type: ignore[attr-defined]
    record = Record.from_json(result.to_record().to_json())
    shuffled = rs.run(facts=strategies.shuffled_facts(rnd, ir, duplicates=True), budget=budget)  # type: ignore[arg-type]
    assert shuffled.to_record().to_json() == record.to_json(), text
    assert record.digest == result.digest
    for rel in result.relations():
        assert record.facts(rel) == result.facts(rel), text
        for fact in result.facts(rel):
            assert record.result.proof(rel, fact) == result.proof(rel, fact), text
    assert record.verify().ok, text
    _new, difference = record.replay()
    assert difference is None, text


def test_keyed_relations_confidence_tools_and_failures_survive_a_record() -> None:
    from examples.scoring import tools  # noqa: F401  (a fresh module state per test run is not needed)

    rs = cr.load([str(SCORING / "scoring.cvg")])
    result = rs.run(fact_files=[str(SCORING / "facts.json")], tools={"credit_score": tools._reliable_credit_score},
                    trace=True)
    record = Record.from_json(result.to_record().to_json())
    assert record.tool_calls and all("result" in c for c in record.tool_calls)
    rebuilt = record.result
    for rel in result.relations():
        assert rebuilt.facts(rel) == result.facts(rel)
        assert rebuilt.weak_facts(rel) == result.weak_facts(rel)
        assert rebuilt.superseded(rel) == result.superseded(rel)
        for fact in result.facts(rel):
            assert rebuilt.why((rel, fact)).to_json() == result.why((rel, fact)).to_json()
    assert record.verify().ok
    new, difference = record.replay()
    assert difference is None and new.digest == result.digest


def test_all_proofs_are_recorded() -> None:
    rs = cr.load_text('input relation e(a: str, b: str)\nrelation p(a: str, b: str)\n'
                      'p(x, y) :- e(x, y).\np(x, z) :- p(x, y), e(y, z).\n'
                      'e("a", "b"). e("b", "c"). e("a", "c").\n', name="g.cvg")
    result = rs.run(all_proofs=True)
    record = Record.from_json(result.to_record().to_json())
    assert len(result.proofs("p", ("a", "c"))) == 2
    assert record.result.proofs("p", ("a", "c")) == result.proofs("p", ("a", "c"))


KEYED_PATHS = ('relation edge(a: str, b: str, w: int)\n'
               'relation dist(a: str, d: int) key(a) prefer min(d)\n'
               'relation far(a: str)\n'
               'edge("s", "a", 5). edge("s", "b", 1). edge("b", "a", 1). edge("a", "c", 1). edge("b", "c", 10).\n'
               'dist("s", 0).\n'
               'dist(b, d + w) :- dist(a, d), edge(a, b, w).\n'
               'far(a) :- dist(a, d), d > 2.\n')


def _resealed(data: dict) -> str:
    """A record edited and sealed again, as whoever can rewrite the file can do (a plain seal)."""
    data = {k: v for k, v in data.items() if k != "seal"}
    return Record.from_dict(json.loads(json.dumps(data))).to_json()


def test_verify_checks_the_alternative_derivations_of_a_record() -> None:
    """A record of a `--proofs all` job keeps each fact's other derivations, and `why --all`
    shows them; `Record.verify` checked only the first ones, so a made-up alternative (here
    far("c") derived from dist("s", 0), whose 0 > 2 fails) verified."""
    result = cr.load_text(KEYED_PATHS, name="k.cvg").run(all_proofs=True)
    data = json.loads(result.to_record().to_json())
    report = Record.from_dict(data).verify()
    assert report.ok and report.summary == "verified 6 proofs of 11 facts", report.summary
    [[row, [alternative]]] = data["alternatives"]["far"]
    assert data["facts"]["far"][0][row] == "c"
    alternative[2] = [data["facts"]["dist"][0].index("s")]  # its premise: dist("s", 0)
    report = Record.from_json(_resealed(data)).verify()
    assert not report.ok and report.summary == "1 of 6 proofs does not check"
    [failure] = report.failures
    assert failure.render().startswith('alternative derivation 1 of far("c") by agent far#1 (k.cvg:7) does not check:')
    assert "comparison: d > 2 is false: 0 > 2" in failure.render()


def test_cli_verify_checks_the_alternative_derivations_of_a_record(tmp_path: Path) -> None:
    (tmp_path / "k.cvg").write_text(KEYED_PATHS)
    run = converge("run", "k.cvg", "--proofs", "all", "--record", "r.json", "--quiet", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    ok = converge("verify", "--record", "r.json", cwd=tmp_path)
    assert ok.returncode == 0 and ok.stdout == "verified 6 proofs of 11 facts\n", ok.stdout + ok.stderr
    data = json.loads((tmp_path / "r.json").read_text())
    data["alternatives"]["far"][0][1][0][2] = [data["facts"]["dist"][0].index("s")]
    (tmp_path / "r.json").write_text(_resealed(data))
    bad = converge("verify", "--record", "r.json", cwd=tmp_path)
    assert bad.returncode == 8, bad.stdout + bad.stderr
    assert bad.stdout.startswith('alternative derivation 1 of far("c") by agent far#1 (k.cvg:7) does not check:\n')


def test_bad_records_are_refused_with_codes(tmp_path: Path) -> None:
    with pytest.raises(RecordError) as err:
        open_record(str(tmp_path / "missing.json"))
    assert err.value.code == "E610"
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(RecordError) as err:
        open_record(str(tmp_path / "bad.json"))
    assert err.value.code == "E611" and err.value.diagnostics[0].span.line == 1
    data = loans_result().to_record().to_dict()
    with pytest.raises(RecordError) as err:
        Record.from_dict({**data, "format": "converge-record/9"})
    assert err.value.code == "E611" and "unsupported record version" in str(err.value.diagnostics[0].message)
    with pytest.raises(RecordError) as err:
        Record.from_dict({k: v for k, v in data.items() if k != "proofs"})
    assert err.value.code == "E612"
    with pytest.raises(RecordError) as err:
        Record.from_dict({**data, "outcome": {**data["outcome"], "tier": "fine"}})
    assert err.value.code == "E612"


def test_tampering_is_detected() -> None:
    data = json.loads(loans_result().to_record().to_json())
    data["facts"]["decision"][1][0] = "approve"  # l1 approved instead of rejected
    report = Record.from_dict(data).verify()
    assert not report.ok and "seal" in report.failures[0].render()
    # the tamperer also recomputes the seal: the facts no longer give the recorded digest
    data.pop("seal")
    resealed = Record.from_dict(json.loads(Record.from_dict(data).to_json()))
    report = resealed.verify()
    assert not report.ok and "digest" in report.failures[0].render()


def test_lazy_loading_builds_only_what_a_proof_needs() -> None:
    record = Record.from_json(loans_result().to_record().to_json())
    record.why('decision("l1", "reject")')
    book = record.result._inputs
    assert book.rels["decision"].hints and book.rels["decision"]._live is None  # found by a scan, no index
    assert book.rels["applicant"]._live is None     # premises are found by their row, no index
    assert book.rels["portfolio"]._rows is None     # not touched at all


# ------------------------------------------------------------------ CLI


def test_cli_flaky_tool_decision_explained_from_its_record(tmp_path: Path) -> None:
    _copy_flaky(tmp_path)
    run = converge("run", "flaky.cvg", "--facts", "facts.json", "--tools", "flaky_bureau", "--record", "r.json",
                   "--format", "json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    score = dict(json.loads(run.stdout)["facts"]["score"])["a1"]
    record = json.loads((tmp_path / "r.json").read_text())
    assert [c["result"] for c in record["tools"] if c["args"] == ["a1"]] == [score]
    for name in ("flaky.cvg", "facts.json", "flaky_bureau.py"):
        (tmp_path / name).unlink()  # the record must be enough
    why = converge("why", "--record", "r.json", 'approved("a1")', cwd=tmp_path)
    assert why.returncode == 0, why.stderr
    assert f"s = {score}" in why.stdout and f'score("a1", {score})' in why.stdout
    assert f'{score} = @credit_score("a1")' in why.stdout
    js = converge("why", "--record", "r.json", 'approved("a1")', "--format", "json", cwd=tmp_path)
    assert json.loads(js.stdout)["bindings"]["s"] == score
    for cmd in (["why-not", "--record", "r.json", 'approved("a3")'],
                ["report", "--record", "r.json", "-o", "r.html"],
                ["verify", "--record", "r.json"],
                ["query", "--record", "r.json", "score(a, _)"],
                ["replay", "r.json"]):
        out = converge(*cmd, cwd=tmp_path)
        assert out.returncode == 0, (cmd, out.stderr)
    assert "income >= 1000" in converge("why-not", "--record", "r.json", 'approved("a3")', cwd=tmp_path).stdout
    assert (tmp_path / "r.html").read_text().count("approved") > 0


def test_cli_record_after_deleting_rule_files_with_imports(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "helpers.cvg").write_text('input relation loanx(id: str, amount: int)\n'
                                                 'loanx("l1", 6000).\nloanx("l2", 100).\n')
    (tmp_path / "main.cvg").write_text('import "./lib/helpers.cvg" as h\nimport std.graph\n'
                                       'input relation road(a: str, b: str)\nrelation big(l: str)\n'
                                       'relation far(a: str, b: str)\n'
                                       'big(l) :- h.loanx(l, amt), amt > 5000.\n'
                                       'graph.edge(a, b) :- road(a, b).\n'
                                       'far(a, b) :- graph.reach(a, b), a != b.\n')
    (tmp_path / "roads.json").write_text('{"road": [["x", "y"], ["y", "z"]]}')
    run = converge("run", "main.cvg", "--facts", "roads.json", "--record", "r.json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    shutil.rmtree(tmp_path / "lib")
    (tmp_path / "main.cvg").write_text("this is not a rule file any more")
    (tmp_path / "roads.json").unlink()
    why = converge("why", "--record", "r.json", 'far("x", "z")', cwd=tmp_path)
    assert why.returncode == 0, why.stderr
    assert 'road("x", "y")  [input, roads.json:1]' in why.stdout and "graph.reach#2" in why.stdout
    big = converge("why", "--record", "r.json", 'big("l1")', cwd=tmp_path)
    assert 'h.loanx("l1", 6000)  [input, lib/helpers.cvg:2]' in big.stdout
    assert converge("verify", "r.json", cwd=tmp_path).returncode == 0
    replay = converge("replay", "r.json", cwd=tmp_path)
    assert replay.returncode == 0 and "replay identical" in replay.stdout, replay.stderr


def test_cli_query_why_pattern_and_limits(tmp_path: Path) -> None:
    assert converge("run", str(LOANS / "loans.cvg"), "--facts", str(LOANS / "facts.json"), "--record",
                    str(tmp_path / "r.json"), "--format", "summary").returncode == 0
    r = str(tmp_path / "r.json")
    out = converge("query", "--record", r, 'decision(l, "reject")')
    assert out.returncode == 0 and out.stdout.splitlines() == [
        'decision("l1", "reject")', 'decision("l4", "reject")', 'decision("l5", "reject")']
    assert "3 matches" in out.stderr
    js = json.loads(converge("query", "--record", r, "decision(l, _)", "--format", "json", "--limit", "2",
                             "--why").stdout)
    assert js["count"] == 8 and len(js["facts"]) == 2 and js["facts"][0]["proof"]["agent"] == "decision#2"
    direct = converge("query", str(LOANS / "loans.cvg"), "--facts", str(LOANS / "facts.json"), 'decision(l, "reject")')
    assert direct.stdout == out.stdout
    none = converge("query", "--record", r, 'decision(l, "maybe")')
    assert none.returncode == 6 and none.stdout == ""
    bad = converge("query", "--record", r, "decision(l)")
    assert bad.returncode == 1 and "E300" in bad.stderr and "Traceback" not in bad.stderr
    why = converge("why", "--record", r, 'decision(l, "reject")', "--limit", "2")
    assert why.returncode == 0 and "match 1 of 3" in why.stdout and "match 3" not in why.stdout
    assert "1 more match" in why.stderr
    usage = converge("why", "--record", r, "--facts", "x.json", 'decision("l1", "reject")')
    assert usage.returncode == 2 and "not with --record" in usage.stderr


def test_cli_tampered_record_refused_by_verify(tmp_path: Path) -> None:
    r = tmp_path / "r.json"
    assert converge("run", str(LOANS / "loans.cvg"), "--facts", str(LOANS / "facts.json"), "--record", str(r),
                    "--format", "summary").returncode == 0
    assert converge("verify", "--record", str(r)).returncode == 0
    text = r.read_text()
    r.write_text(text.replace('"reject"', '"approve"', 1))
    out = converge("verify", "--record", str(r))
    assert out.returncode == 8 and "seal does not match" in out.stdout and "refused" in out.stdout


def test_cli_record_bytes_do_not_depend_on_hash_seed(tmp_path: Path) -> None:
    outs = []
    for seed in ("1", "2"):
        path = tmp_path / f"r{seed}.json"
        run = converge("run", str(LOANS / "loans.cvg"), "--facts", str(LOANS / "facts.json"), "--record", str(path),
                       "--format", "summary", hashseed=seed)
        assert run.returncode == 0, run.stderr
        outs.append(path.read_bytes())
    assert outs[0] == outs[1]


def test_cli_unreadable_record(tmp_path: Path) -> None:
    out = converge("why", "--record", str(tmp_path / "nope.json"), 'decision("l1", "reject")')
    assert out.returncode == 1 and "E610" in out.stderr and "Traceback" not in out.stderr
    (tmp_path / "result.json").write_text(json.dumps({"format": "converge-result/1"}))
    out = converge("query", "--record", str(tmp_path / "result.json"), "decision(l, _)")
    assert out.returncode == 1 and "E611" in out.stderr and "not a converge record" in out.stderr


def test_cli_replay_with_other_tools_differs(tmp_path: Path) -> None:
    _copy_flaky(tmp_path)
    (tmp_path / "fixed_bureau.py").write_text("def credit_score(a):\n    return 100\n")
    assert converge("run", "flaky.cvg", "--facts", "facts.json", "--tools", "flaky_bureau", "--record", "r.json",
                    cwd=tmp_path).returncode == 0
    same = converge("replay", "r.json", cwd=tmp_path)
    assert same.returncode == 0, same.stderr
    other = converge("replay", "r.json", "--tools", "fixed_bureau", cwd=tmp_path)
    assert other.returncode == 7 and "replay differs" in other.stderr


def test_a_rebuilt_result_records_the_same_bytes() -> None:
    record = loans_result(trace=True).to_record()
    again = Record.from_json(record.to_json())
    assert again.result.to_record().to_json() == record.to_json()


def test_load_sources_compiles_from_texts_alone(tmp_path: Path) -> None:
    files = {"app/main.cvg": 'import "./lib.cvg" as lib\nimport std.graph\nrelation big(l: str)\n'
                             'big(l) :- lib.loan(l, a), a > 10.\ngraph.edge("a", "b").\n',
             "app/lib.cvg": 'input relation loan(id: str, amount: int)\nloan("l1", 20).\nloan("l2", 5).\n'}
    rs = cr.load_sources(files, roots=["app/main.cvg"])  # nothing of this exists on disk
    result = rs.run()
    assert result.facts("big") == [("l1",)] and result.facts("graph.reach") == [("a", "b")]
    assert [f["path"] for f in rs.files if f["path"].startswith("app/")] == ["app/lib.cvg", "app/main.cvg"]
    assert any(f["path"].endswith("graph.cvg") for f in rs.files)  # the standard module is carried too
    assert rs.digest == Record.from_json(result.to_record().to_json()).ruleset_digest
    with pytest.raises(cr.ConvergeError) as err:
        cr.load_sources({"m.cvg": 'import "./missing.cvg" as m\n'})
    assert err.value.diagnostics[0].code == "E110"
    with pytest.raises(cr.ConvergeError) as err:  # a root that is not among the texts: located, coded
        cr.load_sources(files, roots=["app/other.cvg"])
    assert err.value.diagnostics[0].code == "E001" and "app/other.cvg" in err.value.diagnostics[0].message


def test_verify_checks_tool_results_against_the_recorded_calls(tmp_path: Path) -> None:
    rs = cr.load([str(FLAKY / "flaky.cvg")])
    result = rs.run(fact_files=[str(FLAKY / "facts.json")], tools={"credit_score": lambda a: {"a1": 700}.get(a, 500)})
    data = json.loads(result.to_record().to_json())
    assert Record.from_dict(data).verify().ok
    data["tools"][0]["result"] = 701  # the proofs say 700: the tool log no longer backs them
    data.pop("seal")
    report = Record.from_dict(json.loads(Record.from_dict(data).to_json())).verify()
    assert not report.ok
    assert '@credit_score("a1") = 700 is not a result' in report.failures[0].render()


TWO_WAYS = ('relation p(x: str)\nrelation ok(x: str)\np("a"). p("c").\n'
            'agent first { when p(a), v = @score(a), v > 600 emit ok(a) }\n'
            'agent second { when p(a), w = @score(a), w > 640 emit ok(a) }\n')


def test_verify_checks_the_tool_results_of_alternative_derivations(tmp_path: Path) -> None:
    """The tool results a record's proofs rely on are checked against its tool calls, but only
    for each fact's first proof: an alternative derivation (`--proofs all`) whose tool value was
    edited (999 where the tool answered 700) verified, and why --all showed `999 = @score("a")
    ✓ holds`."""
    score = {"score": lambda a: {"a": 700, "c": 650}.get(a, 0)}
    result = cr.load_text(TWO_WAYS, name="t.cvg").run(tools=score, all_proofs=True)
    data = json.loads(result.to_record().to_json())
    assert Record.from_dict(data).verify().ok
    [row, [alternative]] = data["alternatives"]["ok"][0]
    assert data["facts"]["ok"][0][row] == "a" and alternative[3] == [700]
    alternative[3] = [999]
    report = Record.from_json(_resealed(data)).verify()
    assert not report.ok and [f.render() for f in report.failures] == [
        'alternative derivation 1 of ok("a") by agent second (t.cvg:5) does not check:\n'
        '  tool: @score("a") = 999 is not a result of the record\'s tool calls']
    # the CLI: run --proofs all --record with the tool, edit and reseal, verify exits 8
    (tmp_path / "t.cvg").write_text(TWO_WAYS)
    (tmp_path / "twoways_tools.py").write_text('def score(a):\n    return {"a": 700, "c": 650}.get(a, 0)\n')
    run = converge("run", "t.cvg", "--tools", "twoways_tools", "--proofs", "all", "--record", "r.json", "--quiet",
                   cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    data = json.loads((tmp_path / "r.json").read_text())
    data["alternatives"]["ok"][0][1][0][3] = [999]
    (tmp_path / "r.json").write_text(_resealed(data))
    bad = converge("verify", "r.json", cwd=tmp_path)
    assert bad.returncode == 8 and bad.stdout.startswith(
        'alternative derivation 1 of ok("a") by agent second (t.cvg:5) does not check:\n'
        '  tool: @score("a") = 999 is not a result'), bad.stdout + bad.stderr


_LOANS_RECORD: dict | None = None


def _paths(value: object, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value[:3]):
            out += _paths(v, prefix + (i,))
    return out


_JUNK = st.one_of(st.none(), st.booleans(), st.integers(-3, 10**6), st.text(max_size=3), st.just([]),
                  st.just({}), st.lists(st.integers(-2, 3), max_size=3), st.just([["x"]]))


@settings(max_examples=int(os.environ.get("CVG_EXAMPLES", "60")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_damaged_record_gives_a_record_error_never_a_crash(data: st.DataObject) -> None:
    global _LOANS_RECORD
    if _LOANS_RECORD is None:
        _LOANS_RECORD = json.loads(loans_result(trace=True).to_record().to_json())
    damaged = json.loads(json.dumps(_LOANS_RECORD))
    paths = [p for p in _paths(damaged) if p and p[0] != "seal"]
    path = data.draw(st.sampled_from(paths))
    target = damaged
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = data.draw(_JUNK)
    try:
        record = Record.from_dict(damaged)
        for rel in record.relations():
            record.facts(rel)
        record.why('decision("l1", "reject")')
        record.why_not('decision("l1", "approve")')
        record.query("decision(l, _)")
        record.query('decision(l, "reject")')
        record.verify()
        record.report_html()  # reads the recorded trace (the timeline)
        record.replay()  # runs the job with the recorded options
    except cr.ConvergeError as err:
        assert err.diagnostics and err.diagnostics[0].code.startswith(("E2", "E3", "E4", "E6")), err


# ------------------------------------------------------------------ authenticated seal (record keys)

KEY = b"0123456789abcdef0123456789abcdef"
OTHER = b"zyxwvutsrqponmlkjihgfedcba987654"


def _key_file(tmp: Path, secret: bytes = KEY, name: str = "record.key", mode: int = 0o600) -> Path:
    path = tmp / name
    path.write_bytes(secret + b"\n")
    path.chmod(mode)
    return path


def test_keyed_seal_round_trip_and_verify_through_the_api() -> None:
    from converge_rules.record import NOT_AUTHENTICATED

    text = loans_result().to_record(key=KEY).to_json()
    assert text.startswith('{"format":"converge-record/1","seal":"hmac-sha256:') and KEY.decode() not in text
    assert Record.from_json(text).seal_kind == "hmac-sha256"
    assert Record.from_json(text).verify(key=KEY).ok
    assert Record.from_json(text, key=KEY).verify().ok and open_record  # key given when opening
    unkeyed = Record.from_json(text).verify()
    assert unkeyed.ok and NOT_AUTHENTICATED in unkeyed.notes  # integrity checked, authenticity not
    wrong = Record.from_json(text).verify(key=b"another key, 32 bytes long......")
    assert not wrong.ok and wrong.failures[0].code == "E616" and "another key" in wrong.failures[0].render()
    # the same facts, proofs and digests as a plain record: only the seal differs
    plain = loans_result().to_record().to_json()
    assert json.loads(plain)["facts"] == json.loads(text)["facts"] and Record.from_json(plain).seal_kind == "sha256"
    assert Record.from_json(plain).verify().ok  # existing (plain) records stay valid
    refused = Record.from_json(plain).verify(key=KEY)
    assert not refused.ok and refused.failures[0].code == "E617" and "not authenticated" in refused.summary


def test_keyed_record_edited_and_resealed_without_the_key_is_refused() -> None:
    data = json.loads(loans_result().to_record(key=KEY).to_json())
    data["facts"]["decision"][1][0] = "approve"
    report = Record.from_dict(data).verify(key=KEY)
    assert not report.ok and report.failures[0].code == "E616"
    # a forger recomputes every digest and seals with a key of their own, or with a plain seal
    data.pop("seal")
    for forged_key in (b"forger's key, 32 bytes long.....", None):
        forged = json.loads(Record.from_dict(data, key=forged_key).to_json())
        report = Record.from_dict(forged).verify(key=KEY)
        assert not report.ok and report.failures[0].code in ("E616", "E617")
        assert report.failures[0].to_json()["problems"][0]["code"] == report.failures[0].code


def test_a_record_read_and_written_again_keeps_its_seal(tmp_path: Path) -> None:
    """Writing a record that was read never re-seals it: a keyed record opened without the key
    stays keyed (byte for byte), and changed contents keep the seal that no longer matches."""
    text = loans_result().to_record(key=KEY).to_json()
    for opened in (Record.from_json(text), Record.from_json(text, key=OTHER)):
        out = tmp_path / "again.json"
        opened.write(str(out))
        assert out.read_text() == text
        assert Record.from_json(out.read_text()).verify(key=KEY).ok
    data = json.loads(text)
    data["facts"]["decision"][1][0] = "approve"
    tampered = Record.from_dict(data)
    assert json.loads(tampered.to_json())["seal"] == json.loads(text)["seal"]
    for key in (KEY, None):
        report = Record.from_json(tampered.to_json()).verify(key=key)
        assert not report.ok and report.failures[0].code in ("E613", "E616")
    plain = loans_result().to_record().to_json()
    assert Record.from_json(plain).to_json() == plain


def test_record_keys_are_checked() -> None:
    from converge_rules.record import read_record_key

    for bad in (b"", b"short", 42):
        with pytest.raises(RecordError) as err:
            loans_result().to_record(key=bad)  # type: ignore[arg-type]
        assert err.value.code == "E615"
    assert Record.from_json(loans_result().to_record(key=KEY.decode()).to_json()).verify(key=KEY).ok  # str = UTF-8
    with pytest.raises(RecordError) as err:
        read_record_key("/nonexistent/record.key")
    assert err.value.code == "E615"


@pytest.mark.skipif(os.name != "posix", reason="file modes")
def test_record_key_files(tmp_path: Path) -> None:
    from converge_rules.record import read_record_key

    assert read_record_key(str(_key_file(tmp_path))) == KEY  # the trailing newline is not part of the key
    cases = {"empty": (b"", 0o600, "empty"), "short": (b"abc", 0o600, "too short"),
             "open": (KEY, 0o644, "open to all users"), "writable": (KEY, 0o602, "open to all users")}
    for name, (secret, mode, words) in cases.items():
        with pytest.raises(RecordError) as err:
            read_record_key(str(_key_file(tmp_path, secret, name, mode)))
        assert err.value.code == "E615" and words in err.value.diagnostics[0].message
        assert KEY.decode() not in err.value.diagnostics[0].render()
    with pytest.raises(RecordError) as err:
        read_record_key(str(tmp_path))
    assert err.value.code == "E615" and "directory" in err.value.diagnostics[0].message


@pytest.mark.skipif(os.name != "posix", reason="file modes")
def test_cli_keyed_record_verify(tmp_path: Path) -> None:
    key = _key_file(tmp_path)
    other = _key_file(tmp_path, OTHER, "other.key")
    r = tmp_path / "r.json"
    run = converge("run", str(LOANS / "loans.cvg"), "--facts", str(LOANS / "facts.json"), "--record", str(r),
                   "--record-key", str(key), "--format", "summary")
    assert run.returncode == 0 and '"seal":"hmac-sha256:' in r.read_text()
    outputs = [run.stdout + run.stderr]
    ok = converge("verify", "--record", str(r), "--record-key", str(key))
    assert ok.returncode == 0 and "authentic" in ok.stdout and "NOT" not in ok.stdout
    unkeyed = converge("verify", "--record", str(r))
    assert unkeyed.returncode == 0 and "authenticity NOT checked" in unkeyed.stdout
    assert "authenticity was not checked" in unkeyed.stderr
    wrong = converge("verify", "--record", str(r), "--record-key", str(other))
    assert wrong.returncode == 8 and "error[E616]" in wrong.stdout and str(r) in wrong.stdout
    tampered = tmp_path / "t.json"
    tampered.write_text(r.read_text().replace('"reject"', '"approve"', 1))
    bad = converge("verify", "--record", str(tampered), "--record-key", str(key))
    assert bad.returncode == 8 and "error[E616]" in bad.stdout and "refused" in bad.stdout
    plain = tmp_path / "p.json"
    assert converge("run", str(LOANS / "loans.cvg"), "--facts", str(LOANS / "facts.json"), "--record", str(plain),
                    "--format", "summary").returncode == 0
    unauth = converge("verify", str(plain), "--record-key", str(key))
    assert unauth.returncode == 8 and "error[E617]" in unauth.stdout
    env_key = subprocess.run([sys.executable, "-m", "converge_rules", "verify", str(r)], cwd=ROOT, capture_output=True,
                             text=True, env=dict(os.environ, NO_COLOR="1", CONVERGE_RECORD_KEY_FILE=str(other),
                                                 PYTHONPATH=str(ROOT)))
    assert env_key.returncode == 8 and "E616" in env_key.stdout
    key.chmod(0o644)
    loose = converge("verify", "--record", str(r), "--record-key", str(key))
    assert loose.returncode == 1 and "error[E615]" in loose.stderr and "chmod 600" in loose.stderr
    missing = converge("run", str(LOANS / "loans.cvg"), "--facts", str(LOANS / "facts.json"), "--record",
                       str(tmp_path / "x.json"), "--record-key", str(tmp_path / "nope.key"))
    assert missing.returncode == 1 and "error[E615]" in missing.stderr and not (tmp_path / "x.json").exists()
    usage = converge("run", str(LOANS / "loans.cvg"), "--facts", str(LOANS / "facts.json"), "--record-key", str(other))
    assert usage.returncode == 2 and "--record" in usage.stderr
    for out in outputs + [ok, unkeyed, wrong, bad, unauth, env_key, loose, missing, usage]:
        text = out if isinstance(out, str) else out.stdout + out.stderr
        assert KEY.decode() not in text and OTHER.decode() not in text and "Traceback" not in text


# ------------------------------------------------------------------ opening big records lazily

TC = "input relation edge(a: str, b: str)\nrelation path(a: str, b: str)\n" \
     "path(x, y) :- edge(x, y).\npath(x, z) :- path(x, y), edge(y, z).\n"


def test_offsets_of_mixed_width_proofs_are_counted_then_tabled() -> None:
    import itertools

    n = 40
    result = cr.load_text(TC).run({"edge": [[f"n{i}", f"n{i + 1}"] for i in range(n)]})
    record = Record.from_json(result.to_record().to_json())
    assert record.why(f'path("n0", "n{n}")') is not None
    rel = record.result._inputs.rels["path"]
    assert rel._stride is None and rel._codes is not None and rel._counted < 64  # counted, no table
    table = [0, *itertools.accumulate(map(record.result._inputs.width.__getitem__, rel.agents))]
    assert [rel.offset(i) for i in range(len(rel.agents))] == table[:-1]  # past 64 lookups: the table
    assert rel._codes is None and rel._offsets == table
    assert record.verify().ok


def test_a_bool_where_a_proof_number_belongs_is_refused_when_decoded() -> None:
    data = json.loads(loans_result().to_record().to_json())
    ids, outcomes = data["facts"]["decision"]
    row = next(i for i, f in enumerate(zip(ids, outcomes)) if f == ("l1", "reject"))
    data["proofs"]["decision"]["cycle"][row] = True
    data.pop("seal")
    record = Record.from_dict(data)
    assert record.facts("decision")  # finding facts does not decode proofs
    with pytest.raises(RecordError) as err:
        record.why('decision("l1", "reject")')
    assert err.value.code == "E612" and f"row {row} of 'decision'" in err.value.diagnostics[0].message
    data["proofs"]["decision"]["cycle"][row] = 1.5
    with pytest.raises(RecordError) as err:
        Record.from_dict(data).why('decision("l1", "reject")')
    assert err.value.code == "E612"


@pytest.mark.parametrize("edit, problem", [
    (lambda t: t[1].update(eligible=3), "trace event 2 (cycle) has a malformed 'eligible'"),
    (lambda t: t[2].update(attempt=[1]), "trace event 3 (execute) has a malformed 'attempt'"),
    (lambda t: t[2].pop("agent"), "trace event 3 (execute) has no 'agent'"),
    (lambda t: t[3].update(cycle=None), "trace event 4 (execute) has a malformed 'cycle'"),
    (lambda t: t[0].update(checked=None), "trace event 1 (invariants) has a malformed 'checked'"),
    (lambda t: t[4].update(event="explode"), 'trace event 5 has an unknown kind "explode"'),
    (lambda t: t[4].pop("event"), "trace event 5 has no 'event' kind"),
    (lambda t: t[5].update(time="noon"), "trace event 6 (execute) has a malformed 'time'"),
])
def test_a_record_with_a_malformed_trace_event_is_e612(tmp_path: Path, edit, problem: str) -> None:
    data = json.loads(loans_result(trace=True).to_record().to_json())
    assert [e["event"] for e in data["trace"][:3]] == ["invariants", "cycle", "execute"]
    edit(data["trace"])
    with pytest.raises(RecordError) as err:
        Record.from_dict(data)
    assert err.value.code == "E612" and problem in err.value.diagnostics[0].message
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    for args in (["report", "--record", str(path), "-o", str(tmp_path / "r.html")], ["replay", str(path)],
                 ["why", "--record", str(path), 'decision("l1", "reject")']):
        proc = converge(*args)
        assert proc.returncode == 1 and f"{path}: error[E612]: malformed record: {problem}" in proc.stderr, proc.stderr
        assert "internal error" not in proc.stderr and not (tmp_path / "r.html").exists()


def test_every_kind_of_trace_event_reads_back_from_a_record(tmp_path: Path) -> None:
    calls: dict[str, int] = {}

    def flaky_score(applicant: str) -> int:  # busy once for a2, no file for a3: failure, retry and skip events
        calls[applicant] = calls.get(applicant, 0) + 1
        if applicant == "a3" or (applicant == "a2" and calls[applicant] == 1):
            raise LookupError(applicant)
        return 700

    result = cr.load([str(SCORING / "scoring.cvg")]).run(fact_files=[str(SCORING / "facts.json")], trace=True,
                                                         timestamps=True, tools={"credit_score": flaky_score})
    record = Record.from_json(result.to_record().to_json())
    kinds = {e["event"] for e in record.result.trace}
    assert {"prune", "tool", "failure", "retry", "skip", "dominated", "superseded", "retire", "merge"} <= kinds
    assert record.report_html()


def test_a_record_whose_proofs_do_not_fit_is_refused_on_every_question_not_only_the_first() -> None:
    data = json.loads(loans_result().to_record().to_json())
    data["proofs"]["applicant"]["refs"] = []  # five input facts need ten references
    record = Record.from_dict(data)
    for ask in (lambda: record.why_text('decision("l1", "reject")'), lambda: record.why_not_text('decision("l1", "approve")'),
                lambda: record.why_text('applicant("a1", 1000)'), record.report_html):
        with pytest.raises(RecordError) as err:
            ask()
        assert err.value.code == "E613" and "0 premise references, 10 expected" in err.value.diagnostics[0].message


def test_a_query_with_a_constant_over_a_relation_recorded_without_its_columns_is_e612(tmp_path: Path) -> None:
    data = json.loads(loans_result().to_record().to_json())
    data["facts"]["decision"] = []  # the proofs keep their rows; the two columns are gone
    with pytest.raises(RecordError) as err:
        Record.from_dict(data).query('decision(l, "reject")')
    assert err.value.code == "E612" and "relation 'decision' holds values of the wrong type" in str(err.value)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    proc = converge("query", "--record", str(path), 'decision(l, "reject")')
    assert proc.returncode == 1 and f"{path}: error[E612]" in proc.stderr and "internal error" not in proc.stderr


@pytest.mark.parametrize("edit, problem", [
    (lambda o: o.update(on_failure="explode"), "'options.on_failure' is not a failure policy: \"explode\""),
    (lambda o: o.update(on_failure=3), "'options.on_failure' is not a failure policy: 3"),
    (lambda o: o["budget"].update(max_cycles="x"), "'options.budget.max_cycles' is \"x\""),
    (lambda o: o["budget"].update(max_bytes=-1), "'options.budget.max_bytes' is -1"),
    (lambda o: o["budget"].update(min_confidence=2), "'options.budget.min_confidence' is 2"),
    (lambda o: o.update(goals=None), "'options.goals' must list relation names"),
    (lambda o: o.update(goals=[["decision"]]), "'options.goals' must list relation names"),
    (lambda o: o.update(tool_timeout="soon"), "'options.tool_timeout' is \"soon\""),
])
def test_a_record_with_malformed_options_is_e612_before_a_replay(tmp_path: Path, edit, problem: str) -> None:
    data = json.loads(loans_result(trace=True).to_record().to_json())
    edit(data["options"])
    with pytest.raises(RecordError) as err:
        Record.from_dict(data).replay()
    assert err.value.code == "E612" and problem in err.value.diagnostics[0].message
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    proc = converge("replay", str(path))
    assert proc.returncode == 1 and f"{path}: error[E612]: malformed record: {problem}" in proc.stderr, proc.stderr
    assert "internal error" not in proc.stderr


def test_a_record_just_made_from_a_result_verifies() -> None:
    """`result.to_record().verify()` reported the fresh record as altered ("the record has no
    seal: it was changed after it was written", E616): its seal is made lazily, when it is first
    written, and verify looked for it before that. A record read without its seal is still refused."""
    from converge_rules.record import integrity_problems

    result = cr.load([str(LOANS / "loans.cvg")]).run(fact_files=[str(LOANS / "facts.json")])
    report = result.to_record().verify()
    assert report.ok, report.summary
    assert report.summary == "verified 24 proofs of 37 facts"
    assert integrity_problems(result.to_record()) == []
    key = b"a record key of twenty bytes"
    keyed = result.to_record(key=key)
    assert keyed.verify().ok and keyed.to_dict()["seal"].startswith("hmac-sha256:")
    # the seal it got is the one it is written with
    fresh = result.to_record()
    assert fresh.verify().ok
    assert Record.from_json(fresh.to_json()).verify().ok
    unsealed = result.to_record().to_dict()
    del unsealed["seal"]
    refused = Record.from_dict(unsealed).verify()
    assert not refused.ok and "no seal" in "\n".join(f.render() for f in refused.failures)


def test_the_report_of_a_record_shows_the_bytes_the_job_counted(tmp_path: Path) -> None:
    """A record did not keep what the facts counted against max_bytes, so the report made from
    it said '0 bytes counted' where the report of the same job said 1,699 (and the two pages
    differed). Records keep it as outcome.bytes; one written before says 'not recorded'."""
    result = loans_result(trace=True)
    data = json.loads(result.to_record().to_json())
    assert data["outcome"]["bytes"] == result.bytes_counted > 0
    from converge_rules.explain.report import render_report

    record = Record.from_dict(data)
    assert record.result.bytes_counted == result.bytes_counted
    assert record.report_html() == render_report(result)
    assert f"<td>{result.bytes_counted} bytes counted</td>" in record.report_html()
    del data["outcome"]["bytes"]
    older = Record.from_dict(data)
    assert older.result.bytes_counted is None and "<td>not recorded</td>" in older.report_html()
    assert "bytes" not in Record.from_result(older.result).to_dict()["outcome"]  # re-encoded as it was read
    for bad in ("many", -1, 1.5, True):
        with pytest.raises(RecordError) as err:
            Record.from_dict({**data, "outcome": {**data["outcome"], "bytes": bad}})
        assert err.value.code == "E612" and "'outcome.bytes' must be a whole number" in str(err.value.diagnostics[0].message)
    # the CLI: the page written from the record is the page written from the run
    run = converge("run", "examples/loans/loans.cvg", "--facts", "examples/loans/facts.json", "--record",
                   str(tmp_path / "r.json"), "--quiet")
    assert run.returncode == 0, run.stderr
    from_run = converge("report", "examples/loans/loans.cvg", "--facts", "examples/loans/facts.json",
                        "-o", str(tmp_path / "a.html"))
    from_record = converge("report", "--record", str(tmp_path / "r.json"), "-o", str(tmp_path / "b.html"))
    assert from_run.returncode == from_record.returncode == 0, from_run.stderr + from_record.stderr
    assert (tmp_path / "a.html").read_bytes() == (tmp_path / "b.html").read_bytes()


_INVARIANT = 'relation p(x: int)\nrelation q(x: int)\np(1). p(2).\nq(x) :- p(x).\ninvariant no_q2 "q(2) is forbidden" { forbid q(2) }\n'


def _violations(reason: dict) -> dict:
    return reason["violations"][0]


@pytest.mark.parametrize("edit, problem", [
    (lambda r: r.update(violations=[1]), "has a malformed 'violations'"),
    (lambda r: r.update(violations="abc"), "has a malformed 'violations'"),
    (lambda r: _violations(r).update(matches=5), "has a malformed 'violations'"),
    (lambda r: _violations(r).update(matches=[{"facts": [1, 2]}]), "has a malformed 'violations'"),
    (lambda r: _violations(r)["matches"][0].update(bindings=[1]), "has a malformed 'violations'"),
    (lambda r: _violations(r).pop("invariant"), "has a malformed 'violations'"),
    (lambda r: r.update(cycle="2"), "has a malformed 'cycle'"),
    (lambda r: r.update(budget=["max_facts"]), "has a malformed 'budget'"),
    (lambda r: r.update(invariant={}), "has a malformed 'invariant'"),
])
def test_a_record_whose_reasons_are_malformed_is_e612(tmp_path: Path, edit, problem: str) -> None:
    """The report (and why-not's notes, and the run summary) read a reason's details, which a
    record's reader did not check: an edited record with violations [1] made `converge report
    --record` an internal error (AttributeError, exit 70), as did a list where a budget's name
    belongs. Each reason is checked on reading (E612 naming it), as trace events are."""
    result = cr.load_text(_INVARIANT, name="i.cvg").run(trace=True)
    data = json.loads(result.to_record().to_json())
    assert Record.from_dict(data).report_html()  # the untouched record
    edit(data["outcome"]["reasons"][0])
    with pytest.raises(RecordError) as err:
        Record.from_dict(data)
    message = err.value.diagnostics[0].message
    assert err.value.code == "E612" and message.startswith(f"malformed record: reason 1 of the outcome {problem}"), message
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    for args in (["report", "--record", str(path), "-o", str(tmp_path / "r.html")],
                 ["why-not", "--record", str(path), "q(2)"]):
        proc = converge(*args)
        assert proc.returncode == 1 and f"{path}: error[E612]: malformed record: reason 1 of the outcome {problem}" \
            in proc.stderr, proc.stderr
        assert "internal error" not in proc.stderr and not (tmp_path / "r.html").exists()


_LOSSES = ('relation p(x: int)\nrelation q(x: int)\nrelation r(x: int)\nrelation best(k: str, v: int) key(k) prefer min(v)\n'
           'budget { min_confidence = 0.5 }\np(1). p(2).\n'
           'agent weak { confidence 0.4 when p(x) emit q(x) }\nagent strong { confidence 0.9 when p(x) emit r(x) }\n'
           'best("a", x + 5) :- p(x).\n')


@pytest.mark.parametrize("key, edit, fact, problem", [
    ("dropped", lambda d: d["q"][0].__setitem__(3, "x"), "q(1)", "entry 1 of 'dropped.q' must be [fact, reason, cycle, detail]"),
    ("dropped", lambda d: d["q"][0].__setitem__(1, "weird"), "q(1)", "entry 1 of 'dropped.q'"),
    ("dropped", lambda d: d["best"][0].__setitem__(3, 5), 'best("a", 7)', "entry 1 of 'dropped.best'"),
    ("dropped", lambda d: d["best"][0].__setitem__(2, "1"), 'best("a", 7)', "entry 1 of 'dropped.best'"),
    ("dropped", lambda d: d.__setitem__("q", 5), "q(1)", "'dropped' must map relations to lists of entries"),
    ("confidence", lambda d: d["r"][0].__setitem__(1, "x"), "r(1)", "'confidence' must map relations to [row, confidence]"),
    ("confidence", lambda d: d["r"][0].__setitem__(1, 2.5), "r(1)", "'confidence' must map relations to [row, confidence]"),
])
def test_a_record_whose_losses_are_malformed_is_e612(tmp_path: Path, key: str, edit, fact: str, problem: str) -> None:
    """A record's `dropped` entries (what dropped a fact, and the kept fact, limit or confidence)
    and its confidences are printed by why, why-not and Result.dropped, but were not checked on
    reading: an edited record with a confidence "x" or a dominated fact's detail 5 made `why` and
    `why-not` internal errors (ValueError "Unknown format code 'g'", TypeError, exit 70)."""
    result = cr.load_text(_LOSSES, name="l.cvg").run()
    data = json.loads(result.to_record().to_json())
    assert Record.from_dict(data).why_not_text(fact)
    edit(data[key])
    with pytest.raises(RecordError) as err:
        Record.from_dict(data)
    assert err.value.code == "E612" and problem in err.value.diagnostics[0].message, err.value.diagnostics[0].message
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    for args in (["why", "--record", str(path), fact], ["why-not", "--record", str(path), fact]):
        proc = converge(*args)
        assert proc.returncode == 1 and f"{path}: error[E612]: malformed record: " in proc.stderr, proc.stderr
        assert problem in proc.stderr and "internal error" not in proc.stderr


@pytest.mark.parametrize("edit, difference", [
    (lambda o: o.update(cycles=99), "outcome cycles differs: recorded 99, replayed 1"),
    (lambda o: o.update(reasons=[]), "outcome reasons differs: recorded [], replayed [{"),
    (lambda o: o["reasons"][0].update(message="all fine"), 'outcome reasons differs: recorded [{"cycle": 1'),
    (lambda o: o.update(facts=1), "outcome facts differs: recorded 1, replayed 2"),
    (lambda o: o.update(fired=["q#1"]), 'outcome fired differs: recorded ["q#1"], replayed []'),
])
def test_replay_compares_the_whole_recorded_outcome(tmp_path: Path, edit, difference: str) -> None:
    """Record.replay compared the trace, the digest and the tier only: a record whose outcome was
    edited to 99 cycles, or to a failed job without reasons ('all fine'), replayed 'identical'
    (exit 0), though a trace's replay compares its whole outcome line. The outcome's cycles,
    reasons, steps, facts count and fired agents are compared too."""
    result = cr.load_text(_INVARIANT, name="i.cvg").run(trace=True)
    data = json.loads(result.to_record().to_json())
    assert Record.from_dict(data).replay()[1] is None
    edit(data["outcome"])
    _new, found = Record.from_json(_resealed(data)).replay()
    assert found is not None and found.startswith(difference), found
    path = tmp_path / "edited.json"
    path.write_text(_resealed(data))
    proc = converge("replay", str(path))
    assert proc.returncode == 7 and f"replay differs from {path}: {difference}" in proc.stderr, proc.stderr
