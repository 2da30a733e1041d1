"""Convergence control (issue 3): tools, failure policies, budgets, dominance, pruning, trace and replay."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import converge_rules as cr

DATA = Path(__file__).parent / "data" / "control"

SCORING = """
input relation applicant(id: str)
relation score(id: str, s: int)
relation good(id: str)
agent scoring "scores come from the bureau" {
  on_failure POLICY
  when applicant(a), s = @credit_score(a)
  emit score(a, s)
}
good(a) :- score(a, s), s >= 200.
"""


def flaky_tool(fail_counts: dict[str, int]):
    calls: dict[str, int] = {}

    def credit_score(a: str) -> int:
        calls[a] = calls.get(a, 0) + 1
        if calls[a] <= fail_counts.get(a, 0):
            raise RuntimeError(f"bureau unavailable for {a}")
        return 100 * len(a)

    return credit_score, calls


def scoring(policy: str) -> cr.RuleSet:
    return cr.load_text(SCORING.replace("POLICY", policy), "scoring.cvg")


def test_tool_results_flow_into_facts_and_are_called_once_per_arguments() -> None:
    tool, calls = flaky_tool({})
    r = scoring("abort").run(facts={"applicant": [("ab",), ("abc",)]}, tools={"credit_score": tool})
    assert r.tier == "converged"
    assert r.facts("score") == [("ab", 200), ("abc", 300)]
    assert calls == {"ab": 1, "abc": 1}


def test_retry_then_succeed_converges() -> None:
    tool, calls = flaky_tool({"ab": 2})
    r = scoring("retry 2 then skip").run(facts={"applicant": [("ab",)]}, tools={"credit_score": tool}, trace=True)
    assert r.tier == "converged" and r.facts("score") == [("ab", 200)]
    assert calls["ab"] == 3
    assert [e["attempt"] for e in r.trace if e["event"] == "failure"] == [1, 2]


def test_retry_then_skip_degrades_and_names_the_failure() -> None:
    tool, _ = flaky_tool({"bad": 99})
    r = scoring("retry 2 then skip").run(facts={"applicant": [("ab",), ("bad",)]}, tools={"credit_score": tool})
    assert r.tier == "degraded"
    (reason,) = r.reasons
    assert reason.kind == "agent_skipped" and reason.details["agent"] == "scoring" and reason.details["attempts"] == 3
    assert "bureau unavailable for bad" in reason.details["error"]
    # nothing derived from the skipped buffer is present, and what is present is proven
    assert r.facts("score") == [] and r.facts("good") == []


def test_abort_fails_with_the_last_consistent_context() -> None:
    tool, _ = flaky_tool({"bad": 99})
    r = scoring("abort").run(facts={"applicant": [("ab",), ("bad",)]}, tools={"credit_score": tool})
    assert r.tier == "failed" and r.reasons[0].kind == "agent_failed"
    assert r.facts("score") == []


def test_job_default_policy_applies_to_agents_without_one() -> None:
    src = SCORING.replace("  on_failure POLICY\n", "")
    tool, _ = flaky_tool({"bad": 99})
    rs = cr.load_text(src, "s.cvg")
    assert rs.run(facts={"applicant": [("bad",)]}, tools={"credit_score": tool}).tier == "failed"
    assert rs.run(facts={"applicant": [("bad",)]}, tools={"credit_score": tool}, on_failure="skip").tier == "degraded"


def test_unknown_tool_is_a_diagnostic_before_the_job_starts() -> None:
    with pytest.raises(cr.ConvergeError) as info:
        scoring("abort").run(facts={"applicant": [("ab",)]})
    assert info.value.diagnostics[0].code == "E220"


def test_tool_timeout_and_bad_return_values_are_agent_failures() -> None:
    import time

    def hang(a: str) -> int:
        time.sleep(3)
        return 1

    r = scoring("abort").run(facts={"applicant": [("ab",)]}, tools={"credit_score": hang}, tool_timeout=0.2)
    assert r.tier == "failed" and "timed out after 0.2s" in r.reasons[0].details["error"]
    r2 = scoring("abort").run(facts={"applicant": [("ab",)]}, tools={"credit_score": lambda a: [1]})
    assert r2.tier == "failed" and "returned list" in r2.reasons[0].details["error"]
    r3 = scoring("abort").run(facts={"applicant": [("ab",)]}, tools={"credit_score": lambda a: "high"})
    assert r3.tier == "failed" and "column is int" in r3.reasons[0].details["error"]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(alphabet="abcxyz", min_size=1, max_size=4), min_size=1, max_size=25, unique=True),
       st.sets(st.text(alphabet="abcxyz", min_size=1, max_size=4), max_size=3), st.integers(0, 2**32))
def test_trace_is_identical_for_one_and_eight_workers(names: list[str], failing: set[str], seed: int) -> None:
    import threading
    import time

    rnd = random.Random(seed)
    lock = threading.Lock()

    def tool(a: str) -> int:
        with lock:
            pause = rnd.random() * 0.003
        time.sleep(pause)  # calls finish in a different order each time
        if a in failing:
            raise ValueError("no score")
        return len(a)

    rs = scoring("retry 1 then skip")
    facts = {"applicant": [(n,) for n in names]}
    one = rs.run(facts=facts, tools={"credit_score": tool}, workers=1, trace=True)
    eight = rs.run(facts=facts, tools={"credit_score": tool}, workers=8, trace=True)
    assert one.trace_jsonl() == eight.trace_jsonl()
    assert one.digest == eight.digest and one.to_json() == eight.to_json()


RUNAWAY = "relation n(x: int)\nn(0).\nn(x + 1) :- n(x).\n"


@pytest.mark.parametrize("budget,name", [(cr.Budget(max_steps=300), "max_steps"), (cr.Budget(max_facts=300), "max_facts"),
                                         (cr.Budget(max_cycles=300), "max_cycles")])
def test_runaway_recursion_stops_bounded_the_same_way(budget: cr.Budget, name: str) -> None:
    rs = cr.load_text(RUNAWAY, "runaway.cvg")
    a, b = rs.run(budget=budget), rs.run(budget=budget)
    assert a.tier == "bounded" and a.reasons[0].details["budget"] == name
    assert a.digest == b.digest and a.to_json() == b.to_json()
    for (x,) in a.facts("n")[1:]:
        assert a.proof("n", (x,)).premises == [("n", (x - 1,))]  # type: ignore[union-attr]


def test_runaway_digest_is_the_same_under_other_hash_seeds(tmp_path: Path) -> None:
    rules = tmp_path / "runaway.cvg"
    rules.write_text(RUNAWAY + "relation tag(s: str)\ntag(\"x\" ++ to_str(n)) :- n(n), n < 50.\n")
    digests = set()
    for flag, seed in [("--max-steps", "0"), ("--max-steps", "1"), ("--max-steps", "random"), ("--max-facts", "7"), ("--max-cycles", "99")]:
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run([sys.executable, "-m", "converge_rules", "run", str(rules), flag, "200", "--format", "json"],
                             env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 4, out.stderr
        data = json.loads(out.stdout)
        if flag == "--max-steps":
            digests.add(data["digest"])
    assert len(digests) == 1


def test_max_agents_per_cycle_defers_by_priority_without_losing_facts() -> None:
    src = """
