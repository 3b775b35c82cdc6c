"""Writes without a body model take no body, or `{}`: anything else is refused like any other bad body."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from api.app import operations
from core.clock import FakeClock
from core.ids import new_id
from core.settings import Settings
from tests.support.accounts import User, make_admin, register
from tests.support.errors import assert_error_with_headers
from tests.support.market import bid, post_project

WRITES = ("POST", "PUT", "PATCH", "DELETE")
BODILESS = [
    (op.method, op.path, op.roles) for op in operations() if op.body is None and op.idempotent and op.method in WRITES
]
JSON = {"Content-Type": "application/json"}


def submitted(client: TestClient) -> tuple[User, str, str]:
    """A client, their open project and a submitted proposal on it."""
    ann, fred = register(client, "client", "Ann"), register(client, "freelancer", "Fred")
    project_id = post_project(client, ann)
    return ann, project_id, bid(client, fred, project_id)


def status_of(client: TestClient, user: User, kind: str, item_id: str) -> str:
    response = client.get(f"/api/{kind}/{item_id}", headers=user.headers)
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


def test_every_bodiless_write_is_covered() -> None:
    paths = {(method, path) for method, path, _ in BODILESS}
    assert ("POST", "/api/proposals/{proposal_id}/reject") in paths
    assert ("DELETE", "/api/projects/{project_id}") in paths
    assert not any(path.startswith("/api/uploads") for _, path in paths), "uploads stream their own body"


@pytest.mark.parametrize(("method", "path", "roles"), BODILESS, ids=[f"{m} {p}" for m, p, _ in BODILESS])
def test_a_bodiless_write_refuses_a_body_that_is_not_empty_json(
    client: TestClient, settings: Settings, clock: FakeClock, method: str, path: str, roles: frozenset[str] | None
) -> None:
    caller = User(make_admin(client)) if roles and "client" not in roles else register(client, "client", "C")
    url = re.sub(r"\{[a-z_]+\}", new_id(), path)

    unknown = client.request(method, url, content=b'{"x": 1}', headers={**caller.headers, **JSON})
    assert assert_error_with_headers(unknown, 422, "validation_failed")["errors"][0]["loc"] == ["body", "x"]
    assert_error_with_headers(
        client.request(method, url, content=b"{not json", headers={**caller.headers, **JSON}), 400
    )
    assert_error_with_headers(client.request(method, url, content=b"[]", headers={**caller.headers, **JSON}), 422)
    plain = {**caller.headers, "Content-Type": "text/plain"}
    assert_error_with_headers(
        client.request(method, url, content=b"hello", headers=plain), 415, "unsupported_media_type"
    )
    assert_error_with_headers(client.request(method, url, content=b"{}", headers=plain), 415, "unsupported_media_type")
    assert_error_with_headers(
        client.request(method, url, content=b"{}", headers=caller.headers), 415, "unsupported_media_type"
    )


def test_reject_with_malformed_json_is_400_and_rejects_nothing(client: TestClient) -> None:
    ann, _, proposal_id = submitted(client)
    url = f"/api/proposals/{proposal_id}/reject"

    response = client.post(url, content=b"{not json", headers={**ann.headers, **JSON})

    assert_error_with_headers(response, 400, "bad_request")
    assert status_of(client, ann, "proposals", proposal_id) == "submitted"


def test_accept_with_an_unknown_field_is_422_and_accepts_nothing(client: TestClient) -> None:
    ann, project_id, proposal_id = submitted(client)

    response = client.post(f"/api/proposals/{proposal_id}/accept", json={"unknown": True}, headers=ann.headers)

    assert assert_error_with_headers(response, 422, "validation_failed")["errors"] == [
        {"loc": ["body", "unknown"], "msg": "Extra inputs are not permitted"}
    ]
    assert status_of(client, ann, "proposals", proposal_id) == "submitted"
    assert status_of(client, ann, "projects", project_id) == "open"


def test_reject_with_a_text_body_is_415_and_rejects_nothing(client: TestClient) -> None:
    ann, _, proposal_id = submitted(client)

    response = client.post(
        f"/api/proposals/{proposal_id}/reject", content=b"hello", headers={**ann.headers, "Content-Type": "text/plain"}
    )

    assert_error_with_headers(response, 415, "unsupported_media_type")
    assert status_of(client, ann, "proposals", proposal_id) == "submitted"


def test_delete_with_a_body_is_422_and_deletes_nothing(client: TestClient) -> None:
    ann = register(client, "client", "Ann")
    project_id = post_project(client, ann)

    response = client.request("DELETE", f"/api/projects/{project_id}", json={"x": 1}, headers=ann.headers)

    assert_error_with_headers(response, 422, "validation_failed")
    assert status_of(client, ann, "projects", project_id) == "open"
    assert client.delete(f"/api/projects/{project_id}", headers=ann.headers).status_code == 204


@pytest.mark.parametrize("content_type", [None, "application/json", "text/plain"])
def test_an_empty_body_is_accepted_whatever_its_content_type(client: TestClient, content_type: str | None) -> None:
    ann, _, proposal_id = submitted(client)
    headers = ann.headers if content_type is None else {**ann.headers, "Content-Type": content_type}

    response = client.post(f"/api/proposals/{proposal_id}/reject", content=b"", headers=headers)

    assert response.status_code == 200, response.text
    assert status_of(client, ann, "proposals", proposal_id) == "rejected"


def test_an_empty_json_object_is_accepted(client: TestClient) -> None:
    ann, project_id, proposal_id = submitted(client)

    response = client.post(f"/api/proposals/{proposal_id}/accept", json={}, headers=ann.headers)

    assert response.status_code == 200, response.text
    assert status_of(client, ann, "proposals", proposal_id) == "accepted"
    assert status_of(client, ann, "projects", project_id) == "in_progress"
