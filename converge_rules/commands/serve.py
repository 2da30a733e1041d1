"""`converge serve`: the decision service over HTTP (Starlette on uvicorn).

A thin adapter over ``converge_rules.session.Session`` and a decision store;
see docs/service.md.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from .common import EXIT_INVALID, SECONDS, Number, fail_diagnostics, load_tools, read_record_key_or_exit, record_key_option
from ..engine.tools import ToolRef

EXAMPLE = ("Example: converge serve examples/loans/loans.cvg --port 8181   then\n"
           "  curl -s localhost:8181/v1/decisions -d '{\"facts\": {\"applicant\": [[\"a1\", 1000]], "
           "\"loan\": [[\"l1\", \"a1\", 6000]]}}'")


@click.command("serve", epilog=EXAMPLE)
@click.argument("rules", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--tools", "tools", multiple=True, metavar="MODULE[:OBJECT]", help="Host tools (repeatable), as for run.")
@click.option("--store", "store_url", metavar="URL",
              help="Decision log: sqlite:///PATH or postgresql://... [default: sqlite in $CONVERGE_DATA_DIR, "
                   "else $XDG_DATA_HOME/converge, else ~/.local/share/converge]")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8181, show_default=True, help="TCP port.")
@click.option("--token-file", type=click.Path(dir_okay=False), help="Bearer tokens, one a line: required on /v1/* when given.")
@click.option("--max-body", type=click.IntRange(min=1), default=10 * 1024 * 1024, show_default=True, metavar="BYTES",
              help="Largest request body; larger ones get 413.")
@click.option("--keep-days", type=Number(min=0, min_open=True), metavar="N",
              help="Retention: delete decisions older than N days (at start, then hourly).")
@click.option("--max-cycles", type=click.IntRange(min=0), help="Cap on every decision's cycles (clients may ask for less).")
@click.option("--max-facts", type=click.IntRange(min=0), help="Cap on every decision's facts.")
@click.option("--max-steps", type=click.IntRange(min=0), help="Cap on every decision's rule firings.")
@click.option("--max-agents-per-cycle", type=click.IntRange(min=1), help="Cap on agents per cycle.")
@click.option("--max-bytes", type=click.IntRange(min=0), help="Cap on every decision's counted bytes of facts (default 268435456).")
@click.option("--timeout", type=SECONDS, metavar="SECONDS",
              help="Cap on every decision's wall-clock time: past it the decision stops (tier bounded) and is stored.")
@click.option("--concurrency", type=click.IntRange(min=1), default=4, show_default=True,
              help="Decisions running at once; more requests wait in line.")
@click.option("--max-queue", type=click.IntRange(min=0), default=64, show_default=True, metavar="N",
              help="Decision requests that may wait in line; more are answered 503 (E956) with Retry-After.")
@click.option("--body-timeout", type=SECONDS, default=30.0, show_default=True, metavar="SECONDS",
              help="Seconds to receive a whole request body; a slower client is answered 408 (E957).")
@click.option("--header-timeout", type=SECONDS, default=30.0, show_default=True, metavar="SECONDS",
              help="Seconds to receive a request's head (request line and headers) once connected or after the "
                   "previous response; a slower or silent client is answered 408 (E958) and disconnected.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Threads for the tool calls of one cycle.")
@click.option("--tool-timeout", type=SECONDS, default=30.0, show_default=True,
              help="Seconds each tool call may take.")
@click.option("--tool-isolation", type=click.Choice(["thread", "process"]), default="thread", show_default=True,
              help="Run tool calls on threads, or in worker processes (started from a fork server, shared by all "
                   "decisions) that are killed at --tool-timeout.")
@click.option("--max-stuck-tool-calls", type=click.IntRange(min=1), default=64, show_default=True, metavar="N",
              help="Tool calls that ran past --tool-timeout and still hold their thread; at N, new tool calls "
                   "fail at once (the agent's failure policy applies) until some return.")
@click.option("--on-failure", metavar="POLICY", help="Default failure policy: abort, skip, or 'retry N then skip|abort'.")
@click.option("--access-log/--no-access-log", default=True, show_default=True, help="Log one line per request.")
@record_key_option
def serve(rules: tuple[str, ...], tools: tuple[str, ...], store_url: str | None, host: str, port: int,
          token_file: str | None, max_body: int, keep_days: float | None, max_cycles: int | None,
          max_facts: int | None, max_steps: int | None, max_agents_per_cycle: int | None, max_bytes: int | None,
          timeout: float | None, concurrency: int, max_queue: int, body_timeout: float, header_timeout: float, workers: int,
          tool_timeout: float, tool_isolation: str, max_stuck_tool_calls: int, on_failure: str | None, access_log: bool,
          record_key_file: str | None) -> None:
    """Serve decisions over HTTP: POST /v1/decisions runs RULES over the
    request's facts, stores the decision record, and answers with the
    decision; explanations of stored decisions at /v1/decisions/ID/why.
    With --record-key FILE every stored record is sealed with HMAC-SHA256.

    Exits 1 when the rules are invalid, the store cannot be opened or the
    address cannot be listened on.
    """
    try:
        import uvicorn  # noqa: F401
        import starlette  # noqa: F401
        import prometheus_client  # noqa: F401
    except ImportError as err:
        raise click.UsageError(f"converge serve needs the serve extra ({err.name} is missing): "
                               "pip install 'converge-rules[serve]'")
    from ..compile.program import FailurePolicy
    from ..diagnostics import ConvergeError
    from ..engine.loop import Budget
    from ..service import ServiceConfig, create_app, is_loopback, read_tokens
    from ..session import Session
    from ..store import default_store_url, open_store, redact
    from ..store.base import StoreError

    if on_failure is not None:
        try:
            FailurePolicy.parse(on_failure)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--on-failure")
    tokens: tuple[str, ...] = ()
    if token_file:
        try:
            tokens = read_tokens(token_file)
        except OSError as err:
            from ..regularfile import reason

            raise click.BadParameter(f"cannot read tokens: {reason(err)}", param_hint="--token-file")
        except (UnicodeDecodeError, ValueError) as err:
            raise click.BadParameter(f"cannot read tokens: {err}", param_hint="--token-file")
    key = read_record_key_or_exit(record_key_file) if record_key_file else None
    loaded_tools: dict[str, Any] = {}
    for spec in tools:
        if tool_isolation == "process":  # a worker process imports the module itself (a ToolRef pickles as its spec)
            loaded_tools.update({name: ToolRef(spec, name) for name in load_tools(spec)})
        else:
            loaded_tools.update(load_tools(spec))
    try:
        session = Session(list(rules), tools=loaded_tools,
                          budget=Budget(max_cycles=max_cycles, max_facts=max_facts, max_agents_per_cycle=max_agents_per_cycle,
                                        max_steps=max_steps, max_bytes=max_bytes, timeout=timeout),
                          workers=workers, tool_timeout=tool_timeout, on_failure=on_failure, record_key=key,
                          tool_isolation=tool_isolation)
    except ConvergeError as err:
        fail_diagnostics(err)
    session.stuck_tool_calls.limit = max_stuck_tool_calls
    for w in session.rules.ruleset.warnings:
        click.echo(w.render(), err=True)
    url = store_url or default_store_url()
    try:
        store = open_store(url)
        if keep_days is not None:
            store.prune_days(keep_days)
    except StoreError as err:
        click.echo(f"converge serve: {err}", err=True)
        sys.exit(EXIT_INVALID)
    problem = _cannot_listen(host, port)
    if problem:
        store.close()
        click.echo(f"converge serve: cannot listen on {host}:{port}: {problem}", err=True)
        sys.exit(EXIT_INVALID)
    public = not is_loopback(host)
    config = ServiceConfig(tokens=tokens, max_body=max_body, public=public, keep_days=keep_days,
                           concurrency=concurrency, max_queue=max_queue, body_timeout=body_timeout)
    app = create_app(session, store, config)
    import uvicorn

    click.echo(f"converge serve: {len(session.rules.files)} rule file(s), digest {session.rules.digest[:12]}, "
               f"decision log {redact(url)}", err=True)
    if public and not tokens:
        click.echo("converge serve: listening beyond loopback without --token-file: PUT /v1/ruleset is disabled",
                   err=True)
    try:
        from ..httpconn import head_timed_protocol

        uvicorn.run(app, host=host, port=port, access_log=access_log, log_level="info", server_header=False,
                    http=head_timed_protocol(header_timeout))
    except SystemExit as stop:  # uvicorn exits 3 when it cannot start: keep converge's exit codes
        if stop.code not in (0, None):
            sys.exit(EXIT_INVALID)
        raise
    finally:
        store.close()
        session.close()  # its tool worker processes


def _cannot_listen(host: str, port: int) -> str | None:
    """Why the address cannot be bound (in use, not local), or None; checked before starting."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as err:
        return str(err.strerror or err)
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as err:
            return str(err.strerror or err).lower()
    return None
