"""Expired write-side rows, deleted in bounded batches so the table a user can grow stays bounded.

Idempotency records are replayed for 24 hours and ignored after (`idempotency.WINDOW`). A refresh token
past its expiry is refused by its own signature check before its row is read; rows are kept a day longer
for clock skew. Neither deletion changes an answer. Wallet nonces are purged as new ones are issued.
Password resets go a day after they expire (a token past its expiry is refused however it is stored), and
sent mail a month after it went (its row only answers "was this event's message sent?").
"""

from __future__ import annotations

from datetime import datetime, timedelta

from core.clock import rfc3339, rfc3339_ms
from core.db import Connection
from core.idempotency import WINDOW

BATCH = 5000  # rows of each kind per call: one call is one short write transaction
REFRESH_GRACE = timedelta(days=1)
SENT_MAIL_KEPT = timedelta(days=30)
DELETE_IDEMPOTENCY = (
    "DELETE FROM idempotency_keys WHERE (user_id, key) IN "
    "(SELECT user_id, key FROM idempotency_keys WHERE created_at < ? ORDER BY created_at LIMIT ?)"
)
DELETE_REFRESH = (
    "DELETE FROM refresh_tokens WHERE jti IN "
    "(SELECT jti FROM refresh_tokens WHERE expires_at < ? ORDER BY expires_at LIMIT ?)"
)

DELETE_RESETS = (
    "DELETE FROM password_resets WHERE reset_id IN "
    "(SELECT reset_id FROM password_resets WHERE expires_at < ? ORDER BY expires_at LIMIT ?)"
)
DELETE_SENT_MAIL = (
    "DELETE FROM mail_outbox WHERE message_id IN "
    "(SELECT message_id FROM mail_outbox WHERE sent_at < ? ORDER BY sent_at LIMIT ?)"
)


def purge_expired(conn: Connection, now: datetime, batch: int = BATCH) -> int:
    """Delete up to `batch` expired rows of each kind; returns the larger count (call again while it is `batch`)."""
    keys = conn.execute(DELETE_IDEMPOTENCY, (rfc3339_ms(now - WINDOW), batch)).rowcount
    tokens = conn.execute(DELETE_REFRESH, (rfc3339(now - REFRESH_GRACE), batch)).rowcount
    resets = conn.execute(DELETE_RESETS, (rfc3339_ms(now - REFRESH_GRACE), batch)).rowcount
    mails = conn.execute(DELETE_SENT_MAIL, (rfc3339_ms(now - SENT_MAIL_KEPT), batch)).rowcount
    return max(keys, tokens, resets, mails)
