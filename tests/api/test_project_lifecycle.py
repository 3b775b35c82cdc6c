"""A project that ends without a hire, over HTTP: its submitted proposals are rejected with it; only its owner
may change it, and everyone else (who can read it) is refused with 403."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from core.clock import FakeClock
from core.settings import Settings
from node.runtime import open_primary
from tests.support.accounts import User, login, make_admin, register
from tests.support.errors import assert_error
from tests.support.market import bid, post_project

# Every test here that opens the primary runs twice: on an embedded file and on a real libSQL server.
DATABASES = ("local", "remote")


def status_of(client: TestClient, proposal_id: str, viewer: User) -> str:
    response = client.get(f"/api/proposals/{proposal_id}", headers=viewer.headers)
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


def rejection_reasons(settings: Settings, project_id: str) -> list[str]:
    conn = open_primary(settings)
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
    ann = register(client, "client", "Ann")
    return ann, register(client, "freelancer", "Fred"), register(client, "freelancer", "Gina")


@pytest.fixture
def bid_on(client: TestClient, world: tuple[User, User, User]) -> tuple[User, User, str, str]:
    """Ann's project with Fred's submitted proposal on it: (owner, freelancer, project id, proposal id)."""
    owner, fred, _ = world
    project_id = post_project(client, owner)
    return owner, fred, project_id, bid(client, fred, project_id)


def test_deleting_a_project_rejects_its_submitted_proposals(
    client: TestClient, settings: Settings, world: tuple[User, User, User]
) -> None:
    owner, fred, gina = world
    project_id = post_project(client, owner)
    submitted, withdrawn = bid(client, fred, project_id), bid(client, gina, project_id)
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
    first, second = bid(client, fred, project_id), bid(client, gina, project_id)
    other_project = post_project(client, owner)
    elsewhere = bid(client, fred, other_project)

    response = client.put(f"/api/projects/{project_id}", json={"status": status}, headers=owner.headers)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == status
    assert (status_of(client, first, fred), status_of(client, second, gina)) == ("rejected", "rejected")
    assert status_of(client, elsewhere, fred) == "submitted"
    assert rejection_reasons(settings, project_id) == [f"project_{status}"] * 2


def test_an_edit_that_keeps_the_project_open_leaves_proposals_alone(
    client: TestClient, bid_on: tuple[User, User, str, str]
) -> None:
    owner, fred, project_id, proposal = bid_on

    response = client.put(f"/api/projects/{project_id}", json={"title": "A landing page, fast"}, headers=owner.headers)

    assert response.status_code == 200, response.text
    assert status_of(client, proposal, fred) == "submitted"


def test_a_refused_close_rejects_nothing(client: TestClient, bid_on: tuple[User, User, str, str]) -> None:
    owner, fred, project_id, proposal = bid_on
    version = client.get(f"/api/projects/{project_id}", headers=owner.headers).headers["etag"]

    stale = client.put(
        f"/api/projects/{project_id}", json={"status": "closed"}, headers={**owner.headers, "If-Match": '"99"'}
    )

    assert_error(stale, 412, "precondition_failed")
    assert status_of(client, proposal, fred) == "submitted"
    assert client.get(f"/api/projects/{project_id}", headers=owner.headers).headers["etag"] == version


def test_only_the_owner_changes_a_project_and_the_others_are_refused_with_403(
    client: TestClient, bid_on: tuple[User, User, str, str]
) -> None:
    owner, fred, project_id, proposal = bid_on
    url = f"/api/projects/{project_id}"
    before = client.get(url, headers=owner.headers).json()

    for other in (register(client, "client", "Carl"), fred):
        assert_error(client.put(url, json={"title": "Hijacked title"}, headers=other.headers), 403, "forbidden")
        assert_error(client.put(url, json={"status": "closed"}, headers=other.headers), 403, "forbidden")
        assert_error(client.delete(url, headers=other.headers), 403, "forbidden")

    assert client.get(url, headers=owner.headers).json() == before
    assert status_of(client, proposal, fred) == "submitted"
    assert_error(client.put("/api/projects/nope", json={"title": "Hijacked"}, headers=owner.headers), 404, "not_found")


def test_a_proposal_is_changed_by_its_author_only_and_an_admin_who_can_read_it_gets_403(
    client: TestClient, settings: Settings, clock: FakeClock, bid_on: tuple[User, User, str, str]
) -> None:
    """Strangers may not see it (404); the project's owner and an admin see it but are not its author (403)."""
    owner, _, _, proposal = bid_on
    url = f"/api/proposals/{proposal}"
    admin = User(make_admin(client))
    before = client.get(url, headers=admin.headers)
    for other, status, error_type in (
        (register(client, "freelancer", "Gina"), 404, "not_found"),
        (register(client, "client", "Carl"), 404, "not_found"),
        (owner, 403, "forbidden"),
        (admin, 403, "forbidden"),
    ):
        assert_error(client.put(url, json={"estimated_hours": 1}, headers=other.headers), status, error_type)
        assert_error(client.delete(url, headers=other.headers), status, error_type)
    after = client.get(url, headers=admin.headers)
    assert after.json() == before.json() and after.headers["etag"] == before.headers["etag"]


