"""The mail outbox tables (primary only): the mailer's checkpoint in the log, and one row per message."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from core.clock import rfc3339_ms
from core.db import Connection

SELECT_CHECKPOINT = "SELECT position FROM mail_checkpoint WHERE id = 1"
UPDATE_CHECKPOINT = "UPDATE mail_checkpoint SET position = ? WHERE id = 1"
# A message id is the event's position and the recipient's place: queuing the same event again changes nothing.
INSERT_MESSAGE = (
    "INSERT OR IGNORE INTO mail_outbox (message_id, position, kind, recipient, context, queued_at, next_attempt_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
SELECT_DUE = (
    "SELECT message_id, position, kind, recipient, context, attempts FROM mail_outbox "
    "WHERE sent_at IS NULL AND next_attempt_at <= ? ORDER BY next_attempt_at, position LIMIT ?"
)
SELECT_NEXT_DUE = "SELECT MIN(next_attempt_at) FROM mail_outbox WHERE sent_at IS NULL"
SELECT_PENDING = "SELECT COUNT(*), MIN(queued_at) FROM mail_outbox WHERE sent_at IS NULL"
MARK_SENT = "UPDATE mail_outbox SET sent_at = ?, attempts = attempts + 1, last_error = NULL WHERE message_id = ?"
MARK_FAILED = (
    "UPDATE mail_outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? "
    "WHERE message_id = ? AND sent_at IS NULL"
)
SELECT_RESET_TOKEN = "SELECT mail_token FROM password_resets WHERE reset_id = ?"
FORGET_RESET_TOKEN = "UPDATE password_resets SET mail_token = NULL WHERE reset_id = ?"


@dataclass(frozen=True, slots=True)
class Queued:
    """A message to send, as the outbox keeps it: what to render, for whom; never a secret."""

    message_id: str
    position: int
    kind: str
    recipient: str
    context: dict[str, Any]
    attempts: int = 0


def checkpoint(conn: Connection) -> int:
    row = conn.execute(SELECT_CHECKPOINT).fetchone()
    return int(row[0]) if row else 0


def queue(conn: Connection, messages: list[Queued], position: int, now: datetime) -> None:
    """Queue the messages of every event up to `position`, and move the checkpoint there, in one transaction."""
    at = rfc3339_ms(now)
    for m in messages:
        conn.execute(
            INSERT_MESSAGE, (m.message_id, m.position, m.kind, m.recipient, orjson.dumps(m.context).decode(), at, at)
        )
    conn.execute(UPDATE_CHECKPOINT, (position,))


def due(conn: Connection, now: datetime, limit: int) -> list[Queued]:
    rows = conn.execute(SELECT_DUE, (rfc3339_ms(now), limit)).fetchall()
    return [
        Queued(message_id, int(position), kind, recipient, orjson.loads(context), int(attempts))
        for message_id, position, kind, recipient, context, attempts in rows
    ]


def next_due(conn: Connection) -> str | None:
    row = conn.execute(SELECT_NEXT_DUE).fetchone()
    return str(row[0]) if row and row[0] is not None else None


def pending(conn: Connection) -> tuple[int, str | None]:
    """How many messages wait, and since when the oldest."""
    count, oldest = conn.execute(SELECT_PENDING).fetchone()
    return int(count), oldest


def mark_sent(conn: Connection, message: Queued, now: datetime) -> None:
    """Sent: the row stays (its id answers a replay); a reset's token in clear is dropped with it."""
    conn.execute(MARK_SENT, (rfc3339_ms(now), message.message_id))
    if message.kind == "password_reset":
        conn.execute(FORGET_RESET_TOKEN, (message.context["reset_id"],))


def mark_failed(conn: Connection, message: Queued, retry_at: datetime, error: str) -> None:
    conn.execute(MARK_FAILED, (rfc3339_ms(retry_at), error[:500], message.message_id))


def reset_token(conn: Connection, reset_id: str) -> str | None:
    """The clear token of a reset whose mail has not gone yet (None once sent, spent or purged)."""
    row = conn.execute(SELECT_RESET_TOKEN, (reset_id,)).fetchone()
    return str(row[0]) if row and row[0] is not None else None
