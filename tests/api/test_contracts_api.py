"""Contracts over HTTP: creation rules, visibility, edits, status moves, cancellation, payments folded, ETags."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from api.app import create_app
from core import store
from core.clock import FakeClock
from core.events.base import Event
from core.events.contracts import ContractPaymentCompleted, ContractPaymentRefunded
from core.ids import new_id
from core.settings import Settings
from node.runtime import open_primary
from queries.registry import projection
from tests.conftest import make_settings
from tests.support.accounts import Json, User, login, make_admin, register
from tests.support.errors import assert_error
from tests.support.market import bid, create, created, hire, post_project

# Every test here that opens the primary runs twice: on an embedded file and on a real libSQL server.
DATABASES = ("local", "remote")

CONTRACT_KEYS = {
    "id",
    "project_id",
    "client_id",
    "freelancer_id",
    "client",
    "freelancer",
    "amount",
    "currency",
    "platform_fee",
    "description",
    "start_date",
    "end_date",
    "milestones",
    "terms",
    "status",
    "amount_paid",
    "created_at",
    "updated_at",
}


# -- helpers ---------------------------------------------------------------------------------


def record_on_contract(client: TestClient, contract_id: str, event: Event) -> None:
    """What the payments slice will do: append a payment fact to the contract's own stream, projected inline."""
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    conn = open_primary(runtime.settings)
    try:
        conn.execute("BEGIN IMMEDIATE")
        uow = store.UnitOfWork(conn, {"actor": "test"}, runtime.clock)
        uow.append(contract_id, "contract", uow.version_of(contract_id), [event])
        projection().apply_events(conn, uow.new_events)
        conn.execute("COMMIT")
    finally:
        conn.close()
    runtime.tracker.advance(uow.last_position)  # as the writer does after a commit: reads see the new position


def paid(client: TestClient, contract_id: str, amount_minor: int) -> None:
    event = ContractPaymentCompleted(contract_id=contract_id, payment_id=new_id(), amount_minor=amount_minor)
    record_on_contract(client, contract_id, event)


def refunded(client: TestClient, contract_id: str, amount_minor: int) -> None:
    event = ContractPaymentRefunded(contract_id=contract_id, payment_id=new_id(), amount_minor=amount_minor)
    record_on_contract(client, contract_id, event)


def etag(response: Any) -> str:
    return str(response.headers["etag"])


@pytest.fixture
def ann(client: TestClient) -> User:
    return register(client, "client", "Ann Client")


@pytest.fixture
def fred(client: TestClient) -> User:
    return register(client, "freelancer", "Fred Freelancer")


@pytest.fixture
def contract(client: TestClient, ann: User, fred: User) -> Json:
    return created(client, ann, fred, start_date="2026-12-01", end_date="2026-12-31", terms="Net 30")


# -- create ----------------------------------------------------------------------------------


