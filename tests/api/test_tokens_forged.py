"""Bearer tokens: claims, forgeries of every kind (all 401 with the right error_type), expiry, key-ring rotation."""

from __future__ import annotations

import base64
import json
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from jwt.warnings import InsecureKeyLengthWarning
from starlette.testclient import TestClient

from api.app import create_app
from core.clock import FakeClock
from core.errors import Unauthenticated
from core.settings import Settings
from core.tokens import TokenService
from tests.conftest import make_settings
from tests.support.accounts import PASSWORD, signup
from tests.support.errors import assert_error

KEY_1 = "one-" + "a" * 40
KEY_2 = "two-" + "b" * 40
RING = f"k1:{KEY_1}"
Json = dict[str, Any]


def bearer(token: str) -> dict[str, bytes]:
    return {"Authorization": f"Bearer {token}".encode()}  # bytes: forgeries may be non-ASCII


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@contextmanager
def running(settings: Settings, clock: FakeClock) -> Iterator[TestClient]:
    with TestClient(create_app(settings, clock), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def ring_client(tmp_path: Path, clock: FakeClock) -> Iterator[TestClient]:
    with running(make_settings(tmp_path, JWT_KEYS=RING), clock) as test_client:
        yield test_client


def claims_of(token: str) -> Json:
    payload: Json = jwt.decode(token, options={"verify_signature": False})
    return payload


def header_of(token: str) -> Json:
    return dict(jwt.get_unverified_header(token))


def sign(payload: Json, key: str = KEY_1, kid: str | None = "k1", algorithm: str = "HS256") -> str:
    headers = {"kid": kid} if kid is not None else None
    with warnings.catch_warnings():  # HS512 with a 44-byte key: the forger does not care
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(payload, key, algorithm=algorithm, headers=headers)


def unsigned(payload: Json, header: Json) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}."


def tamper(token: str, **changes: object) -> str:
    head, body, signature = token.split(".")
    payload = json.loads(unb64(body)) | changes
    return f"{head}.{b64(json.dumps(payload, separators=(',', ':')).encode())}.{signature}"


# -- what a token says ----------------------------------------------------------------------


