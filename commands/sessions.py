"""Sign-in sessions, write side: refresh-token families, rotation with reuse detection, revocation."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from core.clock import rfc3339
from core.errors import Unauthenticated
from core.events.sessions import RefreshTokenReused, SessionOpened, SessionRevoked
from core.store import UnitOfWork

STREAM = "session"
INSERT_TOKEN = "INSERT INTO refresh_tokens (jti, family_id, user_id, issued_at, expires_at) VALUES (?, ?, ?, ?, ?)"
SELECT_TOKEN = "SELECT family_id, user_id, spent_at, revoked_at, expires_at FROM refresh_tokens WHERE jti = ?"
SPEND_TOKEN = "UPDATE refresh_tokens SET spent_at = ? WHERE jti = ? AND spent_at IS NULL AND revoked_at IS NULL"
REVOKE_FAMILY = "UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL"
REVOKE_USER = "UPDATE refresh_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL"
REVOKE_USER_BUT_FAMILY = (
    "UPDATE refresh_tokens SET revoked_at = ? WHERE user_id = ? AND family_id <> ? AND revoked_at IS NULL"
)
SELECT_LIVE_FAMILIES = (
    "SELECT DISTINCT family_id FROM refresh_tokens WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ?"
)


@dataclass(frozen=True, slots=True)
class Rotation:
    user_id: str
    family_id: str
    reused: bool


class OpenSession(BaseModel):
    """Start a refresh-token family for a user who just proved who they are."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    user_id: str
    family_id: str
    jti: str
    expires_at: str
    method: str = "password"


class RotateRefreshToken(BaseModel):
    """Spend a refresh token and record its successor in the same family."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    jti: str
    next_jti: str
    next_expires_at: str


class RevokeSession(BaseModel):
    """End the family a refresh token belongs to (logout); the token must be the signed-in user's."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    jti: str
    user_id: str


def store_token(uow: UnitOfWork, jti: str, family_id: str, user_id: str, expires_at: str) -> None:
    uow.conn.execute(INSERT_TOKEN, (jti, family_id, user_id, rfc3339(uow.now), expires_at))


def open_session(uow: UnitOfWork, cmd: OpenSession) -> str:
    store_token(uow, cmd.jti, cmd.family_id, cmd.user_id, cmd.expires_at)
    uow.append(
        cmd.family_id, STREAM, 0, [SessionOpened(family_id=cmd.family_id, user_id=cmd.user_id, method=cmd.method)]
    )
    return cmd.family_id


def rotate_refresh_token(uow: UnitOfWork, cmd: RotateRefreshToken) -> Rotation:
    """A spent token revokes its whole family (reuse detected): returned, not raised, so the revocation commits."""
    row = uow.conn.execute(SELECT_TOKEN, (cmd.jti,)).fetchone()
    if row is None:
        raise Unauthenticated("This refresh token is not known", "token_invalid")
    family_id, user_id, spent_at, revoked_at, _ = row
    if revoked_at is not None:
        raise Unauthenticated("This session has ended; sign in again", "token_invalid")
    if spent_at is not None:
        revoke_family(uow, family_id, user_id, reason="reuse")
        uow.append(
            family_id, STREAM, uow.version_of(family_id), [RefreshTokenReused(family_id=family_id, user_id=user_id)]
        )
        return Rotation(user_id, family_id, reused=True)
    uow.conn.execute(SPEND_TOKEN, (rfc3339(uow.now), cmd.jti))
    store_token(uow, cmd.next_jti, family_id, user_id, cmd.next_expires_at)
    return Rotation(user_id, family_id, reused=False)


def revoke_session(uow: UnitOfWork, cmd: RevokeSession) -> None:
    row = uow.conn.execute(SELECT_TOKEN, (cmd.jti,)).fetchone()
    if row is None or row[1] != cmd.user_id:
        raise Unauthenticated("This refresh token is not known", "token_invalid")
    if row[3] is None:
        revoke_family(uow, row[0], cmd.user_id, reason="logout")


def revoke_family(uow: UnitOfWork, family_id: str, user_id: str, reason: str) -> None:
    uow.conn.execute(REVOKE_FAMILY, (rfc3339(uow.now), family_id))
    end_session(uow, family_id, user_id, reason)


def end_session(uow: UnitOfWork, family_id: str, user_id: str, reason: str) -> None:
    """Record that a session ended: its access tokens are refused from then on (`queries.sessions`)."""
    revoked = SessionRevoked(family_id=family_id, user_id=user_id, reason=reason)
    uow.append(family_id, STREAM, uow.version_of(family_id), [revoked])


def revoke_all_for_user(uow: UnitOfWork, user_id: str) -> None:
    """Deactivation and role changes end every refresh token at once."""
    uow.conn.execute(REVOKE_USER, (rfc3339(uow.now), user_id))


def revoke_other_sessions(uow: UnitOfWork, user_id: str, keep_family: str | None) -> None:
    """A password change ends every session but the one that made it (all, if none).

    Every refresh token goes; each session that could still refresh is ended with `SessionRevoked`, so
    its access tokens stop too (`queries.sessions`). A session whose refresh tokens have all expired
    issued its last access token when it last refreshed, and that one has expired as well.
    """
    live = uow.conn.execute(SELECT_LIVE_FAMILIES, (user_id, rfc3339(uow.now))).fetchall()
    if keep_family is None:
        revoke_all_for_user(uow, user_id)
    else:
        uow.conn.execute(REVOKE_USER_BUT_FAMILY, (rfc3339(uow.now), user_id, keep_family))
    for (family_id,) in live:
        if family_id != keep_family:
            end_session(uow, family_id, user_id, "password_change")
