"""Decision records: one job, self-contained and versioned (``converge-record/1``).

A record holds everything needed to explain, verify or replay a decision without
the original files or tools: the rule files' texts and SHA-256, where each input
fact came from, every tool call with its result, budgets and options, the outcome
(tier, reasons, cycles, digest), the facts in commit order and one compact proof
per fact. Explanations rebuild a Program from the recorded texts (no file is read)
and a Result from the recorded facts and proofs, so the ordinary explanation code
runs unchanged. Loading is lazy: a relation's fact index and each proof are built
only when an explanation touches them.

Proofs are stored as the engine keeps them: ``[agent id, cycle, premise rows...,
[aggregate and tool values]]`` where each premise is the row number of the fact in
its relation's list (the relation follows from the agent's body); an input fact's
proof is ``[-1, source index, line]`` into the record's ``sources`` list.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from operator import itemgetter
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any, Iterable, Iterator

from .values import dumps_json, loads_json
from .diagnostics import ConvergeError, Diagnostic, Span, quote_text
from .regularfile import open_regular_file, read_regular_file, reason as file_reason

RECORD_FORMAT = "converge-record/1"
_ATOMS = {"str": str, "int": int, "float": float, "bool": bool}
_REQUIRED = ("format", "ruleset", "job", "options", "outcome", "facts", "proofs", "sources", "tools")


class RecordError(ConvergeError):
    """A record that cannot be read, is not a record, or is malformed (codes E610-E614),
    or a record key that cannot be used (E615)."""

    @property
    def code(self) -> str:
        return self.diagnostics[0].code


def _error(code: str, message: str, where: str = "<record>", *notes: str) -> RecordError:
    return RecordError([Diagnostic(code, message, Span(where, 0, 0), "error", tuple(notes))])


def canonical_json(data: Any) -> str:
    """Sorted keys, no NaN, no insignificant whitespace: equal records give equal bytes."""
    try:
        return dumps_json(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n"
    except ValueError as err:
        raise _error("E614", f"the record holds a value JSON cannot represent: {err}")


HMAC_PREFIX = "hmac-sha256:"
MIN_KEY_BYTES = 16
MAX_KEY_FILE_BYTES = 64 * 1024


def _seal_of(unsealed: bytes, key: bytes | None) -> str:
    """The seal of a record's text without its seal field: the plain SHA-256 (hex), or with a
    key ``hmac-sha256:`` and the HMAC-SHA256 (hex), which only a holder of the key can compute."""
    if key is None:
        return hashlib.sha256(unsealed).hexdigest()
    return HMAC_PREFIX + hmac.new(key, unsealed, hashlib.sha256).hexdigest()


def _unsealed_text(data: Mapping[str, Any]) -> tuple[str, str]:
    """The record's text without the seal, split where the seal goes: ``format`` comes first
    and ``seal`` second (a reader knows a record from its first bytes), then the other keys
    sorted; the seal covers ``head + rest``."""
    body = canonical_json({k: v for k, v in data.items() if k not in ("format", "seal")})
    head = '{"format":' + dumps_json(data.get("format"))
    rest = "}\n" if body == "{}\n" else "," + body[1:]
    return head, rest


def _sealed_text(data: Mapping[str, Any], key: bytes | None = None) -> tuple[str, str]:
    """The record's text and its seal (see ``_seal_of``): one serialisation gives both."""
    head, rest = _unsealed_text(data)
    seal = _seal_of((head + rest).encode("utf-8", "surrogatepass"), key)
    return head + ',"seal":"' + seal + '"' + rest, seal


def record_key(key: bytes | str | None) -> bytes | None:
    """A record key as bytes (a str is UTF-8 encoded); refuses keys shorter than 16 bytes
    (E615): a guessable key would make a forged record look authentic."""
    if key is None:
        return None
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, (bytes, bytearray)):
        raise _error("E615", f"a record key must be bytes or str, not {type(key).__name__}")
    if len(key) < MIN_KEY_BYTES:
        raise _error("E615", f"the record key is too short ({len(key)} bytes; at least {MIN_KEY_BYTES})",
                     "<record key>", "make one with: openssl rand -hex 32 > record.key && chmod 600 record.key")
    return bytes(key)


def read_record_key(path: str) -> bytes:
    """The secret of a record key file: its bytes without surrounding whitespace (a trailing
    newline). Refused with E615, never with a traceback and never quoting the file: a
    missing or unreadable file, anything but a regular file (a directory, a FIFO, a device), an
    empty file, a key under 16 bytes, a file over 64 KiB, and on POSIX a file every user may
    read or write (an "other" permission bit: as ssh refuses an open private key; group
    permissions are left to the administrator)."""
    import os
    import stat

    hint = "make one with: openssl rand -hex 32 > record.key && chmod 600 record.key"
    try:
        with open_regular_file(path) as handle:
            info = os.fstat(handle.fileno())
            if os.name == "posix" and info.st_mode & 0o007:
                raise _error("E615", f"the record key file is open to all users (mode {stat.S_IMODE(info.st_mode):04o}): "
                                     "anyone who can read it can forge records", path, f"restrict it: chmod 600 {path}")
            secret = handle.read(MAX_KEY_FILE_BYTES + 1)
            if len(secret) > MAX_KEY_FILE_BYTES:
                raise _error("E615", f"the record key file is over {MAX_KEY_FILE_BYTES} bytes: not a key file", path)
            secret = secret.strip()
    except OSError as err:
        raise _error("E615", f"cannot read the record key file: {file_reason(err)}", path)
    if not secret:
        raise _error("E615", "the record key file is empty", path, hint)
    if len(secret) < MIN_KEY_BYTES:
        raise _error("E615", f"the record key in the file is too short ({len(secret)} bytes; at least {MIN_KEY_BYTES})",
                     path, hint)
    return secret