def test_project_owner_creates_an_active_contract_with_the_hired_freelancer(
    client: TestClient, ann: User, fred: User
) -> None:
    project_id = hire(client, ann, fred)
    response = create(
        client,
        ann,
        project_id,
        fred,
        description="Landing page",
        start_date="2026-12-01",
        end_date="2026-12-31",
        terms="Net 30",
        milestones=[
            {"title": "Design", "amount": 249.5, "due_date": "2026-12-10"},
            {"title": "Build", "amount": 1000},
        ],
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == CONTRACT_KEYS
    assert body["project_id"] == project_id and body["client_id"] == ann.id and body["freelancer_id"] == fred.id
    assert body["client"] == {"id": ann.id, "name": "Ann Client"}
    assert body["freelancer"] == {"id": fred.id, "name": "Fred Freelancer"}
    assert (body["amount"], body["currency"], body["platform_fee"], body["amount_paid"]) == (
        "1250.00",
        "USDC",
        "62.50",
        "0.00",
    )
    assert body["milestones"] == [
        {"title": "Design", "amount": "249.50", "due_date": "2026-12-10"},
        {"title": "Build", "amount": "1000.00", "due_date": None},
    ]
    assert (body["description"], body["terms"], body["status"]) == ("Landing page", "Net 30", "active")
    assert (body["start_date"], body["end_date"]) == ("2026-12-01", "2026-12-31")
    assert body["created_at"] == body["updated_at"] == "2026-11-23T10:00:00Z"
    assert etag(response) == '"1"'
    assert response.headers["x-consistency-token"].isdigit()


def test_optional_fields_default_to_null_and_no_milestones(client: TestClient, ann: User, fred: User) -> None:
    body = created(client, ann, fred)

    assert (body["description"], body["start_date"], body["end_date"], body["terms"]) == (None, None, None, None)
    assert body["milestones"] == []


@pytest.mark.parametrize(
    ("amount", "currency", "fee"),
    [
        ("0.30", "USD", "0.02"),  # 1.5 cents: half to even goes up to 2
        ("0.10", "USD", "0.00"),  # 0.5 cents: half to even goes down to 0
        ("0.50", "USD", "0.02"),  # 2.5 cents → 2
        ("0.70", "USD", "0.04"),  # 3.5 cents → 4
        ("0.000030", "USDC", "0.000002"),  # 1.5 micro-units → 2
        ("0.000010", "USDC", "0.00"),  # 0.5 micro-units → 0
        ("999999999.999999", "USDC", "50000000.00"),  # 49999999999999.95 micro-units → up
    ],
)
def test_platform_fee_is_amount_times_bps_rounded_half_to_even(
    client: TestClient, ann: User, fred: User, amount: str, currency: str, fee: str
) -> None:
    body = created(client, ann, fred, amount=amount, currency=currency)

    assert body["currency"] == currency
    assert body["platform_fee"] == fee


def test_platform_fee_follows_the_configured_bps(tmp_path: Any, clock: FakeClock) -> None:
    settings = make_settings(tmp_path, PLATFORM_FEE_BPS=250)
    with TestClient(create_app(settings, clock), raise_server_exceptions=False) as other:
        owner, freelancer = register(other, "client", "Owner"), register(other, "freelancer", "Hired")
        body = created(other, owner, freelancer, amount="100", currency="USD")

    assert body["platform_fee"] == "2.50"


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"amount": "0"}, "amount"),
        ({"amount": "-5"}, "amount"),
        ({"amount": "abc"}, "amount"),
        ({"amount": True}, "amount"),
        ({"amount": None}, "amount"),
        ({"amount": "1.0000001"}, "amount"),
        ({"amount": "10.001", "currency": "USD"}, "body"),
        ({"currency": "EUR"}, "currency"),
        ({"start_date": "2026-12-10", "end_date": "2026-12-01"}, "body"),
        ({"start_date": "2026-12-10", "end_date": "2026-12-10"}, "body"),
        ({"start_date": "2026-02-30"}, "start_date"),
        ({"end_date": "01/12/2026"}, "end_date"),
        ({"milestones": [{"title": "A", "amount": "1000"}, {"title": "B", "amount": "250.01"}]}, "body"),
        ({"milestones": [{"title": "A", "amount": "0"}]}, "milestones"),
        ({"milestones": [{"title": " ", "amount": "1"}]}, "milestones"),
        ({"milestones": [{"title": "A", "amount": "1", "extra": 1}]}, "milestones"),
        ({"milestones": [{"title": "A", "amount": "1", "due_date": "soon"}]}, "milestones"),
        ({"budget": "1"}, "budget"),
    ],
)
def test_contract_bodies_that_break_shape_rules_are_422(
    client: TestClient, ann: User, fred: User, fields: Json, where: str
) -> None:
    project_id = hire(client, ann, fred)

    body = assert_error(create(client, ann, project_id, fred, **fields), 422, "validation_failed")

    assert any(where in [str(part) for part in error["loc"]] for error in body["errors"]), body


def test_milestones_may_add_up_to_exactly_the_amount(client: TestClient, ann: User, fred: User) -> None:
    body = created(client, ann, fred, milestones=[{"title": "A", "amount": "1000"}, {"title": "B", "amount": "250"}])

    assert [m["amount"] for m in body["milestones"]] == ["1000.00", "250.00"]


def test_only_clients_may_create_contracts(client: TestClient, ann: User, fred: User) -> None:
    project_id = hire(client, ann, fred)

    assert_error(create(client, fred, project_id, fred), 403, "forbidden")


def test_a_client_who_does_not_own_the_project_is_forbidden(client: TestClient, ann: User, fred: User) -> None:
    project_id = hire(client, ann, fred)
    other = register(client, "client", "Other Client")

    assert_error(create(client, other, project_id, fred), 403, "forbidden")


def test_an_unknown_project_is_404(client: TestClient, ann: User, fred: User) -> None:
    assert_error(create(client, ann, new_id(), fred), 404, "not_found")


