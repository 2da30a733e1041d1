"""The trace format (``converge-trace/1``, docs/trace.md) as its readers check it.

A trace comes back into converge from outside: ``converge replay TRACE`` reads
its header and events, and a decision record carries the events of its run
(read by the report's timeline and by ``replay``). Both readers check what they
read here, once, before anything uses it, so an edited or damaged file is
refused with the line (or event) at fault instead of failing later on.

Each check returns what is wrong, as a phrase, or None.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from .values import dumps_json

__all__ = ["event_problem", "header_problem", "budget_problem", "policy_problem", "reason_problem"]


def _int(v: Any) -> bool:
    return type(v) is int


def _number(v: Any) -> bool:
    return type(v) in (int, float)


def _text(v: Any) -> bool:
    return isinstance(v, str)


def _list(v: Any) -> bool:
    return isinstance(v, list)


def _names(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _scalars(v: Any) -> bool:  # tool arguments: the values a rule can pass
    return isinstance(v, list) and all(type(x) in (int, float, str, bool) for x in v)


def _any(v: Any) -> bool:
    return True


Check = Callable[[Any], bool]

# The events between the header and the outcome: required fields, then optional ones
# ("time" on every event with --timestamps).
EVENTS: dict[str, tuple[dict[str, Check], dict[str, Check]]] = {
    "prune": ({"reason": _text, "agents": _names}, {}),
    "retire": ({"cycle": _int, "agents": _names}, {}),
    "cycle": ({"cycle": _int, "eligible": _names, "deferred": _names}, {}),
    "execute": ({"cycle": _int, "agent": _text, "attempt": _int, "status": _text}, {"facts": _int}),
    "tool": ({"cycle": _int, "tool": _text, "args": _scalars}, {"result": _any, "error": _text}),
    "failure": ({"cycle": _int, "agent": _text, "attempt": _int, "error": _text}, {"span": _text}),
    "retry": ({"cycle": _int, "agent": _text, "attempt": _int}, {}),
    "skip": ({"cycle": _int, "agent": _text, "attempts": _int}, {}),
    "merge": ({"cycle": _int, "relation": _text, "new": _int},
              {"agent": _text, "duplicate": _int, "dominated": _int, "superseded": _int, "dropped": _int}),
    "dominated": ({"cycle": _int, "relation": _text, "fact": _list, "kept": _list}, {}),
    "superseded": ({"cycle": _int, "relation": _text, "fact": _list, "by": _list}, {}),
    "confidence": ({"cycle": _int, "relation": _text, "fact": _list, "confidence": _number}, {}),
    "invariants": ({"cycle": _int, "checked": _names, "violations": _int}, {}),
    "acceptance": ({"invariant": _text, "violations": _int}, {}),
}


def event_problem(event: Any) -> str | None:
    """What is wrong with one event between a trace's header and its outcome."""
    if not isinstance(event, dict):
        return "is not a JSON object"
    kind = event.get("event")
    if not isinstance(kind, str) or kind not in EVENTS:
        return f"has an unknown kind {dumps_json(kind)[:40]}" if "event" in event else "has no 'event' kind"
    required, optional = EVENTS[kind]
    problem = _fields(event, kind, required, {**optional, "time": _number})
    if problem is None and kind == "tool" and ("result" in event) == ("error" in event):
        return "(tool) needs one of 'result' and 'error'"
    return problem


def _fields(obj: Mapping[str, Any], kind: str, required: Mapping[str, Check],
            optional: Mapping[str, Check]) -> str | None:
    for name, ok in required.items():
        if name not in obj:
            return f"({kind}) has no {name!r}"
        if not ok(obj[name]):
            return f"({kind}) has a malformed {name!r}"
    for name, value in obj.items():
        ok = optional.get(name)
        if name not in required and ok is not None and not ok(value):
            return f"({kind}) has a malformed {name!r}"
    return None


# The details of an outcome's reasons (docs/cli.md, "reasons" of --format json), as the engine
# writes them; a reader (the report, why-not, the summary) relies on these types. Other keys
# are left alone: readers show them as JSON.
REASON_DETAILS: dict[str, Check] = {
    "budget": _text, "agent": _text, "error": _text, "invariant": _text, "policy": _text, "not_retried": _text,
    "cycle": _int, "reached": _int, "dropped": _int, "attempts": _int,
    "limit": lambda v: v is None or _number(v), "deterministic": lambda v: isinstance(v, bool),
    "span": lambda v: isinstance(v, (dict, str)),
}


