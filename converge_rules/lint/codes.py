"""The catalogue of diagnostic codes: a one-line description of each, and
the anchor of its row in docs/diagnostics.md (named in the SARIF rules' ``help``).

Warning codes (``W...``) are owned by the lint modules of this package; the
error codes (``E...``) are reported by the compiler and listed here only so
that SARIF output can describe every rule it mentions.
"""

from __future__ import annotations

DOCS_PATH = "docs/diagnostics.md"

ERRORS: dict[str, str] = {
    "E001": "rule file not found",
    "E002": "rule file unreadable (permissions, not UTF-8)",
    "E100": "syntax error",
    "E101": "invalid escape in a string literal",
    "E102": "expressions nested too deeply to compile",
    "E103": "a string literal holds a lone surrogate escape",
    "E104": "a float literal out of range",
    "E110": "import not found (stdlib module or file)",
    "E111": "import cycle",
    "E112": "import leaves the project directory",
    "E113": "stdlib module name not of the form std.NAME",
    "E114": "two imports use the same alias",
    "E200": "undefined relation",
    "E201": "relation declared twice",
    "E202": "duplicate agent, invariant, acceptance or test name",
    "E203": "unknown column type",
    "E204": "unknown function",
    "E205": "a column name appears twice",
    "E206": "unknown or invalid budget setting",
    "E207": "a declaration uses a qualified name",
    "E208": "a relation named like a builtin function",
    "E209": "an agent with two `when` clauses",
    "E210": "an agent without `emit`",
    "E211": "unknown tier in a test's `expect tier`",
    "E212": "invalid `priority` or `confidence`",
    "E213": "invalid failure policy",
    "E214": "`expect violation` of an unknown invariant",
    "E220": "unknown tool",
    "E221": "tool call misuse",
    "E300": "arity mismatch",
    "E301": "a constant does not fit its column's type",
    "E302": "builtin called with the wrong number of arguments",
    "E303": "a variable bound with one type used in a column of another",
    "E304": "an expression's type does not fit its column",
    "E305": "an operator applied to operand types it does not take",
    "E306": "a comparison between types that do not compare",
    "E307": "a builtin called with argument types that fit none of its signatures",
    "E308": "an aggregate over values it cannot aggregate",
    "E400": "unsafe variable",
    "E401": "`_` where a value is needed",
    "E402": "negation or aggregation through recursion",
    "E403": "an agent emits into an input relation",
    "E404": "aggregate misuse",
    "E405": "a fact holds something other than constants",
    "E406": "a body with more literals than the limit",
    "E500": "facts file or directory missing, unreadable or not UTF-8",
    "E501": "malformed facts file",
    "E502": "a value does not convert to its column's type",
    "E503": "facts for an unknown relation",
    "E504": "a fact with the wrong number of values",
    "E505": "an object fact with an unknown, missing or repeated column",
    "E506": "unsupported facts file extension",
    "E507": "an output file cannot be written",
    "E508": "invalid confidence of an input fact",
    "E515": "a job file does not match the SHA-256 its result records",
    "E520": "a facts database cannot be opened or read",
    "E521": "a facts query is not one read-only SELECT",
    "E530": "malformed batch jobs source",
    "E531": "batch output cannot be used (not a batch result, or cannot be written)",
    "E532": "the Dask scheduler cannot be reached",
    "E533": "a batch worker process died while running jobs",
}


def describe(code: str) -> str:
    """A one-line description of a code (warnings from their lint module)."""
    from . import LINTS

    for lint in LINTS:
        if lint.CODE == code:
            return str(lint.TITLE)
    return ERRORS.get(code, f"diagnostic {code}")


def help_text(code: str) -> str | None:
    """The long description of a warning code: its lint module's docstring."""
    import inspect

    from . import LINTS

    for lint in LINTS:
        if lint.CODE == code and lint.__doc__:
            return inspect.cleandoc(lint.__doc__)
    return None


def anchor(code: str) -> str:
    """The anchor of the code's row in docs/diagnostics.md (``#w100``)."""
    return code.lower()


def docs_reference(code: str) -> str:
    """Where the code is documented: ``docs/diagnostics.md#code``, relative to the root of
    the Converge repository.

    Not a SARIF ``helpUri``: that must be an absolute URI (SARIF 2.1.0, 3.49.12; GitHub's
    upload-sarif rejects a log with a relative one), and the project has no published
    documentation site. When it has one, give its absolute address as ``helpUri``.
    """
    return f"{DOCS_PATH}#{anchor(code)}"
