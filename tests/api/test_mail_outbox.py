"""The outbox: SMTP down then up (queued, then all delivered), SMTP auth, `.eml` files without SMTP, lag metric."""

from __future__ import annotations

import email
import email.policy
import io
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from api.app import create_app
from core.clock import Clock
from core.db import connect
from core.logging import configure
from tests.conftest import make_settings
from tests.mailkit import LINK, SmtpServer, free_port, self_signed, smtp_server, unique_email  # noqa: F401
from tests.support.accounts import signup

PASSWORD = "first-password-1"


def register(client: TestClient, name: str) -> str:
    """A client at an address of its own (the SMTP server is shared); returns the address."""
    address = unique_email(name)
    signup(client, email=address, name=name, password=PASSWORD)
    return address


def metric(client: TestClient, name: str) -> float:
    text = client.get("/api/health/metrics").text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found is not None, text
    return float(found.group(1))


def until(probe: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        threading.Event().wait(0.02)


def test_mail_waits_while_the_smtp_server_is_down_then_all_of_it_goes_out(tmp_path: Path) -> None:
    port = free_port()  # nothing listens here yet
    settings = make_settings(
        tmp_path, SMTP_URL=f"smtp://127.0.0.1:{port}", MAIL_RETRY_MIN_S=0.05, MAIL_RETRY_MAX_S=0.2, SMTP_TIMEOUT_S=2
    )
    with TestClient(create_app(settings, Clock()), raise_server_exceptions=False) as client:
        addresses = [register(client, f"User{i}") for i in range(4)]
        positions = []
        for address in addresses:
            response = client.post("/api/auth/password-reset", json={"email": address})
            assert response.status_code == 202
            positions.append(int(response.headers["x-consistency-token"]))
        until(lambda: metric(client, "mail_send_failures_total") >= 8, "two failed rounds")
        assert metric(client, "mail_outbox_pending") == 4
        # Queued, so the follower is not behind the log: what waits is the sending, and the gauges say so.
        until(lambda: metric(client, "mail_outbox_lag_events") == 0, "the follower caught up")
        assert metric(client, "mail_outbox_oldest_pending_seconds") > 0
        assert metric(client, "mail_sent_total") == 0

        with SmtpServer(port) as smtp:
            received = [smtp.inbox.wait_for(address)[0] for address in addresses]
            until(lambda: metric(client, "mail_outbox_pending") == 0, "the outbox emptied")
            assert metric(client, "mail_sent_total") == 4
            assert [m.message_id.split(".")[1] for m in received] == [str(p) for p in positions]
            assert len(smtp.inbox.messages) == 4  # each once: a failed attempt never half-sent one
    conn = connect(settings.resolved_database_url(), synchronous="NORMAL")
    try:
        rows = conn.execute(
            "SELECT attempts, sent_at, mail_token FROM mail_outbox JOIN password_resets "
            "ON json_extract(context, '$.reset_id') = reset_id"
        ).fetchall()
    finally:
        conn.close()
    assert len(rows) == 4 and all(attempts >= 3 and sent and token is None for attempts, sent, token in rows)


def test_smtp_credentials_from_the_url_are_used(tmp_path: Path) -> None:
    with SmtpServer(credentials=("mailer", "p@ss:word")) as smtp:
        url = f"smtp://mailer:p%40ss%3Aword@127.0.0.1:{smtp.port}"
        settings = make_settings(tmp_path, SMTP_URL=url, MAIL_FROM="Market <hello@market.example>")
        with TestClient(create_app(settings, Clock()), raise_server_exceptions=False) as client:
            address = register(client, "Ann")
            assert client.post("/api/auth/password-reset", json={"email": address}).status_code == 202
            (mail,) = smtp.inbox.wait_for(address)
        assert smtp.credentials.accepted == 1
    assert mail.message["From"] == "Market <hello@market.example>"
    assert mail.message_id.endswith("@market.example>")


def test_without_smtp_each_message_is_an_eml_file_and_the_log_names_it_not_the_token(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, LOG_LEVEL="info")
    app = create_app(settings, Clock())
    captured = io.StringIO()
    configure("info", stream=captured)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            address = register(client, "Ann")
            assert client.post("/api/auth/password-reset", json={"email": address}).status_code == 202
            until(lambda: "mail_sent" in captured.getvalue(), "the mailer's log line")
    finally:
        configure("warning")  # back to stdout for whoever comes next
    (path,) = (tmp_path / "outbox").glob("*.eml")
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    found = LINK.search(body.get_content())
    assert found is not None and found.group(1) == f"http://{settings.host}:{settings.port}"
    assert f"/reset-password?token={found.group(2)}".encode() in path.read_bytes()  # whole, on one line (7bit)
    logs = captured.getvalue()
    line = next(line for line in logs.splitlines() if "mail_sent" in line)
    assert str(path) in line
    assert found.group(2) not in logs


def test_a_message_that_cannot_be_rendered_is_retried_alone_and_holds_up_no_other(
    tmp_path: Path,
    smtp_server: SmtpServer,  # noqa: F811
) -> None:
    settings = make_settings(tmp_path, SMTP_URL=smtp_server.url, MAIL_RETRY_MIN_S=0.05, MAIL_RETRY_MAX_S=0.1)
    with TestClient(create_app(settings, Clock()), raise_server_exceptions=False) as client:
        conn = connect(settings.resolved_database_url(), synchronous="NORMAL")
        try:  # a row whose context lacks what its template needs (as an older release might have queued it)
            conn.execute(
                "INSERT INTO mail_outbox (message_id, position, kind, recipient, context, queued_at, next_attempt_at) "
                "VALUES ('<contract_created.0.0@megilance.local>', 0, 'contract_created', ?, '{}', "
                "'2000-01-01T00:00:00.000Z', '2000-01-01T00:00:00.000Z')",
                (unique_email("broken"),),
            )
        finally:
            conn.close()
        address = register(client, "Ann")
        assert client.post("/api/auth/password-reset", json={"email": address}).status_code == 202
        smtp_server.inbox.wait_for(address)
        until(lambda: metric(client, "mail_send_failures_total") >= 2, "the broken row retried")
        assert metric(client, "mail_outbox_pending") == 1


@pytest.mark.parametrize("mode", ["smtps", "starttls"])
def test_mail_goes_over_tls_implicit_or_upgraded_trusting_smtp_ca_file(tmp_path: Path, mode: str) -> None:
    ca_file, context = self_signed(tmp_path)
    tls = {"implicit_tls": context} if mode == "smtps" else {"starttls": context}
    with SmtpServer(**tls) as smtp:  # type: ignore[arg-type]
        url = smtp.url + ("?starttls=true" if mode == "starttls" else "")
        settings = make_settings(tmp_path, SMTP_URL=url, SMTP_CA_FILE=str(ca_file))
        with TestClient(create_app(settings, Clock()), raise_server_exceptions=False) as client:
            address = register(client, "Ann")
            assert client.post("/api/auth/password-reset", json={"email": address}).status_code == 202
            (mail,) = smtp.inbox.wait_for(address)
    assert mail.reset_token()


def test_an_smtp_certificate_no_trusted_authority_signed_is_refused(tmp_path: Path) -> None:
    _, context = self_signed(tmp_path)
    with SmtpServer(implicit_tls=context) as smtp:
        settings = make_settings(tmp_path, SMTP_URL=smtp.url, MAIL_RETRY_MIN_S=0.05, MAIL_RETRY_MAX_S=0.1)
        with TestClient(create_app(settings, Clock()), raise_server_exceptions=False) as client:
            address = register(client, "Ann")
            assert client.post("/api/auth/password-reset", json={"email": address}).status_code == 202
            until(lambda: metric(client, "mail_send_failures_total") >= 2, "refused handshakes")
            assert metric(client, "mail_outbox_pending") == 1
        assert smtp.inbox.messages == []
