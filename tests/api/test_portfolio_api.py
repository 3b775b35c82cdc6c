"""Portfolio over HTTP: freelancers add, edit and remove their items; anyone signed in browses any portfolio."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from core.clock import FakeClock
from core.ids import new_id
from tests.support.accounts import User, register
from tests.support.errors import assert_error

# Every test here that opens the primary runs twice: on an embedded file and on a real libSQL server.
DATABASES = ("local", "remote")

ITEM_KEYS = {
    "id",
    "freelancer_id",
    "title",
    "description",
    "image_url",
    "project_url",
    "tags",
    "created_at",
    "updated_at",
}
UPLOAD_ID = "0123456789abcdef0123456789abcdef"
Json = dict[str, Any]


def add(client: TestClient, user: User, **fields: Any) -> Any:
    body = {"title": "Shop redesign", "image_url": "https://img.example.com/shop.png", **fields}
    return client.post("/api/portfolio", json=body, headers=user.headers)


def added(client: TestClient, user: User, **fields: Any) -> Json:
    response = add(client, user, **fields)
    assert response.status_code == 201, response.text
    body: Json = response.json()
    return body


def ids(client: TestClient, user: User, query: str = "") -> list[str]:
    response = client.get(f"/api/portfolio{query}", headers=user.headers)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


@pytest.fixture
def pat(client: TestClient) -> User:
    return register(client, "freelancer")


@pytest.fixture
def item(client: TestClient, pat: User) -> Json:
    return added(
        client,
        pat,
        description="A full redesign",
        project_url="https://shop.example.com",
        tags=["design", "e-commerce"],
    )


# -- create ----------------------------------------------------------------------------------


def test_a_freelancer_adds_an_item(client: TestClient, pat: User) -> None:
    response = add(
        client,
        pat,
        description="A full redesign",
        project_url="https://shop.example.com/case?x=1",
        tags=["design", " e-commerce "],
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == ITEM_KEYS
    assert body["freelancer_id"] == pat.id
    assert (body["title"], body["description"]) == ("Shop redesign", "A full redesign")
    assert (body["image_url"], body["project_url"]) == (
        "https://img.example.com/shop.png",
        "https://shop.example.com/case?x=1",
    )
    assert body["tags"] == ["design", "e-commerce"]
    assert body["created_at"] == body["updated_at"] == "2026-11-23T10:00:00Z"
    assert response.headers["etag"] == '"1"'
    assert response.headers["x-consistency-token"].isdigit()


def test_optional_fields_have_defaults_and_an_upload_id_is_an_image(client: TestClient, pat: User) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(64)  # an upload id must name a stored image of the caller's
    upload = client.post("/api/uploads", files={"file": ("shop.png", png, "image/png")}, headers=pat.headers)
    assert upload.status_code == 201, upload.text
    upload_id = upload.json()["id"]

    body = added(client, pat, image_url=upload_id)

    assert (body["description"], body["project_url"], body["tags"], body["image_url"]) == ("", None, [], upload_id)


def test_only_freelancers_add_items(client: TestClient) -> None:
    assert_error(add(client, register(client, "client")), 403, "forbidden")


def test_adding_needs_a_signed_in_user(client: TestClient) -> None:
    response = client.post("/api/portfolio", json={"title": "x", "image_url": UPLOAD_ID})

    assert_error(response, 401, "unauthenticated")


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "t" * 201}, "title"),
        ({"description": "d" * 5001}, "description"),
        ({"image_url": "http://img.example.com/a.png"}, "image_url"),
        ({"image_url": "ftp://img.example.com/a.png"}, "image_url"),
        ({"image_url": "https://"}, "image_url"),
        ({"image_url": "https://img.example.com/a b.png"}, "image_url"),
        ({"image_url": "https://img.example.com/" + "a" * 2030}, "image_url"),
        ({"image_url": UPLOAD_ID.upper()}, "image_url"),
        ({"image_url": UPLOAD_ID[:-1]}, "image_url"),
        ({"image_url": UPLOAD_ID + "\n"}, "image_url"),
        ({"image_url": "javascript:alert(1)"}, "image_url"),
        ({"project_url": "http://shop.example.com"}, "project_url"),
        ({"project_url": UPLOAD_ID}, "project_url"),
        ({"tags": ["t"] * 21}, "tags"),
        ({"tags": ["x" * 51]}, "tags"),
        ({"tags": [""]}, "tags"),
        ({"tags": "design"}, "tags"),
        ({"owner": "me"}, "owner"),
    ],
)
def test_items_that_break_shape_rules_are_422(client: TestClient, pat: User, fields: Json, where: str) -> None:
    body = assert_error(add(client, pat, **fields), 422, "validation_failed")

    assert any(where in [str(part) for part in error["loc"]] for error in body["errors"]), body


def test_the_limits_themselves_are_allowed(client: TestClient, pat: User) -> None:
    url = "https://img.example.com/" + "a" * (2048 - len("https://img.example.com/"))
    body = added(client, pat, title="t" * 200, description="d" * 5000, image_url=url, tags=["x" * 50] * 20)

    assert len(body["title"]) == 200 and len(body["tags"]) == 20 and body["image_url"] == url


def test_an_image_url_is_required(client: TestClient, pat: User) -> None:
    response = client.post("/api/portfolio", json={"title": "No image"}, headers=pat.headers)

    assert_error(response, 422, "validation_failed")


# -- read ------------------------------------------------------------------------------------


def test_the_list_defaults_to_the_callers_own_portfolio_newest_first(client: TestClient, pat: User) -> None:
    other = register(client, "freelancer")
    first, second = added(client, pat), added(client, pat)
    added(client, other)

    assert ids(client, pat) == [second["id"], first["id"]]


def test_anyone_signed_in_browses_any_freelancers_portfolio(client: TestClient, pat: User, item: Json) -> None:
    for viewer in (register(client, "client"), register(client, "freelancer")):
        assert ids(client, viewer, f"?freelancer_id={pat.id}") == [item["id"]]
        assert ids(client, viewer) == []
        response = client.get(f"/api/portfolio/{item['id']}", headers=viewer.headers)
        assert response.status_code == 200, response.text
        assert response.json() == item
        assert response.headers["etag"] == '"1"'


def test_an_unknown_item_is_404_and_an_unknown_freelancer_has_an_empty_portfolio(client: TestClient, pat: User) -> None:
    assert_error(client.get(f"/api/portfolio/{new_id()}", headers=pat.headers), 404, "not_found")
    assert ids(client, pat, f"?freelancer_id={new_id()}") == []


def test_reads_need_a_signed_in_user(client: TestClient, item: Json) -> None:
    assert_error(client.get("/api/portfolio"), 401, "unauthenticated")
    assert_error(client.get(f"/api/portfolio/{item['id']}"), 401, "unauthenticated")


def test_the_list_pages_with_a_cursor(client: TestClient, pat: User) -> None:
    made = [added(client, pat, title=f"Item {n}")["id"] for n in range(5)]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        response = client.get(f"/api/portfolio{query}", headers=pat.headers)
        assert response.status_code == 200, response.text
        seen += [i["id"] for i in response.json()["items"]]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break

    assert seen == made[::-1]
    assert_error(client.get("/api/portfolio?cursor=nope!", headers=pat.headers), 422, "validation_failed")
    assert_error(client.get("/api/portfolio?limit=101", headers=pat.headers), 422, "validation_failed")


# -- edit and remove -------------------------------------------------------------------------


def test_the_owner_edits_only_the_fields_sent(client: TestClient, clock: FakeClock, pat: User, item: Json) -> None:
    clock.advance(minutes=5)

    response = client.put(
        f"/api/portfolio/{item['id']}",
        json={"title": "Shop v2", "tags": ["ux"]},
        headers={**pat.headers, "If-Match": '"1"'},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {**item, "title": "Shop v2", "tags": ["ux"], "updated_at": "2026-11-23T10:05:00Z"}
    assert response.headers["etag"] == '"2"'
    assert client.get(f"/api/portfolio/{item['id']}", headers=pat.headers).json() == body


def test_project_url_null_removes_the_link_and_other_nulls_are_refused(
    client: TestClient, pat: User, item: Json
) -> None:
    url = f"/api/portfolio/{item['id']}"
    refused = client.put(url, json={"project_url": None, "title": None}, headers=pat.headers)
    response = client.put(url, json={"project_url": None}, headers=pat.headers)

    body = assert_error(refused, 422, "validation_failed")
    assert [e["loc"] for e in body["errors"]] == [["body", "title"]]
    assert response.status_code == 200, response.text
    assert response.json()["project_url"] is None
    assert response.json()["title"] == item["title"]


def test_an_empty_edit_changes_nothing(client: TestClient, pat: User, item: Json) -> None:
    response = client.put(f"/api/portfolio/{item['id']}", json={}, headers=pat.headers)

    assert response.status_code == 200 and response.headers["etag"] == '"1"'


@pytest.mark.parametrize(
    "changes",
    [
        {"title": ""},
        {"image_url": "http://x.example"},
        {"project_url": "ftp://x"},
        {"tags": ["t"] * 21},
        {"freelancer_id": "someone"},
    ],
)
def test_edits_keep_the_shape_rules(client: TestClient, pat: User, item: Json, changes: Json) -> None:
    assert_error(
        client.put(f"/api/portfolio/{item['id']}", json=changes, headers=pat.headers), 422, "validation_failed"
    )


def test_nobody_but_the_owner_may_edit_or_remove(client: TestClient, item: Json) -> None:
    """Every signed-in user may read the item, so the others are refused (403), not told it is missing."""
    url = f"/api/portfolio/{item['id']}"
    for other in (register(client, "freelancer"), register(client, "client")):
        assert_error(client.put(url, json={"title": "Mine"}, headers=other.headers), 403, "forbidden")
        assert_error(client.delete(url, headers=other.headers), 403, "forbidden")
    assert client.get(url, headers=register(client, "freelancer").headers).json() == item


def test_the_owner_removes_an_item(client: TestClient, pat: User, item: Json) -> None:
    url = f"/api/portfolio/{item['id']}"

    response = client.delete(url, headers=pat.headers)

    assert response.status_code == 204 and response.content == b""
    assert response.headers["x-consistency-token"].isdigit()
    assert_error(client.get(url, headers=pat.headers), 404, "not_found")
    assert ids(client, pat) == []
    assert_error(client.delete(url, headers=pat.headers), 404, "not_found")
    assert_error(client.put(url, json={"title": "Back"}, headers=pat.headers), 404, "not_found")


def test_a_stale_if_match_is_412(client: TestClient, pat: User, item: Json) -> None:
    url = f"/api/portfolio/{item['id']}"
    assert client.put(url, json={"title": "v2"}, headers={**pat.headers, "If-Match": '"1"'}).status_code == 200

    assert_error(
        client.put(url, json={"title": "v3"}, headers={**pat.headers, "If-Match": '"1"'}), 412, "precondition_failed"
    )
    assert_error(client.delete(url, headers={**pat.headers, "If-Match": '"1"'}), 412, "precondition_failed")
    assert client.get(url, headers=pat.headers).json()["title"] == "v2"
    assert client.delete(url, headers={**pat.headers, "If-Match": '"2"'}).status_code == 204
