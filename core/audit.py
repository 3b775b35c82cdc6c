"""The audit trail of one account, straight from the log (primary): sign-ins, reuse, role and status."""

from __future__ import annotations

from collections.abc import Iterator

import orjson

from core.db import Connection

AUDITED = (
    "UserRegistered",
    "SessionOpened",
    "SessionRevoked",
    "RefreshTokenReused",
    "LoginFailed",
    "UserRoleChanged",
    "UserDeactivated",
    "UserReactivated",
    "UserPasswordChanged",
    "PasswordResetRequested",
    "PasswordResetCompleted",
)
SELECT_TRAIL = (
    "SELECT position, recorded_at, type, data, meta FROM events "
    f"WHERE type IN ({', '.join('?' * len(AUDITED))}) AND json_extract(data, '$.user_id') = ? ORDER BY position"
)


def audit_trail(conn: Connection, user_id: str) -> Iterator[str]:
    """What happened to this account's security, one line per event?"""
    for position, recorded_at, event_type, data, meta in conn.execute(SELECT_TRAIL, (*AUDITED, user_id)).fetchall():
        m = orjson.loads(meta)
        details = {k: v for k, v in orjson.loads(data).items() if k not in ("user_id", "email", "name")}
        yield (
            f"{recorded_at} #{position} {event_type} request={m.get('request_id')} ip_hash={m.get('ip_hash')} "
            f"actor={m.get('actor')} {orjson.dumps(details).decode()}"
        )
