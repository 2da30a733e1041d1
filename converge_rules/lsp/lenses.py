"""Code lenses over ``test`` blocks and the command that runs them.

``converge.runTests`` (arguments: the document URI, optionally a test name)
runs the file's tests with the testing runner on the editor's text and turns
each failure into a diagnostic at the failing expectation (or the test), with
the same explanation ``converge test`` prints (the why-not for a missing fact).
"""

from __future__ import annotations

from typing import Any

from lsprotocol import types as lsp

from ..syntax import ast
from .analysis import Analysis

RUN_TESTS = "converge.runTests"


def code_lenses(analysis: Analysis, uri: str) -> list[lsp.CodeLens]:
    if analysis.source is None:
        return []
    tests = [item for item in analysis.source.items if isinstance(item, ast.TestDecl)]
    out = []
    for k, test in enumerate(tests):
        line = test.span.line - 1
        rng = lsp.Range(lsp.Position(line, 0), lsp.Position(line, 0))
        out.append(lsp.CodeLens(range=rng, command=lsp.Command(title="▶ run test", command=RUN_TESTS,
                                                               arguments=[uri, test.name])))
        if k == 0 and len(tests) > 1:
            out.append(lsp.CodeLens(range=rng, command=lsp.Command(title=f"▶ run all {len(tests)} tests",
                                                                   command=RUN_TESTS, arguments=[uri])))
    return out


def run_tests(analysis: Analysis, name: str | None) -> tuple[dict[str, Any], list[lsp.Diagnostic]]:
    """Run the file's tests (or one); a summary and one diagnostic per failure."""
    from ..api import RuleSet
    from ..testing.runner import FileTests, run_test

    compilation = analysis.compilation
    if compilation is None or not compilation.ok or analysis.source is None:
        return {"passed": 0, "failed": 0, "error": "the file has errors; fix them to run its tests", "tests": []}, []
    ruleset = RuleSet(compilation)
    tests = [t for t in ruleset.program.tests if (name is None or t.name == name)
             and t.span.file == analysis.path]
    if name is not None and not tests:
        return {"passed": 0, "failed": 0, "error": f"no test named {name!r}", "tests": []}, []
    file = FileTests(analysis.path, ruleset, tests)
    diags: list[lsp.Diagnostic] = []
    summary: dict[str, Any] = {"passed": 0, "failed": 0, "tests": []}
    for test in tests:
        outcome = run_test(file, test)
        summary["passed" if outcome.passed else "failed"] += 1
        summary["tests"].append({"name": test.name, "status": outcome.status,
                                 "failures": [f.message for f in outcome.failures]})
        for failure in outcome.failures:
            line = int(failure.data.get("line") or test.span.line) - 1
            text = analysis.lines
            end = len(text[line]) if 0 <= line < len(text) else 0
            message = f"test {test.name!r}: {failure.message}" + (f"\n{failure.detail}" if failure.detail else "")
            diags.append(lsp.Diagnostic(range=lsp.Range(lsp.Position(line, 0), lsp.Position(line, end)),
                                        message=message, severity=lsp.DiagnosticSeverity.Error,
                                        code=f"test-{failure.kind}", source="converge test"))
    return summary, diags