def test_a_project_without_an_accepted_proposal_cannot_get_a_contract(
    client: TestClient, ann: User, fred: User
) -> None:
    project_id = post_project(client, ann)
    bid(client, fred, project_id)

    assert_error(create(client, ann, project_id, fred), 409, "invalid_state")


def test_the_freelancer_must_be_the_one_whose_proposal_was_accepted(client: TestClient, ann: User, fred: User) -> None:
    project_id = post_project(client, ann)
    gina = register(client, "freelancer", "Gina")
    accepted = bid(client, fred, project_id)
    bid(client, gina, project_id)
    assert client.post(f"/api/proposals/{accepted}/accept", headers=ann.headers).status_code == 200

    body = assert_error(create(client, ann, project_id, gina), 422, "validation_failed")

    assert body["errors"][0]["loc"] == ["body", "freelancer_id"]


def test_one_live_contract_per_project_until_it_is_cancelled(client: TestClient, ann: User, fred: User) -> None:
    project_id = hire(client, ann, fred)
    first = create(client, ann, project_id, fred).json()

    assert_error(create(client, ann, project_id, fred, amount="99"), 409, "conflict")
    assert client.delete(f"/api/contracts/{first['id']}", headers=ann.headers).status_code == 204
    second = create(client, ann, project_id, fred, amount="99")

    assert second.status_code == 201, second.text
    assert_error(create(client, ann, project_id, fred), 409, "conflict")


def test_a_completed_contract_still_blocks_a_new_one(client: TestClient, ann: User, fred: User) -> None:
    project_id = hire(client, ann, fred)
    first = create(client, ann, project_id, fred).json()
    client.put(f"/api/contracts/{first['id']}", json={"status": "completed"}, headers=ann.headers)

    assert_error(create(client, ann, project_id, fred), 409, "conflict")


def test_a_completed_project_gets_no_contract(client: TestClient, ann: User, fred: User) -> None:
    project_id = hire(client, ann, fred)
    done = client.put(f"/api/projects/{project_id}", json={"status": "completed"}, headers=ann.headers)
    assert done.status_code == 200, done.text

    assert_error(create(client, ann, project_id, fred), 409, "invalid_state")
    assert client.get("/api/contracts", headers=ann.headers).json()["items"] == []


def test_a_deactivated_freelancer_cannot_be_contracted(
    client: TestClient, settings: Settings, clock: FakeClock, ann: User, fred: User
) -> None:
    project_id = hire(client, ann, fred)
    admin = User(make_admin(client))
    off = client.patch(f"/api/users/{fred.id}", json={"is_active": False}, headers=admin.headers)
    assert off.status_code == 200, off.text

    body = assert_error(create(client, ann, project_id, fred), 422, "validation_failed")

    assert body["errors"][0]["loc"] == ["body", "freelancer_id"]
    assert client.get("/api/contracts", headers=ann.headers).json()["items"] == []


@pytest.mark.parametrize(
    ("milestones", "where"),
    [
        ([{"title": "A", "amount": "1", "due_date": "2026-11-30"}], ["body", "milestones", 0, "due_date"]),
        (
            [{"title": "A", "amount": "1"}, {"title": "B", "amount": "1", "due_date": "2027-01-01"}],
            ["body", "milestones", 1, "due_date"],
        ),
        ([{"title": "Build", "amount": "1"}, {"title": "build ", "amount": "1"}], ["body", "milestones", 1, "title"]),
    ],
)
def test_milestones_fall_within_the_contract_and_have_distinct_titles(
    client: TestClient, ann: User, fred: User, milestones: list[Json], where: list[Any]
) -> None:
    project_id = hire(client, ann, fred)
    window = {"start_date": "2026-12-01", "end_date": "2026-12-31"}

    body = assert_error(
        create(client, ann, project_id, fred, milestones=milestones, **window), 422, "validation_failed"
    )

    assert body["errors"][0]["loc"] == where
    assert client.get("/api/contracts", headers=ann.headers).json()["items"] == []
    edge_dates = [{"title": "Kick-off", "amount": "1", "due_date": "2026-12-01"}, {"title": "Done", "amount": "1"}]
    edge_dates[1]["due_date"] = "2026-12-31"
    assert create(client, ann, project_id, fred, milestones=edge_dates, **window).status_code == 201


# -- read ------------------------------------------------------------------------------------


