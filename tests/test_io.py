"""The facts I/O layer: loaders for every format, located diagnostics, writers, round trips."""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from converge_rules.diagnostics import ConvergeError
from converge_rules.io import (MAX_ERRORS_PER_FILE, LoadedFacts, SourceList, convert_facts, format_table,
                               load_fact_paths, write_atomic, write_csv_dir)
from converge_rules.values import ColumnSchema, ConversionError, RelationSchema, convert

DATA = Path(__file__).parent / "data" / "io"


def rel(name: str, *columns: str) -> RelationSchema:
    cols = tuple(ColumnSchema(*c.split(":")) for c in columns)
    return RelationSchema(name, cols, is_input=True)


SCHEMA = {
    "edge": rel("edge", "src:str", "dst:str"),
    "applicant": rel("applicant", "id:str", "income:int"),
    "graph.edge": rel("graph.edge", "a:str", "b:str"),
    "reading": rel("reading", "sensor:str", "value:float", "ok:bool"),
    "weighted": rel("weighted", "src:str", "dst:str", "w:int"),
}


def errors_of(paths, schema=SCHEMA) -> list[str]:
    """The first rendered line of each diagnostic (``file:line:col: error[code]: message``)."""
    with pytest.raises(ConvergeError) as info:
        load_fact_paths([str(p) for p in paths], schema)
    return [d.render().splitlines()[0] for d in info.value.diagnostics]


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_bytes(text.encode("utf-8"))
    return path


# ---------------------------------------------------------------- formats

def test_tsv_blank_lines_header_and_sources(tmp_path):
    path = write(tmp_path / "edge.tsv", "src\tdst\na\tb\n\nc\td\n\n")
    loaded = load_fact_paths([str(path)], SCHEMA)
    assert isinstance(loaded, LoadedFacts)
    assert loaded.facts == {"edge": [("a", "b"), ("c", "d")]}
    assert list(loaded.sources["edge"]) == [(str(path), 2), (str(path), 4)]


def test_tsv_crlf_and_no_trailing_newline():
    path = str(DATA / "formats" / "crlf" / "edge.tsv")
    loaded = load_fact_paths([path], SCHEMA)
    assert loaded.facts["edge"] == [("a", "b"), ("c", "d")]
    assert loaded.sources["edge"] == [(path, 1), (path, 2)]


def test_souffle_facts_file_is_loaded_as_is():
    # No header detection, no quoting: the first row equals the column names
    # and is still a fact; quotes, commas and spaces are literal; empty fields kept.
    path = str(DATA / "formats" / "edge.facts")
    loaded = load_fact_paths([path], SCHEMA)
    assert loaded.facts["edge"] == [("src", "dst"), ('"quoted"', "space here"), ("x,y", "")]
    assert list(loaded.sources["edge"]) == [(path, 1), (path, 2), (path, 3)]


def test_typed_tsv_converts_per_column(tmp_path):
    path = write(tmp_path / "weighted.tsv", "a\tb\t1\nb\tc\t-20\n")
    assert load_fact_paths([str(path)], SCHEMA).facts["weighted"] == [("a", "b", 1), ("b", "c", -20)]


def test_typed_tsv_slow_path_accepts_what_convert_accepts(tmp_path):
    # int("_1") fails where values.convert accepts it; so does bool " TRUE ".
    a = write(tmp_path / "weighted.tsv", "a\tb\t_1\nb\tc\t2\n")
    b = write(tmp_path / "reading.tsv", "s\t1e3\t TRUE \ns\t2.5\t0\n")
    loaded = load_fact_paths([str(a), str(b)], SCHEMA).facts
    assert loaded["weighted"] == [("a", "b", 1), ("b", "c", 2)]
    assert loaded["reading"] == [("s", 1000.0, True), ("s", 2.5, False)]
    assert [type(v) for v in loaded["reading"][0]] == [str, float, bool]


def test_one_column_tsv(tmp_path):
    schema = {"node": rel("node", "n:str"), "num": rel("num", "k:int")}
    node = write(tmp_path / "node.facts", "n1\n n2 \n\nn3\n")
    num = write(tmp_path / "num.tsv", "k\n1\n_2\n")
    loaded = load_fact_paths([str(node), str(num)], schema)
    assert loaded.facts == {"node": [("n1",), (" n2 ",), ("n3",)], "num": [(1,), (2,)]}
    assert list(loaded.sources["node"]) == [(str(node), 1), (str(node), 2), (str(node), 4)]
    assert loaded.sources["num"] == [(str(num), 2), (str(num), 3)]
    bad = write(tmp_path / "num.facts", "1\nx\n3\t4\n")
    assert errors_of([bad], schema) == [f'{bad}:2:1: error[E502]: column "k" of num: "x" is not a valid int',
                                        f"{bad}:3:1: error[E504]: wrong number of values for num: expected 1, got 2"]


