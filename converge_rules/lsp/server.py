"""``converge lsp``: the language server (pygls) over stdio.

The server keeps, per open document, the last analysis (``analysis.analyze``:
the compilation with the editor's unsaved buffers, lints and an index of
names) and the last one whose file parsed, so navigation keeps working while
a file is broken. Diagnostics are recomputed after a pause in typing
(``debounce`` seconds, 0.25 by default, settable by the client's
``initializationOptions``) for the changed document and for every open
document whose compilation includes it (the files that import it). Every
handler catches its own failures: a bug answers ``null`` and logs a message
instead of taking the server down.

The features live in their own modules: hover, navigation (definition,
references, rename), completion, symbols, lenses (tests); formatting is
``syntax.format.format_source``, the same code as ``converge fmt``.
"""

import asyncio
import functools
import logging
import os
import re
import threading
from typing import Any, Callable, Iterable, Sequence

import attrs
from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path
from pygls.workspace import TextDocument, Workspace

from ..diagnostics import normalize_newlines
from ..regularfile import read_regular_text
from .analysis import Analysis, analyze
from .convert import diagnostics_for

NAME = "converge"
DEFAULT_DEBOUNCE = 0.25
MAX_PROJECT_FILES = 500
REQUEST_FAILED = -32803  # LSP's RequestFailed: a valid request the server cannot carry out
log = logging.getLogger(__name__)


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def lsp_lines(text: str) -> tuple[str, ...]:
    """The lines of a text as the protocol counts them, each with its line end: only LF, CRLF
    and CR end a line (``str.splitlines`` also breaks at U+2028, U+0085, form feed, ...)."""
    return tuple(m.group(0) for m in _LINE.finditer(text))


class _Document(TextDocument):
    """A pygls document whose lines are the protocol's: pygls splits them with
    ``str.splitlines``, so an incremental edit after a U+2028 in a comment or string
    changed another line of the server's copy than the editor's."""

    @property
    def lines(self) -> tuple[str, ...]:
        return lsp_lines(self.source)


class _Workspace(Workspace):
    def _create_text_document(self, doc_uri: str, source: str | None = None, version: int | None = None,
                              language_id: str | None = None) -> TextDocument:
        return _Document(doc_uri, source=source, version=version, language_id=language_id,
                         sync_kind=self._sync_kind, position_codec=self._position_codec)


