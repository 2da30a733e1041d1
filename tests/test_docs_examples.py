"""The documentation is executable: README.md and docs/*.md are checked against the product.

Conventions of the docs (write new examples this way):

- every fenced code block has an info string, so rule text cannot hide in an unmarked block;
- ```cvg           a whole rule file: `check` finds no error in it;
- ```cvg fragment  rule text that leans on declarations shown elsewhere (a relation declared
  in an earlier block, an imported file): `check` finds no error but an undefined relation
  (E200) or a missing import (E110);
- ```cvg error=E123  rule text that shows an error: the first error `check` reports is E123;
- ```console       a shell session: `$ ` starts a command (a trailing `\\` or a here-document
  continues it) and the lines up to the next `$ ` are what the terminal shows, standard output
  and standard error together; a line `...` stands for any number of lines.

The console blocks of README.md and docs/tutorial.md are run here and must print exactly what
the text shows: `converge` commands in process through the CLI's click group (fast), the rest
(`cp`, `echo >>`, `python examples/loans/api.py`) and one `converge` command of each file as a
subprocess, as a user runs them.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import converge_rules as cr
from converge_rules.cli import cli

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(`{3,})(.*)$")
CODE = re.compile(r"(?<![A-Za-z0-9_])([EW]\d{3})(?![0-9])")
# Tool results that change from call to call (examples/flaky/tools.py: a credit score with a
# jitter from the clock). Both the text and the output get the same substitution.
VARYING = {"examples.flaky.tools": (re.compile(r"\b[5-7]\d\d\b"), "<score>")}


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the block's first content line
    info: str
    body: list[str]

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not lines[j].startswith(m.group(1)):
            j += 1
        assert j < len(lines), f"{path.relative_to(ROOT)}:{i + 1}: code block never closed"
        found.append(Block(path, i + 2, m.group(2).strip(), lines[i + 1:j]))
        i = j + 1
    return found


ALL_BLOCKS = [b for doc in DOCS for b in blocks(doc)]
RULE_BLOCKS = [b for b in ALL_BLOCKS if b.info.split(" ")[0] == "cvg"]


def test_every_code_block_says_what_it_holds() -> None:
    unmarked = [b.where for b in ALL_BLOCKS if not b.info]
    assert not unmarked, f"code blocks without an info string (cvg, console, text, json...): {unmarked}"
    shells = [b.where for b in ALL_BLOCKS if b.body and b.body[0].startswith("$ ") and b.info != "console"]
    assert not shells, f"shell sessions not marked console: {shells}"
    assert len(RULE_BLOCKS) > 40  # the docs hold rule text, and this test finds it


@pytest.mark.parametrize("block", RULE_BLOCKS, ids=lambda b: b.where)
def test_rule_blocks_check(block: Block, tmp_path: Path) -> None:
    kind, *attrs = block.info.split()
    path = tmp_path / f"{block.path.stem}_{block.line}.cvg"
    path.write_text("\n".join(block.body) + "\n", encoding="utf-8")
    errors = [d for d in cr.check([str(path)]) if d.severity == "error"]
    shown = [f"{d.code} at {d.span.line}:{d.span.col}: {d.message}" for d in errors]
    expected = [a.split("=", 1)[1] for a in attrs if a.startswith("error=")]
    if expected:
        assert errors and errors[0].code == expected[0], f"{block.where}: expected {expected[0]}, check says {shown}"
    elif attrs == ["fragment"]:
        others = [s for d, s in zip(errors, shown) if d.code not in ("E200", "E110")]
        assert not others, f"{block.where}: a fragment may only lack declarations: {others}"
    else:
        assert attrs == [], f"{block.where}: unknown info string {block.info!r}"
        assert not errors, f"{block.where}: {shown}"


def test_error_convention_is_checked(tmp_path: Path) -> None:
    """`cvg error=CODE` compares against what `check` reports (the convention works both ways)."""
    wrong = Block(ROOT / "README.md", 1, "cvg error=E200", ["relation p(x: int)", "p(x) :- q(x)."])
    test_rule_blocks_check(wrong, tmp_path)
    with pytest.raises(AssertionError, match="expected E201"):
        test_rule_blocks_check(Block(ROOT / "README.md", 2, "cvg error=E201", wrong.body), tmp_path)


# --- console sessions -------------------------------------------------------------------------

def commands(block: Block) -> list[tuple[str, list[str]]]:
    """The block's commands with the lines each is shown to print."""
    body, out, i = block.body, [], 0
    while i < len(body):
        assert body[i].startswith("$ "), f"{block.where}: output before any command: {body[i]!r}"
        cmd = [body[i][2:]]
        i += 1
        heredoc = re.search(r"<<-?'?(\w+)'?", cmd[0])
        if heredoc:
            while body[i] != heredoc.group(1):
                cmd.append(body[i])
                i += 1
            cmd.append(body[i])
            i += 1
        while cmd[-1].endswith("\\"):
            cmd.append(body[i])
            i += 1
        shown = []
        while i < len(body) and not body[i].startswith("$ "):
            shown.append(body[i])
            i += 1
        out.append(("\n".join(cmd), shown))
    return out