def test_parties_and_admins_see_a_contract_and_strangers_get_404(
    client: TestClient, settings: Settings, clock: FakeClock, ann: User, fred: User, contract: Json
) -> None:
    url = f"/api/contracts/{contract['id']}"
    admin = User(make_admin(client))

    for viewer in (ann, fred, admin):
        response = client.get(url, headers=viewer.headers)
        assert response.status_code == 200, response.text
        assert response.json() == contract
        assert etag(response) == '"1"'
    for stranger in (register(client, "client", "Carl"), register(client, "freelancer", "Gina")):
        assert_error(client.get(url, headers=stranger.headers), 404, "not_found")
    assert_error(client.get(f"/api/contracts/{new_id()}", headers=ann.headers), 404, "not_found")


def test_reads_need_a_signed_in_user(client: TestClient, contract: Json) -> None:
    assert_error(client.get("/api/contracts"), 401, "unauthenticated")
    assert_error(client.get(f"/api/contracts/{contract['id']}"), 401, "unauthenticated")


def test_lists_show_each_party_their_own_contracts_and_admins_all(
    client: TestClient, settings: Settings, clock: FakeClock, ann: User, fred: User
) -> None:
    gina = register(client, "freelancer", "Gina")
    bob = register(client, "client", "Bob")
    ann_fred = created(client, ann, fred)
    ann_gina = created(client, ann, gina)
    bob_fred = created(client, bob, fred)
    admin = User(make_admin(client))

    def ids(user: User, query: str = "") -> list[str]:
        response = client.get(f"/api/contracts{query}", headers=user.headers)
        assert response.status_code == 200, response.text
        assert response.json()["next_cursor"] is None
        return [item["id"] for item in response.json()["items"]]

    assert ids(ann) == [ann_gina["id"], ann_fred["id"]]
    assert ids(fred) == [bob_fred["id"], ann_fred["id"]]
    assert ids(gina) == [ann_gina["id"]]
    assert ids(bob) == [bob_fred["id"]]
    assert ids(register(client, "client", "Carl")) == []
    assert ids(admin) == [bob_fred["id"], ann_gina["id"], ann_fred["id"]]
    client.put(f"/api/contracts/{ann_gina['id']}", json={"status": "disputed"}, headers=gina.headers)
    assert ids(ann, "?status=disputed") == [ann_gina["id"]]
    assert ids(ann, "?status=active") == [ann_fred["id"]]
    assert ids(admin, "?status=active") == [bob_fred["id"], ann_fred["id"]]
    assert ids(gina, "?status=active") == []


def test_a_user_on_both_sides_pages_through_both_newest_first(
    client: TestClient, settings: Settings, clock: FakeClock, ann: User, fred: User
) -> None:
    """Roles can change (admin), so one user may be client on some contracts and freelancer on others."""
    bob = register(client, "client", "Bob")
    first = created(client, ann, fred)
    admin = User(make_admin(client))
    response = client.patch(f"/api/users/{ann.id}", json={"role": "freelancer"}, headers=admin.headers)
    assert response.status_code == 200, response.text
    ann_as_freelancer = User(login(client, ann.email))
    second = created(client, bob, ann_as_freelancer)
    created(client, bob, fred)

    seen: list[str] = []
    cursor: str | None = None
    while True:
        query = "?limit=1" + (f"&cursor={cursor}" if cursor else "")
        response = client.get(f"/api/contracts{query}", headers=ann_as_freelancer.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == [second["id"], first["id"]]


def test_a_bad_cursor_or_limit_is_422(client: TestClient, ann: User) -> None:
    assert_error(client.get("/api/contracts?cursor=%%%", headers=ann.headers), 422, "validation_failed")
    assert_error(client.get("/api/contracts?limit=0", headers=ann.headers), 422, "validation_failed")
    assert_error(client.get("/api/contracts?status=open", headers=ann.headers), 422, "validation_failed")


def test_renaming_a_party_renames_them_on_their_contracts(
    client: TestClient, ann: User, fred: User, contract: Json
) -> None:
    assert client.put("/api/auth/me", json={"name": "Ann Renamed"}, headers=ann.headers).status_code == 200
    assert client.put("/api/auth/me", json={"name": "Fred Renamed"}, headers=fred.headers).status_code == 200

    body = client.get(f"/api/contracts/{contract['id']}", headers=ann.headers).json()

    assert body["client"] == {"id": ann.id, "name": "Ann Renamed"}
    assert body["freelancer"] == {"id": fred.id, "name": "Fred Renamed"}


# -- edit ------------------------------------------------------------------------------------


def test_the_client_edits_description_terms_end_date_and_milestones(
    client: TestClient, clock: FakeClock, ann: User, contract: Json
) -> None:
    clock.advance(minutes=5)
    changes = {
        "description": "Now with a blog",
        "terms": "Net 15",
        "end_date": "2027-01-15",
        "milestones": [{"title": "All", "amount": "1250", "due_date": "2027-01-15"}],
    }

    response = client.put(f"/api/contracts/{contract['id']}", json=changes, headers={**ann.headers, "If-Match": '"1"'})

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["description"], body["terms"], body["end_date"]) == ("Now with a blog", "Net 15", "2027-01-15")
    assert body["milestones"] == [{"title": "All", "amount": "1250.00", "due_date": "2027-01-15"}]
    assert (body["start_date"], body["amount"], body["status"]) == ("2026-12-01", "1250.00", "active")
    assert body["updated_at"] == "2026-11-23T10:05:00Z" and body["created_at"] == "2026-11-23T10:00:00Z"
    assert etag(response) == '"2"'
    assert client.get(f"/api/contracts/{contract['id']}", headers=ann.headers).json() == body


