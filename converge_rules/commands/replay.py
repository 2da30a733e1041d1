"""`converge replay TRACE`: re-run a recorded job and compare the traces."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ..values import dumps_json, loads_json
from .common import EXIT_REPLAY_DIFFERS, OUT, fail_diagnostics


def _strip_time(line: str) -> str:
    try:
        event = loads_json(line)
    except json.JSONDecodeError:
        return line
    event.pop("time", None)
    return dumps_json(event, ensure_ascii=False, separators=(",", ":"))


def jsonl_lines(text: str) -> list[str]:
    """The lines of a JSON Lines text: split at line feeds only (a "\r" before one is dropped).
    Not str.splitlines, which also breaks at U+2028, U+2029, U+0085 and other characters that
    JSON writes unescaped inside strings (a fact value may hold them). A byte order mark before
    the first line and blank lines at the end (an editor's) are ignored, as in facts and jobs files."""
    lines = text.removeprefix("\ufeff").split("\n")
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _this_install(entry: dict) -> str:
    """Where to find a header's rule file now: a standard module (``.../stdlib_rules/std/graph.cvg``
    of the install that recorded the trace) is this install's module of that name, so a trace
    replays after the package moved or was reinstalled, as long as the module's text (SHA-256) is
    the same; any other path as recorded."""
    from pathlib import PurePath

    from ..compile.sources import stdlib_dir

    path = PurePath(entry["path"])
    if entry.get("imported") and len(path.parts) >= 3 and path.parts[-3:-1] == ("stdlib_rules", "std"):
        return str(stdlib_dir() / "std" / path.name)
    return entry["path"]


def _portable_header(line: str) -> str:
    """A header line with each standard module's path as this install's (see ``_this_install``):
    the header of a trace recorded by another install of the same modules compares equal."""
    header = loads_json(line)
    rules = header.get("rules")
    if isinstance(rules, list):
        header["rules"] = [{**e, "path": _this_install(e)} if isinstance(e, dict) and isinstance(e.get("path"), str) else e
                           for e in rules]
    return dumps_json(header, ensure_ascii=False, separators=(",", ":"))


def read_trace(path: str) -> list[str]:
    from ..diagnostics import ConvergeError, Diagnostic, Span
    from ..regularfile import read_regular_text, reason

    try:
        lines = jsonl_lines(read_regular_text(path))
    except OSError as err:
        raise ConvergeError([Diagnostic("E500", f"cannot read trace {path}: {reason(err)}", Span(path, 0, 0))]) from None
    except UnicodeDecodeError as err:
        raise ConvergeError([Diagnostic("E500", f"cannot read trace {path}: {err}", Span(path, 0, 0))]) from None
    from ..traceformat import event_problem, header_problem

    events = []
    for number, line in enumerate(lines, 1):
        try:
            events.append(loads_json(line))
        except json.JSONDecodeError as err:
            raise ConvergeError([Diagnostic("E501", f"malformed trace line: {err.msg}", Span(path, number, err.colno)).quoting(lines)])
        except RecursionError:
            raise ConvergeError([Diagnostic("E501", "malformed trace line: nested too deeply", Span(path, number, 1)).quoting(lines)])
    if not lines or not isinstance(events[0], dict) or events[0].get("event") != "header":
        raise ConvergeError([Diagnostic("E501", "not a converge trace: the first line must be the header", Span(path, 1, 1)).quoting(lines)])
    problem = header_problem(events[0])
    if problem:
        raise ConvergeError([Diagnostic("E501", f"malformed trace: {problem}", Span(path, 1, 1)).quoting(lines)])
    for number, event in enumerate(events[1:], 2):
        if number == len(events) and isinstance(event, dict) and event.get("event") == "outcome":
            continue  # the last line: a replay compares it, nothing reads it
        problem = event_problem(event)
        if problem:
            raise ConvergeError([Diagnostic("E501", f"malformed trace: the event {problem}", Span(path, number, 1)).quoting(lines)])
    return lines


@click.command(epilog="Example: converge run rules.cvg --facts facts.json --trace run.jsonl && converge replay run.jsonl"
                      "\n\nFrom a record: converge run rules.cvg --facts facts.json --record r.json && converge replay r.json")
@click.argument("trace_file", type=click.Path(dir_okay=False))
@click.option("--tools", "tools", multiple=True, metavar="MODULE[:OBJECT]",
              help="Call these tools instead of using the recorded results.")
def replay(trace_file: str, tools: tuple[str, ...]) -> None:
    """Re-run the job recorded in TRACE_FILE and check the new trace is byte-identical.

    Rules and facts come from the paths in the trace header (their SHA-256 must
    still match); facts the job read from standard input are read from standard
    input again (the same text: `converge replay TRACE < FILE`); tool results
    come from the trace, so no tool is called.
    Exit 0 when identical, 7 with the first differing event otherwise.

    TRACE_FILE may also be a decision record (`run --record`): the job is
    re-run from the recorded rule texts, input facts and tool results (no
    file read, no tool called) and must reach the same events and digest.
    """
    from ..record import looks_like_record

    if looks_like_record(trace_file):
        _replay_record(trace_file, tools)
        return
    from ..api import load
    from ..io.digests import source_sha256
    from ..diagnostics import ConvergeError
    from ..engine.loop import Budget
    from ..engine.tools import ToolOutcome, tool_key

    try:
        lines = read_trace(trace_file)
    except ConvergeError as err:
        fail_diagnostics(err)
    header = loads_json(lines[0])
    from ..io.database import DatabaseFacts, is_database_url

    stdin_facts = _stdin_facts(header.get("facts", []), trace_file)
    for entry in header.get("rules", []) + header.get("facts", []):
        if is_database_url(entry["path"]) or entry.get("stdin"):
            continue  # a database has no file hash (a change shows as a differing replay); stdin was checked above
        digest = source_sha256(_this_install(entry))
        if digest is None:
            OUT.print(f"{entry['path']} not found (paths in a trace are relative to where it was recorded)", err=True)
            sys.exit(EXIT_REPLAY_DIFFERS)
        if digest != entry["sha256"]:
            now = _this_install(entry)
            OUT.print(f"{entry['path']} changed since the trace was recorded (SHA-256 differs)"
                      + (f": this install's module is {now}" if now != entry["path"] else ""), err=True)
            sys.exit(EXIT_REPLAY_DIFFERS)
    recorded: dict[Any, list[ToolOutcome]] = {}
    for line in lines[1:]:
        event = loads_json(line)
        if event.get("event") == "tool":
            out = ToolOutcome(True, event["result"]) if "result" in event else ToolOutcome(False, error=event["error"])
            recorded.setdefault(tool_key(event["tool"], tuple(event["args"])), []).append(out)
    from .common import load_tools

    host: dict[str, Any] = {}
    for spec in tools:
        host.update(load_tools(spec))
    try:
        # the root files (a file only imported is compiled through the imports, as in the run)
        ruleset = load(list(dict.fromkeys(e["path"] for e in header["rules"] if not e.get("imported"))))
        budget = Budget(**header["budget"])
        facts = {k: [tuple(v) for v in vs] for k, vs in header.get("inline_facts", {}).items()}
        result = ruleset.run(facts=facts or None, fact_files=[stdin_facts if e.get("stdin") else
                                                             DatabaseFacts(e["path"], tuple(map(tuple, e.get("tables", ()))))
                                                             if is_database_url(e["path"]) else e["path"]
                                                             for e in header["facts"]], budget=budget,
                             tools=host, on_failure=header.get("on_failure"), goals=header.get("goals", []),
                             trace=True, timestamps=bool(header.get("timestamps")),
                             _replay_tools=None if tools else recorded)
    except ConvergeError as err:
        fail_diagnostics(err)
    new = jsonl_lines(result.trace_jsonl())
    old, fresh = [_strip_time(x) for x in lines], [_strip_time(x) for x in new]
    old[0], fresh[0] = _portable_header(old[0]), _portable_header(fresh[0])
    for number, (a, b) in enumerate(zip(old, fresh), 1):
        if a != b:
            OUT.print(f"replay differs at event {number} (line {number} of {trace_file}):", err=True)
            OUT.print(f"  recorded: {a}", err=True)
            OUT.print(f"  replayed: {b}", err=True)
            sys.exit(EXIT_REPLAY_DIFFERS)
    if len(old) != len(fresh):
        number = min(len(old), len(fresh)) + 1
        OUT.print(f"replay differs at event {number}: the recorded trace has {len(old)} events, the replay {len(fresh)}", err=True)
        sys.exit(EXIT_REPLAY_DIFFERS)
    OUT.print(f"replay identical: {len(fresh)} events, tier {result.tier.value}, digest {result.digest}")


def _stdin_facts(entries: list[dict[str, Any]], trace_file: str) -> Any:
    """The facts a traced job read from standard input, read from standard input again and
    checked against the recorded SHA-256 (None when the job read none)."""
    entry = next((e for e in entries if e.get("stdin")), None)
    if entry is None:
        return None
    from ..io import FactText
    from ..io.digests import source_sha256

    hint = f"give the same text on standard input: converge replay {trace_file} < FILE"
    if sys.stdin is None or sys.stdin.isatty():
        OUT.print(f"the job read its facts ({entry['path']}) from standard input: {hint}", err=True)
        sys.exit(2)
    try:
        text = sys.stdin.read()
    except (OSError, UnicodeDecodeError) as err:
        OUT.print(f"cannot read standard input: {err}", err=True)
        sys.exit(1)
    given = FactText(entry["path"], text, str(entry.get("format", "json")))
    if source_sha256(given) != entry.get("sha256"):
        OUT.print(f"standard input is not the text the job read as {entry['path']} (SHA-256 differs): {hint}", err=True)
        sys.exit(EXIT_REPLAY_DIFFERS)
    return given


def _replay_record(path: str, tool_specs: tuple[str, ...]) -> None:
    from .common import load_tools
    from ..diagnostics import ConvergeError
    from .common import open_record_or_exit

    record = open_record_or_exit(path)
    host: dict[str, Any] = {}
    for spec in tool_specs:
        host.update(load_tools(spec))
    try:
        result, difference = record.replay(tools=host or None)
    except ConvergeError as err:
        fail_diagnostics(err)
    if difference is not None:
        OUT.print(f"replay differs from {path}: {difference}", err=True)
        sys.exit(EXIT_REPLAY_DIFFERS)
    OUT.print(f"replay identical: tier {result.tier.value}, {result.cycles} cycles, digest {result.digest}")
