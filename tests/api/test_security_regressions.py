"""One test per hole the original MegiLance backend had, plus the hardening every response depends on.

Holes: anonymous user list/create, self-promotion to admin (register, PUT /api/auth/me), a freelancer accepting
proposals, contract status/amount changes by the wrong party, refresh or partial tokens used as access tokens,
file paths escaping the upload folder, rate limits reset by a forged X-Forwarded-For.
Hardening: security headers and CSP, HSTS only in production, CORS allow-list, body size and JSON depth limits,
header size limits of the real server, no stack traces or SQL text in any error.
"""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import pytest
from starlette.testclient import TestClient

from api.app import create_app
from api.middleware import DOCS_CSP, STRICT_CSP
from core.clock import FakeClock
from core.settings import Settings
from core.storage import LocalStorage, validate_key
from core.tokens import parse_key_ring
from tests.conftest import make_settings
from tests.e2e.server import LiveServer
from tests.support.accounts import PASSWORD, bearer, make_admin, register, signup
from tests.support.errors import assert_error
from tests.support.market import PROJECT

Json = dict[str, Any]
HEX_ID = re.compile(r"[0-9a-f]{32}")
LEAK_MARKERS = ("sqlite", "traceback", "select ", "libsql", 'file "/', "operationalerror", "integrityerror")


# -- helpers ----------------------------------------------------------------------------------------------------


def project_body(**overrides: Any) -> Json:
    return {
        "title": "Build a marketplace",
        "description": "A marketplace backend that cannot be talked into anything.",
        "category": "web",
        "budget_type": "fixed",
        "budget_min": "100.00",
        "budget_max": "500.00",
        "experience_level": "expert",
        "estimated_duration": "1 month",
        "skills": ["python"],
        **overrides,
    }


def post_project(client: TestClient, owner: Json) -> Json:
    response = client.post("/api/projects", json=project_body(), headers=bearer(owner["access_token"]))
    assert response.status_code == 201, response.text
    body: Json = response.json()
    return body


def propose(client: TestClient, freelancer: Json, project_id: str) -> Json:
    body = {
        "project_id": project_id,
        "cover_letter": "I have built exactly this twice and would be glad to do it again for you.",
        "estimated_hours": 40,
        "hourly_rate": "50.00",
        "availability": "immediate",
    }
    response = client.post("/api/proposals", json=body, headers=bearer(freelancer["access_token"]))
    assert response.status_code == 201, response.text
    out: Json = response.json()
    return out


@pytest.fixture
def admin(client: TestClient, settings: Settings) -> Json:
    return make_admin(client)


# -- the holes ----------------------------------------------------------------------------------------------------


def test_user_list_needs_login(client: TestClient) -> None:
    signup(client, "client")
    assert_error(client.get("/api/users"), 401, "unauthenticated")
    assert_error(client.get("/api/users", headers={"Authorization": "Bearer nonsense"}), 401, "token_invalid")
    assert_error(client.get("/api/users", headers={"Authorization": "Basic YWRtaW46YWRtaW4="}), 401)


def test_user_create_needs_login_and_admin(client: TestClient, admin: Json) -> None:
    body = {"email": "made@example.com", "password": PASSWORD, "name": "Made", "role": "admin"}
    assert_error(client.post("/api/users", json=body), 401, "unauthenticated")
    someone = signup(client, "client")
    assert_error(client.post("/api/users", json=body, headers=bearer(someone["access_token"])), 403, "forbidden")
    # Nothing was created: the e-mail is free, and only an admin's request creates the account.
    assert_error(client.post("/api/auth/login", json={"email": body["email"], "password": PASSWORD}), 401)
    created = client.post("/api/users", json=body, headers=bearer(admin["access_token"]))
    assert created.status_code == 201, created.text


@pytest.mark.parametrize("role", ["admin", "Admin", "ADMIN", "superuser", "owner", ""])
def test_register_cannot_choose_admin(client: TestClient, role: str) -> None:
    email = f"climber-{uuid.uuid4().hex[:8]}@example.com"
    body = {"email": email, "password": PASSWORD, "name": "Climber", "role": role}
    error = assert_error(client.post("/api/auth/register", json=body), 422, "validation_failed")
    assert any(e["loc"] == ["body", "role"] for e in error["errors"]), error
    assert_error(client.post("/api/auth/login", json={"email": email, "password": PASSWORD}), 401)