relation p(x: int)
relation a(x: int)
relation b(x: int)
relation c(x: int)
p(1). p(2).
agent low { priority 1 when p(x) emit a(x) }
agent high { priority 9 when p(x) emit b(x) }
agent mid { priority 5 when p(x) emit c(x) }
"""
    rs = cr.load_text(src, "p.cvg")
    full = rs.run()
    capped = rs.run(budget=cr.Budget(max_agents_per_cycle=1), trace=True)
    assert capped.tier == "converged" and capped.cycles == 3 and full.cycles == 1
    assert [e["eligible"] for e in capped.trace if e["event"] == "cycle"] == [["high"], ["mid"], ["low"]]
    for rel in ("a", "b", "c"):
        assert capped.facts(rel) == full.facts(rel)


SHORTEST = """
input relation edge(a: str, b: str, w: int)
input relation source(n: str)
relation dist(n: str, d: int) key(n) prefer min(d)
dist(s, 0) :- source(s).
dist(y, d + w) :- dist(x, d), edge(x, y, w).
"""


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=2, max_value=40), st.integers(min_value=0, max_value=150), st.integers(min_value=0, max_value=10**6))
def test_shortest_paths_with_dominance_agree_with_networkx(n: int, m: int, seed: int) -> None:
    rnd = random.Random(seed)
    edges = {(f"n{rnd.randrange(n)}", f"n{rnd.randrange(n)}") for _ in range(m)}
    weighted = sorted((a, b, rnd.randint(1, 30)) for a, b in edges)
    graph = nx.DiGraph()
    graph.add_nodes_from(f"n{i}" for i in range(n))
    graph.add_weighted_edges_from(weighted)
    expected = nx.single_source_dijkstra_path_length(graph, "n0")
    r = cr.load_text(SHORTEST, "sp.cvg").run(facts={"edge": weighted, "source": [("n0",)]}, trace=True)
    assert r.tier == "converged"
    assert dict(r.facts("dist")) == expected
    superseded = {tuple(e["fact"]) for e in r.trace if e["event"] == "superseded"}
    assert superseded == {f for f, _by, _c in r.superseded("dist")}
    for node, d in r.facts("dist"):  # every kept distance has a proof whose premises were facts when it fired
        p = r.proof("dist", (node, d))
        assert p is not None and (p.is_input or p.agent in ("dist#1", "dist#2"))


def test_dominated_newcomers_are_dropped_and_recorded() -> None:
    src = """
