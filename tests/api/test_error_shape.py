"""Every error has one shape, and every response carries the edge headers."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import Message

from api.app import create_app
from core.clock import FakeClock
from tests.conftest import make_settings
from tests.support.errors import assert_edge_headers, assert_error_with_headers

REGISTER = "/api/auth/register"
JSON_HEADERS = {"Content-Type": "application/json"}
VALID_REGISTRATION = {"email": "ada@example.com", "password": "correct horse battery", "name": "Ada", "role": "client"}
INTERNAL_ERROR = {
    "detail": "The server failed to handle this request; it has been logged",
    "error_type": "internal_error",
}
SMALL_LIMIT = 2048
SECRET_IN_EXCEPTION = "s3cr3t-connection-string-in-the-exception"


def test_malformed_json_is_400(client: TestClient) -> None:
    response = client.post(REGISTER, content=b'{"email": "ada@example.com",', headers=JSON_HEADERS)

    assert_error_with_headers(response, 400, "bad_request")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
def test_wrong_content_type_is_415(client: TestClient, content_type: str) -> None:
    response = client.post(REGISTER, content=orjson.dumps(VALID_REGISTRATION), headers={"Content-Type": content_type})

    assert_error_with_headers(response, 415, "unsupported_media_type")


def test_missing_content_type_is_415(client: TestClient) -> None:
    response = client.post(REGISTER, content=orjson.dumps(VALID_REGISTRATION))

    assert_error_with_headers(response, 415, "unsupported_media_type")


@pytest.mark.parametrize("path", ["/api/nope", "/api/auth/nope", "/definitely/not/here", "/api/users/x/y/z"])
def test_unknown_path_is_404(client: TestClient, path: str) -> None:
    assert_error_with_headers(client.get(path), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/api/health/live"),
        ("POST", "/api/health/live"),
        ("PUT", "/api/auth/register"),
        ("GET", "/api/auth/login"),
    ],
)
def test_wrong_method_is_405(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path)

    assert_error_with_headers(response, 405, "method_not_allowed")
    assert response.headers.get("allow")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/api/auth/me", "GET, HEAD, PUT"),
        ("PUT", "/api/users", "GET, HEAD, POST"),
        ("PATCH", "/api/projects", "GET, HEAD, POST"),
        ("PATCH", "/api/projects/p1", "DELETE, GET, HEAD, PUT"),
        ("OPTIONS", "/api/projects/p1", "DELETE, GET, HEAD, PUT"),
        ("PUT", "/api/proposals", "GET, HEAD, POST"),
        ("DELETE", "/api/contracts", "GET, HEAD, POST"),
        ("PATCH", "/api/portfolio", "GET, HEAD, POST"),
        ("GET", "/api/auth/login", "POST"),
        ("POST", "/api/uploads/direct/content", "GET, HEAD, PUT"),  # two routes match this path
    ],
)
def test_a_405_allows_every_method_of_the_path(client: TestClient, method: str, path: str, allow: str) -> None:
    response = client.request(method, path)

    assert_error_with_headers(response, 405, "method_not_allowed")
    assert response.headers["allow"] == allow


@pytest.fixture
def small_client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(make_settings(tmp_path, MAX_BODY_BYTES=SMALL_LIMIT), FakeClock())
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def oversized_registration() -> bytes:
    body = orjson.dumps({**VALID_REGISTRATION, "name": "x" * (SMALL_LIMIT * 2)})
    assert len(body) > SMALL_LIMIT
    return body


def test_body_over_the_limit_with_content_length_is_413(small_client: TestClient) -> None:
    body = oversized_registration()

    response = small_client.post(REGISTER, content=body, headers=JSON_HEADERS)

    assert response.request.headers["content-length"] == str(len(body))
    assert_error_with_headers(response, 413, "payload_too_large")


def test_chunked_body_over_the_limit_is_413(small_client: TestClient) -> None:
    body = oversized_registration()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 500):
            yield body[start : start + 500]

    response = small_client.post(REGISTER, content=chunks(), headers=JSON_HEADERS)

    assert "content-length" not in response.request.headers
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert_error_with_headers(response, 413, "payload_too_large")


def test_chunked_body_over_the_limit_in_many_small_messages_is_413(small_client: TestClient) -> None:
    """Drive the ASGI app directly: each message is under the limit, their sum is not."""
    body = oversized_registration()
    messages = [
        {"type": "http.request", "body": body[i : i + 500], "more_body": i + 500 < len(body)}
        for i in range(0, len(body), 500)
    ]
    sent: list[Message] = []

    async def drive() -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": REGISTER,
            "raw_path": REGISTER.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"testserver"),
                (b"content-type", b"application/json"),
                (b"transfer-encoding", b"chunked"),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
            "state": {},
        }
        pending = list(messages)

        async def receive() -> Message:
            return pending.pop(0) if pending else {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append(message)

        await small_client.app(scope, receive, send)

    assert small_client.portal is not None
    small_client.portal.call(drive)

    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 413
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert orjson.loads(payload)["error_type"] == "payload_too_large"


def test_body_under_the_limit_is_not_refused_for_size(small_client: TestClient) -> None:
    response = small_client.post(REGISTER, json=VALID_REGISTRATION)

    assert response.status_code == 201, response.text


def test_unknown_field_is_422(client: TestClient) -> None:
    body = assert_error_with_headers(
        client.post(REGISTER, json={**VALID_REGISTRATION, "is_admin": True}), 422, "validation_failed"
    )

    assert ["body", "is_admin"] in [item["loc"] for item in body["errors"]]


def test_wrong_types_are_422_with_every_field_named(client: TestClient) -> None:
    response = client.post(REGISTER, json={"email": 5, "password": ["x"], "name": {"first": "Ada"}, "role": 1})

    body = assert_error_with_headers(response, 422, "validation_failed")
    named = {tuple(item["loc"][:2]) for item in body["errors"]}
    assert {("body", "email"), ("body", "password"), ("body", "name"), ("body", "role")} <= named


@pytest.mark.parametrize("payload", [b"[]", b"123", b'"text"', b"null"])
def test_a_body_that_is_not_an_object_is_422(client: TestClient, payload: bytes) -> None:
    assert_error_with_headers(client.post(REGISTER, content=payload, headers=JSON_HEADERS), 422, "validation_failed")


def test_bad_input_changes_nothing(client: TestClient) -> None:
    before = client.get("/api/health/live").headers["x-consistency-token"]
    client.post(REGISTER, json={**VALID_REGISTRATION, "unknown": 1})
    client.post(REGISTER, content=b"{", headers=JSON_HEADERS)

    assert client.get("/api/health/live").headers["x-consistency-token"] == before


def boom_app(tmp_path: Path) -> Any:
    async def boom(request: Request) -> Response:
        raise RuntimeError(f"Traceback (most recent call last): {SECRET_IN_EXCEPTION}")

    app = create_app(make_settings(tmp_path), FakeClock())
    app.router.routes.append(Route("/boom", boom, methods=["GET"]))
    return app


def test_unhandled_exception_is_a_bare_500(tmp_path: Path) -> None:
    with TestClient(boom_app(tmp_path), raise_server_exceptions=False) as test_client:
        response = test_client.get("/boom")

    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == INTERNAL_ERROR
    assert SECRET_IN_EXCEPTION not in response.text
    assert "Traceback" not in response.text
    assert "RuntimeError" not in response.text


def test_unhandled_exception_response_still_carries_the_edge_headers(tmp_path: Path) -> None:
    """The 500 is the response whose request id matters most: it is how a user's report meets the log line."""
    with TestClient(boom_app(tmp_path), raise_server_exceptions=False) as test_client:
        response = test_client.get("/boom", headers={"X-Request-ID": "incident-42"})

    assert response.status_code == 500
    assert response.headers.get("x-request-id") == "incident-42"
    assert_edge_headers(response)


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Bearer garbage", "Bearer a.b.c", "Basic dXNlcjpwYXNz", "bearer " + "x" * 5000],
)
def test_missing_or_garbage_bearer_token_is_401(client: TestClient, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}

    body = assert_error_with_headers(client.get("/api/auth/me", headers=headers), 401)

    assert body["error_type"] in {"unauthenticated", "token_invalid", "token_expired"}