def test_csv_header_quoting_and_multiline_records():
    path = str(DATA / "formats" / "reading.csv")
    loaded = load_fact_paths([path], SCHEMA)
    assert loaded.facts["reading"] == [("s1", 1.5, True), ("multi\nline", -2000.0, False), ("s3", 7.0, True)]
    assert list(loaded.sources["reading"]) == [(path, 2), (path, 3), (path, 5)]


def test_csv_without_header(tmp_path):
    path = write(tmp_path / "applicant.csv", 'a1,10\r\n"b ""2""",20\r\n')
    loaded = load_fact_paths([str(path)], SCHEMA)
    assert loaded.facts["applicant"] == [("a1", 10), ('b "2"', 20)]
    assert list(loaded.sources["applicant"]) == [(str(path), 1), (str(path), 2)]


def test_csv_blank_lines_are_skipped_and_counted(tmp_path):
    path = write(tmp_path / "applicant.csv", "\nid,income\na,1\n\nb,2\n\n")
    loaded = load_fact_paths([str(path)], SCHEMA)
    assert loaded.facts["applicant"] == [("a", 1), ("b", 2)]
    assert list(loaded.sources["applicant"]) == [(str(path), 3), (str(path), 5)]


def test_empty_line_oriented_files_hold_no_facts(tmp_path):
    paths = [write(tmp_path / "edge.csv", ""), write(tmp_path / "applicant.tsv", "\n\n"),
             write(tmp_path / "x.jsonl", ""), write(tmp_path / "x.cvg", "")]
    loaded = load_fact_paths([str(p) for p in paths], SCHEMA)
    assert loaded.facts == {"edge": [], "applicant": []}


def test_json_object_form_with_arrays_and_objects(tmp_path):
    path = write(tmp_path / "in.json", json.dumps({
        "applicant": [["a1", 1000], {"income": "12", "id": "a2"}, ["a3", 7.0]],
        "reading": [["s", 2, "true"], {"sensor": "t", "value": 0.5, "ok": False}],
        "graph.edge": [],
    }, indent=1))
    loaded = load_fact_paths([str(path)], SCHEMA)
    assert loaded.facts == {
        "applicant": [("a1", 1000), ("a2", 12), ("a3", 7)],
        "reading": [("s", 2.0, True), ("t", 0.5, False)],
        "graph.edge": [],
    }
    assert [type(v) for v in loaded.facts["reading"][0]] == [str, float, bool]
    # sources are computed lazily from the JSON text, one line per fact
    assert [line for _, line in loaded.sources["applicant"]] == [3, 7, 11]
    assert loaded.sources["reading"][-1] == (str(path), 22)


def test_json_list_in_file_named_after_relation():
    path = str(DATA / "formats" / "edge.json")
    loaded = load_fact_paths([path], SCHEMA)
    assert loaded.facts["edge"] == [("a", "b"), ("c", "d")]
    assert loaded.sources["edge"] == [(path, 1), (path, 2)]


def test_jsonl_both_forms_and_blank_lines():
    path = str(DATA / "formats" / "edge.jsonl")
    loaded = load_fact_paths([path], SCHEMA)
    assert loaded.facts["edge"] == [("a", "b"), ("c", "d"), ("e", "f")]
    assert list(loaded.sources["edge"]) == [(path, 1), (path, 3), (path, 4)]


def test_cvg_facts_file_int_goes_into_float_column():
    path = str(DATA / "formats" / "facts.cvg")
    loaded = load_fact_paths([path], SCHEMA)
    assert loaded.facts == {"applicant": [("a1", 1000), ("a2", -5)], "reading": [("s", 3.0, False)]}
    assert type(loaded.facts["reading"][0][1]) is float
    assert list(loaded.sources["reading"]) == [(path, 3)]


def test_directory_of_mixed_files_in_sorted_order():
    directory = str(DATA / "mixed")
    loaded = load_fact_paths([directory], SCHEMA)
    # sorted file names: applicant.csv, b_readings.json, c_more.jsonl, d_facts.cvg,
    # edge.tsv, graph.edge.facts; README.md, .hidden.csv and subdir/ are ignored
    assert loaded.facts == {
        "applicant": [("a1", 1000), ("Smith, J.", 2500), ("a3", 300)],
        "reading": [("s1", 1.5, True), ("s2", 2.0, False)],
        "edge": [("c", "d"), ("d", "e"), ("a", "b"), ("b", "c")],
        "graph.edge": [("x", "y"), ("p", "q")],
    }
    j = os.path.join
    assert list(loaded.sources["edge"]) == [(j(directory, "c_more.jsonl"), 1), (j(directory, "d_facts.cvg"), 2),
                                            (j(directory, "edge.tsv"), 2), (j(directory, "edge.tsv"), 4)]
    assert loaded.sources["graph.edge"][1] == (j(directory, "graph.edge.facts"), 1)