def test_tokens_are_hs256_with_kid_and_carry_the_documented_claims(ring_client: TestClient, clock: FakeClock) -> None:
    pair = signup(ring_client, "freelancer", email="ann@example.com")
    now = int(clock.now().timestamp())
    for token in (pair["access_token"], pair["refresh_token"]):
        header = header_of(token)
        assert header["alg"] == "HS256"
        assert header["kid"] == "k1"
        jwt.decode(token, KEY_1, algorithms=["HS256"], options={"verify_exp": False})  # really signed with k1
    access, refresh = claims_of(pair["access_token"]), claims_of(pair["refresh_token"])
    assert {"sub", "role", "type", "jti", "iat", "exp"} <= set(access)
    assert access["sub"] == pair["user"]["id"]
    assert access["role"] == "freelancer"
    assert access["type"] == "access"
    assert access["iat"] == now
    assert access["exp"] == now + 30 * 60
    assert refresh["sub"] == pair["user"]["id"]
    assert refresh["type"] == "refresh"
    assert refresh["exp"] == now + 7 * 24 * 3600
    assert access["jti"] != refresh["jti"]
    assert PASSWORD not in json.dumps(access) + json.dumps(refresh)
    again = ring_client.post("/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD}).json()
    assert claims_of(again["access_token"])["jti"] != access["jti"]


# -- forgeries -------------------------------------------------------------------------------

Forger = Callable[[Json, str], str]  # (claims of a genuine access token, the genuine token) -> forged token

FORGERIES: dict[str, Forger] = {
    "alg_none": lambda c, _: unsigned(c, {"alg": "none", "kid": "k1", "typ": "JWT"}),
    "alg_none_no_kid": lambda c, _: unsigned(c, {"alg": "none", "typ": "JWT"}),
    "alg_none_with_signature": lambda c, t: unsigned(c, {"alg": "none", "kid": "k1"}) + t.split(".")[2],
    "wrong_key_same_kid": lambda c, _: sign(c, key="z" * 48),
    "secret_key_instead_of_ring": lambda c, _: sign(c, key="t" * 48),
    "unknown_kid": lambda c, _: sign(c, kid="k9"),
    "unknown_kid_own_key": lambda c, _: sign(c, key="x" * 40, kid="attacker"),
    "no_kid": lambda c, _: sign(c, kid=None),
    "hs512_right_key": lambda c, _: sign(c, algorithm="HS512"),
    "tampered_role_admin": lambda c, t: tamper(t, role="admin"),
    "tampered_sub": lambda c, t: tamper(t, sub="someone-else"),
    "tampered_exp": lambda c, t: tamper(t, exp=c["exp"] + 10**6),
    "stripped_signature": lambda c, t: t.rsplit(".", 1)[0] + ".",
    "missing_jti": lambda c, _: sign({k: v for k, v in c.items() if k != "jti"}),
    "missing_type": lambda c, _: sign({k: v for k, v in c.items() if k != "type"}),
    "missing_sub": lambda c, _: sign({k: v for k, v in c.items() if k != "sub"}),
    "type_refresh_label": lambda c, _: sign(c | {"type": "refresh"}),
    "type_other": lambda c, _: sign(c | {"type": "id"}),
    "garbage": lambda c, _: "garbage",
    "three_garbage_parts": lambda c, _: "a.b.c",
    "json_not_jwt": lambda c, _: json.dumps(c),
    "header_only": lambda c, t: t.split(".")[0],
    "non_ascii": lambda c, _: "ünïcödé.tökén.✓",
}


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_forged_access_tokens_are_401_token_invalid(ring_client: TestClient, name: str) -> None:
    pair = signup(ring_client, email="ann@example.com")
    forged = FORGERIES[name](claims_of(pair["access_token"]), pair["access_token"])
    assert_error(ring_client.get("/api/auth/me", headers=bearer(forged)), 401, "token_invalid")
    assert_error(ring_client.get("/api/users", headers=bearer(forged)), 401, "token_invalid")


def test_a_tampered_admin_role_grants_nothing(ring_client: TestClient) -> None:
    pair = signup(ring_client, email="ann@example.com")
    forged = tamper(pair["access_token"], role="admin")
    response = ring_client.post(
        "/api/users",
        headers=bearer(forged),
        json={"email": "x@example.com", "password": PASSWORD, "name": "X", "role": "admin"},
    )
    assert_error(response, 401, "token_invalid")
    admin_patch = ring_client.patch(f"/api/users/{pair['user']['id']}", json={"role": "admin"}, headers=bearer(forged))
    assert_error(admin_patch, 401, "token_invalid")
    me = ring_client.get("/api/auth/me", headers=bearer(pair["access_token"])).json()
    assert me["role"] == "client"


@pytest.mark.parametrize("name", ["alg_none", "wrong_key_same_kid", "unknown_kid", "tampered_sub", "garbage"])
def test_forged_refresh_tokens_are_401_token_invalid(ring_client: TestClient, name: str) -> None:
    pair = signup(ring_client, email="ann@example.com")
    forged = FORGERIES[name](claims_of(pair["refresh_token"]), pair["refresh_token"])
    assert_error(ring_client.post("/api/auth/refresh", json={"refresh_token": forged}), 401, "token_invalid")
    logout = ring_client.post("/api/auth/logout", json={"refresh_token": forged}, headers=bearer(pair["access_token"]))
    assert_error(logout, 401, "token_invalid")
    # the genuine token was not spent or revoked by the forgeries
    assert ring_client.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code == 200


def test_a_signed_refresh_token_with_an_unknown_jti_is_refused(ring_client: TestClient) -> None:
    pair = signup(ring_client, email="ann@example.com")
    claims = claims_of(pair["refresh_token"]) | {"jti": "not-issued"}
    assert_error(ring_client.post("/api/auth/refresh", json={"refresh_token": sign(claims)}), 401, "token_invalid")


def test_a_signed_token_for_no_account_is_401_token_invalid(ring_client: TestClient) -> None:
    pair = signup(ring_client, email="ann@example.com")
    ghost = bearer(sign(claims_of(pair["access_token"]) | {"sub": "0" * 32}))
    assert_error(ring_client.get("/api/auth/me", headers=ghost), 401, "token_invalid")
    assert_error(ring_client.put("/api/auth/me", json={"bio": "boo"}, headers=ghost), 401, "token_invalid")
    change = {"password": "brand-new-password", "current_password": PASSWORD}
    assert_error(ring_client.put("/api/auth/me", json=change, headers=ghost), 401, "token_invalid")
    ghost_refresh = sign(claims_of(pair["refresh_token"]) | {"sub": "0" * 32})
    assert_error(ring_client.post("/api/auth/refresh", json={"refresh_token": ghost_refresh}), 401, "token_invalid")
    assert ring_client.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code == 200


def test_a_token_from_ahead_of_this_node_is_not_called_invalid_for_want_of_its_account(
    ring_client: TestClient,
) -> None:
    """An edge may not have applied the registration yet: the token is not at fault, so no token_invalid."""
    pair = signup(ring_client, email="ann@example.com")
    ahead = bearer(sign(claims_of(pair["access_token"]) | {"sub": "0" * 32, "pos": 10**9}))
    assert_error(ring_client.get("/api/auth/me", headers=ahead), 404, "not_found")


def test_token_types_are_not_interchangeable(ring_client: TestClient) -> None:
    pair = signup(ring_client, email="ann@example.com")
    me = ring_client.get("/api/auth/me", headers=bearer(pair["refresh_token"]))
    assert_error(me, 401, "token_invalid")
    assert me.json()["detail"] == "An access token is required here"
    refreshed = ring_client.post("/api/auth/refresh", json={"refresh_token": pair["access_token"]})
    assert_error(refreshed, 401, "token_invalid")
    assert refreshed.json()["detail"] == "A refresh token is required here"
    logout = ring_client.post(
        "/api/auth/logout", json={"refresh_token": pair["access_token"]}, headers=bearer(pair["access_token"])
    )
    assert_error(logout, 401, "token_invalid")
    # neither misuse spent the real refresh token
    assert ring_client.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Bearer    ", "Basic YW5uOnB3", "Token abc", "bearer"],
)
def test_missing_bearer_is_401_unauthenticated(ring_client: TestClient, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    assert_error(ring_client.get("/api/auth/me", headers=headers), 401, "unauthenticated")
    assert_error(ring_client.put("/api/auth/me", json={"bio": "x"}, headers=headers), 401, "unauthenticated")
    assert_error(ring_client.get("/api/users", headers=headers), 401, "unauthenticated")


def test_the_scheme_is_case_insensitive(ring_client: TestClient) -> None:
    pair = signup(ring_client, email="ann@example.com")
    assert (
        ring_client.get("/api/auth/me", headers={"Authorization": f"bearer {pair['access_token']}"}).status_code == 200
    )


# -- expiry ----------------------------------------------------------------------------------


def test_access_tokens_expire_after_30_minutes(ring_client: TestClient, clock: FakeClock) -> None:
    pair = signup(ring_client, email="ann@example.com")
    clock.advance(minutes=29, seconds=59)
    assert ring_client.get("/api/auth/me", headers=bearer(pair["access_token"])).status_code == 200
    clock.advance(seconds=1)
    assert_error(ring_client.get("/api/auth/me", headers=bearer(pair["access_token"])), 401, "token_expired")
    clock.advance(minutes=1)
    assert_error(ring_client.get("/api/auth/me", headers=bearer(pair["access_token"])), 401, "token_expired")
    # the refresh token lives longer and buys a working access token
    response = ring_client.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert response.status_code == 200, response.text
    assert ring_client.get("/api/auth/me", headers=bearer(response.json()["access_token"])).status_code == 200


def test_refresh_tokens_expire(ring_client: TestClient, clock: FakeClock) -> None:
    pair = signup(ring_client, email="ann@example.com")
    clock.advance(days=7, seconds=1)
    assert_error(
        ring_client.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]}), 401, "token_expired"
    )


