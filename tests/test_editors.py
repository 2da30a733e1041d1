"""The editor files: the VS Code extension's manifest and the TextMate grammar agree
with the language (every keyword of the Lark grammar, every builtin)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from converge_rules.lsp.builtins import KEYWORDS, builtin_docs

ROOT = Path(__file__).resolve().parent.parent
VSCODE = ROOT / "editors" / "vscode"


def _grammar() -> dict:
    return json.loads((VSCODE / "syntaxes" / "converge.tmLanguage.json").read_text(encoding="utf-8"))


def _patterns(node: object) -> list[str]:
    out: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("match", "begin", "end") and isinstance(value, str):
                out.append(value)
            else:
                out.extend(_patterns(value))
    elif isinstance(node, list):
        for value in node:
            out.extend(_patterns(value))
    return out


def test_manifest_points_at_real_files() -> None:
    manifest = json.loads((VSCODE / "package.json").read_text(encoding="utf-8"))
    assert (VSCODE / manifest["main"]).is_file()
    language = manifest["contributes"]["languages"][0]
    assert language["extensions"] == [".cvg"]
    assert (VSCODE / language["configuration"]).is_file()
    json.loads((VSCODE / language["configuration"]).read_text(encoding="utf-8"))
    grammar = manifest["contributes"]["grammars"][0]
    assert grammar["scopeName"] == _grammar()["scopeName"] == "source.converge"
    assert (VSCODE / grammar["path"]).is_file()
    assert "onLanguage:converge" in manifest["activationEvents"]
    assert '"lsp"' in (VSCODE / "extension.js").read_text(encoding="utf-8")


def test_grammar_patterns_compile_and_every_include_exists() -> None:
    grammar = _grammar()
    for pattern in _patterns(grammar):
        re.compile(pattern)  # the patterns keep to the syntax Oniguruma and Python share
    includes = re.findall(r'"include": "#([^"]+)"', json.dumps(grammar))
    assert includes and all(name in grammar["repository"] for name in includes)


def test_grammar_knows_every_keyword_and_builtin() -> None:
    lark = (ROOT / "grammar" / "converge.lark").read_text(encoding="utf-8")
    words = set(re.findall(r'"([a-z_]+)"', lark)) | {"input", "retry", "count", "sum", "min", "max"}
    patterns = "\n".join(_patterns(_grammar()))
    missing = sorted(w for w in words if not re.search(rf"(?<![A-Za-z_]){w}(?![A-Za-z_])", patterns))
    assert missing == []
    assert words <= set(KEYWORDS) | {"as"}  # completion offers them too
    assert all(re.search(rf"\b{name}\b", patterns) for name in builtin_docs())


def test_grammar_scopes_on_a_sample_line() -> None:
    grammar = _grammar()["repository"]
    decl = re.compile(grammar["relation-declaration"]["match"]).search("input relation loan(id: str)")
    assert decl and decl.group(1) == "input" and decl.group(3) == "loan"
    comment = re.compile(grammar["comment"]["patterns"][0]["match"])
    assert comment.search("x(1).  # a comment") and not comment.search("# converge: disable=W100")
    suppression = re.compile(grammar["suppression"]["match"]).search("p(x).  # converge: disable=W100, W101")
    assert suppression and suppression.group(4).strip() == "W100, W101"


def test_lsp_command_is_listed_and_documented() -> None:
    import os
    import subprocess
    import sys

    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=str(ROOT))
    top = subprocess.run([sys.executable, "-m", "converge_rules", "--help"], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=60)
    assert top.returncode == 0 and "\n  lsp " in top.stdout
    helped = subprocess.run([sys.executable, "-m", "converge_rules", "lsp", "--help"], capture_output=True, text=True,
                            env=env, cwd=ROOT, timeout=60)
    assert helped.returncode == 0 and "language server" in helped.stdout
    docs = (ROOT / "docs" / "editors.md").read_text(encoding="utf-8")
    for editor in ("VS Code", "Neovim", "Helix", "Emacs"):
        assert f"## {editor}" in docs


def test_the_server_stops_quietly_when_the_client_closes_the_connection(tmp_path: Path) -> None:
    """An editor that goes away closes the pipe the server writes to: the server ends with exit 0 and
    one line on stderr, not a BrokenPipeError traceback per pending reply (pygls logs each)."""
    import os
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "converge_rules", "lsp"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])})

    def send(message: dict) -> None:
        body = json.dumps(message).encode()
        assert proc.stdin is not None
        proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        proc.stdin.flush()

    try:
        send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}, "rootUri": None}})
        assert proc.stdout is not None
        header = proc.stdout.readline()
        assert header.startswith(b"Content-Length:")
        proc.stdout.close()  # the client stops reading
        send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        send({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
            "uri": (tmp_path / "x.cvg").as_uri(), "languageId": "converge", "version": 1, "text": "p(x) :- q(x)."}}})
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    assert code == 0, err
    assert "Traceback" not in err and "BrokenPipeError" not in err
    assert "converge lsp: the client closed the connection; stopping" in err
