"""Discover and run ``test`` blocks; report as text, JSON, JUnit XML, with agent coverage.

A test block belongs to the file that contains it: the file is compiled as
the only root (imports included), and each of its tests runs that program
over the test's ``given`` facts and files only (plus facts written in the
rule files). Then:

- every ``expect`` fact must hold (a missing one is reported with its
  why-not explanation);
- every ``expect not`` fact must not hold (a present one with its proof);
- ``expect tier T`` compares the tier; ``expect violation NAME`` needs an
  invariant or acceptance rule NAME among the violations, and implies
  ``expect tier failed`` unless the test says otherwise; a test without
  either expects tier ``converged``.

Discovery: files are taken as given; directories are searched recursively
for ``*.cvg`` (regular files only, hidden ones skipped), in sorted order. A file is a
test file when its text contains a test block: the word ``test`` followed by
a string, outside comments and strings (``has_test_blocks``); one that does
not is skipped without being parsed, so broken rule files without tests
(whatever their comments and strings say about tests) never stop a test run.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from ..values import dumps_json
from ..textsafe import one_line
from ..diagnostics import Diagnostic

# The tokens of the grammar (grammar/converge.lark) that can hide the text `test "`, and the
# start of a test block itself. Comments and strings end at a line end, LF or CR (the parser
# reads CRLF and a lone CR as LF); an unterminated string, a syntax error, ends with its line
# here. Whitespace (the grammar's WS) and comments may stand between `test` and its name.
# Every repetition is possessive: the scan is linear in the text, whatever it holds
# (`test ###...` once took exponential time to reject).
TEST_SCAN = re.compile(r"""
      \#[^\r\n]*+                                       # a comment
    | "(?:[^"\\\r\n]|\\[^\r\n])*+"?                      # a string
    | (?<![A-Za-z0-9_])(?P<test>test)(?:[ \t\f\r\n]++|\#[^\r\n]*+)*+"   # `test` and its name's quote
""", re.VERBOSE)
REPORT_FORMAT = "converge-test/1"


def has_test_blocks(text: str) -> bool:
    """Whether the text may contain a ``test`` block, decided before parsing: the word
    ``test`` followed by a string, with only whitespace and comments between, outside
    comments and strings. Never false for a text the parser finds a test block in; a
    mention of a test in a comment (``# see test "x"``) or a string is no test block."""
    if "test" not in text:
        return False
    return any(m.group("test") for m in TEST_SCAN.finditer(text))


# ------------------------------------------------------------------ discovery

def discover(paths: Sequence[str]) -> list[str]:
    """Rule files under ``paths``: files as given, directories searched for ``*.cvg``.

    Sorted within each directory, in the order of ``paths``, without
    duplicates. Raises FileNotFoundError for a path that does not exist."""
    from ..compile.sources import rule_files_under

    out: list[str] = []
    seen: set[str] = set()

    def add(path: str) -> None:
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            out.append(path)

    for raw in paths:
        path = os.path.normpath(os.fspath(raw))
        if os.path.isdir(path):
            for f in rule_files_under(path):
                add(os.path.normpath(f))  # `.` gives `a.cvg`, as `converge check .` names it
        elif os.path.exists(path):
            add(path)
        else:
            raise FileNotFoundError(path)
    return out


# ------------------------------------------------------------------ results

@dataclass
class Failure:
    """One unmet expectation of a test."""

    kind: str      # "missing" | "unexpected" | "tier" | "violation" | "error"
    message: str   # one line
    detail: str    # the explanation (why-not, proof tree, reasons, diagnostics)
    data: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        body = "\n".join("    " + line if line else "" for line in _lines(self.detail))
        return f"  {self.message}" + (f"\n{body}" if body else "")

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "detail": self.detail, **self.data}


@dataclass
class TestOutcome:
    file: str
    name: str
    line: int
    failures: list[Failure]
    tier: str | None = None
    cycles: int | None = None
    fired: list[str] = field(default_factory=list)
    duration: float = 0.0

    __test__ = False  # not a pytest test class

    @property
    def id(self) -> str:
        return ident(self.file, self.name)

    @property
    def shown_id(self) -> str:
        """The id on one line, as text reports print it: a line break in the test's name is
        written ``\\n``, so every test has one status line (``grep '^FAIL'``)."""
        return self.id.replace("\n", "\\n")

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def errored(self) -> bool:
        return any(f.kind == "error" for f in self.failures)

    @property
    def status(self) -> str:
        return "passed" if self.passed else ("error" if self.errored else "failed")

    def failure_text(self) -> str:
        """Everything that went wrong, readable (used by ``converge test`` and the pytest plugin)."""
        head = f"{self.shown_id}  ({self.file.replace(chr(10), chr(92) + 'n')}:{self.line})"
        return "\n".join([head] + [f.text() for f in self.failures])

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "file": self.file, "name": self.name, "line": self.line, "status": self.status,
                "tier": self.tier, "cycles": self.cycles, "failures": [f.to_json() for f in self.failures]}