def test_files_and_paths_accumulate_in_argument_order(tmp_path):
    a = write(tmp_path / "a" / "edge.csv", "x,y\n")
    b = write(tmp_path / "b" / "edge.tsv", "y\tz\n")
    loaded = load_fact_paths([str(b), Path(a)], SCHEMA)  # PathLike accepted too
    assert loaded.facts["edge"] == [("y", "z"), ("x", "y")]
    assert loaded.sources["edge"] == [(str(b), 1), (str(a), 1)]


def test_utf8_bom_is_ignored(tmp_path):
    path = write(tmp_path / "edge.csv", "\ufeffsrc,dst\nä,ß\n")
    assert load_fact_paths([str(path)], SCHEMA).facts["edge"] == [("ä", "ß")]


# ---------------------------------------------------------------- Python facts

def test_convert_facts_arrays_objects_and_generators():
    loaded = convert_facts({
        "edge": (f for f in [("a", "b"), ["c", "d"]]),
        "applicant": [{"id": "a1", "income": "5"}],
        "reading": [("s", 1, "0")],
    }, SCHEMA)
    assert loaded.facts == {"edge": [("a", "b"), ("c", "d")], "applicant": [("a1", 5)],
                            "reading": [("s", 1.0, False)]}
    assert list(loaded.sources["edge"]) == [("<api>", 0), ("<api>", 0)]


def test_convert_facts_errors():
    with pytest.raises(ConvergeError) as info:
        convert_facts({"edge": [("a", 1), ("a",), "ab"], "nope": [], "applicant": [{"id": "x", "incme": 2}],
                       "reading": [("s", b"raw", True)]}, SCHEMA)
    got = sorted((d.code, d.message, d.notes[-1]) for d in info.value.diagnostics)
    assert got == sorted([
        ("E502", 'column "dst" of edge: 1 is not a valid str', "at facts['edge'][0][1]"),
        ("E504", "wrong number of values for edge: expected 2, got 1", "at facts['edge'][1]"),
        ("E501", "a fact of edge must be an array of 2 values or an object with its column names; found a string",
         "at facts['edge'][2]"),
        ("E503", 'unknown relation "nope"', "at key 'nope' of facts"),
        ("E505", 'unknown column "incme" of applicant', "at key 'incme' of facts['applicant'][0]"),
        ("E505", 'missing column "income" of applicant', "at facts['applicant'][0]"),
        ("E502", "column \"value\" of reading: b'raw' is not a valid float", "at facts['reading'][0][1]"),
    ])
    assert all(d.span.file == "<api>" for d in info.value.diagnostics)
    with pytest.raises(ConvergeError) as info:
        convert_facts([("a", "b")], SCHEMA)  # type: ignore[arg-type]
    assert info.value.diagnostics[0].code == "E501"


# ---------------------------------------------------------------- diagnostics

def test_e500_missing_file_missing_directory_and_not_utf8(tmp_path):
    bad = write(tmp_path / "edge.tsv", b"a\tb\nc\t\xc3\xa9\xff\n")
    no_dir = f"{tmp_path / 'no_dir'}{os.sep}"
    assert errors_of([tmp_path / "nope.csv", no_dir, bad]) == [
        f"{tmp_path / 'edge.tsv'}:2:4: error[E500]: facts file is not valid UTF-8 (byte 0xff)",
        f"{no_dir}: error[E500]: facts file not found: {no_dir}",
        f"{tmp_path / 'nope.csv'}: error[E500]: facts file not found: {tmp_path / 'nope.csv'}",
    ]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
def test_e500_fifo_is_not_opened(tmp_path):
    os.mkfifo(tmp_path / "edge.csv")
    assert errors_of([tmp_path / "edge.csv"]) == [
        f"{tmp_path / 'edge.csv'}: error[E500]: not a regular file: {tmp_path / 'edge.csv'} is a FIFO"]
    # in a directory it is part of the input too: refused, never silently left out
    assert errors_of([tmp_path]) == [
        f"{tmp_path / 'edge.csv'}: error[E500]: not a regular file: {tmp_path / 'edge.csv'} is a FIFO"]
    (tmp_path / "sub.json").mkdir()  # a directory named like a facts file is not entered
    os.remove(tmp_path / "edge.csv")
    (tmp_path / "edge.csv").write_text("src,dst\na,b\n")
    assert load_fact_paths([str(tmp_path)], SCHEMA).facts == {"edge": [("a", "b")]}


def test_e500_binary_file():
    path = DATA / "errors" / "binary.csv"
    assert errors_of([path]) == [f"{path}:1:1: error[E500]: facts file is not valid UTF-8 (byte 0x89)"]


def test_e501_truncated_json_points_at_the_end():
    path = DATA / "errors" / "truncated.json"
    assert errors_of([path]) == [f"{path}:3:1: error[E501]: malformed JSON: Expecting ',' delimiter"]