def matches(shown: list[str], got: str) -> bool:
    pattern = "\n".join(".*?" if line.rstrip() == "..." else re.escape(line.rstrip()) for line in shown)
    return re.fullmatch(pattern, "\n".join(line.rstrip() for line in got.rstrip("\n").split("\n")), re.S) is not None \
        or (not shown and not got.strip())


class Session:
    """Runs a console block's commands from the repository root; /tmp/ in the docs is tmp_path."""

    def __init__(self, tmp: Path, bindir: Path, subprocess_converge: bool):
        self.tmp, self.bindir, self.last = tmp, bindir, 0
        self.subprocess_converge = subprocess_converge

    def env(self) -> dict[str, str]:
        return dict(os.environ, PATH=f"{self.bindir}{os.pathsep}{os.environ['PATH']}", NO_COLOR="1",
                    PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))

    def run(self, command: str) -> str:
        command = command.replace("/tmp/", f"{self.tmp}/")
        if command == "echo $?":
            return f"{self.last}\n"
        words = shlex.split(command.replace("\\\n", " "))
        in_process = words[0] == "converge" and not self.subprocess_converge and \
            not any(w in ("|", "&&", ";", "<", ">>") for w in words)
        if in_process:
            out = self._in_process(words)
        else:
            proc = subprocess.run(["bash", "-c", command], cwd=ROOT, env=self.env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, timeout=120)
            self.last, out = proc.returncode, proc.stdout
        return out.replace(f"{self.tmp}/", "/tmp/")

    def _in_process(self, words: list[str]) -> str:
        args, discard = words[1:], False
        if args[-2:] == [">", "/dev/null"]:
            args, discard = args[:-2], True
        assert ">" not in args, words
        result = CliRunner().invoke(cli, args, catch_exceptions=False, env={"NO_COLOR": "1"})
        self.last = result.exit_code
        return result.stderr if discard else result.output


@pytest.fixture
def bindir(tmp_path: Path) -> Path:
    """`converge` and `python` on PATH: this interpreter, this source tree."""
    d = tmp_path / "bin"
    d.mkdir()
    for name, target in (("converge", f'"{sys.executable}" -m converge_rules'), ("python", f'"{sys.executable}"')):
        (d / name).write_text(f'#!/bin/sh\nexec {target} "$@"\n')
        (d / name).chmod(0o755)
    return d


def console_blocks(doc: str) -> list[Block]:
    return [b for b in ALL_BLOCKS if b.path == ROOT / doc and b.info == "console"]


def check_session(block: Block, tmp: Path, bindir: Path, subprocess_converge: bool = False) -> None:
    session = Session(tmp, bindir, subprocess_converge)
    text = "\n".join(block.body)
    varying = [v for k, v in VARYING.items() if k in text]
    for command, shown in commands(block):
        got = session.run(command)
        for pattern, placeholder in varying:
            got = pattern.sub(placeholder, got)
            shown = [pattern.sub(placeholder, line) for line in shown]
        assert matches(shown, got), (f"{block.where}: $ {command}\n--- the docs show:\n" + "\n".join(shown)
                                     + "\n--- it prints:\n" + got)


@pytest.mark.parametrize("doc", ["README.md", "docs/tutorial.md"])
def test_console_sessions(doc: str, tmp_path: Path, bindir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))  # --tools examples.scoring.tools, as from the repository root
    found = console_blocks(doc)
    assert len(found) >= 5
    for block in found:
        check_session(block, tmp_path, bindir)


@pytest.mark.parametrize("doc", ["README.md", "docs/tutorial.md"])
def test_first_console_session_as_a_subprocess(doc: str, tmp_path: Path, bindir: Path) -> None:
    """The same text from a real `converge` process: the in-process runs above are what a user sees."""
    check_session(console_blocks(doc)[0], tmp_path, bindir, subprocess_converge=True)


# --- what the docs name exists --------------------------------------------------------------

def diagnostics_table() -> set[str]:
    text = (ROOT / "docs" / "diagnostics.md").read_text(encoding="utf-8")
    return set(re.findall(r'^\| <a id="[ew]\d{3}"></a>([EW]\d{3}) \|', text, re.M))


def codes_in_package() -> set[str]:
    found: set[str] = set()
    for py in (ROOT / "converge_rules").rglob("*.py"):
        found.update(re.findall(r"""["']([EW]\d{3})["']""", py.read_text(encoding="utf-8")))
    return found


def test_every_diagnostic_code_in_the_docs_is_defined() -> None:
    table, package = diagnostics_table(), codes_in_package()
    assert len(table) > 50
    missing_row, missing_code = [], []
    for doc in DOCS:
        for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            for code in CODE.findall(line):
                if code not in table:
                    missing_row.append(f"{doc.relative_to(ROOT)}:{n}: {code}")
                if code not in package:
                    missing_code.append(f"{doc.relative_to(ROOT)}:{n}: {code}")
    assert not missing_row, f"codes without a row in docs/diagnostics.md: {missing_row}"
    assert not missing_code, f"codes the package never reports: {missing_code}"