@dataclass
class FileTests:
    """A test file: its compiled rules and its test blocks, or the diagnostics that stopped it."""

    path: str
    ruleset: Any = None          # converge_rules.api.RuleSet
    tests: list[Any] = field(default_factory=list)   # TestDef
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.diagnostics

    def agents(self) -> list[Any]:
        """The agents declared in this file (not in the files it imports)."""
        if self.ruleset is None:
            return []
        return [a for a in self.ruleset.program.agents if a.span.file == self.path]

    def diagnostics_text(self) -> str:
        return "\n".join(d.render() for d in self.diagnostics)


# ------------------------------------------------------------------ loading and running

def load_file(path: str) -> FileTests | None:
    """Compile a test file; None when it holds no test block.

    A file with a test block (``has_test_blocks``) that does not parse or compile is
    returned with its diagnostics (a load error)."""
    from ..diagnostics import ConvergeError
    from ..syntax import ast
    from ..syntax.parser import parse_text, read_rule_file

    try:
        text = read_rule_file(path)
    except ConvergeError as err:
        if path.endswith(".cvg"):
            return FileTests(path, diagnostics=list(err.diagnostics))
        return None
    if not has_test_blocks(text):
        return None
    try:
        source = parse_text(text, path)
    except ConvergeError as err:
        return FileTests(path, diagnostics=list(err.diagnostics))
    if not any(isinstance(item, ast.TestDecl) for item in source.items):
        return None
    from ..api import RuleSet
    from ..compile.pipeline import compile_sources

    # The compile cache is bypassed: its entries keep the paths of the
    # directory they were compiled from, and test files resolve `given`
    # files against their own path.
    compilation = compile_sources([(path, None)], use_cache=False)
    if not compilation.ok:
        return FileTests(path, diagnostics=[d for d in compilation.diagnostics if d.is_error])
    ruleset = RuleSet(compilation)
    tests = [t for t in ruleset.program.tests if t.span.file == path]
    return FileTests(path, ruleset, tests)


def _relabel(node: Any, sources: dict[tuple[str, tuple], tuple[str, int]]) -> Any:
    """Point input facts given by a test at the test's file:line (they were passed through the API)."""
    from dataclasses import replace

    if node is None:
        return None
    stack = [node]  # a proof can be thousands of levels deep: no recursion
    while stack:
        n = stack.pop()
        p = n.proof
        if p.is_input and (p.relation, p.fact) in sources and (p.source is None or p.source[0] == "<api>"):
            n.proof = replace(p, source=sources[(p.relation, p.fact)])
        stack.extend(n.children)
    return node


def _relabel_whynot(w: Any, sources: dict[tuple[str, tuple], tuple[str, int]]) -> None:
    """_relabel every proof in a why-not explanation, premises explained further included."""
    stack = [w]
    while stack:
        w = stack.pop()
        _relabel(w.proof, sources)
        for attempt in w.attempts:
            for m in attempt.shown:
                _relabel(m.blocker_proof, sources)
            stack.extend(attempt.premises)


