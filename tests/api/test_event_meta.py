"""What events record of a request: the id its response carries in X-Request-ID (whether the client sent
one or not), and an Idempotency-Key only once validated and claimed. Raw client headers never reach the log."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from core.settings import Settings
from node.runtime import open_primary

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


def recorded(settings: Settings, event_type: str, field: str = "request_id") -> list[Any]:
    conn = open_primary(settings)
    try:
        rows = conn.execute("SELECT meta FROM events WHERE type = ? ORDER BY position", (event_type,)).fetchall()
    finally:
        conn.close()
    return [orjson.loads(row[0])[field] for row in rows]


def test_a_generated_request_id_is_the_one_the_event_records(client: TestClient, settings: Settings) -> None:
    answered = [register(client, f"ada{i}@example.com", None) for i in range(3)]

    assert all(GENERATED.fullmatch(request_id) for request_id in answered)
    assert len(set(answered)) == 3
    assert recorded(settings, "UserRegistered") == answered


def test_a_safe_client_request_id_is_echoed_and_recorded(client: TestClient, settings: Settings) -> None:
    answered = register(client, "ada@example.com", "trace-42.a:b")

    assert answered == "trace-42.a:b"
    assert recorded(settings, "UserRegistered") == ["trace-42.a:b"]


@pytest.mark.parametrize("bad", ["has space", "x" * 200, "semi;colon", "<script>alert(1)</script>"])
def test_an_unsafe_client_request_id_reaches_neither_the_response_nor_the_log(
    client: TestClient, settings: Settings, bad: str
) -> None:
    answered = register(client, "ada@example.com", bad)

    assert GENERATED.fullmatch(answered)
    assert recorded(settings, "UserRegistered") == [answered]


PROJECT = {
    "title": "Build a landing page",
    "description": "A single page with a signup form.",
    "category": "web",
    "budget_type": "fixed",
    "budget_min": "300",
    "budget_max": "900",
    "experience_level": "intermediate",
    "estimated_duration": "1-2 weeks",
    "skills": ["html"],
}


def test_only_a_claimed_idempotency_key_is_recorded_and_as_it_was_validated(
    client: TestClient, settings: Settings
) -> None:
    # Registration is not idempotent (there is no user to keep the key for): a key sent with it is ignored.
    registered = client.post(
        "/api/auth/register",
        json={"email": "ada@example.com", "password": "correct horse battery", "name": "Ada", "role": "client"},
        headers={"Idempotency-Key": "k" * 5000},
    )
    assert registered.status_code == 201, registered.text
    auth = {"Authorization": f"Bearer {registered.json()['access_token']}"}

    first = client.post("/api/projects", json=PROJECT, headers={**auth, "Idempotency-Key": "  order-1  "})
    plain = client.post("/api/projects", json=PROJECT, headers=auth)
    too_long = client.post("/api/projects", json=PROJECT, headers={**auth, "Idempotency-Key": "k" * 256})

    assert (first.status_code, plain.status_code, too_long.status_code) == (201, 201, 422)
    assert recorded(settings, "UserRegistered", "idempotency_key") == [None]
    assert recorded(settings, "ProjectPosted", "idempotency_key") == ["order-1", None]
