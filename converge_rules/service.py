"""The decision service: an ASGI application (Starlette) over a Session and a decision store.

A thin adapter: every decision is ``Session.decide`` (the one engine), stored
with ``DecisionStore.put`` before the answer is sent, so a 200 means the
decision is durable. Explanations of past decisions are read from the stored
record, never from a re-run. Metrics live in a registry of this application,
not the process-wide one. Errors are JSON with a stable code
(docs/diagnostics.md) and, for bad rules or facts, the same diagnostics as the CLI.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .values import dumps_json
from .diagnostics import ConvergeError, Diagnostic, Span
from .session import Decision, Session, budget_fields
from .store.base import DecisionStore, KeyTaken, StoredDecision, StoreError

DEFAULT_MAX_BODY = 10 * 1024 * 1024
DEFAULT_BODY_TIMEOUT = 30.0  # seconds to receive a whole request body
MAX_IDEMPOTENCY_KEY = 255  # characters, as common payment APIs allow
TIERS = ("converged", "degraded", "bounded", "failed")


@dataclass(frozen=True)
class ServiceConfig:
    """How the service runs: tokens (empty: no auth), body limit, whether it listens beyond loopback."""

    tokens: tuple[str, ...] = ()
    max_body: int = DEFAULT_MAX_BODY
    public: bool = False
    keep_days: float | None = None
    prune_every: float = 3600.0
    concurrency: int = 4          # decisions running at once; more wait in line (the engine is CPU-bound)
    max_queue: int = 64           # decision requests waiting for a turn; more are 503 E956 (bounded memory)
    body_timeout: float = DEFAULT_BODY_TIMEOUT  # seconds to receive a whole body; a slower one is 408 E957


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_tokens(path: str) -> tuple[str, ...]:
    """Bearer tokens, one a line (blank lines and ``#`` comments ignored); ValueError when none, or
    when a token is not printable ASCII: HTTP header values arrive as bytes read as Latin-1, so a
    token with other characters could never match what a client sends."""
    from .regularfile import read_regular_text

    tokens: list[str] = []
    for number, line in enumerate(read_regular_text(path).split("\n"), 1):
        token = line.strip()
        if not token or token.startswith("#"):
            continue
        if not all(" " <= ch <= "~" for ch in token):
            raise ValueError(f"{path}, line {number}: a token must be printable ASCII (letters, digits, "
                             "punctuation), or no client can send it")
        tokens.append(token)
    if not tokens:
        raise ValueError(f"{path} holds no token (one a line)")
    return tuple(tokens)


def error_body(status: int, code: str, message: str, diagnostics: Sequence[Any] = ()) -> dict[str, Any]:
    return {"error": {"status": status, "code": code, "message": message},
            "diagnostics": [d.to_json() for d in diagnostics]}


class _Metrics:
    """Prometheus metrics in a registry of one application."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.decisions = Counter("converge_decisions", "Decisions made, by tier", ["tier"], registry=self.registry)
        for tier in TIERS:
            self.decisions.labels(tier)
        self.latency = Histogram("converge_decision_seconds", "Time to answer POST /v1/decisions (run and store)",
                                 registry=self.registry, buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5,
                                                                  1, 2.5, 5, 10, 30))
        self.errors = Counter("converge_errors", "Requests answered with an error, by kind", ["kind"],
                              registry=self.registry)
        self.store = Histogram("converge_store_seconds", "Time of decision-log operations", ["op"],
                               registry=self.registry, buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25,
                                                                .5, 1, 5))
        self.swaps = Counter("converge_ruleset_swaps", "Rule set replacements by PUT /v1/ruleset",
                             registry=self.registry)
        self.replays = Counter("converge_idempotent_replays", "Retried POST /v1/decisions answered with the "
                               "decision stored under their Idempotency-Key", registry=self.registry)
        self.stored = Gauge("converge_ruleset_loaded_timestamp_seconds", "When the current rule set was loaded",
                            registry=self.registry)
        self.in_flight = Gauge("converge_decision_requests_in_flight", "POST /v1/decisions requests being read, "
                               "decided or stored, or waiting for a turn", registry=self.registry)
        self.stuck_tools = Gauge("converge_tool_calls_stuck", "Tool calls abandoned at their time-out whose threads "
                                 "still run (at the session's limit, new calls fail at once)", registry=self.registry)

    def timed_store(self, op: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            return fn()
        finally:
            self.store.labels(op).observe(time.perf_counter() - start)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    from .values import json_float

    value = json_float(text)  # as in JSON facts files: an int column takes the integer written
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text} is out of range")
    return value


