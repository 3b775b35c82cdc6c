"""Request shapes at the edge: nulls that cannot be null, blank list parameters, money, JSON types, cursors.

Every refusal is a 422 `validation_failed` whose `errors` name the field, and it changes nothing.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from starlette.testclient import TestClient

from core.clock import FakeClock
from core.settings import Settings
from tests.support.accounts import User, make_admin, register
from tests.support.errors import assert_error
from tests.support.market import PROJECT, bid, created, post_project

Json = dict[str, Any]
Target = tuple[str, dict[str, str], dict[str, str]]  # (url, headers to write, headers to read back)

NOT_NULL = [
    *(
        ("project", field)
        for field in (
            "title",
            "description",
            "category",
            "budget_type",
            "budget_min",
            "budget_max",
            "experience_level",
            "estimated_duration",
            "skills",
            "status",
        )
    ),
    *(
        ("proposal", field)
        for field in ("cover_letter", "estimated_hours", "hourly_rate", "availability", "attachments")
    ),
    *(("portfolio", field) for field in ("title", "description", "image_url", "tags")),
    ("contract", "milestones"),
    ("contract", "status"),
    ("me", "name"),
    ("me", "skills"),
    ("me", "password"),
    ("user", "is_active"),
    ("user", "role"),
]
NULLABLE = [
    ("contract", "description"),
    ("contract", "terms"),
    ("contract", "end_date"),
    ("portfolio", "project_url"),
    ("me", "bio"),
    ("me", "location"),
    ("me", "hourly_rate"),
    ("me", "profile_image_url"),
]


def target(client: TestClient, settings: Settings, clock: FakeClock, kind: str) -> Target:
    """A resource of `kind` with every nullable field set, and who may edit it."""
    ann, fred = register(client, "client", "Ann"), register(client, "freelancer", "Fred")
    if kind == "project":
        return f"/api/projects/{post_project(client, ann)}", ann.headers, ann.headers
    if kind == "proposal":
        return f"/api/proposals/{bid(client, fred, post_project(client, ann))}", fred.headers, fred.headers
    if kind == "portfolio":
        body = {"title": "Shop", "image_url": "https://img.example.com/a.png", "project_url": "https://example.com"}
        response = client.post("/api/portfolio", json=body, headers=fred.headers)
        assert response.status_code == 201, response.text
        return f"/api/portfolio/{response.json()['id']}", fred.headers, fred.headers
    if kind == "contract":
        contract = created(client, ann, fred, description="Work", end_date="2026-12-31", terms="Net 30")
        return f"/api/contracts/{contract['id']}", ann.headers, ann.headers
    if kind == "me":
        profile = {
            "bio": "Hi",
            "location": "Oslo",
            "hourly_rate": "40",
            "profile_image_url": "https://example.com/p.png",
        }
        response = client.put("/api/auth/me", json=profile, headers=fred.headers)
        assert response.status_code == 200, response.text
        return "/api/auth/me", fred.headers, fred.headers
    admin: User = User(make_admin(client))
    return f"/api/users/{fred.id}", admin.headers, admin.headers


def write(client: TestClient, kind: str, url: str, headers: dict[str, str], body: Json) -> Any:
    return client.request("PATCH" if kind == "user" else "PUT", url, json=body, headers=headers)


@pytest.mark.parametrize(("kind", "field"), NOT_NULL)
def test_null_for_a_field_that_cannot_be_null_is_refused(
    client: TestClient, settings: Settings, clock: FakeClock, kind: str, field: str
) -> None:
    url, writer, reader = target(client, settings, clock, kind)
    before = client.get(url, headers=reader)

    error = assert_error(write(client, kind, url, writer, {field: None}), 422, "validation_failed")

    assert [e["loc"] for e in error["errors"]] == [["body", field]], error
    after = client.get(url, headers=reader)
    assert (after.json(), after.headers.get("etag")) == (before.json(), before.headers.get("etag"))


@pytest.mark.parametrize(("kind", "field"), NULLABLE)
def test_null_still_clears_a_field_that_may_be_null(
    client: TestClient, settings: Settings, clock: FakeClock, kind: str, field: str
) -> None:
    url, writer, reader = target(client, settings, clock, kind)
    assert client.get(url, headers=reader).json()[field] is not None

    response = write(client, kind, url, writer, {field: None})

    assert response.status_code == 200, response.text
    assert response.json()[field] is None
    assert client.get(url, headers=reader).json()[field] is None


def test_the_openapi_document_offers_null_only_where_it_is_accepted(client: TestClient) -> None:
    schemas = client.get("/api/openapi.json").json()["components"]["schemas"]
    models = {
        "project": "ProjectPatch",
        "proposal": "ProposalPatch",
        "portfolio": "PortfolioItemPatch",
        "contract": "ContractPatch",
        "me": "ProfileBody",
        "user": "ChangeUserBody",
    }

    def offers_null(kind: str, field: str) -> bool:
        prop = schemas[models[kind]]["properties"][field]
        return {"type": "null"} in prop.get("anyOf", ()) or prop.get("type") == "null"

    assert [(kind, field) for kind, field in NOT_NULL if offers_null(kind, field)] == []
    assert [(kind, field) for kind, field in NULLABLE if not offers_null(kind, field)] == []


# -- list filters ----------------------------------------------------------------------------

FILTERS = [
    *(
        ("/api/projects", param)
        for param in ("status", "category", "skill", "q", "budget_min", "budget_max", "client_id", "cursor", "limit")
    ),
    ("/api/proposals", "project_id"),
    ("/api/proposals", "status"),
    ("/api/contracts", "status"),
    ("/api/portfolio", "freelancer_id"),
    ("/api/payments", "status"),
    ("/api/payments", "contract_id"),
    ("/api/users", "role"),
    ("/api/users", "skill"),
    ("/api/users", "q"),
]


@pytest.fixture
def market(client: TestClient) -> tuple[User, User]:
    """(client, freelancer): a contract between them, a pending payment on it, a portfolio item, a spare project."""
    ann, fred = register(client, "client", "Ann"), register(client, "freelancer", "Fred")
    contract = created(client, ann, fred)
    payment = {"contract_id": contract["id"], "amount": "10"}
    assert client.post("/api/payments", json=payment, headers=ann.headers).status_code == 201
    item = {"title": "Shop", "image_url": "https://img.example.com/a.png"}
    assert client.post("/api/portfolio", json=item, headers=fred.headers).status_code == 201
    post_project(client, ann)
    return ann, fred


@pytest.mark.parametrize(("path", "param"), FILTERS)
@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_list_parameter_is_the_same_as_leaving_it_out(
    client: TestClient, market: tuple[User, User], path: str, param: str, blank: str
) -> None:
    ann, fred = market
    caller = fred if path == "/api/portfolio" else ann
    unfiltered = client.get(path, headers=caller.headers)
    assert unfiltered.status_code == 200, unfiltered.text
    assert unfiltered.json()["items"]

    response = client.get(path, params={param: blank}, headers=caller.headers)

    assert response.status_code == 200, response.text
    assert response.json() == unfiltered.json()


@pytest.mark.parametrize(
    "query",
    [
        "status=bogus",
        "budget_min=abc",
        "budget_min=2000&budget_max=100",  # an empty range, not a filter: it would match any project spanning it
        "limit=0",
        "cursor=bm90LWEtY3Vyc29y",
        "unknown=",
        "unknown=x",
    ],
)
def test_a_list_parameter_with_a_wrong_value_or_name_is_still_refused(
    client: TestClient, market: tuple[User, User], query: str
) -> None:
    assert_error(client.get(f"/api/projects?{query}", headers=market[0].headers), 422, "validation_failed")


@pytest.mark.parametrize("query", ["status=open&status=", "status=open&status=closed", "limit=5&limit=5"])
def test_a_list_parameter_given_twice_is_refused_not_silently_half_applied(
    client: TestClient, market: tuple[User, User], query: str
) -> None:
    """`?status=open&status=` used to list every project: only the last value of a repeated parameter counted."""
    response = client.get(f"/api/projects?{query}", headers=market[0].headers)
    assert_error(response, 422, "validation_failed")
    name = query.partition("=")[0]
    assert response.json()["errors"] == [{"loc": ["query", name], "msg": "given more than once"}]


# -- money -----------------------------------------------------------------------------------

LOOSE_MONEY = ["1_000", "\u0661\u0660\u0660", "+100", " 100 ", "1e2"]


@pytest.mark.parametrize("text", LOOSE_MONEY)
def test_a_loose_money_string_is_refused_everywhere(client: TestClient, text: str) -> None:
    ann, fred = register(client, "client", "Ann"), register(client, "freelancer", "Fred")
    contract = created(client, ann, fred)
    project = post_project(client, ann)
    proposal = {
        "project_id": project,
        "cover_letter": "I have built many landing pages like this one. " * 3,
        "estimated_hours": 20,
        "availability": "immediate",
    }
    project_body = {
        "title": "Build a landing page",
        "description": "A responsive landing page for our product launch.",
        "category": "web",
        "budget_type": "fixed",
        "experience_level": "intermediate",
        "estimated_duration": "2 weeks",
    }
    attempts = [
        (client.post, "/api/projects", ann, {**project_body, "budget_min": text, "budget_max": "2000"}, "budget_min"),
        (client.put, f"/api/projects/{project}", ann, {"budget_max": text}, "budget_max"),
        (client.post, "/api/proposals", fred, {**proposal, "hourly_rate": text}, "hourly_rate"),
        (client.post, "/api/payments", ann, {"contract_id": contract["id"], "amount": text}, "amount"),
        (client.put, "/api/auth/me", fred, {"hourly_rate": text}, "hourly_rate"),
        (client.put, f"/api/contracts/{contract['id']}", ann, {"milestones": [{"title": "A", "amount": text}]}, None),
    ]
    for send, url, who, body, field in attempts:
        error = assert_error(send(url, json=body, headers=who.headers), 422, "validation_failed")
        assert field is None or ["body", field] in [e["loc"] for e in error["errors"]], error
    search = client.get("/api/projects", params={"budget_min": text}, headers=ann.headers)
    assert_error(search, 422, "validation_failed")
    assert client.get("/api/payments", headers=ann.headers).json()["items"] == []
    assert client.get("/api/auth/me", headers=fred.headers).json()["hourly_rate"] is None
    assert client.get(f"/api/contracts/{contract['id']}", headers=ann.headers).json() == contract


@pytest.mark.parametrize(("amount", "text"), [("12.50", "12.50"), ("007", "7.00"), (12.5, "12.50"), (100, "100.00")])
def test_plain_money_strings_and_json_numbers_are_accepted(client: TestClient, amount: object, text: str) -> None:
    ann, fred = register(client, "client", "Ann"), register(client, "freelancer", "Fred")
    contract = created(client, ann, fred)

    response = client.post("/api/payments", json={"contract_id": contract["id"], "amount": amount}, headers=ann.headers)

    assert response.status_code == 201, response.text
    assert response.json()["amount"] == text


# -- JSON types ------------------------------------------------------------------------------


def proposal_body(project_id: str, **fields: Any) -> Json:
    return {
        "project_id": project_id,
        "cover_letter": "I have built many landing pages like this one. " * 3,
        "estimated_hours": 20,
        "hourly_rate": "40",
        "availability": "immediate",
        **fields,
    }


@pytest.mark.parametrize("hours", [True, False, "20", 20.5, None, [20], {"h": 20}])
def test_an_integer_field_takes_only_a_json_integer(client: TestClient, hours: object) -> None:
    ann, fred = register(client, "client", "Ann"), register(client, "freelancer", "Fred")
    project = post_project(client, ann)
    proposal = bid(client, fred, project)
    other = post_project(client, ann)
    url = f"/api/proposals/{proposal}"
    before = client.get(url, headers=fred.headers).json()

    created_error = assert_error(
        client.post("/api/proposals", json=proposal_body(other, estimated_hours=hours), headers=fred.headers),
        422,
        "validation_failed",
    )
    revised_error = assert_error(
        client.put(url, json={"estimated_hours": hours}, headers=fred.headers), 422, "validation_failed"
    )
    presign = {"filename": "a.png", "content_type": "image/png", "size": hours}
    presign_error = assert_error(
        client.post("/api/uploads/presign", json=presign, headers=fred.headers), 422, "validation_failed"
    )

    assert [e["loc"] for e in created_error["errors"]] == [["body", "estimated_hours"]]
    assert [e["loc"] for e in revised_error["errors"]] == [["body", "estimated_hours"]]
    assert [e["loc"] for e in presign_error["errors"]] == [["body", "size"]]
    assert client.get(url, headers=fred.headers).json() == before
    assert client.get("/api/proposals", params={"project_id": other}, headers=fred.headers).json()["items"] == []


def test_an_integral_json_number_is_an_integer(client: TestClient) -> None:
    ann, fred = register(client, "client", "Ann"), register(client, "freelancer", "Fred")

    response = client.post(
        "/api/proposals", json=proposal_body(post_project(client, ann), estimated_hours=20.0), headers=fred.headers
    )

    assert response.status_code == 201, response.text
    assert response.json()["estimated_hours"] == 20


@pytest.mark.parametrize("value", ["no", "false", "true", 0, 1, None, [], {}])
def test_a_boolean_field_takes_only_json_true_or_false(
    client: TestClient, settings: Settings, clock: FakeClock, value: object
) -> None:
    admin, fred = User(make_admin(client)), register(client, "freelancer", "Fred")
    url = f"/api/users/{fred.id}"

    error = assert_error(client.patch(url, json={"is_active": value}, headers=admin.headers), 422, "validation_failed")

    assert [e["loc"] for e in error["errors"]] == [["body", "is_active"]]
    assert client.get(url, headers=admin.headers).json()["is_active"] is True
    assert client.get("/api/auth/me", headers=fred.headers).status_code == 200


@pytest.mark.parametrize("amount", [None, True, [], {}, "abc"])
def test_a_bad_amount_is_one_error_at_the_field(client: TestClient, amount: object) -> None:
    ann, fred = register(client, "client", "Ann"), register(client, "freelancer", "Fred")
    contract = created(client, ann, fred)
    url = f"/api/contracts/{contract['id']}"

    payment = client.post("/api/payments", json={"contract_id": contract["id"], "amount": amount}, headers=ann.headers)
    milestone = client.put(url, json={"milestones": [{"title": "A", "amount": amount}]}, headers=ann.headers)

    for response, loc in ((payment, ["body", "amount"]), (milestone, ["body", "milestones", 0, "amount"])):
        errors = assert_error(response, 422, "validation_failed")["errors"]
        assert [e["loc"] for e in errors] == [loc], errors
        assert "decimal string or a number" in errors[0]["msg"] or "digits" in errors[0]["msg"], errors
    assert client.get("/api/payments", headers=ann.headers).json()["items"] == []
    assert client.get(url, headers=ann.headers).json() == contract


# -- cursors ---------------------------------------------------------------------------------

LISTS = ["/api/projects", "/api/proposals", "/api/contracts", "/api/payments", "/api/portfolio", "/api/users"]


@pytest.fixture
def two_of_each(client: TestClient) -> tuple[User, dict[str, Json]]:
    """A client who sees two items in every list, and the query that shows them (portfolio: the freelancer's)."""
    ann, fred = register(client, "client", "Ann"), register(client, "freelancer", "Fred")
    contract = created(client, ann, fred)
    created(client, ann, fred)
    for amount in ("10", "20"):
        payment = {"contract_id": contract["id"], "amount": amount}
        assert client.post("/api/payments", json=payment, headers=ann.headers).status_code == 201
    for title in ("One", "Two"):
        item = {"title": title, "image_url": "https://img.example.com/a.png"}
        assert client.post("/api/portfolio", json=item, headers=fred.headers).status_code == 201
    queries: dict[str, Json] = {path: {"limit": 1} for path in LISTS}
    queries["/api/portfolio"]["freelancer_id"] = fred.id
    return ann, queries


@pytest.mark.parametrize("issuer", LISTS)
def test_a_cursor_is_accepted_only_by_the_list_that_issued_it(
    client: TestClient, two_of_each: tuple[User, dict[str, Json]], issuer: str
) -> None:
    ann, queries = two_of_each
    first = client.get(issuer, params=queries[issuer], headers=ann.headers).json()
    cursor = first["next_cursor"]
    assert cursor is not None, first

    second = client.get(issuer, params={**queries[issuer], "cursor": cursor}, headers=ann.headers)

    assert second.status_code == 200, second.text
    assert len(second.json()["items"]) == 1 and second.json()["items"] != first["items"]
    for other in LISTS:
        if other != issuer:
            response = client.get(other, params={**queries[other], "cursor": cursor}, headers=ann.headers)
            error = assert_error(response, 422, "validation_failed")
            assert [e["loc"] for e in error["errors"]] == [["query", "cursor"]], (other, error)


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("key", [2**63, 2**64 - 1, 7, True, None])
def test_a_cursor_whose_key_is_not_an_id_is_refused(
    client: TestClient, two_of_each: tuple[User, dict[str, Json]], path: str, key: object
) -> None:
    """Every list keys its cursors by id: a number (even one beyond SQLite's integers) is a made-up cursor."""
    ann, queries = two_of_each
    name = path.removeprefix("/api/")
    cursor = base64.urlsafe_b64encode(json.dumps([name, key]).encode()).decode().rstrip("=")

    response = client.get(path, params={**queries[path], "cursor": cursor}, headers=ann.headers)

    error = assert_error(response, 422, "validation_failed")
    assert [e["loc"] for e in error["errors"]] == [["query", "cursor"]], error


@pytest.mark.parametrize("path", LISTS)
def test_a_cursor_changed_by_the_client_is_refused(
    client: TestClient, two_of_each: tuple[User, dict[str, Json]], path: str
) -> None:
    """Cursors are signed: one rewritten to start anywhere else, with or without the issued seal, is made up."""
    ann, queries = two_of_each
    issued = client.get(path, params=queries[path], headers=ann.headers).json()["next_cursor"]
    assert issued is not None
    name = path.removeprefix("/api/")
    forged = base64.urlsafe_b64encode(json.dumps([name, "~"]).encode()).decode().rstrip("=")
    resealed = forged + "." + issued.rpartition(".")[2]

    for cursor in (forged, resealed, issued[:-2] + ("AA" if not issued.endswith("AA") else "BB")):
        response = client.get(path, params={**queries[path], "cursor": cursor}, headers=ann.headers)
        error = assert_error(response, 422, "validation_failed")
        assert [e["loc"] for e in error["errors"]] == [["query", "cursor"]], error


# -- text lengths ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("title", "   Shop    "),
        ("description", "  Too short to say it  "),
        ("category", "   "),
        ("estimated_duration", " "),
    ],
)
def test_a_projects_text_is_measured_without_its_surrounding_spaces(client: TestClient, field: str, text: str) -> None:
    """docs/api.md's lengths (title 5 to 200, description 20 to 10000) hold for what is stored, which is trimmed."""
    ann = register(client, "client", "Ann")
    project_id = post_project(client, ann)
    before = client.get(f"/api/projects/{project_id}", headers=ann.headers).json()

    posted = client.post("/api/projects", json={**PROJECT, field: text}, headers=ann.headers)
    edited = client.put(f"/api/projects/{project_id}", json={field: text}, headers=ann.headers)

    for refused in (posted, edited):
        assert assert_error(refused, 422, "validation_failed")["errors"][0]["loc"] == ["body", field]
    assert client.get("/api/projects", headers=ann.headers).json()["items"] == [before]


