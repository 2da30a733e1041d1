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
  and standard error together; a line `...` stands for any number of lines;
- ```console server  a session with a running service (`converge serve`, `curl`): not run, but
  its `converge` commands must parse;
- ```console pytest  a pytest session (the plugin): not run here, where it would take half a
  minute; tests/test_testing.py runs the plugin.

The console sessions of README.md, docs/tutorial.md and the reference docs listed in
REFERENCE_SESSIONS are run and must print exactly what the text shows: `converge` commands in
process through converge's entry point (fast; so are `cat FILE | converge`, `converge < FILE`,
`converge ... | grep WORD`, `converge ...; echo $?` and `python - <<'EOF'` scripts), the rest
(`cp`, `printf ... | converge`, `for` loops) and the first session of README.md and the tutorial
entirely as subprocesses, as a user runs them.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

import converge_rules as cr
from converge_rules.cli import cli, main

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(`{3,})(.*)$")
CODE = re.compile(r"(?<![A-Za-z0-9_])([EW]\d{3})(?![0-9])")


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
    shells = [b.where for b in ALL_BLOCKS if b.body and b.body[0].startswith("$ ")
              and b.info not in ("console", "console server", "console pytest")]
    assert not shells, f"shell sessions not marked console: {shells}"
    assert len(RULE_BLOCKS) > 40  # the docs hold rule text, and this test finds it


@pytest.mark.parametrize("block", RULE_BLOCKS, ids=lambda b: b.where)
def test_rule_blocks_check(block: Block, tmp_path: Path) -> None:
    _kind, *attrs = block.info.split()
    path = tmp_path / f"{block.path.stem}_{block.line}.cvg"
    path.write_text("\n".join(block.body) + "\n", encoding="utf-8")
    errors = [d for d in cr.check([str(path)]) if d.severity == "error"]
    shown = [f"{d.code} at {d.span.line}:{d.span.col}: {d.message}" for d in errors]
    expected = [a.split("=", 1)[1] for a in attrs if a.startswith("error=")]
    if expected:
        assert errors and errors[0].code == expected[0], f"{block.where}: expected {expected[0]}, check says {shown}"
    elif attrs == ["fragment"]:
        others = [s for d, s in zip(errors, shown) if d.code not in ("E200", "E110", "E214")]
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

# The shell sessions run in document order, in one working directory that links to the
# repository's files (a command's output files land there, not in the checkout). `/tmp/` and
# `/etc/converge/` in the docs are directories of the test. Sessions may use what an earlier
# one of the same list wrote (trace.md reads the trace semantics.md writes, explanations.md the
# record records.md writes).
SESSIONS = ["README.md", "docs/tutorial.md"]
REFERENCE_SESSIONS = ["docs/language.md", "docs/semantics.md", "docs/facts.md", "docs/records.md",
                      "docs/explanations.md", "docs/trace.md", "docs/stdlib.md", "docs/cli.md", "docs/diagnostics.md",
                      "docs/testing.md"]
# Sessions that talk to a running service (`console server`) are not run, nor are those of
# batch.md (worker pools, Dask clusters) and service.md (servers): their `converge` commands
# are checked to parse instead (test_sessions_not_run_parse); nor are pytest sessions.
# What the text takes for granted, made before a document's sessions run:
#   facts.md: examples/loans/facts.json loaded into loans.db ("the JSON facts of the loans
#   example loaded into a database"), with a table loans_2026 for the --table example;
#   records.md: a second record key, other.key.
# The flaky bureau (examples/flaky/tools.py) takes its jitter from the clock; here it answers
# the scores the docs show, a1 a new one on every call (see fresh_tools).
FLAKY_SCORES = {"a1": [752, 754], "a2": [584], "a3": [647]}
# What truly varies, the same in the text and in the output: where the package is installed
# (a standard module's path), and timings (JUnit reports, pytest's summary line).
VARIES = [(re.compile(r"(?<= at )/\S*?/stdlib_rules/std/"), "<std>/"), (re.compile(r' time="[0-9.]+"'), ' time="T"'),
          (re.compile(r"^=+ (.+?) in [0-9.]+s =+$"), r"== \1 in Ts =="), (re.compile(r" in [0-9.]+s$"), " in Ts")]


def normalise(text: str) -> str:
    for pattern, replacement in VARIES:
        text = pattern.sub(replacement, text)
    return text


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
    text = "\n".join(line.rstrip() for line in got.rstrip("\n").split("\n")) if got.strip() else ""
    return re.fullmatch(pattern, text, re.S) is not None


def shell_words(command: str) -> list[str]:
    lexer = shlex.shlex(command.replace("\\\n", " "), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""  # `--agent r#1`: a `#` inside a word starts no comment; one that starts a word does
    words = list(lexer)
    return next((words[:i] for i, w in enumerate(words) if w.startswith("#")), words)


class Session:
    """A shell in a working directory: `converge` commands run in process through the CLI's
    entry point, everything else (and every command when ``subprocess_converge``) in bash."""

    def __init__(self, tmp: Path, subprocess_converge: bool = False):
        self.tmp, self.last, self.subprocess_converge = tmp, 0, subprocess_converge
        self.work, self.fake_tmp, self.etc, self.bindir = (tmp / d for d in ("work", "tmp", "etc", "bin"))
        for d in (self.work, self.fake_tmp, self.etc, self.bindir):
            d.mkdir(exist_ok=True)
        for entry in ROOT.iterdir():
            if not entry.name.startswith(".") and not (self.work / entry.name).exists():
                (self.work / entry.name).symlink_to(entry)
        for name, target in (("converge", f'"{sys.executable}" -m converge_rules'), ("python", f'"{sys.executable}"'),
                             ("pytest", f'"{sys.executable}" -m pytest')):
            (self.bindir / name).write_text(f'#!/bin/sh\nexec {target} "$@"\n')
            (self.bindir / name).chmod(0o755)

    def env(self) -> dict[str, str]:
        return dict(os.environ, PATH=f"{self.bindir}{os.pathsep}{os.environ['PATH']}", NO_COLOR="1",
                    PYTHONUNBUFFERED="1", PYTHONPATH=str(self.work))

    def run(self, command: str) -> str:
        command = command.replace("/tmp/", f"{self.fake_tmp}/").replace("/etc/converge/", f"{self.etc}/")
        if command == "echo $?":
            return f"{self.last}\n"
        script = re.fullmatch(r"python - <<'(\w+)'\n(.*)\n\1", command, re.S)
        if script and not self.subprocess_converge:  # a Python session: run it here, as `python -` would
            self.last, out = run_python(script.group(2))
            return out.replace(f"{self.fake_tmp}/", "/tmp/").replace(f"{self.etc}/", "/etc/converge/")
        words = shell_words(command)
        stdin, grep, echo_status = None, None, False
        if words[:1] == ["cat"] and words[2:4] == ["|", "converge"]:  # cat FILE | converge ...
            stdin, words = (self.work / words[1]).read_bytes(), words[3:]
        if len(words) > 2 and words[-2] == "<":  # converge ... < FILE
            stdin, words = (self.work / words[-1]).read_bytes(), words[:-2]
        if len(words) > 3 and words[-3:-1] == ["|", "grep"]:  # converge ... | grep WORD
            grep, words = words[-1], words[:-3]
        if words[-3:] == [";", "echo", "$?"]:  # converge ...; echo $?
            echo_status, words = True, words[:-3]
        redirect = words[-2:] == [">", "/dev/null"]
        args = words[1:-2] if redirect else words[1:]
        if words[0] == "converge" and not self.subprocess_converge and \
                not any(re.fullmatch(r"[|;&<>()]+", w) for w in args):
            self.last, out = in_process(args, discard_stdout=redirect, stdin=stdin)
            if grep is not None:
                out = "".join(line for line in out.splitlines(keepends=True) if re.search(grep, line))
            if echo_status:
                out += f"{self.last}\n"
        else:
            proc = subprocess.run(["bash", "-c", command], cwd=self.work, env=self.env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, timeout=120)
            self.last, out = proc.returncode, proc.stdout
        return out.replace(f"{self.fake_tmp}/", "/tmp/").replace(f"{self.etc}/", "/etc/converge/")

    def check(self, block: Block) -> list[str]:
        """The commands of the block whose output is not what the text shows."""
        wrong = []
        for command, shown in commands(block):
            got = "\n".join(normalise(line) for line in self.run(command).split("\n"))
            shown = [normalise(line) for line in shown]
            if not matches(shown, got):
                wrong.append(f"{block.where}: $ {command}\n--- the docs show:\n" + "\n".join(shown)
                             + "\n--- it prints:\n" + got)
        return wrong


def in_process(args: list[str], discard_stdout: bool = False, stdin: bytes | None = None) -> tuple[int, str]:
    """`converge ARGS` through the entry point, in this process: its exit code and what a
    terminal shows, standard output and standard error in the order they were written."""
    sink, dropped = io.BytesIO(), io.BytesIO()
    out, err = (io.TextIOWrapper(s, encoding="utf-8", line_buffering=True, write_through=True)
                for s in (dropped if discard_stdout else sink, sink))
    code: object = 0
    saved_stdin = sys.stdin
    gc_was_enabled = gc.isenabled()  # the entry point turns the collector off for a one-shot command
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin or b""), encoding="utf-8")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(args)
            except SystemExit as done:
                code = done.code
    finally:
        sys.stdin = saved_stdin
        if gc_was_enabled:
            gc.enable()  # this process goes on: leave it as it was (later tests check the collector)
    for stream in (out, err):
        stream.flush()
        stream.detach()
    if code is None:
        code = 0
    elif not isinstance(code, int):
        sink.write(f"{code}\n".encode())
        code = 1
    return code, sink.getvalue().decode("utf-8")


