"""Idempotency-Key: a retry of the same request (the same JSON, however serialised) gets the first response."""

from __future__ import annotations

import orjson
from starlette.testclient import TestClient
from structlog.testing import capture_logs

from api.app import create_app
from core.clock import FakeClock
from core.settings import Settings
from node.runtime import open_primary
from tests.support.accounts import User, login, register
from tests.support.market import PROJECT, bid, post_project


def post(client: TestClient, user: User, key: str, raw: bytes) -> tuple[int, bytes]:
    headers = {**user.headers, "Idempotency-Key": key, "Content-Type": "application/json"}
    response = client.post("/api/projects", content=raw, headers=headers)
    return response.status_code, response.content


def board(client: TestClient, user: User) -> list[str]:
    return [p["id"] for p in client.get("/api/projects", headers=user.headers).json()["items"]]


def test_the_same_object_serialised_differently_replays_the_first_response(client: TestClient) -> None:
    ann = register(client, "client", "Ann")
    compact = orjson.dumps(PROJECT)
    reordered = orjson.dumps(dict(reversed(PROJECT.items())), option=orjson.OPT_INDENT_2)
    as_numbers = orjson.dumps({**PROJECT, "budget_min": 500, "budget_max": 1500})

    first = post(client, ann, "order-1", compact)
    again = post(client, ann, "order-1", reordered)

    assert first[0] == again[0] == 201
    assert again == first
    assert post(client, ann, "order-1", b" " + compact + b"\n") == first
    assert post(client, ann, "order-1", as_numbers) == first  # amounts as numbers: the same validated request
    assert len(board(client, ann)) == 1


def test_a_different_body_with_the_same_key_is_still_refused(client: TestClient) -> None:
    ann = register(client, "client", "Ann")
    assert post(client, ann, "order-1", orjson.dumps(PROJECT))[0] == 201

    response = client.post(
        "/api/projects",
        json={**PROJECT, "title": "Another landing page"},
        headers={**ann.headers, "Idempotency-Key": "order-1"},
    )

    assert response.status_code == 422
    assert response.json()["error_type"] == "idempotency_key_reused"
    assert len(board(client, ann)) == 1


def test_a_bodiless_write_sent_empty_or_as_an_empty_object_is_one_request(client: TestClient) -> None:
    ann, fred = register(client, "client", "Ann"), register(client, "freelancer", "Fred")
    proposal_id = bid(client, fred, post_project(client, ann))
    url = f"/api/proposals/{proposal_id}/reject"
    headers = {**ann.headers, "Idempotency-Key": "reject-1"}

    first = client.post(url, headers=headers)
    again = client.post(url, json={}, headers=headers)

    assert first.status_code == again.status_code == 200, again.text
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"


def test_a_replay_carries_the_first_response_etag(client: TestClient) -> None:
    ann = register(client, "client", "Ann")
    headers = {**ann.headers, "Idempotency-Key": "order-1"}

    first = client.post("/api/projects", json=PROJECT, headers=headers)
    again = client.post("/api/projects", json=PROJECT, headers=headers)

    assert first.status_code == again.status_code == 201
    assert first.headers["etag"] == '"1"'
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["etag"] == first.headers["etag"]
    assert again.json() == first.json()


def test_a_key_replays_for_24_hours_and_then_names_a_new_request(client: TestClient, clock: FakeClock) -> None:
    ann = register(client, "client", "Ann")
    first = post(client, ann, "order-1", orjson.dumps(PROJECT))
    other = orjson.dumps({**PROJECT, "title": "Another landing page"})

    clock.advance(hours=23, minutes=59)
    ann = User(login(client, ann.email))  # the first access token has expired
    assert post(client, ann, "order-1", orjson.dumps(PROJECT)) == first
    assert post(client, ann, "order-1", other)[0] == 422

    clock.advance(minutes=1, seconds=1)
    later = post(client, ann, "order-1", other)

    assert later[0] == 201
    assert orjson.loads(later[1])["title"] == "Another landing page"
    assert len(board(client, ann)) == 2


def test_a_command_whose_response_could_not_be_stored_still_answers_what_it_did(
    client: TestClient, settings: Settings, clock: FakeClock
) -> None:
    """Storing the response is a second write after the command's commit. When it fails, the command still
    happened: the client gets its 201, not an error saying nothing was saved. A retry is refused, never
    applied twice: as in progress at first, and once the answer is overdue, as applied with its answer lost."""
    ann = register(client, "client", "Ann")
    conn = open_primary(settings)
    try:  # a real failure of that one write: SQLite refuses it
        conn.execute(
            "CREATE TRIGGER refuse_completion BEFORE UPDATE OF status ON idempotency_keys "
            "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
        )
    finally:
        conn.close()

    with capture_logs() as logs:
        first = post(client, ann, "order-1", orjson.dumps(PROJECT))
    again = post(client, ann, "order-1", orjson.dumps(PROJECT))

    assert first[0] == 201, first
    assert orjson.loads(first[1])["title"] == PROJECT["title"]
    assert [entry["key"] for entry in logs if entry["event"] == "idempotency_completion_failed"] == ["order-1"]
    assert again[0] == 409
    assert orjson.loads(again[1])["error_type"] == "idempotency_in_progress"
    clock.advance(minutes=4, seconds=59)
    assert (
        orjson.loads(post(client, ann, "order-1", orjson.dumps(PROJECT))[1])["error_type"] == "idempotency_in_progress"
    )
    clock.advance(seconds=2)
    overdue = post(client, ann, "order-1", orjson.dumps(PROJECT))
    assert overdue[0] == 409
    assert orjson.loads(overdue[1]) == {
        "detail": "The request with this Idempotency-Key was applied, but its answer was not kept: "
        "read the resource back instead of retrying",
        "error_type": "conflict",
    }
    assert len(board(client, ann)) == 1


def test_a_retry_after_a_restart_learns_at_once_what_the_first_request_did(
    settings: Settings, clock: FakeClock
) -> None:
    """The command's outcome is committed with its claim. When the process stops between that commit and storing
    the answer (here: storing it fails, then the server restarts), a retry is not told "still being processed"
    for minutes: it learns at once that the request was applied, where the resource is, and the position."""
    with TestClient(create_app(settings, clock)) as first_run:
        ann = register(first_run, "client", "Ann")
        conn = open_primary(settings)
        try:
            conn.execute(
                "CREATE TRIGGER refuse_completion BEFORE UPDATE OF status ON idempotency_keys "
                "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
            )
        finally:
            conn.close()
        created = post(first_run, ann, "order-1", orjson.dumps(PROJECT))
        assert created[0] == 201
        project_id = orjson.loads(created[1])["id"]

    with TestClient(create_app(settings, clock)) as second_run:
        headers = {**ann.headers, "Idempotency-Key": "order-1"}
        retry = second_run.post("/api/projects", json=PROJECT, headers=headers)

        assert retry.status_code == 409, retry.text
        assert retry.json()["error_type"] == "idempotency_answer_lost"
        assert retry.headers["location"] == f"/api/projects/{project_id}"
        assert project_id in retry.json()["detail"]
        token = retry.headers["x-consistency-token"]
        read = second_run.get(retry.headers["location"], headers={**ann.headers, "X-Consistency-Token": token})
        assert read.status_code == 200 and read.json()["title"] == PROJECT["title"]
        assert len(board(second_run, ann)) == 1