@pytest.mark.parametrize("extra", [{"is_admin": True}, {"is_active": True}, {"is_superuser": True}, {"id": "x"}])
def test_register_refuses_privileged_extra_fields(client: TestClient, extra: Json) -> None:
    body = {"email": "extra@example.com", "password": PASSWORD, "name": "Extra", "role": "client", **extra}
    assert_error(client.post("/api/auth/register", json=body), 422, "validation_failed")


@pytest.mark.parametrize(
    "change",
    [{"role": "admin"}, {"is_active": False}, {"is_active": True}, {"bio": "harmless", "role": "admin"}, {"id": "x"}],
)
def test_update_me_cannot_change_role_or_status(client: TestClient, change: Json) -> None:
    user = signup(client, "freelancer")
    headers = bearer(user["access_token"])
    assert_error(client.put("/api/auth/me", json=change, headers=headers), 422, "validation_failed")
    me = client.get("/api/auth/me", headers=headers).json()
    assert (me["role"], me["is_active"], me["bio"]) == ("freelancer", True, None)  # the harmless part did not land
    body = {"email": "x@example.com", "password": PASSWORD, "name": "X", "role": "admin"}
    assert_error(client.post("/api/users", json=body, headers=headers), 403)


def test_freelancer_cannot_accept_or_reject_proposals(client: TestClient) -> None:
    owner, freelancer, other_client = signup(client, "client"), signup(client, "freelancer"), signup(client, "client")
    project = post_project(client, owner)
    proposal = propose(client, freelancer, project["id"])
    for action in ("accept", "reject"):
        response = client.post(f"/api/proposals/{proposal['id']}/{action}", headers=bearer(freelancer["access_token"]))
        assert response.status_code in (403, 404), response.text
        assert_error(  # a client who does not own the project is told the proposal does not exist
            client.post(f"/api/proposals/{proposal['id']}/{action}", headers=bearer(other_client["access_token"])),
            404,
            "not_found",
        )
    seen = client.get(f"/api/proposals/{proposal['id']}", headers=bearer(freelancer["access_token"])).json()
    assert seen["status"] == "submitted"
    assert (
        client.get(f"/api/projects/{project['id']}", headers=bearer(owner["access_token"])).json()["status"] == "open"
    )


@pytest.fixture
def contract(client: TestClient) -> tuple[Json, Json, Json]:
    """(client, freelancer, contract): an active contract of 300.00 USDC."""
    owner, freelancer = signup(client, "client"), signup(client, "freelancer")
    project = post_project(client, owner)
    proposal = propose(client, freelancer, project["id"])
    accepted = client.post(f"/api/proposals/{proposal['id']}/accept", headers=bearer(owner["access_token"]))
    assert accepted.status_code == 200, accepted.text
    response = client.post(
        "/api/contracts",
        json={"project_id": project["id"], "freelancer_id": freelancer["user"]["id"], "amount": "300.00"},
        headers=bearer(owner["access_token"]),
    )
    assert response.status_code == 201, response.text
    return owner, freelancer, response.json()


def test_contract_parties_cannot_overreach(client: TestClient, contract: tuple[Json, Json, Json]) -> None:
    owner, freelancer, made = contract
    path = f"/api/contracts/{made['id']}"
    as_owner, as_freelancer = bearer(owner["access_token"]), bearer(freelancer["access_token"])
    assert_error(client.put(path, json={"status": "completed"}, headers=as_freelancer), 403, "forbidden")
    assert_error(client.put(path, json={"description": "mine now"}, headers=as_freelancer), 403, "forbidden")
    assert_error(client.delete(path, headers=as_freelancer), 403, "forbidden")
    for who in (as_owner, as_freelancer):
        for field, value in [
            ("amount", "1.00"),
            ("platform_fee", "0"),
            ("amount_paid", "300.00"),
            ("currency", "USD"),
            ("freelancer_id", owner["user"]["id"]),
            ("client_id", freelancer["user"]["id"]),
        ]:
            assert_error(client.put(path, json={field: value}, headers=who), 422, "validation_failed")
    stranger = signup(client, "client")
    assert_error(client.put(path, json={"status": "cancelled"}, headers=bearer(stranger["access_token"])), 404)
    after = client.get(path, headers=as_owner).json()
    assert {k: after[k] for k in ("amount", "platform_fee", "amount_paid", "currency", "status", "description")} == {
        k: made[k] for k in ("amount", "platform_fee", "amount_paid", "currency", "status", "description")
    }
    done = client.put(path, json={"status": "completed"}, headers=as_owner)  # the client may: the rule is per party
    assert done.status_code == 200 and done.json()["status"] == "completed", done.text


