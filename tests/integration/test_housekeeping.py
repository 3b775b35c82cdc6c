"""Expired idempotency records and refresh tokens are deleted, oldest first and a bounded batch at a time; rows
still in use are kept. From its start the primary purges what expired while it was down, without delaying the start."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from starlette.testclient import TestClient

from api.app import create_app
from core.clock import FakeClock, rfc3339, rfc3339_ms
from core.housekeeping import REFRESH_GRACE, purge_expired
from core.idempotency import WINDOW
from core.settings import Settings
from tests.integration.logfile import open_db
from tests.support.accounts import PASSWORD, register
from tests.support.market import PROJECT
from tests.support.races import db_rows

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
INSERT_KEY = "INSERT INTO idempotency_keys (user_id, key, fingerprint, created_at) VALUES ('u', ?, 'f', ?)"
INSERT_TOKEN = (
    "INSERT INTO refresh_tokens (jti, family_id, user_id, issued_at, expires_at) VALUES (?, 'fam', 'u', ?, ?)"
)


def test_only_expired_rows_go_oldest_first_a_batch_at_a_time(db_path: str) -> None:
    conn = open_db(db_path)
    # ages beyond the idempotency window, and hours since a refresh token expired (negative: not yet)
    for name, hours in (("k-old", 26), ("k-older", 66), ("k-oldest", 176), ("k-live", -1), ("k-edge", 0)):
        conn.execute(INSERT_KEY, (name, rfc3339_ms(NOW - WINDOW - timedelta(hours=hours))))
    grace_h = REFRESH_GRACE.total_seconds() / 3600
    for name, hours in (("t-old", grace_h + 1), ("t-older", grace_h + 5), ("t-expired-lately", 1), ("t-live", -5)):
        conn.execute(INSERT_TOKEN, (name, rfc3339(NOW - timedelta(days=7)), rfc3339(NOW - timedelta(hours=hours))))

    assert purge_expired(conn, NOW, batch=2) == 2
    keys = {row[0] for row in conn.execute("SELECT key FROM idempotency_keys").fetchall()}
    tokens = {row[0] for row in conn.execute("SELECT jti FROM refresh_tokens").fetchall()}
    assert keys == {"k-old", "k-live", "k-edge"}  # the two oldest went first
    assert tokens == {"t-expired-lately", "t-live"}  # within the grace day, and live, are kept

    assert purge_expired(conn, NOW, batch=2) == 1
    assert purge_expired(conn, NOW, batch=2) == 0
    keys = {row[0] for row in conn.execute("SELECT key FROM idempotency_keys").fetchall()}
    assert keys == {"k-live", "k-edge"}  # exactly at the window's end is still inside it
    conn.close()


def test_the_primary_purges_at_start_what_expired_while_it_was_down(settings: Settings) -> None:
    clock = FakeClock(current=NOW)
    with TestClient(create_app(settings, clock)) as client:
        owner = register(client, "client", "Ada")
        posted = client.post("/api/projects", json=PROJECT, headers={**owner.headers, "Idempotency-Key": "k1"})
        assert posted.status_code == 201
    assert db_rows(settings, "SELECT COUNT(*) FROM idempotency_keys") == [(1,)]
    assert db_rows(settings, "SELECT COUNT(*) FROM refresh_tokens") == [(1,)]

    clock.advance(minutes=settings.refresh_token_expire_minutes, days=1, seconds=1)
    with TestClient(create_app(settings, clock)) as client:
        # the start did not wait for the first pass; a pass that never ends fails here instead of hanging
        client.portal.call(asyncio.wait_for, client.app.state.housekept.wait(), 10)
        assert db_rows(settings, "SELECT COUNT(*) FROM idempotency_keys") == [(0,)]
        assert db_rows(settings, "SELECT COUNT(*) FROM refresh_tokens") == [(0,)]
        body = {"email": "new@example.com", "password": PASSWORD, "name": "Bo", "role": "freelancer"}
        refresh = client.post("/api/auth/register", json=body).json()["refresh_token"]
        answer = client.post("/api/auth/refresh", json={"refresh_token": refresh})
        assert answer.status_code == 200, answer.text


INSERT_RESET = (
    "INSERT INTO password_resets (reset_id, user_id, token_hash, requested_at, expires_at) VALUES (?, 'u', ?, ?, ?)"
)
INSERT_MAIL = (
    "INSERT INTO mail_outbox (message_id, position, kind, recipient, context, queued_at, next_attempt_at, sent_at) "
    "VALUES (?, 1, 'password_reset', 'a@example.com', '{}', ?, ?, ?)"
)


def test_expired_resets_and_month_old_sent_mail_go_unsent_mail_stays(db_path: str) -> None:
    conn = open_db(db_path)
    day = timedelta(days=1)
    for name, expired in (("r-old", NOW - REFRESH_GRACE - day), ("r-lately", NOW - timedelta(hours=1))):
        conn.execute(INSERT_RESET, (name, name, rfc3339_ms(expired - timedelta(minutes=30)), rfc3339_ms(expired)))
    old, recent = rfc3339_ms(NOW - timedelta(days=31)), rfc3339_ms(NOW - day)
    for name, sent in (("<m-old>", old), ("<m-recent>", recent), ("<m-unsent>", None)):
        conn.execute(INSERT_MAIL, (name, old, old, sent))

    assert purge_expired(conn, NOW) == 1
    assert {row[0] for row in conn.execute("SELECT reset_id FROM password_resets").fetchall()} == {"r-lately"}
    mails = {row[0] for row in conn.execute("SELECT message_id FROM mail_outbox").fetchall()}
    assert mails == {"<m-recent>", "<m-unsent>"}  # however old, a message not sent yet is never dropped
    conn.close()
