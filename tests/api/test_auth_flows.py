"""Accounts over HTTP: register, login, refresh, logout, /me, /api/users, admin changes, rate limits, audit."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from core.clock import FakeClock
from core.settings import Settings
from ops.cli import app as cli
from tests.conftest import make_settings
from tests.support.accounts import PASSWORD, bearer, login, make_admin, signup
from tests.support.errors import assert_error

# Every test here that opens the primary runs twice: on an embedded file and on a real libSQL server.
DATABASES = ("local", "remote")

ADMIN_PASSWORD = "admin-horse-battery"
PRIVATE_KEYS = {
    "id",
    "email",
    "name",
    "role",
    "is_active",
    "bio",
    "skills",
    "hourly_rate",
    "location",
    "profile_image_url",
    "wallet_address",
    "joined_at",
    "notifications",
}
PUBLIC_KEYS = PRIVATE_KEYS - {"email", "is_active", "notifications"}
PAIR_KEYS = {"user", "access_token", "refresh_token", "token_type", "expires_in"}
Json = dict[str, Any]


# -- helpers ---------------------------------------------------------------------------------


def cli_env(settings: Settings) -> dict[str, str]:
    return {
        "DATA_DIR": str(settings.data_dir),
        "DATABASE_URL": settings.database_url,
        "SECRET_KEY": settings.secret_key,
        "ENVIRONMENT": "test",
        "DB_SYNCHRONOUS": "NORMAL",
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_KIB": "1024",
        "REGION": "",
        "PRIMARY_REGION": "",
    }


@contextmanager
def running(
    settings: Settings, clock: FakeClock, peer: tuple[str, int] = ("testclient", 50000)
) -> Iterator[TestClient]:
    with TestClient(create_app(settings, clock), raise_server_exceptions=False, client=peer) as test_client:
        yield test_client


# -- register --------------------------------------------------------------------------------


def test_register_returns_a_token_pair_and_the_private_view(client: TestClient) -> None:
    response = client.post(
        "/api/auth/register",
        json={"email": "Ann.Smith@Example.COM", "password": PASSWORD, "name": "Ann Smith", "role": "freelancer"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == PAIR_KEYS
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 30 * 60
    user = body["user"]
    assert set(user) == PRIVATE_KEYS
    assert user["email"] == "Ann.Smith@Example.COM"  # stored as given
    assert user["name"] == "Ann Smith"
    assert user["role"] == "freelancer"
    assert user["is_active"] is True
    assert user["skills"] == []
    assert user["joined_at"] == "2026-11-23T10:00:00Z"
    assert response.headers["X-Consistency-Token"].isdigit()
    assert PASSWORD not in response.text
    me = client.get("/api/auth/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json() == user


@pytest.mark.parametrize("second", ["ann@example.com", "ANN@EXAMPLE.COM", "Ann@example.com", "  ann@Example.com "])
def test_register_same_email_in_any_case_is_409_email_taken(client: TestClient, second: str) -> None:
    signup(client, email="Ann@Example.com")
    response = client.post(
        "/api/auth/register", json={"email": second, "password": PASSWORD, "name": "Other", "role": "client"}
    )
    assert_error(response, 409, "email_taken")
    assert PASSWORD not in response.text


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"password": "x" * 7}, "password"),
        ({"password": "x" * 129}, "password"),
        ({"password": ""}, "password"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "n" * 101}, "name"),
        ({"name": "bad\x07name"}, "name"),
        ({"role": "admin"}, "role"),
        ({"role": "superuser"}, "role"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@b"}, "email"),
        ({"email": "x" * 250 + "@example.com"}, "email"),
        ({"password": 12345678}, "password"),
        ({"is_active": False}, "is_active"),
        ({"id": "chosen-id"}, "id"),
    ],
)
def test_register_rejects_invalid_input_with_422(client: TestClient, override: Json, field: str) -> None:
    body = {"email": "ann@example.com", "password": PASSWORD, "name": "Ann", "role": "client"} | override
    response = client.post("/api/auth/register", json=body)
    error = assert_error(response, 422, "validation_failed")
    assert any(field in err["loc"] for err in error["errors"]), error
    if isinstance(override.get("password"), str) and override["password"]:
        assert override["password"] not in response.text
    # nothing was created: the e-mail is still free
    signup(client, email="ann@example.com")


@pytest.mark.parametrize("missing", ["email", "password", "name", "role"])
def test_register_missing_field_is_422(client: TestClient, missing: str) -> None:
    body = {"email": "ann@example.com", "password": PASSWORD, "name": "Ann", "role": "client"}
    del body[missing]
    error = assert_error(client.post("/api/auth/register", json=body), 422, "validation_failed")
    assert any(missing in err["loc"] for err in error["errors"])


@pytest.mark.parametrize("password", ["p" * 8, "p" * 128, "é" * 8, "密" * 128, "pass word\x00!"])
def test_register_accepts_passwords_of_8_to_128_characters(client: TestClient, password: str) -> None:
    signup(client, email="ann@example.com", password=password)
    login(client, "ANN@example.com", password)


def test_register_name_of_100_characters_is_accepted(client: TestClient) -> None:
    assert signup(client, email="ann@example.com", name="n" * 100)["user"]["name"] == "n" * 100


def test_register_malformed_json_is_400_and_wrong_content_type_is_415(client: TestClient) -> None:
    assert_error(
        client.post("/api/auth/register", content=b"{not json", headers={"Content-Type": "application/json"}),
        400,
        "bad_request",
    )
    assert_error(
        client.post(
            "/api/auth/register", content=b"email=a@b.io", headers={"Content-Type": "application/x-www-form-urlencoded"}
        ),
        415,
        "unsupported_media_type",
    )
    assert_error(client.post("/api/auth/register", json=["ann@example.com"]), 422, "validation_failed")


# -- login -----------------------------------------------------------------------------------


def test_login_is_case_insensitive_and_returns_the_register_shape(client: TestClient) -> None:
    registered = signup(client, email="Ann@Example.com")
    response = client.post("/api/auth/login", json={"email": " ann@EXAMPLE.com", "password": PASSWORD})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == PAIR_KEYS
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 1800
    assert body["user"] == registered["user"]
    assert body["refresh_token"] != registered["refresh_token"]
    assert PASSWORD not in response.text
    assert client.get("/api/auth/me", headers=bearer(body["access_token"])).json()["id"] == registered["user"]["id"]


def test_login_wrong_password_and_unknown_email_answer_the_same(client: TestClient) -> None:
    signup(client, email="ann@example.com")
    wrong = client.post("/api/auth/login", json={"email": "ann@example.com", "password": "wrong-password"})
    unknown = client.post("/api/auth/login", json={"email": "nobody@example.com", "password": PASSWORD})
    assert_error(wrong, 401, "invalid_credentials")
    assert_error(unknown, 401, "invalid_credentials")
    assert wrong.json() == unknown.json()
    assert "wrong-password" not in wrong.text


def test_login_validation(client: TestClient) -> None:
    assert_error(client.post("/api/auth/login", json={"email": "ann@example.com"}), 422, "validation_failed")
    assert_error(
        client.post("/api/auth/login", json={"email": "a@example.com", "password": "x" * 129}), 422, "validation_failed"
    )
    assert_error(
        client.post("/api/auth/login", json={"email": "a@example.com", "password": PASSWORD, "role": "x"}),
        422,
        "validation_failed",
    )


# -- refresh and logout ----------------------------------------------------------------------


def test_refresh_rotates_and_a_spent_token_revokes_the_family(client: TestClient) -> None:
    first = signup(client, email="ann@example.com")
    response = client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert response.status_code == 200, response.text
    second = response.json()
    assert set(second) == PAIR_KEYS
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["user"]["id"] == first["user"]["id"]
    assert client.get("/api/auth/me", headers=bearer(second["access_token"])).status_code == 200

    assert_error(client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]}), 401, "token_invalid")
    # the successor belonged to the same family: it is revoked too
    assert_error(
        client.post("/api/auth/refresh", json={"refresh_token": second["refresh_token"]}), 401, "token_invalid"
    )


def test_refresh_validation(client: TestClient) -> None:
    assert_error(client.post("/api/auth/refresh", json={}), 422, "validation_failed")
    assert_error(client.post("/api/auth/refresh", json={"refresh_token": ""}), 422, "validation_failed")
    assert_error(client.post("/api/auth/refresh", json={"refresh_token": "garbage"}), 401, "token_invalid")


def logout(client: TestClient, refresh_token: str, access_token: str | None = None) -> Any:
    """POST /api/auth/logout with that refresh token, signed in with `access_token` (or not at all)."""
    headers = bearer(access_token) if access_token is not None else {}
    return client.post("/api/auth/logout", json={"refresh_token": refresh_token}, headers=headers)


def refresh_with(client: TestClient, refresh_token: str) -> Any:
    return client.post("/api/auth/refresh", json={"refresh_token": refresh_token})


def test_logout_revokes_only_that_family(client: TestClient) -> None:
    first = signup(client, email="ann@example.com")
    other = login(client, "ann@example.com")
    response = logout(client, first["refresh_token"], first["access_token"])
    assert response.status_code == 204
    assert response.content == b""
    assert_error(refresh_with(client, first["refresh_token"]), 401, "token_invalid")
    assert refresh_with(client, other["refresh_token"]).status_code == 200


def me_status(client: TestClient, access_token: str) -> int:
    status: int = client.get("/api/auth/me", headers=bearer(access_token)).status_code
    return status


def test_logout_ends_the_access_tokens_of_that_session_at_once_and_no_other(client: TestClient) -> None:
    first = signup(client, email="ann@example.com")
    rotated = refresh_with(client, first["refresh_token"]).json()  # the same session, a newer access token
    other = login(client, "ann@example.com")
    assert {me_status(client, t) for t in (first["access_token"], rotated["access_token"])} == {200}
    assert logout(client, rotated["refresh_token"], other["access_token"]).status_code == 204
    for token in (first["access_token"], rotated["access_token"]):
        body = assert_error(client.get("/api/auth/me", headers=bearer(token)), 401, "token_invalid")
        assert "sign in again" in body["detail"]
        assert_error(client.post("/api/projects", json={}, headers=bearer(token)), 401, "token_invalid")
    assert me_status(client, other["access_token"]) == 200
    assert me_status(client, login(client, "ann@example.com")["access_token"]) == 200  # a new session


def test_an_ended_session_stays_ended_after_a_restart(settings: Settings, clock: FakeClock) -> None:
    with TestClient(create_app(settings, clock)) as client:
        first = signup(client, email="ann@example.com")
        assert logout(client, first["refresh_token"], first["access_token"]).status_code == 204
    with TestClient(create_app(settings, clock)) as client:
        assert_error(client.get("/api/auth/me", headers=bearer(first["access_token"])), 401, "token_invalid")


def test_logout_after_rotation_revokes_the_successor(client: TestClient) -> None:
    first = signup(client, email="ann@example.com")
    second = refresh_with(client, first["refresh_token"]).json()
    response = logout(client, second["refresh_token"], second["access_token"])
    assert response.status_code == 204
    assert_error(refresh_with(client, second["refresh_token"]), 401, "token_invalid")


def test_logout_refuses_access_tokens_and_garbage(client: TestClient) -> None:
    pair = signup(client, email="ann@example.com")
    headers = bearer(pair["access_token"])
    for token in (pair["access_token"], "not.a.token"):
        assert_error(
            client.post("/api/auth/logout", json={"refresh_token": token}, headers=headers), 401, "token_invalid"
        )
    assert_error(
        client.post("/api/auth/logout", json={"refresh_token": pair["refresh_token"], "all": True}, headers=headers),
        422,
        "validation_failed",
    )


def test_logout_needs_a_bearer_token(client: TestClient) -> None:
    pair = signup(client, email="ann@example.com")
    assert_error(logout(client, pair["refresh_token"]), 401, "unauthenticated")
    assert refresh_with(client, pair["refresh_token"]).status_code == 200


def test_logout_with_someone_elses_refresh_token_is_refused_and_revokes_nothing(client: TestClient) -> None:
    ann = signup(client, email="ann@example.com")
    bob = signup(client, email="bob@example.com")
    response = logout(client, ann["refresh_token"], bob["access_token"])
    assert_error(response, 401, "token_invalid")
    assert refresh_with(client, ann["refresh_token"]).status_code == 200
    assert refresh_with(client, bob["refresh_token"]).status_code == 200


def test_logout_may_end_another_session_of_ones_own(client: TestClient) -> None:
    first = signup(client, email="ann@example.com")
    other = login(client, "ann@example.com")
    response = logout(client, other["refresh_token"], first["access_token"])
    assert response.status_code == 204
    assert_error(refresh_with(client, other["refresh_token"]), 401, "token_invalid")


# -- /me -------------------------------------------------------------------------------------


def test_get_me_gives_the_private_view_with_an_etag(client: TestClient) -> None:
    pair = signup(client, email="ann@example.com")
    response = client.get("/api/auth/me", headers=bearer(pair["access_token"]))
    assert response.status_code == 200
    assert set(response.json()) == PRIVATE_KEYS
    etag = response.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and etag.strip('"').isdigit()


def test_me_needs_a_bearer_token(client: TestClient) -> None:
    assert_error(client.get("/api/auth/me"), 401, "unauthenticated")
    assert_error(client.put("/api/auth/me", json={"name": "X"}), 401, "unauthenticated")


def test_put_me_updates_the_profile(client: TestClient) -> None:
    pair = signup(client, email="ann@example.com")
    headers = bearer(pair["access_token"])
    before = client.get("/api/auth/me", headers=headers)
    changes = {
        "name": "Ann B",
        "bio": "Writes tests",
        "skills": ["Python", "SQL"],
        "hourly_rate": 45,
        "location": "Lisbon",
        "profile_image_url": "https://img.example.com/a.png",
    }
    response = client.put("/api/auth/me", json=changes, headers=headers)
    assert response.status_code == 200, response.text
    user = response.json()
    assert set(user) == PRIVATE_KEYS
    assert {k: user[k] for k in changes} == changes | {"hourly_rate": "45.00"}
    assert user["email"] == "ann@example.com"
    assert response.headers["ETag"] != before.headers["ETag"]
    assert response.headers["X-Consistency-Token"].isdigit()
    again = client.get("/api/auth/me", headers=headers)
    assert again.json() == user
    assert again.headers["ETag"] == response.headers["ETag"]
    public = client.get(f"/api/users/{user['id']}", headers=headers).json()
    assert public["skills"] == ["Python", "SQL"]


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "http://img.example.com/a.png",
        "data:image/png;base64,iVBORw0KGgo=",
        "//img.example.com/a.png",
        "https://img.example.com/a b.png",
        "https://",
        "",
        "0123456789abcdef0123456789abcdef\n",
    ],
)
def test_put_me_profile_image_must_be_an_https_url_or_an_upload_id(client: TestClient, url: str) -> None:
    pair = signup(client, email="ann@example.com")
    headers = bearer(pair["access_token"])
    first = client.put("/api/auth/me", json={"profile_image_url": "https://img.example.com/a.png"}, headers=headers)
    assert first.status_code == 200, first.text
    etag = client.get("/api/auth/me", headers=headers).headers["ETag"]
    response = client.put("/api/auth/me", json={"profile_image_url": url, "bio": "x"}, headers=headers)
    error = assert_error(response, 422, "validation_failed")
    assert any("profile_image_url" in err["loc"] for err in error["errors"])
    me = client.get("/api/auth/me", headers=headers)
    assert me.headers["ETag"] == etag
    assert me.json()["profile_image_url"] == "https://img.example.com/a.png"


@pytest.mark.parametrize("field", ["role", "is_active", "email", "id", "wallet_address", "joined_at"])
def test_put_me_refuses_fields_one_may_not_set(client: TestClient, field: str) -> None:
    pair = signup(client, email="ann@example.com")
    headers = bearer(pair["access_token"])
    value: object = {"role": "admin", "is_active": True}.get(field, "x@example.com")
    error = assert_error(client.put("/api/auth/me", json={field: value}, headers=headers), 422, "validation_failed")
    assert any(field in err["loc"] for err in error["errors"])
    me = client.get("/api/auth/me", headers=headers).json()
    assert me["role"] == "client"
    assert me["email"] == "ann@example.com"


@pytest.mark.parametrize("field", ["name", "bio", "skills", "hourly_rate", "location", "profile_image_url"])
def test_put_me_with_an_explicit_null_never_fails_the_server(client: TestClient, field: str) -> None:
    pair = signup(client, email="ann@example.com")
    headers = bearer(pair["access_token"])
    response = client.put("/api/auth/me", json={field: None}, headers=headers)
    assert response.status_code in (200, 422), response.text
    me = client.get("/api/auth/me", headers=headers).json()
    assert isinstance(me["name"], str) and me["name"]
    assert isinstance(me["skills"], list)


def test_put_me_password_needs_current_password(client: TestClient) -> None:
    pair = signup(client, email="ann@example.com")
    headers = bearer(pair["access_token"])
    response = client.put("/api/auth/me", json={"password": "brand-new-password"}, headers=headers)
    assert_error(response, 422, "validation_failed")
    assert "brand-new-password" not in response.text
    login(client, "ann@example.com", PASSWORD)
    assert_error(
        client.post("/api/auth/login", json={"email": "ann@example.com", "password": "brand-new-password"}),
        401,
        "invalid_credentials",
    )


def test_put_me_current_password_without_a_new_one_is_refused(client: TestClient) -> None:
    """A client that meant to change the password but sent no new one is told so, not answered 200 for nothing."""
    pair = signup(client, email="ann@example.com")
    headers = bearer(pair["access_token"])
    response = client.put("/api/auth/me", json={"current_password": PASSWORD, "bio": "changed"}, headers=headers)
    assert_error(response, 422, "validation_failed")
    assert PASSWORD not in response.text
    assert client.get("/api/auth/me", headers=headers).json()["bio"] != "changed"


def test_put_me_password_with_a_wrong_current_password_is_refused(client: TestClient) -> None:
    pair = signup(client, email="ann@example.com")
    headers = bearer(pair["access_token"])
    etag = client.get("/api/auth/me", headers=headers).headers["ETag"]
    response = client.put(
        "/api/auth/me",
        json={"password": "brand-new-password", "current_password": "not-it-at-all", "bio": "changed"},
        headers=headers,
    )
    assert_error(response, 401, "invalid_credentials")
    assert "brand-new-password" not in response.text and "not-it-at-all" not in response.text
    me = client.get("/api/auth/me", headers=headers)
    assert me.headers["ETag"] == etag
    assert me.json()["bio"] is None
    assert client.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code == 200
    login(client, "ann@example.com", PASSWORD)


@pytest.mark.parametrize("new_password", ["short7!", "x" * 129])
def test_put_me_new_password_must_be_8_to_128(client: TestClient, new_password: str) -> None:
    pair = signup(client, email="ann@example.com")
    response = client.put(
        "/api/auth/me",
        json={"password": new_password, "current_password": PASSWORD},
        headers=bearer(pair["access_token"]),
    )
    assert_error(response, 422, "validation_failed")
    login(client, "ann@example.com", PASSWORD)


def test_put_me_changes_the_password(client: TestClient) -> None:
    pair = signup(client, email="ann@example.com")
    headers = bearer(pair["access_token"])
    response = client.put(
        "/api/auth/me", json={"password": "brand-new-password", "current_password": PASSWORD}, headers=headers
    )
    assert response.status_code == 200, response.text
    assert set(response.json()) == PRIVATE_KEYS
    assert "brand-new-password" not in response.text and PASSWORD not in response.text
    assert_error(
        client.post("/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD}),
        401,
        "invalid_credentials",
    )
    login(client, "ann@example.com", "brand-new-password")


def change_password(client: TestClient, access_token: str, new: str = "brand-new-password") -> None:
    response = client.put(
        "/api/auth/me", json={"password": new, "current_password": PASSWORD}, headers=bearer(access_token)
    )
    assert response.status_code == 200, response.text


def refreshes(client: TestClient, pair: Json) -> int:
    status: int = client.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code
    return status


def test_changing_the_password_ends_every_other_session(client: TestClient) -> None:
    a = signup(client, email="ann@example.com")
    b = login(client, "ann@example.com")
    bio = client.put("/api/auth/me", json={"bio": "no password here"}, headers=bearer(b["access_token"]))
    assert bio.status_code == 200
    # a profile edit ends no session; the pairs that refreshing gives belong to their sessions too
    a = client.post("/api/auth/refresh", json={"refresh_token": a["refresh_token"]}).json()
    b = client.post("/api/auth/refresh", json={"refresh_token": b["refresh_token"]}).json()
    change_password(client, a["access_token"])
    assert_error(client.post("/api/auth/refresh", json={"refresh_token": b["refresh_token"]}), 401, "token_invalid")
    assert_error(client.get("/api/auth/me", headers=bearer(b["access_token"])), 401, "token_invalid")
    assert me_status(client, a["access_token"]) == 200
    assert refreshes(client, a) == 200
    login(client, "ann@example.com", "brand-new-password")
    assert_error(
        client.post("/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD}),
        401,
        "invalid_credentials",
    )


def test_changing_the_password_from_a_login_session_keeps_that_one(client: TestClient) -> None:
    registered = signup(client, email="ann@example.com")
    signed_in = login(client, "ann@example.com")
    change_password(client, signed_in["access_token"])
    assert refreshes(client, registered) == 401
    assert refreshes(client, signed_in) == 200


def test_a_password_change_with_an_access_token_of_no_session_ends_them_all(
    client: TestClient, clock: FakeClock
) -> None:
    first = signup(client, email="ann@example.com")
    second = login(client, "ann@example.com")
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    sessionless, _ = runtime.tokens.issue(first["user"]["id"], "client", "access", clock.now())
    change_password(client, sessionless)
    assert refreshes(client, first) == 401
    assert refreshes(client, second) == 401
    assert {me_status(client, pair["access_token"]) for pair in (first, second)} == {401}


class HeldCheck:
    """The app's password service, except that its first `verify` waits for `release` once it has checked."""

    def __init__(self, inner: Any, rehash: bool) -> None:
        self.inner, self.rehash = inner, rehash
        self.entered, self.release = threading.Event(), threading.Event()
        self.threads = ThreadPoolExecutor(4)  # a held check must not hold every hashing thread of a small machine

    def verify(self, password_hash: str | None, password: str) -> bool:
        ok: bool = self.inner.verify(password_hash, password)
        if not self.entered.is_set():
            self.entered.set()
            self.release.wait(30)
        return ok

    def needs_rehash(self, password_hash: str) -> bool:
        return self.rehash

    def hash(self, password: str) -> str:
        result: str = self.inner.hash(password)
        return result