class ConvergeServer(LanguageServer):
    """A LanguageServer with the per-document state of the rule files."""

    def __init__(self) -> None:
        from .. import __version__

        super().__init__(NAME, __version__, text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental)
        self.debounce = DEFAULT_DEBOUNCE
        self.disabled: frozenset[str] = frozenset()  # warning codes not reported (initializationOptions "disable")
        self.analyses: dict[str, tuple[int | None, Analysis]] = {}   # uri -> (version, analysis)
        self.good: dict[str, Analysis] = {}                          # uri -> last analysis that parsed
        self.pending: dict[str, asyncio.TimerHandle] = {}
        self.test_diagnostics: dict[str, list[lsp.Diagnostic]] = {}
        # real path -> (mtime, {imported file: open buffer text or None}, analysis) of files not open
        self.closed: dict[str, tuple[float, dict[str, str | None], Analysis]] = {}
        self.project_lock = threading.Lock()
        self.main_loop: asyncio.AbstractEventLoop | None = None
        self.formatted: tuple[str, str, str | None] | None = None     # (text, path, formatted) last asked

    # ---------------------------------------------------------------- documents
    def path_of(self, uri: str) -> str:
        path = to_fs_path(uri)
        if path is None:  # an unsaved buffer (untitled:...): a file in the working directory
            path = os.path.join(os.getcwd(), "untitled.cvg")
        return path

    def overlay(self) -> dict[str, str]:
        """Unsaved text of every open document, by real path."""
        out = {}
        for uri, doc in sorted(self.workspace.text_documents.items()):
            out[os.path.realpath(self.path_of(uri))] = doc.source
        return out

    def analysis(self, uri: str) -> Analysis:
        """The analysis of an open document at its current version (computed when stale)."""
        doc = self.workspace.get_text_document(uri)
        cached = self.analyses.get(uri)
        if cached is not None and cached[0] == doc.version and cached[1].text == doc.source:
            return cached[1]
        result = analyze(self.path_of(uri), doc.source, self.overlay(), self.disabled)
        self.analyses[uri] = (doc.version, result)
        if result.source is not None:
            self.good[uri] = result
        return result

    def navigable(self, uri: str) -> Analysis:
        """The current analysis if the file parses, else the last one that did."""
        current = self.analysis(uri)
        if current.source is None and uri in self.good:
            return self.good[uri]
        return current

    # ---------------------------------------------------------------- positions
    # The analysis counts columns in code points; the client counts in its position
    # encoding (UTF-16 unless it offers another): convert at the edge, both ways.
    def lines_of(self, uri: str) -> Sequence[str]:
        if uri in self.workspace.text_documents:
            return self.workspace.get_text_document(uri).lines
        try:
            return lsp_lines(read_regular_text(self.path_of(uri)))
        except (OSError, UnicodeDecodeError):
            return ()

    def at(self, uri: str, position: lsp.Position) -> tuple[int, int]:
        """A client position as (line, code point column)."""
        p = self.workspace.position_codec.position_from_client_units(self.lines_of(uri), position)
        return p.line, p.character

    def out(self, uri: str, rng: lsp.Range) -> lsp.Range:
        """A range in code points as the client counts."""
        return self.workspace.position_codec.range_to_client_units(self.lines_of(uri), rng)

    def out_locations(self, locations: list[lsp.Location] | None) -> list[lsp.Location] | None:
        if locations is None:
            return None
        return [lsp.Location(uri=loc.uri, range=self.out(loc.uri, loc.range)) for loc in locations]

    def publish(self, uri: str) -> None:
        result = self.analysis(uri)
        found = diagnostics_for(result.diagnostics, result.real, result.text) + self.test_diagnostics.get(uri, [])
        diags = [attrs.evolve(d, range=self.out(uri, d.range)) for d in found]  # the kept ones stay in code points
        doc = self.workspace.get_text_document(uri)
        self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=diags,
                                                                              version=doc.version))

    def refresh(self, uri: str) -> None:
        """Check a document and the open documents that import it, off the event loop.

        The work runs on the server's thread pool so that requests keep being
        answered meanwhile; results are published on the loop, and only for the
        version they were computed from. Then the formatting of the document and
        the project index (for references and rename) are prepared."""
        self.pending.pop(uri, None)
        if uri not in self.workspace.text_documents:
            return
        real = os.path.realpath(self.path_of(uri))
        targets = [uri] + [other for other in sorted(self.workspace.text_documents)
                           if other != uri and other in self.analyses and real in self.analyses[other][1].files]
        snapshot = {}
        for target in targets:
            doc = self.workspace.get_text_document(target)
            snapshot[target] = (doc.version, doc.source, self.path_of(target))
        loop = asyncio.get_running_loop()
        self.thread_pool.submit(guarded, self, "diagnostics",
                                functools.partial(self.work, loop, uri, snapshot, self.overlay()))

    def work(self, loop: asyncio.AbstractEventLoop, uri: str, snapshot: dict[str, tuple[int, str, str]],
             overlay: dict[str, str]) -> None:
        """(On a worker thread.) Analyse, hand the results to the loop, then prepare formatting and the project."""
        for target, (version, text, path) in snapshot.items():
            result = analyze(path, text, overlay, self.disabled)
            loop.call_soon_threadsafe(self.done, target, version, result)
        version, text, path = snapshot[uri]
        self.format_text(text, path)
        self.closed_analyses(overlay)

    def done(self, uri: str, version: int, result: Analysis) -> None:
        """(On the loop.) Keep and publish an analysis if the document is still at its version."""
        if uri not in self.workspace.text_documents or self.workspace.get_text_document(uri).version != version:
            return
        self.analyses[uri] = (version, result)
        if result.source is not None:
            self.good[uri] = result
        guarded(self, "diagnostics", functools.partial(self.publish, uri))

    def format_text(self, text: str, path: str) -> str | None:
        """``converge fmt`` of a text (None: it does not parse); the last answer is kept."""
        from ..diagnostics import ConvergeError
        from ..syntax.format import format_source

        cached = self.formatted
        if cached is not None and cached[0] == text and cached[1] == path:
            return cached[2]
        try:
            formatted: str | None = format_source(text, path)
        except ConvergeError:
            formatted = None
        self.formatted = (text, path, formatted)
        return formatted

    def schedule(self, uri: str) -> None:
        handle = self.pending.pop(uri, None)
        if handle is not None:
            handle.cancel()
        self.pending[uri] = asyncio.get_running_loop().call_later(self.debounce, self.refresh, uri)

    # ---------------------------------------------------------------- the project
    def roots(self) -> list[str]:
        folders = [to_fs_path(f.uri) for f in self.workspace.folders.values()]
        if not folders and self.workspace.root_path:
            folders = [self.workspace.root_path]
        return sorted({os.path.realpath(f) for f in folders if f})

    def project_files(self) -> list[str]:
        """The ``*.cvg`` files of the workspace folders (regular files; hidden ones and hidden
        directories skipped), sorted."""
        found: list[str] = []
        for root in self.roots():
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in ("node_modules", "__pycache__"))
                # regular files only: opening a FIFO named x.cvg would block the server for good
                found.extend(path for path in (os.path.join(dirpath, f) for f in sorted(filenames)
                                               if f.endswith(".cvg") and not f.startswith("."))
                             if os.path.isfile(path))
                if len(found) >= MAX_PROJECT_FILES:
                    return found[:MAX_PROJECT_FILES]
        return found

    def project(self) -> Iterable[Analysis]:
        """An analysis of every open document and project file."""
        for uri in sorted(self.workspace.text_documents):
            yield self.analysis(uri)
        yield from self.closed_analyses(self.overlay())

    def closed_analyses(self, overlay: dict[str, str]) -> list[Analysis]:
        """Aalyses of the project files that are not open, cached while neither the file
        (its mtime) nor an open buffer it imports changes. One thread at a time builds them."""
        with self.project_lock:
            return list(self._closed_analyses(overlay))

    def _closed_analyses(self, overlay: dict[str, str]) -> Iterable[Analysis]:
        for path in self.project_files():
            real = os.path.realpath(path)
            if real in overlay:
                continue
            try:
                mtime = os.stat(real).st_mtime
            except OSError:
                continue
            cached = self.closed.get(real)
            if cached is not None and cached[0] == mtime and all(overlay.get(f) == t for f, t in cached[1].items()):
                yield cached[2]
                continue
            try:
                text = read_regular_text(real)
            except (OSError, UnicodeDecodeError):
                continue
            result = analyze(path, text, overlay)
            self.closed[real] = (mtime, {f: overlay.get(f) for f in result.files}, result)
            yield result

    def forget(self, uri: str) -> None:
        """Drop what is kept of a document that is not open (its analyses, test results, a
        pending check) and clear its diagnostics in the editor."""
        for table in (self.analyses, self.good, self.test_diagnostics):
            table.pop(uri, None)
        handle = self.pending.pop(uri, None)
        if handle is not None:
            handle.cancel()
        self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    def files_changed(self, uris: Sequence[str], deleted: Sequence[str]) -> None:
        """Rule files changed, were created or were deleted on disk (``workspace/didChangeWatchedFiles``).

        The index of the files that are not open is rebuilt when next needed (an entry may
        belong to a deleted file, or depend on one: an import that now fails, or now works);
        a deleted file that is not open is forgotten, its diagnostics cleared; every open
        document is checked again (after the usual pause), as an import of it may be among
        the files."""
        with self.project_lock:
            self.closed.clear()
        for uri in deleted:
            if uri not in self.workspace.text_documents:  # an open buffer outlives its file
                self.forget(uri)
        if uris:
            for other in sorted(self.workspace.text_documents):
                self.analyses.pop(other, None)
                self.schedule(other)

    def read_only(self, real: str) -> bool:
        """Files a rename must not touch: the standard library, and files outside the workspace."""
        from ..compile.frontend import stdlib_dir

        std = os.path.realpath(stdlib_dir())
        if real.startswith(std + os.sep):
            return True
        roots = self.roots()
        return bool(roots) and not any(real.startswith(r + os.sep) for r in roots)