# ------------------------------------------------------------------ writing
def _encode(result: Any) -> dict[str, Any]:
    """A Result as record data. Facts and proofs are stored by column (flat lists of plain
    values load several times faster than one small list per fact)."""
    from . import __version__
    from .api import ruleset_digest
    from .engine.store import INPUT_AGENT
    from .syntax import ast

    program = result.program
    context = result._context
    outcome = result._outcome
    names = sorted(context.relations)
    index: dict[str, dict[tuple, int]] = {n: dict(zip(context[n].order, range(len(context[n].order)))) for n in names}
    positive = [[lit.relation for lit in a.body if isinstance(lit, ast.Atom)] for a in program.agents]
    sources: list[str] = []
    source_ids: dict[str, int] = {}
    source_of = result._inputs.source

    def encode_alternative(record: tuple, relation: str, fact: tuple, row: int, refs: list[int],
                    extra: dict[str, Any], loose: dict[str, Any]) -> None:
        if record[0] == INPUT_AGENT:
            src = source_of(relation, fact)
            if src is None:
                refs += (-1, 0)
                return
            sid = source_ids.get(src[0])
            if sid is None:
                sid = source_ids[src[0]] = len(sources)
                sources.append(src[0])
            refs += (sid, src[1])
            return
        rels = positive[record[0]]
        for k, (rel, premise) in enumerate(zip(rels, record[2:2 + len(rels)])):
            i = index.get(rel, {}).get(premise)
            if i is None:  # not a row of its relation (never expected): keep the fact itself
                loose[f"{row}:{k}"] = list(premise)
                i = -1
            refs.append(i)
        if len(record) > 2 + len(rels):
            extra[str(row)] = list(record[2 + len(rels)])

    facts: dict[str, list[list[Any]]] = {}
    proofs: dict[str, dict[str, Any]] = {}
    superseded: dict[str, list[list[int]]] = {}
    # per agent: (number of premises, the index of each premise's relation)
    layout = [(len(rels), [index.get(r, {}) for r in rels]) for rels in positive]
    for n in names:
        store = context[n]
        order = store.order
        get, old = store.facts.get, store.superseded
        records = [get(f) or old[f][0] for f in order]
        agents = [r[0] for r in records]
        refs: list[int] = []
        add = refs.append
        extra: dict[str, Any] = {}
        loose: dict[str, Any] = {}
        where = result._inputs.sources(n) if INPUT_AGENT in agents else {}
        kinds = set(agents)
        single = next(iter(kinds)) if len(kinds) == 1 else None
        if single is not None and single != INPUT_AGENT and layout[single][0] >= 1:
            # one agent for the whole relation (the common case): comprehensions, no per-row branches
            k, idxs = layout[single]
            if k == 1:
                idx0 = idxs[0]
                refs = [idx0.get(r[2], -1) for r in records]
            else:
                refs = [idxs[j].get(r[2 + j], -1) for r in records for j in range(k)]
            if -1 not in refs:
                if any(len(r) > 2 + k for r in records):
                    extra = {str(row): list(records[row][2 + k]) for row in range(len(records))
                             if len(records[row]) > 2 + k}
                order_done = True
            else:
                refs, order_done = [], False
                add = refs.append
        else:
            order_done = False
        for row in range(0 if not order_done else len(order), len(order)):  # no tuple per row: the collector would walk them
            r = records[row]
            a = r[0]
            if a == INPUT_AGENT:
                src = where.get(order[row])
                if src is None:
                    add(-1)
                    add(0)
                    continue
                sid = source_ids.get(src[0])
                if sid is None:
                    sid = source_ids[src[0]] = len(sources)
                    sources.append(src[0])
                add(sid)
                add(src[1])
                continue
            k, idx = layout[a]
            if k == 1:
                i = idx[0].get(r[2], -1)
                add(i)
                if i < 0:
                    loose[f"{row}:0"] = list(r[2])
            else:
                for j in range(k):
                    i = idx[j].get(r[2 + j], -1)
                    add(i)
                    if i < 0:  # not a row of its relation (never expected): keep the fact itself
                        loose[f"{row}:{j}"] = list(r[2 + j])
            if len(r) > 2 + k:
                extra[str(row)] = list(r[2 + k])
        facts[n] = [list(map(itemgetter(c), order)) for c in range(store.arity)]
        table: dict[str, Any] = {"agent": agents, "cycle": [r[1] for r in records], "refs": refs}
        if extra:
            table["extra"] = extra
        if loose:
            table["loose"] = loose
        proofs[n] = table
        if old:
            superseded[n] = sorted([index[n][f], index[n].get(by, -1), cycle]
                                   for f, (_p, by, cycle) in old.items() if f in index[n])
    data: dict[str, Any] = {
        "format": RECORD_FORMAT,
        "converge": __version__,
        "ruleset": {"digest": ruleset_digest(result._ruleset_files), "files": result._ruleset_files,
                    "agents": [a.name for a in program.agents]},
        "job": {"rules": list(result.job["rules"]), "facts": list(result.job["facts"])},
        "inputs": {"files": list(result._header.get("facts", [])), "api": bool(result._header.get("inline_facts"))},
        "options": dict(result._options) or {"budget": result.budget.to_json()},
        "outcome": {"tier": result.tier.value, "reasons": [r.to_json() for r in result.reasons],
                    "cycles": result.cycles, "digest": result.digest, "steps": result.steps,
                    "facts": result.total_facts, "fired": result.fired_agents(),
                    # what the facts counted against max_bytes (the report shows it); unknown when this
                    # result was rebuilt from a record written before records kept it
                    **({"bytes": result.bytes_counted} if result.bytes_counted is not None else {})},
        "tools": list(outcome.tool_calls),
        "sources": sources,
        "facts": facts,
        "proofs": proofs,
    }
    if superseded:
        data["superseded"] = superseded
    if outcome.confidence:
        conf = {n: sorted([index[n][f], c] for f, c in table.items() if f in index[n])
                for n, table in outcome.confidence.items() if n in index}
        conf = {n: v for n, v in conf.items() if v}
        if conf:
            data["confidence"] = conf
    if outcome.dropped:
        data["dropped"] = {n: [[list(f), reason, cycle, list(d) if isinstance(d, tuple) else d]
                               for f, (reason, cycle, d) in table.items()]
                           for n, table in sorted(outcome.dropped.items()) if table}
    if outcome.replaced_inputs:
        data["replaced_inputs"] = {n: [[list(f), c] for f, c in table.items()]
                                   for n, table in sorted(outcome.replaced_inputs.items()) if table}
    if outcome.alternatives:
        alts: dict[str, list[Any]] = {}
        for n, table in sorted(outcome.alternatives.items()):
            rows = []
            for f, records in table.items():
                if f in index[n] and records:
                    encoded = []
                    for r in records:
                        refs, extra, loose = [], {}, {}
                        encode_alternative(r, n, f, 0, refs, extra, loose)
                        encoded.append([r[0], r[1], refs, extra.get("0"), loose or None])
                    rows.append([index[n][f], encoded])
            if rows:
                alts[n] = sorted(rows)
        if alts:
            data["alternatives"] = alts
    if result._events is not None:
        data["trace"] = list(result._events)
    return data