def test_null_clears_the_optional_texts_and_an_absent_field_is_kept(
    client: TestClient, ann: User, contract: Json
) -> None:
    response = client.put(
        f"/api/contracts/{contract['id']}", json={"terms": None, "end_date": None}, headers=ann.headers
    )

    body = response.json()
    assert (body["terms"], body["end_date"], body["start_date"]) == (None, None, "2026-12-01")


@pytest.mark.parametrize(
    "changes",
    [
        {"milestones": [{"title": "A", "amount": "1250.000001"}]},
        {"milestones": [{"title": "A", "amount": "1000"}, {"title": "B", "amount": "300"}]},
        {"end_date": "2026-12-01"},
        {"end_date": "2026-11-30"},
        {"end_date": "2026-13-01"},
        {"amount": "2000"},
        {"currency": "USD"},
    ],
)
def test_edits_that_break_the_rules_are_422(client: TestClient, ann: User, contract: Json, changes: Json) -> None:
    url = f"/api/contracts/{contract['id']}"

    assert_error(client.put(url, json=changes, headers=ann.headers), 422, "validation_failed")
    assert client.get(url, headers=ann.headers).json() == contract


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        (
            {"milestones": [{"title": "A", "amount": "1", "due_date": "2026-11-30"}]},
            ["body", "milestones", 0, "due_date"],
        ),
        (
            {"milestones": [{"title": "A", "amount": "1", "due_date": "2027-01-01"}]},
            ["body", "milestones", 0, "due_date"],
        ),
        (
            {"end_date": "2027-01-31", "milestones": [{"title": "A", "amount": "1", "due_date": "2027-02-01"}]},
            ["body", "milestones", 0, "due_date"],
        ),
        (
            {"milestones": [{"title": "A", "amount": "1"}, {"title": "A", "amount": "1"}]},
            ["body", "milestones", 1, "title"],
        ),
        ({"end_date": "2026-12-19"}, ["body", "end_date"]),
    ],
)
def test_edited_milestones_and_end_date_keep_milestones_within_the_contract(
    client: TestClient, ann: User, fred: User, changes: Json, where: list[Any]
) -> None:
    contract = created(
        client,
        ann,
        fred,
        start_date="2026-12-01",
        end_date="2026-12-31",
        milestones=[{"title": "Design", "amount": "100", "due_date": "2026-12-20"}],
    )
    url = f"/api/contracts/{contract['id']}"

    body = assert_error(client.put(url, json=changes, headers=ann.headers), 422, "validation_failed")

    assert body["errors"][0]["loc"] == where
    assert client.get(url, headers=ann.headers).json() == contract
    moved = client.put(url, json={"end_date": "2026-12-20"}, headers=ann.headers)
    assert moved.status_code == 200, moved.text
    assert client.put(url, json={"end_date": None}, headers=ann.headers).json()["end_date"] is None


