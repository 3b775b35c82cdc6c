"""The id in a response's X-Request-ID is the one its events record, whether the client sent it or not."""

from __future__ import annotations

import re

import orjson
import pytest
from starlette.testclient import TestClient

from core.db import connect
from core.settings import Settings

GENERATED = re.compile(r"[0-9a-f]{32}")


def register(client: TestClient, email: str, request_id: str | None) -> str:
    headers = {} if request_id is None else {"X-Request-ID": request_id}
    response = client.post(
        "/api/auth/register",
        json={"email": email, "password": "correct horse battery", "name": "Ada", "role": "client"},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return response.headers["x-request-id"]


def recorded_request_ids(settings: Settings, event_type: str) -> list[str]:
    conn = connect(settings.resolved_database_url(), synchronous="NORMAL")
    try:
        rows = conn.execute("SELECT meta FROM events WHERE type = ? ORDER BY position", (event_type,)).fetchall()
    finally:
        conn.close()
    return [orjson.loads(row[0])["request_id"] for row in rows]


def test_a_generated_request_id_is_the_one_the_event_records(client: TestClient, settings: Settings) -> None:
    answered = [register(client, f"ada{i}@example.com", None) for i in range(3)]

    assert all(GENERATED.fullmatch(request_id) for request_id in answered)
    assert len(set(answered)) == 3
    assert recorded_request_ids(settings, "UserRegistered") == answered


def test_a_safe_client_request_id_is_echoed_and_recorded(client: TestClient, settings: Settings) -> None:
    answered = register(client, "ada@example.com", "trace-42.a:b")

    assert answered == "trace-42.a:b"
    assert recorded_request_ids(settings, "UserRegistered") == ["trace-42.a:b"]


@pytest.mark.parametrize("bad", ["has space", "x" * 200, "semi;colon", "<script>alert(1)</script>"])
def test_an_unsafe_client_request_id_reaches_neither_the_response_nor_the_log(
    client: TestClient, settings: Settings, bad: str
) -> None:
    answered = register(client, "ada@example.com", bad)

    assert GENERATED.fullmatch(answered)
    assert recorded_request_ids(settings, "UserRegistered") == [answered]