@pytest.mark.parametrize("name, text, expected", [
    ("x.json", "", "1:1: error[E501]: empty JSON file"),
    ("x.json", '\n  "edge"\n', '2:3: error[E501]: expected a JSON object (relation name to facts) or a list of facts;'
                               ' found a string'),
    ("x.json", '{"edge": {"src": "a", "dst": "b"}}', "1:10: error[E501]: the facts of edge must be a JSON array;"
                                                     " found an object"),
    ("x.json", '{"edge": [\n  "a"]}', "2:3: error[E501]: a fact of edge must be an array of 2 values"),
    ("x.json", '{"edge": [],\n "edge": [["a", "b"]]}', '2:2: error[E501]: relation "edge" appears twice'),
    ("x.json", '{"edge": [[1e999, "b"]]}', '1:12: error[E502]: column "src" of edge: Infinity is not a valid str'),
    ("x.json", "[" + "[" * 100000 + "]" * 100001, "1:1: error[E501]: malformed JSON: nested too deeply"),
    ("x.jsonl", '{"edge": ["a", "b"]}\n["a", "b"]\n', "2:1: error[E501]: expected an object with one key"),
    ("x.jsonl", '{"edge": ["a", "b"], "applicant": ["a", 1]}', "1:1: error[E501]: expected an object with one key"),
    ("x.jsonl", '\n{"edge": ["a", "b"]} x\n', "2:22: error[E501]: malformed JSON: Extra data"),
    ("x.cvg", 'relation edge(src: str, dst: str)\n', "1:1: error[E501]: only facts are allowed in a facts file"),
    ("edge.csv", 'a,"b\n', None),  # an unterminated quote at the end is accepted by the csv module
])
def test_e501_shapes(tmp_path, name, text, expected):
    path = write(tmp_path / name, text)
    if expected is None:
        load_fact_paths([str(path)], SCHEMA)
        return
    got = errors_of([path])
    assert len(got) == 1
    assert got[0].startswith(f"{path}:{expected}"), got[0]


def test_e501_cvg_rule_and_e502_cvg_type_with_full_render():
    path = DATA / "errors" / "rules.cvg"
    with pytest.raises(ConvergeError) as info:
        load_fact_paths([str(path)], SCHEMA)
    rendered = [d.render() for d in info.value.diagnostics]
    assert rendered == [
        f"{path}:2:1: error[E501]: only facts are allowed in a facts file\n"
        "   2 | edge(X, \"b\") :- edge(X, _).\n"
        "       ^^^^^^^^^^^^^^^^^^^^^^^^^^^",
        f"{path}:3:17: error[E502]: column \"income\" of applicant: \"1000\" is not a valid int\n"
        "   3 | applicant(\"a1\", \"1000\").\n"
        "                       ^^^^^^",
    ]


def test_cvg_syntax_errors_keep_parser_codes(tmp_path):
    path = write(tmp_path / "f.cvg", 'edge("a", "b")\nedge("c", "d").\n')
    got = errors_of([path])
    assert len(got) == 1 and got[0].startswith(f"{path}:2:1: error[E100]:")


def test_json_errors_point_at_the_offending_values():
    path = DATA / "errors" / "bad.json"
    assert errors_of([path]) == [
        f'{path}:1:29: error[E502]: column "dst" of edge: 1 is not a valid str',
        f'{path}:2:39: error[E502]: column "income" of applicant: "abc" is not a valid int',
        f'{path}:3:16: error[E505]: missing column "income" of applicant',
        f'{path}:3:29: error[E505]: unknown column "incme" of applicant',
        f'{path}:4:2: error[E503]: unknown relation "edgee"',
        f"{path}:5:14: error[E504]: wrong number of values for reading: expected 3, got 2",
    ]


def test_json_error_render_has_caret_under_value():
    path = DATA / "errors" / "bad.json"
    with pytest.raises(ConvergeError) as info:
        load_fact_paths([str(path)], SCHEMA)
    assert info.value.diagnostics[1].render() == (
        f'{path}:2:39: error[E502]: column "income" of applicant: "abc" is not a valid int\n'
        '   2 |  "applicant": [{"id": "a1", "income": "abc"},\n'
        "                                             ^^^^^")
    unknown = info.value.diagnostics[4]
    assert unknown.notes == ('did you mean "edge"?', "known relations: applicant, edge, graph.edge, reading, weighted")


def test_json_value_conversions(tmp_path):
    path = write(tmp_path / "x.json", '{"applicant": [["a", true], ["b", 1.5], ["c", null], ["d", "12"]],\n'
                                      ' "reading": [["s", NaN, 1], [1, 1, true]]}')
    assert [line.split(": ", 1)[1] for line in errors_of([path])] == [
        'error[E502]: column "income" of applicant: true is not a valid int',
        'error[E502]: column "income" of applicant: 1.5 is not a valid int',
        'error[E502]: column "income" of applicant: null is not a valid int',
        'error[E502]: column "value" of reading: NaN is not a valid float',
        'error[E502]: column "ok" of reading: 1 is not a valid bool',
        'error[E502]: column "sensor" of reading: 1 is not a valid str',
    ]


