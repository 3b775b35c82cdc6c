"""Password reset over HTTP, with the mail read back from a real SMTP server."""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from core.clock import FakeClock
from core.settings import Settings
from ops.cli import app as cli
from tests.conftest import make_settings
from tests.mailkit import Received, SmtpServer, smtp_server, unique_email  # noqa: F401
from tests.support.accounts import bearer, make_admin, signup

PASSWORD = "first-password-1"
NEW_PASSWORD = "second-password-2"
BASE_URL = "https://app.example.test"
ACCEPTED_KEYS = {"detail"}
Json = dict[str, Any]


def mail_settings(data_dir: Path, smtp: SmtpServer, **overrides: object) -> Settings:
    return make_settings(data_dir, SMTP_URL=smtp.url, PUBLIC_BASE_URL=BASE_URL, **overrides)


@pytest.fixture
def client(tmp_path: Path, smtp_server: SmtpServer, clock: FakeClock) -> Iterator[TestClient]:  # noqa: F811
    with TestClient(create_app(mail_settings(tmp_path, smtp_server), clock), raise_server_exceptions=False) as c:
        yield c


def register(client: TestClient, name: str = "Ann", role: str = "client") -> Json:
    """An account at an address of its own (the SMTP server is shared), with this module's password."""
    return signup(client, role, email=unique_email(name), name=name, password=PASSWORD)


def login(client: TestClient, email: str, password: str = PASSWORD) -> Any:
    return client.post("/api/auth/login", json={"email": email, "password": password})


def ask_reset(client: TestClient, email: str) -> Any:
    response = client.post("/api/auth/password-reset", json={"email": email})
    assert response.status_code == 202, response.text
    assert set(response.json()) == ACCEPTED_KEYS
    return response


def reset_mail(smtp: SmtpServer, email: str, count: int = 1) -> Received:
    return smtp.inbox.wait_for(email, count)[count - 1]


def confirm(client: TestClient, token: str, password: str = NEW_PASSWORD) -> Any:
    return client.post("/api/auth/password-reset/confirm", json={"token": token, "new_password": password})


def assert_invalid_token(response: Any) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"detail", "error_type"} and body["error_type"] == "reset_token_invalid"


def test_the_whole_reset_flow_sets_the_password_and_ends_every_session(
    client: TestClient,
    smtp_server: SmtpServer,  # noqa: F811
) -> None:
    ann = register(client)
    email = ann["user"]["email"]
    second = login(client, email).json()  # another device
    before = ask_reset(client, email.upper())  # the address is compared case-insensitively

    mail = reset_mail(smtp_server, email)
    position = int(before.headers["x-consistency-token"])
    assert re.fullmatch(rf"<password_reset\.{position}\.0@[a-z0-9.-]+>", mail.message_id), mail.message_id
    text, html = mail.part("plain"), mail.part("html")
    token = mail.reset_token()
    assert f"{BASE_URL}/reset-password?token={token}" in text
    assert f'href="{BASE_URL}/reset-password?token={token}"' in html
    assert mail.message["To"] == email and "Ann" in text

    done = confirm(client, token)
    assert done.status_code == 200, done.text
    assert set(done.json()) == ACCEPTED_KEYS
    consistency = {"X-Consistency-Token": done.headers["x-consistency-token"]}
    for session in (ann, second):
        me = client.get("/api/auth/me", headers={**bearer(session["access_token"]), **consistency})
        assert me.status_code == 401, me.text
        refreshed = client.post("/api/auth/refresh", json={"refresh_token": session["refresh_token"]})
        assert refreshed.status_code == 401, refreshed.text
    assert login(client, email).status_code == 401
    assert login(client, email, NEW_PASSWORD).status_code == 200
    assert_invalid_token(confirm(client, token, "third-password-3"))  # a token works once
    assert login(client, email, NEW_PASSWORD).status_code == 200


def test_the_audit_trail_shows_the_requested_and_the_completed_reset(
    client: TestClient,
    smtp_server: SmtpServer,  # noqa: F811
) -> None:
    ann = register(client)
    ask_reset(client, ann["user"]["email"])
    assert confirm(client, reset_mail(smtp_server, ann["user"]["email"]).reset_token()).status_code == 200

    settings = client.app.state.runtime.settings  # type: ignore[attr-defined]
    env = {"DATA_DIR": str(settings.data_dir), "SECRET_KEY": settings.secret_key, "ENVIRONMENT": "test"}
    result = CliRunner().invoke(cli, ["audit", "--user", ann["user"]["id"]], env=env)
    assert result.exit_code == 0, result.output
    types = [line.split()[2] for line in result.output.splitlines()]
    assert types.count("PasswordResetRequested") == 1 and types.count("PasswordResetCompleted") == 1
    assert types.index("PasswordResetRequested") < types.index("PasswordResetCompleted")
    assert "SessionRevoked" in types[types.index("PasswordResetCompleted") :]


def test_an_unknown_address_gets_the_same_answer_and_no_mail(
    client: TestClient,
    smtp_server: SmtpServer,  # noqa: F811
) -> None:
    ann = register(client)
    stranger = unique_email("nobody")
    unknown = ask_reset(client, stranger)
    known = ask_reset(client, ann["user"]["email"])
    assert unknown.json() == known.json()
    # Both moved the log by one event: the position an answer carries does not tell them apart either.
    assert int(known.headers["x-consistency-token"]) == int(unknown.headers["x-consistency-token"]) + 1
    reset_mail(smtp_server, ann["user"]["email"])  # sent after anything the first request could have queued
    assert smtp_server.inbox.to(stranger) == []


