"""`converge lsp` through a real LSP client over stdio (pytest-lsp), on the
project's own examples and standard library."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient

from converge_rules.syntax.format import format_source

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
STD = ROOT / "stdlib_rules" / "std"

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(
    server_command=[sys.executable, "-m", "converge_rules", "lsp"],
    server_env={**os.environ, "PYTHONPATH": str(ROOT)}))
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(lsp.InitializeParams(
        capabilities=lsp.ClientCapabilities(), root_uri=EXAMPLES.as_uri(),
        workspace_folders=[lsp.WorkspaceFolder(uri=EXAMPLES.as_uri(), name="examples")],
        initialization_options={"debounce": 0.05}))
    yield
    await lsp_client.shutdown_session()


def uri(path: Path) -> str:
    return path.as_uri()


_versions: dict[str, int] = {}


def open_doc(client: LanguageClient, path: Path, text: str | None = None) -> str:
    u = uri(path)
    _versions[u] = 1
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(
        uri=u, language_id="converge", version=1, text=path.read_text(encoding="utf-8") if text is None else text)))
    return u


def change_doc(client: LanguageClient, u: str, text: str) -> None:
    _versions[u] += 1
    client.text_document_did_change(lsp.DidChangeTextDocumentParams(
        lsp.VersionedTextDocumentIdentifier(uri=u, version=_versions[u]),
        [lsp.TextDocumentContentChangeWholeDocument(text=text)]))


def close_doc(client: LanguageClient, u: str) -> None:
    client.text_document_did_close(lsp.DidCloseTextDocumentParams(lsp.TextDocumentIdentifier(uri=u)))


async def diagnostics(client: LanguageClient, u: str, until, timeout: float = 20.0) -> list[lsp.Diagnostic]:
    """Wait until the diagnostics published for ``u`` satisfy ``until``."""
    async def wait() -> list[lsp.Diagnostic]:
        while True:
            if u in client.diagnostics and until(list(client.diagnostics[u])):
                return list(client.diagnostics[u])
            await client.wait_for_notification(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    return await asyncio.wait_for(wait(), timeout)


def pos(text: str, needle: str, nth: int = 0, offset: int = 0) -> lsp.Position:
    """The position of the nth occurrence of needle (plus offset characters) in text."""
    at = -1
    for _ in range(nth + 1):
        at = text.index(needle, at + 1)
    at += offset
    line = text.count("\n", 0, at)
    return lsp.Position(line, at - (text.rfind("\n", 0, at) + 1))


def ident(path: Path) -> lsp.TextDocumentIdentifier:
    return lsp.TextDocumentIdentifier(uri=uri(path))


# ------------------------------------------------------------------ diagnostics

async def test_undefined_relation_is_reported_then_cleared(client: LanguageClient) -> None:
    path = EXAMPLES / "failures" / "undefined_relation.cvg"
    text = path.read_text(encoding="utf-8")
    u = open_doc(client, path)
    diags = await diagnostics(client, u, lambda ds: bool(ds))
    assert [d.code for d in diags] == ["E200"]
    d = diags[0]
    start = pos(text, "edges(y, z)")
    assert d.range.start == start
    assert d.range.end == lsp.Position(start.line, start.character + len("edges(y, z)"))
    assert d.severity == lsp.DiagnosticSeverity.Error
    assert "undefined relation 'edges'" in d.message and "did you mean 'edge'?" in d.message
    change_doc(client, u, text.replace("edges(y, z)", "edge(y, z)"))
    assert await diagnostics(client, u, lambda ds: not ds) == []
    close_doc(client, u)


async def test_lint_warnings_and_inline_suppression(client: LanguageClient, tmp_path: Path) -> None:
    path = tmp_path / "lint.cvg"
    text = 'relation edge(a: str, b: str)\nrelation path(a: str, b: str)\nedge("a", "b").\npath(x, x) :- edge(x, z).\n'
    path.write_text(text, encoding="utf-8")
    u = open_doc(client, path)
    diags = await diagnostics(client, u, lambda ds: any(d.code == "W100" for d in ds))
    w100 = [d for d in diags if d.code == "W100"]
    assert all(d.severity == lsp.DiagnosticSeverity.Warning for d in w100)
    assert w100[0].range.start.line == 3
    change_doc(client, u, text.replace("edge(x, z).", "edge(x, z).  # converge: disable=W100"))
    diags = await diagnostics(client, u, lambda ds: not any(d.code == "W100" for d in ds))
    assert all(d.code != "W100" for d in diags)
    close_doc(client, u)


async def test_importers_are_rechecked(client: LanguageClient, tmp_path: Path) -> None:
    common = tmp_path / "common.cvg"
    main = tmp_path / "main.cvg"
    common.write_text("input relation edge(a: str, b: str)\n", encoding="utf-8")
    main.write_text('import "./common.cvg" as common\nrelation p(a: str)\np(x) :- common.edge(x, _).\n', encoding="utf-8")
    mu = open_doc(client, main)
    assert await diagnostics(client, mu, lambda ds: True) == []
    cu = open_doc(client, common)
    await diagnostics(client, cu, lambda ds: True)
    change_doc(client, cu, "input relation edges(a: str, b: str)\n")  # unsaved: the importer sees the buffer
    diags = await diagnostics(client, mu, lambda ds: any(d.code == "E200" for d in ds))
    assert "common.edge" in diags[0].message
    change_doc(client, cu, "input relation edge(a: str, b: str)\n")
    assert await diagnostics(client, mu, lambda ds: not ds) == []
    close_doc(client, cu)
    close_doc(client, mu)


async def test_a_broken_file_never_crashes_the_server(client: LanguageClient, tmp_path: Path) -> None:
    path = tmp_path / "broken.cvg"
    good = 'relation edge(a: str, b: str)\nedge("a", "b").\n'
    path.write_text(good, encoding="utf-8")
    u = open_doc(client, path)
    await diagnostics(client, u, lambda ds: not ds)
    for broken in ["", 'relation edge(a: str, b: str)\nedge("a", "b"\n', "agent {{{ ((( ::- \x00 'x", "\n" * 3 + "}"]:
        change_doc(client, u, broken)
        if broken.strip():
            diags = await diagnostics(client, u, lambda ds: any(d.code in ("E100", "E101") for d in ds))
            assert diags[0].severity == lsp.DiagnosticSeverity.Error
        # every request still answers (from the last text that parsed, or nothing)
        await client.text_document_hover_async(lsp.HoverParams(ident(path), lsp.Position(0, 10)))
        await client.text_document_completion_async(lsp.CompletionParams(ident(path), lsp.Position(0, 0)))
        await client.text_document_document_symbol_async(lsp.DocumentSymbolParams(ident(path)))
        await client.text_document_formatting_async(lsp.DocumentFormattingParams(
            ident(path), lsp.FormattingOptions(tab_size=2, insert_spaces=True)))
        await client.text_document_code_lens_async(lsp.CodeLensParams(ident(path)))
        await client.text_document_definition_async(lsp.DefinitionParams(ident(path), lsp.Position(1, 1)))
    change_doc(client, u, good)
    assert await diagnostics(client, u, lambda ds: not ds) == []
    change_doc(client, u, good + "edge(\n")
    await diagnostics(client, u, lambda ds: bool(ds))
    hover = await client.text_document_hover_async(lsp.HoverParams(ident(path), lsp.Position(0, 10)))
    assert hover is not None and "edge(a: str, b: str)" in hover.contents.value  # the last text that parsed
    close_doc(client, u)


# ------------------------------------------------------------------ hover

async def test_hover(client: LanguageClient) -> None:
    path = EXAMPLES / "loans" / "loans.cvg"
    text = path.read_text(encoding="utf-8")
    open_doc(client, path)
    # a relation: its columns, types, and where it is declared
    at = pos(text, "loan(l, a, amount)")
    hover = await client.text_document_hover_async(lsp.HoverParams(ident(path), at))
    assert hover is not None
    assert "input relation loan(id: str, applicant: str, amount: int)" in hover.contents.value
    assert "loans.cvg:" in hover.contents.value
    # a variable: its inferred type
    hover = await client.text_document_hover_async(lsp.HoverParams(ident(path), pos(text, "amount)", 0)))
    assert hover is not None and "amount: int" in hover.contents.value
    # an agent: description and failure policy
    name = text.split("agent ", 1)[1].split()[0]
    hover = await client.text_document_hover_async(lsp.HoverParams(ident(path), pos(text, "agent " + name, 0, 7)))
    assert hover is not None and f"agent {name}" in hover.contents.value and "on_failure" in hover.contents.value
    close_doc(client, ident(path).uri)


async def test_hover_builtin_keyed_relation_and_invariant(client: LanguageClient, tmp_path: Path) -> None:
    path = tmp_path / "h.cvg"
    text = ('relation best(k: str, v: int) key(k) prefer min(v)\nrelation name(s: str)\n'
            'best(s, len(s)) :- name(s).\n'
            'invariant short "names are short" {\n  forbid name(s), len(s) > 10\n}\n'
            'test "t" {\n  given { name("ab"). }\n  expect violation short\n}\n')
    path.write_text(text, encoding="utf-8")
    open_doc(client, path)
    hover = await client.text_document_hover_async(lsp.HoverParams(ident(path), pos(text, "len(s))", 0, 1)))
    assert hover is not None and "len(s: str) -> int" in hover.contents.value
    hover = await client.text_document_hover_async(lsp.HoverParams(ident(path), pos(text, "best(s", 0, 1)))
    assert hover is not None and "key(k) prefer min(v)" in hover.contents.value
    hover = await client.text_document_hover_async(lsp.HoverParams(ident(path), pos(text, "violation short", 0, 11)))
    assert hover is not None and "names are short" in hover.contents.value
    locs = await client.text_document_definition_async(lsp.DefinitionParams(ident(path), pos(text, "violation short", 0, 11)))
    assert locs and locs[0].range.start == pos(text, "short")
    close_doc(client, ident(path).uri)


# ------------------------------------------------------------------ navigation

async def test_definition_of_a_stdlib_relation_lands_in_the_module(client: LanguageClient) -> None:
    path = EXAMPLES / "stdlib" / "graph_example.cvg"
    text = path.read_text(encoding="utf-8")
    open_doc(client, path)
    locs = await client.text_document_definition_async(lsp.DefinitionParams(ident(path), pos(text, "graph.reach", 0, 7)))
    assert locs and len(locs) == 1
    assert locs[0].uri == uri(STD / "graph.cvg")
    std_text = (STD / "graph.cvg").read_text(encoding="utf-8")
    decl = pos(std_text, "relation reach", 0, len("relation "))
    assert locs[0].range.start == decl
    # the module part, and the import itself, lead to the file
    locs = await client.text_document_definition_async(lsp.DefinitionParams(ident(path), pos(text, "graph.reach", 0, 2)))
    assert locs and locs[0].uri == uri(STD / "graph.cvg")
    locs = await client.text_document_definition_async(lsp.DefinitionParams(ident(path), pos(text, "import std.graph", 0, 9)))
    assert locs and locs[0].uri == uri(STD / "graph.cvg")
    # a local relation: its declaration in this file
    locs = await client.text_document_definition_async(lsp.DefinitionParams(ident(path), pos(text, "depends(a, b)", 0, 2)))
    assert locs and locs[0].uri == uri(path) and locs[0].range.start == pos(text, "depends(service", 0)
    close_doc(client, uri(path))


async def test_references(client: LanguageClient) -> None:
    path = EXAMPLES / "stdlib" / "graph_example.cvg"
    text = path.read_text(encoding="utf-8")
    open_doc(client, path)
    refs = await client.text_document_references_async(lsp.ReferenceParams(
        text_document=ident(path), position=pos(text, "depends(a, b)", 0, 1), context=lsp.ReferenceContext(include_declaration=True)))
    assert refs is not None
    mine = sorted((r.range.start.line, r.range.start.character) for r in refs if r.uri == uri(path))
    expected = sorted((p.line, p.character) for p in
                      (pos(text, "depends(", k) for k in range(text.count("depends("))))
    assert mine == expected
    refs = await client.text_document_references_async(lsp.ReferenceParams(
        text_document=ident(path), position=pos(text, "graph.reach", 0, 7), context=lsp.ReferenceContext(include_declaration=False)))
    assert refs and all(r.uri in (uri(path), uri(STD / "graph.cvg")) or r.uri.endswith(".cvg") for r in refs)
    assert any(r.uri == uri(path) for r in refs) and any(r.uri == uri(STD / "graph.cvg") for r in refs)
    close_doc(client, uri(path))


async def test_rename_relation_and_variable(client: LanguageClient) -> None:
    path = EXAMPLES / "stdlib" / "graph_example.cvg"
    text = path.read_text(encoding="utf-8")
    open_doc(client, path)
    edit = await client.text_document_rename_async(lsp.RenameParams(ident(path), pos(text, "needs(a, b)", 0, 1), "requires"))
    assert edit is not None and edit.changes is not None
    assert list(edit.changes) == [uri(path)]
    assert {(e.range.start.line, e.new_text) for e in edit.changes[uri(path)]} == {
        (pos(text, "relation needs").line, "requires"), (pos(text, "needs(a, b) :-").line, "requires")}
    # a variable: only inside its rule
    line = pos(text, "indirect(a, b, n) :-")
    edit = await client.text_document_rename_async(lsp.RenameParams(ident(path), lsp.Position(line.line, line.character + 15), "hops"))
    assert edit is not None and edit.changes is not None
    edits = edit.changes[uri(path)]
    assert len(edits) == 3 and all(e.range.start.line == line.line and e.new_text == "hops" for e in edits)
    # the standard library is not the project's to rename
    with pytest.raises(Exception, match="not the project's"):
        await client.text_document_rename_async(lsp.RenameParams(ident(path), pos(text, "graph.reach", 0, 7), "r2"))
    with pytest.raises(Exception, match="not a name"):
        await client.text_document_rename_async(lsp.RenameParams(ident(path), pos(text, "needs(a, b)", 0, 1), "9x"))
    close_doc(client, uri(path))


# ------------------------------------------------------------------ completion, formatting, symbols

async def test_completion(client: LanguageClient) -> None:
    path = EXAMPLES / "stdlib" / "graph_example.cvg"
    text = path.read_text(encoding="utf-8")
    open_doc(client, path)
    result = await client.text_document_completion_async(lsp.CompletionParams(ident(path), pos(text, "needs(a, b) :-", 0, 0)))
    items = {i.label: i for i in (result.items if isinstance(result, lsp.CompletionList) else result)}
    assert items["depends"].detail == "input relation depends(service: str, on: str)"
    assert "graph.reach" in items and items["graph.reach"].detail.startswith("relation graph.reach(")
    assert items["substr"].kind == lsp.CompletionItemKind.Function and "substr(s: str" in items["substr"].detail
    assert items["relation"].kind == lsp.CompletionItemKind.Keyword
    # after `graph.`: the module's relations
    at = pos(text, "graph.reach", 0, 6)
    result = await client.text_document_completion_async(lsp.CompletionParams(ident(path), at))
    labels = {i.label for i in (result.items if isinstance(result, lsp.CompletionList) else result)}
    assert "reach" in labels and "edge" in labels and "depends" not in labels
    # after `import `: the standard modules
    at = pos(text, "import std.graph", 0, 7)
    result = await client.text_document_completion_async(lsp.CompletionParams(ident(path), at))
    labels = {i.label for i in (result.items if isinstance(result, lsp.CompletionList) else result)}
    assert {"std.graph", "std.access", "std.intervals", "std.validate"} <= labels
    close_doc(client, uri(path))


async def test_formatting_is_converge_fmt(client: LanguageClient) -> None:
    path = EXAMPLES / "loans" / "unsaved_scratch.cvg"  # a buffer that is not on disk
    text = 'relation  edge(a:str,b:str)\nedge("a","b").   # kept\npath(x,y):-edge(x,y).\nrelation path(a: str, b: str)\n'
    u = open_doc(client, path, text)
    edits = await client.text_document_formatting_async(lsp.DocumentFormattingParams(
        lsp.TextDocumentIdentifier(uri=u), lsp.FormattingOptions(tab_size=2, insert_spaces=True)))
    assert edits is not None and len(edits) == 1
    assert edits[0].new_text == format_source(text, str(path))
    assert edits[0].range.start == lsp.Position(0, 0)
    change_doc(client, u, edits[0].new_text)
    again = await client.text_document_formatting_async(lsp.DocumentFormattingParams(
        lsp.TextDocumentIdentifier(uri=u), lsp.FormattingOptions(tab_size=2, insert_spaces=True)))
    assert again is not None and len(again) == 0
    close_doc(client, u)


async def test_document_symbols_of_the_largest_stdlib_module(client: LanguageClient) -> None:
    largest = max(STD.glob("*.cvg"), key=lambda p: p.stat().st_size)
    text = largest.read_text(encoding="utf-8")
    open_doc(client, largest)
    symbols = await client.text_document_document_symbol_async(lsp.DocumentSymbolParams(ident(largest)))
    assert symbols
    relations = [s for s in symbols if s.kind == lsp.SymbolKind.Struct]
    assert len(relations) == text.count("\nrelation ") + text.count("\ninput relation ") + text.startswith("relation ")
    first = relations[0]
    assert text.split("\n")[first.selection_range.start.line][first.selection_range.start.character:].startswith(first.name)
    tests = [s for s in symbols if s.kind == lsp.SymbolKind.Method and s.detail == "test"]
    assert len(tests) == text.count('\ntest "')
    close_doc(client, uri(largest))


# ------------------------------------------------------------------ tests as lenses

async def test_code_lenses_run_tests_and_publish_failures(client: LanguageClient) -> None:
    path = EXAMPLES / "loans" / "loans.cvg"
    text = path.read_text(encoding="utf-8")
    u = open_doc(client, path)
    lenses = await client.text_document_code_lens_async(lsp.CodeLensParams(ident(path)))
    runs = [lens for lens in lenses if lens.command.title == "▶ run test"]
    assert len(runs) == text.count('\ntest "')
    assert runs[0].range.start.line == pos(text, 'test "').line
    summary = await client.workspace_execute_command_async(lsp.ExecuteCommandParams(
        command=runs[0].command.command, arguments=runs[0].command.arguments))
    assert summary["passed"] == 1 and summary["failed"] == 0
    # break an expectation in the buffer: the failure is a diagnostic with the why-not text
    broken = text.replace('decision("l2", "approve"). decided("l2").', 'decision("l2", "reject"). decided("l2").', 1)
    assert broken != text
    change_doc(client, u, broken)
    await diagnostics(client, u, lambda ds: not ds)
    name = "a loan within the limits is approved"
    summary = await client.workspace_execute_command_async(lsp.ExecuteCommandParams(
        command="converge.runTests", arguments=[u, name]))
    assert summary["failed"] == 1
    diags = await diagnostics(client, u, lambda ds: any(d.source == "converge test" for d in ds))
    failure = next(d for d in diags if d.code == "test-missing")
    assert failure.range.start.line == pos(broken, 'decision("l2", "reject"). decided').line
    assert 'expected fact missing: decision("l2", "reject")' in failure.message
    assert "why not:" in failure.message
    # editing clears the test diagnostics
    change_doc(client, u, text)
    await diagnostics(client, u, lambda ds: not ds)
    close_doc(client, u)


async def test_positions_count_utf16_units(client: LanguageClient, tmp_path: Path) -> None:
    """Columns after a character outside the BMP differ between code points and UTF-16."""
    path = tmp_path / "emoji.cvg"
    text = 'relation tag(s: str, n: int)\nrelation e(n: int)\ntag("🙂🙂", 1). e(n) :- tag("🙂", n), nope(n).\n'
    path.write_text(text, encoding="utf-8")
    u = open_doc(client, path)
    diags = await diagnostics(client, u, lambda ds: any(d.code == "E200" for d in ds))
    d = next(d for d in diags if d.code == "E200")
    line = text.split("\n")[2]
    utf16 = len(line[:line.index("nope")].encode("utf-16-le")) // 2
    assert d.range.start == lsp.Position(2, utf16)
    at = lsp.Position(2, len(line[:line.index("tag(\"🙂\", n)")].encode("utf-16-le")) // 2 + 1)
    hover = await client.text_document_hover_async(lsp.HoverParams(ident(path), at))
    assert hover is not None and "relation tag(s: str, n: int)" in hover.contents.value
    assert hover.range.start.character == at.character - 1
    close_doc(client, u)


async def test_an_edit_past_a_unicode_line_separator_lands_where_the_editor_made_it(client: LanguageClient,
                                                                                      tmp_path: Path) -> None:
    """LSP lines end at LF, CRLF or CR only: U+2028 or U+0085 in a comment or a string is not a line
    break. An incremental edit on a later line must change that line of the server's copy (it changed
    another, so diagnostics pointed elsewhere and formatting rewrote the wrong text)."""
    path = tmp_path / "separators.cvg"
    text = ('relation p(x: str)  # a\u2028b\u0085c\n'
            'relation q(x: str)\n'
            'p("d\u2028e").\n'
            'q(x) :- p(x).\n')
    path.write_text(text, encoding="utf-8")
    u = open_doc(client, path)
    await diagnostics(client, u, lambda ds: ds == [])
    _versions[u] += 1
    client.text_document_did_change(lsp.DidChangeTextDocumentParams(      # q(x) :- p(x).  ->  q(x) :- r( x ).
        lsp.VersionedTextDocumentIdentifier(uri=u, version=_versions[u]),
        [lsp.TextDocumentContentChangePartial(range=lsp.Range(lsp.Position(3, 8), lsp.Position(3, 12)), text="r( x )")]))
    edited = text.replace("q(x) :- p(x).", "q(x) :- r( x ).")
    diags = await diagnostics(client, u, lambda ds: any(d.code == "E200" for d in ds))
    assert [(d.code, d.range.start) for d in diags] == [("E200", lsp.Position(3, 8))]
    edits = await client.text_document_formatting_async(lsp.DocumentFormattingParams(
        lsp.TextDocumentIdentifier(uri=u), lsp.FormattingOptions(tab_size=2, insert_spaces=True)))
    assert edits is not None and len(edits) == 1
    assert edits[0].new_text == format_source(edited, str(path))
    assert edits[0].range == lsp.Range(lsp.Position(0, 0), lsp.Position(4, 0))
    close_doc(client, u)