relation offer(loan: str, rate: float) key(loan) prefer min(rate)
relation quote(loan: str, rate: float)
quote("l1", 5.0). quote("l1", 4.5). quote("l1", 6.0). quote("l2", 7.0).
offer(l, r) :- quote(l, r).
"""
    r = cr.load_text(src, "o.cvg").run(trace=True)
    assert r.facts("offer") == [("l1", 4.5), ("l2", 7.0)]
    kinds = [e["event"] for e in r.trace if e["event"] in ("dominated", "superseded")]
    assert kinds  # both decisions are in the trace


def test_goal_pruning_keeps_goal_results_identical() -> None:
    src = """
input relation edge(a: str, b: str)
relation path(a: str, b: str)
relation twohop(a: str, b: str)
relation noise(a: str)
path(x, y) :- edge(x, y).
path(x, z) :- path(x, y), edge(y, z).
twohop(x, z) :- edge(x, y), edge(y, z).
noise(x) :- edge(x, _).
"""
    rs = cr.load_text(src, "g.cvg")
    facts = {"edge": [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]}
    full = rs.run(facts=facts)
    pruned = rs.run(facts=facts, goals=["path"], trace=True)
    assert pruned.facts("path") == full.facts("path")
    assert pruned.facts("noise") == [] and pruned.facts("twohop") == []
    (prune,) = [e for e in pruned.trace if e["event"] == "prune"]
    assert prune["agents"] == ["twohop#1", "noise#1"]
    in_file = cr.load_text(src + "goal path\n", "g.cvg").run(facts=facts)
    assert in_file.facts("path") == full.facts("path") and in_file.facts("noise") == []


def test_fail_literal_is_an_agent_failure() -> None:
    src = 'relation p(x: int)\nrelation q(x: int)\np(1). p(5).\nagent check { on_failure skip when p(x), x > 3, fail "too big" emit q(x) }\n'
    r = cr.load_text(src, "f.cvg").run()
    assert r.tier == "degraded" and "fail: too big" in r.reasons[0].details["error"]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "converge_rules", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture()
def flaky_project(tmp_path: Path) -> Path:
    (tmp_path / "tools.py").write_text((DATA / "flaky_tools.py").read_text())
    (tmp_path / "facts.json").write_text('{"applicant": [["ab"], ["bad"], ["twice"]]}')
    for policy, name in [("retry 2 then skip", "skip.cvg"), ("abort", "abort.cvg")]:
        (tmp_path / name).write_text(SCORING.replace("POLICY", policy))
    return tmp_path


def test_cli_flaky_tool_degraded_and_failed_exit_codes(flaky_project: Path) -> None:
    skip = cli("run", "skip.cvg", "--facts", "facts.json", "--tools", "tools:TOOLS", "--format", "json", cwd=flaky_project)
    assert skip.returncode == 3, skip.stderr
    data = json.loads(skip.stdout)
    assert data["tier"] == "degraded" and data["reasons"][0]["agent"] == "scoring"
    abort = cli("run", "abort.cvg", "--facts", "facts.json", "--tools", "tools", "--format", "summary", cwd=flaky_project)
    assert abort.returncode == 5 and "tier: failed" in abort.stdout
    bad = cli("run", "abort.cvg", "--facts", "facts.json", "--tools", "nosuchmodule", cwd=flaky_project)
    assert bad.returncode == 2 and "cannot load tools" in bad.stderr
    missing = cli("run", "abort.cvg", "--facts", "facts.json", cwd=flaky_project)
    assert missing.returncode == 1 and "E220" in missing.stderr
    policy = cli("run", "abort.cvg", "--on-failure", "retry x", cwd=flaky_project)
    assert policy.returncode == 2


def test_cli_trace_replay_and_tampering(flaky_project: Path) -> None:
    out = cli("run", "skip.cvg", "--facts", "facts.json", "--tools", "tools", "--trace", "run.jsonl", "--format", "summary",
              cwd=flaky_project)
    assert out.returncode == 3
    lines = (flaky_project / "run.jsonl").read_text().splitlines()
    header = json.loads(lines[0])
    assert header["format"] == "converge-trace/1" and header["rules"][0]["sha256"]
    events = [json.loads(x)["event"] for x in lines]
    assert {"cycle", "execute", "tool", "failure", "retry", "skip", "invariants", "outcome"} - {"invariants"} <= set(events)
    assert all("time" not in json.loads(x) for x in lines)
    ok = cli("replay", "run.jsonl", cwd=flaky_project)
    assert ok.returncode == 0 and "replay identical" in ok.stdout
    first_failure = next(i for i, x in enumerate(lines) if '"event":"failure"' in x)
    tampered = list(lines)
    tampered[first_failure] = tampered[first_failure].replace('"attempt":1', '"attempt":5')
    (flaky_project / "tampered.jsonl").write_text("\n".join(tampered) + "\n")
    bad = cli("replay", "tampered.jsonl", cwd=flaky_project)
    assert bad.returncode == 7 and f"replay differs at event {first_failure + 1}" in bad.stderr
    assert '"attempt":5' in bad.stderr
    truncated = cli("replay", "tampered.jsonl", cwd=flaky_project)
    assert truncated.returncode == 7
    (flaky_project / "broken.jsonl").write_text("{not json\n")
    assert cli("replay", "broken.jsonl", cwd=flaky_project).returncode == 1
    (flaky_project / "skip.cvg").write_text(SCORING.replace("POLICY", "skip"))
    changed = cli("replay", "run.jsonl", cwd=flaky_project)
    assert changed.returncode == 7 and "changed since the trace was recorded" in changed.stderr


def test_cli_replay_of_a_job_with_a_facts_directory(tmp_path: Path) -> None:
    """A trace records a facts directory's SHA-256 (of the files the loader reads), so the job
    replays; a changed file in the directory is reported as a change, not as a missing path."""
    facts = tmp_path / "facts"
    facts.mkdir()
    (facts / "edge.facts").write_text("a\tb\nb\tc\n")
    (tmp_path / "tc.cvg").write_text("input relation edge(a: str, b: str)\nrelation path(a: str, b: str)\n"
                                     "path(x, y) :- edge(x, y).\npath(x, z) :- path(x, y), edge(y, z).\n")
    out = cli("run", "tc.cvg", "--facts", "facts", "--trace", "t.jsonl", "--format", "summary", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    header = json.loads((tmp_path / "t.jsonl").read_text().splitlines()[0])
    assert header["facts"][0]["path"] == "facts" and len(header["facts"][0]["sha256"]) == 64
    again = cli("replay", "t.jsonl", cwd=tmp_path)
    assert again.returncode == 0 and "replay identical" in again.stdout, again.stderr
    (facts / "edge.facts").write_text("a\tb\nb\tc\nc\td\n")
    changed = cli("replay", "t.jsonl", cwd=tmp_path)
    assert changed.returncode == 7 and "facts changed since the trace was recorded" in changed.stderr


def test_cli_replay_of_a_job_that_read_standard_input(tmp_path: Path) -> None:
    """Facts read from standard input are recorded by SHA-256 and format; replay reads the
    same text from standard input again, and refuses other text."""
    (tmp_path / "tc.cvg").write_text("input relation edge(a: str, b: str)\nrelation path(a: str, b: str)\n"
                                     "path(x, y) :- edge(x, y).\npath(x, z) :- path(x, y), edge(y, z).\n")
    text = "a,b\nx,y\ny,z\n"  # a CSV text: a header row, then the facts
    env = dict(os.environ, NO_COLOR="1")

    def converge(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "converge_rules", *args], cwd=tmp_path, env=env, input=stdin,
                              capture_output=True, text=True, timeout=120)

    out = converge("run", "tc.cvg", "--facts", "-", "--stdin-filename", "edge.csv", "--trace", "t.jsonl",
                   "--format", "summary", stdin=text)
    assert out.returncode == 0 and "path: 3" in out.stdout, out.stderr
    entry = json.loads((tmp_path / "t.jsonl").read_text().splitlines()[0])["facts"][0]
    assert entry["stdin"] is True and entry["format"] == "csv" and entry["path"] == "edge.csv"
    again = converge("replay", "t.jsonl", stdin=text)
    assert again.returncode == 0 and "replay identical" in again.stdout, again.stderr
    other = converge("replay", "t.jsonl", stdin="a,b\nx,y\n")
    assert other.returncode == 7 and "standard input is not the text the job read as edge.csv" in other.stderr


def test_cli_budget_flags(tmp_path: Path) -> None:
    (tmp_path / "r.cvg").write_text(RUNAWAY)
    out = cli("run", "r.cvg", "--max-steps", "40", "--format", "json", cwd=tmp_path)
    assert out.returncode == 4 and json.loads(out.stdout)["reasons"][0]["budget"] == "max_steps"
    (tmp_path / "p.cvg").write_text("relation p(x: int)\nrelation a(x: int)\nrelation b(x: int)\np(1).\na(x) :- p(x).\nb(x) :- p(x).\n")
    capped = cli("run", "p.cvg", "--max-agents-per-cycle", "1", "--format", "json", cwd=tmp_path)
    assert capped.returncode == 0 and json.loads(capped.stdout)["cycles"] == 2


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import strategies  # noqa: E402


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strategies.programs(), st.data())
def test_goal_pruning_never_changes_goal_relations(ir, data) -> None:
    rs = cr.load_text(strategies.render(ir), "gen.cvg")
    goal = data.draw(st.sampled_from(sorted(rs.relations)))
    facts = ir.facts_dict()
    full = rs.run(facts=facts)
    pruned = rs.run(facts=facts, goals=[goal])
    assert pruned.tier == full.tier
    assert pruned.facts(goal) == full.facts(goal)


def test_progress_line_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from converge_rules.commands.common import Progress as _Progress

    progress = _Progress()
    progress(3, 120, 2)
    progress.close()
    err = capsys.readouterr().err
    assert "cycle 3 · 120 facts · 2 agent(s) eligible" in err
    out = cli("run", str(DATA.parent.parent.parent / "examples" / "loans" / "loans.cvg"), "--facts",
              str(DATA.parent.parent.parent / "examples" / "loans" / "facts.json"), "--format", "summary", cwd=DATA)
    assert "cycle " not in out.stderr  # stderr is not a terminal here: no progress line


CONF = """
input relation edge(a: str, b: str)
relation path(a: str, b: str)
agent direct { confidence 0.9 when edge(x, y) emit path(x, y) }
agent extend { confidence 0.9 when path(x, y), edge(y, z) emit path(x, z) }
"""


def test_confidence_is_weight_times_weakest_premise_and_the_best_derivation_wins() -> None:
    rs = cr.load_text(CONF, "c.cvg")
    r = rs.run(facts={"edge": [("a", "b", 0.5), ("b", "c"), ("a", "c")]})
    assert r.tier == "converged"
    assert r.confidence("path", ("a", "b")) == pytest.approx(0.45)
    assert r.confidence("path", ("a", "c")) == pytest.approx(0.9)  # direct beats 0.9 * min(0.45, 1)
    assert r.confidence("edge", ("b", "c")) == 1.0
    tree = cr.render_text(r.why('path("a", "b")'))
    assert "confidence 0.45" in tree and "confidence 0.5" in tree


def test_confidence_increase_propagates() -> None:
    src = """