def _decode_request(text: str) -> Any:
    """The request body as JSON (finite numbers, ints of any size); raises ValueError (a
    ``json.JSONDecodeError`` for syntax, with its location) and ``_RepeatedKey`` when an object has a
    key twice: JSON keeps only the last value, so a repeated key would silently drop facts or settings."""
    from .io import jsonpos

    try:  # an int of any size, as in JSON facts files (docs/facts.md)
        return jsonpos.loads_unique(text, parse_constant=_no_constant, parse_float=_finite)
    except jsonpos.RepeatedKey as err:
        raise _RepeatedKey(text, err) from None


class _RepeatedKey(ValueError):
    """A request body with a key twice in one object; ``diagnostic`` locates the repeated key."""

    def __init__(self, text: str, found: Any):
        from .io import jsonpos

        path = found.path
        index = jsonpos.LineIndex(text)
        (line, col), (end_line, end_col) = index.position(found.start), index.position(found.end)
        self.message = (f"key {dumps_json(path[-1], ensure_ascii=False)} appears twice in "
                        + ("the request" if len(path) == 1 else "one object"))
        span = Span("<request>", line, col, line if end_line == line else 0, end_col if end_line == line else 0)
        self.diagnostic = Diagnostic("E946", self.message, span,
                                     notes=("JSON keeps only the last value of a repeated key, so the request is "
                                            "refused rather than read with values missing",))
        super().__init__(self.message)


def json_bytes(content: Any) -> bytes:
    """An answer's JSON as UTF-8 (what Starlette's JSONResponse writes, by ``dumps_json`` so a proof
    thousands of levels deep is written too). A lone surrogate (a request's ``\\ud800`` escape, quoted
    back in a diagnostic) cannot be UTF-8: it is written as that JSON escape instead of failing."""
    return dumps_json(content, ensure_ascii=False, allow_nan=False, indent=None,
                      separators=(",", ":")).encode("utf-8", "backslashreplace")


def stored_form(decision: Decision, idempotency_key: str | None = None,
                request_sha256: str | None = None) -> StoredDecision:
    """A decision as the log keeps it: the exact answer (compact JSON) and the record, with the
    client's idempotency key and the hash of its request (``request_hash``) when it sent one."""
    response = decision.response()
    return StoredDecision(decision.id, decision.created_at, decision.ruleset_digest, response["tier"],
                          response["digest"], dumps_json(response, ensure_ascii=False, separators=(",", ":")),
                          decision.record.to_json(), idempotency_key, request_sha256)


def store_decision(store: DecisionStore, decision: Decision, idempotency_key: str | None = None,
                   request: Any = None) -> StoredDecision:
    """Store a decision durably (what the service does before it answers); returns the stored row.
    With ``idempotency_key``, ``request`` is the request the decision answers (as ``request_hash``
    takes it); ``store.get_by_key`` finds the decision again and raises ``KeyTaken`` if the key is used."""
    row = stored_form(decision, idempotency_key, request_hash(request) if idempotency_key is not None else None)
    store.put(row)
    return row


