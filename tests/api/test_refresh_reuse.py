"""Refresh-token rotation: reuse detection revokes the family, and a race between two refreshes has one winner."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import jwt
import orjson
from starlette.testclient import TestClient

from api.app import create_app
from core.clock import FakeClock
from core.settings import Settings
from node.runtime import open_primary
from tests.support.accounts import PASSWORD, signup

Json = dict[str, Any]


def refresh(client: TestClient, token: str) -> httpx.Response:
    response: httpx.Response = client.post("/api/auth/refresh", json={"refresh_token": token})
    return response


def family_of(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["fam"])


def family_rows(settings: Settings, family: str) -> list[tuple[Any, ...]]:
    conn = open_primary(settings)
    try:
        rows = conn.execute(
            "SELECT jti, spent_at, revoked_at FROM refresh_tokens WHERE family_id = ?", (family,)
        ).fetchall()
    finally:
        conn.close()
    return [tuple(row) for row in rows]


def events_of(settings: Settings, stream_id: str) -> list[tuple[str, Json]]:
    conn = open_primary(settings)
    try:
        rows = conn.execute(
            "SELECT type, data FROM events WHERE stream_id = ? ORDER BY position", (stream_id,)
        ).fetchall()
    finally:
        conn.close()
    return [(row[0], orjson.loads(row[1])) for row in rows]


def test_a_spent_refresh_token_revokes_its_whole_family(client: TestClient, settings: Settings) -> None:
    first = signup(client, email="ann@example.com")
    other_session = client.post("/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD}).json()
    second = refresh(client, first["refresh_token"]).json()
    third_response = refresh(client, second["refresh_token"])
    assert third_response.status_code == 200
    third = third_response.json()
    family = family_of(first["refresh_token"])
    assert family_of(second["refresh_token"]) == family_of(third["refresh_token"]) == family

    reused = refresh(client, first["refresh_token"])
    assert reused.status_code == 401
    assert reused.json()["error_type"] == "token_invalid"
    for token in (third["refresh_token"], second["refresh_token"], first["refresh_token"]):
        response = refresh(client, token)
        assert response.status_code == 401, response.text
        assert response.json()["error_type"] == "token_invalid"

    rows = family_rows(settings, family)
    assert len(rows) == 3
    assert all(revoked_at is not None for _, _, revoked_at in rows)
    types = [event_type for event_type, _ in events_of(settings, family)]
    assert types == ["SessionOpened", "SessionRevoked", "RefreshTokenReused"]
    revoked = [data for event_type, data in events_of(settings, family) if event_type == "SessionRevoked"]
    assert revoked[0]["reason"] == "reuse"
    assert revoked[0]["user_id"] == first["user"]["id"]

    # the user's other session is a different family and keeps working
    assert refresh(client, other_session["refresh_token"]).status_code == 200


def test_reuse_ends_the_sessions_access_tokens_too(client: TestClient) -> None:
    """Whoever holds the stolen token's successor (thief or owner) is signed out: both must sign in again."""
    first = signup(client, email="ann@example.com")
    second = refresh(client, first["refresh_token"]).json()
    me = client.get("/api/auth/me", headers={"Authorization": f"Bearer {second['access_token']}"})
    assert me.status_code == 200
    assert refresh(client, first["refresh_token"]).status_code == 401  # reuse
    for token in (first["access_token"], second["access_token"]):
        me = client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 401
        assert me.json()["error_type"] == "token_invalid"


def test_reusing_the_latest_token_twice_also_revokes(client: TestClient, settings: Settings) -> None:
    first = signup(client, email="ann@example.com")
    second = refresh(client, first["refresh_token"]).json()
    assert refresh(client, second["refresh_token"]).status_code == 200
    assert refresh(client, second["refresh_token"]).status_code == 401
    rows = family_rows(settings, family_of(first["refresh_token"]))
    assert all(revoked_at is not None for _, _, revoked_at in rows)


def test_reuse_after_logout_is_refused_without_a_second_revocation(client: TestClient, settings: Settings) -> None:
    first = signup(client, email="ann@example.com")
    second = refresh(client, first["refresh_token"]).json()
    logout = client.post(
        "/api/auth/logout",
        json={"refresh_token": second["refresh_token"]},
        headers={"Authorization": f"Bearer {second['access_token']}"},
    )
    assert logout.status_code == 204
    for token in (first["refresh_token"], second["refresh_token"]):
        response = refresh(client, token)
        assert response.status_code == 401
        assert response.json()["error_type"] == "token_invalid"
    family = family_of(first["refresh_token"])
    revocations = [data["reason"] for t, data in events_of(settings, family) if t == "SessionRevoked"]
    assert revocations == ["logout"]


async def race(settings: Settings, clock: FakeClock, contenders: int) -> tuple[list[httpx.Response], httpx.Response]:
    """Register, then send `contenders` refreshes of the same token at once; finally try the winner's successor."""
    app = create_app(settings, clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            registered = await client.post(
                "/api/auth/register",
                json={"email": "ann@example.com", "password": PASSWORD, "name": "Ann", "role": "client"},
            )
            assert registered.status_code == 201, registered.text
            token = registered.json()["refresh_token"]
            responses = await asyncio.gather(
                *(client.post("/api/auth/refresh", json={"refresh_token": token}) for _ in range(contenders))
            )
            winners = [r for r in responses if r.status_code == 200]
            successor = winners[0].json()["refresh_token"] if winners else token
            after = await client.post("/api/auth/refresh", json={"refresh_token": successor})
    return list(responses), after


def test_two_concurrent_refreshes_of_one_token_have_exactly_one_winner(settings: Settings, clock: FakeClock) -> None:
    responses, after = asyncio.run(race(settings, clock, 2))
    assert sorted(r.status_code for r in responses) == [200, 401], [r.text for r in responses]
    loser = next(r for r in responses if r.status_code == 401)
    assert loser.json()["error_type"] == "token_invalid"
    winner = next(r for r in responses if r.status_code == 200).json()
    # the loser's presentation counted as reuse: the winner's successor is revoked with the family
    assert after.status_code == 401, after.text
    assert after.json()["error_type"] == "token_invalid"
    rows = family_rows(settings, family_of(winner["refresh_token"]))
    assert len(rows) == 2
    assert all(revoked_at is not None for _, _, revoked_at in rows)


def test_many_concurrent_refreshes_of_one_token_have_exactly_one_winner(settings: Settings, clock: FakeClock) -> None:
    responses, after = asyncio.run(race(settings, clock, 8))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 1, statuses
    assert statuses.count(401) == 7, statuses
    assert after.status_code == 401