def _lines(text: str) -> list[str]:
    """The lines of a text, split at line feeds only: a fact value may hold U+2028 or U+0085,
    which ``str.splitlines`` would take for line breaks (a final line feed ends the last line)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _indent(text: str, prefix: str = "  ") -> str:
    return "\n".join(prefix + line if line else "" for line in _lines(text))


def _reasons_text(result: Any) -> str:
    lines = []
    for reason in result.reasons:
        lines.append(f"- [{reason.kind}] {one_line(reason.message)}")  # one reason, one line
        for v in reason.details.get("violations", []):
            for match in v.get("matches", []):
                binding = ", ".join(f"{k} = {dumps_json(val, ensure_ascii=False)}" for k, val in match["bindings"].items())
                lines.append(f"    {v['invariant']}: {', '.join(match['facts']) or '(no facts)'}"
                             + (f"  with {binding}" if binding else ""))
    return "\n".join(lines) if lines else "(no reasons)"


def run_test(file: FileTests, test: Any, why_depth: int = 1, base_facts: Sequence[Any] = (),
             tools: Mapping[str, Any] | None = None) -> TestOutcome:
    """Run one test block of a loaded file; ``base_facts`` (paths, database sources) are
    loaded under every test's own ``given`` facts; ``tools`` are the host tools the rules
    call (``s = @name(...)``), as for ``RuleSet.run``."""
    from ..diagnostics import ConvergeError
    from ..explain.render import render_text as proof_text
    from ..explain.whynot import why_not
    from ..values import format_fact

    started = time.perf_counter()
    outcome = TestOutcome(file.path, test.name, test.span.line, [])
    facts: dict[str, list[tuple]] = {}
    sources: dict[tuple[str, tuple], tuple[str, int]] = {}
    for sf in test.given:
        facts.setdefault(sf.relation, []).append(sf.values)
        sources.setdefault((sf.relation, sf.values), (sf.span.file, sf.span.line))
    try:
        result = file.ruleset.run(facts=facts or None, fact_files=list(base_facts) + list(test.given_files),
                                  tools=tools)
    except ConvergeError as err:
        # facts that do not load (E5xx), a tool the rules call that was not given (E220), ...
        detail = "\n".join(d.render() for d in err.diagnostics)
        first = err.diagnostics[0]
        more = f" (and {len(err.diagnostics) - 1} more)" if len(err.diagnostics) > 1 else ""
        outcome.failures.append(Failure("error", f"the test could not run: error[{first.code}] {first.message}{more}", detail,
                                        {"diagnostics": [d.to_json() for d in err.diagnostics]}))
        outcome.duration = time.perf_counter() - started
        return outcome
    outcome.tier, outcome.cycles = result.tier.value, result.cycles
    outcome.fired = list(result.fired_agents())
    for sf in test.expect:
        if not result.holds(sf.relation, sf.values):
            fact = format_fact(sf.relation, sf.values)
            w = why_not(result, sf.relation, sf.values, depth=why_depth)
            _relabel_whynot(w, sources)
            outcome.failures.append(Failure("missing", f"expected fact missing: {fact}", "why not:\n" + _indent(w.render_text()),
                                            {"fact": fact, "line": sf.span.line, "why_not": w.to_json()}))
    for sf in test.expect_not:
        if result.holds(sf.relation, sf.values):
            fact = format_fact(sf.relation, sf.values)
            tree = _relabel(result.why((sf.relation, sf.values)), sources)
            detail = "proof:\n" + _indent(proof_text(tree)) if tree is not None else ""
            outcome.failures.append(Failure("unexpected", f"unexpected fact present: {fact}", detail,
                                            {"fact": fact, "line": sf.span.line,
                                             "proof": tree.to_json() if tree is not None else None}))
    expected_tier = test.expect_tier or ("failed" if test.expect_violations else "converged")
    if result.tier.value != expected_tier:
        outcome.failures.append(Failure("tier", f"expected tier {expected_tier}, got {result.tier.value}",
                                        "reasons:\n" + _indent(_reasons_text(result)),
                                        {"expected": expected_tier, "actual": result.tier.value,
                                         "reasons": [r.to_json() for r in result.reasons]}))
    reported = [v.get("invariant") for r in result.reasons for v in r.details.get("violations", [])]
    known = {inv.name for inv in file.ruleset.program.invariants}
    for name in test.expect_violations:
        if name not in reported:
            if name not in known:
                detail = (f"no invariant or acceptance rule is named {name!r}; "
                          f"declared: {', '.join(sorted(known)) or 'none'}")
            elif reported:
                detail = f"violated: {', '.join(dict.fromkeys(reported))}"
            else:
                detail = f"no invariant or acceptance rule was violated (tier {result.tier.value})"
            outcome.failures.append(Failure("violation", f"expected violation {name!r} was not reported", detail,
                                            {"invariant": name, "reported": list(dict.fromkeys(reported))}))
    outcome.duration = time.perf_counter() - started
    return outcome


# ------------------------------------------------------------------ a whole run

def ident(path: str, name: str) -> str:
    """A test's id: ``file::test name``."""
    return f"{path}::{name}"


def selected(path: str, name: str, pattern: str | None) -> bool:
    """``-k``: a substring of, or an fnmatch pattern over, ``file::test name``."""
    if not pattern:
        return True
    ident_ = ident(path, name)
    return pattern in ident_ or fnmatch.fnmatchcase(ident_, pattern)


