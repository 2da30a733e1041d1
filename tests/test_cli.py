"""The converge command line, run as a user runs it (a subprocess)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOANS = ROOT / "examples" / "loans"


def converge(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "converge_rules", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def write(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.write_text(text)
    return str(path)


def test_version_and_help_with_examples() -> None:
    import importlib.metadata

    import converge_rules

    # --version prints converge_rules.__version__ (fast); it must be the installed distribution's version.
    assert converge_rules.__version__ == importlib.metadata.version("converge-rules")
    assert converge("--version").stdout == f"converge, version {converge_rules.__version__}\n"
    for cmd in ("run", "why", "check"):
        out = converge(cmd, "--help")
        assert out.returncode == 0 and "Example: converge" in out.stdout


def test_run_loans_converges() -> None:
    out = converge("run", "examples/loans/loans.cvg", "--facts", "examples/loans/facts.json")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("tier: converged\nreasons: none\ncycles: ")
    assert "digest: " in out.stdout and "decision" in out.stdout


def test_run_json_summary_relation_filter_and_out(tmp_path: Path) -> None:
    js = converge("run", "examples/loans/loans.cvg", "--facts", "examples/loans/facts.json", "--format", "json", "--proofs")
    data = json.loads(js.stdout)
    assert data["tier"] == "converged" and len(data["digest"]) == 64
    assert data["proofs"]["decision"] and all("agent" in p for p in data["proofs"]["decision"])
    summary = converge("run", "examples/loans/loans.cvg", "--facts", "examples/loans/facts.json", "--format", "summary")
    assert f"digest: {data['digest']}" in summary.stdout
    assert f"  decision: {len(data['facts']['decision'])}" in summary.stdout
    only = converge("run", "examples/loans/loans.cvg", "--facts", "examples/loans/facts.json",
                    "--relation", "decision", "--format", "json")
    assert list(json.loads(only.stdout)["facts"]) == ["decision"]
    out_dir = tmp_path / "out"
    converge("run", "examples/loans/loans.cvg", "--facts", "examples/loans/facts.json", "--format", "summary",
             "--out", str(out_dir))
    rows = list(csv.reader((out_dir / "decision.csv").open()))
    assert rows[0] == ["loan", "outcome"] and len(rows) - 1 == len(data["facts"]["decision"])
    bad = converge("run", "examples/loans/loans.cvg", "--facts", "examples/loans/facts.json", "--relation", "nope")
    assert bad.returncode == 2 and "no relation named 'nope'" in bad.stderr


def test_why_prints_tree_down_to_inputs_in_every_format() -> None:
    base = ("why", "examples/loans/loans.cvg", "--facts", "examples/loans/facts.json", 'decision("l1", "reject")')
    text = converge(*base)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith('decision("l1", "reject")  [decision#2 at examples/loans/loans.cvg:')
    assert "[input, examples/loans/facts.json" in text.stdout
    assert json.loads(converge(*base, "--format", "json").stdout)["text"] == 'decision("l1", "reject")'
    assert converge(*base, "--format", "dot").stdout.startswith("digraph proof {")
    assert converge(*base, "--format", "mermaid").stdout.startswith("graph BT")
    shallow = converge(*base, "--depth", "1").stdout
    assert "..." in shallow


def test_why_absent_and_malformed_facts() -> None:
    base = ("why", "examples/loans/loans.cvg", "--facts", "examples/loans/facts.json")
    absent = converge(*base, 'decision("l1", "maybe")')
    assert absent.returncode == 6 and "does not hold" in absent.stderr
    no_input = converge(*base, 'loan("zz", "a1", 1)')
    assert no_input.returncode == 6 and "no such input fact was given" in no_input.stderr
    bad = converge(*base, 'decision("l1")')
    assert bad.returncode == 1 and "error[E300]" in bad.stderr
    unparsable = converge(*base, "decision(")
    assert unparsable.returncode == 1 and "error[E100]" in unparsable.stderr


@pytest.mark.parametrize("body,tier,code,kind", [
    ("p(1).\ninvariant none \"never\" { forbid q(_) }\nq(x) :- p(x).\n", "failed", 5, "invariant"),
    ("p(1).\nacceptance some \"need q(2)\" { forbid p(x), not q(2) }\nq(x) :- p(x).\n", "failed", 5, "acceptance"),
    ("p(1).\nq(x + 1) :- p(x).\np(x) :- q(x).\nbudget { max_cycles = 7 }\n", "bounded", 4, "budget"),
    ("p(1).\nq(x / 0) :- p(x).\n", "failed", 5, "agent_failed"),
])
def test_tiers_and_exit_codes(tmp_path: Path, body: str, tier: str, code: int, kind: str) -> None:
    rules = write(tmp_path, "r.cvg", "relation p(x: int)\nrelation q(x: int)\n" + body)
    out = converge("run", rules, "--format", "json")
    assert out.returncode == code, out.stderr
    data = json.loads(out.stdout)
    assert data["tier"] == tier and data["reasons"][0]["kind"] == kind


def test_max_facts_flag(tmp_path: Path) -> None:
    rules = write(tmp_path, "r.cvg", "relation n(x: int)\nn(0).\nn(x + 1) :- n(x).\n")
    out = converge("run", rules, "--max-facts", "50", "--format", "json")
    data = json.loads(out.stdout)
    assert out.returncode == 4 and data["reasons"][0]["budget"] == "max_facts"
    assert sum(data["counts"].values()) == 50
    again = converge("run", rules, "--max-facts", "50", "--format", "json")
    assert again.stdout == out.stdout


def test_bad_facts_file_is_a_located_diagnostic(tmp_path: Path) -> None:
    facts = write(tmp_path, "facts.json", '{"applicant": [["a1", "lots"]]}')
    out = converge("run", "examples/loans/loans.cvg", "--facts", facts)
    assert out.returncode == 1
    assert "facts.json:1:" in out.stderr and "E502" in out.stderr and "Traceback" not in out.stderr
    missing = converge("run", "examples/loans/loans.cvg", "--facts", str(tmp_path / "nope.json"))
    assert missing.returncode == 1 and "Traceback" not in missing.stderr


def test_check_command(tmp_path: Path) -> None:
    ok = converge("check", "examples/loans/loans.cvg")
    assert ok.returncode == 0
    bad = write(tmp_path, "bad.cvg", "relation p(x: int)\np(y) :- q(y).\n")
    out = converge("check", bad, "--format", "json")
    assert out.returncode == 1 and json.loads(out.stdout)["diagnostics"][0]["code"] == "E200"


def test_missing_rule_file_and_usage_errors() -> None:
    out = converge("run", "does-not-exist.cvg")
    assert out.returncode == 1 and "E001" in out.stderr
    assert converge("run").returncode == 2
    assert converge("why", "examples/loans/loans.cvg").returncode == 2


def test_why_all_and_support() -> None:
    base = ("why", "examples/graph/graph.cvg", "--facts", "examples/graph/facts")
    facts = json.loads(converge("run", "examples/graph/graph.cvg", "--facts", "examples/graph/facts", "--format", "json",
                                "--proofs", "all").stdout)
    multi = [p for p in facts["proofs"]["path"] if p.get("alternatives")]
    assert multi, "the graph example has a path with two derivations"
    fact = 'path(' + ", ".join(json.dumps(v) for v in multi[0]["fact"]) + ')'
    out = converge(*base, fact, "--all")
    assert out.returncode == 0 and "derivation 2 of" in out.stdout
    assert json.loads(converge(*base, fact, "--all", "--limit", "1", "--format", "json").stdout)["derivations"][0]
    support = converge(*base, fact, "--support")
    assert "rests on" in support.stdout and "edge(" in support.stdout


def test_an_unhandled_os_error_is_an_internal_error_not_a_traceback(tmp_path: Path) -> None:
    """An OSError that is not the output failing (those exit 74) and that no command turned into a
    diagnostic is a bug: one line and exit 70, like any other, never a raw traceback."""
    script = (
        "import errno, sys\n"
        "import converge_rules.cli as c\n"
        "@c.cli.command('boom')\n"
        "def boom():\n"
        "    raise PermissionError(errno.EACCES, 'Permission denied', '/somewhere')\n"
        "c.main(['boom'])\n")
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("CONVERGE_DEBUG", None)
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 70, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("converge: internal error: PermissionError: [Errno 13] Permission denied: '/somewhere'")


def test_a_rule_file_given_twice_is_one_file(tmp_path: Path) -> None:
    """`converge run rules/*.cvg rules/main.cvg`, a relative and an absolute path, or a symlink
    to a file also given: the file is read once, not reported as declaring everything twice."""
    import converge_rules

    rules = write(tmp_path, "rules.cvg", 'relation p(x: int)\nrelation q(x: int)\np(1).\nq(x) :- p(x).\n')
    (tmp_path / "alias.cvg").symlink_to("rules.cvg")
    once = converge_rules.load(rules).run()
    for paths in ([rules, rules], [rules, str(tmp_path / "alias.cvg")], [rules, str(tmp_path / "." / "rules.cvg")]):
        assert converge_rules.load(paths).run().digest == once.digest
    alone = converge("run", "rules.cvg", "--format", "json", cwd=tmp_path)
    twice = converge("run", "rules.cvg", str(tmp_path / "rules.cvg"), "alias.cvg", "--format", "json", cwd=tmp_path)
    assert alone.returncode == twice.returncode == 0, twice.stderr
    assert json.loads(twice.stdout)["digest"] == json.loads(alone.stdout)["digest"]
    assert converge("why", "rules.cvg", "rules.cvg", "q(1)", cwd=tmp_path).returncode == 0


def test_dash_as_an_output_path(tmp_path: Path) -> None:
    """`report -o -` writes the page to standard output; a file option that cannot mean standard
    output (--trace, --record) refuses '-' with E507 instead of creating a file named '-'."""
    rules, facts = str(ROOT / "examples/loans/loans.cvg"), str(ROOT / "examples/loans/facts.json")
    page = converge("report", rules, "--facts", facts, "-o", "-", cwd=tmp_path)
    assert page.returncode == 0, page.stderr
    assert page.stdout.startswith("<!DOCTYPE html>") and page.stdout.rstrip().endswith("</html>")
    assert page.stderr.startswith("wrote the report to standard output: tier converged")
    for option in ("--trace", "--record"):
        proc = converge("run", rules, "--facts", facts, option, "-", "--format", "summary", cwd=tmp_path)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "-: error[E507]: refusing to write a file named '-'" in proc.stderr
    assert not (tmp_path / "-").exists()


def test_a_rule_file_whose_name_is_not_utf8_runs_and_explains_with_the_compile_cache_on(tmp_path: Path) -> None:
    """`converge run r\\xff.cvg` was an internal error (exit 70) whenever the compile cache was on (the
    default): the cache key encoded the path as strict UTF-8. JSON answers on a strict UTF-8 stdout
    name the file with the JSON escape of its lone surrogate, and verify reads the file back."""
    rules = Path(os.fsdecode(bytes(tmp_path) + b"/r\xff.cvg"))
    rules.write_text('relation edge(a: str, b: str)\nrelation path(a: str, b: str)\nedge("a", "b"). edge("b", "c").\n'
                     "path(x, y) :- edge(x, y).\npath(x, z) :- path(x, y), edge(y, z).\n")
    env = dict(os.environ, NO_COLOR="1", PYTHONIOENCODING="utf-8:strict", CONVERGE_CACHE_DIR=str(tmp_path / "cache"))

    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "converge_rules", *args], cwd=tmp_path, env=env,
                              capture_output=True, timeout=120)

    for attempt in ("cold", "warm"):  # the second run reads the program from the cache
        out = run("run", os.fsdecode(b"r\xff.cvg"), "--format", "json", "--proofs")
        assert (out.returncode, out.stderr) == (0, b""), (attempt, out.stderr)
        result = json.loads(out.stdout.decode("utf-8"))
        assert os.fsencode(result["job"]["rules"][0]) == b"r\xff.cvg" and len(result["facts"]["path"]) == 3
    assert any((tmp_path / "cache").iterdir())
    (tmp_path / "result.json").write_bytes(out.stdout)
    checked = run("verify", "result.json")
    assert checked.returncode == 0 and b"verified" in checked.stdout, checked.stderr
    for args in (("why", 'path("a", "c")', "--format", "json"), ("query", "path(x, y)", "--format", "json"),
                 ("graph", "--format", "json")):
        shown = run(args[0], os.fsdecode(b"r\xff.cvg"), *args[1:])
        assert shown.returncode == 0 and shown.stderr == b"", (args, shown.stderr)
        json.loads(shown.stdout.decode("utf-8"))


@pytest.mark.parametrize("command", ["why", "why-not", "query"])
def test_an_empty_record_path_is_an_unreadable_record_not_a_silent_re_run(command: str, tmp_path: Path) -> None:
    """`converge why --record "$UNSET" FACT` took the empty path as "no record" and ran the job
    from the rules instead (here: the fact as rule file, E001); it is a record that cannot be read."""
    out = converge(command, "--record", "", 'path("a", "b")', cwd=tmp_path)
    assert out.returncode == 1 and "E610" in out.stderr, out.stderr
