"""Text at the boundary: invisible characters refused in one-line fields, visible lengths, one e-mail form."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.support.accounts import PASSWORD, User, register
from tests.support.errors import assert_error
from tests.support.market import PROJECT

ZERO_WIDTH = "\u200b"
BIDI_OVERRIDE = "\u202e"


def fullwidth(text: str) -> str:
    """ASCII letters as their fullwidth forms (U+FF01..U+FF5E), which NFKC maps back."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def post_project(client: TestClient, user: User, **fields: Any) -> Any:
    return client.post("/api/projects", json={**PROJECT, **fields}, headers=user.headers)


def sign_up(client: TestClient, email: str, name: str = "Ann") -> Any:
    body = {"email": email, "password": PASSWORD, "name": name, "role": "client"}
    return client.post("/api/auth/register", json=body)


def test_a_title_of_ten_zero_width_characters_is_not_five_characters_long(client: TestClient) -> None:
    ann = register(client, "client", "Ann")
    error = assert_error(post_project(client, ann, title=ZERO_WIDTH * 10), 422, "validation_failed")
    assert error["errors"][0]["loc"] == ["body", "title"]
    description = assert_error(post_project(client, ann, description="a" + ZERO_WIDTH * 30), 422, "validation_failed")
    assert description["errors"][0]["loc"] == ["body", "description"]
    assert client.get("/api/projects", headers=ann.headers).json()["items"] == []


@pytest.mark.parametrize(
    "title",
    [
        f"Landing{ZERO_WIDTH}page",
        f"Landing page {BIDI_OVERRIDE}fdp.exe",
        "Landing\u2066 page\u2069",
        "Landing\u00ad page",  # soft hyphen
        "Landing\u2028page",  # line separator
    ],
)
def test_invisible_characters_are_refused_in_one_line_fields(client: TestClient, title: str) -> None:
    ann = register(client, "client", "Ann")
    error = assert_error(post_project(client, ann, title=title), 422, "validation_failed")
    assert "invisible" in error["errors"][0]["msg"]
    for field, value in (("name", f"Ann{ZERO_WIDTH}"), ("location", f"Berlin{BIDI_OVERRIDE}")):
        response = client.put("/api/auth/me", json={field: value}, headers=ann.headers)
        assert_error(response, 422, "validation_failed")
    assert_error(sign_up(client, "zed@example.com", name=f"Ze{ZERO_WIDTH}d"), 422, "validation_failed")


def test_fullwidth_letters_are_stored_in_their_plain_form(client: TestClient) -> None:
    ann = register(client, "client", "Ann")
    created = post_project(client, ann, title=fullwidth("Landing") + " page", skills=[fullwidth("html")])
    assert created.status_code == 201, created.text
    assert (created.json()["title"], created.json()["skills"]) == ("Landing page", ["html"])
    # free text keeps what was written (NFC only): a superscript stays a superscript
    description = "Area must be 20 m² or more, fully responsive."
    revised = client.put(
        f"/api/projects/{created.json()['id']}", json={"description": description}, headers=ann.headers
    )
    assert revised.json()["description"] == description


def test_an_address_in_fullwidth_letters_is_the_same_address(client: TestClient) -> None:
    assert sign_up(client, "admin@example.com").status_code == 201
    assert_error(sign_up(client, fullwidth("admin") + "@example.com"), 409, "email_taken")
    assert_error(sign_up(client, "ADMIN@EXAMPLE.COM"), 409, "email_taken")
    signed_in = client.post(
        "/api/auth/login", json={"email": fullwidth("ADMIN") + "@example.com", "password": PASSWORD}
    )
    assert signed_in.status_code == 200, signed_in.text


@pytest.mark.parametrize(
    "email", [f"ad{ZERO_WIDTH}min@example.com", "\u1d00dmin@example.com", f"admin{BIDI_OVERRIDE}@example.com"]
)
def test_addresses_with_invisible_or_lookalike_letters_are_refused(client: TestClient, email: str) -> None:
    error = assert_error(sign_up(client, email), 422, "validation_failed")
    assert error["errors"][0]["loc"] == ["body", "email"]
