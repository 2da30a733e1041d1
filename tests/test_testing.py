"""`converge test`, its reports (text, JSON, JUnit, coverage) and the pytest plugin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import converge_rules as cr
from converge_rules.testing import discover, load_file, run_paths
from converge_rules.testing.runner import selected

pytest_plugins = ["pytester"]


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """The inner pytest runs set pytest-asyncio's loop scope as pyproject.toml does (unset, it warns)."""
    monkeypatch.setenv("PYTEST_ADDOPTS", "-o asyncio_default_fixture_loop_scope=function")
    return pytester

ROOT = Path(__file__).resolve().parent.parent
DATA = "tests/data/testing"
BROKEN = f"{DATA}/broken/policy.cvg"
PASSING = f"{DATA}/passing/rules.cvg"


def converge_subprocess(*args: str, seed: str = "0") -> subprocess.CompletedProcess[str]:
    """`python -m converge_rules ...` in a fresh interpreter."""
    env = {**os.environ, "PYTHONHASHSEED": seed, "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "converge_rules", *args], cwd=ROOT, capture_output=True, text=True, env=env)


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def converge(*args: str) -> Ran:
    """The same command in-process (faster), through the real click group."""
    from click.testing import CliRunner

    from converge_rules.cli import cli

    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return Ran(result.exit_code, result.stdout, result.stderr)


@pytest.fixture(autouse=True)
def _in_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


# ------------------------------------------------------------------ discovery and loading

# Rule files that do not parse are made on the fly, so that every .cvg file
# in the repository parses (and `converge fmt --check` can cover them all).
SYNTAX_ERROR_WITH_TEST = 'relation p(x: str)\np(x) :- p(x)\n\ntest "never parses" {\n  expect { p("a"). }\n}\n'
SYNTAX_ERROR_WITHOUT_TEST = "# broken on purpose, and without test blocks\nrelation p(x: str\n"


@pytest.fixture
def broken_dir(tmp_path: Path) -> Path:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "syntax_error.cvg").write_text(SYNTAX_ERROR_WITH_TEST)
    (tmp_path / "ignored").mkdir()
    (tmp_path / "ignored" / "no_tests.cvg").write_text(SYNTAX_ERROR_WITHOUT_TEST)
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.cvg").write_text(SYNTAX_ERROR_WITH_TEST)
    return tmp_path


def test_discover_sorts_recurses_and_rejects_missing_paths(broken_dir: Path) -> None:
    files = discover([DATA])
    assert files == sorted(files)
    assert f"{DATA}/bad/compile_error.cvg" in files and PASSING in files
    found = discover([str(broken_dir)])
    assert found == [str(broken_dir / "bad" / "syntax_error.cvg"), str(broken_dir / "ignored" / "no_tests.cvg")]
    assert discover([PASSING, DATA + "/passing"]) == [PASSING]  # no duplicates
    with pytest.raises(FileNotFoundError):
        discover(["no/such/dir"])


def test_discover_takes_regular_rule_files_only(tmp_path: Path) -> None:
    """A FIFO would block the run forever; an editor's hidden lock file (a dangling link) is no
    test file; a visible dangling link is kept, so the run reports it missing (E001)."""
    (tmp_path / "a.cvg").write_text('input relation p(x: int)\ntest "t" { given { p(1). } expect { p(1). } }\n')
    os.mkfifo(tmp_path / "pipe.cvg")
    os.symlink("user@host.1234", tmp_path / ".#a.cvg")
    assert discover([str(tmp_path)]) == [str(tmp_path / "a.cvg")]
    os.symlink("gone.cvg", tmp_path / "b.cvg")
    assert discover([str(tmp_path)]) == [str(tmp_path / "a.cvg"), str(tmp_path / "b.cvg")]
    report = run_paths([str(tmp_path)])
    assert [o.status for o in report.outcomes] == ["passed"]
    assert [d.code for f in report.load_errors for d in f.diagnostics] == ["E001"]


