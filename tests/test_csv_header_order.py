"""A CSV or TSV header that names the declared columns in another order is refused (E505).

Read as data, such a row became a fact made of column names, silently (every column of text),
and the rows after it were most likely written in the header's order, not the declared one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import converge_rules as cr
from cli_process import converge

RULES = "input relation edge(src: str, dst: str)\nrelation p(a: str, b: str)\np(a, b) :- edge(a, b).\n"


@pytest.mark.parametrize("name, text", [
    ("edge.csv", "dst,src\na,b\n"),
    ("edge.tsv", "dst\tsrc\na\tb\n"),
    ("edge.csv", "dst,src,confidence\na,b,0.5\n"),
    ("edge.csv", "\n\ndst,src\na,b\n"),  # located at its own line
])
def test_a_header_in_another_order_is_e505_at_its_row(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / "facts").mkdir()
    (tmp_path / "facts" / name).write_text(text)
    line = text.count("\n", 0, text.index("dst")) + 1
    with pytest.raises(cr.ConvergeError) as err:
        cr.load_text(RULES).run(fact_files=[str(tmp_path / "facts")])
    [diag] = err.value.diagnostics
    assert diag.code == "E505" and diag.span.line == line and diag.span.col == 1
    assert "another order (dst, src) than declared (src, dst)" in diag.message
    (tmp_path / "r.cvg").write_text(RULES)
    done = converge("run", "r.cvg", "--facts", "facts", cwd=tmp_path)
    assert done.returncode != 0 and f"facts/{name}:{line}:1: error[E505]" in done.stderr
    assert "Traceback" not in done.stderr


def test_headers_in_the_declared_order_and_data_rows_are_unchanged(tmp_path: Path) -> None:
    rules = cr.load_text(RULES)
    for text in ("src,dst\na,b\n", "a,b\nc,d\n", "src,dst,confidence\na,b,1\n"):
        (tmp_path / "edge.csv").write_text(text)
        result = rules.run(fact_files=[str(tmp_path / "edge.csv")])
        assert ("src", "dst") not in result.facts("edge") and ("a", "b") in result.facts("edge")
    (tmp_path / "edge.facts").write_text("dst\tsrc\na\tb\n")  # Soufflé's format never has a header
    assert ("dst", "src") in rules.run(fact_files=[str(tmp_path / "edge.facts")]).facts("edge")
    one = cr.load_text("input relation name(n: str)\n")
    (tmp_path / "name.csv").write_text("n\nx\n")
    assert one.run(fact_files=[str(tmp_path / "name.csv")]).facts("name") == [("x",)]