def run_python(source: str) -> tuple[int, str]:
    """`python - <<EOF ... EOF` in this process: its exit status and its output."""
    sink = io.StringIO()
    code = 0
    for name in [m for m in sys.modules if m == "examples" or m.startswith("examples.")]:
        del sys.modules[name]  # the script imports the examples' tools afresh, as a new process does
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        try:
            exec(compile(source, "<stdin>", "exec"), {"__name__": "__main__"})
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else 1
        except Exception:
            import traceback

            traceback.print_exc()
            code = 1
    return code, sink.getvalue()


def prepare(doc: str, work: Path) -> None:
    if doc == "docs/facts.md":
        import json
        import sqlite3

        facts = json.loads((ROOT / "examples" / "loans" / "facts.json").read_text(encoding="utf-8"))
        db = sqlite3.connect(work / "loans.db")
        db.execute("CREATE TABLE applicant (id TEXT PRIMARY KEY, income INTEGER)")
        db.execute("CREATE TABLE loan (id TEXT PRIMARY KEY, applicant TEXT, amount INTEGER)")
        db.execute("CREATE TABLE loans_2026 (id TEXT PRIMARY KEY, applicant TEXT, amount INTEGER, status TEXT)")
        for row in facts["applicant"]:
            db.execute("INSERT INTO applicant VALUES (?, ?)", row if isinstance(row, list) else (row["id"], row["income"]))
        for row in facts["loan"]:
            values = row if isinstance(row, list) else [row["id"], row["applicant"], row["amount"]]
            db.execute("INSERT INTO loan VALUES (?, ?, ?)", values)
            db.execute("INSERT INTO loans_2026 VALUES (?, ?, ?, 'open')", values)
        db.commit()
        db.close()
    if doc == "docs/records.md":
        (work / "other.key").write_text("another secret, not the record's\n")
        (work / "other.key").chmod(0o600)


