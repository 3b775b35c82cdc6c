"""The real server's own limits: a connection that sends nothing, a request head that trickles in, or a body
that stops, is cut off after HEADER_TIMEOUT_S; a body slower than MIN_BODY_RATE gets 408; malformed HTTP gets
400 and past MAX_CONNECTIONS a request gets 503, both in the API's error shape; a client that goes away
mid-body is logged as an abort, not as a server error."""

from __future__ import annotations

import contextlib
import json
import resource
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.server import LiveServer

FLOOD = 2100  # silent sockets: more than MAX_CONNECTIONS (2048)


@pytest.fixture(scope="module", params=["1", "2"], ids=["one-worker", "two-workers"])
def live(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    """Every protection holds in each worker: with two, the kernel hands each connection to either."""
    with LiveServer.start({"HEADER_TIMEOUT_S": "1", "LOG_LEVEL": "info", "WORKERS": request.param}) as server:
        yield server


def test_a_connection_that_sends_nothing_is_closed(live: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", live.port), timeout=8) as sock:
        started = time.monotonic()
        assert receive_all(sock) == b""  # closed without an answer
        waited = time.monotonic() - started
    assert 0.5 <= waited < 4, waited


def test_silent_sockets_do_not_keep_the_server_from_answering() -> None:
    """2,100 connections that never send a byte (one anonymous client, opened at once): once HEADER_TIMEOUT_S has
    passed they are closed, and /api/health/live answers 200 again."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < FLOOD + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    timeout = 2.0
    with LiveServer.start({"HEADER_TIMEOUT_S": str(timeout)}) as server, contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.create_connection(("127.0.0.1", server.port))) for _ in range(FLOOD)]
        opened = time.monotonic()
        status = 0
        with httpx.Client(timeout=1.0) as client:
            while status != 200 and time.monotonic() < opened + timeout + 2:
                with contextlib.suppress(httpx.HTTPError):
                    status = client.get(server.url + "/api/health/live", headers={"Connection": "close"}).status_code
        answered = time.monotonic() - opened
        assert status == 200, f"still {status} after {answered:.1f}s"
        assert answered < timeout + 2
        sockets[0].settimeout(2)
        assert receive_all(sockets[0]) == b""  # the first of them was closed by the server


def test_a_slow_request_head_is_cut_off(live: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", live.port), timeout=8) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /api/health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # and then nothing more
        try:
            answer = sock.recv(100)
        except ConnectionResetError:
            answer = b""
        waited = time.monotonic() - started
    assert answer == b"", answer  # closed without an answer
    assert 0.5 <= waited < 5, waited


def test_a_body_that_stops_arriving_is_cut_off(live: LiveServer) -> None:
    """Without it a client that declared a body and sent part of it held its connection (and the request) for
    ever: 2,048 of them, and every other client got 503."""
    head = b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    with socket.create_connection(("127.0.0.1", live.port), timeout=8) as sock:
        started = time.monotonic()
        sock.sendall(head + b'{"email": ')  # and then nothing more
        try:
            answer = sock.recv(100)
        except ConnectionResetError:
            answer = b""
        waited = time.monotonic() - started
    assert answer == b"", answer
    assert 0.5 <= waited < 5, waited


def test_a_body_that_trickles_in_is_served(live: LiveServer) -> None:
    """The body timer measures silence and the average rate, not the whole body: each chunk within
    HEADER_TIMEOUT_S keeps it open, as long as the body averages MIN_BODY_RATE (500 bytes/s) after the grace."""
    padding = b" " * 1600  # JSON whitespace: 400 bytes per 0.6 s is faster than 500 bytes/s
    body = b'{"email": "nobody@example.com",' + padding + b'"password": "wrong-password"}'
    head = b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
    with socket.create_connection(("127.0.0.1", live.port), timeout=8) as sock:
        sock.sendall(head + b"Content-Length: %d\r\n\r\n" % len(body))
        for i in range(0, len(body), 400):
            sock.settimeout(0.6)  # 2.4 s of pauses in all, longer than HEADER_TIMEOUT_S, none as long
            with pytest.raises(TimeoutError):
                sock.recv(1)  # nothing yet: not answered, not closed
            sock.sendall(body[i : i + 400])
        sock.settimeout(8)
        assert read_response(sock).startswith(b"HTTP/1.1 401")


def test_a_body_slower_than_the_minimum_rate_gets_408(live: LiveServer) -> None:
    """A byte every 0.3 s is never silent for HEADER_TIMEOUT_S, but far below 500 bytes/s: it is not held for ever."""
    head = b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    with socket.create_connection(("127.0.0.1", live.port), timeout=8) as sock:
        started = time.monotonic()
        sock.sendall(head + b"{")
        answer = b""
        sock.settimeout(0.3)
        while time.monotonic() < started + 8:
            try:
                answer = receive_all(sock)
                break
            except TimeoutError:
                with contextlib.suppress(OSError):  # the server may have closed its end meanwhile
                    sock.sendall(b" ")
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert json.loads(answer.partition(b"\r\n\r\n")[2]) == {
        "detail": "The request body arrived too slowly",
        "error_type": "request_timeout",
    }
    assert waited < 4, waited


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /api/health/live HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
        b"GET /api/health/live HTTP/9.9\r\nHost: x\r\n\r\n",
    ],
    ids=["request-line", "header-name", "version"],
)
def test_malformed_http_gets_400_in_the_error_shape(live: LiveServer, request_bytes: bytes) -> None:
    with socket.create_connection(("127.0.0.1", live.port), timeout=8) as sock:
        sock.sendall(request_bytes)
        answer = receive_all(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"content-type: application/json" in head.lower()
    assert json.loads(body) == {"detail": "The request is not well-formed HTTP/1.1", "error_type": "bad_request"}


def test_a_client_that_leaves_mid_body_is_logged_as_an_abort_not_a_server_error(live: LiveServer) -> None:
    head = b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    with socket.create_connection(("127.0.0.1", live.port), timeout=8) as sock:
        sock.sendall(head + b'{"email": ')
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(1)  # the app is reading the body
    deadline = time.monotonic() + 5
    while b'"client_aborted"' not in live.stdout_path.read_bytes() and time.monotonic() < deadline:
        threading.Event().wait(0.05)
    log = live.stdout_path.read_text()
    aborts = [json.loads(line) for line in log.splitlines() if '"client_aborted"' in line]
    assert aborts, log[-2000:]
    assert aborts[-1]["route"] == "/api/auth/login"
    assert "unhandled_error" not in log
    metrics = httpx.get(live.url + "/api/health/metrics").text
    login = [
        line
        for line in metrics.splitlines()
        if line.startswith("http_request_duration_seconds_count") and "/api/auth/login" in line
    ]
    assert login, metrics[-2000:]
    assert not [line for line in login if 'status="5' in line], login


def test_a_prompt_request_on_the_same_server_is_served(live: LiveServer) -> None:
    response = httpx.get(live.url + "/api/health/live")
    assert response.status_code == 200
    assert "server" not in response.headers  # the server software is not advertised
    assert response.headers["date"]


def test_a_head_split_across_packets_is_served(live: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", live.port), timeout=8) as sock:
        for part in (b"GET /api/health/live HTTP/1.1\r\n", b"Host: x\r\n", b"Connection: close\r\n\r\n"):
            sock.sendall(part)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:100]


def receive_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a reset counts as a close)."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(4096):
            data += chunk
    return data


def read_response(sock: socket.socket) -> bytes:
    """One whole response (head and Content-Length body): it may arrive in several segments."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096) or pytest.fail(f"closed mid-head: {data!r}")
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += sock.recv(4096) or pytest.fail("closed mid-body")
    return head


def test_an_idle_keep_alive_connection_outlives_the_head_timeout(live: LiveServer) -> None:
    """The head timer covers a head in progress only: between requests, uvicorn's 5 s keep-alive applies."""
    request = b"GET /api/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", live.port), timeout=8) as sock:
        sock.sendall(request)
        assert read_response(sock).startswith(b"HTTP/1.1 200")
        sock.settimeout(2.0)  # twice HEADER_TIMEOUT_S: a wrongly armed head timer would have closed it by now
        with pytest.raises(TimeoutError):
            sock.recv(1)
        sock.sendall(request)
        assert read_response(sock).startswith(b"HTTP/1.1 200")


def test_connections_that_have_sent_nothing_do_not_count_towards_the_limit() -> None:
    """Silent sockets cost a file each until HEADER_TIMEOUT_S closes them; they do not make real requests 503."""
    with (
        LiveServer.start({"MAX_CONNECTIONS": "10", "HEADER_TIMEOUT_S": "30"}) as server,
        contextlib.ExitStack() as held,
    ):
        for _ in range(30):
            held.enter_context(socket.create_connection(("127.0.0.1", server.port)))
        with httpx.Client(base_url=server.url) as client:
            assert client.get("/api/health/live").status_code == 200


def test_past_the_connection_limit_a_request_gets_503_in_the_error_shape() -> None:
    with LiveServer.start({"MAX_CONNECTIONS": "2"}) as server, httpx.Client(base_url=server.url) as first:
        assert first.get("/api/health/live").status_code == 200  # its connection stays open (keep-alive)
        with httpx.Client(base_url=server.url) as second:
            refused = second.get("/api/health/live")
        assert refused.status_code == 503
        assert refused.json() == {
            "detail": "The server has too many open connections; retry shortly",
            "error_type": "service_unavailable",
        }
        assert refused.headers["retry-after"] == "1"
