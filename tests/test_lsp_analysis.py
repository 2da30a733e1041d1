"""The language server's analysis and features in-process: a broken or half-typed
file never makes them raise (hypothesis edits real files), and the index agrees
with the compiler."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from converge_rules.lsp import completion, hover, lenses, navigation, symbols
from converge_rules.lsp.analysis import analyze

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted([*ROOT.glob("examples/*/*.cvg"), *ROOT.glob("stdlib_rules/std/*.cvg")])
TEXTS = {p: p.read_text(encoding="utf-8") for p in FILES}


def _features(path: Path, text: str, line: int, col: int) -> None:
    a = analyze(str(path), text)
    hover.hover(a, line, col)
    navigation.definition(a, line, col)
    navigation.references(a, line, col, True, lambda: [])
    navigation.prepare_rename(a, line, col)
    try:
        navigation.rename(a, line, col, "renamed", lambda: [], lambda f: False)
    except navigation.RenameError:
        pass
    lines = text.split("\n")
    completion.complete(a, lines[line][:col] if line < len(lines) else "", line)
    symbols.document_symbols(a)
    lenses.code_lenses(a, path.as_uri())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FILES), st.data())
def test_edits_never_make_a_feature_raise(path: Path, data: st.DataObject) -> None:
    text = TEXTS[path]
    cut = data.draw(st.integers(0, len(text)), label="cut")
    kind = data.draw(st.sampled_from(["truncate", "delete", "insert"]), label="edit")
    if kind == "truncate":
        text = text[:cut]
    elif kind == "delete":
        text = text[:cut] + text[cut + data.draw(st.integers(1, 40)):]
    else:
        text = text[:cut] + data.draw(st.sampled_from(["(", ")", "{", "}", '"', ",", ".", ":-", "not ", "x", "@", "\n"])) + text[cut:]
    lines = text.split("\n")
    line = data.draw(st.integers(0, max(len(lines) - 1, 0)), label="line")
    col = data.draw(st.integers(0, len(lines[line]) if lines else 0), label="col")
    _features(path, text, line, col)


def test_every_atom_of_every_example_resolves_to_a_declaration() -> None:
    for path in FILES:
        a = analyze(str(path), TEXTS[path])
        assert a.program is not None, path
        for occ in a.occurrences[a.real]:
            if occ.symbol[0] in ("relation", "agent", "invariant"):
                decl = a.declaration(occ.symbol)
                assert decl is not None, (path, occ)
                source = (Path(decl.file).read_text(encoding="utf-8")).split("\n")[decl.line]
                assert source[decl.col:decl.end_col] == occ.symbol[2].rsplit(".", 1)[-1]
            text = TEXTS[path].split("\n")[occ.line][occ.col:occ.end_col]
            if occ.symbol[0] in ("relation", "var", "builtin"):
                assert text == occ.symbol[-1], (path, occ, text)


def test_rename_across_an_import_changes_only_the_relation_part(tmp_path: Path) -> None:
    common = tmp_path / "common.cvg"
    main = tmp_path / "main.cvg"
    common.write_text("input relation edge(a: str, b: str)\n", encoding="utf-8")
    text = 'import "./common.cvg" as common\nrelation p(a: str)\np(x) :- common.edge(x, _).\n'
    main.write_text(text, encoding="utf-8")
    a_main = analyze(str(main), text)
    a_common = analyze(str(common), common.read_text(encoding="utf-8"))
    col = text.split("\n")[2].index("edge")
    edit = navigation.rename(a_main, 2, col, "link", lambda: [a_common], lambda f: False)
    assert edit is not None and edit.changes is not None
    changes = {uri.rsplit("/", 1)[-1]: [(e.range.start.line, e.range.start.character, e.range.end.character)
                                        for e in edits] for uri, edits in edit.changes.items()}
    assert changes == {"common.cvg": [(0, 15, 19)], "main.cvg": [(2, col, col + 4)]}
    # the module part goes to the imported file; the file is not renamed
    defs = navigation.definition(a_main, 2, col - 3)
    assert defs and defs[0].uri.endswith("/common.cvg")
    try:
        navigation.rename(a_main, 2, col - 3, "other", lambda: [a_common], lambda f: False)
    except navigation.RenameError as err:
        assert "module cannot be renamed" in str(err)
    else:
        raise AssertionError("renaming a module should be refused")
    # an edit of the importer's text does not change the imported file's analysis
    refs = navigation.references(a_main, 2, col, True, lambda: [a_common])
    assert refs is not None and len(refs) == 2


def test_diagnostics_are_those_of_check() -> None:
    """The server reports what `converge check` reports: same codes, messages, notes, positions."""
    from converge_rules.lint import check_file

    files = [*FILES, *sorted(ROOT.glob("tests/golden/**/*.cvg"))]
    assert len(files) > 20
    for path in files:
        text = path.read_text(encoding="utf-8")
        mine = [(d.code, d.message, d.notes, d.span.line, d.span.col) for d in analyze(str(path), text).diagnostics]
        theirs = [(d.code, d.message, d.notes, d.span.line, d.span.col) for d in check_file(str(path))]
        assert mine == theirs, path


def test_disabled_warning_codes_are_not_reported(tmp_path: Path) -> None:
    path = tmp_path / "w.cvg"
    text = 'relation e(a: str, b: str)\nrelation p(a: str)\ne("a", "b").\np(x) :- e(x, y).\n'
    assert "W100" in [d.code for d in analyze(str(path), text).diagnostics]
    assert "W100" not in [d.code for d in analyze(str(path), text, disabled=frozenset({"W100"})).diagnostics]


def test_hover_writes_an_agent_description_as_the_string_literal_it_is(tmp_path: Path) -> None:
    """A quote, a line break or a backslash in a description is shown escaped, as written:
    `agent a "say \\"hi\\"\\nbye"` once showed as `agent a "say "hi"` and a second line."""
    path = tmp_path / "d.cvg"
    text = ('relation p(x: int)\nrelation q(x: int)\n'
            'agent a "say \\"hi\\"\\nbye \\\\ ```" {\n  when p(x)\n  emit q(x)\n}\n'
            'agent b "" {\n  when p(x)\n  emit q(x)\n}\n')
    a = analyze(str(path), text)
    shown = hover.hover(a, 2, 6)
    assert shown is not None
    block = shown.contents.value.split("```cvg\n", 1)[1].split("\n```", 1)[0]
    assert block == 'agent a "say \\"hi\\"\\nbye \\\\ ```"'
    shown = hover.hover(a, 6, 6)
    assert shown is not None and shown.contents.value.startswith('```cvg\nagent b ""\n```')
    # a line separator or a bidirectional override in a description stays an escape, as fmt writes it
    a = analyze(str(path), text.replace('agent b ""', 'agent b "x\\u2028y\\u202ez"'))
    shown = hover.hover(a, 6, 6)
    assert shown is not None and shown.contents.value.startswith('```cvg\nagent b "x\\u2028y\\u202ez"\n```')


def test_a_test_with_an_empty_name_has_a_symbol_name_that_is_not_empty(tmp_path: Path) -> None:
    """LSP forbids an empty or blank symbol name (VS Code drops the file's whole outline):
    `test "" { }` and `test "  " { }` are listed as `""` and `"  "`."""
    path = tmp_path / "t.cvg"
    text = 'relation p(x: int)\ntest "" {\n  expect {}\n}\ntest "  " {\n  expect {}\n}\ntest "a b" {\n}\n'
    names = [s.name for s in symbols.document_symbols(analyze(str(path), text))]
    assert names == ["p", '""', '"  "', "a b"]


def test_rename_refuses_a_keyword_for_a_variable_an_agent_or_an_invariant(tmp_path: Path) -> None:
    """Renaming the variable `x` to `true` rewrote `p(x) :- q(x).` as `p(true) :- q(true).`
    (a constant: another program), and to `not` or `count` into text that does not parse;
    only a relation's new name was checked against the keywords."""
    import pytest

    path = tmp_path / "k.cvg"
    text = ('relation q(x: bool)\nrelation p(x: bool)\nq(true).\np(x) :- q(x).\n'
            'agent a { when q(y) emit p(y) }\ninvariant i { forbid p(z), not q(z) }\n')
    a = analyze(str(path), text)
    for line, col in [(3, 2), (4, 6), (5, 10)]:  # x, the agent a, the invariant i
        for word in ("true", "not", "count", "when", "min"):
            with pytest.raises(navigation.RenameError, match="is a keyword"):
                navigation.rename(a, line, col, word, lambda: [], lambda f: False)
    edit = navigation.rename(a, 3, 2, "len", lambda: [], lambda f: False)  # a builtin's name is a variable's
    assert edit is not None and [e.new_text for edits in edit.changes.values() for e in edits] == ["len", "len"]


def test_rename_refuses_a_name_its_scope_already_has(tmp_path: Path) -> None:
    """Renaming `x` to `y` in `p(x) :- q(x, y), y > 1.` gave `p(y) :- q(y, y), y > 1.`: the two
    variables merged into another program, with no diagnostic. A relation, agent or
    invariant renamed to a sibling's name was declared twice (E201, E202)."""
    import pytest

    path = tmp_path / "n.cvg"
    text = ('relation q(a: int, b: int)\nrelation p(a: int)\nq(1, 2).\np(x) :- q(x, y), y > 1.\n'
            'agent ag { when q(x, y) emit p(x) }\nagent bg { when q(z, _) emit p(z) }\n'
            'invariant i { forbid p(x), x > 5 }\nacceptance j { forbid p(x), x > 6 }\n')
    a = analyze(str(path), text)
    refused = [((3, 2), "y", "already a variable of this rule"), ((1, 9), "q", "already declared"),
               ((4, 6), "bg", "already exists"), ((6, 10), "j", "already exists")]
    for (line, col), new, reason in refused:
        with pytest.raises(navigation.RenameError, match=reason):
            navigation.rename(a, line, col, new, lambda: [], lambda f: False)
    for (line, col), new, count in [((3, 2), "z", 2), ((3, 2), "x", 2), ((1, 9), "r", 6), ((4, 6), "cg", 1),
                                    ((6, 10), "k", 1)]:
        edit = navigation.rename(a, line, col, new, lambda: [], lambda f: False)
        assert edit is not None and [e.new_text for es in edit.changes.values() for e in es] == [new] * count


def test_hover_names_the_instance_of_a_module_imported_twice(tmp_path: Path) -> None:
    """With `import std.graph as roads` and `import std.graph as rails`, hovering `rails.edge`
    showed `relation roads.edge(...)`: the first instance declared from the same file."""
    path = tmp_path / "two.cvg"
    text = ('import std.graph as roads\nimport std.graph as rails\nroads.edge("a", "b").\n'
            'rails.edge("c", "d").\n')
    a = analyze(str(path), text)
    for line, name in [(2, "roads.edge"), (3, "rails.edge")]:
        shown = hover.hover(a, line, 7)
        assert shown is not None and shown.contents.value.startswith(f"```cvg\nrelation {name}(from: str, to: str)\n")


def test_hover_of_a_module_shows_the_alias_it_is_imported_under(tmp_path: Path) -> None:
    """`rails` (of `import std.graph as rails`) hovered as `import std.graph`: the alias, the
    name the file uses, was left out."""
    path = tmp_path / "two.cvg"
    text = ('import std.graph as roads\nimport std.graph as rails\nroads.edge("a", "b").\n'
            'rails.edge("c", "d").\nimport std.intervals\n')
    a = analyze(str(path), text)
    for line, col, shown in [(0, 3, "import std.graph as roads"), (1, 3, "import std.graph as rails"),
                             (3, 2, "import std.graph as rails"), (4, 3, "import std.intervals")]:
        found = hover.hover(a, line, col)
        assert found is not None and found.contents.value.startswith(f"```cvg\n{shown}\n```"), (line, found)