def test_usd_milestones_keep_to_cents(client: TestClient, ann: User, fred: User) -> None:
    contract = created(client, ann, fred, currency="USD")
    url = f"/api/contracts/{contract['id']}"

    body = assert_error(
        client.put(url, json={"milestones": [{"title": "A", "amount": "1.001"}]}, headers=ann.headers),
        422,
        "validation_failed",
    )
    ok = client.put(url, json={"milestones": [{"title": "A", "amount": "1.10"}]}, headers=ann.headers)

    assert body["errors"][0]["loc"] == ["body", "milestones", 0, "amount"]
    assert ok.json()["milestones"] == [{"title": "A", "amount": "1.10", "due_date": None}]


@pytest.mark.parametrize("field", ["description", "terms", "end_date", "milestones"])
def test_the_freelancer_may_not_edit_client_fields(client: TestClient, fred: User, contract: Json, field: str) -> None:
    value = {"description": "x", "terms": "y", "end_date": "2027-01-01", "milestones": []}[field]

    assert_error(
        client.put(f"/api/contracts/{contract['id']}", json={field: value}, headers=fred.headers), 403, "forbidden"
    )


def test_strangers_and_admins_cannot_change_a_contract(
    client: TestClient, settings: Settings, clock: FakeClock, contract: Json
) -> None:
    """Strangers may not see it (404); an admin sees it but is no party (403). Nothing changes."""
    url = f"/api/contracts/{contract['id']}"
    admin = User(make_admin(client))
    before = client.get(url, headers=admin.headers)
    for other, status, error_type in (
        (register(client, "client", "Carl"), 404, "not_found"),
        (register(client, "freelancer", "Gina"), 404, "not_found"),
        (admin, 403, "forbidden"),
    ):
        assert_error(client.put(url, json={"status": "disputed"}, headers=other.headers), status, error_type)
        assert_error(client.put(url, json={"terms": "mine"}, headers=other.headers), status, error_type)
        assert_error(client.delete(url, headers=other.headers), status, error_type)
    after = client.get(url, headers=admin.headers)
    assert after.json() == before.json() and after.headers["etag"] == before.headers["etag"]
    assert_error(
        client.put(
            f"/api/contracts/{new_id()}", json={"status": "disputed"}, headers=register(client, "client", "Dan").headers
        ),
        404,
        "not_found",
    )


def test_put_rejects_unknown_fields_and_statuses(client: TestClient, ann: User, contract: Json) -> None:
    url = f"/api/contracts/{contract['id']}"

    assert_error(client.put(url, json={"amount": "1"}, headers=ann.headers), 422, "validation_failed")
    assert_error(client.put(url, json={"status": "paused"}, headers=ann.headers), 422, "validation_failed")


# -- status moves ----------------------------------------------------------------------------


def move(client: TestClient, user: User, contract: Json, status: str) -> Any:
    return client.put(f"/api/contracts/{contract['id']}", json={"status": status}, headers=user.headers)


def test_the_client_completes_an_active_contract(client: TestClient, ann: User, contract: Json) -> None:
    response = move(client, ann, contract, "completed")

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "completed"
    assert etag(response) == '"2"'


def test_the_freelancer_may_not_complete_it(client: TestClient, fred: User, contract: Json) -> None:
    assert_error(move(client, fred, contract, "completed"), 403, "forbidden")


@pytest.mark.parametrize("status", ["cancelled", "disputed"])
@pytest.mark.parametrize("side", ["client", "freelancer"])
def test_either_party_may_cancel_or_dispute_an_active_contract(
    client: TestClient, ann: User, fred: User, contract: Json, status: str, side: str
) -> None:
    response = move(client, ann if side == "client" else fred, contract, status)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == status


def test_setting_the_same_status_changes_nothing(client: TestClient, ann: User, contract: Json) -> None:
    response = move(client, ann, contract, "active")

    assert response.status_code == 200 and etag(response) == '"1"'


@pytest.mark.parametrize("first", ["completed", "cancelled", "disputed"])
@pytest.mark.parametrize("then", ["active", "completed", "cancelled", "disputed"])
def test_a_contract_that_left_active_moves_no_further(
    client: TestClient, ann: User, fred: User, contract: Json, first: str, then: str
) -> None:
    assert move(client, ann, contract, first).status_code == 200
    if then == first:
        return
    for user in (ann, fred):
        assert_error(move(client, user, contract, then), 409, "invalid_state")


@pytest.mark.parametrize("status", ["completed", "cancelled", "disputed"])
def test_a_contract_that_left_active_cannot_be_edited(
    client: TestClient, ann: User, contract: Json, status: str
) -> None:
    move(client, ann, contract, status)

    assert_error(
        client.put(f"/api/contracts/{contract['id']}", json={"terms": "late"}, headers=ann.headers),
        409,
        "invalid_state",
    )


