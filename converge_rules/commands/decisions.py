"""`converge decisions list|show|why|why-not|prune`: read the decision log from the CLI.

Everything comes from the stored decision records: no rule file is read, no
job re-run, no tool called.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ..values import dumps_json, loads_json
from .common import EXIT_ABSENT, EXIT_INVALID, Number, write_json, write_text

_STORE = click.option("--store", "store_url", metavar="URL",
                      help="sqlite:///PATH or postgresql://... [default: the serve default, see docs/service.md]")
EXAMPLE = "Example: converge decisions list --store sqlite:///decisions.db"


def _open(url: str | None, read_only: bool = True) -> Any:
    """The store, opened read-only unless asked (only ``prune`` writes): reading writes nothing, so a
    log on a read-only mount, or that this user may only read, can be read."""
    from ..store import default_store_url, open_store
    from ..store.base import StoreError

    url = url or default_store_url()
    try:
        if url.lower().startswith("sqlite:"):  # never creates a log
            import os

            from ..store.sqlite import path_of

            if not os.path.exists(path_of(url)):
                raise StoreError("E941", f"no decision log at {path_of(url)} (start `converge serve` with this --store)")
        return open_store(url, read_only=read_only)
    except StoreError as err:
        click.echo(f"converge decisions: {err}", err=True)
        sys.exit(EXIT_INVALID)


def _fetch(url: str | None, decision_id: str, by_key: bool = False) -> Any:
    """The stored decision with this id (or, ``by_key``, stored under this idempotency key)."""
    from ..store.base import StoreError

    with _open(url) as store:
        try:
            found = store.get_by_key(decision_id) if by_key else store.get(decision_id)
        except StoreError as err:
            click.echo(f"converge decisions: {err}", err=True)
            sys.exit(EXIT_INVALID)
    if found is None:
        what = "idempotency key" if by_key else "id"
        click.echo(f"converge decisions: error[E947]: no decision with {what} {decision_id!r}", err=True)
        sys.exit(EXIT_INVALID)
    return found


def _record(found: Any) -> Any:
    from ..session import stored_record
    from ..store.base import StoreError

    try:
        return stored_record(found)
    except StoreError as err:
        click.echo(f"converge decisions: {err}", err=True)
        sys.exit(EXIT_INVALID)


def _parse_or_fail(record: Any, fact: str) -> None:
    from ..diagnostics import ConvergeError

    try:
        record.result.parse_fact(fact)
    except ConvergeError as err:
        for d in err.diagnostics:
            click.echo(d.render(), err=True)
        sys.exit(EXIT_INVALID)


@click.group("decisions", epilog=EXAMPLE)
def decisions() -> None:
    """Read the decision log written by `converge serve`."""


@decisions.command("list", epilog=EXAMPLE)
@_STORE
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="At most N decisions, newest first.")
@click.option("--tier", type=click.Choice(["converged", "degraded", "bounded", "failed"]), help="Only decisions of this tier.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def list_(store_url: str | None, limit: int, tier: str | None, fmt: str) -> None:
    """The newest decisions: id, time, tier, digest and rule set digest."""
    from ..store.base import StoreError

    with _open(store_url) as store:
        try:
            rows = store.list(limit, None, tier)
        except StoreError as err:
            click.echo(f"converge decisions: {err}", err=True)
            sys.exit(EXIT_INVALID)
    if fmt == "json":
        write_json(dumps_json({"decisions": [r.to_json() for r in rows]}, indent=2) + "\n")
        return
    for r in rows:
        j = r.to_json()
        click.echo(f"{r.id}  {j['created_at']}  {r.tier:<9}  digest {r.digest[:12]}  ruleset {r.ruleset_digest[:12]}")
    if not rows:
        click.echo("no decisions", err=True)


@decisions.command("show", epilog="Example: converge decisions show 8c993d46cc4e4f96a45dbdea464f3ae0 --store sqlite:///decisions.db")
@click.argument("decision_id", required=False)
@_STORE
@click.option("--record", "as_record", is_flag=True, help="Print the whole decision record (converge-record/1).")
@click.option("--idempotency-key", "key", metavar="KEY",
              help="Show the decision stored under this Idempotency-Key (instead of DECISION_ID).")
def show(decision_id: str | None, store_url: str | None, as_record: bool, key: str | None) -> None:
    """Print a stored decision as the service answered it (JSON), or its record."""
    if (decision_id is None) == (key is None):
        raise click.UsageError("give a DECISION_ID or --idempotency-key KEY (one of them)")
    found = _fetch(store_url, key, by_key=True) if key is not None else _fetch(store_url, decision_id)  # type: ignore[arg-type]
    text = found.record if as_record else dumps_json(loads_json(found.response), indent=2, ensure_ascii=False)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


@decisions.command("why", epilog="Example: converge decisions why 8c993d46cc4e4f96a45dbdea464f3ae0 'decision(\"l1\", \"reject\")' --store sqlite:///decisions.db")
@click.argument("decision_id")
@click.argument("fact")
@_STORE
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def why(decision_id: str, fact: str, store_url: str | None, fmt: str) -> None:
    """Why FACT held in a stored decision: its recorded proof. Exits 6 when it did not hold."""
    record = _record(_fetch(store_url, decision_id))
    _parse_or_fail(record, fact)
    tree = record.why(fact)
    if tree is None:
        click.echo(f"{fact} does not hold in decision {decision_id}", err=True)
        sys.exit(EXIT_ABSENT)
    if fmt == "json":
        from ..explain.render import render_json

        write_json(render_json(tree) + "\n")
    else:
        write_text(record.why_text(fact))


@decisions.command("why-not", epilog="Example: converge decisions why-not 8c993d46cc4e4f96a45dbdea464f3ae0 'decision(\"l1\", \"approve\")' --store sqlite:///decisions.db")
@click.argument("decision_id")
@click.argument("fact")
@_STORE
def why_not(decision_id: str, fact: str, store_url: str | None) -> None:
    """Why FACT did not hold in a stored decision."""
    record = _record(_fetch(store_url, decision_id))
    _parse_or_fail(record, fact)
    write_text(record.why_not_text(fact))


@decisions.command("prune", epilog="Example: converge decisions prune --keep-days 90 --store sqlite:///decisions.db")
@_STORE
@click.option("--keep-days", type=Number(min=0, min_open=True), required=True, metavar="N",
              help="Delete decisions older than N days.")
def prune(store_url: str | None, keep_days: float) -> None:
    """Retention: delete decisions older than N days."""
    from ..store.base import StoreError

    with _open(store_url, read_only=False) as store:
        try:
            n = store.prune_days(keep_days)
        except StoreError as err:
            click.echo(f"converge decisions: {err}", err=True)
            sys.exit(EXIT_INVALID)
    click.echo(f"deleted {n} decision{'s' if n != 1 else ''} older than {keep_days:g} days")