def test_a_directory_names_its_files_as_check_and_the_pytest_plugin_do(tmp_path: Path) -> None:
    """`converge test .` (the pre-commit hook) named tests `./a.cvg::t`, and so the JUnit
    classnames, where `converge check .` and pytest say `a.cvg`."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.cvg").write_text('input relation p(x: int)\ntest "t" { given { p(1). } expect { p(1). } }\n')
    out = subprocess.run([sys.executable, "-m", "converge_rules", "test", ".", "--junit", "r.xml"], cwd=tmp_path,
                         capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"}, timeout=120)
    assert (out.returncode, out.stdout) == (0, "PASS  sub/a.cvg::t\n\n1 passed (1 test in 1 file)\n"), out.stderr
    case = ET.parse(tmp_path / "r.xml").getroot().find("testsuite/testcase")
    assert case is not None and (case.get("classname"), case.get("file")) == ("sub/a.cvg", "sub/a.cvg")
    assert discover([str(tmp_path) + "/./sub/"]) == [str(tmp_path / "sub" / "a.cvg")]


def test_files_without_test_blocks_are_skipped_even_when_broken(broken_dir: Path) -> None:
    assert load_file(str(broken_dir / "ignored" / "no_tests.cvg")) is None
    assert load_file("examples/failures/syntax_error.invalid") is None
    assert load_file("tests/golden/diagnostics/undefined_relation.cvg") is None
    bad = load_file(str(broken_dir / "bad" / "syntax_error.cvg"))
    assert bad is not None and not bad.ok and bad.diagnostics[0].code == "E100"
    compile_error = load_file(f"{DATA}/bad/compile_error.cvg")
    assert compile_error is not None and compile_error.diagnostics[0].code == "E200"


@pytest.mark.parametrize("gap", [" # the name follows\n", "\n# a comment line\n\n", " #\r"])
def test_a_test_block_with_a_comment_before_its_name_is_run_not_skipped(gap: str, tmp_path: Path,
                                                                       pytester: pytest.Pytester) -> None:
    """The grammar allows comments between `test` and its name; such a failing test must fail,
    not be skipped as a file without test blocks ("no tests ran", exit 5)."""
    text = f'relation p(x: int)\ntest{gap}"p holds" {{ expect {{ p(1). }} }}\n'
    path = tmp_path / "rules.cvg"
    path.write_text(text, newline="")
    loaded = load_file(str(path))
    assert loaded is not None and [t.name for t in loaded.tests] == ["p holds"]
    assert [o.status for o in run_paths([str(path)]).outcomes] == ["failed"]
    out = converge_subprocess("test", str(path))
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"FAIL  {path}::p holds" in out.stdout
    pytester.path.joinpath("rules.cvg").write_text(text, newline="")
    pytester.runpytest().assert_outcomes(failed=1)


# A rule file broken on purpose whose only mention of a test is in a comment or a string.
MENTIONS_A_TEST = [
    '# see test "x" in the other file\nrelation p(x: str\n',
    'relation p(x: str)\np("a test \\"quoted\\" here").\np("test ").\nq(\n',
    '# test "a"\r# test "b"\r\nrelation p(x: str\r\n',
]


@pytest.mark.parametrize("text", MENTIONS_A_TEST)
def test_a_test_mentioned_in_a_comment_or_a_string_is_no_test_block(text: str, tmp_path: Path,
                                                                    pytester: pytest.Pytester) -> None:
    """Only a test block makes a file a test file: a comment or a string that says `test "`
    must not make a broken rule file stop a test run (exit 2) or be a collection error."""
    from converge_rules.testing import has_test_blocks

    assert not has_test_blocks(text)
    (tmp_path / "broken.cvg").write_text(text, newline="")
    (tmp_path / "good.cvg").write_text('relation p(x: int)\np(1).\ntest "p" { expect { p(1). } }\n')
    assert load_file(str(tmp_path / "broken.cvg")) is None
    report = run_paths([str(tmp_path)])
    assert not report.load_errors and report.passed == 1
    assert report.skipped_files == [str(tmp_path / "broken.cvg")]
    out = converge_subprocess("test", str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed (1 test in 1 file)" in out.stdout and "could not be loaded" not in out.stderr
    pytester.path.joinpath("broken.cvg").write_text(text, newline="")
    pytester.path.joinpath("good.cvg").write_text((tmp_path / "good.cvg").read_text())
    pytester.runpytest().assert_outcomes(passed=1)


def test_deciding_whether_a_file_has_tests_takes_linear_time(tmp_path: Path) -> None:
    """`test` followed by many `#` (a banner comment) once made the filter backtrack
    exponentially: `converge test` hung on a file without any test block."""
    from converge_rules.testing import has_test_blocks

    banner = "# test " + "#" * 5000 + "\n"
    (tmp_path / "banner.cvg").write_text(banner + "relation p(x: int)\np(1).\n")
    out = subprocess.run([sys.executable, "-m", "converge_rules", "test", str(tmp_path), "--allow-no-tests"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)  # a hang fails here
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no tests ran" in out.stdout
    assert not has_test_blocks(banner) and not has_test_blocks("test " + "#" * 5000)
    assert has_test_blocks("test " + "#" * 5000 + '\n"name" {}')


# ---- the filter against the parser, on generated files
_NEWLINES = st.sampled_from(["\n", "\r", "\r\n"])
_TEXT_BITS = st.sampled_from(["test", " ", '"', "#", "x", "test \"", "{", "\t", "contest", "_test", "1"])


@st.composite
def _string_literal(draw: st.DrawFn) -> str:
    """A string literal of the grammar whose text talks about tests (escaped quotes and backslashes)."""
    bits = draw(st.lists(_TEXT_BITS, max_size=6))
    return '"' + "".join(b.replace("\\", "\\\\").replace('"', '\\"') for b in bits) + '"'


@st.composite
def _gap(draw: st.DrawFn, nl: str) -> str:
    """What the grammar allows between `test` and its name: whitespace and comments."""
    parts = draw(st.lists(st.one_of(st.sampled_from([" ", "\t", "\f", nl]),
                                    st.lists(_TEXT_BITS, max_size=4).map(lambda b: "#" + "".join(b) + nl)),
                          max_size=4))
    return "".join(parts)


@st.composite
def _rule_file(draw: st.DrawFn) -> tuple[str, bool]:
    """A rule file (LF, CR or CRLF line ends) that may hold test blocks and mentions of tests in
    comments and strings, sometimes broken; and whether a test block (or a bare `test`) was
    written into it."""
    nl = draw(_NEWLINES)
    lines = ["relation p(x: str)", "relation test_q(x: str)"]
    wrote_test = False
    for kind in draw(st.lists(st.sampled_from(["fact", "comment", "test", "agent", "broken"]), max_size=6)):
        if kind == "fact":
            lines.append(f"p({draw(_string_literal())}).  # {''.join(draw(st.lists(_TEXT_BITS, max_size=4)))}")
        elif kind == "comment":
            lines.append("#" + "".join(draw(st.lists(_TEXT_BITS, max_size=6))))
        elif kind == "agent":  # a name `test...` that is no test block, and strings that say test
            lines.append(f"agent contest {draw(_string_literal())} {{ when p(x) emit test_q(x) }}")
        elif kind == "test":
            wrote_test = True
            name = draw(_string_literal())
            lines.append(f"test{draw(_gap(nl))}{name} {{ given {{ p({draw(_string_literal())}). }} }}")
        else:  # a syntax error; a bare `test` may start a test block with a string that follows
            broken = draw(st.sampled_from(["p(", "relation r(x: str", '"unterminated test ', "test", "}"]))
            wrote_test = wrote_test or broken == "test"
            lines.append(broken)
    return nl.join(lines) + nl, wrote_test


@settings(max_examples=int(os.environ.get("CVG_EXAMPLES", "200")), deadline=None)
@given(_rule_file())
def test_the_test_block_filter_never_misses_what_the_parser_finds(case: tuple[str, bool]) -> None:
    """For any file: when the parser finds a test block, ``has_test_blocks`` says so; when the
    file mentions tests only in comments, strings and names, it does not."""
    from converge_rules.diagnostics import ConvergeError
    from converge_rules.syntax import ast
    from converge_rules.syntax.parser import parse_text
    from converge_rules.testing import has_test_blocks

    text, wrote_test = case
    try:
        parsed = any(isinstance(item, ast.TestDecl) for item in parse_text(text, "gen.cvg").items)
    except ConvergeError:
        parsed = None
    if parsed:
        assert has_test_blocks(text)
    if not wrote_test:
        assert not has_test_blocks(text) and not parsed
    if wrote_test and parsed is not None:
        assert has_test_blocks(text)


def test_k_selects_by_substring_or_glob() -> None:
    assert selected("a.cvg", "big loan", "big")
    assert selected("a.cvg", "big loan", "a.cvg::*loan")
    assert not selected("a.cvg", "big loan", "small")
    assert selected("a.cvg", "anything", None)


# ------------------------------------------------------------------ converge test

def test_examples_pass() -> None:
    out = converge_subprocess("test", "examples/")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert sum(1 for line in lines if line.startswith("PASS  ")) == 10
    assert "PASS  examples/loans/loans.cvg::an approval recorded up front contradicts a rejection" in lines
    assert lines[-1] == "10 passed (10 tests in 2 files)"


def test_broken_expectation_prints_the_why_not_explanation() -> None:
    out = converge("test", BROKEN)
    assert out.returncode == 1
    text = out.stdout
    assert f"FAIL  {BROKEN}::a big loan is approved (wrong on purpose)" in text
    assert "  expected fact missing: decision(\"l1\", \"approve\")\n    why not:\n" in text
    assert "✗ 2. not risk(l, _)  no partial match satisfies it" in text
    assert '✗ not risk("l1", _) fails: risk("l1", "amount above 5x income") holds' in text
    assert "proof of risk(\"l1\", \"amount above 5x income\"):" in text
    # given facts point at the test block that gave them
    assert f'loan("l1", "a1", 6000)  [input, {BROKEN}:20]' in text
    assert "unexpected fact present: decision(\"l2\", \"approve\")" in text
    assert "expected tier failed, got converged" in text
    assert "expected violation 'single_decision' was not reported" in text
    assert "note: the run failed" in text
    assert f"ERROR {BROKEN}::a facts file that does not exist" in text
    assert "error[E500]: facts file not found" in text
    assert text.splitlines()[-1] == "1 passed, 4 failed, 1 error (6 tests in 1 file)"


def test_output_is_deterministic() -> None:
    a = converge_subprocess("test", DATA + "/broken", DATA + "/passing", "--coverage", seed="1")
    b = converge_subprocess("test", DATA + "/broken", DATA + "/passing", "--coverage", seed="999")
    assert a.returncode == b.returncode == 1
    assert a.stdout == b.stdout


def test_k_filters_tests() -> None:
    out = converge("test", BROKEN, "-k", "passes")
    assert out.returncode == 0
    assert out.stdout.splitlines()[0] == f"PASS  {BROKEN}::this one passes"
    assert out.stdout.splitlines()[-1] == "1 passed, 5 deselected (1 test in 1 file)"
    glob = converge("test", "examples/", "-k", "*graph.cvg::*sample*")
    assert glob.returncode == 0
    assert glob.stdout.splitlines()[0] == "PASS  examples/graph/graph.cvg::the sample graph"
    none = converge("test", "examples/", "-k", "no such test")  # a mistyped pattern fails CI, as in pytest
    assert none.returncode == 5 and none.stdout.strip() == "no tests ran (10 deselected)"
    assert "no test ran" in none.stderr and "--allow-no-tests" in none.stderr
    allowed = converge("test", "examples/", "-k", "no such test", "--allow-no-tests")
    assert allowed.returncode == 0 and allowed.stdout.strip() == "no tests ran (10 deselected)"
    as_json = converge("test", "examples/", "-k", "no such test", "--format", "json")
    assert as_json.returncode == 5 and json.loads(as_json.stdout)["summary"]["passed"] == 0


def test_junit_has_one_testcase_per_test_block(tmp_path: Path) -> None:
    junit = tmp_path / "out" / "junit.xml"
    junit.parent.mkdir()
    out = converge("test", "examples/", BROKEN, "--junit", str(junit))
    assert out.returncode == 1
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert list(suites) == ["examples/graph/graph.cvg", "examples/loans/loans.cvg", BROKEN]
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == 16 == int(root.get("tests"))  # type: ignore[arg-type]
    loans = suites["examples/loans/loans.cvg"]
    assert [c.get("classname") for c in loans] == ["examples/loans/loans.cvg"] * 6
    assert all(float(c.get("time")) >= 0 for c in cases)  # type: ignore[arg-type]
    broken = {c.get("name"): c for c in suites[BROKEN]}
    failure = broken["a big loan is approved (wrong on purpose)"].find("failure")
    assert failure is not None
    assert failure.get("message") == 'expected fact missing: decision("l1", "approve")'
    assert "proof of risk(\"l1\", \"amount above 5x income\"):" in (failure.text or "")
    assert broken["a facts file that does not exist"].find("error") is not None
    assert broken["this one passes"].find("failure") is None
    assert (suites[BROKEN].get("tests"), suites[BROKEN].get("failures"), suites[BROKEN].get("errors")) == ("6", "4", "1")
    assert [p.name for p in junit.parent.iterdir()] == ["junit.xml"]  # written atomically, no temp file left


def test_junit_counts_match_the_testcases_and_any_text_parses() -> None:
    """Generated reports (passes, failures, errors, files that do not compile; names and messages
    of any code points, `]]>`, controls, lone surrogates): the XML parses, every count equals
    the testcases it counts, and names read back as their escaped form."""
    from hypothesis import given, settings, strategies as st

    from converge_rules.diagnostics import Diagnostic, Span
    from converge_rules.testing.runner import Failure, FileTests, Report, TestOutcome, _xml_text

    texts = st.text(alphabet=st.characters(codec=None), max_size=12) | st.sampled_from(["]]>", "\x00\x0b\x1f", "\ud800", "a\nb"])
    outcomes = st.lists(st.tuples(st.integers(0, 2), texts, st.sampled_from(["", "missing", "error"]), texts), max_size=6)

    @settings(max_examples=60, deadline=None)
    @given(outcomes, st.lists(texts, max_size=2))
    def prop(cases: list, broken: list) -> None:
        files, outs = [], []
        for i, (file_no, name, kind, message) in enumerate(cases):
            failures = [Failure(kind, message, message + "\n" + name)] if kind else []
            outs.append(TestOutcome(f"f{file_no}.cvg", name or f"t{i}", i + 1, failures))
        files = [FileTests(f) for f in sorted({o.file for o in outs})]
        files += [FileTests(f"bad{i}{t}.cvg", diagnostics=[Diagnostic("E100", t or "x", Span("b.cvg", 1, 1))])
                  for i, t in enumerate(broken)]
        report = Report(files, outs)
        root = ET.fromstring(report.junit_xml().encode("utf-8"))
        cases_ = list(root.iter("testcase"))
        count = lambda node, tag: sum(1 for c in node.iter("testcase") if c.find(tag) is not None)  # noqa: E731
        for node in [root, *root.iter("testsuite")]:
            assert int(node.get("tests", "-1")) == sum(1 for _ in node.iter("testcase"))
            assert int(node.get("failures", "-1")) == count(node, "failure")
            assert int(node.get("errors", "-1")) == count(node, "error")
        by_file = sorted(outs, key=lambda o: [f.path for f in files].index(o.file))  # one suite per file, in order
        assert [c.get("name") for c in cases_ if c.get("name") != "(compile)"] == [_xml_text(o.name) for o in by_file]
        assert len(cases_) == len(outs) + len(broken)

    prop()


def test_json_report() -> None:
    out = converge("test", BROKEN, "--format", "json")
    assert out.returncode == 1
    data = json.loads(out.stdout)
    assert data["format"] == "converge-test/1"
    assert data["summary"] == {"passed": 1, "failed": 4, "errors": 1, "tests": 6, "deselected": 0, "load_errors": 0}
    first = data["tests"][0]
    assert first["status"] == "failed" and first["line"] == 19
    missing = first["failures"][0]
    assert missing["kind"] == "missing" and missing["fact"] == 'decision("l1", "approve")'
    assert missing["why_not"]["agents"][0]["blocking_literal"] == 'not risk("l1", _)'
    kinds = [f["kind"] for t in data["tests"] for f in t["failures"]]
    assert sorted(set(kinds)) == ["error", "missing", "tier", "unexpected", "violation"]


def test_json_report_names_a_test_file_whose_name_is_not_utf8(tmp_path: Path) -> None:
    """On a strict UTF-8 stdout too: the lone surrogate of the name is written as a JSON escape."""
    path = os.fsdecode(bytes(tmp_path) + b"/c\xff.cvg")
    Path(path).write_text('input relation p(a: str)\ntest "t" { given { p("a"). } expect { p("b"). } }\n')
    env = {**os.environ, "NO_COLOR": "1", "PYTHONIOENCODING": "utf-8:strict"}
    out = subprocess.run([sys.executable, "-m", "converge_rules", "test", str(tmp_path), "--format", "json",
                          "--junit", str(tmp_path / "r.xml")], cwd=ROOT, capture_output=True, env=env, timeout=120)
    assert (out.returncode, out.stderr) == (1, b"")
    report = json.loads(out.stdout.decode("utf-8"))
    assert os.fsencode(report["tests"][0]["file"]) == os.fsencode(path)
    assert report["tests"][0]["status"] == "failed"
    suite = ET.parse(tmp_path / "r.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("name", "").endswith("c\\udcff.cvg")


def test_a_test_name_with_a_line_break_cannot_forge_a_status_line(tmp_path: Path) -> None:
    """`grep '^FAIL'` finds the failing tests: a passing test named "ok\\nFAIL  forged" printed a
    line `FAIL  forged` of its own."""
    (tmp_path / "a.cvg").write_text('input relation p(x: int)\n'
                                    'test "ok\\nFAIL  forged::x" { given { p(1). } expect { p(1). } }\n'
                                    'test "bad\\nline" { given { p(1). } expect { p(2). } }\n')
    out = converge_subprocess("test", str(tmp_path / "a.cvg"))
    assert out.returncode == 1
    status = [line for line in out.stdout.splitlines() if line.startswith(("PASS", "FAIL", "ERROR"))]
    assert status == [f"PASS  {tmp_path}/a.cvg::ok\\nFAIL  forged::x", f"FAIL  {tmp_path}/a.cvg::bad\\nline"]
    assert f"\n{tmp_path}/a.cvg::bad\\nline  ({tmp_path}/a.cvg:3)\n" in out.stdout
    report = json.loads(converge_subprocess("test", str(tmp_path / "a.cvg"), "--format", "json").stdout)
    assert [t["name"] for t in report["tests"]] == ["ok\nFAIL  forged::x", "bad\nline"]  # the names themselves


def test_coverage_lists_never_fired_agents() -> None:
    out = converge("test", DATA + "/passing", "--coverage")
    assert out.returncode == 0, out.stdout
    assert (f"  {PASSING}: 3/4 agents (75.0%)\n"
            f"    never fired: never_used at {PASSING}:12\n"
            "  total: 3/4 agents (75.0%)\n") in out.stdout
    data = json.loads(converge("test", DATA + "/passing", "--coverage", "--format", "json").stdout)
    cov = data["coverage"]["files"][0]
    assert cov["fired"] == ["reach#1", "reach#2", "open#1"]
    assert cov["never_fired"] == [{"agent": "never_used", "file": PASSING, "line": 12}]
    examples = converge("test", "examples/", "--coverage")
    assert "  total: 13/13 agents (100.0%)" in examples.stdout


def test_coverage_threshold() -> None:
    low = converge("test", DATA + "/passing", "--coverage-threshold", "80")
    assert low.returncode == 1
    assert "coverage 75.0% below the threshold of 80%" in low.stdout
    ok = converge("test", DATA + "/passing", "--coverage-threshold", "75")
    assert ok.returncode == 0
    assert "coverage 75.0% meets the threshold of 75%" in ok.stdout


def test_load_errors_exit_2(broken_dir: Path, tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    out = converge("test", DATA + "/bad", str(broken_dir / "bad"), DATA + "/passing", "--junit", str(junit))
    assert out.returncode == 2
    compile_cases = [c for c in ET.parse(junit).getroot().iter("testcase") if c.get("name") == "(compile)"]
    assert [c.get("classname") for c in compile_cases] == [f"{DATA}/bad/compile_error.cvg", str(broken_dir / "bad" / "syntax_error.cvg")]
    assert all(c.find("error") is not None for c in compile_cases)
    assert "error[E200]: undefined relation 'q'" in out.stderr
    assert "error[E100]" in out.stderr
    assert "2 test files could not be loaded" in out.stderr
    assert "PASS  tests/data/testing/passing/rules.cvg::reach is transitive" in out.stdout  # the others still run
    assert converge("test", "no/such/path").returncode == 2
    ignored = converge("test", str(broken_dir / "ignored"))
    assert ignored.stdout.strip() == "no tests ran" and ignored.returncode == 5


def test_api_report() -> None:
    report = run_paths([DATA + "/passing", BROKEN])
    assert [o.status for o in report.outcomes] == ["passed"] * 3 + ["failed"] * 4 + ["error", "passed"]
    assert report.outcomes[0].id == f"{PASSING}::reach is transitive"
    violated = run_paths(["examples/loans/loans.cvg"], pattern="contradicts")
    assert [o.tier for o in violated.outcomes] == ["failed"] and violated.outcomes[0].passed


def test_given_files_resolve_against_the_test_file(tmp_path: Path) -> None:
    # from another working directory, relative to the rule file
    out = subprocess.run([sys.executable, "-m", "converge_rules", "test", str(ROOT / "examples")],
                         cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


TOOL_RULES = """input relation a(x: str)
relation s(x: str, v: int)
s(x, v) :- a(x), v = @score(x).
test "scores" { given { a("p"). } expect { s("p", 3). } }
"""


def test_a_test_that_cannot_run_says_why_not_that_its_facts_did_not_load(tmp_path: Path) -> None:
    """A rule calling a tool nobody gave (E220) is a test error; its message named the facts."""
    (tmp_path / "t.cvg").write_text(TOOL_RULES)
    report = run_paths([str(tmp_path / "t.cvg")])
    (failure,) = report.outcomes[0].failures
    assert failure.kind == "error"
    assert failure.message == "the test could not run: error[E220] unknown tool 'score': the rules call it but no tool of that name was given"
    out = converge_subprocess("test", str(tmp_path / "t.cvg"), "--junit", str(tmp_path / "r.xml"))
    assert out.returncode == 1 and "ERROR " in out.stdout and "facts could not be loaded" not in out.stdout
    error = ET.parse(tmp_path / "r.xml").getroot().find("testsuite/testcase/error")
    assert error is not None and error.get("message", "").startswith("the test could not run: error[E220]")
    # facts that do not load still say so, with the file and line
    (tmp_path / "u.cvg").write_text('input relation a(x: int)\ntest "bad facts" { given "nope.json" }\n')
    (failure,) = run_paths([str(tmp_path / "u.cvg")]).outcomes[0].failures
    assert failure.message.startswith("the test could not run: error[E500] facts file not found: ")


def test_tools_are_given_to_every_test_as_for_run(tmp_path: Path) -> None:
    """`converge test --tools MODULE` (as `run`, `query`, `batch`): rules that call tools are testable."""
    (tmp_path / "t.cvg").write_text(TOOL_RULES)
    (tmp_path / "scoring.py").write_text("def score(x):\n    return len(x) + 2\n")
    report = run_paths([str(tmp_path / "t.cvg")], tools={"score": lambda x: len(x) + 2})
    assert [o.status for o in report.outcomes] == ["passed"]
    out = converge_subprocess("test", str(tmp_path / "t.cvg"), "--tools", str(tmp_path / "scoring.py"))
    assert (out.returncode, out.stderr) == (0, ""), out.stdout
    assert out.stdout.endswith("1 passed (1 test in 1 file)\n")
    bad = converge_subprocess("test", str(tmp_path / "t.cvg"), "--tools", str(tmp_path / "missing.py"))
    assert bad.returncode == 2 and "Invalid value for --tools" in bad.stderr


def test_given_files_of_a_linked_rule_file_resolve_as_its_imports_do(tmp_path: Path) -> None:
    """A rule file reached through a symbolic link: its imports resolved next to the file it
    links to, its `given "FILE"` next to the link (a test error, E500)."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "rules" / "f.json").write_text('{"p": [[1]]}')
    (tmp_path / "rules" / "lib.cvg").write_text("relation q(x: int)\nq(2).\n")
    (tmp_path / "rules" / "x.cvg").write_text('import "./lib.cvg" as lib\ninput relation p(x: int)\n'
                                              'test "t" { given "f.json" expect { p(1). lib.q(2). } }\n')
    os.symlink("../rules/x.cvg", tmp_path / "other" / "x.cvg")
    report = run_paths([str(tmp_path / "other" / "x.cvg")])
    assert [(o.status, [f.message for f in o.failures]) for o in report.outcomes] == [("passed", [])]
    out = subprocess.run([sys.executable, "-m", "converge_rules", "test", "other/x.cvg"], cwd=tmp_path,
                         capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"}, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    # not a link: paths stay as the user spelled them
    plain = run_paths([str(tmp_path / "rules" / "x.cvg")])
    assert plain.outcomes[0].passed and plain.files[0].tests[0].given_files == (str(tmp_path / "rules" / "f.json"),)


# ------------------------------------------------------------------ pytest plugin

RULES = '''
input relation edge(a: str, b: str)
relation path(a: str, b: str)
path(x, y) :- edge(x, y).
path(x, z) :- path(x, y), edge(y, z).

test "path is transitive" {
  given { edge("a", "b"). edge("b", "c"). }
  expect { path("a", "c"). }
}

test "wrong on purpose" {
  given { edge("a", "b"). }
  expect { path("b", "a"). }
}
'''


def test_plugin_collects_and_runs_test_blocks(pytester: pytest.Pytester) -> None:
    pytester.makefile(".cvg", rules=RULES)
    pytester.makefile(".cvg", broken_without_tests="relation p(x: str\n")
    pytester.makepyfile(test_py="def test_python():\n    assert True\n")
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "*rules.cvg::path is transitive PASSED*",
        "*rules.cvg::wrong on purpose FAILED*",
    ])
    out = result.stdout.str()
    assert 'expected fact missing: path("b", "a")' in out
    assert "why not:" in out and 'no fact matches edge("b", "a") (edge is an input relation)' in out
    assert "Traceback" not in out


