"""The real server's own limits: a request head that trickles in, or a body that stops, is cut off after
HEADER_TIMEOUT_S; past MAX_CONNECTIONS a request is refused in the API's error shape."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.server import LiveServer


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    with LiveServer.start({"HEADER_TIMEOUT_S": "1"}) as server:
        yield server


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
    """The body timer measures silence, not the whole body: each chunk within HEADER_TIMEOUT_S keeps it open."""
    body = b'{"email": "nobody@example.com", "password": "wrong-password"}'
    head = b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
    with socket.create_connection(("127.0.0.1", live.port), timeout=8) as sock:
        sock.sendall(head + b"Content-Length: %d\r\n\r\n" % len(body))
        for i in range(0, len(body), 20):
            sock.settimeout(0.6)  # 1.8 s of pauses in all, longer than HEADER_TIMEOUT_S, none as long
            with pytest.raises(TimeoutError):
                sock.recv(1)  # nothing yet: not answered, not closed
            sock.sendall(body[i : i + 20])
        sock.settimeout(8)
        assert read_response(sock).startswith(b"HTTP/1.1 401")


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
