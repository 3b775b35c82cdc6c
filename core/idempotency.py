"""Idempotency keys: claimed in the command's own transaction, completed with the response after it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from core.clock import rfc3339_ms
from core.db import Connection, is_unique_violation
from core.errors import Conflict, ValidationFailed

WINDOW = timedelta(hours=24)
# A request answers within seconds of its command's commit; a claim still unanswered after this long lost its
# answer (the process stopped, or storing it failed) and never will have one.
ANSWER_DEADLINE = timedelta(minutes=5)
SELECT = (
    "SELECT fingerprint, status, body, position, created_at, etag, boot, resource_type, resource_id "
    "FROM idempotency_keys WHERE user_id = ? AND key = ?"
)
SELECT_FINGERPRINT = "SELECT fingerprint FROM idempotency_keys WHERE user_id = ? AND key = ?"
INSERT = "INSERT INTO idempotency_keys (user_id, key, fingerprint, created_at) VALUES (?, ?, ?, ?)"
DELETE_EXPIRED = "DELETE FROM idempotency_keys WHERE user_id = ? AND key = ? AND created_at < ?"
RECORD_OUTCOME = (
    "UPDATE idempotency_keys SET boot = ?, position = ?, resource_type = ?, resource_id = ? "
    "WHERE user_id = ? AND key = ?"
)
COMPLETE = "UPDATE idempotency_keys SET status = ?, body = ?, position = ?, etag = ? WHERE user_id = ? AND key = ?"


@dataclass(frozen=True, slots=True)
class Claim:
    """Who claims which key for which request (method, path and validated body hashed)."""

    user_id: str
    key: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Stored:
    fingerprint: str
    status: int | None
    body: bytes | None
    position: int | None
    etag: str | None
    lost: bool = False  # applied, but its answer was never stored (see ANSWER_DEADLINE)
    boot: str | None = None  # the process that applied it (recorded with the claim; None before that was kept)
    resource: tuple[str, str] | None = None  # (stream type, id) of the command's first event, if it had one


def lookup(conn: Connection, user_id: str, key: str, now: datetime) -> Stored | None:
    row = conn.execute(SELECT, (user_id, key)).fetchone()
    if row is None:
        return None
    fingerprint, status, body, position, created_at, etag, boot, resource_type, resource_id = row
    if created_at < rfc3339_ms(now - WINDOW):
        return None
    lost = status is None and created_at < rfc3339_ms(now - ANSWER_DEADLINE)
    resource = (resource_type, resource_id) if resource_type is not None and resource_id is not None else None
    return Stored(fingerprint, status, bytes(body) if body is not None else None, position, etag, lost, boot, resource)


def claim(conn: Connection, c: Claim, now: datetime) -> None:
    """Inside the command's transaction: a concurrent twin collides here and is refused (a different request
    with the key as reused, as the lookup before it would have had the first one committed)."""
    conn.execute(DELETE_EXPIRED, (c.user_id, c.key, rfc3339_ms(now - WINDOW)))
    try:
        conn.execute(INSERT, (c.user_id, c.key, c.fingerprint, rfc3339_ms(now)))
    except Exception as exc:
        if is_unique_violation(exc):
            (first,) = conn.execute(SELECT_FINGERPRINT, (c.user_id, c.key)).fetchone()
            if first != c.fingerprint:
                raise ValidationFailed(
                    "This Idempotency-Key was used for a different request", "idempotency_key_reused"
                ) from exc
            raise Conflict(
                "A request with this Idempotency-Key is already being processed", "idempotency_in_progress"
            ) from exc
        raise


def record_outcome(conn: Connection, c: Claim, boot: str, position: int, resource: tuple[str, str] | None) -> None:
    """Inside the command's transaction, after its events: who applied it, at which position, to what resource.
    Committed with the events or not at all, so a retry after a crash learns at once that the command happened."""
    kind, ident = resource if resource is not None else (None, None)
    conn.execute(RECORD_OUTCOME, (boot, position, kind, ident, c.user_id, c.key))


def complete(conn: Connection, c: Claim, status: int, body: bytes, position: int, etag: str | None) -> None:
    conn.execute(COMPLETE, (status, body, position, etag, c.user_id, c.key))
