"""Who may call what: (anonymous, client, freelancer, admin) x every auth and users endpoint -> status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from starlette.testclient import TestClient

from core.clock import FakeClock
from core.ids import new_id
from core.settings import Settings
from tests.support.accounts import PASSWORD, make_admin, signup

CALLERS = ("anonymous", "client", "freelancer", "admin")
Json = dict[str, Any]


@dataclass(frozen=True)
class World:
    pairs: dict[str, Json]  # caller -> register/login response
    subject: Json  # a bystander account the calls act on


def build_world(client: TestClient) -> World:
    pairs = {
        "client": signup(client, "client", email="client@example.com"),
        "freelancer": signup(client, "freelancer", email="freelancer@example.com"),
        "admin": make_admin(client, email="admin@example.com"),
    }
    return World(pairs, signup(client, "freelancer", email="subject@example.com"))


def request_for(endpoint: str, world: World, caller: str) -> tuple[str, str, Json | None]:
    subject_id = world.subject["user"]["id"]
    own = world.pairs.get(caller, world.subject)  # logout: a signed-in caller ends a session of their own
    return {
        "register": (
            "POST",
            "/api/auth/register",
            {"email": f"new-{new_id()}@example.com", "password": PASSWORD, "name": "New", "role": "client"},
        ),
        "login": ("POST", "/api/auth/login", {"email": "subject@example.com", "password": PASSWORD}),
        "refresh": ("POST", "/api/auth/refresh", {"refresh_token": world.subject["refresh_token"]}),
        "logout": ("POST", "/api/auth/logout", {"refresh_token": own["refresh_token"]}),
        "get_me": ("GET", "/api/auth/me", None),
        "put_me": ("PUT", "/api/auth/me", {"bio": "updated"}),
        "list_users": ("GET", "/api/users", None),
        "get_user": ("GET", f"/api/users/{subject_id}", None),
        "create_user": (
            "POST",
            "/api/users",
            {"email": "made@example.com", "password": PASSWORD, "name": "Made", "role": "freelancer"},
        ),
        "patch_user": ("PATCH", f"/api/users/{subject_id}", {"is_active": False}),
    }[endpoint]


EXPECTED: dict[str, dict[str, int]] = {
    "register": dict.fromkeys(CALLERS, 201),
    "login": dict.fromkeys(CALLERS, 200),
    "refresh": dict.fromkeys(CALLERS, 200),
    "logout": {"anonymous": 401, "client": 204, "freelancer": 204, "admin": 204},
    "get_me": {"anonymous": 401, "client": 200, "freelancer": 200, "admin": 200},
    "put_me": {"anonymous": 401, "client": 200, "freelancer": 200, "admin": 200},
    "list_users": {"anonymous": 401, "client": 200, "freelancer": 200, "admin": 200},
    "get_user": {"anonymous": 401, "client": 200, "freelancer": 200, "admin": 200},
    "create_user": {"anonymous": 401, "client": 403, "freelancer": 403, "admin": 201},
    "patch_user": {"anonymous": 401, "client": 403, "freelancer": 403, "admin": 200},
}
ERROR_TYPES = {401: "unauthenticated", 403: "forbidden"}
CASES = [(caller, endpoint, statuses[caller]) for endpoint, statuses in EXPECTED.items() for caller in CALLERS]


@pytest.mark.parametrize(("caller", "endpoint", "expected"), CASES, ids=[f"{c}-{e}-{s}" for c, e, s in CASES])
def test_authorization_table(
    client: TestClient, settings: Settings, clock: FakeClock, caller: str, endpoint: str, expected: int
) -> None:
    world = build_world(client)
    method, path, body = request_for(endpoint, world, caller)
    headers = {} if caller == "anonymous" else {"Authorization": f"Bearer {world.pairs[caller]['access_token']}"}
    response = client.request(method, path, json=body, headers=headers)
    assert response.status_code == expected, response.text
    if expected in ERROR_TYPES:
        assert response.json()["error_type"] == ERROR_TYPES[expected]
        # a refused call changed nothing
        subject = client.get(
            f"/api/users/{world.subject['user']['id']}",
            headers={"Authorization": f"Bearer {world.pairs['admin']['access_token']}"},
        ).json()
        assert subject["is_active"] is True
        admin_list = client.get(
            "/api/users?limit=100", headers={"Authorization": f"Bearer {world.pairs['admin']['access_token']}"}
        ).json()
        assert "made@example.com" not in {u["email"] for u in admin_list["items"]}
        assert (
            client.post("/api/auth/refresh", json={"refresh_token": world.subject["refresh_token"]}).status_code == 200
        )
    elif endpoint in ("list_users", "get_user"):
        view = response.json()["items"][0] if endpoint == "list_users" else response.json()
        assert ("email" in view) is (caller == "admin")