def test_refresh_and_partial_tokens_are_not_access_tokens(client: TestClient, settings: Settings) -> None:
    user = signup(client, "client")
    assert_error(client.get("/api/auth/me", headers=bearer(user["refresh_token"])), 401, "token_invalid")
    assert_error(client.get("/api/users", headers=bearer(user["refresh_token"])), 401, "token_invalid")
    assert_error(client.post("/api/auth/refresh", json={"refresh_token": user["access_token"]}), 401, "token_invalid")
    # A half-finished login (a 2FA step, a password reset) signed with the service's own key is still not access.
    kid, key = parse_key_ring(settings.jwt_keys, settings.secret_key)[0]
    claims = jwt.decode(user["access_token"], options={"verify_signature": False})
    for partial_type in ("partial", "mfa_pending", "2fa", "password_reset", ""):
        forged = jwt.encode({**claims, "type": partial_type}, key, algorithm="HS256", headers={"kid": kid})
        assert_error(client.get("/api/auth/me", headers=bearer(forged)), 401, "token_invalid")
    untyped = {k: v for k, v in claims.items() if k != "type"}
    forged = jwt.encode(untyped, key, algorithm="HS256", headers={"kid": kid})
    assert_error(client.get("/api/auth/me", headers=bearer(forged)), 401, "token_invalid")


ESCAPING_KEYS = ["../x", "..", "../../etc/passwd", "a/b", "/etc/passwd", "..\\x", "x\x00", "", ".x", "a" * 129, "é"]


@pytest.mark.parametrize("key", ESCAPING_KEYS)
def test_storage_keys_cannot_leave_the_upload_folder(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError, match="storage key"):
        validate_key(key)
    root = tmp_path / "a" / "b" / "uploads"
    storage = LocalStorage(root, b"k" * 32)
    with pytest.raises(ValueError, match="storage key"):
        storage.save(key, [b"\x89PNG\r\n\x1a\n"], "image/png")
    for call in (storage.size, storage.delete, storage.open):
        with pytest.raises(ValueError, match="storage key"):
            call(key)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_storage_refuses_a_planted_symlink_out_of_its_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "uploads", tmp_path / "outside"
    outside.mkdir()
    storage = LocalStorage(root, b"k" * 32)
    (root / "ab").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError, match="escapes"):
        storage.save("abcdef", [b"data"], "image/png")
    assert list(outside.iterdir()) == []


def test_multipart_filename_cannot_choose_the_path(tmp_path: Path, clock: FakeClock) -> None:
    data_dir = tmp_path / "deep" / "er" / "data"
    settings = make_settings(data_dir)
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 600
    with TestClient(create_app(settings, clock), raise_server_exceptions=False) as client:
        user = signup(client, "freelancer")
        headers = bearer(user["access_token"])
        for name in ("../../etc/passwd.png", "../../../../../../tmp/evil.png", "/etc/passwd.png", "..\\..\\x.png"):
            response = client.post("/api/uploads", files={"file": (name, png, "image/png")}, headers=headers)
            assert response.status_code == 201, response.text
            upload = response.json()
            assert "passwd" not in response.text and ".." not in upload["url"]
            content = client.get(f"/api/uploads/{upload['id']}/content", headers=headers)
            assert content.status_code == 200 and content.content == png
            assert "passwd" not in content.headers.get("content-disposition", "")
        presigned = client.post(
            "/api/uploads/presign",
            json={"filename": "../../etc/passwd.png", "content_type": "image/png", "size": len(png)},
            headers=headers,
        )
        assert presigned.status_code == 200, presigned.text
        assert "passwd" not in presigned.json()["upload_url"] and ".." not in presigned.json()["upload_url"]
        for key in ("..%2F..%2Fetc%2Fpasswd.png", "..", "%2E%2E%2Fx", presigned.json()["file_id"] + "%2F..%2F..%2Fx"):
            direct = client.put(
                f"/api/uploads/direct/{key}?expires=9999999999&sig=00",
                content=png,
                headers={"Content-Type": "image/png"},
            )
            assert direct.status_code in (403, 404, 405), (key, direct.status_code, direct.text)
    uploads = data_dir / "uploads"
    stored = sorted(p.relative_to(uploads).parts for p in uploads.rglob("*") if p.is_file())
    assert len(stored) == 4, stored
    assert all(len(parts) == 2 and parts[1].startswith(parts[0]) and HEX_ID.fullmatch(parts[1]) for parts in stored)
    assert [p for p in tmp_path.rglob("*.png")] == []  # no file anywhere took the client's name