def test_e502_tsv_exact_columns_and_e504_arity():
    path = DATA / "errors" / "weighted.tsv"
    with pytest.raises(ConvergeError) as info:
        load_fact_paths([str(path)], SCHEMA)
    assert [d.render() for d in info.value.diagnostics] == [
        f'{path}:3:5: error[E502]: column "w" of weighted: "x" is not a valid int\n'
        "   3 | c d x\n"
        "           ^",
        f"{path}:4:1: error[E504]: wrong number of values for weighted: expected 3, got 2\n"
        "   4 | e 1\n"
        "       ^^^",
    ]


def test_e502_csv_columns_with_quotes(tmp_path):
    path = write(tmp_path / "reading.csv", 'sensor,value,ok\n"a,b",1.5,yes\n"c""d", "x" ,true\n\n"e\nf",2,true,extra\n')
    assert errors_of([path]) == [
        f'{path}:2:11: error[E502]: column "ok" of reading: "yes" is not a valid bool',
        f'{path}:3:8: error[E502]: column "value" of reading: " \\"x\\" " is not a valid float',
        f"{path}:5:1: error[E504]: wrong number of values for reading: expected 3, got 4",
    ]


def test_e503_file_stem_and_directory(tmp_path):
    path = DATA / "errors" / "nosuchrel.csv"
    assert errors_of([path]) == [f'{path}:1:1: error[E503]: unknown relation "nosuchrel" (named by the file name)']
    write(tmp_path / "d" / "edges.tsv", "a\tb\n")
    write(tmp_path / "d" / "notes.txt", "ignored")
    got = errors_of([tmp_path / "d"])
    assert got == [f'{tmp_path / "d" / "edges.tsv"}:1:1: error[E503]: unknown relation "edges" (named by the file name)']
    write(tmp_path / "rows.json", "[]")
    assert errors_of([tmp_path / "rows.json"])[0].startswith(f"{tmp_path / 'rows.json'}:1:1: error[E503]")


def test_e503_jsonl_and_cvg(tmp_path):
    a = write(tmp_path / "a.jsonl", '{"edge": ["a", "b"]}\n  {"egde": ["a", "b"]}\n')
    b = write(tmp_path / "b.cvg", 'edge("a", "b").\n  foo(1).\n')
    assert errors_of([a, b]) == [f'{a}:2:4: error[E503]: unknown relation "egde"',
                                 f'{b}:2:3: error[E503]: unknown relation "foo"']


def test_e504_json_cvg_and_e505(tmp_path):
    a = write(tmp_path / "edge.jsonl", '["a"]\n{"src": "a", "dst": "b", "src": "c"}\n')
    b = write(tmp_path / "f.cvg", 'edge("a", "b", "c").\n')
    assert errors_of([a, b]) == [
        f"{a}:1:1: error[E504]: wrong number of values for edge: expected 2, got 1",
        f'{a}:2:26: error[E505]: column "src" of edge is given twice',
        f"{b}:1:1: error[E504]: wrong number of values for edge: expected 2, got 3",
    ]


def test_e506_unsupported_extension():
    path = DATA / "errors" / "edge.txt"
    assert errors_of([path]) == [f"{path}: error[E506]: unsupported facts file extension '.txt'"]


def test_errors_of_all_files_are_collected_and_capped_per_file(tmp_path):
    many = write(tmp_path / "applicant.tsv", "".join(f"a{i}\tbad{i}\n" for i in range(80)))
    other = write(tmp_path / "edge.csv", "a,b,c\n")
    with pytest.raises(ConvergeError) as info:
        load_fact_paths([str(many), str(other)], SCHEMA)
    diags = info.value.diagnostics
    in_many = [d for d in diags if d.span.file == str(many)]
    assert len(in_many) == MAX_ERRORS_PER_FILE
    assert [d.span.line for d in in_many] == list(range(1, 51))
    assert in_many[-1].notes == (f"stopped after {MAX_ERRORS_PER_FILE} errors in this file",)
    assert [d.code for d in diags if d.span.file == str(other)] == ["E504"]


def test_whitespace_only_line_gets_a_hint(tmp_path):
    path = write(tmp_path / "edge.tsv", "a\tb\n   \n")
    with pytest.raises(ConvergeError) as info:
        load_fact_paths([str(path)], SCHEMA)
    assert info.value.diagnostics[0].notes == ("the line holds only whitespace",)


# ---------------------------------------------------------------- robustness

EXTENSIONS = [".json", ".jsonl", ".csv", ".tsv", ".facts", ".cvg"]