def test_an_expired_forgery_is_still_invalid_not_expired(ring_client: TestClient, clock: FakeClock) -> None:
    pair = signup(ring_client, email="ann@example.com")
    clock.advance(minutes=31)
    forged = sign(claims_of(pair["access_token"]), key="z" * 48)
    assert_error(ring_client.get("/api/auth/me", headers=bearer(forged)), 401, "token_invalid")


# -- key ring --------------------------------------------------------------------------------


def test_key_ring_rotation_keeps_old_tokens_working_until_the_old_key_is_dropped(
    tmp_path: Path, clock: FakeClock
) -> None:
    with running(make_settings(tmp_path, JWT_KEYS=RING), clock) as client:
        old = signup(client, email="ann@example.com")
        assert header_of(old["access_token"])["kid"] == "k1"

    with running(make_settings(tmp_path, JWT_KEYS=f"k2:{KEY_2},k1:{KEY_1}"), clock) as client:
        assert client.get("/api/auth/me", headers=bearer(old["access_token"])).status_code == 200
        fresh = client.post("/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD}).json()
        assert header_of(fresh["access_token"])["kid"] == "k2"  # the newest key signs
        jwt.decode(fresh["access_token"], KEY_2, algorithms=["HS256"], options={"verify_exp": False})
        rotated = client.post("/api/auth/refresh", json={"refresh_token": old["refresh_token"]})
        assert rotated.status_code == 200, rotated.text
        assert header_of(rotated.json()["refresh_token"])["kid"] == "k2"
        assert client.get("/api/auth/me", headers=bearer(fresh["access_token"])).status_code == 200

    with running(make_settings(tmp_path, JWT_KEYS=f"k2:{KEY_2}"), clock) as client:
        assert_error(client.get("/api/auth/me", headers=bearer(old["access_token"])), 401, "token_invalid")
        assert client.get("/api/auth/me", headers=bearer(fresh["access_token"])).status_code == 200
        # a k1-signed token relabelled as k2 does not verify either
        relabelled = sign(claims_of(old["access_token"]), key=KEY_1, kid="k2")
        assert_error(client.get("/api/auth/me", headers=bearer(relabelled)), 401, "token_invalid")


@pytest.mark.parametrize("ring", ["k1:short", "k1", ":" + "a" * 40, "k1:" + "a" * 31])
def test_weak_or_malformed_key_rings_are_refused_at_startup(tmp_path: Path, ring: str) -> None:
    with pytest.raises(ValueError, match="JWT_KEYS"):
        create_app(make_settings(tmp_path, JWT_KEYS=ring))


def test_a_token_issued_by_a_node_whose_clock_runs_ahead_is_accepted() -> None:
    """An edge verifies tokens the primary issued: a primary clock seconds ahead of the edge's must not make fresh
    tokens invalid there. Only expiry is checked, against the verifying service's clock."""
    service = TokenService([("k1", KEY_1.encode())], timedelta(minutes=30), timedelta(days=7))
    here = datetime.now(UTC)
    token, claims = service.issue("user-1", "client", "access", here + timedelta(seconds=30))

    assert service.verify(token, "access", here) == claims
    with pytest.raises(Unauthenticated) as expired:
        service.verify(token, "access", here + timedelta(minutes=31))
    assert expired.value.code == "token_expired"