def guarded(server: LanguageServer, what: str, fn: Callable[[], Any]) -> Any:
    """Run a handler's body; a failure is logged to the client, never raised."""
    try:
        return fn()
    except Exception as err:  # the server must outlive any bug in one request
        report_failure(server, what, err)
        return None


def report_failure(server: LanguageServer, what: str, err: Exception) -> None:
    """Log a failed handler to stderr and to the client's log (sent from the event loop)."""
    log.exception("converge lsp: %s failed", what)
    params = lsp.LogMessageParams(type=lsp.MessageType.Error,
                                  message=f"converge: {what} failed: {type(err).__name__}: {err}")
    loop = getattr(server, "main_loop", None)
    try:
        if loop is not None and threading.current_thread() is not threading.main_thread():
            loop.call_soon_threadsafe(server.window_log_message, params)
        else:
            server.window_log_message(params)
    except Exception:
        pass


def safe(what: str) -> Callable:
    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def inner(ls: ConvergeServer, params: Any) -> Any:
            return guarded(ls, what, lambda: fn(ls, params))
        return inner
    return wrap


def create_server() -> ConvergeServer:
    """A server with every feature registered (not started)."""
    from . import completion, hover, lenses, navigation, symbols

    server = ConvergeServer()

    @server.feature(lsp.INITIALIZE)
    @safe("initialize")
    def initialize(ls: ConvergeServer, params: lsp.InitializeParams) -> None:
        ls.main_loop = asyncio.get_running_loop()
        ls.workspace.__class__ = _Workspace  # documents with the protocol's lines (see _Document)
        options = params.initialization_options
        if isinstance(options, dict) and isinstance(options.get("debounce"), (int, float)):
            ls.debounce = max(0.0, float(options["debounce"]))
        if isinstance(options, dict) and isinstance(options.get("disable"), list):
            from ..lint import WARNING_CODES

            ls.disabled = frozenset(str(c).upper() for c in options["disable"]) & frozenset(WARNING_CODES)
        from ..syntax.format import format_source

        format_source("relation warm(x: int)\n", "<warm-up>")  # build the parsers now, not on the first keystroke

    @server.feature(lsp.INITIALIZED)
    @safe("initialized")
    def initialized(ls: ConvergeServer, params: lsp.InitializedParams) -> None:
        workspace = ls.client_capabilities.workspace
        watched = workspace.did_change_watched_files if workspace is not None else None
        if watched is not None and watched.dynamic_registration:  # else the client watches files its own way, or not
            ls.client_register_capability(lsp.RegistrationParams([lsp.Registration(
                id="converge-rule-files", method=lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                register_options=lsp.DidChangeWatchedFilesRegistrationOptions(
                    watchers=[lsp.FileSystemWatcher(glob_pattern="**/*.cvg")]))]))

    @server.feature(lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    @safe("watched files")
    def did_change_watched_files(ls: ConvergeServer, params: lsp.DidChangeWatchedFilesParams) -> None:
        uris = [c.uri for c in params.changes]
        ls.files_changed(uris, [c.uri for c in params.changes if c.type == lsp.FileChangeType.Deleted])

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    @safe("open")
    def did_open(ls: ConvergeServer, params: lsp.DidOpenTextDocumentParams) -> None:
        ls.refresh(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    @safe("change")
    def did_change(ls: ConvergeServer, params: lsp.DidChangeTextDocumentParams) -> None:
        ls.test_diagnostics.pop(params.text_document.uri, None)
        ls.schedule(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
    @safe("save")
    def did_save(ls: ConvergeServer, params: lsp.DidSaveTextDocumentParams) -> None:
        ls.closed.clear()
        ls.refresh(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    @safe("close")
    def did_close(ls: ConvergeServer, params: lsp.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.forget(uri)
        real = os.path.realpath(ls.path_of(uri))
        if not os.path.exists(real):  # deleted while open: no index entry of it is kept either
            with ls.project_lock:
                ls.closed.pop(real, None)
        for other in sorted(ls.workspace.text_documents):  # importers now read the file from disk
            cached = ls.analyses.get(other)
            if cached is not None and real in cached[1].files:
                ls.analyses.pop(other, None)
                ls.refresh(other)

    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    @safe("hover")
    def on_hover(ls: ConvergeServer, params: lsp.HoverParams) -> lsp.Hover | None:
        uri = params.text_document.uri
        result = hover.hover(ls.navigable(uri), *ls.at(uri, params.position))
        if result is not None and result.range is not None:
            result.range = ls.out(uri, result.range)
        return result

    @server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
    @safe("definition")
    def on_definition(ls: ConvergeServer, params: lsp.DefinitionParams) -> list[lsp.Location] | None:
        uri = params.text_document.uri
        return ls.out_locations(navigation.definition(ls.navigable(uri), *ls.at(uri, params.position)))

    @server.feature(lsp.TEXT_DOCUMENT_REFERENCES)
    @safe("references")
    def on_references(ls: ConvergeServer, params: lsp.ReferenceParams) -> list[lsp.Location] | None:
        uri = params.text_document.uri
        return ls.out_locations(navigation.references(ls.navigable(uri), *ls.at(uri, params.position),
                                                      params.context.include_declaration, ls.project))

    @server.feature(lsp.TEXT_DOCUMENT_PREPARE_RENAME)
    @safe("prepare rename")
    def on_prepare_rename(ls: ConvergeServer, params: lsp.PrepareRenameParams) -> lsp.Range | None:
        uri = params.text_document.uri
        rng = navigation.prepare_rename(ls.navigable(uri), *ls.at(uri, params.position))
        return None if rng is None else ls.out(uri, rng)

    @server.feature(lsp.TEXT_DOCUMENT_RENAME)
    def on_rename(ls: ConvergeServer, params: lsp.RenameParams) -> lsp.WorkspaceEdit | None:
        from pygls.exceptions import JsonRpcException

        def run() -> Any:
            try:
                uri = params.text_document.uri
                edit = navigation.rename(ls.navigable(uri), *ls.at(uri, params.position), params.new_name,
                                         ls.project, ls.read_only)
                for target, edits in (edit.changes or {}).items() if edit is not None else ():
                    for e in edits:
                        e.range = ls.out(target, e.range)
                return edit
            except navigation.RenameError as err:
                return err
        result = guarded(ls, "rename", run)
        if isinstance(result, navigation.RenameError):
            raise JsonRpcException(str(result), code=REQUEST_FAILED)
        return result

    @server.feature(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(trigger_characters=["."]))
    @safe("completion")
    def on_completion(ls: ConvergeServer, params: lsp.CompletionParams) -> lsp.CompletionList:
        doc = ls.workspace.get_text_document(params.text_document.uri)
        lines = normalize_newlines(doc.source).split("\n")
        line = lines[params.position.line] if params.position.line < len(lines) else ""
        line_no, col = ls.at(params.text_document.uri, params.position)
        items = completion.complete(ls.navigable(params.text_document.uri), line[:col], line_no)
        return lsp.CompletionList(is_incomplete=False, items=items)

    @server.feature(lsp.TEXT_DOCUMENT_FORMATTING)
    @safe("formatting")
    def on_formatting(ls: ConvergeServer, params: lsp.DocumentFormattingParams) -> list[lsp.TextEdit] | None:
        doc = ls.workspace.get_text_document(params.text_document.uri)
        formatted = ls.format_text(doc.source, ls.path_of(params.text_document.uri))
        if formatted is None:
            return None  # a file with a syntax error is left as it is; its diagnostic says why
        if formatted == doc.source:
            return []
        lines = normalize_newlines(doc.source).split("\n")
        end = lsp.Position(len(lines) - 1, len(lines[-1]))
        rng = ls.out(params.text_document.uri, lsp.Range(lsp.Position(0, 0), end))
        return [lsp.TextEdit(range=rng, new_text=formatted)]

    @server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    @safe("document symbols")
    def on_symbols(ls: ConvergeServer, params: lsp.DocumentSymbolParams) -> list[lsp.DocumentSymbol]:
        uri = params.text_document.uri
        found = symbols.document_symbols(ls.navigable(uri))
        for sym in found:
            sym.range, sym.selection_range = ls.out(uri, sym.range), ls.out(uri, sym.selection_range)
        return found

    @server.feature(lsp.TEXT_DOCUMENT_CODE_LENS)
    @safe("code lens")
    def on_code_lens(ls: ConvergeServer, params: lsp.CodeLensParams) -> list[lsp.CodeLens]:
        return lenses.code_lenses(ls.navigable(params.text_document.uri), params.text_document.uri)

    @server.command(lenses.RUN_TESTS)
    async def run_tests(ls, uri, name=None):  # noqa: ANN001 - pygls converts the arguments by annotation
        """Run the tests on a worker thread (requests are answered meanwhile), then publish."""
        try:
            analysis = ls.analysis(uri)
            loop = asyncio.get_running_loop()
            summary, diags = await loop.run_in_executor(ls.thread_pool, lenses.run_tests, analysis, name)
            ls.test_diagnostics[uri] = diags
            ls.publish(uri)
            return summary
        except Exception as err:  # the server must outlive any bug in one request
            report_failure(ls, "run tests", err)
            return None

    return server


class _ClientOutput:
    """The server's standard output. When the client closes its end there is no one left to answer,
    so the server ends (exit 0, one line on stderr) instead of logging a traceback per pending reply."""

    def __init__(self, raw: Any):
        self.raw = raw

    def write(self, data: bytes) -> None:
        try:
            self.raw.write(data)
        except (BrokenPipeError, ValueError):  # ValueError: the stream was closed
            self._gone()

    def flush(self) -> None:
        try:
            self.raw.flush()
        except (BrokenPipeError, ValueError):
            self._gone()

    def close(self) -> None:
        try:
            self.raw.close()
        except (BrokenPipeError, ValueError):
            pass

    @staticmethod
    def _gone() -> None:
        import sys

        try:
            sys.stderr.write("converge lsp: the client closed the connection; stopping\n")
            sys.stderr.flush()
        finally:
            os._exit(0)  # the server's threads are waiting on a client that is gone: nothing to finish


def main() -> None:
    """Serve over stdin/stdout until the client says exit (or closes the connection)."""
    import sys

    create_server().start_io(sys.stdin.buffer, _ClientOutput(sys.stdout.buffer))