@asynccontextmanager
async def ann_registered(
    settings: Settings, clock: FakeClock
) -> AsyncIterator[tuple[Any, httpx.AsyncClient, dict[str, str]]]:
    """A running app with Ann registered: the app, a client of it, and Ann's bearer header."""
    app = create_app(settings, clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            body = {"email": "ann@example.com", "password": PASSWORD, "name": "Ann", "role": "client"}
            yield app, client, bearer((await client.post("/api/auth/register", json=body)).json()["access_token"])


Send = Callable[[], Coroutine[Any, Any, httpx.Response]]


async def raced_then_logins(
    app: Any, client: httpx.AsyncClient, racing: Send, then: Send, passwords: tuple[str, str], *, rehash: bool = False
) -> list[int]:
    """Send `racing` with its password check held once checked, then `then` (which must succeed), then release
    the check. Returns the raced request's status followed by the statuses of logins with each of `passwords`."""
    runtime = app.state.runtime
    held = runtime.passwords = HeldCheck(runtime.passwords, rehash)
    raced_task = asyncio.create_task(racing())
    assert await asyncio.to_thread(held.entered.wait, 30)
    assert (await then()).status_code == 200
    held.release.set()
    raced = await raced_task
    if raced.status_code != 200:
        assert_error(raced, 401, "invalid_credentials")
    statuses = [raced.status_code]
    for password in passwords:
        again = await client.post("/api/auth/login", json={"email": "ann@example.com", "password": password})
        statuses.append(again.status_code)
    return statuses


async def login_racing_a_password_change(settings: Settings, clock: FakeClock, rehash: bool) -> list[int]:
    """A login checks the old password; the password changes before the login commits. Statuses: login, then
    logins with the old and the new password afterwards."""
    async with ann_registered(settings, clock) as (app, client, headers):
        login_body = {"email": "ann@example.com", "password": PASSWORD}
        change = {"password": "brand-new-password", "current_password": PASSWORD}
        return await raced_then_logins(
            app,
            client,
            lambda: client.post("/api/auth/login", json=login_body),
            lambda: client.put("/api/auth/me", json=change, headers=headers),
            (PASSWORD, "brand-new-password"),
            rehash=rehash,
        )


@pytest.mark.parametrize("rehash", [False, True], ids=["same-hash", "rehashing"])
def test_a_login_with_the_old_password_that_commits_after_a_password_change_is_refused(
    settings: Settings, clock: FakeClock, rehash: bool
) -> None:
    assert asyncio.run(login_racing_a_password_change(settings, clock, rehash)) == [401, 401, 200]


async def two_password_changes_at_once(settings: Settings, clock: FakeClock) -> list[int]:
    """Two sessions change the password with the same current one; the first is held after its check."""
    async with ann_registered(settings, clock) as (app, client, first):
        login_body = {"email": "ann@example.com", "password": PASSWORD}
        second = bearer((await client.post("/api/auth/login", json=login_body)).json()["access_token"])
        change = {"password": "first-new-password", "current_password": PASSWORD}
        other = {"password": "second-new-password", "current_password": PASSWORD}
        return await raced_then_logins(
            app,
            client,
            lambda: client.put("/api/auth/me", json=change, headers=first),
            lambda: client.put("/api/auth/me", json=other, headers=second),
            ("first-new-password", "second-new-password"),
        )


def test_a_password_change_checked_against_a_password_changed_since_is_refused(
    settings: Settings, clock: FakeClock
) -> None:
    assert asyncio.run(two_password_changes_at_once(settings, clock)) == [401, 401, 200]


def test_put_me_with_a_stale_if_match_is_412(client: TestClient) -> None:
    pair = signup(client, email="ann@example.com")
    headers = bearer(pair["access_token"])
    etag = client.get("/api/auth/me", headers=headers).headers["ETag"]
    first = client.put("/api/auth/me", json={"bio": "one"}, headers=headers | {"If-Match": etag})
    assert first.status_code == 200, first.text
    assert first.headers["ETag"] != etag
    assert_error(
        client.put("/api/auth/me", json={"bio": "two"}, headers=headers | {"If-Match": etag}),
        412,
        "precondition_failed",
    )
    assert_error(
        client.put("/api/auth/me", json={"bio": "two"}, headers=headers | {"If-Match": '"banana"'}),
        412,
        "precondition_failed",
    )
    assert client.get("/api/auth/me", headers=headers).json()["bio"] == "one"
    current = client.put("/api/auth/me", json={"bio": "three"}, headers=headers | {"If-Match": first.headers["ETag"]})
    assert current.status_code == 200
    assert current.json()["bio"] == "three"


# -- /api/users ------------------------------------------------------------------------------


def test_users_list_and_get_show_public_views_to_members_and_private_ones_to_admins(
    client: TestClient, settings: Settings, clock: FakeClock
) -> None:
    ann = signup(client, email="ann@example.com", role="client", name="Ann Client")
    bob = signup(client, email="bob@example.com", role="freelancer", name="Bob Builder")
    admin = make_admin(client, email="root@example.com", password=ADMIN_PASSWORD)
    client.put("/api/auth/me", json={"skills": ["Rust"]}, headers=bearer(bob["access_token"]))

    listed = client.get("/api/users", headers=bearer(ann["access_token"]))
    assert listed.status_code == 200
    body = listed.json()
    assert set(body) == {"items", "next_cursor"}
    assert body["next_cursor"] is None
    assert len(body["items"]) == 3
    assert all(set(item) == PUBLIC_KEYS for item in body["items"])

    admin_view = client.get("/api/users", headers=bearer(admin["access_token"])).json()
    assert all(set(item) == PRIVATE_KEYS for item in admin_view["items"])
    assert {item["email"] for item in admin_view["items"]} == {"ann@example.com", "bob@example.com", "root@example.com"}

    def ids(query: str) -> set[str]:
        response = client.get(f"/api/users?{query}", headers=bearer(ann["access_token"]))
        assert response.status_code == 200, response.text
        return {item["id"] for item in response.json()["items"]}

    assert ids("role=freelancer") == {bob["user"]["id"]}
    assert ids("skill=rust") == {bob["user"]["id"]}
    assert ids("q=Builder") == {bob["user"]["id"]}
    assert ids("q=nobody") == set()

    page = client.get("/api/users?limit=2", headers=bearer(ann["access_token"])).json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = client.get(f"/api/users?limit=2&cursor={page['next_cursor']}", headers=bearer(ann["access_token"])).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    assert {i["id"] for i in page["items"] + rest["items"]} == ids("")

    for bad in ("limit=0", "limit=101", "role=owner", "cursor=%%%", "sort=name"):
        assert_error(client.get(f"/api/users?{bad}", headers=bearer(ann["access_token"])), 422, "validation_failed")

    one = client.get(f"/api/users/{bob['user']['id']}", headers=bearer(ann["access_token"]))
    assert one.status_code == 200
    assert set(one.json()) == PUBLIC_KEYS
    assert one.headers["ETag"].strip('"').isdigit()
    as_admin = client.get(f"/api/users/{bob['user']['id']}", headers=bearer(admin["access_token"])).json()
    assert as_admin["email"] == "bob@example.com" and as_admin["is_active"] is True
    assert_error(client.get("/api/users/does-not-exist", headers=bearer(ann["access_token"])), 404, "not_found")


def test_admin_creates_accounts_of_any_role(client: TestClient, settings: Settings, clock: FakeClock) -> None:
    admin = make_admin(client, email="root@example.com", password=ADMIN_PASSWORD)
    headers = bearer(admin["access_token"])
    response = client.post(
        "/api/users",
        json={"email": "Second.Admin@Example.com", "password": PASSWORD, "name": "Second", "role": "admin"},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    user = response.json()
    assert set(user) == PRIVATE_KEYS
    assert user["role"] == "admin" and user["email"] == "Second.Admin@Example.com" and user["is_active"] is True
    assert response.headers["ETag"].strip('"').isdigit()
    assert PASSWORD not in response.text
    signed_in = login(client, "second.admin@example.com")
    assert signed_in["user"]["role"] == "admin"

    duplicate = client.post(
        "/api/users",
        json={"email": "SECOND.ADMIN@example.com", "password": PASSWORD, "name": "Dup", "role": "client"},
        headers=headers,
    )
    assert_error(duplicate, 409, "email_taken")
    for bad in ({"password": "short"}, {"role": "owner"}, {"name": ""}, {"is_active": False}):
        body = {"email": "c@example.com", "password": PASSWORD, "name": "C", "role": "client"} | bad
        assert_error(client.post("/api/users", json=body, headers=headers), 422, "validation_failed")


def test_deactivation_stops_tokens_and_revokes_refresh(
    client: TestClient, settings: Settings, clock: FakeClock
) -> None:
    admin = make_admin(client, email="root@example.com", password=ADMIN_PASSWORD)
    ann = signup(client, email="ann@example.com")
    uid = ann["user"]["id"]
    assert client.get("/api/auth/me", headers=bearer(ann["access_token"])).status_code == 200

    response = client.patch(f"/api/users/{uid}", json={"is_active": False}, headers=bearer(admin["access_token"]))
    assert response.status_code == 200, response.text
    assert set(response.json()) == PRIVATE_KEYS
    assert response.json()["is_active"] is False
    assert response.headers["ETag"].strip('"').isdigit()

    assert_error(client.get("/api/auth/me", headers=bearer(ann["access_token"])), 401, "token_invalid")
    assert_error(client.post("/api/auth/refresh", json={"refresh_token": ann["refresh_token"]}), 401, "token_invalid")
    assert_error(
        client.post("/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD}),
        401,
        "invalid_credentials",
    )


def test_a_login_that_commits_after_a_deactivation_is_refused_like_any_other(
    client: TestClient, settings: Settings, clock: FakeClock
) -> None:
    admin = make_admin(client, email="root@example.com", password=ADMIN_PASSWORD)
    uid = signup(client, email="ann@example.com")["user"]["id"]
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    held = runtime.passwords = HeldCheck(runtime.passwords, rehash=False)
    answers: list[Any] = []
    racing = threading.Thread(
        target=lambda: answers.append(
            client.post("/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD})
        )
    )
    racing.start()
    assert held.entered.wait(30)
    deactivated = client.patch(f"/api/users/{uid}", json={"is_active": False}, headers=bearer(admin["access_token"]))
    assert deactivated.status_code == 200, deactivated.text
    held.release.set()
    racing.join(30)
    assert_error(answers[0], 401, "invalid_credentials")


def test_role_change_stops_tokens_and_revokes_refresh(client: TestClient, settings: Settings, clock: FakeClock) -> None:
    admin = make_admin(client, email="root@example.com", password=ADMIN_PASSWORD)
    ann = signup(client, email="ann@example.com")
    uid = ann["user"]["id"]
    response = client.patch(f"/api/users/{uid}", json={"role": "freelancer"}, headers=bearer(admin["access_token"]))
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "freelancer"

    assert_error(client.get("/api/auth/me", headers=bearer(ann["access_token"])), 401, "token_invalid")
    assert_error(client.post("/api/auth/refresh", json={"refresh_token": ann["refresh_token"]}), 401, "token_invalid")
    fresh = login(client, "ann@example.com")
    assert fresh["user"]["role"] == "freelancer"
    assert jwt.decode(fresh["access_token"], options={"verify_signature": False})["role"] == "freelancer"
    assert client.get("/api/auth/me", headers=bearer(fresh["access_token"])).status_code == 200


def test_tokens_from_before_a_deactivation_stay_dead_after_reactivation(
    client: TestClient, settings: Settings, clock: FakeClock
) -> None:
    admin = make_admin(client, email="root@example.com", password=ADMIN_PASSWORD)
    ann = signup(client, email="ann@example.com")
    uid, headers = ann["user"]["id"], bearer(admin["access_token"])
    assert client.patch(f"/api/users/{uid}", json={"is_active": False}, headers=headers).status_code == 200
    assert client.patch(f"/api/users/{uid}", json={"is_active": True}, headers=headers).status_code == 200
    login(client, "ann@example.com")  # the account works again, with new tokens
    assert_error(client.get("/api/auth/me", headers=bearer(ann["access_token"])), 401, "token_invalid")


def test_tokens_from_before_a_role_change_stay_dead_when_the_role_is_changed_back(
    client: TestClient, settings: Settings, clock: FakeClock
) -> None:
    admin = make_admin(client, email="root@example.com", password=ADMIN_PASSWORD)
    ann = signup(client, email="ann@example.com")
    uid, headers = ann["user"]["id"], bearer(admin["access_token"])
    assert client.patch(f"/api/users/{uid}", json={"role": "freelancer"}, headers=headers).status_code == 200
    assert client.patch(f"/api/users/{uid}", json={"role": "client"}, headers=headers).status_code == 200
    assert_error(client.get("/api/auth/me", headers=bearer(ann["access_token"])), 401, "token_invalid")


def test_revocations_survive_a_restart(tmp_path: Path, clock: FakeClock) -> None:
    settings = make_settings(tmp_path)
    with running(settings, clock) as client:
        admin = make_admin(client, email="root@example.com", password=ADMIN_PASSWORD)
        ann = signup(client, email="ann@example.com")
        bob = signup(client, email="bob@example.com")
        headers = bearer(admin["access_token"])
        assert (
            client.patch(f"/api/users/{ann['user']['id']}", json={"is_active": False}, headers=headers).status_code
            == 200
        )
        assert (
            client.patch(f"/api/users/{bob['user']['id']}", json={"role": "freelancer"}, headers=headers).status_code
            == 200
        )
    with running(settings, clock) as client:  # a new process: the in-memory session state is rebuilt from the store
        assert_error(client.get("/api/auth/me", headers=bearer(ann["access_token"])), 401, "token_invalid")
        assert_error(client.get("/api/auth/me", headers=bearer(bob["access_token"])), 401, "token_invalid")
        assert_error(
            client.post("/api/auth/refresh", json={"refresh_token": bob["refresh_token"]}), 401, "token_invalid"
        )
        fresh = login(client, "bob@example.com")
        assert client.get("/api/auth/me", headers=bearer(fresh["access_token"])).json()["role"] == "freelancer"


def test_patch_user_errors(client: TestClient, settings: Settings, clock: FakeClock) -> None:
    admin = make_admin(client, email="root@example.com", password=ADMIN_PASSWORD)
    headers = bearer(admin["access_token"])
    ann = signup(client, email="ann@example.com")
    uid = ann["user"]["id"]
    assert_error(client.patch("/api/users/nope", json={"is_active": False}, headers=headers), 404, "not_found")
    assert_error(client.patch(f"/api/users/{uid}", json={"name": "X"}, headers=headers), 422, "validation_failed")
    assert_error(client.patch(f"/api/users/{uid}", json={"role": "owner"}, headers=headers), 422, "validation_failed")
    etag = client.get(f"/api/users/{uid}", headers=headers).headers["ETag"]
    assert (
        client.patch(f"/api/users/{uid}", json={"role": "freelancer"}, headers=headers | {"If-Match": etag}).status_code
        == 200
    )
    assert_error(
        client.patch(f"/api/users/{uid}", json={"role": "client"}, headers=headers | {"If-Match": etag}),
        412,
        "precondition_failed",
    )
    # an admin cannot lock themselves out
    admin_id = admin["user"]["id"]
    assert_error(
        client.patch(f"/api/users/{admin_id}", json={"is_active": False}, headers=headers), 409, "invalid_state"
    )
    assert_error(client.patch(f"/api/users/{admin_id}", json={"role": "client"}, headers=headers), 409, "invalid_state")
    # members cannot use it, even on themselves
    assert_error(
        client.patch(f"/api/users/{uid}", json={"role": "admin"}, headers=bearer(ann["access_token"])),
        401,
        "token_invalid",
    )  # ann's token died with the role change above
    ann_again = login(client, "ann@example.com")
    assert_error(
        client.patch(f"/api/users/{uid}", json={"role": "admin"}, headers=bearer(ann_again["access_token"])),
        403,
        "forbidden",
    )
    assert client.get("/api/auth/me", headers=bearer(ann_again["access_token"])).json()["role"] == "freelancer"


def test_nobody_can_make_themselves_admin(client: TestClient) -> None:
    assert_error(
        client.post(
            "/api/auth/register",
            json={"email": "eve@example.com", "password": PASSWORD, "name": "Eve", "role": "admin"},
        ),
        422,
        "validation_failed",
    )
    eve = signup(client, email="eve@example.com")
    headers = bearer(eve["access_token"])
    assert_error(client.put("/api/auth/me", json={"role": "admin"}, headers=headers), 422, "validation_failed")
    assert_error(client.put("/api/auth/me", json={"is_active": True}, headers=headers), 422, "validation_failed")
    assert_error(
        client.post(
            "/api/users",
            json={"email": "eve2@example.com", "password": PASSWORD, "name": "Eve", "role": "admin"},
            headers=headers,
        ),
        403,
        "forbidden",
    )
    assert_error(
        client.patch(f"/api/users/{eve['user']['id']}", json={"role": "admin"}, headers=headers), 403, "forbidden"
    )
    assert client.get("/api/auth/me", headers=headers).json()["role"] == "client"


# -- the CLI: create-admin and audit ---------------------------------------------------------


def test_create_admin_cli_makes_an_admin_the_app_sees(client: TestClient, settings: Settings) -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli,
        ["create-admin", "--email", "Ops@Example.com", "--name", "Ops", "--password", ADMIN_PASSWORD],
        env=cli_env(settings),
    )
    assert result.exit_code == 0, result.output
    assert "admin created:" in result.output
    assert ADMIN_PASSWORD not in result.output
    admin = login(client, "ops@example.com", ADMIN_PASSWORD)
    assert admin["user"]["role"] == "admin"
    assert (
        client.post(
            "/api/users",
            json={"email": "c@example.com", "password": PASSWORD, "name": "C", "role": "client"},
            headers=bearer(admin["access_token"]),
        ).status_code
        == 201
    )

    again = runner.invoke(
        cli,
        ["create-admin", "--email", "OPS@example.com", "--name", "Ops", "--password", ADMIN_PASSWORD],
        env=cli_env(settings),
    )
    assert again.exit_code == 1
    assert "email_taken" in again.output
    short = runner.invoke(
        cli, ["create-admin", "--email", "x@example.com", "--name", "X", "--password", "short"], env=cli_env(settings)
    )
    assert short.exit_code == 2


def test_an_account_created_by_the_cli_shows_up_in_the_running_apps_lists(
    client: TestClient, settings: Settings, clock: FakeClock
) -> None:
    admin = make_admin(client, email="root@example.com", password=ADMIN_PASSWORD)
    headers = bearer(admin["access_token"])
    before = client.get("/api/users", headers=headers)
    assert before.status_code == 200
    assert len(before.json()["items"]) == 1
    result = CliRunner().invoke(
        cli,
        ["create-admin", "--email", "ops@example.com", "--name", "Ops", "--password", ADMIN_PASSWORD],
        env=cli_env(settings),
    )
    assert result.exit_code == 0, result.output
    created, token = result.output.strip().splitlines()[-2:]
    new_id_ = created.rsplit(" ", 1)[-1]
    position = token.rsplit(" ", 1)[-1]
    # No write went through the app since; the CLI's consistency token makes the app look past its copy.
    headers = {**headers, "X-Consistency-Token": position}
    after = client.get("/api/users", headers=headers)
    assert after.status_code == 200
    assert new_id_ in {u["id"] for u in after.json()["items"]}, after.json()
    one = client.get(f"/api/users/{new_id_}", headers=headers)
    assert one.status_code == 200, one.text


def test_audit_lists_logins_failures_reuse_role_change_and_deactivation(
    client: TestClient, settings: Settings, clock: FakeClock
) -> None:
    admin = make_admin(client, email="root@example.com", password=ADMIN_PASSWORD)
    ann = signup(client, email="ann@example.com")
    uid = ann["user"]["id"]
    login(client, "ann@example.com")
    assert (
        client.post("/api/auth/login", json={"email": "ann@example.com", "password": "wrong-password-1"}).status_code
        == 401
    )
    assert client.post("/api/auth/refresh", json={"refresh_token": ann["refresh_token"]}).status_code == 200
    assert client.post("/api/auth/refresh", json={"refresh_token": ann["refresh_token"]}).status_code == 401
    headers = bearer(admin["access_token"])
    assert client.patch(f"/api/users/{uid}", json={"role": "freelancer"}, headers=headers).status_code == 200
    assert client.patch(f"/api/users/{uid}", json={"is_active": False}, headers=headers).status_code == 200

    result = CliRunner().invoke(cli, ["audit", "--user", uid], env=cli_env(settings))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()

    def having(event_type: str) -> list[str]:
        return [line for line in lines if f" {event_type} " in line]

    assert len(having("SessionOpened")) == 2  # register and login
    assert len(having("LoginFailed")) == 1
    assert len(having("RefreshTokenReused")) == 1
    assert any('"reason":"reuse"' in line for line in having("SessionRevoked"))
    role_changes = having("UserRoleChanged")
    assert len(role_changes) == 1
    assert '"role":"freelancer"' in role_changes[0] and '"previous_role":"client"' in role_changes[0]
    assert f"actor={admin['user']['id']}" in role_changes[0]
    assert len(having("UserDeactivated")) == 1
    for secret in ("wrong-password-1", PASSWORD, ann["refresh_token"], ann["access_token"]):
        assert secret not in result.output
    # another account's trail does not include ann's events
    other = CliRunner().invoke(cli, ["audit", "--user", admin["user"]["id"]], env=cli_env(settings))
    assert other.exit_code == 0
    assert "LoginFailed" not in other.output


# -- rate limits -----------------------------------------------------------------------------


def test_five_failed_logins_per_email_then_429_with_retry_after(tmp_path: Path, clock: FakeClock) -> None:
    settings = make_settings(tmp_path, RATE_LIMIT_ENABLED=True, RATE_LIMIT_AUTH_PER_MINUTE=1000)
    with running(settings, clock) as client:
        signup(client, email="ann@example.com")
        signup(client, email="bob@example.com")
        for attempt in range(5):
            email = "ann@example.com" if attempt % 2 else "ANN@Example.com"  # one counter, whatever the case
            assert_error(
                client.post("/api/auth/login", json={"email": email, "password": f"wrong-{attempt}-xx"}),
                401,
                "invalid_credentials",
            )
        blocked = client.post("/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD})
        assert_error(blocked, 429, "rate_limited")
        retry_after = int(blocked.headers["Retry-After"])
        assert 1 <= retry_after <= 15 * 60
        # another account from the same address is not affected
        login(client, "bob@example.com")


def test_failures_from_one_address_never_keep_the_owner_out(tmp_path: Path, clock: FakeClock) -> None:
    settings = make_settings(
        tmp_path, RATE_LIMIT_ENABLED=True, RATE_LIMIT_AUTH_PER_MINUTE=1000, TRUSTED_PROXIES="127.0.0.1/32"
    )
    with running(settings, clock, peer=("127.0.0.1", 40000)) as client:
        signup(client, email="ann@example.com")
        stranger, owner = {"X-Forwarded-For": "198.51.100.7"}, {"X-Forwarded-For": "203.0.113.9"}
        for attempt in range(5):
            wrong = {"email": "ann@example.com", "password": f"wrong-{attempt}-xx"}
            assert_error(client.post("/api/auth/login", json=wrong, headers=stranger), 401, "invalid_credentials")
        right = {"email": "ann@example.com", "password": PASSWORD}
        assert client.post("/api/auth/login", json=right, headers=owner).status_code == 200
        # the stranger's address stays limited, even with the right password
        assert_error(client.post("/api/auth/login", json=right, headers=stranger), 429, "rate_limited")


async def wrong_logins_at_once(settings: Settings, clock: FakeClock, email: str, attempts: int) -> list[int]:
    """Register `email`, then send `attempts` logins with wrong passwords all at once; their statuses."""
    app = create_app(settings, clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            body = {"email": email, "password": PASSWORD, "name": "Ann", "role": "client"}
            assert (await client.post("/api/auth/register", json=body)).status_code == 201
            responses = await asyncio.gather(
                *(
                    client.post("/api/auth/login", json={"email": email, "password": f"wrong-{n}-xx"})
                    for n in range(attempts)
                )
            )
    for response in responses:
        assert response.json()["error_type"] in {"invalid_credentials", "rate_limited"}, response.text
    return [response.status_code for response in responses]


def test_failed_logins_sent_at_once_get_no_more_than_five_tries(tmp_path: Path, clock: FakeClock) -> None:
    settings = make_settings(tmp_path, RATE_LIMIT_ENABLED=True, RATE_LIMIT_AUTH_PER_MINUTE=1000)
    statuses = asyncio.run(wrong_logins_at_once(settings, clock, "ann@example.com", 12))
    assert sorted(statuses) == [401] * 5 + [429] * 7


def test_guessing_the_current_password_on_put_me_counts_as_failed_logins(tmp_path: Path, clock: FakeClock) -> None:
    settings = make_settings(tmp_path, RATE_LIMIT_ENABLED=True, RATE_LIMIT_AUTH_PER_MINUTE=1000)
    with running(settings, clock) as client:
        headers = bearer(signup(client, email="ann@example.com")["access_token"])
        for attempt in range(5):
            guess = {"password": "brand-new-password", "current_password": f"guess-{attempt}-xx"}
            assert_error(client.put("/api/auth/me", json=guess, headers=headers), 401, "invalid_credentials")
        right = {"password": "brand-new-password", "current_password": PASSWORD}
        blocked = assert_error(client.put("/api/auth/me", json=right, headers=headers), 429, "rate_limited")
        assert blocked["detail"]
        assert_error(
            client.post("/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD}), 429, "rate_limited"
        )
        # a profile edit without a password is not a sign-in attempt
        assert client.put("/api/auth/me", json={"bio": "still here"}, headers=headers).status_code == 200
    with running(settings, clock) as client:
        login(client, "ann@example.com")  # the password never changed


def test_unknown_emails_are_limited_too(tmp_path: Path, clock: FakeClock) -> None:
    settings = make_settings(tmp_path, RATE_LIMIT_ENABLED=True, RATE_LIMIT_AUTH_PER_MINUTE=1000)
    with running(settings, clock) as client:
        for _ in range(5):
            assert (
                client.post("/api/auth/login", json={"email": "ghost@example.com", "password": PASSWORD}).status_code
                == 401
            )
        assert_error(
            client.post("/api/auth/login", json={"email": "ghost@example.com", "password": PASSWORD}),
            429,
            "rate_limited",
        )


def test_auth_requests_per_ip_are_limited(tmp_path: Path, clock: FakeClock) -> None:
    settings = make_settings(tmp_path, RATE_LIMIT_ENABLED=True, RATE_LIMIT_AUTH_PER_MINUTE=5)
    with running(settings, clock) as client:
        pair = signup(client, email="ann@example.com")  # 1
        login(client, "ann@example.com")  # 2
        assert client.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code == 200  # 3
        assert (
            client.post("/api/auth/login", json={"email": "x@example.com", "password": PASSWORD}).status_code == 401
        )  # 4
        signup(client, email="bob@example.com")  # 5
        blocked = client.post("/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD})
        assert_error(blocked, 429, "rate_limited")
        assert 1 <= int(blocked.headers["Retry-After"]) <= 60
        assert_error(
            client.post(
                "/api/auth/register",
                json={"email": "c@example.com", "password": PASSWORD, "name": "C", "role": "client"},
            ),
            429,
            "rate_limited",
        )
        # signed-in reads are not auth requests
        assert client.get("/api/auth/me", headers=bearer(pair["access_token"])).status_code == 200


def test_forged_forwarding_headers_do_not_bypass_the_ip_limit(tmp_path: Path, clock: FakeClock) -> None:
    """TestClient's peer is the string "testclient": never an IP, so never a trusted proxy."""
    settings = make_settings(
        tmp_path, RATE_LIMIT_ENABLED=True, RATE_LIMIT_AUTH_PER_MINUTE=3, TRUSTED_PROXIES="127.0.0.1/32,10.0.0.0/8"
    )
    with running(settings, clock) as client:
        for n in range(3):
            forged = {"X-Forwarded-For": f"198.51.100.{n}", "Fly-Client-IP": f"203.0.113.{n}"}
            response = client.post(
                "/api/auth/login", json={"email": f"u{n}@example.com", "password": PASSWORD}, headers=forged
            )
            assert response.status_code == 401
        forged = {"X-Forwarded-For": "192.0.2.77", "Fly-Client-IP": "192.0.2.78"}
        assert_error(
            client.post("/api/auth/login", json={"email": "u9@example.com", "password": PASSWORD}, headers=forged),
            429,
            "rate_limited",
        )


def test_untrusted_ip_peer_cannot_spoof_its_address(tmp_path: Path, clock: FakeClock) -> None:
    settings = make_settings(
        tmp_path, RATE_LIMIT_ENABLED=True, RATE_LIMIT_AUTH_PER_MINUTE=2, TRUSTED_PROXIES="127.0.0.1/32"
    )
    with running(settings, clock, peer=("192.0.2.10", 40000)) as client:
        for n in range(2):
            assert (
                client.post(
                    "/api/auth/login",
                    json={"email": f"u{n}@example.com", "password": PASSWORD},
                    headers={"X-Forwarded-For": f"198.51.100.{n}"},
                ).status_code
                == 401
            )
        assert_error(
            client.post(
                "/api/auth/login",
                json={"email": "u3@example.com", "password": PASSWORD},
                headers={"X-Forwarded-For": "198.51.100.99", "Fly-Client-IP": "198.51.100.98"},
            ),
            429,
            "rate_limited",
        )


def test_a_trusted_proxy_passes_the_client_address_through(tmp_path: Path, clock: FakeClock) -> None:
    settings = make_settings(
        tmp_path, RATE_LIMIT_ENABLED=True, RATE_LIMIT_AUTH_PER_MINUTE=2, TRUSTED_PROXIES="127.0.0.1/32"
    )
    with running(settings, clock, peer=("127.0.0.1", 40000)) as client:

        def attempt(headers: dict[str, str]) -> int:
            response = client.post(
                "/api/auth/login", json={"email": "u@example.com", "password": PASSWORD}, headers=headers
            )
            status: int = response.status_code
            return status

        real = {"X-Forwarded-For": "203.0.113.5"}
        assert attempt(real) == 401
        # a client-supplied hop in front of the proxy's own entry changes nothing: the last untrusted hop counts
        assert attempt({"X-Forwarded-For": "198.51.100.1, 203.0.113.5"}) == 401
        assert attempt(real) == 429
        assert attempt({"X-Forwarded-For": "198.51.100.2, 203.0.113.5"}) == 429
        # a different client behind the same proxy has its own window
        assert attempt({"X-Forwarded-For": "203.0.113.6"}) == 401
        assert attempt({"Fly-Client-IP": "203.0.113.7"}) == 401