# ------------------------------------------------------------------ reading
def _check_shape(data: Any, where: str) -> None:
    if not isinstance(data, dict):
        raise _error("E611", "not a converge record: the top level is not a JSON object", where)
    fmt = data.get("format")
    if fmt != RECORD_FORMAT:
        if isinstance(fmt, str) and fmt.startswith("converge-record/"):
            raise _error("E611", f"unsupported record version {fmt!r}; this converge reads {RECORD_FORMAT!r}", where)
        raise _error("E611", f"not a converge record (format {fmt!r}, expected {RECORD_FORMAT!r})", where,
                     "write one with: converge run RULES --facts FILE --record r.json")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise _error("E612", f"malformed record: missing {', '.join(missing)}", where)
    rs = data["ruleset"]
    if not isinstance(rs, dict) or not isinstance(rs.get("files"), list) or not all(
            isinstance(f, dict) and isinstance(f.get("path"), str) and isinstance(f.get("text"), str)
            and isinstance(f.get("sha256"), str) for f in rs["files"]):
        raise _error("E612", "malformed record: 'ruleset.files' must list {path, sha256, text}", where)
    if not isinstance(data["job"], dict) or not isinstance(data["job"].get("rules"), list) or not data["job"]["rules"]:
        raise _error("E612", "malformed record: 'job.rules' must list the root rule files", where)
    out = data["outcome"]
    if not isinstance(out, dict) or not all(k in out for k in ("tier", "reasons", "cycles", "digest")):
        raise _error("E612", "malformed record: 'outcome' needs tier, reasons, cycles and digest", where)
    if out["tier"] not in ("converged", "degraded", "bounded", "failed"):
        raise _error("E612", f"malformed record: unknown tier {out['tier']!r}", where)
    facts, proofs = data["facts"], data["proofs"]
    if not isinstance(facts, dict) or not isinstance(proofs, dict) or sorted(facts) != sorted(proofs):
        raise _error("E612", "malformed record: 'facts' and 'proofs' must be objects over the same relations", where)
    for n, cols in facts.items():
        table = proofs[n]
        if not isinstance(table, dict) or not all(isinstance(table.get(k), list) for k in ("agent", "cycle", "refs")) \
                or len(table["agent"]) != len(table["cycle"]):
            raise _error("E612", f"malformed record: proofs of {n!r} need 'agent', 'cycle' and 'refs' lists", where)
        if not isinstance(cols, list) or not all(isinstance(c, list) and len(c) == len(table["agent"]) for c in cols):
            raise _error("E612", f"malformed record: relation {n!r} needs one column list per column, "
                                 "each with one value per proof", where)
    if not isinstance(data["tools"], list) or not isinstance(data["sources"], list):
        raise _error("E612", "malformed record: 'tools' and 'sources' must be lists", where)
    if not all(isinstance(c, dict) and isinstance(c.get("tool"), str) and isinstance(c.get("args"), list)
               and all(type(a) in (int, float, str, bool) for a in c["args"]) for c in data["tools"]):
        raise _error("E612", "malformed record: each tool call needs 'tool' and 'args'", where)
    if not all(isinstance(x, str) for x in data["sources"]):
        raise _error("E612", "malformed record: 'sources' must list file names", where)
    if not isinstance(data.get("trace", []), list) or not all(isinstance(e, dict) for e in data.get("trace", [])):
        raise _error("E612", "malformed record: 'trace' must list events", where)
    from .traceformat import event_problem

    for k, event in enumerate(data.get("trace", [])):
        problem = event_problem(event)
        if problem:
            raise _error("E612", f"malformed record: trace event {k + 1} {problem}", where)
    if not isinstance(data["options"], dict) or not isinstance(data["options"].get("budget", {}), dict):
        raise _error("E612", "malformed record: 'options' must be an object with a 'budget' object", where)
    problem = _options_problem(data["options"])
    if problem:
        raise _error("E612", f"malformed record: {problem}", where)
    if not isinstance(out["reasons"], list) or not all(isinstance(r, dict) and isinstance(r.get("kind"), str)
                                                       and isinstance(r.get("message"), str) for r in out["reasons"]):
        raise _error("E612", "malformed record: each reason needs 'kind' and 'message'", where)
    from .traceformat import reason_problem

    for k, reason in enumerate(out["reasons"]):  # the report, why-not and the summary read their details
        problem = reason_problem(reason)
        if problem:
            raise _error("E612", f"malformed record: reason {k + 1} of the outcome {problem}", where)
    if type(out["cycles"]) is not int or not isinstance(out["digest"], str):
        raise _error("E612", "malformed record: 'outcome.cycles' must be an integer and 'digest' a string", where)
    for name in ("steps", "bytes"):
        if name in out and (type(out[name]) is not int or out[name] < 0):
            raise _error("E612", f"malformed record: 'outcome.{name}' must be a whole number >= 0", where)
    problem = _losses_problem(data)
    if problem:
        raise _error("E612", f"malformed record: {problem}", where)


def _scalars(v: Any) -> bool:
    return isinstance(v, list) and all(type(x) in (int, float, str, bool) for x in v)


def _weight(v: Any) -> bool:
    return type(v) in (int, float) and 0 <= v <= 1


# what each reason of a "dropped" entry carries as its detail (why-not and Result.dropped print it)
_DROPPED_DETAIL = {"dominated": _scalars, "max_facts": lambda v: type(v) is int,
                   "min_confidence": _weight}


def _losses_problem(data: Mapping[str, Any]) -> str | None:
    """What is wrong with a record's ``dropped``, ``confidence`` and ``replaced_inputs`` (their
    entries are printed by why, why-not and Result.dropped, and given to replay), or None."""
    def table(key: str) -> Any:
        value = data.get(key, {})
        if not isinstance(value, dict) or not all(isinstance(rows, list) for rows in value.values()):
            return None
        return value

    dropped = table("dropped")
    if dropped is None:
        return "'dropped' must map relations to lists of entries"
    for name, rows in dropped.items():
        for k, row in enumerate(rows):
            if not (isinstance(row, list) and len(row) == 4 and _scalars(row[0]) and row[1] in _DROPPED_DETAIL
                    and type(row[2]) is int and row[2] >= 0 and _DROPPED_DETAIL[row[1]](row[3])):
                return (f"entry {k + 1} of 'dropped.{name}' must be [fact, reason, cycle, detail] (reason dominated, "
                        "max_facts or min_confidence, with the kept fact, the limit or the confidence)")
    confidence = table("confidence")
    if confidence is None or not all(isinstance(r, list) and len(r) == 2 and type(r[0]) is int and _weight(r[1])
                                     for rows in confidence.values() for r in rows):
        return "'confidence' must map relations to [row, confidence] pairs (a confidence from 0 to 1)"
    replaced = table("replaced_inputs")
    if replaced is None or not all(isinstance(r, list) and len(r) == 2 and _scalars(r[0]) and _weight(r[1])
                                   for rows in replaced.values() for r in rows):
        return "'replaced_inputs' must map relations to [fact, confidence] pairs (a confidence from 0 to 1)"
    return None


def _options_problem(options: Mapping[str, Any]) -> str | None:
    """What is wrong with a record's ``options`` (replay runs the job with them), or None."""
    from .traceformat import budget_problem, policy_problem

    problem = budget_problem(options.get("budget", {}), "options.budget", strict=False)
    if problem is None and options.get("on_failure") is not None:
        problem = policy_problem(options["on_failure"], "options.on_failure")
    if problem:
        return problem
    if not (isinstance(options.get("goals", []), list) and all(isinstance(g, str) for g in options.get("goals", []))):
        return "'options.goals' must list relation names"
    timeout = options.get("tool_timeout")
    if timeout is not None and not (type(timeout) in (int, float) and timeout > 0):
        return f"'options.tool_timeout' is {dumps_json(timeout)[:40]}"
    if not isinstance(options.get("all_proofs", False), bool):
        return "'options.all_proofs' must be true or false"
    return None


def _all_of(kind: type, values: list[Any]) -> bool:
    """Whether every value is exactly of ``kind`` (a bool is not an int). Done in C, because a
    Python-level loop over a 500,000-row column took a large part of explaining from a big
    record: strings by joining them (only strings join; JSON gives no str subclass), other
    types by collecting the set of their types."""
    if kind is str:
        try:
            "".join(values)
        except TypeError:
            return False
        return True
    return set(map(type, values)) <= {kind}


def _ints(values: list[Any]) -> bool:
    """Whether a list of proof numbers (agents, cycles, row references) holds only numbers that
    add up to an int: no string, null, list or float (a float makes the sum a float). Fast (one
    C loop), but a JSON ``true`` passes as 1: the values a proof uses are checked exactly
    when it is decoded (``_Rel.record_at``)."""
    try:
        return type(sum(values)) is int
    except TypeError:
        return False