def _match(m: Any) -> bool:
    return (isinstance(m, dict) and isinstance(m.get("bindings", {}), dict)
            and all(type(v) in (int, float, str, bool) for v in m.get("bindings", {}).values())
            and _names(m.get("facts", [])))


def _violation(v: Any) -> bool:
    return (isinstance(v, dict) and _text(v.get("invariant")) and _text(v.get("kind", ""))
            and (v.get("message") is None or _text(v.get("message"))) and isinstance(v.get("span", {}), dict)
            and _list(v.get("matches", [])) and all(map(_match, v.get("matches", []))))


def reason_problem(reason: Any) -> str | None:
    """What is wrong with one reason of an outcome (a kind, a message and its details)."""
    if not isinstance(reason, dict) or not _text(reason.get("kind")) or not _text(reason.get("message")):
        return "needs 'kind' and 'message'"
    for name, value in reason.items():
        ok = REASON_DETAILS.get(name)
        if ok is not None and not ok(value):
            return f"has a malformed {name!r}"
    violations = reason.get("violations", [])
    if not _list(violations) or not all(map(_violation, violations)):
        return "has a malformed 'violations' (each needs 'invariant' and 'matches' of bindings and facts)"
    return None


_COUNTS = ("max_cycles", "max_facts", "max_agents_per_cycle", "max_steps", "max_bytes")


def budget_problem(budget: Any, where: str = "budget", strict: bool = True) -> str | None:
    """What is wrong with a recorded effective budget (``Budget.to_json()``); ``strict``: a key
    that is no budget is wrong too (else it is ignored, as a record's reader ignores it)."""
    if not isinstance(budget, dict):
        return f"{where!r} is not an object"
    for name, value in budget.items():
        if name not in (*_COUNTS, "min_confidence", "timeout"):
            if strict:
                return f"'{where}.{name}' is not a budget"
            continue
        if value is None:
            continue
        if name == "min_confidence":
            ok = _number(value) and 0 <= value <= 1
        elif name == "timeout":
            ok = _number(value) and value > 0
        else:
            ok = _int(value) and value >= 0
        if not ok:
            return f"'{where}.{name}' is {dumps_json(value)[:40]}"
    return None


def policy_problem(policy: Any, where: str = "on_failure") -> str | None:
    """What is wrong with a recorded failure policy (``abort``, ``skip``, ``retry N then skip|abort``)."""
    from .compile.program import FailurePolicy

    try:
        FailurePolicy.parse(policy)
    except (ValueError, TypeError, AttributeError):
        return f"{where!r} is not a failure policy: {dumps_json(policy)[:60]}"
    return None


def _file_entry(entry: Any) -> bool:
    return isinstance(entry, dict) and _text(entry.get("path")) and "sha256" in entry and (
        entry["sha256"] is None or _text(entry["sha256"])) and isinstance(entry.get("imported", False), bool)


def header_problem(header: Any) -> str | None:
    """What is wrong with a trace's first line (docs/trace.md, "header")."""
    from .api import TRACE_FORMAT

    if not isinstance(header, dict) or header.get("event") != "header":
        return "the first line must be the header"
    if header.get("format") != TRACE_FORMAT:
        return f"unsupported trace format {dumps_json(header.get('format'))[:40]}; this converge reads {TRACE_FORMAT!r}"
    for key in ("rules", "facts"):
        entries = header.get(key)
        if not isinstance(entries, list) or not all(_file_entry(e) for e in entries):
            return f"the header's {key!r} must list {{path, sha256}} objects"
    if not header["rules"]:
        return "the header's 'rules' is empty"
    for entry in header["facts"]:
        tables = entry.get("tables", [])
        if not isinstance(tables, list) or not all(isinstance(t, list) and len(t) == 2 and all(map(_text, t))
                                                   for t in tables):
            return "the header's 'tables' of a facts entry must list [relation, query] pairs"
        if not isinstance(entry.get("stdin", False), bool) or not _text(entry.get("format", "json")):
            return "the header's facts entry has a malformed 'stdin' or 'format'"
    inline = header.get("inline_facts", {})
    if not isinstance(inline, dict) or not all(isinstance(rows, list) and all(isinstance(r, list) for r in rows)
                                               for rows in inline.values()):
        return "the header's 'inline_facts' must map relations to lists of facts"
    problem = budget_problem(header.get("budget"), "budget")
    if problem:
        return "the header's " + problem
    if "on_failure" in header:
        problem = policy_problem(header["on_failure"])
        if problem:
            return "the header's " + problem
    if not _names(header.get("goals", [])):
        return "the header's 'goals' must list relation names"
    if not isinstance(header.get("timestamps", False), bool):
        return "the header's 'timestamps' must be true or false"
    return None
