"""Edge cases of evaluation found by using the product adversarially (API and CLI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import converge_rules as cr

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=path)
    return subprocess.run([sys.executable, "-m", "converge_rules", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


# ------------------------------------------------------------------ a tool's variable tested by another `=`

TOOL_TESTED = """
relation p(x: int)
relation five(x: int)
relation next(x: int)
p(1). p(2).
agent a { when p(x), y = @score(x), y = 5 emit five(x) }
agent b { when p(x), y = @score(x), y = x + 4 emit next(x) }
"""


def score(x: int) -> int:
    return 5


def test_a_tool_variable_compared_with_another_expression_is_a_test_not_a_failure() -> None:
    # `y = 5` could bind y first; the tool call must still bind it (a tool call
    # cannot be a filter), and `y = 5` tests the tool's value.
    r = cr.load_text(TOOL_TESTED, "t.cvg").run(tools={"score": score})
    assert r.tier == "converged", r.reasons
    assert r.facts("five") == [(1,), (2,)]
    assert r.facts("next") == [(1,)]
    p = r.proof("next", (1,))
    assert p is not None and p.bindings == {"x": 1, "y": 5}


def test_a_tool_variable_tested_by_another_expression_from_the_cli(tmp_path: Path) -> None:
    (tmp_path / "rules.cvg").write_text(TOOL_TESTED)
    (tmp_path / "tools.py").write_text("def score(x):\n    return 5\n")
    out = cli("run", "rules.cvg", "--tools", "tools", "--format", "json", "--proofs", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    data = json.loads(out.stdout)
    assert data["tier"] == "converged" and data["facts"]["five"] == [[1], [2]] and data["facts"]["next"] == [[1]]
    (tmp_path / "result.json").write_text(out.stdout)
    verify = cli("verify", "result.json", cwd=tmp_path)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_two_tool_calls_binding_one_variable_are_e221(tmp_path: Path) -> None:
    src = """
relation p(x: int)
relation q(x: int, y: int)
p(1).
agent a { when p(x), y = @score(x), y = @score(x + 1) emit q(x, y) }
"""
    (tmp_path / "rules.cvg").write_text(src)
    diags = cr.check([str(tmp_path / "rules.cvg")])
    assert [(d.code, d.span.line, d.span.col) for d in diags if d.severity == "error"] == [("E221", 5, 41)]
    out = cli("check", "rules.cvg", cwd=tmp_path)
    assert out.returncode == 1
    assert "rules.cvg:5:41: error[E221]: 'y' is already bound by the tool call at" in out.stdout + out.stderr


def test_a_tool_call_inside_an_aggregate_says_so(tmp_path: Path) -> None:
    """`n = count { q(t), v = @tool(t) }` was E221 "a tool call stands alone on the right of
    `=`", which it does: the message now names what is wrong, the aggregate."""
    src = """
relation q(x: int)
relation p(n: int)
q(1).
p(n) :- n = count { q(t), v = @score(t) }.
"""
    (tmp_path / "rules.cvg").write_text(src)
    diags = cr.check([str(tmp_path / "rules.cvg")])
    assert [(d.code, d.span.line, d.span.col, d.message) for d in diags if d.severity == "error"] == [
        ("E221", 5, 31, "a tool call cannot stand inside an aggregate")]
    out = cli("check", "rules.cvg", cwd=tmp_path)
    assert out.returncode == 1
    assert "rules.cvg:5:31: error[E221]: a tool call cannot stand inside an aggregate" in out.stdout + out.stderr


# ------------------------------------------------------------------ budgets and time limits must be real numbers

import math  # noqa: E402

import pytest  # noqa: E402

COUNT = "relation n(x: int)\nn(0).\nn(x + 1) :- n(x), x < 5.\n"


@pytest.mark.parametrize("kw", [
    {"max_cycles": -1}, {"max_facts": -5}, {"max_bytes": -1}, {"max_steps": -1}, {"max_cycles": 1.5},
    {"max_cycles": True}, {"max_agents_per_cycle": 0}, {"min_confidence": 2.0}, {"min_confidence": math.nan},
    {"timeout": math.nan}, {"timeout": math.inf}, {"timeout": 0}, {"timeout": -1}, {"timeout": "5"},
])
def test_an_invalid_api_budget_is_refused_not_run(kw: dict) -> None:
    # The rule files (E206) and the command line refuse these; so does Budget(...):
    # a negative max_cycles or a NaN timeout used to run and give a made-up tier.
    name = next(iter(kw))
    with pytest.raises(ValueError, match=name):
        cr.Budget(**kw)


def test_valid_api_budgets_still_work() -> None:
    rs = cr.load_text(COUNT, "t.cvg")
    assert rs.run(budget=cr.Budget(max_cycles=0)).tier == "bounded"
    assert rs.run(budget=cr.Budget(max_cycles=2, max_facts=0, min_confidence=0, timeout=60)).tier == "bounded"
    assert rs.run(budget=cr.Budget(min_confidence=1.0, max_agents_per_cycle=1, timeout=0.5e3)).tier == "converged"