def test_request_id_is_echoed_when_sent(client: TestClient) -> None:
    response = client.get("/api/health/live", headers={"X-Request-ID": "abc-123.def:9"})

    assert response.headers["x-request-id"] == "abc-123.def:9"
    assert_edge_headers(response)


@pytest.mark.parametrize("bad", ["has space", "x" * 200, "semi;colon", "new\tline"])
def test_an_unsafe_request_id_is_replaced(client: TestClient, bad: str) -> None:
    response = client.get("/api/health/live", headers={"X-Request-ID": bad})

    assert response.headers["x-request-id"] != bad
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


def test_request_id_is_generated_when_absent_and_unique(client: TestClient) -> None:
    first = client.get("/api/health/live").headers["x-request-id"]
    second = client.get("/api/health/live").headers["x-request-id"]

    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first != second


@pytest.mark.parametrize("path", ["/api/health/live", "/api", "/api/health/ready"])
def test_success_responses_carry_the_edge_headers(client: TestClient, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 200
    assert_edge_headers(response)
    assert response.headers["content-security-policy"].startswith("default-src 'none'")


def test_a_write_returns_its_consistency_token(client: TestClient) -> None:
    before = int(client.get("/api/health/live").headers["x-consistency-token"])

    response = client.post(REGISTER, json=VALID_REGISTRATION)

    assert response.status_code == 201, response.text
    assert int(response.headers["x-consistency-token"]) > before
    assert response.headers.get_list("x-consistency-token") == [response.headers["x-consistency-token"]]
    assert_edge_headers(response)


def test_a_consistency_token_ahead_of_the_primarys_log_is_400_at_once(tmp_path: Path) -> None:
    """The primary's log is complete: waiting READ_YOUR_WRITES_TIMEOUT_MS for a missing position only delays the 400."""
    settings = make_settings(tmp_path, READ_YOUR_WRITES_TIMEOUT_MS=60_000)
    with TestClient(create_app(settings, FakeClock()), raise_server_exceptions=False) as client:
        registered = client.post(REGISTER, json=VALID_REGISTRATION)
        head = int(registered.headers["x-consistency-token"])
        signed_in = {"Authorization": f"Bearer {registered.json()['access_token']}"}  # a stranger gets 401 first
        began = time.monotonic()
        response = client.get("/api/projects", headers={**signed_in, "X-Consistency-Token": str(head + 1)})
        elapsed = time.monotonic() - began

    assert_error_with_headers(response, 400, "bad_request")
    assert elapsed < 10, elapsed


def test_oversized_headers_are_431(client: TestClient) -> None:
    response = client.get("/api/health/live", headers={"X-Padding": "a" * 20_000})
    assert_error_with_headers(response, 431, "headers_too_large")