def test_plugin_reports_a_broken_test_file_as_collection_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".cvg", broken='relation p(x: str)\np(x) :- q(x).\ntest "t" { expect { p("a"). } }\n')
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*rule file does not compile:*", "*undefined relation 'q'*"])


def test_pytest_runs_the_examples() -> None:
    # `-n 0`: the project's addopts start two xdist workers, whose -vv lines read "[gw0] [ 10%] PASSED <item>";
    # in one process each line is "<item> PASSED", as asserted (and ten rule tests need no workers)
    out = subprocess.run([sys.executable, "-m", "pytest", "examples/", "-p", "no:cacheprovider", "-vv", "-n", "0"],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "examples/loans/loans.cvg::a loan above five times income is rejected PASSED" in out.stdout
    assert "10 passed" in out.stdout


BUREAU_RULES = '''
input relation applicant(a: str)
relation score(a: str, s: int)
score(a, s) :- applicant(a), s = @credit_score(a).

test "scores come from the bureau" {
  given { applicant("a1"). }
  expect { score("a1", 720). }
}
'''


def test_plugin_and_command_give_tools_to_rule_tests(pytester: pytest.Pytester) -> None:
    """Rules that call a tool could not be tested under pytest (every item E220): tools come from
    --converge-tools or the ini option converge_tools, as `converge test --tools` gives them."""
    pytester.makefile(".cvg", rules=BUREAU_RULES)
    pytester.makepyfile(bureau="def credit_score(a):\n    return {'a1': 720}[a]\n")
    without = pytester.runpytest("-p", "no:cacheprovider")
    without.assert_outcomes(failed=1)
    assert "E220" in without.stdout.str()
    given = pytester.runpytest("-p", "no:cacheprovider", "--converge-tools", str(pytester.path / "bureau.py"))
    given.assert_outcomes(passed=1)
    pytester.makeini(f"[pytest]\nconverge_tools =\n    {pytester.path / 'bureau.py'}\n")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    bad = pytester.runpytest("-p", "no:cacheprovider", "--converge-tools", "no_such_module_here")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR and "converge tools: cannot load tools" in bad.stderr.str()
    cli = converge("test", str(pytester.path / "rules.cvg"), "--tools", str(pytester.path / "bureau.py"))
    assert cli.returncode == 0 and "PASS" in cli.stdout


def test_a_rule_file_that_cannot_be_read_is_an_error_for_the_plugin_as_for_the_command(tmp_path: Path,
                                                                                      pytester: pytest.Pytester) -> None:
    """`converge test` reports a .cvg file that is not UTF-8 (it cannot tell whether the file
    holds test blocks) as a load error, exit 2; the pytest plugin ignored it, and the same
    rules passed under pytest. Both report it, with its E002 diagnostic."""
    data = b'relation p(x: int)\n# caf\xe9\ntest "t" { expect { p(1). } }\n'
    (tmp_path / "latin1.cvg").write_bytes(data)
    out = converge_subprocess("test", str(tmp_path))
    assert out.returncode == 2 and "error[E002]: rule file is not valid UTF-8 (byte 0xe9)" in out.stderr
    pytester.path.joinpath("latin1.cvg").write_bytes(data)
    pytester.path.joinpath("good.cvg").write_text('relation p(x: int)\np(1).\ntest "p" { expect { p(1). } }\n')
    result = pytester.runpytest("--continue-on-collection-errors")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*rule file does not compile:*", "*error[[]E002[]]: rule file is not valid UTF-8 (byte 0xe9)*"])
    assert pytester.runpytest().ret != 0


def test_a_second_expect_tier_is_e211(tmp_path: Path) -> None:
    """`expect tier converged` then `expect tier failed` in one test ran the test against the
    last one only, the first silently dropped: it is now E211 at the second, and the file a
    load error (exit 2), as for any test file that does not compile."""
    from cli_process import converge

    path = tmp_path / "t.cvg"
    path.write_text('relation p(x: int)\np(1).\ntest "t" {\n  expect tier converged\n  expect tier failed\n}\n')
    loaded = load_file(str(path))
    assert loaded is not None and [(d.code, d.span.line, d.message) for d in loaded.diagnostics] == [
        ("E211", 5, "a test has one `expect tier` clause")]
    out = converge("test", "t.cvg", cwd=tmp_path)
    assert out.returncode == 2 and "t.cvg:5:3: error[E211]: a test has one `expect tier` clause" in out.stderr


def test_expect_violation_of_an_unknown_invariant_is_e214_in_check(tmp_path: Path) -> None:
    """A test that expects a violation of a rule nobody declared could never pass: check says so."""
    from cli_process import converge

    text = ('relation p(x: int)\np(7).\ninvariant small "p is small" {\n  forbid p(x), x > 5\n}\n'
            'test "typo" {\n  expect violation smal\n}\ntest "ok" {\n  expect violation small\n}\n')
    with pytest.raises(cr.ConvergeError) as err:
        cr.load_text(text, "t.cvg")
    [diag] = err.value.diagnostics
    assert diag.code == "E214" and (diag.span.line, diag.span.col) == (7, 3) and "declared: small" in diag.message
    (tmp_path / "t.cvg").write_text(text)
    done = converge("check", "t.cvg", cwd=tmp_path)
    assert done.returncode == 1 and "t.cvg:7:3: error[E214]" in done.stdout
    (tmp_path / "t.cvg").write_text(text.replace("violation smal\n", "violation small\n"))
    done = converge("test", "t.cvg", cwd=tmp_path)
    assert done.returncode == 0 and "2 passed" in done.stdout


def test_a_failure_detail_holding_a_line_separator_is_indented_as_one_line(tmp_path: Path) -> None:
    """The report splits a failure's detail at line feeds only: U+2028 in a value is no line break."""
    from cli_process import converge

    (tmp_path / "t.cvg").write_text('relation p(x: str)\nrelation q(x: str)\nq(x) :- p(x), x != "a\\u2028b".\n'
                                    'p("a\\u2028b").\ntest "t" {\n  expect { q("a\\u2028b"). }\n}\n')
    done = converge("test", "t.cvg", cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stdout.split("\n")
    shown = [line for line in lines if "head matches the fact" in line]
    assert shown and all(line.startswith("        head matches") and line.endswith('"') for line in shown)
    assert not any(line.startswith("b") for line in lines)  # no line starts after the separator
    assert "1 cycle)" in done.stdout


def test_a_given_file_that_does_not_exist_is_w600_in_check(tmp_path: Path) -> None:
    """A test whose facts file is missing could never pass: check warns at the clause naming it."""
    from cli_process import converge

    (tmp_path / "r.cvg").write_text('input relation p(x: int)\nrelation q(x: int)\nq(x) :- p(x).\n'
                                    'test "t" {\n  given "cases/a.json"\n  expect { q(1). }\n}\n'
                                    'test "ok" {\n  given "b.json"\n  expect { q(2). }\n}\n')
    (tmp_path / "b.json").write_text('{"p": [[2]]}')
    [warning] = [d for d in cr.check([str(tmp_path / "r.cvg")]) if d.code == "W600"]
    assert (warning.span.line, warning.span.col) == (5, 3) and "cases" in warning.message
    done = converge("check", "r.cvg", cwd=tmp_path)
    assert done.returncode == 0 and "r.cvg:5:3: warning[W600]" in done.stdout
    (tmp_path / "cases").mkdir()
    (tmp_path / "cases" / "a.json").write_text('{"p": [[1]]}')
    done = converge("check", "r.cvg", cwd=tmp_path)
    assert done.returncode == 0 and "W600" not in done.stdout
    assert converge("test", "r.cvg", cwd=tmp_path).returncode == 0
