"""An edge whose primary fails: the client learns whether its write may have reached the primary."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.network import closed_port, edge

WRITE = {"title": "Through an edge"}
AUTH = {"Authorization": "Bearer not-checked-on-the-edge"}


def assert_edge_error(response: httpx.Response, status: int, error_type: str) -> str:
    """docs/api.md's error shape, answered by the edge itself (its region, not the primary's); returns the detail."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail", "error_type"} and body["error_type"] == error_type
    assert response.headers["x-region"] == "ams"
    assert response.headers["retry-after"] == "1"
    detail: str = body["detail"]
    return detail


@contextlib.contextmanager
def hanging_up_primary() -> Iterator[int]:
    """A peer on 127.0.0.1 that reads each request head, then closes the connection without an answer."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # the listener was closed
            with conn:
                received = b""
                while b"\r\n\r\n" not in received:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    received += chunk

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone does not
        listener.close()
        thread.join(timeout=5)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_a_write_the_primary_never_received_is_503(tmp_path: Path, method: str) -> None:
    with edge(tmp_path, closed_port()) as client:
        response = client.request(method, "/api/projects/p1", json=WRITE, headers=AUTH)

    assert "nothing was done" in assert_edge_error(response, 503, "service_unavailable")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_a_write_the_primary_received_but_did_not_answer_is_504(tmp_path: Path, method: str) -> None:
    """The primary may have applied it: a client told "cannot be reached" would retry without fear and write twice."""
    with hanging_up_primary() as port, edge(tmp_path, port) as client:
        response = client.request(method, "/api/projects/p1", json=WRITE, headers=AUTH)

    detail = assert_edge_error(response, 504, "gateway_timeout")
    assert "may have been applied" in detail and "Idempotency-Key" in detail


@pytest.mark.parametrize("path", ["/", "/api"])
def test_the_info_endpoints_answer_for_the_node_asked_whatever_the_token(tmp_path: Path, path: str) -> None:
    """A token this edge has not reached must not send `/api` to the primary, which would answer as the primary."""
    with edge(tmp_path, closed_port()) as client:
        for token in ("5", "not-a-position"):
            response = client.get(path, headers={"X-Consistency-Token": token})
            assert response.status_code == 200, (token, response.text)
            assert response.headers["x-region"] == "ams"
    if path == "/api":
        assert response.json()["role"] == "edge"
