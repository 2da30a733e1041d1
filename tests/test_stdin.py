"""Standard input and output: `--facts -`, `check -`, `fmt -`, named by --stdin-filename;
through the CLI (a subprocess, as editors and pipes run it) and the API (io.FactText)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

import converge_rules
from converge_rules.io import FactText, guess_format
from converge_rules.syntax.format import format_source

ROOT = Path(__file__).resolve().parent.parent
LOANS = ROOT / "examples" / "loans"
GRAPH = ROOT / "examples" / "graph"


def converge(*args: str, stdin: str | bytes = "", cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=str(ROOT))
    data = stdin.encode("utf-8") if isinstance(stdin, str) else stdin
    proc = subprocess.run([sys.executable, "-m", "converge_rules", *args], cwd=cwd, env=env, input=data,
                          capture_output=True, timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8"))


def digest(out: str) -> str:
    return next(line.split()[1] for line in out.splitlines() if line.startswith("digest: "))


# ------------------------------------------------------------------ --facts -

def test_facts_from_stdin_give_the_same_digest_as_the_file() -> None:
    text = (LOANS / "facts.json").read_text(encoding="utf-8")
    from_file = converge("run", "examples/loans/loans.cvg", "--facts", "examples/loans/facts.json", "--format", "summary")
    piped = converge("run", "examples/loans/loans.cvg", "--facts", "-", "--format", "summary", stdin=text)
    assert from_file.returncode == piped.returncode == 0, piped.stderr
    assert "tier: converged" in piped.stdout
    assert digest(piped.stdout) == digest(from_file.stdout)


def test_jsonl_and_csv_from_stdin() -> None:
    facts = json.loads((LOANS / "facts.json").read_text(encoding="utf-8"))
    lines = "".join(json.dumps({rel: row}) + "\n" for rel, rows in facts.items() for row in rows)
    ref = converge("run", "examples/loans/loans.cvg", "--facts", "examples/loans/facts.json", "--format", "summary")
    jsonl = converge("run", "examples/loans/loans.cvg", "--facts", "-", "--format", "summary", stdin=lines)
    assert jsonl.returncode == 0, jsonl.stderr
    assert digest(jsonl.stdout) == digest(ref.stdout)
    # CSV names its relation by the file name: --stdin-filename gives it; other files mix in
    edge = (GRAPH / "facts" / "edge.csv").read_text(encoding="utf-8")
    ref = converge("run", "examples/graph/graph.cvg", "--facts", "examples/graph/facts", "--format", "summary")
    mixed = converge("run", "examples/graph/graph.cvg", "--facts", "-", "--stdin-filename", "edge.csv",
                     "--facts", "examples/graph/facts/node.csv", "--facts", "examples/graph/facts/parent.tsv",
                     "--format", "summary", stdin=edge)
    assert mixed.returncode == ref.returncode, mixed.stderr
    assert digest(mixed.stdout) == digest(ref.stdout)


def test_stdin_facts_errors_name_the_stdin_file() -> None:
    bad = '{"applicant": [["a1", "lots"]]}'
    proc = converge("run", "examples/loans/loans.cvg", "--facts", "-", "--stdin-filename", "piped.json", stdin=bad)
    assert proc.returncode == 1
    assert proc.stderr.startswith("piped.json:1:23: error[E502]")
    assert "Traceback" not in proc.stderr
    proc = converge("run", "examples/loans/loans.cvg", "--facts", "-", stdin=bad)
    assert proc.returncode == 1 and proc.stderr.startswith("<stdin>:1:23: error[E502]")


def test_stdin_facts_usage_errors() -> None:
    rules = "examples/loans/loans.cvg"
    unknown = converge("run", rules, "--facts", "-", stdin="id,income\na1,3\n")
    assert unknown.returncode == 2 and "--facts-format" in unknown.stderr
    csv_unnamed = converge("run", rules, "--facts", "-", "--facts-format", "csv", stdin="a1,3\n")
    assert csv_unnamed.returncode == 2 and "--stdin-filename RELATION.csv" in csv_unnamed.stderr
    csv_named = converge("run", rules, "--facts", "-", "--facts-format", "csv", "--stdin-filename", "applicant.csv",
                         "--format", "summary", stdin="a1,3000\n")
    assert csv_named.returncode == 0 and "applicant: 1" in csv_named.stdout
    twice = converge("run", rules, "--facts", "-", "--facts", "-", stdin="{}")
    assert twice.returncode == 2 and "only once" in twice.stderr
    stray = converge("run", rules, "--facts-format", "json")
    assert stray.returncode == 2 and "standard input" in stray.stderr
    binary = converge("run", rules, "--facts", "-", "--facts-format", "json", stdin=b'{"a": "\xff"}')
    assert binary.returncode == 1 and "error[E500]: standard input is not valid UTF-8" in binary.stderr


def test_why_and_why_not_read_facts_from_stdin() -> None:
    text = (LOANS / "facts.json").read_text(encoding="utf-8")
    why = converge("why", "examples/loans/loans.cvg", "--facts", "-", 'decision("l1", "reject")', stdin=text)
    assert why.returncode == 0 and 'decision("l1", "reject")' in why.stdout
    why_not = converge("why-not", "examples/loans/loans.cvg", "--facts", "-", 'decision("l1", "approve")', stdin=text)
    assert why_not.returncode == 0 and "approve" in why_not.stdout


def test_verify_reads_the_facts_of_a_stdin_job_from_standard_input(tmp_path: Path) -> None:
    """A result of `run --facts - --format json --proofs` named its facts `<stdin>` with no
    SHA-256, so `verify` could not check it at all ("facts file of the job not found"); with
    `--stdin-filename f.json` and a file f.json on disk, the result recorded the *file's* SHA-256,
    and verify checked the proofs against the file's facts (exit 8 on a faithful result). The
    result now records the text's SHA-256 and `job.stdin`, and verify reads standard input again."""
    (tmp_path / "r.cvg").write_text('relation e(a: str)\nrelation p(a: str)\np(x) :- e(x).\n')
    (tmp_path / "f.json").write_text('{"e": [["disk"]]}')
    piped = '{"e": [["piped"]]}'
    for name in ("<stdin>", "f.json"):
        run = converge("run", "r.cvg", "--facts", "-", "--stdin-filename", name, "--format", "json", "--proofs",
                       stdin=piped, cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        (tmp_path / "res.json").write_text(run.stdout)
        job = json.loads(run.stdout)["job"]
        assert job["stdin"] == {name: "json"} and job["facts"] == [name]
        ok = converge("verify", "res.json", stdin=piped, cwd=tmp_path)
        assert ok.returncode == 0 and ok.stdout == "verified 1 proof of 2 facts\n", ok.stdout + ok.stderr
        other = converge("verify", "res.json", stdin='{"e": [["disk"]]}', cwd=tmp_path)
        assert other.returncode == 1, other.stdout + other.stderr
        assert (f"error[E515]: standard input is not the text the job read as {name} (its SHA-256 differs from the "
                "one the result records): refusing to read it") in other.stderr
    # through the API: the text (or a function that reads it) is given to verify_file
    from converge_rules.explain.checker import verify_file

    assert verify_file(str(tmp_path / "res.json"), piped).ok
    assert verify_file(str(tmp_path / "res.json"), lambda: piped).ok
    with pytest.raises(converge_rules.ConvergeError) as err:
        verify_file(str(tmp_path / "res.json"))
    assert err.value.diagnostics[0].code == "E500" and "from standard input" in err.value.diagnostics[0].message


def test_api_fact_text_is_a_facts_source() -> None:
    rules = converge_rules.load([str(LOANS / "loans.cvg")])
    text = (LOANS / "facts.json").read_text(encoding="utf-8")
    from_text = rules.run(fact_files=[FactText("<stdin>", text, "json")])
    from_file = rules.run(fact_files=[str(LOANS / "facts.json")])
    assert from_text.digest == from_file.digest
    assert from_text.tier.value == "converged"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["a", "b"]), st.integers(), min_size=1), min_size=1, max_size=4))
