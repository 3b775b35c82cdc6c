"""If-Match as RFC 9110 reads it: `*`, or a list of entity tags compared strongly; any match will do."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.support.accounts import User, register
from tests.support.errors import assert_error_with_headers
from tests.support.market import post_project


def put_title(client: TestClient, owner: User, project_id: str, if_match: str) -> tuple[int, str]:
    """PUT a new title with this If-Match; the status, and the title the project has afterwards."""
    url = f"/api/projects/{project_id}"
    response = client.put(url, json={"title": "A new title"}, headers={**owner.headers, "If-Match": if_match})
    if response.status_code != 200:
        assert_error_with_headers(response, response.status_code, "precondition_failed")
    return response.status_code, client.get(url, headers=owner.headers).json()["title"]


@pytest.fixture
def owner(client: TestClient) -> User:
    return register(client, "client", "Ann")


@pytest.mark.parametrize(
    "if_match",
    ['"999", "1"', '"1", "999"', '"1"', ' "998" ,"999",  "1" ', '"1",,', "*", 'W/"999", "1"', "1"],
)
def test_a_list_holding_the_current_tag_passes(client: TestClient, owner: User, if_match: str) -> None:
    project_id = post_project(client, owner)
    assert client.get(f"/api/projects/{project_id}", headers=owner.headers).headers["etag"] == '"1"'

    assert put_title(client, owner, project_id, if_match) == (200, "A new title")


@pytest.mark.parametrize(
    "if_match",
    [
        '"999", "998"',
        'W/"1"',  # weak tags never match under strong comparison
        '"999", W/"1"',
        '"1", garbage',  # not a list of entity tags: nothing matches
        '"1" "2"',
        '"1,2"',
        '"1, 2", "3"',
        '"1',
        "1, 2",
        '*, "1"',
        "",
        "garbage",
        '"banana"',
    ],
)
def test_a_list_without_the_current_tag_or_malformed_is_412(client: TestClient, owner: User, if_match: str) -> None:
    project_id = post_project(client, owner)

    status, title = put_title(client, owner, project_id, if_match)

    assert status == 412
    assert title == "Build a landing page"


def test_delete_takes_a_list_too(client: TestClient, owner: User) -> None:
    project_id = post_project(client, owner)
    url = f"/api/projects/{project_id}"

    assert_error_with_headers(
        client.delete(url, headers={**owner.headers, "If-Match": '"2", "3"'}), 412, "precondition_failed"
    )
    assert client.get(url, headers=owner.headers).status_code == 200
    assert client.delete(url, headers={**owner.headers, "If-Match": '"2", "1"'}).status_code == 204