def test_a_user_on_both_sides_lists_their_bids_and_the_bids_on_their_projects(
    client: TestClient, settings: Settings, clock: FakeClock, bid_on: tuple[User, User, str, str]
) -> None:
    """Roles can change (admin), so one user may own projects with bids and have bids of their own."""
    ann, fred, _, on_ann = bid_on
    admin = User(make_admin(client))
    response = client.patch(f"/api/users/{ann.id}", json={"role": "freelancer"}, headers=admin.headers)
    assert response.status_code == 200, response.text
    ann_as_freelancer = User(login(client, ann.email))
    bob = register(client, "client", "Bob")
    by_ann = bid(client, ann_as_freelancer, post_project(client, bob))
    bid(client, fred, post_project(client, bob))

    seen: list[str] = []
    cursor: str | None = None
    while True:
        query = "?limit=1" + (f"&cursor={cursor}" if cursor else "")
        response = client.get(f"/api/proposals{query}", headers=ann_as_freelancer.headers)
        assert response.status_code == 200, response.text
        seen += [item["id"] for item in response.json()["items"]]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break

    assert seen == [by_ann, on_ann]
    for proposal in seen:
        assert client.get(f"/api/proposals/{proposal}", headers=ann_as_freelancer.headers).status_code == 200


def test_a_deactivated_freelancers_proposal_cannot_be_accepted_and_nothing_changes(
    client: TestClient, settings: Settings, clock: FakeClock, world: tuple[User, User, User]
) -> None:
    """Hiring them would leave the project in progress with nobody to contract (and no way to cancel it)."""
    owner, fred, gina = world
    project_id = post_project(client, owner)
    fred_bid, gina_bid = bid(client, fred, project_id), bid(client, gina, project_id)
    admin = User(make_admin(client))
    deactivated = client.patch(f"/api/users/{fred.id}", json={"is_active": False}, headers=admin.headers)
    assert deactivated.status_code == 200, deactivated.text
    project = client.get(f"/api/projects/{project_id}", headers=owner.headers)

    assert_error(client.post(f"/api/proposals/{fred_bid}/accept", headers=owner.headers), 409, "invalid_state")

    after = client.get(f"/api/projects/{project_id}", headers=owner.headers)
    assert after.json() == project.json() and after.headers["etag"] == project.headers["etag"]
    assert (status_of(client, fred_bid, owner), status_of(client, gina_bid, gina)) == ("submitted", "submitted")
    accepted = client.post(f"/api/proposals/{gina_bid}/accept", headers=owner.headers)
    assert accepted.status_code == 200, accepted.text