def test_nobody_may_cancel_once_money_was_paid(client: TestClient, ann: User, fred: User, contract: Json) -> None:
    paid(client, contract["id"], 100_000_000)

    assert_error(move(client, fred, contract, "cancelled"), 409, "invalid_state")
    assert_error(move(client, ann, contract, "cancelled"), 409, "invalid_state")
    assert_error(client.delete(f"/api/contracts/{contract['id']}", headers=ann.headers), 409, "invalid_state")
    assert move(client, fred, contract, "disputed").status_code == 200


def test_payments_and_refunds_show_in_amount_paid_and_move_the_etag(
    client: TestClient, ann: User, contract: Json
) -> None:
    url = f"/api/contracts/{contract['id']}"
    paid(client, contract["id"], 250_500_000)
    paid(client, contract["id"], 1)
    after_pay = client.get(url, headers=ann.headers)
    refunded(client, contract["id"], 250_500_000)
    after_refund = client.get(url, headers=ann.headers)

    assert after_pay.json()["amount_paid"] == "250.500001" and etag(after_pay) == '"3"'
    assert after_refund.json()["amount_paid"] == "0.000001" and etag(after_refund) == '"4"'
    assert_error(
        client.put(url, json={"terms": "x"}, headers={**ann.headers, "If-Match": '"3"'}), 412, "precondition_failed"
    )


def test_a_fully_refunded_contract_may_be_cancelled(client: TestClient, ann: User, contract: Json) -> None:
    paid(client, contract["id"], 5_000_000)
    refunded(client, contract["id"], 5_000_000)

    assert client.delete(f"/api/contracts/{contract['id']}", headers=ann.headers).status_code == 204


# -- delete ----------------------------------------------------------------------------------


def test_the_client_deletes_to_cancel(client: TestClient, ann: User, fred: User, contract: Json) -> None:
    url = f"/api/contracts/{contract['id']}"

    response = client.delete(url, headers=ann.headers)

    assert response.status_code == 204 and response.content == b""
    assert response.headers["x-consistency-token"].isdigit()
    assert client.get(url, headers=fred.headers).json()["status"] == "cancelled"
    assert_error(client.delete(url, headers=ann.headers), 409, "invalid_state")


def test_the_freelancer_may_not_delete(client: TestClient, fred: User, contract: Json) -> None:
    assert_error(client.delete(f"/api/contracts/{contract['id']}", headers=fred.headers), 403, "forbidden")


@pytest.mark.parametrize("status", ["completed", "disputed"])
def test_only_an_active_contract_can_be_deleted(client: TestClient, ann: User, contract: Json, status: str) -> None:
    move(client, ann, contract, status)

    assert_error(client.delete(f"/api/contracts/{contract['id']}", headers=ann.headers), 409, "invalid_state")


# -- ETag / If-Match -------------------------------------------------------------------------


def test_a_stale_if_match_is_412_and_a_current_one_passes(client: TestClient, ann: User, contract: Json) -> None:
    url = f"/api/contracts/{contract['id']}"
    first = client.put(url, json={"terms": "v2"}, headers={**ann.headers, "If-Match": '"1"'})
    assert first.status_code == 200 and etag(first) == '"2"'

    assert_error(
        client.put(url, json={"terms": "v3"}, headers={**ann.headers, "If-Match": '"1"'}), 412, "precondition_failed"
    )
    assert_error(
        client.put(url, json={"status": "completed"}, headers={**ann.headers, "If-Match": "garbage"}),
        412,
        "precondition_failed",
    )
    assert_error(client.delete(url, headers={**ann.headers, "If-Match": '"1"'}), 412, "precondition_failed")
    assert client.get(url, headers=ann.headers).json()["terms"] == "v2"
    assert client.delete(url, headers={**ann.headers, "If-Match": '"2"'}).status_code == 204


def test_idempotency_key_replays_the_first_create(client: TestClient, ann: User, fred: User) -> None:
    project_id = hire(client, ann, fred)
    body = {"project_id": project_id, "freelancer_id": fred.id, "amount": "10"}
    headers = {**ann.headers, "Idempotency-Key": "contract-1"}

    first = client.post("/api/contracts", json=body, headers=headers)
    again = client.post("/api/contracts", json=body, headers=headers)

    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
