"""`converge serve` connections: a request head has a deadline, malformed HTTP gets a coded JSON error.

A real serve process on a loopback port, driven over raw sockets (a client that connects and
says nothing, one that sends half a head, one that drips bytes after a first response) and httpx.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from cli_process import converge
from test_serve import LOANS, Server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    store = tmp_path_factory.mktemp("conn") / "d.db"
    srv = Server([LOANS], f"sqlite:///{store}", "--header-timeout", "1").start()
    yield srv
    assert "Traceback" not in srv.stop()


def _connect(server: Server) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", server.port))
    s.settimeout(20)
    return s


def _read_all(s: socket.socket) -> bytes:
    """Everything until the server closes the connection."""
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk


def _answer(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/json" in head.lower()
    return status, json.loads(body)


def test_a_silent_connection_is_answered_408_and_closed(server: Server) -> None:
    s = _connect(server)
    start = time.monotonic()
    status, body = _answer(_read_all(s))
    waited = time.monotonic() - start
    s.close()
    assert status == 408 and body["error"]["code"] == "E958" and "--header-timeout" in body["error"]["message"]
    assert 0.8 <= waited < 10


def test_half_a_head_is_answered_408_and_closed(server: Server) -> None:
    s = _connect(server)
    s.sendall(b"POST /v1/decisions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
    status, body = _answer(_read_all(s))
    s.close()
    assert status == 408 and body["error"]["code"] == "E958"


def test_a_head_that_arrives_in_pieces_within_the_deadline_is_served(server: Server) -> None:
    s = _connect(server)
    s.sendall(b"GET /health HTTP/1.1\r\n")
    time.sleep(0.3)
    s.sendall(b"Host: x\r\nConnection: close\r\n\r\n")
    raw = _read_all(s)
    s.close()
    assert raw.startswith(b"HTTP/1.1 200") and json.loads(raw.partition(b"\r\n\r\n")[2]) == {"status": "ok"}


def test_a_kept_alive_connection_has_the_same_deadline_for_its_next_head(server: Server) -> None:
    s = _connect(server)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    first = b""
    while b'"ok"}' not in first:
        first += s.recv(65536)
    assert first.startswith(b"HTTP/1.1 200")
    start = time.monotonic()
    dripped = 0
    try:
        while time.monotonic() - start < 10:  # one byte of a head every 0.3 s never completes it
            s.sendall(b"G")
            dripped += 1
            time.sleep(0.3)
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        rest = _read_all(s)
    except ConnectionResetError:
        rest = b""
    s.close()
    assert time.monotonic() - start < 10 and dripped >= 2
    assert rest == b"" or _answer(rest)[1]["error"]["code"] == "E958"


def test_malformed_http_is_a_json_400_with_a_code(server: Server) -> None:
    s = _connect(server)
    s.sendall(b"THIS IS NOT HTTP\r\n\r\n")
    status, body = _answer(_read_all(s))
    s.close()
    assert status == 400 and body["error"]["code"] == "E959" and "malformed HTTP request" in body["error"]["message"]


def test_many_silent_connections_neither_block_others_nor_stay_open(server: Server) -> None:
    assert server.proc is not None
    fds = Path(f"/proc/{server.proc.pid}/fd")
    before = len(os.listdir(fds))
    idle = [_connect(server) for _ in range(200)]
    r = httpx.post(server.url + "/v1/decisions", json={"facts": {"applicant": [["a1", 1000]]}}, timeout=30)
    assert r.status_code == 200
    for s in idle:
        assert _answer(_read_all(s))[0] == 408
        s.close()
    deadline = time.monotonic() + 10
    while len(os.listdir(fds)) > before + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(os.listdir(fds)) <= before + 2  # every held connection was closed by the server


@pytest.mark.parametrize("value", ["0", "-1", "inf", "nan"])
def test_the_header_timeout_must_be_a_finite_positive_number(tmp_path: Path, value: str) -> None:
    done = converge("serve", LOANS, "--header-timeout", value, "--store", f"sqlite:///{tmp_path / 'd.db'}",
                    cwd=tmp_path)
    assert done.returncode == 2 and "--header-timeout" in done.stderr and "Traceback" not in done.stderr