input relation weak(a: str)
input relation strong(a: str)
relation p(a: str)
relation q(a: str)
relation r(a: str)
agent w { confidence 0.3 when weak(x) emit p(x) }
q(x) :- strong(x).
agent s { confidence 0.8 when q(x) emit p(x) }
r(x) :- p(x).
"""
    r = cr.load_text(src, "d.cvg").run(facts={"weak": [("a",)], "strong": [("a",)]})
    assert r.confidence("p", ("a",)) == pytest.approx(0.8) and r.proof("p", ("a",)).agent == "s"  # type: ignore[union-attr]
    assert r.confidence("r", ("a",)) == pytest.approx(0.8)


def test_min_confidence_and_max_facts_drop_the_weakest(tmp_path: Path) -> None:
    rs = cr.load_text(CONF, "c.cvg")
    r = rs.run(facts={"edge": [("a", "b", 0.5), ("b", "c"), ("a", "c")]}, budget=cr.Budget(min_confidence=0.6))
    assert r.tier == "bounded" and r.reasons[0].details["budget"] == "min_confidence"
    assert ("a", "b") not in r.facts("path")
    r2 = rs.run(facts={"edge": [("a", "b"), ("b", "c"), ("a", "c", 0.2)]}, budget=cr.Budget(max_facts=5))
    assert r2.tier == "bounded" and r2.facts("path") == [("a", "b"), ("b", "c")]
    (tmp_path / "c.cvg").write_text(CONF)
    (tmp_path / "edge.csv").write_text("a,b,confidence\nx,y,0.5\ny,z\n")
    out = cli("run", "c.cvg", "--facts", "edge.csv", "--format", "json", cwd=tmp_path)
    data = json.loads(out.stdout)
    assert ["x", "y", 0.45] in data["confidence"]["path"] and ["y", "z", 0.9] in data["confidence"]["path"]
    text = cli("run", "c.cvg", "--facts", "edge.csv", cwd=tmp_path).stdout
    assert 'path("x", "y")  0.45' in text
    low = cli("run", "c.cvg", "--facts", "edge.csv", "--min-confidence", "0.5", "--format", "json", cwd=tmp_path)
    assert low.returncode == 4


MISSING_ONE = """
input relation q(x: int)
relation p(x: int)
relation r(x: int)
agent weak { confidence 0.4 when q(x) emit p(x) }
agent strong { confidence 0.9 when q(x) emit p(x) }
agent weak2 { confidence 0.3 when q(x) emit r(x) }
agent weak3 { confidence 0.2 when q(x) emit r(x) }
q(1).
"""


def test_min_confidence_counts_the_facts_missing_not_the_weak_derivations(tmp_path: Path) -> None:
    """p(1) has a weak and a strong derivation: it holds, so nothing of it is lost; r(1) has two
    weak ones: one fact is missing. The count was 3 (every weak derivation), and it must not
    follow the agents' order or how many run per cycle."""
    flipped = MISSING_ONE.replace("agent weak {", "agent zz_weak {")
    flipped = flipped.replace("agent strong", "agent a_strong")
    for src in (MISSING_ONE, flipped):
        for per_cycle in (None, 1):
            r = cr.load_text(src, "m.cvg").run(budget=cr.Budget(min_confidence=0.5, max_agents_per_cycle=per_cycle))
            assert (r.tier, [x.details["dropped"] for x in r.reasons]) == ("bounded", [1]), (src, per_cycle)
            assert r.facts("p") == [(1,)] and r.facts("r") == []
            assert r.dropped("p", (1,)) is None and r.dropped("r", (1,))["reason"] == "min_confidence"  # type: ignore[index]
    (tmp_path / "m.cvg").write_text(MISSING_ONE)
    out = cli("run", "m.cvg", "--min-confidence", "0.5", "--max-agents-per-cycle", "1", "--format", "summary", cwd=tmp_path)
    assert out.returncode == 4 and "min_confidence 0.5: 1 fact(s) below it were dropped" in out.stdout
    assert cli("run", "m.cvg", "--min-confidence", "0.3", cwd=tmp_path).returncode == 0  # r(1) at 0.3 holds


