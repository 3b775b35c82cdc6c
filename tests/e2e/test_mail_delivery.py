"""Mail with real processes: a primary killed -9 between the commit and the send, and a reset through an edge."""

from __future__ import annotations

import re
import uuid

import httpx

from tests.e2e.regions import (
    REPLICATION_TOKEN,
    consistency_token,
    primary_env,
    start_edge,
    wait_until,
)
from tests.e2e.server import LiveServer
from tests.mailkit import SmtpServer, free_port, smtp_server  # noqa: F401

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new password"


def register(client: httpx.Client, base_url: str) -> tuple[str, dict[str, str], str]:
    """(e-mail, the answer's body, its consistency token)"""
    email = f"mail-{uuid.uuid4().hex[:12]}@example.com"
    body = {"email": email, "password": PASSWORD, "name": "Ann", "role": "client"}
    response = client.post(base_url + "/api/auth/register", json=body)
    assert response.status_code == 201, response.text
    return email, response.json(), response.headers["x-consistency-token"]


def metric(client: httpx.Client, base_url: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", client.get(base_url + "/api/health/metrics").text, re.MULTILINE)
    return float(found.group(1)) if found else -1.0


def test_a_reset_mail_committed_before_a_kill_9_goes_out_once_after_the_restart() -> None:
    port = free_port()  # the SMTP server is down until the primary has been killed
    env = {
        "SMTP_URL": f"smtp://127.0.0.1:{port}",
        "MAIL_RETRY_MIN_S": "0.05",
        "MAIL_RETRY_MAX_S": "0.2",
        "LOG_LEVEL": "info",
    }
    client = httpx.Client(timeout=10.0)
    first = LiveServer.start(env)
    second: LiveServer | None = None
    try:
        email, _, _ = register(client, first.url)
        asked = client.post(first.url + "/api/auth/password-reset", json={"email": email})
        assert asked.status_code == 202, asked.text
        position = consistency_token(asked)
        # Committed, tried, not sent: then the crash.
        wait_until(
            lambda: True if metric(client, first.url, "mail_send_failures_total") >= 1 else None, 20, "a failed send"
        )
        first.kill()
        with SmtpServer(port) as smtp:
            second = LiveServer.start(env, data_dir=first.data_dir, port=first.port)
            (mail,) = smtp.inbox.wait_for(email)
            wait_until(
                lambda: True if metric(client, second.url, "mail_outbox_pending") == 0 else None, 20, "outbox empty"
            )
            assert mail.message_id == f"<password_reset.{position}.0@megilance.local>"
            assert len(smtp.inbox.to(email)) == 1
            done = client.post(
                second.url + "/api/auth/password-reset/confirm",
                json={"token": mail.reset_token(), "new_password": NEW_PASSWORD},
            )
            assert done.status_code == 200, done.text
        second.stop()
        logs = "".join(p.read_text() for server in (first, second) for p in (server.stdout_path, server.stderr_path))
        assert "mail_send_failed" in logs and "mail_sent" in logs  # the logs were really captured
        assert mail.reset_token() not in logs and NEW_PASSWORD not in logs
    finally:
        client.close()
        for server in (first, second):
            if server is not None:
                server.kill()
                server.cleanup()


def test_a_reset_through_an_edge_ends_the_old_tokens_there_with_the_resets_consistency_token(
    smtp_server: SmtpServer,  # noqa: F811
) -> None:
    client = httpx.Client(timeout=10.0)
    primary = LiveServer.start({**primary_env(REPLICATION_TOKEN), "SMTP_URL": smtp_server.url})
    edge: LiveServer | None = None
    try:
        email, session, registered = register(client, primary.url)  # the edge starts once the log has an event
        edge = start_edge("ams", primary)
        old = {"Authorization": f"Bearer {session['access_token']}"}
        seen = client.get(edge.url + "/api/auth/me", headers={**old, "X-Consistency-Token": registered})
        assert seen.status_code == 200, seen.text

        asked = client.post(edge.url + "/api/auth/password-reset", json={"email": email})
        assert asked.status_code == 202, asked.text  # forwarded to the primary, which sends the mail
        (mail,) = smtp_server.inbox.wait_for(email)
        done = client.post(
            edge.url + "/api/auth/password-reset/confirm",
            json={"token": mail.reset_token(), "new_password": NEW_PASSWORD},
        )
        assert done.status_code == 200, done.text
        after = {"X-Consistency-Token": done.headers["x-consistency-token"]}
        me = client.get(edge.url + "/api/auth/me", headers={**old, **after})
        assert me.status_code == 401, me.text
        assert me.headers["x-region"] == "ams"  # refused by the edge itself, from its replicated sessions
        refreshed = client.post(edge.url + "/api/auth/refresh", json={"refresh_token": session["refresh_token"]})
        assert refreshed.status_code == 401, refreshed.text
        replay = client.post(
            edge.url + "/api/auth/password-reset/confirm",
            json={"token": mail.reset_token(), "new_password": "yet another password"},
        )
        assert replay.status_code == 400 and replay.json()["error_type"] == "reset_token_invalid"
        signed_in = client.post(edge.url + "/api/auth/login", json={"email": email, "password": NEW_PASSWORD})
        assert signed_in.status_code == 200, signed_in.text
    finally:
        client.close()
        if edge is not None:
            edge.kill()
            edge.cleanup()
        primary.kill()
        primary.cleanup()