def cli_commands() -> list[tuple[str, click.Command]]:
    ctx = click.Context(cli)
    found = []
    for name in cli.list_commands(ctx):
        cmd = cli.get_command(ctx, name)
        assert cmd is not None
        found.append((name, cmd))
        if isinstance(cmd, click.Group):
            sub = click.Context(cmd)
            found += [(f"{name} {s}", cmd.get_command(sub, s)) for s in cmd.list_commands(sub)]
    return found


def long_options(cmd: click.Command) -> set[str]:
    return {o for p in cmd.params if isinstance(p, click.Option) for o in (*p.opts, *p.secondary_opts)
            if o.startswith("--")} - {"--help"}


def cli_sections() -> dict[str, str]:
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    return {m.group(1): m.group(2) for m in re.finditer(r"^## `converge ([a-z-]+)`\n(.*?)(?=^## |\Z)", text, re.M | re.S)}


def option_names(text: str) -> set[str]:
    """`--name` options in text; `--[no-]name` is both `--name` and `--no-name`."""
    found = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text))
    for name in re.findall(r"--\[no-\]([a-z][a-z0-9-]*)", text):
        found |= {f"--{name}", f"--no-{name}"}
    return found


def documented_options(section: str) -> set[str]:
    """The options a command's section documents: its synopsis blocks and its option tables."""
    found: set[str] = set()
    for synopsis in re.findall(r"^```text\n(converge .*?)^```", section, re.M | re.S):
        found |= option_names(synopsis)
    for row in re.findall(r"^\| ([^|]*(?:\\\|[^|]*)*)\|", section, re.M):
        found |= option_names(row)
    return found


def test_cli_reference_and_commands_agree() -> None:
    sections = cli_sections()
    commands_ = cli_commands()
    top = {name for name, _ in commands_ if " " not in name}
    assert top <= set(sections), f"commands without a section in docs/cli.md: {sorted(top - set(sections))}"
    assert set(sections) - {"--version"} <= top, sorted(set(sections) - top)
    undocumented, unknown = [], []
    for name in sorted(top):
        section = sections[name]
        cmds = [c for n, c in commands_ if n == name or n.startswith(name + " ")]
        real = set().union(*(long_options(c) for c in cmds))
        doc = documented_options(section)
        undocumented += [f"converge {name} {o}" for o in sorted(real - doc)]
        unknown += [f"converge {name} {o}" for o in sorted(doc - real)]
    assert not undocumented, f"options missing from docs/cli.md: {undocumented}"
    assert not unknown, f"docs/cli.md documents options the command does not have: {unknown}"


def test_help_lists_the_options_the_reference_checks() -> None:
    """`converge why --help`, run as a user runs it, shows the options read from click above."""
    proc = subprocess.run([sys.executable, "-m", "converge_rules", "why", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, NO_COLOR="1", COLUMNS="200"))
    assert proc.returncode == 0
    shown = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", proc.stdout)) - {"--help"}
    assert shown == long_options(dict(cli_commands())["why"])


def stdlib_sections() -> dict[str, str]:
    text = (ROOT / "docs" / "stdlib.md").read_text(encoding="utf-8")
    return {m.group(1): m.group(2) for m in re.finditer(r"^## std\.([a-z]+)\n(.*?)(?=^## |\Z)", text, re.M | re.S)}


def test_stdlib_reference_matches_the_modules() -> None:
    sections = stdlib_sections()
    shipped = sorted(p.stem for p in (ROOT / "stdlib_rules" / "std").glob("*.cvg"))
    assert sorted(sections) == shipped
    problems = []
    for module, section in sections.items():
        rules = cr.load_text(f"import std.{module}\n", name="stdlib_probe.cvg")
        declared = {r.split(".", 1)[1] for r in rules.relations if r.startswith(module + ".")}
        text = (ROOT / "stdlib_rules" / "std" / f"{module}.cvg").read_text(encoding="utf-8")
        columns = {m.group(1): ", ".join(c.strip() for c in m.group(2).split(",") if c.strip())
                   for m in re.finditer(r"^\s*(?:input\s+)?relation\s+(\w+)\(([^)]*)\)", text, re.M)}
        rows = re.findall(r"^\| `(\w+)` \| ([^|]*) \|", section, re.M)
        assert rows, module
        for name, cols in rows:
            if name not in declared:
                problems.append(f"std.{module}: docs/stdlib.md lists {name}, the module has no such relation")
                continue
            want = "" if cols.strip() == "(no columns)" else cols.strip().strip("`")
            if columns.get(name) != want:
                problems.append(f"std.{module}.{name}: docs say ({want}), the module declares ({columns.get(name)})")
        listed = {name for name, _ in rows}
        problems += [f"std.{module}.{r} is not in docs/stdlib.md" for r in sorted(declared - listed)]
    assert not problems, problems
