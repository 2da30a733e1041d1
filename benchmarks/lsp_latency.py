"""Latency of `converge lsp` on the largest standard library module, through a real
client over stdio: every request should answer within 200 ms.

    python benchmarks/lsp_latency.py              # table; exit 1 if a request is slower
    python benchmarks/lsp_latency.py --limit 0.5  # another bound, in seconds

Requests are timed one at a time, the server idle (3 s after opening the file,
when it has prepared the formatting and the project index): hover, definition and
references at each name of the file, completion at the start of each rule,
document symbols, formatting, code lenses. The time from a change of the
file to its diagnostics (debounce set to 0) is shown too, but is not a
request: it is one compilation and lint of the whole program, done off the
event loop while requests are answered.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

from lsprotocol import types as lsp
from pygls.lsp.client import LanguageClient

ROOT = Path(__file__).resolve().parent.parent


async def main(limit: float) -> int:
    largest = max((ROOT / "stdlib_rules" / "std").glob("*.cvg"), key=lambda p: p.stat().st_size)
    text = largest.read_text(encoding="utf-8")
    uri = largest.as_uri()
    client = LanguageClient("latency", "1")
    published: asyncio.Queue = asyncio.Queue()

    @client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_diagnostics(params: lsp.PublishDiagnosticsParams) -> None:
        published.put_nowait(params)

    await client.start_io(sys.executable, "-m", "converge_rules", "lsp", cwd=str(ROOT))
    await client.initialize_async(lsp.InitializeParams(capabilities=lsp.ClientCapabilities(),
                                                       root_uri=(ROOT / "stdlib_rules").as_uri(),
                                                       initialization_options={"debounce": 0}))
    client.initialized(lsp.InitializedParams())
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(uri, "converge", 1, text)))
    await published.get()
    await asyncio.sleep(3)  # the server prepares formatting and the project index after opening
    doc = lsp.TextDocumentIdentifier(uri=uri)
    times: dict[str, list[float]] = {}

    async def timed(name: str, request) -> None:
        start = time.perf_counter()
        await request
        times.setdefault(name, []).append(time.perf_counter() - start)

    lines = text.split("\n")
    names = [(i, m.start()) for i, line in enumerate(lines) if not line.lstrip().startswith("#")
             for m in __import__("re").finditer(r"[A-Za-z_][A-Za-z0-9_.]*", line)]
    await timed("references (first: project index)", client.text_document_references_async(lsp.ReferenceParams(
        context=lsp.ReferenceContext(include_declaration=True), text_document=doc, position=lsp.Position(*names[0]))))
    for line, col in names[::3]:
        position = lsp.Position(line, col + 1)
        await timed("hover", client.text_document_hover_async(lsp.HoverParams(doc, position)))
        await timed("definition", client.text_document_definition_async(lsp.DefinitionParams(doc, position)))
        await timed("references", client.text_document_references_async(lsp.ReferenceParams(
            context=lsp.ReferenceContext(include_declaration=True), text_document=doc, position=position)))
    for line in range(0, len(lines), 10):
        await timed("completion", client.text_document_completion_async(lsp.CompletionParams(doc, lsp.Position(line, 0))))
    for _ in range(5):
        await timed("document symbols", client.text_document_document_symbol_async(lsp.DocumentSymbolParams(doc)))
        await timed("formatting", client.text_document_formatting_async(lsp.DocumentFormattingParams(
            doc, lsp.FormattingOptions(tab_size=2, insert_spaces=True))))
        await timed("code lens", client.text_document_code_lens_async(lsp.CodeLensParams(doc)))
    for version in range(2, 7):
        start = time.perf_counter()
        client.text_document_did_change(lsp.DidChangeTextDocumentParams(
            lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
            [lsp.TextDocumentContentChangeWholeDocument(text=text + "\n" * version)]))
        while (await published.get()).version != version:
            pass
        times.setdefault("change -> diagnostics", []).append(time.perf_counter() - start)
        await asyncio.sleep(1)  # a pause in typing
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()

    print(f"{largest.relative_to(ROOT)} ({len(lines)} lines), limit {limit * 1000:.0f} ms")
    print(f"{'request':38} {'n':>4} {'median ms':>10} {'max ms':>8}")
    slow = False
    for name, values in times.items():
        worst = max(values)
        counted = not name.startswith(("references (first", "change"))  # a notification, not a request
        slow |= counted and worst > limit
        print(f"{name:38} {len(values):>4} {statistics.median(values) * 1000:>10.1f} {worst * 1000:>8.1f}"
              + ("  SLOW" if counted and worst > limit else ""))
    return 1 if slow else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=float, default=0.2, help="seconds each request may take (default 0.2)")
    sys.exit(asyncio.run(main(parser.parse_args().limit)))