@pytest.fixture
def fresh_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every in-process `--tools` import gets the module afresh, as a new `converge` process
    does (examples/scoring/tools.py's bureau is busy on the *first* request for a2), and the
    flaky bureau answers FLAKY_SCORES."""
    from converge_rules.engine import tools

    real, calls = tools.import_tools_module, {}

    def credit_score(applicant: str) -> int:
        scores = FLAKY_SCORES[applicant]
        n = calls[applicant] = calls.get(applicant, -1) + 1
        return scores[min(n, len(scores) - 1)]

    def fresh(name: str, cwd: str | None = None) -> object:
        for key in [k for k in sys.modules if k.startswith("converge_tools_")]:
            monkeypatch.delitem(sys.modules, key)
        module = real(name, cwd)
        if name == "examples.flaky.tools":
            credit_score.__module__ = module.__name__
            monkeypatch.setattr(module, "credit_score", credit_score)
        return module

    monkeypatch.setattr(tools, "import_tools_module", fresh)


def console_blocks(doc: str) -> list[Block]:
    return [b for b in ALL_BLOCKS if b.path == ROOT / doc and b.info.split(" ")[0] == "console"]


def run_sessions(docs: list[str], tmp: Path) -> list[str]:
    session, wrong = Session(tmp), []
    for doc in docs:
        prepare(doc, session.work)
        for block in console_blocks(doc):
            if block.info == "console server":
                wrong += parse_only(block)
            elif block.info == "console pytest":
                assert all(c.startswith("pytest ") for c, _ in commands(block)), block.where
            else:
                assert block.info == "console", f"{block.where}: unknown info string {block.info!r}"
                wrong += session.check(block)
    return wrong


def parse_only(block: Block) -> list[str]:
    """The block's `converge` commands parse (command, options, arguments); none is run."""
    wrong = []
    for command, _ in commands(block):
        if not command.startswith("converge "):
            continue
        args = shell_words(command)[1:]
        if any(re.fullmatch(r"[|;&<>()]+", w) for w in args):
            args = args[:next(i for i, w in enumerate(args) if re.fullmatch(r"[|;&<>()]+", w))]
        cmd: click.Command = cli
        try:
            while isinstance(cmd, click.Group):
                name, args = args[0], args[1:]
                sub = cmd.get_command(click.Context(cmd), name)
                assert sub is not None, f"no command {name!r}"
                cmd = sub
            cmd.make_context(cmd.name or "", list(args))
        except click.BadParameter as e:
            if "does not exist" not in e.format_message():  # the user's own rules.cvg may
                wrong.append(f"{block.where}: $ {command}\n--- does not parse: {e.format_message()}")
        except (click.ClickException, AssertionError) as e:
            wrong.append(f"{block.where}: $ {command}\n--- does not parse: {e}")
    return wrong


def test_sessions_not_run_parse() -> None:
    """batch.md and service.md need worker pools and servers: their `converge` commands must at
    least be commands with options that exist."""
    found = [b for b in console_blocks("docs/batch.md") if b.info == "console"]
    found += [b for b in ALL_BLOCKS if b.info == "console server"]
    assert len(found) >= 10
    wrong = [w for b in found for w in parse_only(b)]
    assert not wrong, "\n\n".join(wrong)


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setattr(sys, "stdin", io.StringIO())
    monkeypatch.syspath_prepend(str(ROOT))  # --tools examples.scoring.tools, as from the repository root
    return tmp_path


@pytest.mark.parametrize("doc", SESSIONS)
def test_console_sessions(doc: str, in_repo: Path, fresh_tools: None) -> None:
    assert len(console_blocks(doc)) >= 5
    wrong = run_sessions([doc], in_repo)
    assert not wrong, "\n\n".join(wrong)


def test_reference_console_sessions(in_repo: Path, fresh_tools: None) -> None:
    assert sum(len(console_blocks(doc)) for doc in REFERENCE_SESSIONS) > 80
    wrong = run_sessions(REFERENCE_SESSIONS, in_repo)
    assert not wrong, f"{len(wrong)} commands print something else than the docs show:\n\n" + "\n\n".join(wrong)


@pytest.mark.parametrize("doc", SESSIONS)
def test_first_console_session_as_a_subprocess(doc: str, tmp_path: Path) -> None:
    """The same text from a real `converge` process: the in-process runs above are what a user sees."""
    wrong = Session(tmp_path, subprocess_converge=True).check(console_blocks(doc)[0])
    assert not wrong, "\n\n".join(wrong)


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
    assert package <= table, f"codes the package reports that docs/diagnostics.md lacks: {sorted(package - table)}"
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
    return {o for p in cmd.params if isinstance(p, click.Option) and not p.hidden
            for o in (*p.opts, *p.secondary_opts) if o.startswith("--")} - {"--help"}


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


def test_every_command_has_help_with_an_example() -> None:
    """README.md: "Every command has `--help` with an example" (subcommands too)."""
    missing = [name for name, cmd in cli_commands() if "Example" not in (cmd.epilog or "")]
    assert not missing, f"commands whose --help shows no example: {missing}"
    proc = subprocess.run([sys.executable, "-m", "converge_rules", "decisions", "why", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env=dict(os.environ, NO_COLOR="1"))
    assert proc.returncode == 0 and "Example: converge decisions why " in proc.stdout


def help_options(text: str) -> set[str]:
    """The options a --help page defines (its option lines, not options named in prose)."""
    found: set[str] = set()
    for line in text.split("Options:", 1)[-1].splitlines():
        m = re.match(r"^  (?:-\w, )?(--[a-z][a-z0-9-]*)(?: / (--[a-z][a-z0-9-]*))?", line)
        if m:
            found |= {o for o in m.groups() if o}
    return found - {"--help"}


def test_help_lists_the_options_the_reference_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command's --help shows exactly the options compared with docs/cli.md above; `why
    --help` also run as a user runs it."""
    monkeypatch.setenv("COLUMNS", "200")
    for name, cmd in cli_commands():
        code, text = in_process([*name.split(), "--help"])
        assert code == 0, name
        assert help_options(text) == long_options(cmd), name
    proc = subprocess.run([sys.executable, "-m", "converge_rules", "why", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, NO_COLOR="1", COLUMNS="200"))
    assert proc.returncode == 0 and help_options(proc.stdout) == long_options(dict(cli_commands())["why"])


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


# --- Python examples ----------------------------------------------------------------------------

PYTHON_DOCS = ["docs/explanations.md", "docs/records.md", "docs/service.md", "docs/testing.md"]
# README.md's example is examples/loans/api.py, run above; batch.md's starts a process pool.


def test_python_examples_run(in_repo: Path, fresh_tools: None) -> None:
    """Every ```python block of these docs runs as written (in the session's working directory,
    /tmp/ and /etc/converge/ mapped as for the shell sessions, loans-v2.cvg a copy of the loans
    rules), and a line `EXPR  # VALUE` where VALUE is a Python literal (not abridged with `...`)
    gives that value."""
    import ast

    session = Session(in_repo)
    (session.work / "loans-v2.cvg").write_text((ROOT / "examples/loans/loans.cvg").read_text(encoding="utf-8"))
    key = session.etc / "record.key"
    key.write_text("a secret of more than sixteen bytes\n")
    key.chmod(0o600)
    found = [b for doc in PYTHON_DOCS for b in ALL_BLOCKS if b.path == ROOT / doc and b.info == "python"]
    assert len(found) == len(PYTHON_DOCS)
    compared = 0
    for block in found:
        code = "\n".join(block.body).replace("/tmp/", f"{session.fake_tmp}/").replace("/etc/converge/", f"{session.etc}/")
        namespace: dict[str, object] = {"__name__": "docs_example"}
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(code, block.where, "exec"), namespace)
        for line in block.body:
            expr, _, comment = line.partition("  # ")
            if "..." in comment:  # abridged
                continue
            try:
                want = ast.literal_eval(comment.strip())
                compile(expr.strip(), block.where, "eval")
            except (ValueError, SyntaxError):
                continue
            assert eval(expr.strip(), namespace) == want, f"{block.where}: {line.strip()}"
            compared += 1
    assert compared >= 3


def test_tutorial_failure_table_exit_codes(in_repo: Path) -> None:
    """docs/tutorial.md's table of examples/failures/: each file ends with the exit code it says
    (`converge run`; `converge check` for the file that does not parse)."""
    text = (ROOT / "docs" / "tutorial.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([\w.]+)` \| .* \| (\d+) \|$", text, re.M)
    assert len(rows) == 7
    Session(in_repo)  # the working directory, linked to the repository's files
    for name, code in rows:
        args = ["check", f"examples/failures/{name}"] if name.endswith(".invalid") else \
            ["run", f"examples/failures/{name}", "--format", "summary"]
        status, _ = in_process(args)
        assert status == int(code), (name, status)
