"""Every file a user names is read only when it is a regular file: a FIFO would block the
reader until a writer came, a device such as /dev/zero would grow memory until the process
died. Each reader refuses with its own documented code instead (converge_rules.regularfile)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import converge_rules
from cli_process import converge
from converge_rules.regularfile import NotRegularFile, read_regular_file, read_regular_text

ROOT = Path(__file__).resolve().parent.parent
TC = "input relation edge(a: str, b: str)\nrelation path(a: str, b: str)\npath(x, y) :- edge(x, y).\n"


@pytest.fixture
def pipe(tmp_path: Path) -> Path:
    (tmp_path / "tc.cvg").write_text(TC)
    os.mkfifo(tmp_path / "pipe")
    return tmp_path / "pipe"


def test_the_reader_refuses_each_kind_before_reading(tmp_path: Path, pipe: Path) -> None:
    with pytest.raises(NotRegularFile, match="^a FIFO$"):
        read_regular_file(pipe)
    with pytest.raises(NotRegularFile, match="^a character device$"):
        read_regular_file("/dev/zero")
    with pytest.raises(NotRegularFile, match="^a directory$"):
        read_regular_file(tmp_path)
    (tmp_path / "crlf.txt").write_bytes(b"a\r\nb\rc\n")
    assert read_regular_text(tmp_path / "crlf.txt") == "a\nb\nc\n"
    assert read_regular_file(tmp_path / "crlf.txt", limit=3) == b"a\r\n"


def test_records_and_keys_through_the_api(pipe: Path) -> None:
    for path, kind in ((str(pipe), "a FIFO"), ("/dev/zero", "a character device")):
        with pytest.raises(converge_rules.RecordError) as info:
            converge_rules.open_record(path)
        assert [(d.code, d.message) for d in info.value.diagnostics] == [
            ("E610", f"cannot read record: it is {kind}, not a regular file")]
        with pytest.raises(converge_rules.RecordError) as info:
            converge_rules.read_record_key(path)
        assert [(d.code, d.message) for d in info.value.diagnostics] == [
            ("E615", f"cannot read the record key file: it is {kind}, not a regular file")]


@pytest.mark.parametrize("args, code, expected", [
    (["why", "--record", "pipe", 'path("a", "b")'], 1, "pipe: error[E610]: cannot read record: it is a FIFO, not a regular file"),
    (["query", "--record", "pipe", "path(x, y)"], 1, "pipe: error[E610]: cannot read record: it is a FIFO, not a regular file"),
    (["replay", "pipe"], 1, "pipe: error[E500]: cannot read trace pipe: it is a FIFO, not a regular file"),
    (["verify", "pipe"], 1, "pipe: error[E500]: cannot read result file: it is a FIFO, not a regular file"),
    (["verify", "/dev/zero"], 1, "/dev/zero: error[E500]: cannot read result file: it is a character device, not a regular file"),
    (["run", "tc.cvg", "--record", "r.json", "--record-key", "pipe"], 1,
     "pipe: error[E615]: cannot read the record key file: it is a FIFO, not a regular file"),
    (["serve", "tc.cvg", "--token-file", "pipe"], 2, "cannot read tokens: it is a FIFO, not a regular file"),
    (["run", "tc.cvg", "--facts", "facts"], 1, "facts/edge.facts: error[E500]: not a regular file: facts/edge.facts is a FIFO"),
])
def test_the_cli_refuses_with_its_code(pipe: Path, args: list[str], code: int, expected: str) -> None:
    (pipe.parent / "facts").mkdir()
    os.mkfifo(pipe.parent / "facts" / "edge.facts")
    out = converge(*args, cwd=pipe.parent)
    assert out.returncode == code, (out.stdout, out.stderr)
    assert expected in out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    assert not (pipe.parent / "r.json").exists()


def test_the_editor_does_not_block_on_an_imported_fifo(tmp_path: Path) -> None:
    """The language server quotes the lines of files a document imports; an import of a FIFO is
    E002 at the import, and the analysis returns (in a child process: a block would hang the suite)."""
    os.mkfifo(tmp_path / "lib.cvg")
    (tmp_path / "main.cvg").write_text('import "./lib.cvg" as lib\n' + TC)
    code = ("import sys; from converge_rules.lsp.analysis import analyze; "
            "r = analyze(sys.argv[1], open(sys.argv[1]).read(), {}); "
            "print(sorted({d.code for d in r.diagnostics}))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "main.cvg")], cwd=tmp_path,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "['E002']\n"  # "it is a FIFO", not "imported file not found"


def test_an_import_that_cannot_be_read_is_located_at_the_import(tmp_path: Path) -> None:
    """`import "./lib.cvg" as lib` naming a FIFO or a directory was E002 located at lib.cvg, with
    no line (`lib.cvg: error[E002]: ...`; the editor showed it at the top of the document):
    the diagnostic now points at the import that names the file."""
    os.mkfifo(tmp_path / "lib.cvg")
    (tmp_path / "dir.cvg").mkdir()
    (tmp_path / "main.cvg").write_text('relation x(a: int)\nimport "./lib.cvg" as lib\n' + TC)
    (tmp_path / "other.cvg").write_text('import "./dir.cvg" as d\n' + TC)
    out = converge("check", "main.cvg", "other.cvg", cwd=tmp_path, timeout=60)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "main.cvg:2:1: error[E002]: cannot read rule file lib.cvg: it is a FIFO, not a regular file" in out.stdout
    assert "other.cvg:1:1: error[E002]: cannot read rule file dir.cvg: it is a directory, not a regular file" in out.stdout
    diags = converge_rules.check([str(tmp_path / "other.cvg")])
    assert [(d.code, d.span.file, d.span.line, d.span.col) for d in diags] == [
        ("E002", str(tmp_path / "other.cvg"), 1, 1)]