def test_a_job_another_budget_stops_also_names_what_min_confidence_left_out(tmp_path: Path) -> None:
    """max_cycles stopped the job, and the fact dropped below min_confidence went unmentioned."""
    src = "input relation q(x: int)\nrelation n(x: int)\nrelation p(x: int)\nn(0).\nn(x + 1) :- n(x).\n" \
          "agent weak { confidence 0.5 when q(x) emit p(x) }\nq(1).\n"
    r = cr.load_text(src, "m.cvg").run(budget=cr.Budget(max_cycles=5, min_confidence=0.9))
    assert r.tier == "bounded"
    assert [x.details["budget"] for x in r.reasons] == ["max_cycles", "min_confidence"]
    assert r.reasons[1].details["dropped"] == 1
    (tmp_path / "m.cvg").write_text(src)
    out = cli("run", "m.cvg", "--max-cycles", "5", "--min-confidence", "0.9", "--format", "json", cwd=tmp_path)
    assert out.returncode == 4
    assert [x["budget"] for x in json.loads(out.stdout)["reasons"]] == ["max_cycles", "min_confidence"]


def test_why_not_explains_dropped_facts() -> None:
    src = """
relation offer(loan: str, rate: float) key(loan) prefer min(rate)
relation quote(loan: str, rate: float)
quote("l1", 5.0). quote("l1", 4.5).
offer(l, r) :- quote(l, r).
"""
    r = cr.load_text(src, "o.cvg").run()
    assert r.dropped("offer", ("l1", 5.0))["reason"] == "dominated"  # type: ignore[index]
    assert "dominated by offer(\"l1\", 4.5)" in r.why_not('offer("l1", 5.0)').message
    bounded = cr.load_text(RUNAWAY, "r.cvg").run(budget=cr.Budget(max_facts=3))
    assert "max_facts budget (3) was exhausted" in bounded.why_not("n(3)").message
    assert bounded.dropped("n", (2,)) is None