class _Facts(Mapping):
    """A relation's live facts -> engine proof records, decoded on demand from the record."""

    def __init__(self, rel: "_Rel"):
        self.rel = rel

    def __getitem__(self, fact: tuple) -> tuple:
        i = self.rel.row_of(fact)
        if i is None:
            raise KeyError(fact)
        return self.rel.record_at(i)

    def __contains__(self, fact: object) -> bool:
        return self.rel.row_of(fact) is not None  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[tuple]:
        return iter(self.rel.live_index())

    def __len__(self) -> int:
        return len(self.rel.agents) - len(self.rel.dead)


class _Rows(Sequence):
    """A relation's facts in commit order, turned into tuples on first use."""

    def __init__(self, rel: "_Rel"):
        self.rel = rel

    def __getitem__(self, i: Any) -> Any:
        return self.rel.rows[i]

    def __len__(self) -> int:
        return len(self.rel.agents)

    def __iter__(self) -> Iterator[tuple]:
        return iter(self.rel.rows)


class _Rel:
    """One recorded relation: its columns, its proofs, its superseded rows; rows (tuples),
    the fact index and the proofs' offsets are built on first use."""

    def __init__(self, book: "_Book", name: str, columns: list[list[Any]], table: Mapping[str, Any]):
        self.book, self.name, self.columns = book, name, columns
        self.agents: list[int] = table["agent"]
        self.cycles: list[int] = table["cycle"]
        self.refs: list[int] = table["refs"]
        self.extra: Mapping[str, Any] = table.get("extra") or {}
        self.loose: Mapping[str, Any] = table.get("loose") or {}
        self._rows: list[tuple] | None = None
        self._live: dict[tuple, int] | None = None
        self._offsets: list[int] | None = None
        self._stride: int | None = None
        self._codes: bytes | None = None  # agent ids as bytes, while offsets are counted (see offset)
        self._code_widths: list[tuple[bytes, int]] = []
        self._counted = 0
        self.dead: dict[int, tuple[int, int]] = {}  # superseded row -> (row that superseded it, cycle)
        self.hints: dict[tuple, int] = {}  # rows of facts met as premises: walking a proof needs no index
        self._checked = False
        self._proofs_checked = False
        self.scans = 0

    def row_of(self, fact: tuple) -> int | None:
        """The row of a live fact (None when absent or superseded). The first few lookups
        scan the first column (in C, no tuple built); the index is built when they go on."""
        i = self.hints.get(fact)
        if i is not None:
            return None if i in self.dead else i
        if self._live is None and self.scans < 8 and self.columns and len(fact) == len(self.columns):
            self.scans += 1
            return self._scan(fact)
        return self.live_index().get(fact)

    def _scan(self, fact: tuple) -> int | None:
        self.check()
        first, value, i = self.columns[0], fact[0], -1
        others = list(zip(self.columns[1:], fact[1:]))
        while True:
            try:
                i = first.index(value, i + 1)
            except ValueError:
                return None
            if i not in self.dead and all(col[i] == v for col, v in others) and self.row(i) == fact:
                self.hints[fact] = i
                return i

    def row(self, i: int) -> tuple:
        """One row as a tuple, without building the others."""
        self.check()
        if self._rows is not None:
            return self._rows[i]
        return tuple(col[i] for col in self.columns) if self.columns else ()

    def check(self) -> None:
        """Refuse values of the wrong type in this relation's columns (once, on first use: finding
        a fact needs no more; its proof is checked by ``check_proofs``)."""
        if self._checked:
            return
        if not self._columns_typed():
            raise _error("E612", f"malformed record: relation {self.name!r} holds values of the wrong type", self.book.where)
        self._checked = True

    def check_proofs(self) -> None:
        """Refuse proof lists of the wrong shape (once, before the first proof is decoded)."""
        if self._proofs_checked:
            return
        self.check()
        if not (_ints(self.agents) and _ints(self.cycles) and _ints(self.refs)
                and isinstance(self.extra, Mapping) and all(isinstance(v, list) for v in self.extra.values())
                and isinstance(self.loose, Mapping) and all(isinstance(v, list) for v in self.loose.values())):
            raise _error("E612", f"malformed record: the proofs of {self.name!r} hold values of the wrong type",
                         self.book.where)
        self._proofs_checked = True

    def _bad_number(self, i: int) -> RecordError:
        return _error("E612", f"malformed record: the proof of row {i} of {self.name!r} holds a value of the wrong type",
                      self.book.where)

    def _columns_typed(self) -> bool:
        declared = self.book.program.relations.get(self.name)
        if declared is None or len(declared.columns) != len(self.columns):
            return False
        for col, spec in zip(self.columns, declared.columns):
            want = _ATOMS.get(spec.type)
            if want is None or not _all_of(want, col):
                return False
        return True

    @property
    def rows(self) -> list[tuple]:
        self.check()
        if self._rows is None:
            self._rows = list(zip(*self.columns)) if self.columns else [()] * len(self.agents)
        return self._rows

    def live_index(self) -> dict[tuple, int]:
        if self._live is None:
            dead = self.dead
            self._live = {f: i for i, f in enumerate(self.rows) if i not in dead} if dead else \
                dict(zip(self.rows, range(len(self.rows))))
        return self._live

    def offset(self, i: int) -> int:
        """Where row i's references start in ``refs``: i * width when every row of the
        relation has the same width (no table). Otherwise the first lookups count, per agent,
        its rows before row i in a byte string of agent ids (a C scan, no table), and when
        lookups go on (verify, a report) a table of running sums is built."""
        if self._offsets is None:
            self._layout()
        if self._stride is not None:
            return i * self._stride
        if self._codes is not None:
            self._counted += 1
            if self._counted <= 64:
                codes = self._codes
                return sum(w * codes.count(c, 0, i) for c, w in self._code_widths)
            import itertools

            self._offsets = [0, *itertools.accumulate(map(self.book.width.__getitem__, self.agents))]
            self._codes = None
        return self._offsets[i]

    def _layout(self) -> None:
        """Check that the proofs' references fit the recorded rules, and prepare ``offset``."""
        from array import array

        self.check_proofs()
        width = self.book.width
        try:
            kinds = sorted(set(self.agents))
            widths = {width[a] for a in kinds}
        except (KeyError, TypeError):
            raise _error("E613", f"the record's proofs of {self.name} name agents the recorded rules do not have", self.book.where)
        # the layout is kept only once it fits: a record refused once is refused again, never half-read
        stride: int | None = None
        codes: bytes | None = None
        code_widths: list[tuple[bytes, int]] = []
        offsets: list[int] = []
        if len(widths) <= 1:
            stride = widths.pop() if widths else 0
            total = stride * len(self.agents)
        else:
            try:
                codes = array("b", self.agents).tobytes()  # one byte per row: agent ids -1..127
                code_widths = [(bytes([a & 0xFF]), width[a]) for a in kinds]
                total = sum(w * codes.count(c) for c, w in code_widths)
            except OverflowError:  # more agents than a byte holds: the table at once
                import itertools

                offsets = [0, *itertools.accumulate(map(width.__getitem__, self.agents))]
                total = offsets[-1]
        if total != len(self.refs):
            raise _error("E613", f"the record's proofs of {self.name} do not fit the recorded rules "
                                 f"({len(self.refs)} premise references, {total} expected)", self.book.where)
        self._stride, self._codes, self._code_widths, self._offsets = stride, codes, code_widths, offsets

    def record_at(self, i: int) -> tuple:
        from .engine.store import INPUT_PROOF

        self.check_proofs()
        agent = self.agents[i]
        if type(agent) is not int or type(self.cycles[i]) is not int:
            raise self._bad_number(i)
        if agent < 0:
            return INPUT_PROOF
        start = self.offset(i)
        rels = self.book.positive[agent]
        premises = []
        for k, r in enumerate(rels):
            p = self.refs[start + k]
            if type(p) is not int:
                raise self._bad_number(i)
            if p >= 0:
                try:
                    rel = self.book.rels[r]
                    fact = rel.row(p)
                    rel.hints[fact] = p
                    premises.append(fact)
                except (KeyError, IndexError):
                    raise _error("E613", f"the record's proof of row {i} of {self.name} names a missing premise", self.book.where)
            else:
                premises.append(tuple(self.loose.get(f"{i}:{k}", ())))
        extra = self.extra.get(str(i))
        return (agent, self.cycles[i], *premises, *((tuple(extra),) if extra is not None else ()))

    def source_at(self, i: int) -> tuple[str, int] | None:  # noqa: D102
        self.check_proofs()
        if self.agents[i] >= 0:
            return None
        start = self.offset(i)
        sid, line = self.refs[start], self.refs[start + 1]
        if type(sid) is not int or type(line) is not int:
            raise self._bad_number(i)
        sources = self.book.source_files
        return (sources[sid], line) if 0 <= sid < len(sources) else None