def test_guess_format_tells_json_from_json_lines(docs: list[dict[str, int]]) -> None:
    whole = json.dumps(docs if len(docs) > 1 else docs[0])
    assert guess_format(whole) == "json"
    if len(docs) > 1:
        assert guess_format("\n".join(json.dumps(d) for d in docs) + "\n") == "jsonl"
    assert guess_format("x,y\n") is None
    assert guess_format("anything", "edge.csv") == "csv"


# ------------------------------------------------------------------ check - and fmt -

def test_fmt_stdin_prints_the_formatted_text() -> None:
    messy = 'relation  edge(a:str,b:str)\nedge("a","b").   # kept\n'
    proc = converge("fmt", "-", stdin=messy)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == format_source(messy, "<stdin>")
    loans = (LOANS / "loans.cvg").read_text(encoding="utf-8")
    assert converge("fmt", "-", stdin=loans).stdout == format_source(loans, "<stdin>")
    check = converge("fmt", "--check", "-", "--stdin-filename", "messy.cvg", stdin=messy)
    assert check.returncode == 1 and check.stdout == "would reformat messy.cvg\n"
    assert converge("fmt", "--check", "-", stdin=proc.stdout).returncode == 0
    diff = converge("fmt", "--diff", "-", stdin=messy)
    assert diff.returncode == 1 and diff.stdout.startswith("--- <stdin> (original)")


def test_fmt_stdin_syntax_error_writes_nothing_to_stdout() -> None:
    proc = converge("fmt", "-", "--stdin-filename", "rules/broken.cvg", stdin="relation a(x: int\n")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.startswith("rules/broken.cvg:1:")
    assert "error[E100]" in proc.stderr
    mixed = converge("fmt", "-", "examples/loans/loans.cvg", stdin="")
    assert mixed.returncode == 2