def test_a_deactivated_account_gets_no_mail_and_cannot_spend_a_token(
    client: TestClient,
    smtp_server: SmtpServer,  # noqa: F811
) -> None:
    admin, ann, bob = (
        make_admin(client, email=unique_email("root"), password=PASSWORD),
        register(client),
        register(client, "Bob"),
    )
    ask_reset(client, ann["user"]["email"])
    token = reset_mail(smtp_server, ann["user"]["email"]).reset_token()
    switched = client.patch(
        f"/api/users/{ann['user']['id']}", json={"is_active": False}, headers=bearer(admin["access_token"])
    )
    assert switched.status_code == 200, switched.text
    assert_invalid_token(confirm(client, token))
    ask_reset(client, ann["user"]["email"])
    ask_reset(client, bob["user"]["email"])
    reset_mail(smtp_server, bob["user"]["email"])  # queued after Ann's second request
    assert len(smtp_server.inbox.to(ann["user"]["email"])) == 1


def test_unknown_expired_and_malformed_tokens_are_refused(
    client: TestClient,
    smtp_server: SmtpServer,  # noqa: F811
    clock: FakeClock,
) -> None:
    assert_invalid_token(confirm(client, "not-a-token-anyone-was-given"))
    ann = register(client)
    ask_reset(client, ann["user"]["email"])
    token = reset_mail(smtp_server, ann["user"]["email"]).reset_token()
    clock.advance(minutes=30)
    assert_invalid_token(confirm(client, token))  # valid for PASSWORD_RESET_TTL_MINUTES (30): not at 30
    assert login(client, ann["user"]["email"]).status_code == 200  # nothing changed
    short = client.post("/api/auth/password-reset/confirm", json={"token": token, "new_password": "short"})
    assert short.status_code == 422 and short.json()["error_type"] == "validation_failed"
    extra = client.post("/api/auth/password-reset", json={"email": ann["user"]["email"], "role": "admin"})
    assert extra.status_code == 422


def test_a_later_reset_spends_the_earlier_tokens_too(
    client: TestClient,
    smtp_server: SmtpServer,  # noqa: F811
) -> None:
    ann = register(client)
    email = ann["user"]["email"]
    ask_reset(client, email)
    ask_reset(client, email)
    first, second = (m.reset_token() for m in smtp_server.inbox.wait_for(email, 2))
    assert first != second
    assert confirm(client, second).status_code == 200
    assert_invalid_token(confirm(client, first))


def test_at_most_three_mails_an_hour_per_account_even_without_rate_limits(
    client: TestClient,
    smtp_server: SmtpServer,  # noqa: F811
    clock: FakeClock,
) -> None:
    ann, bob = register(client), register(client, "Bob")
    for _ in range(5):
        ask_reset(client, ann["user"]["email"])
    ask_reset(client, bob["user"]["email"])
    reset_mail(smtp_server, bob["user"]["email"])  # queued after all five of Ann's
    assert len(smtp_server.inbox.to(ann["user"]["email"])) == 3
    clock.advance(minutes=61)
    ask_reset(client, ann["user"]["email"])
    reset_mail(smtp_server, ann["user"]["email"], 4)


def test_rate_limits_per_address_asked_for_and_per_client_address(
    tmp_path: Path,
    smtp_server: SmtpServer,  # noqa: F811
    clock: FakeClock,
) -> None:
    settings = mail_settings(tmp_path, smtp_server, RATE_LIMIT_ENABLED=True, RATE_LIMIT_AUTH_PER_MINUTE=10)
    with TestClient(create_app(settings, clock), raise_server_exceptions=False) as client:
        ann = register(client)  # 1 request of this client address
        stranger = unique_email("nobody")
        for email in (ann["user"]["email"], stranger):  # an account or not: the same limit, the same answer
            for _ in range(3):
                ask_reset(client, email)
            refused = client.post("/api/auth/password-reset", json={"email": email})
            assert refused.status_code == 429 and refused.json()["error_type"] == "rate_limited"
            assert int(refused.headers["retry-after"]) > 60  # a mail an hour: the window is an hour
        # 1 + 8 requests so far from this client address: the 10th passes, the 11th is over its 10 a minute
        assert client.post("/api/auth/password-reset", json={"email": unique_email("carol")}).status_code == 202
        other = client.post("/api/auth/password-reset", json={"email": unique_email("carol")})
        assert other.status_code == 429
        assert (
            client.post("/api/auth/password-reset/confirm", json={"token": "x", "new_password": "y" * 8}).status_code
            == 429
        )


def test_unknown_and_known_addresses_answer_in_the_same_time(
    client: TestClient,
    smtp_server: SmtpServer,  # noqa: F811
) -> None:
    """Interleaved, so load on the machine hits both alike; the bound is loose (noise here is milliseconds)
    but far below what a mail sent inline, or a skipped commit, would add to one side."""
    accounts = [register(client, f"User{i}")["user"]["email"] for i in range(30)]
    known: list[float] = []
    unknown: list[float] = []
    for email in accounts:
        for address, into in ((email, known), (unique_email("nobody"), unknown)):
            started = time.perf_counter()
            ask_reset(client, address)
            into.append(time.perf_counter() - started)
    fast, slow = sorted((statistics.median(known), statistics.median(unknown)))
    print(f"median known {statistics.median(known) * 1000:.2f} ms, unknown {statistics.median(unknown) * 1000:.2f} ms")
    assert slow - fast < 0.5 * slow + 0.002, (known, unknown)