def test_forged_forwarded_for_does_not_reset_the_rate_limit(tmp_path: Path, clock: FakeClock) -> None:
    settings = make_settings(tmp_path, RATE_LIMIT_ENABLED=True, RATE_LIMIT_AUTH_PER_MINUTE=3, TRUSTED_PROXIES="")
    with TestClient(create_app(settings, clock), raise_server_exceptions=False) as client:
        for n in range(3):
            response = client.post(
                "/api/auth/login",
                json={"email": f"nobody{n}@example.com", "password": PASSWORD},
                headers={"X-Forwarded-For": f"203.0.113.{n}"},
            )
            assert_error(response, 401, "invalid_credentials")
        forged_headers: list[dict[str, str]] = [
            {"X-Forwarded-For": "198.51.100.7"},
            {"X-Forwarded-For": "198.51.100.8, 10.0.0.1"},
            {"Fly-Client-IP": "198.51.100.9"},
            {"X-Real-IP": "198.51.100.10"},
            {"Forwarded": "for=198.51.100.11"},
            {"X-Forwarded-For": "127.0.0.1", "Fly-Client-IP": "127.0.0.1"},
        ]
        for headers in forged_headers:
            response = client.post(
                "/api/auth/login", json={"email": "nobody@example.com", "password": PASSWORD}, headers=headers
            )
            assert_error(response, 429, "rate_limited")
            assert int(response.headers["Retry-After"]) >= 1
        body = {"email": "late@example.com", "password": PASSWORD, "name": "Late", "role": "client"}
        assert_error(client.post("/api/auth/register", json=body, headers={"X-Forwarded-For": "192.0.2.1"}), 429)


def test_trusted_proxy_hops_are_honoured(tmp_path: Path, clock: FakeClock) -> None:
    """The control for the test above: behind a configured proxy, distinct client addresses get their own windows."""
    settings = make_settings(
        tmp_path, RATE_LIMIT_ENABLED=True, RATE_LIMIT_AUTH_PER_MINUTE=3, TRUSTED_PROXIES="10.0.0.0/8"
    )
    app = create_app(settings, clock)
    with TestClient(app, raise_server_exceptions=False, client=("10.1.2.3", 40000)) as client:
        for n in range(6):
            response = client.post(
                "/api/auth/login",
                json={"email": f"nobody{n}@example.com", "password": PASSWORD},
                headers={"X-Forwarded-For": f"203.0.113.{n}"},
            )
            assert_error(response, 401, "invalid_credentials")


# -- hardening ------------------------------------------------------------------------------------------------------


def security_headers(response: httpx.Response) -> dict[str, str | None]:
    names = ("x-content-type-options", "x-frame-options", "content-security-policy", "strict-transport-security")
    return {name: response.headers.get(name) for name in names}


def test_api_responses_carry_strict_security_headers(client: TestClient) -> None:
    user = signup(client, "client")
    responses = [
        client.get("/"),
        client.get("/api"),
        client.get("/api/health/live"),
        client.get("/api/openapi.json"),
        client.get("/api/auth/me", headers=bearer(user["access_token"])),
        client.get("/api/auth/me"),  # 401
        client.get("/api/nowhere"),  # 404
        client.post("/api/auth/register", json={}),  # 422
        client.post("/api/auth/register", content=b"{", headers={"Content-Type": "application/json"}),  # 400
    ]
    for response in responses:
        assert security_headers(response) == {
            "x-content-type-options": "nosniff",
            "x-frame-options": "DENY",
            "content-security-policy": STRICT_CSP.decode(),
            "strict-transport-security": None,
        }, (response.request.url, response.status_code)
    assert "default-src 'none'" in STRICT_CSP.decode() and "frame-ancestors 'none'" in STRICT_CSP.decode()