def test_two_agents_waiting_for_the_same_tool_call_both_get_it() -> None:
    src = """
input relation a(x: str)
relation s1(x: str, v: int)
relation s2(x: str, v: int)
agent one { when a(x), v = @score(x) emit s1(x, v) }
agent two { when a(x), v = @score(x) emit s2(x, v) }
"""
    calls: list[str] = []

    def score(x: str) -> int:
        calls.append(x)
        return 7

    r = cr.load_text(src, "dup.cvg").run(facts={"a": [("x",), ("y",)]}, tools={"score": score})
    assert r.facts("s1") == r.facts("s2") == [("x", 7), ("y", 7)]
    assert sorted(calls) == ["x", "y"]


def test_a_failed_call_is_retried_only_by_the_agent_that_used_it() -> None:
    src = """
input relation a(x: str)
relation s1(x: str, v: int)
relation s2(x: str, v: int)
agent one { on_failure retry 1 then skip when a(x), v = @f(x) emit s1(x, v) }
agent two { on_failure skip when a(x), v = @g(x) emit s2(x, v) }
"""
    calls: list[tuple[str, str]] = []

    def f(x: str) -> int:
        calls.append(("f", x))
        raise RuntimeError("down")

    def g(x: str) -> int:
        calls.append(("g", x))
        raise RuntimeError("down")

    r = cr.load_text(src, "twofail.cvg").run(facts={"a": [("x",)]}, tools={"f": f, "g": g})
    assert r.tier == "degraded"
    assert sorted(calls) == [("f", "x"), ("f", "x"), ("g", "x")]


