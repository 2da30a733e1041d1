"""The decision service's HTTP/1.1 connections: uvicorn's h11 protocol with two changes.

- **A deadline for request heads.** uvicorn waits for ever for a request's head (the
  request line and headers): a client that connects and sends nothing, or a header
  line now and then, holds its connection and file descriptor for good, and enough of
  them stop the service from accepting anyone. Here a head must arrive whole within
  ``head_timeout`` seconds of the connection's start, or of the previous response on a
  kept-alive connection; otherwise the answer is ``408 E958`` and the connection is
  closed. (A body has its own deadline in the application: ``--body-timeout``, E957.)
- **Malformed requests are answered like every other error**: JSON with a stable code
  (``400 E959``) instead of uvicorn's plain-text ``Invalid HTTP request received.``.

Only the serve command uses this, through ``uvicorn.run(..., http=...)``: the ASGI
application (``service.create_app``) knows nothing of it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEAD_TIMEOUT_CODE = "E958"
MALFORMED_CODE = "E959"


def _error_json(status: int, code: str, message: str) -> bytes:
    from .service import error_body

    return json.dumps(error_body(status, code, message)).encode("utf-8")


def head_timed_protocol(head_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol whose connections close with 408 E958 when a request head is not
    received whole within ``head_timeout`` seconds; malformed requests get JSON (400 E959)."""

    class HeadTimedH11Protocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def _start_head_timer(self) -> None:
            self._cancel_head_timer()
            self._head_timer = self.loop.call_later(head_timeout, self._head_timed_out)

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._start_head_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._start_head_timer()  # the next request's head, on a kept-alive connection

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

        def _head_timed_out(self) -> None:
            self._head_timer = None
            # IDLE: no request head received whole yet (a request in progress is past IDLE)
            if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
                return
            body = _error_json(408, HEAD_TIMEOUT_CODE,
                               f"the request head (request line and headers) did not arrive whole within "
                               f"{head_timeout:g} s (--header-timeout); the connection is closed")
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                                 b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            self.transport.close()

        def send_400_response(self, msg: str) -> None:
            body = _error_json(400, MALFORMED_CODE, f"malformed HTTP request: {msg}")
            headers = [(b"content-type", b"application/json"), (b"connection", b"close"),
                       (b"content-length", str(len(body)).encode())]
            self.transport.write(self.conn.send(h11.Response(status_code=400, headers=headers, reason=b"Bad Request")))
            self.transport.write(self.conn.send(h11.Data(data=body)))
            self.transport.write(self.conn.send(h11.EndOfMessage()))
            self.transport.close()

    return HeadTimedH11Protocol