@pytest.mark.parametrize("kw", [{"tool_timeout": math.inf}, {"tool_timeout": math.nan}, {"tool_timeout": 0},
                                {"tool_timeout": -1}, {"workers": 1.5}, {"workers": True}])
def test_invalid_tool_settings_are_refused(kw: dict) -> None:
    rs = cr.load_text(COUNT, "t.cvg")
    with pytest.raises(ValueError, match=next(iter(kw))):
        rs.run(**kw)


@pytest.mark.parametrize("option", ["--timeout", "--tool-timeout", "--min-confidence"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_cli_time_limits_and_confidence_must_be_finite(tmp_path: Path, option: str, value: str) -> None:
    # `--tool-timeout inf` was an internal error (exit 70), `--tool-timeout nan` a call that never
    # timed out, `--timeout nan` and `--min-confidence nan` were silently ignored.
    (tmp_path / "rules.cvg").write_text(COUNT)
    out = cli("run", "rules.cvg", option, value, cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"Invalid value for '{option}'" in out.stderr and "Traceback" not in out.stderr


# ------------------------------------------------------------------ the job's timeout bounds the tool calls too

import threading  # noqa: E402
import time  # noqa: E402

SLOW = """
relation p(x: int)
relation q(x: int, y: int)
p(1). p(2).
agent a { when p(x), y = @slow(x) emit q(x, y) }
"""


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_a_job_timeout_stops_a_tool_call_that_is_still_running(isolation: str) -> None:
    # The job's timeout used to wait for the tool's own time-out (30 s by default,
    # forever with tool_timeout=None) before the job could stop.
    release = threading.Event()

    def slow(x: int) -> int:
        release.wait(60)
        return x

    rs = cr.load_text(SLOW, "t.cvg")
    begun = time.monotonic()
    try:
        r = rs.run(tools={"slow": slow}, budget=cr.Budget(timeout=0.5), tool_timeout=None, tool_isolation=isolation,
                   trace=True)
    finally:
        release.set()
    assert time.monotonic() - begun < 10
    assert r.tier == "bounded" and r.facts("q") == []
    assert [x.details["budget"] for x in r.reasons] == ["timeout"]
    calls = [e for e in r.trace if e["event"] == "tool"]
    assert calls and all("the job's timeout ran out" in e["error"] for e in calls)


def test_a_job_timeout_stops_a_slow_tool_from_the_cli(tmp_path: Path) -> None:
    (tmp_path / "rules.cvg").write_text(SLOW)
    (tmp_path / "slowtools.py").write_text("import time\n\ndef slow(x):\n    time.sleep(60)\n    return x\n")
    begun = time.monotonic()
    out = cli("run", "rules.cvg", "--tools", "slowtools", "--timeout", "0.5", "--format", "json", cwd=tmp_path)
    assert time.monotonic() - begun < 20
    assert out.returncode == 4, out.stdout + out.stderr
    data = json.loads(out.stdout)
    assert data["tier"] == "bounded" and data["reasons"][0]["budget"] == "timeout"


# ------------------------------------------------------------------ E400 names the variable that is really unbound

def test_an_unbound_group_variable_is_the_unsafe_one_not_the_aggregate_result(tmp_path: Path) -> None:
    # `n = count {...}` is unsafe because `k` is bound nowhere; E400 used to name `n`.
    (tmp_path / "rules.cvg").write_text("relation sale(id: str, s: str, a: int)\nrelation c(k: str, n: int)\n"
                                        "c(k, n) :- n = count { sale(_, k, _) }.\n")
    diags = [d for d in cr.check([str(tmp_path / "rules.cvg")]) if d.severity == "error"]
    assert [(d.code, d.span.line, d.span.col) for d in diags] == [("E400", 3, 32)]
    assert "unsafe variable 'k'" in diags[0].message
    out = cli("check", "rules.cvg", cwd=tmp_path)
    assert out.returncode == 1 and "rules.cvg:3:32: error[E400]: unsafe variable 'k'" in out.stdout + out.stderr


# ------------------------------------------------------------------ a tool's error text that UTF-8 cannot hold

SURROGATE_TOOL = """
input relation p(x: str)
relation q(x: str, y: str)
agent a { when p(x), y = @surr(x) emit q(x, y) }
"""


def test_a_tool_error_with_a_lone_surrogate_is_shown_escaped(tmp_path: Path) -> None:
    """The reason, the trace and the JSON result are written as UTF-8: a tool's exception text
    holding a lone surrogate appears as its escape (it was an internal error when written)."""
    def surr(x: str) -> str:
        raise ValueError("bad \ud800")

    r = cr.load_text(SURROGATE_TOOL, "t.cvg").run(facts={"p": [("a",)]}, tools={"surr": surr})
    assert r.tier == "failed"
    assert "tool surr raised ValueError: bad \\ud800" in r.reasons[0].message
    (tmp_path / "rules.cvg").write_text(SURROGATE_TOOL)
    (tmp_path / "surrtools.py").write_text('def surr(x):\n    raise ValueError("bad \\ud800")\n')
    (tmp_path / "p.json").write_text('{"p": [["a"]]}')
    out = cli("run", "rules.cvg", "--facts", "p.json", "--tools", "surrtools", "--format", "json", cwd=tmp_path)
    assert out.returncode == 5, out.stdout + out.stderr
    assert json.loads(out.stdout)["reasons"][0]["error"] == "tool surr raised ValueError: bad \\ud800"


def test_tools_given_as_a_module_are_its_functions_and_anything_else_is_a_clear_type_error() -> None:
    """run(tools=<module>) was `TypeError: argument of type 'module' is not iterable` from deep inside;
    a module now gives its public functions (as `--tools module` does), other values a TypeError
    that says what tools must be, before any job runs (run, Session, run_many)."""
    import types

    module = types.ModuleType("bureau")
    exec("def credit_score(a):\n    return {'a1': 720, 'a2': 655}[a]\n"
         "def _private(a):\n    raise AssertionError\n", module.__dict__)
    rules = ('input relation applicant(a: str)\nrelation score(a: str, s: int)\n'
             'score(a, s) :- applicant(a), s = @credit_score(a).\n')
    rs = cr.load_text(rules, "bureau.cvg")
    facts = {"applicant": [("a1",), ("a2",)]}
    by_module = rs.run(facts, tools=module)
    assert by_module.tier == "converged" and by_module.facts("score") == [("a1", 720), ("a2", 655)]
    assert by_module.digest == rs.run(facts, tools={"credit_score": module.credit_score}).digest
    session = cr.Session(sources=[("bureau.cvg", rules)], tools=module)
    assert session.decide(facts).result.digest == by_module.digest
    with pytest.raises(TypeError, match="tools must"):
        cr.Session(sources=[("bureau.cvg", rules)], tools=[module.credit_score])
    for bad, words in ((["credit_score"], "mapping of tool names"), ({"credit_score": 3}, "'credit_score'"),
                       ({1: print}, "1")):
        with pytest.raises(TypeError, match="tools must") as err:
            rs.run(facts, tools=bad)
        assert words in str(err.value)
        with pytest.raises(TypeError, match="tools must"):
            list(rs.run_many([("j", facts)], tools=bad))


JOIN = "input relation p(x: int)\nrelation r(a: int)\nr(a) :- p(a), p(b), p(c), a + b + c = -1.\n"


def test_the_timeout_stops_a_join_that_derives_nothing(tmp_path: Path) -> None:
    """The time-out was checked only as facts were counted: this join derives nothing, so with
    --timeout 1 it ran its 64 million iterations (about 6 s) and ended converged. Loops now count
    their iterations when the job has a time-out (and only then: no cost without one)."""
    import time

    rs = cr.load_text(JOIN, "j.cvg")
    facts = {"p": [(i,) for i in range(400)]}
    start = time.monotonic()
    r = rs.run(facts, budget=cr.Budget(timeout=0.3))
    assert time.monotonic() - start < 4, "the join ran on past its time-out"  # it takes 6 s or more without one
    assert r.tier == "bounded" and [x.details["budget"] for x in r.reasons] == ["timeout"]
    assert "in cycle 1; the cycle was not committed" in r.reasons[0].message
    assert rs.run({"p": [(i,) for i in range(20)]}, budget=cr.Budget(timeout=30)).tier == "converged"
    (tmp_path / "j.cvg").write_text(JOIN)
    (tmp_path / "p.json").write_text(json.dumps({"p": [[i] for i in range(400)]}))
    out = cli("run", "j.cvg", "--facts", "p.json", "--timeout", "0.3", "--format", "summary", cwd=tmp_path)
    assert out.returncode == 4, out.stdout + out.stderr
    assert "timeout of 0.3 s reached in cycle 1" in out.stdout


def test_a_clause_given_twice_in_an_agent_is_e209(tmp_path: Path) -> None:
    """`priority 1 ... priority 5` (or two `confidence`, two `on_failure`) was accepted, the
    later clause silently replacing the first; a second `when` was already E209."""
    src = """relation p(x: int)
agent a {
  priority 1
  confidence 0.5
  on_failure skip
  emit p(1)
  priority 5
  confidence 0.9
  on_failure abort
}
"""
    (tmp_path / "rules.cvg").write_text(src)
    diags = cr.check([str(tmp_path / "rules.cvg")])
    assert [(d.code, d.span.line, d.message, d.notes) for d in diags] == [
        ("E209", 7, "an agent has one `priority` clause", (f"first given at {tmp_path / 'rules.cvg'}:3:3",)),
        ("E209", 8, "an agent has one `confidence` clause", (f"first given at {tmp_path / 'rules.cvg'}:4:3",)),
        ("E209", 9, "an agent has one `on_failure` clause", (f"first given at {tmp_path / 'rules.cvg'}:5:3",))]
    out = cli("check", "rules.cvg", cwd=tmp_path)
    assert out.returncode == 1 and "rules.cvg:7:3: error[E209]: an agent has one `priority` clause" in out.stdout