def test_confidence_does_not_depend_on_agent_order() -> None:
    body = """
input relation a(x: str)
relation p(x: str)
agent {first} {{ confidence {c1} when a(x) emit p(x) }}
agent {second} {{ confidence {c2} when a(x) emit p(x) }}
"""
    one = cr.load_text(body.format(first="weak", c1=0.5, second="strong", c2=0.9), "c.cvg").run(facts={"a": [("x",)]})
    two = cr.load_text(body.format(first="strong", c1=0.9, second="weak", c2=0.5), "c.cvg").run(facts={"a": [("x",)]})
    assert one.confidence("p", ("x",)) == two.confidence("p", ("x",)) == pytest.approx(0.9)
    assert one.proof("p", ("x",)).agent == "strong"  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", ["invariant", "acceptance"])
def test_an_invariant_that_cannot_be_evaluated_fails_the_job(kind: str) -> None:
    src = f'relation p(x: int)\np(1).\n{kind} i {{ forbid p(x), y = x / 0, y > 1 }}\n'
    r = cr.load_text(src, "inv.cvg").run()
    assert r.tier == "failed" and r.reasons[0].kind == "invariant_error"
    assert "division by zero" in r.reasons[0].message


def test_why_on_a_superseded_fact_says_it_does_not_hold(tmp_path: Path) -> None:
    (tmp_path / "o.cvg").write_text("""
relation offer(loan: str, rate: float) key(loan) prefer min(rate)
relation quote(loan: str, rate: float)
quote("l1", 5.0). quote("l1", 4.5).
offer(l, r) :- quote(l, r).
""")
    out = cli("why", "o.cvg", 'offer("l1", 5.0)', cwd=tmp_path)
    assert out.returncode == 6 and "dominated by" in out.stderr