class _Book:
    """The recorded relations, and what decoding their proofs needs from the recorded rules."""

    def __init__(self, program: Any, data: Mapping[str, Any], where: str = "<record>"):
        from .syntax import ast

        self.program = program
        self.where = where
        self.positive = [[lit.relation for lit in a.body if isinstance(lit, ast.Atom)] for a in program.agents]
        self.width = {i: len(rels) for i, rels in enumerate(self.positive)}
        self.width[-1] = 2  # an input fact: source index and line
        self.rels = {n: _Rel(self, n, cols, data["proofs"][n]) for n, cols in data["facts"].items()}
        self.source_files: list[str] = data["sources"]

    def decode_alternative(self, relation: str, entry: list[Any]) -> tuple:
        from .engine.store import INPUT_PROOF

        agent, cycle, refs, extra, loose = entry
        if agent < 0:
            return INPUT_PROOF
        premises = [self.rels[r].row(p) if p >= 0 else tuple((loose or {}).get(f"0:{k}", ()))
                    for k, (r, p) in enumerate(zip(self.positive[agent], refs))]
        return (agent, cycle, *premises, *((tuple(extra),) if extra is not None else ()))

    def source(self, relation: str, fact: tuple) -> tuple[str, int] | None:
        rel = self.rels.get(relation)
        if rel is None:
            return None
        i = rel.row_of(fact)
        if i is None:
            i = next((k for k in rel.dead if rel.row(k) == fact), None)
            if i is None:
                return None
        return rel.source_at(i)

    def sources(self, relation: str) -> dict[tuple, tuple[str, int]]:
        """Input fact -> where it came from, for one relation (as the run's inputs give it)."""
        rel = self.rels.get(relation)
        if rel is None:
            return {}
        rel.check_proofs()
        out = {}
        for i, a in enumerate(rel.agents):
            if a < 0:
                src = rel.source_at(i)
                if src is not None:
                    out[rel.row(i)] = src
        return out

    def inputs(self) -> dict[str, list[int]]:
        """Rows of input facts, per relation."""
        for rel in self.rels.values():
            rel.check_proofs()
        return {n: [i for i, a in enumerate(rel.agents) if a < 0] for n, rel in self.rels.items()}


def _rebuild(data: Mapping[str, Any], where: str = "<record>") -> tuple[Any, Any]:
    """The recorded rules compiled from their texts, and a Result over the recorded facts and proofs."""
    from .api import Result, RuleSet
    from .compile.graph import goal_pruned
    from .compile.pipeline import compile_sources
    from .engine.loop import Budget, Outcome, Reason, Tier
    from .engine.store import Context

    virtual = {f["path"]: f["text"] for f in data["ruleset"]["files"]}
    roots = list(data["job"]["rules"])
    missing = [p for p in roots if p not in virtual]
    if missing:
        raise _error("E613", f"the record lacks the text of rule file {missing[0]!r}", where)
    compilation = compile_sources([(p, None) for p in roots], virtual=virtual)
    if not compilation.ok:
        first = next(d for d in compilation.diagnostics if d.is_error)
        raise _error("E613", f"the recorded rules do not compile: {first.render().splitlines()[0]}", where)
    ruleset = RuleSet(compilation)
    program = ruleset.program
    agents = data["ruleset"].get("agents")
    if agents is not None and agents != [a.name for a in program.agents]:
        raise _error("E613", "the recorded rules compile to other agents than the record names", where)
    unknown = sorted(n for n in data["facts"] if n not in program.relations)
    if unknown:
        raise _error("E613", f"the record holds facts of {unknown[0]!r}, which the recorded rules do not declare", where)
    book = _Book(program, data, where)
    context = Context({name: rel.arity for name, rel in program.relations.items()})
    for name, store in context.relations.items():
        rel = book.rels.get(name)
        if rel is None:
            continue
        for row, by, cycle in data.get("superseded", {}).get(name, []):
            rel.dead[row] = (by, cycle)
        store.order = _Rows(rel)  # type: ignore[assignment]
        store.facts = _Facts(rel)  # type: ignore[assignment]
        store.superseded = {rel.row(row): (rel.record_at(row), rel.row(by) if by >= 0 else (), cycle)
                            for row, (by, cycle) in rel.dead.items()}
    confidence = None
    if "confidence" in data:
        confidence = {n: {book.rels[n].row(i): c for i, c in rows} for n, rows in data["confidence"].items()}
    dropped = {n: {tuple(f): (reason, cycle, tuple(d) if isinstance(d, list) else d) for f, reason, cycle, d in rows}
               for n, rows in data.get("dropped", {}).items()}
    alternatives = None
    if "alternatives" in data:
        alternatives = {n: {book.rels[n].row(i): [book.decode_alternative(n, e) for e in entries] for i, entries in rows}
                        for n, rows in data["alternatives"].items()}
    out = data["outcome"]
    options = data["options"]
    budget = Budget(**{k: v for k, v in options.get("budget", {}).items() if k in Budget.__dataclass_fields__})
    reasons = [Reason(r["kind"], r["message"], {k: v for k, v in r.items() if k not in ("kind", "message")})
               for r in out["reasons"]]
    fired = tuple(a.id for a in program.agents if a.name in set(out.get("fired", ())))
    outcome = Outcome(Tier(out["tier"]), reasons, out["cycles"], context, budget, fired, out.get("steps", 0),
                      confidence, alternatives, dropped, tool_calls=list(data["tools"]),
                      replaced_inputs={n: {tuple(f): c for f, c in rows} for n, rows in data.get("replaced_inputs", {}).items()})
    # what the facts counted against max_bytes; None in a record written before it was kept
    outcome.bytes = out.get("bytes")  # type: ignore[assignment]
    # the recorded rules and goals decide which agents the job pruned, as they did when it ran
    assert compilation.strata is not None
    outcome.pruned = tuple(sorted(goal_pruned(program, compilation.strata, list(options.get("goals", [])))))
    header = None
    events = None
    if "trace" in data:
        events = list(data["trace"])
        header = {"event": "header", "format": "converge-trace/1",
                  "rules": [{"path": f["path"], "sha256": f["sha256"]} for f in data["ruleset"]["files"]],
                  "facts": data.get("inputs", {}).get("files", []),
                  "inline_facts": bool(data.get("inputs", {}).get("api")),
                  "budget": options.get("budget", {}), "on_failure": options.get("on_failure", "abort"),
                  "goals": options.get("goals", []), "timestamps": False}
    result = Result(program, outcome, book, events, header)  # type: ignore[arg-type]
    result.__dict__["digest"] = out["digest"]  # the recorded digest (verify recomputes it)
    result.job = {"rules": list(data["job"]["rules"]), "facts": list(data["job"].get("facts", []))}
    result._ruleset_files = list(data["ruleset"]["files"])
    result._options = dict(options)
    return ruleset, result