@pytest.mark.parametrize("ext", EXTENSIONS)
@pytest.mark.parametrize("data", [
    b"", b"\x00\x01\x02\xff", b"\x00\x00\x00", b"{", b'{"edge": [["a", "b"]', b'[["a", "b"], ["c"', b"\t\t\t\n\t",
    b'"\n', b"[1, 2, 3]", b'{"edge": 5}', b"{}", b"[]", b"null", b"\n\n\n", b"edge(", b'edge("a", 1e999999).',
    b'{"applicant": [["a", 12345678901234567890123456789e1]]}', b'{"applicant": [["a", ' + b"9" * 5000 + b"]]}",
    b'{"applicant": [["a", "' + b"9" * 5000 + b'"]]}', b"\xef\xbb\xbf", b"\r\r\r", b"a\rb\tc\r\n",
])
def test_malformed_inputs_only_raise_converge_error(tmp_path, ext, data):
    for stem in ("edge", "applicant", "other"):
        path = write(tmp_path / (stem + ext), data)
        try:
            load_fact_paths([str(path)], SCHEMA)
        except ConvergeError as err:
            assert err.diagnostics
            for d in err.diagnostics:
                assert d.span.file == str(path)
                assert d.render()


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["edge", "applicant", "reading", "src", "dst", "id", "income", "x"]), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=_JSON, stem=st.sampled_from(["edge", "applicant", "reading", "other"]),
       ext=st.sampled_from([".json", ".jsonl"]), indent=st.sampled_from([None, 1]))
def test_random_json_shapes_only_raise_converge_error(value, stem, ext, indent):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, stem + ext)
        if ext == ".jsonl":
            items = value if isinstance(value, list) else [value]
            text = "\n".join(json.dumps(v) for v in items)
        else:
            text = json.dumps(value, indent=indent)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        try:
            load_fact_paths([path], SCHEMA)
        except ConvergeError as err:
            for d in err.diagnostics:
                assert d.span.file == path and d.span.line >= 1 and d.span.col >= 1


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=60), ext=st.sampled_from(EXTENSIONS))
def test_random_bytes_only_raise_converge_error(data, ext):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "reading" + ext)
        with open(path, "wb") as handle:
            handle.write(data)
        try:
            load_fact_paths([path], SCHEMA)
        except ConvergeError as err:
            assert err.diagnostics


@settings(max_examples=200, deadline=None)
@given(fields=st.lists(st.tuples(st.text(alphabet=" _-+.0123456789eEinfatrusTRUEFALS", max_size=6),
                                 st.text(alphabet=" _-+.0123456789eEinfatrusTRUEFALS", max_size=6)),
                       min_size=1, max_size=5))
def test_tsv_fast_and_slow_paths_agree_with_values_convert(fields):
    # Whatever the loader does internally, a value loads iff values.convert accepts it
    # (and floats are finite), with convert's result.
    schema = {"t": rel("t", "n:int", "x:float"), "b": rel("b", "n:int", "ok:bool")}
    for name, types in (("t", ("int", "float")), ("b", ("int", "bool"))):
        expected = []
        ok = True
        for row in fields:
            try:
                values = tuple(convert(v, t) for v, t in zip(row, types))
            except ConversionError:
                ok = False
                continue
            if any(isinstance(v, float) and not math.isfinite(v) for v in values):
                ok = False
                continue
            expected.append(values)
        text = "".join(f"{a}\t{b}\n" for a, b in fields)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, name + ".tsv")
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
            try:
                got = load_fact_paths([path], schema).facts[name]
            except ConvergeError as err:
                assert not ok, err
                assert {d.code for d in err.diagnostics} <= {"E502"}
            else:
                assert ok and got == expected
                assert [tuple(map(type, f)) for f in got] == [tuple(map(type, f)) for f in expected]


# ---------------------------------------------------------------- SourceList

def test_source_list_behaves_like_a_list(tmp_path):
    a = write(tmp_path / "edge.tsv", "a\tb\nc\td\n")
    b = write(tmp_path / "edge.json", '[\n["e", "f"],\n\n["g", "h"]]')
    sources = load_fact_paths([str(a), str(b)], SCHEMA).sources["edge"]
    assert isinstance(sources, SourceList)
    expected = [(str(a), 1), (str(a), 2), (str(b), 2), (str(b), 4)]
    assert len(sources) == 4
    assert sources == expected and list(sources) == expected
    assert sources[-1] == expected[-1] and sources[1:3] == expected[1:3]
    assert (str(b), 4) in sources and sources.index((str(b), 2)) == 2
    with pytest.raises(IndexError):
        sources[4]
    assert "SourceList" in repr(sources)


# ---------------------------------------------------------------- writers

def test_write_atomic_replaces_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "out.json"
    write_atomic(str(target), "first")
    os.chmod(target, 0o640)
    write_atomic(str(target), b"second \xe2\x9c\x93")
    assert target.read_bytes() == b"second \xe2\x9c\x93"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640
    assert os.listdir(tmp_path) == ["out.json"]


