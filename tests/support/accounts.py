"""Accounts over HTTP: register, log in, and an admin written straight into the primary (as `create-admin` does)."""

from __future__ import annotations

from itertools import count
from typing import Any

import httpx
from starlette.testclient import TestClient

from commands.users import RegisterUser
from core.ids import new_id
from node.runtime import open_primary, run_command_sync
from queries.registry import projection

Json = dict[str, Any]
PASSWORD = "correct-horse-battery"
serial = count()  # one counter for the whole run: generated addresses never collide across modules


def unique_address(stem: str = "user") -> str:
    return f"{stem}{next(serial)}@example.com"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class User:
    """A signed-in account: its id, email and the `Authorization` header of its access token."""

    def __init__(self, body: Json) -> None:
        self.id: str = body["user"]["id"]
        self.email: str = body["user"]["email"]
        self.headers = bearer(body["access_token"])


def signup(
    client: TestClient,
    role: str = "client",
    *,
    email: str | None = None,
    name: str | None = None,
    password: str = PASSWORD,
) -> Json:
    """Registers over HTTP (201 or the test fails) and returns the answer: `user`, `access_token`, ...."""
    body = {"email": email or unique_address(), "password": password, "name": name or role.title(), "role": role}
    response = client.post("/api/auth/register", json=body)
    assert response.status_code == 201, response.text
    registered: Json = response.json()
    return registered


async def signup_async(
    client: httpx.AsyncClient,
    role: str = "client",
    *,
    email: str | None = None,
    name: str | None = None,
    password: str = PASSWORD,
) -> Json:
    """`signup` through an async client, for tests that race requests."""
    body = {"email": email or unique_address(), "password": password, "name": name or role.title(), "role": role}
    response = await client.post("/api/auth/register", json=body)
    assert response.status_code == 201, response.text
    registered: Json = response.json()
    return registered


def register(client: TestClient, role: str = "client", name: str | None = None, *, email: str | None = None) -> User:
    """A new signed-in account of `role`."""
    return User(signup(client, role, email=email, name=name))


def login(client: TestClient, email: str, password: str = PASSWORD) -> Json:
    """Logs in over HTTP (200 or the test fails) and returns the answer."""
    response = client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


def make_admin(client: TestClient, *, email: str | None = None, password: str = PASSWORD) -> Json:
    """An admin written straight into the app's primary (as `megilance create-admin` does), logged in over HTTP."""
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    email = email or unique_address("root")
    command = RegisterUser(
        user_id=new_id(),
        email=email,
        name="Root",
        role="admin",
        password_hash=runtime.passwords.hash(password),
        created_by="test",
    )
    conn = open_primary(runtime.settings)
    try:
        run_command_sync(conn, projection(), command, {"actor": "test"}, runtime.clock)
    finally:
        conn.close()
    return login(client, email, password)
