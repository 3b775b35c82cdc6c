"""Passwords, tokens and keys never reach the logs, and passwords never reach the event log."""

from __future__ import annotations

import email
import email.policy
import io
import logging
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from starlette.testclient import TestClient

from api.app import create_app
from commands.password_reset import token_hash
from core.clock import FakeClock
from core.logging import configure
from core.settings import Settings
from node.runtime import open_primary
from tests.conftest import make_settings

PASSWORD = "Initial-Secret-Pass-41"
NEW_PASSWORD = "Replaced-Secret-Pass-42"
WRONG_PASSWORD = "Wrong-Guess-Secret-43"
TOO_LONG = "Overlong-Secret-" + "z" * 120
JWT_KEY = "ring-key-" + "q" * 40
RESET_PASSWORD = "Reset-Secret-Pass-44"
LINK = re.compile(r"/reset-password\?token=([A-Za-z0-9_-]+)")


@pytest.fixture
def log_settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, LOG_LEVEL="debug", JWT_KEYS=f"k1:{JWT_KEY}")


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    yield io.StringIO()
    configure("warning")  # back to stdout for whoever comes next


def run_flow(client: TestClient, secrets: list[str]) -> None:
    """Every auth path that handles a password or a token, successful and not."""

    def keep(body: dict[str, object]) -> None:
        secrets.extend(str(body[k]) for k in ("access_token", "refresh_token") if k in body)

    registered = client.post(
        "/api/auth/register", json={"email": "ann@example.com", "password": PASSWORD, "name": "Ann", "role": "client"}
    )
    assert registered.status_code == 201
    keep(registered.json())
    assert (
        client.post(
            "/api/auth/register",
            json={"email": "bob@example.com", "password": TOO_LONG, "name": "Bob", "role": "client"},
        ).status_code
        == 422
    )
    assert (
        client.post(
            "/api/auth/register",
            json={"email": "ANN@example.com", "password": PASSWORD, "name": "Ann", "role": "client"},
        ).status_code
        == 409
    )
    assert (
        client.post("/api/auth/login", json={"email": "ann@example.com", "password": WRONG_PASSWORD}).status_code == 401
    )
    logged_in = client.post("/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD})
    assert logged_in.status_code == 200
    keep(logged_in.json())
    refreshed = client.post("/api/auth/refresh", json={"refresh_token": logged_in.json()["refresh_token"]})
    assert refreshed.status_code == 200
    keep(refreshed.json())
    access = refreshed.json()["access_token"]
    headers = {"Authorization": f"Bearer {access}"}
    assert client.get("/api/auth/me", headers=headers).status_code == 200
    assert (
        client.put(
            "/api/auth/me", json={"password": NEW_PASSWORD, "current_password": WRONG_PASSWORD}, headers=headers
        ).status_code
        == 401
    )
    assert client.put("/api/auth/me", json={"password": NEW_PASSWORD}, headers=headers).status_code == 422
    changed = client.put(
        "/api/auth/me",
        json={"password": NEW_PASSWORD, "current_password": PASSWORD, "bio": "changed my password"},
        headers=headers,
    )
    assert changed.status_code == 200
    again = client.post("/api/auth/login", json={"email": "ann@example.com", "password": NEW_PASSWORD})
    assert again.status_code == 200
    keep(again.json())
    # a spent token presented again (reuse), a token of the wrong type, logout
    assert (
        client.post("/api/auth/refresh", json={"refresh_token": logged_in.json()["refresh_token"]}).status_code == 401
    )
    assert (
        client.get("/api/auth/me", headers={"Authorization": f"Bearer {again.json()['refresh_token']}"}).status_code
        == 401
    )
    logout = client.post(
        "/api/auth/logout",
        json={"refresh_token": again.json()["refresh_token"]},
        headers={"Authorization": f"Bearer {again.json()['access_token']}"},
    )
    assert logout.status_code == 204
    reset_flow(client, secrets)


def reset_flow(client: TestClient, secrets: list[str]) -> None:
    """A password reset by mail (an .eml file: no SMTP_URL here), the token spent, then replayed."""
    assert client.post("/api/auth/password-reset", json={"email": "ann@example.com"}).status_code == 202
    outbox = client.app.state.runtime.settings.data_dir / "outbox"  # type: ignore[attr-defined]
    deadline = time.monotonic() + 15
    while not (outbox.exists() and any(outbox.glob("*.eml"))):
        assert time.monotonic() < deadline, "no reset mail written"
        threading.Event().wait(0.02)
    (path,) = outbox.glob("*.eml")
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    body = message.get_body(preferencelist=("plain",))
    found = LINK.search(body.get_content() if body is not None else "")
    assert found is not None
    token = found.group(1)
    secrets.extend([token, token_hash(token)])
    spend = {"token": token, "new_password": RESET_PASSWORD}
    assert client.post("/api/auth/password-reset/confirm", json=spend).status_code == 200
    assert client.post("/api/auth/password-reset/confirm", json=spend).status_code == 400
    bad = client.post("/api/auth/password-reset/confirm", json={"token": token, "new_password": "short"})
    assert bad.status_code == 422
    signed_in = client.post("/api/auth/login", json={"email": "ann@example.com", "password": RESET_PASSWORD})
    assert signed_in.status_code == 200
    secrets.extend(str(signed_in.json()[k]) for k in ("access_token", "refresh_token"))


def test_no_secret_reaches_the_logs_or_the_event_log(
    log_settings: Settings,
    clock: FakeClock,
    captured: io.StringIO,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = [PASSWORD, NEW_PASSWORD, WRONG_PASSWORD, TOO_LONG, log_settings.secret_key, JWT_KEY, RESET_PASSWORD]
    app = create_app(log_settings, clock)
    configure("debug", stream=captured)
    with TestClient(app, raise_server_exceptions=False) as client:
        run_flow(client, secrets)

    logs = captured.getvalue()
    assert [orjson.loads(line)["event"] for line in logs.splitlines()].count("request") >= 14, (
        logs
    )  # the capture really saw the access log
    out = capsys.readouterr()
    stdlib = "\n".join(record.getMessage() for record in caplog.records)
    for secret in secrets:
        assert secret not in logs
        assert secret not in out.out and secret not in out.err
        assert secret not in stdlib
    # not even a token's signature (the part that makes it usable) leaks on its own
    for token in secrets[7:]:
        if token.count(".") == 2:  # a JWT
            assert token.rsplit(".", 1)[1] not in logs

    conn = open_primary(log_settings)
    try:
        events = conn.execute("SELECT type, data, meta FROM events").fetchall()
        hashes = [row[0] for row in conn.execute("SELECT password_hash FROM credentials").fetchall()]
        outbox_rows = conn.execute("SELECT context, last_error FROM mail_outbox").fetchall()
        clear_tokens = conn.execute("SELECT COUNT(*) FROM password_resets WHERE mail_token IS NOT NULL").fetchone()
    finally:
        conn.close()
    assert {row[0] for row in events} >= {
        "UserRegistered",
        "SessionOpened",
        "LoginFailed",
        "UserPasswordChanged",
        "UserProfileUpdated",
        "RefreshTokenReused",
        "SessionRevoked",
        "PasswordResetRequested",
        "PasswordResetCompleted",
    }
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)
    assert outbox_rows and clear_tokens == (0,)  # the token in clear is gone once the mail went out
    for context, error in outbox_rows:
        for secret in secrets:
            assert secret not in context and secret not in (error or "")
    for _, data, meta in events:
        for secret in [*secrets, *hashes]:
            assert secret not in data, data
            assert secret not in meta, meta
        assert "password_hash" not in data
    for line in logs.splitlines():
        for password_hash in hashes:
            assert password_hash not in line