def test_a_project_owner_whose_role_changed_still_accepts_rejects_and_contracts(
    client: TestClient, settings: Settings, clock: FakeClock, world: tuple[User, User, User]
) -> None:
    """docs/api.md gates accepting, rejecting and contracting on owning the project, not on the role `client`: an
    owner an admin made a freelancer keeps deciding on the bids their projects already have."""
    owner, fred, gina = world
    project_id = post_project(client, owner)
    fred_bid, gina_bid = bid(client, fred, project_id), bid(client, gina, project_id)
    admin = User(make_admin(client))
    changed = client.patch(f"/api/users/{owner.id}", json={"role": "freelancer"}, headers=admin.headers)
    assert changed.status_code == 200, changed.text
    owner = User(login(client, owner.email))

    rejected = client.post(f"/api/proposals/{gina_bid}/reject", headers=owner.headers)
    assert (rejected.status_code, rejected.json()["status"]) == (200, "rejected"), rejected.text
    accepted = client.post(f"/api/proposals/{fred_bid}/accept", headers=owner.headers)
    assert (accepted.status_code, accepted.json()["status"]) == (200, "accepted"), accepted.text
    body = {"project_id": project_id, "freelancer_id": fred.id, "amount": "300.00"}
    contracted = client.post("/api/contracts", json=body, headers=owner.headers)
    assert (contracted.status_code, contracted.json()["client_id"]) == (201, owner.id), contracted.text


def test_only_the_project_owner_accepts_or_rejects_and_others_learn_no_more_than_they_may_read(
    client: TestClient, settings: Settings, clock: FakeClock, bid_on: tuple[User, User, str, str]
) -> None:
    """The author and an admin, who may read the proposal, are refused (403); any other user, client or
    freelancer, is told it does not exist (404); and nothing changes."""
    owner, fred, project_id, proposal_id = bid_on
    admin = User(make_admin(client))
    before = client.get(f"/api/proposals/{proposal_id}", headers=owner.headers)
    for other, status, error_type in (
        (fred, 403, "forbidden"),
        (admin, 403, "forbidden"),
        (register(client, "client", "Carl"), 404, "not_found"),
        (register(client, "freelancer", "Hal"), 404, "not_found"),
    ):
        for action in ("accept", "reject"):
            url = f"/api/proposals/{proposal_id}/{action}"
            assert_error(client.post(url, headers=other.headers), status, error_type)
    after = client.get(f"/api/proposals/{proposal_id}", headers=owner.headers)
    assert after.json() == before.json() and after.headers["etag"] == before.headers["etag"]
    assert client.get(f"/api/projects/{project_id}", headers=owner.headers).json()["status"] == "open"
    body = {"project_id": project_id, "freelancer_id": fred.id, "amount": "300.00"}
    for other in (fred, admin):
        assert_error(client.post("/api/contracts", json=body, headers=other.headers), 403, "forbidden")


def test_a_deactivation_suspends_the_account_and_its_projects_and_bids_wait_for_its_return(
    client: TestClient, settings: Settings, clock: FakeClock, bid_on: tuple[User, User, str, str]
) -> None:
    """Deactivating stops the account's sign-in and tokens and nothing else: its project and the bid on it stay
    as they were, visible, and once reactivated the owner hires as before."""
    owner, fred, project_id, proposal_id = bid_on
    admin = User(make_admin(client))
    before = client.get(f"/api/projects/{project_id}", headers=fred.headers).json()
    assert client.patch(f"/api/users/{owner.id}", json={"is_active": False}, headers=admin.headers).status_code == 200
    assert_error(client.get("/api/auth/me", headers=owner.headers), 401, "token_invalid")

    assert client.get(f"/api/projects/{project_id}", headers=fred.headers).json() == before
    assert status_of(client, proposal_id, fred) == "submitted"

    assert client.patch(f"/api/users/{owner.id}", json={"is_active": True}, headers=admin.headers).status_code == 200
    owner = User(login(client, owner.email))
    accepted = client.post(f"/api/proposals/{proposal_id}/accept", headers=owner.headers)
    assert (accepted.status_code, accepted.json()["status"]) == (200, "accepted"), accepted.text