def test_check_stdin_uses_the_stdin_filename() -> None:
    text = (ROOT / "examples" / "failures" / "undefined_relation.cvg").read_text(encoding="utf-8")
    proc = converge("check", "-", "--stdin-filename", "examples/failures/piped.cvg", stdin=text)
    assert proc.returncode == 1
    assert proc.stdout.startswith("examples/failures/piped.cvg:13:27: error[E200]: undefined relation 'edges'")
    assert "path(x, z) :- path(x, y), edges(y, z)." in proc.stdout  # the source line is quoted from stdin
    as_json = converge("check", "-", "--format", "json", stdin=text)
    doc = json.loads(as_json.stdout)
    assert doc["diagnostics"][0]["span"]["file"] == "<stdin>" and doc["summary"]["files"] == 1
    # imports resolve from the --stdin-filename's directory
    graph = (ROOT / "examples" / "stdlib" / "graph_example.cvg").read_text(encoding="utf-8")
    ok = converge("check", "-", "--stdin-filename", "examples/stdlib/piped.cvg", stdin=graph)
    assert ok.returncode == 0 and ok.stdout.strip() == "no problems found"
    # inline suppressions apply to the text read
    lint = 'relation e(a: str, b: str)\nrelation p(a: str)\ne("a", "b").\np(x) :- e(x, y).  # converge: disable=W100\n'
    quiet = converge("check", "-", stdin=lint)
    assert "W100" not in quiet.stdout
    assert "W100" in converge("check", "-", stdin=lint.replace("  # converge: disable=W100", "")).stdout
    twice = converge("check", "-", "-", stdin="")
    assert twice.returncode == 2


def test_check_refuses_standard_input_named_as_a_file_it_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`converge check a.cvg - --stdin-filename a.cvg` reported two texts under one name, and a
    problem of both once (diagnostics are unique by position and text): 3 errors counted as 2.
    A name given to standard input may not name a file the check reads from disk (given, or
    imported by a file given): a usage error, exit 2. The API refuses it as a ValueError."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "a.cvg").write_text("relation a(x: int)\na(1).\nb(2).\n")
    (tmp_path / "main.cvg").write_text('import "lib/lib.cvg" as lib\nrelation r(x: str)\nr(x) :- lib.p(x).\n')
    (tmp_path / "lib" / "lib.cvg").write_text('relation p(x: str)\np("x").\n')
    other = "relation a(x: int)\na(1).\nb(2).\nc(3).\n"
    for args, clash, fmt in ((["a.cvg", "-", "--stdin-filename", "a.cvg"], "a.cvg", "text"),
                             (["./a.cvg", "-", "--stdin-filename", str(tmp_path / "a.cvg")], "a.cvg", "json"),
                             ([".", "-", "--stdin-filename", "a.cvg"], "a.cvg", "sarif"),
                             (["main.cvg", "-", "--stdin-filename", "lib/lib.cvg"], "lib/lib.cvg", "text")):
        proc = converge("check", *args, "--format", fmt, stdin=other, cwd=tmp_path)  # refused before any output
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert proc.stdout == "" and "Traceback" not in proc.stderr
        assert f"and the rule file {clash!r}" in proc.stderr and "would share one name" in proc.stderr, proc.stderr
    # under a name of its own, every problem of both texts is reported
    both = converge("check", "a.cvg", "-", "--stdin-filename", "piped.cvg", "--format", "json", stdin=other, cwd=tmp_path)
    doc = json.loads(both.stdout)
    assert [(d["span"]["file"], d["span"]["line"]) for d in doc["diagnostics"]] == [
        ("a.cvg", 3), ("piped.cvg", 3), ("piped.cvg", 4)]
    assert doc["summary"] == {"errors": 3, "warnings": 0, "files": 2} and both.returncode == 1
    # the editor's case: the buffer alone, named as the file it will be saved to
    alone = converge("check", "-", "--stdin-filename", "lib/lib.cvg", stdin='relation p(x: str)\np("y").\n', cwd=tmp_path)
    assert alone.returncode == 0 and alone.stdout == "no problems found\n", alone.stdout + alone.stderr
    # the API
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="would share one name"):
        converge_rules.check(["a.cvg"], texts={"a.cvg": other})
    with pytest.raises(ValueError, match="imported by a file given"):
        converge_rules.check(["main.cvg"], texts={"lib/lib.cvg": other})
    diags = converge_rules.check(["a.cvg"], texts={"piped.cvg": other})
    assert [(d.span.file, d.span.line) for d in diags] == [("a.cvg", 3), ("piped.cvg", 3), ("piped.cvg", 4)]
    assert [d.span.file for d in converge_rules.check(texts={"b.cvg": other})] == ["b.cvg", "b.cvg"]