def request_hash(body: Any) -> str:
    """SHA-256 of a decision request's canonical JSON (keys sorted, no spaces): a retry that sends
    the same request in another layout or key order has the same hash."""
    text = dumps_json(body, sort_keys=True, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def idempotency_key(header: str | None) -> str | None:
    """The ``Idempotency-Key`` header's value: 1 to 255 printable ASCII characters (surrounding
    spaces are not part of it); None without the header; ValueError (E954) for anything else."""
    if header is None:
        return None
    key = header.strip(" \t")
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not all(" " <= ch <= "~" for ch in key):
        raise ValueError(f"the Idempotency-Key header must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII "
                         "characters (a UUID is a good key)")
    return key


def create_app(session: Session, store: DecisionStore, config: ServiceConfig | None = None) -> Any:
    """The Starlette application serving ``session``'s decisions into ``store``."""
    import anyio
    import anyio.to_thread
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import HTMLResponse, PlainTextResponse, Response
    from starlette.responses import JSONResponse as _StarletteJSON
    from starlette.routing import Route

    class JSONResponse(_StarletteJSON):
        def render(self, content: Any) -> bytes:
            return json_bytes(content)  # a lone surrogate quoted from a request is no 500

    cfg = config or ServiceConfig()
    if cfg.keep_days is not None and not cfg.keep_days > 0:  # NaN too: checked now, not in an hour's pruning
        raise ValueError(f"keep_days must be a number > 0, not {cfg.keep_days!r}")
    if cfg.concurrency < 1 or cfg.max_queue < 0:
        raise ValueError(f"concurrency must be >= 1 and max_queue >= 0, not {cfg.concurrency!r} and {cfg.max_queue!r}")
    if not 0 < cfg.body_timeout < math.inf:  # NaN too: a stalled client would hold its place for ever
        raise ValueError(f"body_timeout must be a finite number of seconds > 0, not {cfg.body_timeout!r}")
    metrics = _Metrics()
    limiter: list[Any] = []  # created on first use, inside the server's event loop
    admitted = [0]           # decision requests in flight; only the event loop thread changes it
    swapping = [0]           # rule set updates in flight (at most one: each holds a body and a compilation)

    async def in_decision_thread(fn: Callable[[], Any]) -> Any:
        """Run a decision on a worker thread, at most ``cfg.concurrency`` at once."""
        if not limiter:
            limiter.append(anyio.CapacityLimiter(cfg.concurrency))
        return await anyio.to_thread.run_sync(fn, limiter=limiter[0])
    metrics.stored.set(session.rules.loaded_at)
    metrics.stuck_tools.set_function(lambda: session.stuck_tool_calls.count)

    def fail(status: int, code: str, message: str, diagnostics: Sequence[Any] = (), kind: str = "invalid_request",
             headers: dict[str, str] | None = None) -> JSONResponse:
        metrics.errors.labels(kind).inc()
        return JSONResponse(error_body(status, code, message, diagnostics), status_code=status, headers=headers)

    def authorized(request: Request) -> bool:
        if not cfg.tokens:
            return True
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            return False
        return any(hmac.compare_digest(given.strip().encode(), t.encode()) for t in cfg.tokens)

    def unauthorized() -> JSONResponse:
        return fail(401, "E950", "a bearer token is required: Authorization: Bearer TOKEN (see --token-file)",
                    kind="unauthorized", headers={"WWW-Authenticate": 'Bearer realm="converge"'})

    async def read_json(request: Request) -> tuple[Any, str, JSONResponse | None]:
        """The request body as JSON, within the size limit; or the error response."""
        length = request.headers.get("content-length")
        if length is not None:
            try:
                if int(length) > cfg.max_body:
                    return None, "", fail(413, "E951", f"request body of {int(length)} bytes is over the limit of "
                                                    f"{cfg.max_body} bytes (--max-body)", kind="too_large")
            except ValueError:
                return None, "", fail(400, "E946", "bad Content-Length header")
        chunks, size = [], 0
        try:
            # A deadline for the whole body: a client that sends part of it and then nothing (or a
            # byte now and then) would otherwise hold its place in line, and its memory, for ever,
            # and keep a stopping service (SIGTERM) waiting for it.
            with anyio.fail_after(cfg.body_timeout):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > cfg.max_body:
                        return None, "", fail(413, "E951", f"request body is over the limit of {cfg.max_body} "
                                                           "bytes (--max-body)", kind="too_large")
                    chunks.append(chunk)
        except TimeoutError:
            return None, "", fail(408, "E957", f"the request body did not arrive within {cfg.body_timeout:g} seconds "
                                               f"(--body-timeout {cfg.body_timeout:g}); send it whole, then retry",
                                  kind="timeout", headers={"Connection": "close"})
        except ClientDisconnect:  # nobody reads this answer; the request is counted, not logged as a bug
            return None, "", fail(400, "E946", "the client closed the connection before the whole request body "
                                               "arrived", kind="disconnected")
        raw = b"".join(chunks)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            return None, "", fail(400, "E946", f"request body is not UTF-8 (byte {err.start})")
        if not text.strip():
            return None, "", fail(400, "E946", "empty request body; send a JSON object")
        try:
            return _decode_request(text), text, None
        except _RepeatedKey as err:
            return None, text, fail(400, "E946", f"malformed JSON in the request body: {err.message}", [err.diagnostic])
        except json.JSONDecodeError as err:
            where = Span("<request>", err.lineno, err.colno)
            return None, text, fail(400, "E946", f"malformed JSON in the request body: {err.msg}",
                                    [Diagnostic("E946", f"malformed JSON: {err.msg}", where)])
        except (RecursionError, ValueError) as err:
            return None, "", fail(400, "E946", f"malformed JSON in the request body: {err}")

    # ---------------------------------------------------------------- decisions
    async def post_decision(request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        if admitted[0] >= cfg.concurrency + cfg.max_queue:
            # Refused before its body is read: waiting requests hold their bodies, so an unbounded
            # line would be unbounded memory under overload.
            return fail(503, "E956", f"the service is busy: {admitted[0]} decision requests are running or waiting "
                                     f"(--concurrency {cfg.concurrency}, --max-queue {cfg.max_queue}); retry later",
                        kind="busy", headers={"Retry-After": "1"})
        admitted[0] += 1
        metrics.in_flight.inc()
        try:
            return await admitted_decision(request)
        finally:
            admitted[0] -= 1
            metrics.in_flight.dec()

    async def admitted_decision(request: Request) -> Response:
        start = time.perf_counter()
        try:
            keys = request.headers.getlist("idempotency-key")
            if len(keys) > 1:
                raise ValueError("send one Idempotency-Key header, not several")
            key = idempotency_key(keys[0] if keys else None)
        except ValueError as err:
            return fail(400, "E954", str(err))
        body, text, error = await read_json(request)
        if error is not None:
            return error
        if not isinstance(body, dict):
            return fail(400, "E944", "the request body must be a JSON object such as {\"facts\": {...}}")
        unknown = sorted(k for k in body if k not in ("facts", "budget", "goals", "relations"))
        if unknown:
            return fail(400, "E944", f"unknown key(s) in the request: {', '.join(unknown)}; known: facts, budget, "
                                     "goals, relations")
        facts = body.get("facts")  # null or no key: no facts; anything but an object is refused (E501)
        digest = request_hash(body) if key is not None else None

        def replay(found: StoredDecision) -> Response:
            """The answer to a retry: the stored decision, byte for byte, if it answered this request."""
            if found.request_sha256 != digest:
                return fail(422, "E955", f"the Idempotency-Key {key!r} was used for another request (decision "
                                         f"{found.id}); send a new key for a new request")
            metrics.replays.inc()
            return Response(found.response, media_type="application/json", headers={"Idempotent-Replayed": "true"})

        async def stored_under_key() -> tuple[StoredDecision | None, Response | None]:
            try:
                return await run_in_threadpool(metrics.timed_store, "get", lambda: store.get_by_key(key)), None
            except StoreError as err:
                return None, fail(500 if err.code == "E948" else 503, err.code, err.message, kind="store")

        if key is not None:
            found, error = await stored_under_key()
            if error is not None or found is not None:
                return error or replay(found)  # type: ignore[arg-type]

        def decide_and_store() -> StoredDecision:
            decision = session.decide(facts, body.get("budget"), body.get("goals"), body.get("relations"),
                                      source_text=text)  # its errors located in the request
            row = stored_form(decision, key, digest)
            metrics.timed_store("put", lambda: store.put(row))
            return row

        try:
            row = await in_decision_thread(decide_and_store)
        except ConvergeError as err:
            return fail(400, "E944" if all(d.code == "E944" for d in err.diagnostics) else err.diagnostics[0].code,
                        "invalid request: " + err.diagnostics[0].message, err.diagnostics)
        except KeyTaken:
            # a concurrent request with the same key stored its decision first: answer that one
            # (this decision was not stored, so it was never made as far as anyone can tell)
            found, error = await stored_under_key()
            if error is not None:
                return error
            if found is None:  # pruned in between: nothing is acknowledged under this key now
                return fail(503, "E941", "the decision could not be stored, so it is not acknowledged: its "
                                         "Idempotency-Key was taken and released meanwhile; retry", kind="store")
            return replay(found)
        except StoreError as err:
            return fail(503, err.code, f"the decision could not be stored, so it is not acknowledged: {err.message}",
                        kind="store")
        metrics.decisions.labels(row.tier).inc()
        metrics.latency.observe(time.perf_counter() - start)
        return Response(row.response, media_type="application/json")

    async def stored(request: Request) -> tuple[StoredDecision | None, Response | None]:
        if not authorized(request):
            return None, unauthorized()
        decision_id = request.path_params["id"]
        try:
            found = await run_in_threadpool(metrics.timed_store, "get", lambda: store.get(decision_id))
        except StoreError as err:  # a damaged row is no outage: retrying cannot help (500, not 503)
            return None, fail(500 if err.code == "E948" else 503, err.code, err.message, kind="store")
        if found is None:
            return None, fail(404, "E947", f"no decision with id {decision_id!r}")
        return found, None

    async def get_decision(request: Request) -> Response:
        found, error = await stored(request)
        if error is not None:
            return error
        return Response(found.response, media_type="application/json")  # type: ignore[union-attr]

    async def get_record(request: Request) -> Response:
        found, error = await stored(request)
        if error is not None:
            return error
        return Response(found.record, media_type="application/json")  # type: ignore[union-attr]

    async def list_decisions(request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        try:
            limit = int(request.query_params.get("limit", "50"))
            before = request.query_params.get("before")
            before_f = float(before) if before is not None else None
            if limit < 1 or (before_f is not None and not math.isfinite(before_f)):
                raise ValueError(limit)
        except ValueError:
            return fail(400, "E944", "limit must be an integer >= 1 and before a finite number (epoch seconds)")
        tier = request.query_params.get("tier")
        if tier is not None and tier not in TIERS:
            return fail(400, "E944", f"unknown tier {tier!r}; tiers: {', '.join(TIERS)}")
        limit = min(limit, 1000)
        try:
            rows = await run_in_threadpool(metrics.timed_store, "list", lambda: store.list(limit, before_f, tier))
        except StoreError as err:
            return fail(503, err.code, err.message, kind="store")
        return JSONResponse({"decisions": [r.to_json() for r in rows]})

    async def explain(request: Request, kind: str) -> Response:
        found, error = await stored(request)
        if error is not None:
            return error
        fact = request.query_params.get("fact")
        if kind != "report" and not fact:
            return fail(400, "E944", "give the fact to explain: ?fact=decision(\"l1\", \"reject\")")
        fmt = request.query_params.get("format", "json")
        if fmt not in ("json", "text"):
            return fail(400, "E944", f"unknown format {fmt!r}; formats: json, text")

        def build() -> Any:
            from .session import stored_record

            record = stored_record(found)
            if kind == "report":
                return record.report_html()
            if kind == "why":
                tree = record.why(fact)
                if tree is None:
                    return {"fact": fact, "holds": False,
                            "text": f"{fact} does not hold in decision {found.id}"}  # type: ignore[union-attr]
                return {"fact": fact, "holds": True, "text": record.why_text(fact), "proof": record.why_json(fact)}
            return {"fact": fact, "text": record.why_not_text(fact)}

        try:
            out = await run_in_threadpool(build)
        except StoreError as err:
            return fail(500, err.code, err.message, kind="store")
        except ConvergeError as err:
            return fail(400, err.diagnostics[0].code, "invalid fact: " + err.diagnostics[0].message, err.diagnostics)
        if kind == "report":
            return HTMLResponse(out)
        if fmt == "text":
            return PlainTextResponse(out["text"] if out["text"].endswith("\n") else out["text"] + "\n")
        return JSONResponse(out)

    async def why(request: Request) -> Response:
        return await explain(request, "why")

    async def why_not(request: Request) -> Response:
        return await explain(request, "why-not")

    async def report(request: Request) -> Response:
        return await explain(request, "report")

    # ---------------------------------------------------------------- the rule set
    async def get_ruleset(request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        return JSONResponse(session.rules.to_json())

    async def put_ruleset(request: Request) -> Response:
        if cfg.public and not cfg.tokens:
            return fail(403, "E952", "rule set updates need --token-file when the service listens beyond loopback",
                        kind="unauthorized")
        if not authorized(request):
            return unauthorized()
        if swapping[0]:
            # One at a time, refused before the body is read: each update holds its body (up to
            # --max-body) and then a compilation of it (some hundred times its size), so updates
            # sent together would take memory without bound; the last one to finish would win anyway.
            return fail(503, "E956", "the service is busy: another rule set update is being read or checked; "
                                     "retry when it is done", kind="busy", headers={"Retry-After": "1"})
        swapping[0] += 1
        try:
            return await admitted_swap(request)
        finally:
            swapping[0] -= 1

    async def admitted_swap(request: Request) -> Response:
        body, _text, error = await read_json(request)
        if error is not None:
            return error
        files = body.get("files") if isinstance(body, dict) else None
        if not isinstance(files, dict) or not files or not all(
                isinstance(k, str) and k and isinstance(v, str) for k, v in files.items()):
            return fail(400, "E945", "send {\"files\": {\"NAME.cvg\": \"rule text\", ...}} with at least one file")
        roots = body.get("roots")
        if roots is not None and (not isinstance(roots, list) or not all(isinstance(r, str) for r in roots)):
            return fail(400, "E945", "roots must be a list of file names given in files")
        unknown = sorted(k for k in body if k not in ("files", "roots"))
        if unknown:
            return fail(400, "E945", f"unknown key(s): {', '.join(unknown)}; known: files, roots")
        try:
            loaded = await run_in_threadpool(session.swap, sorted(files.items()), roots)
        except ConvergeError as err:
            return fail(400, "E945", f"the new rule set has {len(err.diagnostics)} error(s); the old one stays",
                        err.diagnostics)
        metrics.swaps.inc()
        metrics.stored.set(loaded.loaded_at)
        return JSONResponse(loaded.to_json())

    # ---------------------------------------------------------------- operations
    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(request: Request) -> Response:
        ok = await run_in_threadpool(metrics.timed_store, "ping", store.ping)
        body = {"status": "ready" if ok else "unavailable", "store": "ok" if ok else "unreachable",
                "ruleset": {"digest": session.rules.digest}}
        return JSONResponse(body, status_code=200 if ok else 503)

    async def prom(request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_schema())

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        if status == 405:
            return fail(405, "E953", f"method {request.method} not allowed on {request.url.path}")
        return fail(404, "E953", f"no endpoint {request.url.path}; see /openapi.json")

    async def internal(request: Request, exc: Exception) -> Response:
        return fail(500, "E999", f"internal error: {type(exc).__name__}; this is a bug in converge", kind="internal")

    async def prune_loop() -> None:
        while True:  # the first pruning happens before the service starts (converge serve)
            await anyio.sleep(cfg.prune_every)
            try:
                await run_in_threadpool(metrics.timed_store, "prune", lambda: store.prune_days(cfg.keep_days))
            except StoreError:
                metrics.errors.labels("store").inc()

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        async with anyio.create_task_group() as tg:
            if cfg.keep_days is not None:
                tg.start_soon(prune_loop)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()

    routes = [
        Route("/v1/decisions", post_decision, methods=["POST"]),
        Route("/v1/decisions", list_decisions, methods=["GET"]),
        Route("/v1/decisions/{id}", get_decision, methods=["GET"]),
        Route("/v1/decisions/{id}/record", get_record, methods=["GET"]),
        Route("/v1/decisions/{id}/why", why, methods=["GET"]),
        Route("/v1/decisions/{id}/why-not", why_not, methods=["GET"]),
        Route("/v1/decisions/{id}/report", report, methods=["GET"]),
        Route("/v1/ruleset", get_ruleset, methods=["GET"]),
        Route("/v1/ruleset", put_ruleset, methods=["PUT"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", prom, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={404: not_found, 405: not_found, Exception: internal})
    app.state.session = session
    app.state.store = store
    app.state.metrics = metrics
    return app


def openapi_schema() -> dict[str, Any]:
    """The OpenAPI 3.1 description of the service."""
    err = {"$ref": "#/components/schemas/Error"}
    decision = {"$ref": "#/components/schemas/Decision"}

    def op(summary: str, ok: Any, *errors: int, body: Any = None, params: Sequence[dict[str, Any]] = (),
           media: str = "application/json") -> dict[str, Any]:
        out: dict[str, Any] = {"summary": summary, "responses": {"200": {"description": "OK", "content": {media: {"schema": ok}}}}}
        for status in errors:
            out["responses"][str(status)] = {"description": _STATUS[status], "content": {"application/json": {"schema": err}}}
        if body is not None:
            out["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
        if params:
            out["parameters"] = list(params)
        return out

    id_param = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    fact_param = {"name": "fact", "in": "query", "required": True, "schema": {"type": "string"},
                  "example": 'decision("l1", "reject")'}
    fmt_param = {"name": "format", "in": "query", "schema": {"enum": ["json", "text"], "default": "json"}}
    explanation = {"type": "object", "properties": {"fact": {"type": "string"}, "holds": {"type": "boolean"},
                                                    "text": {"type": "string"}, "proof": {"type": "object"}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Converge decision service", "version": "1"},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error", "diagnostics"], "properties": {
                    "error": {"type": "object", "properties": {"status": {"type": "integer"}, "code": {"type": "string"},
                                                               "message": {"type": "string"}}},
                    "diagnostics": {"type": "array", "items": {"type": "object"}}}},
                "DecisionRequest": {"type": "object", "additionalProperties": False, "properties": {
                    "facts": {"type": "object", "additionalProperties": {"type": "array", "items": {
                        "oneOf": [{"type": "array"}, {"type": "object"}]}}},
                    "budget": {"type": "object", "additionalProperties": False, "properties": {  # every Budget setting
                        name: {"type": "number" if fractional else "integer"} for name, fractional in budget_fields()}},
                    "goals": {"type": "array", "items": {"type": "string"}},
                    "relations": {"type": "array", "items": {"type": "string"}}}},
                "Decision": {"type": "object", "required": ["decision_id", "tier", "reasons", "cycles", "digest",
                                                             "ruleset", "facts"], "properties": {
                    "decision_id": {"type": "string"}, "created_at": {"type": "string", "format": "date-time"},
                    "tier": {"enum": list(TIERS)}, "reasons": {"type": "array", "items": {"type": "object"}},
                    "cycles": {"type": "integer"}, "digest": {"type": "string"},
                    "ruleset": {"type": "object", "properties": {"digest": {"type": "string"}}},
                    "facts": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "array"}}}}},
                "RuleSet": {"type": "object", "properties": {"digest": {"type": "string"},
                                                             "loaded_at": {"type": "string", "format": "date-time"},
                                                             "files": {"type": "array", "items": {"type": "object"}},
                                                             "relations": {"type": "array", "items": {"type": "string"}}}},
            }},
        "security": [{"bearer": []}, {}],
        "paths": {
            "/v1/decisions": {
                "post": op("Make a decision over the given facts; 200 once it is stored. With an Idempotency-Key, "
                           "a retry of the same request answers the decision stored under that key (header "
                           "Idempotent-Replayed: true) instead of making another",
                           decision, 400, 401, 408, 413, 422, 503, body={"$ref": "#/components/schemas/DecisionRequest"},
                           params=[{"name": "Idempotency-Key", "in": "header", "required": False,
                                    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY,
                                               "pattern": "^[ -~]+$"}}]),
                "get": op("The newest stored decisions", {"type": "object"}, 400, 401,
                          params=[{"name": "limit", "in": "query", "schema": {"type": "integer"}},
                                  {"name": "tier", "in": "query", "schema": {"enum": list(TIERS)}},
                                  {"name": "before", "in": "query", "schema": {"type": "number"}}])},
            "/v1/decisions/{id}": {"get": op("A stored decision", decision, 401, 404, 500, 503, params=[id_param])},
            "/v1/decisions/{id}/record": {"get": op("The decision record (converge-record/1) of a stored decision",
                                                    {"type": "object"}, 401, 404, 500, 503, params=[id_param])},
            "/v1/decisions/{id}/why": {"get": op("Proof of a fact of a stored decision, from its record", explanation,
                                                 400, 401, 404, 500, 503, params=[id_param, fact_param, fmt_param])},
            "/v1/decisions/{id}/why-not": {"get": op("Why a fact does not hold in a stored decision", explanation, 400,
                                                     401, 404, 500, 503, params=[id_param, fact_param, fmt_param])},
            "/v1/decisions/{id}/report": {"get": op("The HTML report of a stored decision", {"type": "string"}, 401, 404,
                                                    500, 503, params=[id_param], media="text/html")},
            "/v1/ruleset": {
                "get": op("The current rule set", {"$ref": "#/components/schemas/RuleSet"}, 401),
                "put": op("Replace the rule set (checked first, swapped atomically)",
                          {"$ref": "#/components/schemas/RuleSet"}, 400, 401, 403, 408, 413, 503,
                          body={"type": "object", "required": ["files"], "properties": {"files": {
                              "type": "object", "additionalProperties": {"type": "string"}},
                              "roots": {"type": "array", "items": {"type": "string"}}}})},
            "/health": {"get": op("Liveness", {"type": "object"})},
            "/ready": {"get": op("Readiness: the store answers", {"type": "object"}, 503)},
            "/metrics": {"get": op("Prometheus metrics", {"type": "string"}, media="text/plain")},
            "/openapi.json": {"get": op("This schema", {"type": "object"})},
        },
    }


_STATUS = {400: "Invalid request, rules or facts (diagnostics)", 401: "Missing or wrong bearer token",
           403: "Rule set updates are disabled", 404: "Not found", 413: "Request body too large",
           422: "The Idempotency-Key was used for another request (E955)",
           500: "The stored decision is damaged (E948)",
           408: "The request body did not arrive within --body-timeout (E957)",
           503: "The decision log is unavailable (E941), or the service is busy (E956, with Retry-After)"}

__all__ = ["DEFAULT_BODY_TIMEOUT", "DEFAULT_MAX_BODY", "MAX_IDEMPOTENCY_KEY", "ServiceConfig", "create_app", "idempotency_key", "is_loopback",
           "openapi_schema", "read_tokens", "request_hash", "store_decision", "stored_form"]