def test_a_title_of_200_characters_may_come_with_surrounding_spaces(client: TestClient) -> None:
    ann = register(client, "client", "Ann")

    response = client.post("/api/projects", json={**PROJECT, "title": f"  {'t' * 200}\n"}, headers=ann.headers)

    assert response.status_code == 201, response.text
    assert response.json()["title"] == "t" * 200


# -- control characters ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "text", "loc"),
    [
        ("title", "\u0000Build a landing page", ["body", "title"]),
        ("description", "Colours: \u001b[31mred\u001b[0m for the launch page and more.", ["body", "description"]),
        ("description", "A landing page for the launch\u007f with a signup form.", ["body", "description"]),
        ("skills", ["html", "c\u0008ss"], ["body", "skills", 1]),
    ],
)
def test_text_with_a_control_character_is_refused(
    client: TestClient, field: str, text: object, loc: list[object]
) -> None:
    ann = register(client, "client", "Ann")
    body = {**PROJECT, field: text}

    refused = assert_error(client.post("/api/projects", json=body, headers=ann.headers), 422, "validation_failed")

    assert refused["errors"][0]["loc"] == loc
    assert client.get("/api/projects", headers=ann.headers).json()["items"] == []


def test_tabs_newlines_and_escaped_backslashes_are_text(client: TestClient) -> None:
    ann = register(client, "client", "Ann")
    description = "Two parts:\n\t1. a landing page\r\n\t2. a signup form, saved under C:\\build\\forms."

    response = client.post("/api/projects", json={**PROJECT, "description": description}, headers=ann.headers)

    assert response.status_code == 201, response.text
    assert response.json()["description"] == description


def test_a_password_may_hold_any_character(client: TestClient) -> None:
    password = "tab\there\u0000nul\u001besc"
    body = {"email": "odd@example.com", "password": password, "name": "Odd", "role": "client"}

    assert client.post("/api/auth/register", json=body).status_code == 201
    response = client.post("/api/auth/login", json={"email": "odd@example.com", "password": password})

    assert response.status_code == 200, response.text
