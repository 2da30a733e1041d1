"""Error messages quote values briefly: a 16 MiB tool value (or exception text) used to be
printed whole into the reason, the trace and every output (a 16 MiB int took ~10 s to print
in decimal, and a summary grew to 40 MB)."""

from __future__ import annotations

from pathlib import Path

import converge_rules as cr
from cli_process import converge


RULES = """
input relation p(x: int)
relation qi(x: int, y: int)
relation qb(x: int, y: bool)
relation qs(x: int, y: str)
p(1).
agent ints { on_failure skip when p(x), y = @big_int(x) emit qb(x, y) }
agent strs { on_failure skip when p(x), y = @long_str(x) emit qi(x, y) }
agent loud { on_failure skip when p(x), y = @loud(x) emit qs(x, y) }
agent conv { on_failure skip when p(x), y = @long_str(x), z = to_int(y) emit qi(x, z) }
"""

TOOLS = '''
def big_int(x):
    return 1 << (8 * (1 << 24) - 1)


def long_str(x):
    return "x" * (1 << 24)


def loud(x):
    raise ValueError("y" * (1 << 22))
'''

EXPECTED = [
    ("ints", "value (an int of 134217728 bits) is int, the column is bool"),
    ("strs", 'value "' + "x" * 57 + '..." (16777216 characters) is str, the column is int'),
    ("loud", "tool loud raised ValueError: " + "y" * 2000 + "... (4194304 characters)"),
    ("conv", 'to_int: "' + "x" * 57 + '..." (16777216 characters) is not an integer'),
]


def tools() -> dict:
    ns: dict = {}
    exec(TOOLS, ns)
    return {name: ns[name] for name in ("big_int", "long_str", "loud")}


def test_huge_values_and_exception_texts_are_quoted_briefly_in_reasons() -> None:
    r = cr.load_text(RULES, "r.cvg").run(tools=tools())
    assert r.tier == "degraded"
    assert [(x.kind, x.details["agent"], x.details["error"]) for x in r.reasons] == [
        ("agent_skipped", agent, error) for agent, error in EXPECTED]


def test_small_values_are_still_quoted_whole() -> None:
    rules = cr.load_text("""
relation p(x: int)
relation q(x: int, y: bool)
p(1).
agent a { on_failure skip when p(x), y = @t(x) emit q(x, y) }
agent b { on_failure skip when p(x), y = @s(x), z = to_int(y) emit q(z, true) }
""", "r.cvg")
    r = rules.run(tools={"t": lambda x: 10 ** 57, "s": lambda x: "x" * 60})
    assert [x.details["error"] for x in r.reasons] == [
        "value 1" + "0" * 57 + " is int, the column is bool", 'to_int: "' + "x" * 60 + '" is not an integer']


def test_huge_values_are_quoted_briefly_from_the_cli(tmp_path: Path) -> None:
    (tmp_path / "rules.cvg").write_text(RULES)
    (tmp_path / "tools.py").write_text(TOOLS)
    out = converge("run", "rules.cvg", "--tools", "tools", "--format", "summary", cwd=tmp_path)
    assert out.returncode == 3, out.stderr
    assert len(out.stdout) < 4000
    for agent, error in EXPECTED:
        assert f"agent {agent!r} skipped in cycle 1 after 1 failed attempt(s): {error} at rules.cvg:" in out.stdout