def test_write_atomic_through_a_symlink_replaces_the_target_and_keeps_the_link(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "rules.cvg"
    target.write_text("old")
    os.chmod(target, 0o640)
    link = tmp_path / "link.cvg"
    link.symlink_to(os.path.join("real", "rules.cvg"))
    write_atomic(str(link), "new")
    assert link.is_symlink() and os.readlink(link) == os.path.join("real", "rules.cvg")
    assert target.read_text() == "new" and stat.S_IMODE(os.stat(target).st_mode) == 0o640
    assert sorted(os.listdir(tmp_path)) == ["link.cvg", "real"]
    assert os.listdir(tmp_path / "real") == ["rules.cvg"]
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to("real/new.json")
    write_atomic(str(dangling), "x")  # as open(path, "w") would, the link's target is created
    assert dangling.is_symlink() and (tmp_path / "real" / "new.json").read_text() == "x"


def test_write_atomic_failure_is_a_diagnostic(tmp_path):
    with pytest.raises(ConvergeError) as info:
        write_atomic(str(tmp_path / "missing" / "out.json"), "x")
    assert info.value.diagnostics[0].code == "E507"
    (tmp_path / "adir").mkdir()
    with pytest.raises(ConvergeError):
        write_atomic(str(tmp_path / "adir"), "x")
    assert sorted(os.listdir(tmp_path)) == ["adir"]


def test_write_atomic_refuses_a_read_only_file(tmp_path):
    """Replacing by rename ignores the file's mode (and root ignores it anyway): a file with no
    write bit is refused, as open(path, "w") refuses it, and left as it was."""
    target = tmp_path / "locked.json"
    target.write_text("old")
    target.chmod(0o444)
    with pytest.raises(ConvergeError) as info:
        write_atomic(str(target), "new")
    assert info.value.diagnostics[0].code == "E507"
    assert "read-only (mode 444)" in info.value.diagnostics[0].message
    assert target.read_text() == "old" and sorted(os.listdir(tmp_path)) == ["locked.json"]


def test_write_csv_dir_writes_headers_and_replaces_whole_directory(tmp_path):
    out = tmp_path / "out"
    facts = {"edge": [("a", "b,c")], "reading": [("s", 1.0, True), ("t", 1e-7, False)], "graph.edge": []}
    paths = write_csv_dir(str(out), facts, SCHEMA)
    assert paths == [str(out / "edge.csv"), str(out / "reading.csv"), str(out / "graph.edge.csv")]
    assert (out / "edge.csv").read_text() == 'src,dst\na,"b,c"\n'
    assert (out / "reading.csv").read_text() == "sensor,value,ok\ns,1.0,true\nt,1e-07,false\n"
    assert (out / "graph.edge.csv").read_text() == "a,b\n"
    assert load_fact_paths([str(out)], SCHEMA).facts == facts
    write_csv_dir(str(out), {"applicant": [("a", 1)]}, SCHEMA)
    assert sorted(os.listdir(out)) == ["applicant.csv"]  # stale relations are gone
    assert sorted(os.listdir(tmp_path)) == ["out"]  # no temp or backup directories left


def test_write_csv_dir_refuses_to_replace_foreign_directory(tmp_path):
    write(tmp_path / "notes.txt", "precious")
    with pytest.raises(ConvergeError) as info:
        write_csv_dir(str(tmp_path), {"edge": [("a", "b")]}, SCHEMA)
    assert info.value.diagnostics[0].code == "E507"
    assert (tmp_path / "notes.txt").read_text() == "precious"
    with pytest.raises(ConvergeError) as info:
        write_csv_dir(str(tmp_path / "o"), {"nope": []}, SCHEMA)
    assert info.value.diagnostics[0].code == "E503"
    with pytest.raises(ConvergeError) as info:
        write_csv_dir(str(tmp_path / "missing" / "o"), {"edge": []}, SCHEMA)
    assert info.value.diagnostics[0].code == "E507"
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_write_csv_dir_refuses_dash_like_every_output_option(tmp_path, monkeypatch):
    """docs/cli.md: file options (--trace, --record, --junit, --out) take a path only; `-` is
    refused (E507) rather than made into a file, or here a directory, named `-`."""
    import subprocess
    import sys

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConvergeError) as info:
        write_csv_dir("-", {"edge": [("a", "b")]}, SCHEMA)
    assert info.value.diagnostics[0].code == "E507" and "'-'" in info.value.diagnostics[0].message
    assert os.listdir(tmp_path) == []
    root = Path(__file__).resolve().parent.parent
    loans = root / "examples" / "loans"
    proc = subprocess.run([sys.executable, "-m", "converge_rules", "run", str(loans / "loans.cvg"), "--facts",
                           str(loans / "facts.json"), "--out", "-", "--format", "summary"], cwd=tmp_path,
                          env=dict(os.environ, NO_COLOR="1", PYTHONPATH=str(root)), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1 and "error[E507]" in proc.stderr and "a file named '-'" not in proc.stdout
    assert os.listdir(tmp_path) == []  # no directory named "-"
    write_csv_dir("./-", {"edge": [("a", "b")]}, SCHEMA)  # the way to ask for that name
    assert os.listdir(tmp_path / "-") == ["edge.csv"]


def test_an_empty_output_path_is_e507_not_a_silent_no_op(tmp_path, monkeypatch):
    """An empty path (a script's unset variable: `--record "$RECORD"`) is refused (E507) by every
    output option; `run --out/--trace/--record ""` and `test --junit ""` wrote nothing and
    exited 0, and write_csv_dir("") would have taken the working directory for its output."""
    import subprocess
    import sys

    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("mine")
    for write in (lambda: write_csv_dir("", {"edge": [("a", "b")]}, SCHEMA), lambda: write_atomic("", "x")):
        with pytest.raises(ConvergeError) as info:
            write()
        assert info.value.diagnostics[0].code == "E507" and "empty path" in info.value.diagnostics[0].message
    root = Path(__file__).resolve().parent.parent
    loans = root / "examples" / "loans"
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=str(root))
    run = ["run", str(loans / "loans.cvg"), "--facts", str(loans / "facts.json"), "--format", "summary"]
    for args, code in ((run + ["--out", ""], 1), (run + ["--trace", ""], 1), (run + ["--record", ""], 1),
                       (["test", str(loans / "loans.cvg"), "--junit", ""], 2)):
        proc = subprocess.run([sys.executable, "-m", "converge_rules", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == code and "error[E507]: refusing to write to an empty path" in proc.stderr, \
            (args, proc.returncode, proc.stderr)
    assert os.listdir(tmp_path) == ["keep.txt"]


def test_format_table():
    table = format_table("reading", [("s1", 1.5, True), ("a long name", -20.0, False), ("", 3.25, True)], SCHEMA)
    assert table == (
        "sensor       value  ok\n"
        "-----------  -----  -----\n"
        "s1             1.5  true\n"
        "a long name  -20.0  false\n"
        '""            3.25  true')
    assert format_table("edge", [], SCHEMA) == "src  dst\n---  ---\n(no facts)"
    assert format_table("edge", [("日本", "x\ty")], SCHEMA) == 'src   dst\n----  ------\n日本  "x\\ty"'


# ---------------------------------------------------------------- round trips

_STR = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8) | st.sampled_from(
    ["", ",", '"', "\t", "\n", "\r", "\r\n", " a ", "src", "true", "é,\"x\"\n"])
_VALUES = {
    "str": _STR,
    "int": st.integers(min_value=-10**30, max_value=10**30),
    "float": st.floats(allow_nan=False, allow_infinity=False),
    "bool": st.booleans(),
}


@st.composite
def _schemas_and_facts(draw):
    names = draw(st.lists(st.sampled_from(["r", "s", "pkg.t", "u"]), min_size=1, max_size=3, unique=True))
    schema, facts = {}, {}
    for name in names:
        types = draw(st.lists(st.sampled_from(sorted(_VALUES)), min_size=0, max_size=4))  # 0: a relation without columns
        schema[name] = RelationSchema(name, tuple(ColumnSchema(f"c{k}", t) for k, t in enumerate(types)))
        facts[name] = draw(st.lists(st.tuples(*(_VALUES[t] for t in types)), max_size=6))
    return schema, facts


def _typed(facts):
    return {name: [tuple((type(v), v) for v in fact) for fact in rows] for name, rows in facts.items()}


@settings(max_examples=100, deadline=None)
@given(case=_schemas_and_facts())
def test_csv_round_trip(case):
    schema, facts = case
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out")
        write_csv_dir(out, facts, schema)
        loaded = load_fact_paths([out], schema)
    assert _typed(loaded.facts) == _typed(facts)


@settings(max_examples=100, deadline=None)
@given(case=_schemas_and_facts(), as_objects=st.booleans(), ext=st.sampled_from([".json", ".jsonl"]))
def test_json_round_trip(case, as_objects, ext):
    schema, facts = case

    def shape(name, fact):
        return dict(zip((c.name for c in schema[name].columns), fact)) if as_objects else list(fact)

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "facts" + ext)
        if ext == ".json":
            text = json.dumps({name: [shape(name, f) for f in rows] for name, rows in facts.items()}, indent=1)
        else:
            text = "".join(json.dumps({name: shape(name, f)}) + "\n" for name, rows in facts.items() for f in rows)
        write_atomic(path, text)
        loaded = load_fact_paths([path], schema)
    got = _typed(loaded.facts)
    want = _typed(facts) if ext == ".json" else {k: v for k, v in _typed(facts).items() if v}
    assert got == want