def test_only_the_docs_pages_get_the_looser_csp(client: TestClient) -> None:
    for path in ("/api/docs", "/api/redoc", "/api/static/swagger-ui/swagger-ui.css"):
        response = client.get(path)
        assert response.status_code == 200, path
        headers = security_headers(response)
        assert headers["content-security-policy"] == DOCS_CSP.decode(), path
        assert (headers["x-content-type-options"], headers["x-frame-options"]) == ("nosniff", "DENY"), path
    policy = DOCS_CSP.decode()
    assert "frame-ancestors 'none'" in policy and "unsafe-eval" not in policy and "script-src 'self'" in policy
    assert not any(src in policy for src in ("http:", "https:", "*")), policy  # no CDN, no wildcard


@pytest.mark.parametrize(("environment", "hsts"), [("test", False), ("development", False), ("production", True)])
def test_hsts_only_in_production(tmp_path: Path, clock: FakeClock, environment: str, hsts: bool) -> None:
    settings = make_settings(tmp_path, ENVIRONMENT=environment, PUBLIC_BASE_URL="https://api.megilance.example")
    with TestClient(create_app(settings, clock), raise_server_exceptions=False) as client:
        for path in ("/api", "/api/docs", "/api/nowhere"):
            value = client.get(path).headers.get("strict-transport-security")
            if hsts:
                assert value is not None and "includeSubDomains" in value, path
                assert int(value.split("max-age=")[1].split(";")[0]) >= 31_536_000, value
            else:
                assert value is None, (path, value)


ALLOWED_ORIGIN = "https://app.megilance.example"


def test_cors_only_for_configured_origins(tmp_path: Path, clock: FakeClock) -> None:
    settings = make_settings(tmp_path, CORS_ORIGINS=f"{ALLOWED_ORIGIN}, https://admin.megilance.example")
    with TestClient(create_app(settings, clock), raise_server_exceptions=False) as client:
        preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
        ok = client.options("/api/projects", headers={"Origin": ALLOWED_ORIGIN, **preflight})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
        assert "access-control-allow-credentials" not in ok.headers
        simple = client.get("/api", headers={"Origin": ALLOWED_ORIGIN})
        assert simple.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
        for origin in ("https://evil.example", "null", "https://app.megilance.example.evil.example", "http:/"):
            denied = client.options("/api/projects", headers={"Origin": origin, **preflight})
            assert "access-control-allow-origin" not in denied.headers, origin
            assert "access-control-allow-origin" not in client.get("/api", headers={"Origin": origin}).headers
        assert (
            "access-control-allow-origin"
            not in client.get("/api", headers={"Origin": ALLOWED_ORIGIN.replace("https", "http")}).headers
        )
        # Errors carry CORS headers too, wherever they come from: router, body limit, consistency gate.
        origin = {"Origin": ALLOWED_ORIGIN}
        errors = [
            (client.get("/api/no-such-thing", headers=origin), 404),
            (client.get("/api/projects", headers={**origin, "X-Consistency-Token": "abc"}), 400),
            (client.post("/api/auth/login", content=b"x" * (2**21), headers=origin), 413),
        ]
        for response, status in errors:
            assert response.status_code == status, response.text
            assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN, status
            assert response.headers["x-request-id"], status


def test_a_refused_preflight_answers_in_the_error_shape(tmp_path: Path, clock: FakeClock) -> None:
    settings = make_settings(tmp_path, CORS_ORIGINS=ALLOWED_ORIGIN)
    with TestClient(create_app(settings, clock), raise_server_exceptions=False) as client:
        for origin, method, headers in (
            ("https://evil.example", "POST", "authorization"),
            (ALLOWED_ORIGIN, "TRACE", "authorization"),
            (ALLOWED_ORIGIN, "POST", "x-not-allowed"),
        ):
            preflight = {
                "Origin": origin,
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": headers,
            }
            refused = client.options("/api/projects", headers=preflight)
            assert refused.headers["content-type"] == "application/json", (origin, method, headers)
            assert_error(refused, 400, "bad_request")
            assert set(refused.json()) == {"detail", "error_type"}