class Record:
    """An immutable, self-contained decision record (``converge-record/1``)."""

    def __init__(self, data: dict[str, Any], where: str = "<record>", key: bytes | str | None = None):
        """``key``: the secret that seals the record when it is written (HMAC-SHA256) and
        that ``verify`` checks its seal with; None for the plain SHA-256 seal."""
        _check_shape(data, where)
        self._data = data
        self.where = where
        self._key = record_key(key)
        self._built: tuple[Any, Any] | None = None
        self._text: tuple[str, str] | None = None
        self._made_here = False  # made from a result in this process (sealed when first written or checked)

    # -- construction
    @classmethod
    def from_result(cls, result: Any, key: bytes | str | None = None) -> "Record":
        """The record of a job just run (``RuleSet.run(...)``); also ``Result.to_record()``.
        With ``key`` its seal is an HMAC-SHA256 that only a holder of the key can compute.
        A result run without proofs (``proofs=False``) has none to record: E540."""
        result._need_proofs("a decision record")
        record = cls(_encode(result), key=key)
        record._made_here = True
        return record

    @classmethod
    def from_dict(cls, data: Any, where: str = "<record>", key: bytes | str | None = None) -> "Record":
        """Validate the format and shape; raises RecordError (E611 not a record or another version, E612 malformed)."""
        return cls(data, where, key)

    @classmethod
    def from_json(cls, text: str | bytes, where: str = "<record>", key: bytes | str | None = None) -> "Record":
        try:
            data = loads_json(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            line, col = getattr(err, "lineno", 0), getattr(err, "colno", 0)
            shown = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
            raise RecordError(quote_text([Diagnostic("E611", f"not a converge record: invalid JSON ({getattr(err, 'msg', err)})",
                                                     Span(where, line, col))], where, shown))
        return cls(data, where, key)

    def to_dict(self) -> dict[str, Any]:
        """The record as plain data (with its seal)."""
        if "seal" not in self._data:
            self._data["seal"] = self._sealed()[1]
        return self._data

    def to_json(self) -> str:
        """Canonical JSON: ``format`` then ``seal`` first (a reader knows a record from its first
        bytes), then sorted keys; no NaN, no whitespace: identical bytes for identical jobs."""
        return self._sealed()[0]

    def _sealed(self) -> tuple[str, str]:
        """The text and seal: a record read with a seal keeps it as read (writing it again never
        turns a keyed seal into a plain one, nor makes changed contents look sealed); a record
        without one (just made from a result) is sealed now, under this record's key."""
        if self._text is None:
            seal = self._data.get("seal")
            if isinstance(seal, str):
                head, rest = _unsealed_text(self._data)
                self._text = head + ',"seal":' + dumps_json(seal) + rest, seal
            else:
                self._text = _sealed_text(self._data, self._key)
        return self._text

    @property
    def seal_kind(self) -> str | None:
        """How the record as read is sealed: ``"hmac-sha256"`` (keyed: authenticity can be
        checked with the key), ``"sha256"`` (plain: integrity only), None without a seal."""
        seal = self._data.get("seal")
        if not isinstance(seal, str):
            return None
        return "hmac-sha256" if seal.startswith(HMAC_PREFIX) else "sha256"

    def write(self, path: str) -> None:
        """Write the record atomically (a reader never sees half a record)."""
        from .io import write_atomic

        write_atomic(path, self.to_json())

    # -- the outcome
    @property
    def tier(self) -> str:
        return self._data["outcome"]["tier"]

    @property
    def reasons(self) -> list[dict[str, Any]]:
        return self._data["outcome"]["reasons"]

    @property
    def cycles(self) -> int:
        return self._data["outcome"]["cycles"]

    @property
    def digest(self) -> str:
        return self._data["outcome"]["digest"]

    @property
    def ruleset_digest(self) -> str:
        return self._data["ruleset"]["digest"]

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        return self._data["tools"]

    @property
    def result(self) -> Any:
        """A Result rebuilt from the record (no file read, no tool called)."""
        return self._build()[1]

    @property
    def program(self) -> Any:
        return self._build()[1].program

    def _build(self) -> tuple[Any, Any]:
        if self._built is None:
            try:
                self._built = _rebuild(self._data, self.where)
            except ConvergeError:
                raise
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
                raise _error("E612", f"malformed record: {type(err).__name__}: {err}", self.where)
        return self._built

    def relations(self) -> list[str]:
        return sorted(self._data["facts"])

    def facts(self, relation: str) -> list[tuple]:
        """The facts of a relation, sorted."""
        return self.result.facts(relation)

    # -- explanations
    def why(self, fact: str | tuple[str, Sequence[Any]], depth: int | None = None) -> Any:
        """The recorded proof tree of a fact (a ProofNode), None when it does not hold."""
        return self.result.why(fact, depth=depth)

    def why_text(self, fact: str, depth: int | None = None) -> str:
        from .explain.render import render_text

        tree = self.why(fact, depth)
        if tree is None:
            return f"{fact} does not hold in this record\n"
        text = render_text(tree)
        return text if text.endswith("\n") else text + "\n"

    def why_json(self, fact: str, depth: int | None = None) -> dict[str, Any] | None:
        tree = self.why(fact, depth)
        return None if tree is None else tree.to_json()

    def why_not(self, fact: str, depth: int = 1) -> Any:
        """Why a fact does not hold, from the recorded facts (a WhyNot)."""
        return self.result.why_not(fact, depth=depth)

    def why_not_text(self, fact: str, depth: int = 1) -> str:
        from .explain.whynot import render_text

        text = render_text(self.why_not(fact, depth))
        return text if text.endswith("\n") else text + "\n"

    def report_html(self, relations: Sequence[str] | None = None, **options: Any) -> str:
        """The HTML report of the recorded decision (the timeline when the run was traced)."""
        from .explain.report import render_report

        return render_report(self.result, list(relations) if relations else None, **options)

    def query(self, pattern: str) -> list[tuple[str, tuple]]:
        """Every fact matching a pattern such as ``decision(l, "reject")`` (variables and ``_``), sorted."""
        return query(self.result, pattern)

    # -- integrity and replay
    def verify(self, key: bytes | str | None = None) -> Any:
        """Check the seal, the rule files' SHA-256, the digest and every proof (a checker Report).

        With a key (``key``, else the one the record was opened with) a keyed seal is checked
        as HMAC-SHA256, and a plain seal is refused (E617: nothing shows who wrote it). Without
        a key a keyed seal cannot be checked: the report carries a note that authenticity was
        not checked (the digests and proofs still are)."""
        from .explain.checker import Checker

        key = record_key(key) if key is not None else self._key
        problems = _integrity(self, key)
        if problems:
            return _Tampered(problems, self.where)
        ruleset, result = self._build()
        book: _Book = result._inputs
        inputs = {n: {book.rels[n].rows[i] for i in rows} for n, rows in book.inputs().items() if rows}
        # a record of a `--proofs all` job keeps each fact's other derivations: they are proofs too
        report = Checker(result.program, inputs).check(
            result.to_dict(proofs=True, all_proofs="alternatives" in self._data))
        report.failures.extend(_tool_failures(result, self._data["tools"]))
        if key is None and self.seal_kind == "hmac-sha256":
            report.note(NOT_AUTHENTICATED)
        return report

    def replay(self, tools: Mapping[str, Any] | None = None) -> tuple[Any, str | None]:
        """Re-run the recorded job from the recorded rules, inputs and tool results (or ``tools``);
        returns the new Result and the first difference (None when it reaches the same digest)."""
        from .engine.tools import ToolOutcome, tool_key

        ruleset, old = self._build()
        data = self._data
        book: _Book = old._inputs
        conf = {n: dict(rows) for n, rows in data.get("confidence", {}).items()}
        facts: dict[str, list[list[Any]]] = {}
        for name, rows in book.inputs().items():
            rel = book.rels[name]
            for i in rows:
                c = conf.get(name, {}).get(i)
                facts.setdefault(name, []).append(list(rel.rows[i]) + ([c] if c is not None else []))
        for name, rows in data.get("dropped", {}).items():
            for f, reason, cycle, detail in rows:
                if cycle == 0 and reason == "min_confidence":
                    facts.setdefault(name, []).append(list(f) + [detail])
                elif cycle == 0 and reason == "dominated":  # an input fact its key's better input dominated
                    facts.setdefault(name, []).append(list(f))
        for name, rows in data.get("replaced_inputs", {}).items():  # their proofs are derivations now
            for f, c in rows:
                facts.setdefault(name, []).append(list(f) + ([c] if c < 1.0 else []))
        recorded: dict[Any, list[Any]] = {}
        for call in data["tools"]:
            out = ToolOutcome(True, call["result"]) if "result" in call else ToolOutcome(False, error=call.get("error", ""))
            recorded.setdefault(tool_key(call["tool"], tuple(call["args"])), []).append(out)
        options = data["options"]
        from .engine.loop import Budget

        budget = Budget(**{k: v for k, v in options.get("budget", {}).items() if k in Budget.__dataclass_fields__})
        new = ruleset.run(facts=facts, budget=budget, tools=tools or {}, on_failure=options.get("on_failure"),
                          goals=options.get("goals", []), trace="trace" in data,
                          all_proofs=bool(options.get("all_proofs")), tool_timeout=options.get("tool_timeout", 30.0),
                          _replay_tools=None if tools else recorded)
        difference = None
        if "trace" in data and new.trace is not None:
            fresh = new.trace[1:-1]
            for k, (a, b) in enumerate(zip(data["trace"], fresh), 1):
                a = {key: v for key, v in a.items() if key != "time"}
                if a != b:
                    difference = f"event {k} differs: recorded {dumps_json(a, ensure_ascii=False, sort_keys=True)}, " \
                                 f"replayed {dumps_json(b, ensure_ascii=False, sort_keys=True)}"
                    break
            if difference is None and len(data["trace"]) != len(fresh):
                difference = f"the record has {len(data['trace'])} events, the replay {len(fresh)}"
        if difference is None and new.digest != self.digest:
            difference = f"digest differs: recorded {self.digest}, replayed {new.digest}"
        if difference is None and new.tier.value != self.tier:
            difference = f"tier differs: recorded {self.tier}, replayed {new.tier.value}"
        if difference is None:  # the rest of the outcome the record states: it must be reproduced too
            # (not `bytes`: it also counts input facts dropped as they loaded, below min_confidence,
            # which a record keeps only when no derivation committed the fact after all)
            recorded = data["outcome"]
            fresh = {"cycles": new.cycles, "reasons": [r.to_json() for r in new.reasons], "steps": new.steps,
                     "facts": new.total_facts, "fired": new.fired_agents()}
            for name, value in fresh.items():
                if name in recorded and loads_json(dumps_json(value)) != recorded[name]:
                    difference = (f"outcome {name} differs: recorded {dumps_json(recorded[name], ensure_ascii=False, sort_keys=True)}, "
                                  f"replayed {dumps_json(value, ensure_ascii=False, sort_keys=True)}")
                    break
        return new, difference

    def __repr__(self) -> str:
        return f"<Record {self.tier} cycles={self.cycles} digest={self.digest[:12]}>"


def _tool_failures(result: Any, calls: list[dict[str, Any]]) -> list[Any]:
    """Proofs (and alternative derivations) whose tool results are not among the record's tool
    calls (the checker cannot re-evaluate a tool; the record can say what the tool answered)."""
    from .engine.runtime import EvalError, eval_expr
    from .explain.checker import Failure
    from .syntax import ast

    answered = {(c["tool"], dumps_json(c["args"]), dumps_json(c["result"])) for c in calls if "result" in c}
    failures = []
    for agent in result.program.agents:
        uses = [lit for lit in agent.body if isinstance(lit, ast.Comparison) and isinstance(lit.right, ast.ToolCall)
                and isinstance(lit.left, ast.Var)]
        if not uses:
            continue
        for head in {h.relation for h in agent.heads}:
            for fact, k, proof in ((f, k, p) for f in result.facts(head) for k, p in enumerate(result.proofs(head, f))):
                if proof.is_input or proof.agent != agent.name:
                    continue
                for lit in uses:
                    call = lit.right
                    try:
                        args = [eval_expr(a, proof.bindings) for a in call.args]  # type: ignore[union-attr]
                    except (EvalError, KeyError):
                        continue
                    got = proof.bindings.get(lit.left.name)  # type: ignore[union-attr]
                    if (call.tool, dumps_json(args), dumps_json(got)) not in answered:  # type: ignore[union-attr]
                        failures.append(Failure(head, fact, agent.name, f"{agent.span.file}:{agent.span.line}", [(
                            "tool", f"@{call.tool}({', '.join(dumps_json(a) for a in args)}) = {dumps_json(got)} "  # type: ignore[union-attr]
                                    "is not a result of the record's tool calls")], index=0,
                            alternative=k - 1 if k else None))
    return failures


NOT_AUTHENTICATED = ("the record has an authenticated seal (hmac-sha256) and no record key was given: "
                     "its authenticity was not checked, only its integrity (give --record-key FILE)")


class _Tampered:
    """A verify report for a record whose contents do not match its own seal or digests,
    or whose authenticity a given key does not confirm."""

    def __init__(self, problems: list[tuple[str, str]], where: str = "<record>"):
        self.problems = [text for _code, text in problems]
        self.ok = False
        self.notes: dict[str, int] = {}
        self.failures = [_Problem(code, text, where) for code, text in problems]
        if [code for code, _text in problems] == ["E617"]:
            self.summary = "the record is not authenticated: refused"
        elif any("another key" in text for _code, text in problems):
            self.summary = "the record was altered or sealed with another key: refused"
        else:
            self.summary = "the record was altered: refused"

    def note_lines(self) -> list[str]:
        return []


class _Problem:
    """One integrity or authenticity problem of a record, with its stable code."""

    def __init__(self, code: str, text: str, where: str = "<record>"):
        self.code, self.text, self.where = code, text, where

    def render(self) -> str:
        return f"{self.where}: error[{self.code}]: {self.text}"

    def to_json(self) -> dict[str, Any]:
        return {"relation": None, "fact": None, "agent": None, "rule": None,
                "problems": [{"check": "record", "code": self.code, "message": self.text}]}


def _seal_problem(data: Mapping[str, Any], key: bytes | None) -> tuple[str, str] | None:
    """What is wrong with the seal (code, message), None when it holds. A keyed seal is only
    checked with a key; the comparison takes constant time (``hmac.compare_digest``)."""
    seal = data.get("seal")
    if not isinstance(seal, str):
        return "E616", "the record has no seal: it was changed after it was written"
    keyed = seal.startswith(HMAC_PREFIX)
    if keyed and key is None:
        return None  # the caller notes that authenticity was not checked
    head, rest = _unsealed_text(data)
    expected = _seal_of((head + rest).encode("utf-8", "surrogatepass"), key if keyed else None)
    if not hmac.compare_digest(seal.encode("utf-8", "surrogatepass"), expected.encode("ascii")):
        if keyed:
            return "E616", ("the record's authenticated seal does not match under the given key: the record was "
                            "changed after it was written, or it was sealed with another key")
        return "E616", "the record's seal does not match its contents: it was changed after it was written"
    if key is not None and not keyed:
        return "E617", ("the record has a plain SHA-256 seal, not an authenticated one: anyone could have written it "
                        "(a record key was given, so an authenticated seal is required)")
    return None


def _integrity(record: Record, key: bytes | None = None) -> list[tuple[str, str]]:
    """What does not add up in a record, as (code, message): the seal (E616, and E617 for a
    plain seal when a key is given), each rule file's SHA-256, the rule set digest and the
    facts' digest (E613)."""
    from .api import Result, ruleset_digest

    if record._made_here:
        record.to_dict()  # a record just made from a result has no seal yet: it is sealed now, not "changed"
    data = record._data
    problems = []
    seal = _seal_problem(data, key)
    if seal is not None:
        problems.append(seal)
    for f in data["ruleset"]["files"]:
        if hashlib.sha256(f["text"].encode("utf-8", "surrogatepass")).hexdigest() != f["sha256"]:
            problems.append(("E613", f"rule file {f['path']}: its text does not match its recorded SHA-256"))
    if ruleset_digest(data["ruleset"]["files"]) != data["ruleset"].get("digest"):
        problems.append(("E613", "the rule set digest does not match the recorded rule files"))
    if problems:
        return problems
    for store in record.result._context.relations.values():
        if isinstance(store.order, _Rows):
            store.order = store.order.rel.rows  # the digest encodes plain lists
    digest = Result.digest.func(record.result)  # type: ignore[attr-defined]
    if digest != record.digest:
        problems.append(("E613", f"the facts do not give the recorded digest (recorded {record.digest}, computed {digest})"))
    return problems


def integrity_problems(record: Record, key: bytes | str | None = None) -> list[str]:
    """What does not add up in a record: the seal (checked with ``key`` when the seal is
    keyed), each rule file's SHA-256, the rule set digest, the facts' digest (empty when all hold)."""
    return [text for _code, text in _integrity(record, record_key(key) if key is not None else record._key)]


def query(result: Any, pattern: str) -> list[tuple[str, tuple]]:
    """Facts of a result matching a pattern: constants must be equal, a variable used twice binds
    the same value, ``_`` matches anything. Raises ConvergeError for an unknown relation or arity."""
    from .syntax import ast
    from .syntax.parser import parse_atom
    from .values import type_name

    atom = parse_atom(pattern)
    rel = result.program.relations.get(atom.relation)
    if rel is None:
        raise ConvergeError([Diagnostic("E200", f"undefined relation {atom.relation!r}", atom.span)])
    if len(atom.args) != rel.arity:
        raise ConvergeError([Diagnostic("E300", f"{rel.name} has {rel.arity} column(s), the pattern gives {len(atom.args)}",
                                        atom.span)])
    consts: list[tuple[int, Any]] = []
    groups: dict[str, list[int]] = {}
    for i, (arg, col) in enumerate(zip(atom.args, rel.columns)):
        if isinstance(arg, ast.Const):
            v = float(arg.value) if col.type == "float" and type(arg.value) is int else arg.value
            if type_name(v) != col.type:
                raise ConvergeError([Diagnostic("E301", f"column {col.name!r} of {rel.name} is {col.type}, got {type_name(v)}",
                                                arg.span)])
            consts.append((i, v))
        elif isinstance(arg, ast.Var):
            first = groups.setdefault(arg.name, [i])[0]
            if first != i:
                groups[arg.name].append(i)
                if rel.columns[first].type != col.type:  # as in rules: 1, 1.0 and true are different values
                    raise ConvergeError([Diagnostic(
                        "E303", f"variable {arg.name!r} is {rel.columns[first].type} (from column "
                                f"{rel.columns[first].name!r}) but column {col.name!r} of {rel.name} is {col.type}",
                        arg.span)])
        elif not isinstance(arg, ast.Wildcard):
            raise ConvergeError([Diagnostic("E405", "a pattern holds constants, variables and _ only", arg.span)])
    same = [cols for cols in groups.values() if len(cols) > 1]
    store = result._context.relations[rel.name]
    if isinstance(store.facts, _Facts) and consts:
        # a recorded relation: filter one column at a time, build only the matching rows
        recorded = store.facts.rel
        recorded.check()  # its columns fit the declared ones (E612 otherwise) before one is read
        i, v = consts[0]
        candidates = [k for k, x in enumerate(recorded.columns[i]) if x == v and k not in recorded.dead]
        facts: Iterable[tuple] = [recorded.row(k) for k in candidates]
    else:
        facts = store.facts
    out = [(rel.name, fact) for fact in facts
           if all(fact[i] == v and type(fact[i]) is type(v) for i, v in consts)
           and all(all(fact[c] == fact[cols[0]] for c in cols[1:]) for cols in same)]
    out.sort(key=lambda m: m[1])
    return out


def looks_like_record(path: str) -> bool:
    """Whether a file starts like a decision record (canonical records begin with their sorted keys),
    so a command given a record or another file type can tell them apart without parsing either."""
    try:
        head = read_regular_file(path, 4096)
    except OSError:
        return False
    return b'"converge-record/' in head


def open_record(path: str, key: bytes | str | None = None) -> Record:
    """Read a record file; raises RecordError (E610 unreadable, E611 not a record, E612 malformed).
    ``key``: the record key ``verify`` checks a keyed seal with (see ``read_record_key``)."""
    try:
        raw = read_regular_file(path)
    except OSError as err:
        raise _error("E610", f"cannot read record: {file_reason(err)}", path)
    return Record.from_json(raw, path, key)


__all__ = ["RECORD_FORMAT", "Record", "RecordError", "canonical_json", "integrity_problems", "open_record", "query",
           "read_record_key"]
