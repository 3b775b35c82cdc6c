"""A project that ends without a hire, over HTTP: its submitted proposals are rejected with it; only its owner
may change it, and everyone else (who can read it) is refused with 403."""

from __future__ import annotations

from itertools import count
from typing import Any

import pytest
from starlette.testclient import TestClient

from core.db import connect
from core.settings import Settings

PASSWORD = "correct-horse-battery"
LETTER = "I have shipped this kind of work many times and would start with a short discovery call."
Json = dict[str, Any]
serial = count()


class User:
    def __init__(self, body: Json) -> None:
        self.id: str = body["user"]["id"]
        self.headers = {"Authorization": f"Bearer {body['access_token']}"}


def register(client: TestClient, role: str) -> User:
    email = f"life{next(serial)}@example.com"
    response = client.post(
        "/api/auth/register", json={"email": email, "password": PASSWORD, "name": role.title(), "role": role}
    )
    assert response.status_code == 201, response.text
    return User(response.json())


def post_project(client: TestClient, owner: User) -> str:
    body = {
        "title": "Build a landing page",
        "description": "A fast landing page for our product launch, with a signup form.",
        "category": "web",
        "budget_type": "fixed",
        "budget_min": "500",
        "budget_max": "900",
        "experience_level": "expert",
        "estimated_duration": "2 weeks",
        "skills": ["html"],
    }
    response = client.post("/api/projects", json=body, headers=owner.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def propose(client: TestClient, freelancer: User, project_id: str) -> str:
    body = {
        "project_id": project_id,
        "cover_letter": LETTER,
        "estimated_hours": 10,
        "hourly_rate": "40",
        "availability": "immediate",
    }
    response = client.post("/api/proposals", json=body, headers=freelancer.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def status_of(client: TestClient, proposal_id: str, viewer: User) -> str:
    response = client.get(f"/api/proposals/{proposal_id}", headers=viewer.headers)
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


def assert_error(response: Any, status: int, error_type: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error_type"] == error_type


def rejection_reasons(settings: Settings, project_id: str) -> list[str]:
    conn = connect(settings.resolved_database_url(), synchronous="NORMAL")
    try:
        rows = conn.execute(
            "SELECT json_extract(data, '$.reason') FROM events WHERE type = 'ProposalRejected' "
            "AND json_extract(data, '$.project_id') = ? ORDER BY position",
            (project_id,),
        ).fetchall()
    finally:
        conn.close()
    return [row[0] for row in rows]


@pytest.fixture
def world(client: TestClient) -> tuple[User, User, User]:
    return register(client, "client"), register(client, "freelancer"), register(client, "freelancer")


def test_deleting_a_project_rejects_its_submitted_proposals(
    client: TestClient, settings: Settings, world: tuple[User, User, User]
) -> None:
    owner, fred, gina = world
    project_id = post_project(client, owner)
    submitted, withdrawn = propose(client, fred, project_id), propose(client, gina, project_id)
    assert client.delete(f"/api/proposals/{withdrawn}", headers=gina.headers).status_code == 204

    assert client.delete(f"/api/projects/{project_id}", headers=owner.headers).status_code == 204

    assert_error(client.get(f"/api/projects/{project_id}", headers=fred.headers), 404, "not_found")
    assert status_of(client, submitted, fred) == "rejected"
    assert status_of(client, withdrawn, gina) == "withdrawn"
    assert_error(
        client.put(f"/api/proposals/{submitted}", json={"estimated_hours": 5}, headers=fred.headers),
        409,
        "invalid_state",
    )
    assert_error(client.post(f"/api/proposals/{submitted}/accept", headers=owner.headers), 409, "invalid_state")
    assert rejection_reasons(settings, project_id) == ["project_deleted"]


@pytest.mark.parametrize("status", ["closed", "cancelled"])
def test_closing_or_cancelling_a_project_rejects_its_submitted_proposals(
    client: TestClient, settings: Settings, world: tuple[User, User, User], status: str
) -> None:
    owner, fred, gina = world
    project_id = post_project(client, owner)
    first, second = propose(client, fred, project_id), propose(client, gina, project_id)
    other_project = post_project(client, owner)
    elsewhere = propose(client, fred, other_project)

    response = client.put(f"/api/projects/{project_id}", json={"status": status}, headers=owner.headers)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == status
    assert (status_of(client, first, fred), status_of(client, second, gina)) == ("rejected", "rejected")
    assert status_of(client, elsewhere, fred) == "submitted"
    assert rejection_reasons(settings, project_id) == [f"project_{status}"] * 2


def test_an_edit_that_keeps_the_project_open_leaves_proposals_alone(
    client: TestClient, world: tuple[User, User, User]
) -> None:
    owner, fred, _ = world
    project_id = post_project(client, owner)
    proposal = propose(client, fred, project_id)

    response = client.put(f"/api/projects/{project_id}", json={"title": "A landing page, fast"}, headers=owner.headers)

    assert response.status_code == 200, response.text
    assert status_of(client, proposal, fred) == "submitted"


def test_a_refused_close_rejects_nothing(client: TestClient, world: tuple[User, User, User]) -> None:
    owner, fred, _ = world
    project_id = post_project(client, owner)
    proposal = propose(client, fred, project_id)
    version = client.get(f"/api/projects/{project_id}", headers=owner.headers).headers["etag"]

    stale = client.put(
        f"/api/projects/{project_id}", json={"status": "closed"}, headers={**owner.headers, "If-Match": '"99"'}
    )

    assert_error(stale, 412, "precondition_failed")
    assert status_of(client, proposal, fred) == "submitted"
    assert client.get(f"/api/projects/{project_id}", headers=owner.headers).headers["etag"] == version


def test_only_the_owner_changes_a_project_and_the_others_are_refused_with_403(
    client: TestClient, world: tuple[User, User, User]
) -> None:
    owner, fred, _ = world
    project_id = post_project(client, owner)
    proposal = propose(client, fred, project_id)
    url = f"/api/projects/{project_id}"
    before = client.get(url, headers=owner.headers).json()

    for other in (register(client, "client"), fred):
        assert_error(client.put(url, json={"title": "Hijacked title"}, headers=other.headers), 403, "forbidden")
        assert_error(client.put(url, json={"status": "closed"}, headers=other.headers), 403, "forbidden")
        assert_error(client.delete(url, headers=other.headers), 403, "forbidden")

    assert client.get(url, headers=owner.headers).json() == before
    assert status_of(client, proposal, fred) == "submitted"
    assert_error(client.put("/api/projects/nope", json={"title": "Hijacked"}, headers=owner.headers), 404, "not_found")