def test_a_browser_app_can_read_retry_after(tmp_path: Path, clock: FakeClock) -> None:
    """Retry-After is not a CORS-safelisted response header: unexposed, a browser app cannot see when to retry."""
    settings = make_settings(
        tmp_path, CORS_ORIGINS=ALLOWED_ORIGIN, RATE_LIMIT_ENABLED=True, RATE_LIMIT_AUTH_PER_MINUTE=1
    )
    with TestClient(create_app(settings, clock), raise_server_exceptions=False) as client:
        login = {"email": "nobody@example.com", "password": PASSWORD}
        client.post("/api/auth/login", json=login, headers={"Origin": ALLOWED_ORIGIN})
        limited = client.post("/api/auth/login", json=login, headers={"Origin": ALLOWED_ORIGIN})
        assert_error(limited, 429, "rate_limited")
        exposed = [h.strip().lower() for h in limited.headers["access-control-expose-headers"].split(",")]
        assert "retry-after" in exposed and int(limited.headers["retry-after"]) >= 1


def test_a_browser_app_can_tell_a_replay(tmp_path: Path, clock: FakeClock) -> None:
    """A replayed write says so in Idempotent-Replayed, which a browser app sees only when it is exposed."""
    settings = make_settings(tmp_path, CORS_ORIGINS=ALLOWED_ORIGIN)
    with TestClient(create_app(settings, clock), raise_server_exceptions=False) as client:
        owner = register(client, "client", "Ada")
        headers = {**owner.headers, "Idempotency-Key": "k1", "Origin": ALLOWED_ORIGIN}
        first = client.post("/api/projects", json=PROJECT, headers=headers)
        replay = client.post("/api/projects", json=PROJECT, headers=headers)
        assert (first.status_code, replay.status_code) == (201, 201)
        assert replay.headers["idempotent-replayed"] == "true"
        exposed = [h.strip().lower() for h in replay.headers["access-control-expose-headers"].split(",")]
        assert "idempotent-replayed" in exposed


def test_no_cors_without_configured_origins(client: TestClient) -> None:
    for origin in (ALLOWED_ORIGIN, "https://evil.example"):
        response = client.get("/api", headers={"Origin": origin})
        assert "access-control-allow-origin" not in response.headers
        preflight = client.options("/api/projects", headers={"Origin": origin, "Access-Control-Request-Method": "GET"})
        assert "access-control-allow-origin" not in preflight.headers


def test_request_body_limit(tmp_path: Path, clock: FakeClock) -> None:
    settings = make_settings(tmp_path, MAX_BODY_BYTES=2048)
    with TestClient(create_app(settings, clock), raise_server_exceptions=False) as client:
        body = {"email": "big@example.com", "password": PASSWORD, "name": "Big", "role": "client", "pad": "x" * 4096}
        assert_error(client.post("/api/auth/register", json=body), 413, "payload_too_large")

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold on the bytes, not the header
            yield b'{"email": "big@example.com", "name": "'
            for _ in range(8):
                yield b"y" * 512
            yield b'", "password": "correct-horse-battery", "role": "client"}'

        streamed = client.post("/api/auth/register", content=chunks(), headers={"Content-Type": "application/json"})
        assert_error(streamed, 413, "payload_too_large")
        lying = client.post(
            "/api/auth/register",
            content=b"{}",
            headers={"Content-Type": "application/json", "Content-Length": str(10**9)},
        )
        assert lying.status_code in (400, 413), lying.text
        assert_error(client.post("/api/auth/login", json={"email": "big@example.com", "password": PASSWORD}), 401)
        small = {"email": "small@example.com", "password": PASSWORD, "name": "Small", "role": "client"}
        assert client.post("/api/auth/register", json=small).status_code == 201


def nested(levels: int, kind: str) -> str:
    return ("[" * levels + "]" * levels) if kind == "list" else ('{"a":' * levels + "1" + "}" * levels)


@pytest.mark.parametrize("levels", [33, 100, 10_000, 100_000])
@pytest.mark.parametrize("kind", ["dict", "list"])
def test_json_nesting_limit(client: TestClient, levels: int, kind: str) -> None:
    user = signup(client, "client")
    body = '{"email": "deep@example.com", "password": "x", "deep": ' + nested(levels, kind) + "}"
    headers = {"Content-Type": "application/json"}
    assert_error(client.post("/api/auth/login", content=body, headers=headers), 400, "bad_request")
    put = client.put(
        "/api/auth/me",
        content='{"bio": ' + nested(levels, kind) + "}",
        headers={**headers, **bearer(user["access_token"])},
    )
    assert_error(put, 400, "bad_request")


