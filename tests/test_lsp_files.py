"""`converge lsp` when files come and go on disk: deletions reported by
``workspace/didChangeWatchedFiles`` and closing a file that no longer exists drop
the server's entries for it and clear its diagnostics; the files that import it
are checked again. Through a real LSP client over stdio (pytest-lsp), on a
workspace folder of its own."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient

from test_lsp import close_doc, diagnostics, open_doc  # the same client helpers as the other LSP tests

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("workspace")


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(
    server_command=[sys.executable, "-m", "converge_rules", "lsp"],
    server_env={**os.environ, "PYTHONPATH": str(ROOT)}))
async def client(lsp_client: LanguageClient, workspace: Path):
    registered: list[lsp.Registration] = []

    @lsp_client.feature(lsp.CLIENT_REGISTER_CAPABILITY)
    def on_register(params: lsp.RegistrationParams) -> None:
        registered.extend(params.registrations)

    lsp_client.registered = registered  # type: ignore[attr-defined]
    await lsp_client.initialize_session(lsp.InitializeParams(
        capabilities=lsp.ClientCapabilities(workspace=lsp.WorkspaceClientCapabilities(
            did_change_watched_files=lsp.DidChangeWatchedFilesClientCapabilities(dynamic_registration=True))),
        root_uri=workspace.as_uri(),
        workspace_folders=[lsp.WorkspaceFolder(uri=workspace.as_uri(), name="ws")],
        initialization_options={"debounce": 0.05}))
    yield
    await lsp_client.shutdown_session()


def watched(client: LanguageClient, *changes: tuple[Path, lsp.FileChangeType]) -> None:
    client.workspace_did_change_watched_files(lsp.DidChangeWatchedFilesParams(
        [lsp.FileEvent(uri=p.as_uri(), type=t) for p, t in changes]))


async def references(client: LanguageClient, path: Path, line: int, character: int) -> list[str]:
    refs = await client.text_document_references_async(lsp.ReferenceParams(
        text_document=lsp.TextDocumentIdentifier(uri=path.as_uri()), position=lsp.Position(line, character),
        context=lsp.ReferenceContext(include_declaration=True)))
    return sorted({r.uri for r in refs or []})


async def test_the_server_asks_to_watch_rule_files(client: LanguageClient) -> None:
    async def wait() -> list[lsp.Registration]:
        while not client.registered:  # type: ignore[attr-defined]
            await asyncio.sleep(0.05)
        return client.registered  # type: ignore[attr-defined]

    (registration,) = await asyncio.wait_for(wait(), 10)
    assert registration.method == lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES
    assert registration.register_options["watchers"] == [{"globPattern": "**/*.cvg"}]


async def test_a_deleted_import_is_reported_in_its_importer_and_its_index_entries_go(
        client: LanguageClient, workspace: Path) -> None:
    d = workspace / "del"
    d.mkdir()
    common, user, main = d / "common.cvg", d / "user.cvg", d / "main.cvg"
    common.write_text("input relation edge(a: str, b: str)\n", encoding="utf-8")
    user.write_text('import "./common.cvg" as common\nrelation q(a: str)\nq(x) :- common.edge(x, _).\n',
                    encoding="utf-8")
    main.write_text('import "./common.cvg" as common\nrelation p(a: str)\np(x) :- common.edge(x, _).\n',
                    encoding="utf-8")
    mu = open_doc(client, main)
    assert await diagnostics(client, mu, lambda ds: True) == []
    # user.cvg (not open) is indexed: it refers to common.edge too
    assert await references(client, main, 2, 17) == sorted(p.as_uri() for p in (common, main, user))
    common.unlink()
    watched(client, (common, lsp.FileChangeType.Deleted))
    diags = await diagnostics(client, mu, lambda ds: bool(ds))
    assert any("common.cvg" in d.message for d in diags), diags
    assert await diagnostics(client, common.as_uri(), lambda ds: not ds) == []  # nothing left shown for it
    assert common.as_uri() not in await references(client, main, 2, 17)
    common.write_text("input relation edge(a: str, b: str)\n", encoding="utf-8")
    watched(client, (common, lsp.FileChangeType.Created))
    assert await diagnostics(client, mu, lambda ds: not ds) == []
    user.unlink()
    watched(client, (user, lsp.FileChangeType.Deleted))
    await asyncio.sleep(0.3)
    assert user.as_uri() not in await references(client, main, 2, 17)
    close_doc(client, mu)


async def test_closing_a_file_deleted_on_disk_drops_it(client: LanguageClient, workspace: Path) -> None:
    d = workspace / "close"
    d.mkdir()
    gone, main = d / "gone.cvg", d / "main.cvg"
    gone.write_text("input relation edge(a: str, b: str)\nrelation unused(a: str)\n", encoding="utf-8")
    main.write_text('import "./gone.cvg" as gone\nrelation q(a: str)\nq(x) :- gone.edge(x, _).\n', encoding="utf-8")
    gu, mu = open_doc(client, gone), open_doc(client, main)
    assert any(d.code == "W200" for d in await diagnostics(client, gu, lambda ds: bool(ds)))
    assert await diagnostics(client, mu, lambda ds: True) == []
    gone.unlink()  # the editor deletes the file, then closes its buffer (no watched-files event)
    close_doc(client, gu)
    assert await diagnostics(client, gu, lambda ds: not ds) == []
    diags = await diagnostics(client, mu, lambda ds: bool(ds))  # the importer now reads the disk
    assert any("gone.cvg" in d.message for d in diags), diags
    close_doc(client, mu)


async def test_a_fifo_named_like_a_rule_file_does_not_block_the_server(client: LanguageClient, workspace: Path) -> None:
    """The project index opened every *.cvg under the workspace: a FIFO named x.cvg (or a hidden
    editor lock file) blocked the server on its first references request, for good."""
    d = workspace / "fifo"
    d.mkdir()
    main = d / "main.cvg"
    main.write_text("relation p(a: str)\np(\"a\").\n", encoding="utf-8")
    os.mkfifo(d / "pipe.cvg")
    (d / ".#main.cvg").write_text("not a rule file", encoding="utf-8")
    mu = open_doc(client, main)
    refs = await asyncio.wait_for(references(client, main, 0, 10), 20)
    assert refs == [main.as_uri()]
    close_doc(client, mu)