@dataclass
class Report:
    files: list[FileTests]
    outcomes: list[TestOutcome]
    deselected: int = 0
    skipped_files: list[str] = field(default_factory=list)   # discovered .cvg files without test blocks
    duration: float = 0.0

    @property
    def load_errors(self) -> list[FileTests]:
        return [f for f in self.files if not f.ok]

    @property
    def passed(self) -> int:
        return sum(1 for o in self.outcomes if o.passed)

    @property
    def failed(self) -> int:
        """Tests that failed or errored."""
        return sum(1 for o in self.outcomes if not o.passed)

    @property
    def errors(self) -> int:
        return sum(1 for o in self.outcomes if o.errored)

    # ---------------------------------------------------------- coverage
    def coverage(self) -> dict[str, Any]:
        """Per test file with a selected test: its agents that fired in at least one test, and the others."""
        ran: dict[str, set[str]] = {}
        for o in self.outcomes:
            ran.setdefault(o.file, set()).update(o.fired)
        files = []
        total = fired_total = 0
        for f in self.files:
            if not f.ok or f.path not in ran:
                continue
            agents = f.agents()
            fired = [a for a in agents if a.name in ran[f.path]]
            never = [a for a in agents if a.name not in ran[f.path]]
            total += len(agents)
            fired_total += len(fired)
            files.append({
                "file": f.path, "agents": len(agents), "fired": [a.name for a in fired],
                "never_fired": [{"agent": a.name, "file": a.span.file, "line": a.span.line} for a in never],
                "percent": _percent(len(fired), len(agents)),
            })
        return {"files": files, "agents": total, "fired": fired_total, "percent": _percent(fired_total, total)}

    # ---------------------------------------------------------- output
    def render_text(self, coverage: bool = False, threshold: float | None = None) -> str:
        lines: list[str] = []
        for o in self.outcomes:
            lines.append(f"{'PASS' if o.passed else ('ERROR' if o.errored else 'FAIL'):<5} {o.shown_id}")
        failing = [o for o in self.outcomes if not o.passed]
        if failing:
            lines.append("")
            lines.append("failures:")
            for o in failing:
                lines.append("")
                lines.append(o.failure_text())
        if coverage or threshold is not None:
            lines.append("")
            lines.extend(self.coverage_text(threshold))
        lines.append("")
        lines.append(self.summary())
        return "\n".join(lines)

    def coverage_text(self, threshold: float | None = None) -> list[str]:
        from ..textsafe import one_line

        cov = self.coverage()
        lines = ["coverage (agents that fired in at least one test):"]
        for f in cov["files"]:
            lines.append(f"  {one_line(f['file'])}: {len(f['fired'])}/{f['agents']} agents ({f['percent']:.1f}%)")
            for a in f["never_fired"]:
                lines.append(f"    never fired: {a['agent']} at {one_line(a['file'])}:{a['line']}")
        lines.append(f"  total: {cov['fired']}/{cov['agents']} agents ({cov['percent']:.1f}%)")
        if self.skipped_files:
            n = len(self.skipped_files)
            lines.append(f"  not counted: {n} file{'s' if n != 1 else ''} without test blocks")
            lines.extend(f"    {one_line(path)}" for path in self.skipped_files)
        if threshold is not None:
            verdict = "below" if self.coverage_failed(threshold) else "meets"
            lines.append(f"  coverage {cov['percent']:.1f}% {verdict} the threshold of {threshold:g}%")
        return lines

    def coverage_failed(self, threshold: float | None) -> bool:
        """Total coverage below ``threshold`` percent (no agent to cover counts as 100%, no test run as 0%)."""
        if threshold is None:
            return False
        cov = self.coverage()
        if not self.outcomes:
            return threshold > 0
        if cov["agents"] == 0:
            return False
        return cov["fired"] * 100 < threshold * cov["agents"]

    def summary(self) -> str:
        parts = [f"{self.passed} passed"]
        if self.failed - self.errors:
            parts.append(f"{self.failed - self.errors} failed")
        if self.errors:
            parts.append(f"{self.errors} error{'s' if self.errors != 1 else ''}")
        if self.load_errors:
            n = len(self.load_errors)
            parts.append(f"{n} file{'s' if n != 1 else ''} with load errors")
        if self.deselected:
            parts.append(f"{self.deselected} deselected")
        n_files = len({o.file for o in self.outcomes})
        if not self.outcomes and not self.load_errors:
            return "no tests ran" + (f" ({self.deselected} deselected)" if self.deselected else "")
        return ", ".join(parts) + f" ({len(self.outcomes)} test{'s' if len(self.outcomes) != 1 else ''} in {n_files} file{'s' if n_files != 1 else ''})"

    def to_json(self, coverage: bool = False, threshold: float | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": REPORT_FORMAT,
            "summary": {"passed": self.passed, "failed": self.failed - self.errors, "errors": self.errors,
                        "tests": len(self.outcomes),
                        "deselected": self.deselected, "load_errors": len(self.load_errors)},
            "tests": [o.to_json() for o in self.outcomes],
            "load_errors": [{"file": f.path, "diagnostics": [d.to_json() for d in f.diagnostics]} for f in self.load_errors],
        }
        if coverage or threshold is not None:
            cov = self.coverage()
            cov["not_counted"] = list(self.skipped_files)
            if threshold is not None:
                cov["threshold"] = threshold
                cov["ok"] = not self.coverage_failed(threshold)
            out["coverage"] = cov
        return out

    def junit_xml(self) -> str:
        """JUnit XML: one <testsuite> per file, one <testcase> per test block."""
        import xml.etree.ElementTree as ET

        by_file: dict[str, list[TestOutcome]] = {}
        for o in self.outcomes:
            by_file.setdefault(o.file, []).append(o)
        root = ET.Element("testsuites", {
            "name": "converge test", "tests": str(len(self.outcomes) + len(self.load_errors)),
            "failures": str(sum(1 for o in self.outcomes if not o.passed and not o.errored)),
            "errors": str(sum(1 for o in self.outcomes if o.errored) + len(self.load_errors)),
            "time": _secs(sum(o.duration for o in self.outcomes)),
        })
        for f in self.files:
            outcomes = by_file.get(f.path, [])
            if f.ok and not outcomes:
                continue
            suite = ET.SubElement(root, "testsuite", {
                "name": _xml_text(f.path), "tests": str(len(outcomes) if f.ok else 1),
                "failures": str(sum(1 for o in outcomes if not o.passed and not o.errored)),
                "errors": str(sum(1 for o in outcomes if o.errored) + (0 if f.ok else 1)),
                "skipped": "0", "time": _secs(sum(o.duration for o in outcomes)),
            })
            if not f.ok:
                case = ET.SubElement(suite, "testcase", {"classname": _xml_text(f.path), "name": "(compile)",
                                                         "file": _xml_text(f.path), "time": "0.000"})
                err = ET.SubElement(case, "error", {"message": _xml_text(f"{f.path} does not compile"), "type": "load"})
                err.text = _xml_text(f.diagnostics_text())
                continue
            for o in outcomes:
                case = ET.SubElement(suite, "testcase", {"classname": _xml_text(o.file), "name": _xml_text(o.name),
                                                         "file": _xml_text(o.file), "line": str(o.line),
                                                         "time": _secs(o.duration)})
                if not o.passed:
                    tag = "error" if o.errored else "failure"
                    message = "; ".join(fl.message for fl in o.failures)
                    node = ET.SubElement(case, tag, {"message": _xml_text(message), "type": o.failures[0].kind})
                    node.text = _xml_text(o.failure_text())
        ET.indent(root)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _xml_text(text: str) -> str:
    """Any text as valid XML 1.0 character data: controls, surrogates, non-characters escaped."""
    from ..textsafe import escape_controls

    return escape_controls(text)


def _secs(seconds: float) -> str:
    return f"{seconds:.3f}"


def _percent(part: int, whole: int) -> float:
    return 100.0 if whole == 0 else round(part * 100.0 / whole, 1)


def run_paths(paths: Sequence[str], pattern: str | None = None, why_depth: int = 1,
              files: Iterable[str] | None = None, base_facts: Sequence[Any] = (),
              tools: Mapping[str, Any] | None = None) -> Report:
    """Discover and run every selected test under ``paths`` (each over ``base_facts`` too,
    with ``tools`` for the rules' tool calls)."""
    started = time.perf_counter()
    report = Report([], [])
    for path in (list(files) if files is not None else discover(paths)):
        loaded = load_file(path)
        if loaded is None:
            if path.endswith(".cvg"):
                report.skipped_files.append(path)
            continue
        report.files.append(loaded)
        if not loaded.ok:
            continue
        for test in loaded.tests:
            if not selected(path, test.name, pattern):
                report.deselected += 1
                continue
            report.outcomes.append(run_test(loaded, test, why_depth, base_facts, tools))
    report.duration = time.perf_counter() - started
    return report