WIDE_BODIES = {
    "a list of 1,001 skills": {"skills": ["python"] * 1001},
    "a list of 300,000 wrong items": {"skills": [{}] * 300_000},
    "70,000 unknown fields": {f"k{i}": 0 for i in range(70_000)},
    "1,001 values spread over lists": {"skills": [[0] * 10] * 91},
}


@pytest.mark.parametrize("body", WIDE_BODIES.values(), ids=WIDE_BODIES.keys())
def test_json_width_limit(client: TestClient, body: Json) -> None:
    """A body of more than 1,000 values is refused before validation: a list of 300,000 wrong items cost 300 ms
    of validation on the event loop, 70,000 unknown fields a 4.8 MB answer listing each."""
    headers = bearer(signup(client, "freelancer")["access_token"])
    error = assert_error(client.put("/api/auth/me", json=body, headers=headers), 400, "bad_request")
    assert error["detail"] == "The body holds more than 1000 values (array items and object members)"
    assert client.get("/api/auth/me", headers=headers).json()["skills"] == []
    many = client.put("/api/auth/me", json={"skills": [f"s{i}" for i in range(50)]}, headers=headers)
    assert many.status_code == 200, many.text


# -- the real server ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    with LiveServer.start() as server:
        yield server


def raw_request(server: LiveServer, request: bytes) -> bytes:
    """Send bytes as they are (no client library normalizes them) and return what comes back before close."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        try:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # refused or closed before it finished sending (reset, broken pipe, not connected): an answer
            pass
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    return received


def status_of(raw: bytes) -> int | None:
    if not raw.startswith(b"HTTP/1.1 "):
        return None
    return int(raw[9:12])


def test_oversized_headers_are_refused(live: LiveServer) -> None:
    """Complete requests whose header block is far past 16 KiB are refused (431/400 or a closed connection)."""
    normal = b"GET /api/health/live HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 4096 + b"\r\nConnection: close\r\n\r\n"
    assert status_of(raw_request(live, normal)) == 200
    for name, request in [
        ("one 1 MiB header", b"GET /api/health/live HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 2**20 + b"\r\n\r\n"),
        ("64 KiB header", b"GET /api/health/live HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 2**16 + b"\r\n\r\n"),
        (
            "10,000 headers",
            b"GET /api/health/live HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-H%d: v\r\n" % i for i in range(10_000))
            + b"\r\n",
        ),
    ]:
        status = status_of(raw_request(live, request))
        assert status != 200, f"{name}: the server answered 200 (no header size limit applies)"
        assert status in (None, 400, 431), f"{name}: {status}"


UNBOUNDED_HEADER_BYTES = 16 * 2**20
SILENCE_S = 3.0


def test_server_stops_reading_an_unterminated_header_block(live: LiveServer) -> None:
    """What h11_max_incomplete_event_size=16384 is for: a header block that never ends must not be read forever.

    A server-level limit answers or closes the connection long before 16 MiB of one header line have arrived;
    an application-level check cannot help here, since the app sees nothing until the headers are complete.
    """
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(b"GET /api/health/live HTTP/1.1\r\nHost: x\r\nX-Pad: ")
        sent, cut = 0, False
        try:
            while sent < UNBOUNDED_HEADER_BYTES:
                sock.sendall(b"a" * 65536)
                sent += 65536
        except OSError:  # reset or broken pipe: the server stopped reading
            cut = True
        answer = b""
        if not cut:
            sock.settimeout(SILENCE_S)  # a server that enforces a limit has answered or closed by now
            try:
                answer = sock.recv(200) or b"(closed)"
            except TimeoutError:
                answer = b""
            except OSError:
                cut = True
    assert cut or answer, (
        f"the server read {sent} bytes of one unterminated header line without answering or closing "
        "(no header size limit applies with http=httptools)"
    )


@pytest.mark.parametrize("header", ["X-Consistency-Token", "If-Match"])
@pytest.mark.parametrize("value", [b"\xb2", b"1\xb9", b'"\xb3"', b"\xb2\xb2\xb2"])
def test_non_ascii_digits_in_headers_are_client_errors(live: LiveServer, header: str, value: bytes) -> None:
    """Latin-1 superscript digits pass str.isdigit() but not int(): a 4xx, never a 500."""
    with httpx.Client(base_url=live.url, timeout=10) as http:
        email = f"digits-{uuid.uuid4().hex[:8]}@example.com"
        token = http.post(
            "/api/auth/register", json={"email": email, "password": PASSWORD, "name": "D", "role": "client"}
        ).json()["access_token"]
        headers = {b"Authorization": f"Bearer {token}".encode(), header.encode(): value}
        if header == "If-Match":
            response = http.put("/api/auth/me", json={"bio": "x"}, headers=headers)
        else:
            response = http.get("/api/auth/me", headers=headers)
        assert 400 <= response.status_code < 500, f"{header}: {value!r} -> {response.status_code} {response.text}"


# -- no leaks -------------------------------------------------------------------------------------------------------

NASTY = [
    "' OR '1'='1",
    "1; DROP TABLE events; --",
    '" OR ""="',
    "\\",
    "%",
    "_",
    "*",
    '"*',
    "NEAR(a b)",
    "a OR b AND",
    "\x00",
    "\ud7ff\ufffd",
    "<script>alert(1)</script>",
    "${jndi:ldap://x/a}",
    "{{7*7}}",
    "../../../../etc/passwd",
    "9" * 40,
    "-1e309",
    "NaN",
]


def leaks(response: httpx.Response) -> list[str]:
    text = response.text.lower()
    found = [marker for marker in LEAK_MARKERS if marker in text]
    if response.status_code >= 500:
        found.append(f"status {response.status_code}")
    if response.status_code >= 400:
        body = response.json()
        if set(body) - {"detail", "error_type", "errors"}:
            found.append(f"error shape {sorted(body)}")
    return found


def test_no_stack_traces_or_sql_in_errors(client: TestClient, admin: Json) -> None:
    owner, freelancer = signup(client, "client"), signup(client, "freelancer")
    as_owner, as_freelancer, as_admin = (
        bearer(owner["access_token"]),
        bearer(freelancer["access_token"]),
        bearer(admin["access_token"]),
    )
    project = post_project(client, owner)
    problems: list[str] = []

    def check(response: httpx.Response) -> None:
        found = leaks(response)
        if found:
            request = response.request
            problems.append(f"{request.method} {request.url} -> {response.status_code} {found}: {response.text[:200]}")

    for value in NASTY:
        for path in ("/api/projects", "/api/users", "/api/proposals", "/api/contracts", "/api/portfolio"):
            for param in ("q", "skill", "category", "status", "client_id", "project_id", "cursor", "budget_min"):
                check(client.get(path, params={param: value}, headers=as_admin))
        for path in ("/api/projects/", "/api/users/", "/api/proposals/", "/api/contracts/", "/api/portfolio/"):
            check(client.get(path + quote(value, safe=""), headers=as_owner))
            check(client.delete(path + quote(value, safe=""), headers=as_owner))
        check(client.post("/api/auth/login", json={"email": value, "password": value}))
        register = {"email": f"{value}@example.com", "password": PASSWORD, "name": value, "role": "client"}
        check(client.post("/api/auth/register", json=register))
        check(client.post("/api/auth/refresh", json={"refresh_token": value}))
        check(client.put("/api/auth/me", json={"name": value, "bio": value, "skills": [value]}, headers=as_owner))
        check(client.put("/api/auth/me", json={"hourly_rate": value}, headers=as_owner))
        check(client.post("/api/projects", json=project_body(title=f"Title {value}", category=value), headers=as_owner))
        check(client.post("/api/projects", json=project_body(budget_min=value), headers=as_owner))
        check(client.put(f"/api/projects/{project['id']}", json={"skills": [value]}, headers=as_owner))
        check(client.post("/api/proposals", json={"project_id": value}, headers=as_freelancer))
        check(
            client.post(
                "/api/contracts", json={"project_id": value, "freelancer_id": value, "amount": value}, headers=as_owner
            )
        )
        check(client.patch(f"/api/users/{quote(value, safe='')}", json={"role": "admin"}, headers=as_admin))
        check(client.post("/api/portfolio", json={"title": value, "image_url": value}, headers=as_freelancer))
        check(client.get(f"/api/uploads/{quote(value, safe='')}", headers=as_owner))
    assert problems == [], "\n".join(problems[:20])
