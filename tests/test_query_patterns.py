"""`converge query` and Record.query: a variable used twice binds one value of one type.

Python finds 1 == 1.0, so the pattern m(x, x) over an int and a float column matched m(1, 1.0),
although the language treats 1 and 1.0 as different values and refuses such a join (E303).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import converge_rules as cr
from converge_rules.record import query
from cli_process import converge

RULES = "relation m(a: int, b: float)\nm(1, 1.0).\nm(2, 3.0).\nrelation n(a: int, b: int)\nn(1, 1).\nn(1, 2).\n"


def test_a_variable_across_an_int_and_a_float_column_is_e303() -> None:
    result = cr.load_text(RULES).run()
    with pytest.raises(cr.ConvergeError) as err:
        query(result, "m(x, x)")
    [diag] = err.value.diagnostics
    assert diag.code == "E303" and diag.span.col == 6 and "'x' is int" in diag.message
    assert query(result, "n(x, x)") == [("n", (1, 1))]
    assert query(result, "m(x, _)") == [("m", (1, 1.0)), ("m", (2, 3.0))]


def test_the_cli_says_so_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "r.cvg").write_text(RULES)
    done = converge("query", "r.cvg", "m(x, x)", cwd=tmp_path)
    assert done.returncode == 1 and "error[E303]" in done.stderr and "Traceback" not in done.stderr
    done = converge("run", "r.cvg", "--record", "r.json", "--format", "summary", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = converge("query", "--record", "r.json", "m(x, x)", cwd=tmp_path)
    assert done.returncode == 1 and "error[E303]" in done.stderr
    done = converge("query", "--record", "r.json", "n(x, x)", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout == "n(1, 1)\n"