DETERMINISTIC_FAILURE = """
input relation p(x: int)
relation q(x: int, y: int)
agent inverse {
  on_failure retry 100000000 then POLICY
  when p(x), y = 100 / x
  emit q(x, y)
}
"""


@pytest.mark.parametrize("policy, tier", [("skip", "degraded"), ("abort", "failed")])
def test_a_failure_without_a_failed_tool_call_is_not_retried(policy: str, tier: str, tmp_path: Path) -> None:
    """Another attempt on the same snapshot would fail the same way: `retry 100000000` must not spin
    (it ran for minutes, counting no step), it applies its `then` policy after the one attempt."""
    rs = cr.load_text(DETERMINISTIC_FAILURE.replace("POLICY", policy))
    r = rs.run(facts={"p": [(0,), (4,)]}, trace=True)
    assert r.tier.value == tier
    (reason,) = [x for x in r.reasons if x.kind.startswith("agent_")]
    assert reason.details["attempts"] == 1
    assert reason.details["not_retried"] == "no tool call failed, so another attempt would fail the same way"
    assert reason.message.endswith("(not retried: no tool call failed, so another attempt would fail the same way)")
    events = [e["event"] for e in r.trace]
    assert "retry" not in events and events.count("failure") == 1
    rules = tmp_path / "inverse.cvg"
    rules.write_text(DETERMINISTIC_FAILURE.replace("POLICY", policy))
    facts = tmp_path / "p.json"
    facts.write_text('{"p": [[0], [4]]}')
    proc = subprocess.run([sys.executable, "-m", "converge_rules", "run", str(rules), "--facts", str(facts)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60, env={**os.environ, "NO_COLOR": "1"})
    assert proc.returncode == (3 if policy == "skip" else 5), proc.stdout + proc.stderr
    assert "not retried: no tool call failed" in proc.stdout + proc.stderr
