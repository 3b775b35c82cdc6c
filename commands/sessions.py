"""Sign-in sessions, write side: refresh-token families, rotation with reuse detection, revocation."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from core import refresh_tokens
from core.clock import rfc3339
from core.errors import Unauthenticated
from core.events.sessions import RefreshTokenReused, SessionOpened, SessionRevoked
from core.store import UnitOfWork

STREAM = "session"


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
    refresh_tokens.insert(uow.conn, jti, family_id, user_id, rfc3339(uow.now), expires_at)


def open_session(uow: UnitOfWork, cmd: OpenSession) -> str:
    store_token(uow, cmd.jti, cmd.family_id, cmd.user_id, cmd.expires_at)
    uow.append(
        cmd.family_id, STREAM, 0, [SessionOpened(family_id=cmd.family_id, user_id=cmd.user_id, method=cmd.method)]
    )
    return cmd.family_id


def rotate_refresh_token(uow: UnitOfWork, cmd: RotateRefreshToken) -> Rotation:
    """A spent token revokes its whole family (reuse detected): returned, not raised, so the revocation commits."""
    token = refresh_tokens.find(uow.conn, cmd.jti)
    if token is None:
        raise Unauthenticated("This refresh token is not known", "token_invalid")
    family_id, user_id = token.family_id, token.user_id
    if token.revoked_at is not None:
        raise Unauthenticated("This session has ended; sign in again", "token_invalid")
    if token.spent_at is not None:
        revoke_family(uow, family_id, user_id, reason="reuse")
        uow.append(
            family_id, STREAM, uow.version_of(family_id), [RefreshTokenReused(family_id=family_id, user_id=user_id)]
        )
        return Rotation(user_id, family_id, reused=True)
    refresh_tokens.spend(uow.conn, cmd.jti, rfc3339(uow.now))
    store_token(uow, cmd.next_jti, family_id, user_id, cmd.next_expires_at)
    return Rotation(user_id, family_id, reused=False)


def revoke_session(uow: UnitOfWork, cmd: RevokeSession) -> None:
    token = refresh_tokens.find(uow.conn, cmd.jti)
    if token is None or token.user_id != cmd.user_id:
        raise Unauthenticated("This refresh token is not known", "token_invalid")
    if token.revoked_at is None:
        revoke_family(uow, token.family_id, cmd.user_id, reason="logout")


def revoke_family(uow: UnitOfWork, family_id: str, user_id: str, reason: str) -> None:
    refresh_tokens.revoke_family(uow.conn, family_id, rfc3339(uow.now))
    end_session(uow, family_id, user_id, reason)


def end_session(uow: UnitOfWork, family_id: str, user_id: str, reason: str) -> None:
    """Record that a session ended: its access tokens are refused from then on (`queries.sessions`)."""
    revoked = SessionRevoked(family_id=family_id, user_id=user_id, reason=reason)
    uow.append(family_id, STREAM, uow.version_of(family_id), [revoked])


def revoke_all_for_user(uow: UnitOfWork, user_id: str) -> None:
    """Deactivation and role changes end every refresh token at once."""
    refresh_tokens.revoke_user(uow.conn, user_id, rfc3339(uow.now))


def revoke_other_sessions(uow: UnitOfWork, user_id: str, keep_family: str | None) -> None:
    """A password change ends every session but the one that made it (all, if none).

    Every refresh token goes; each session that could still refresh is ended with `SessionRevoked`, so
    its access tokens stop too (`queries.sessions`). A session whose refresh tokens have all expired
    issued its last access token when it last refreshed, and that one has expired as well.
    """
    live = refresh_tokens.live_families(uow.conn, user_id, rfc3339(uow.now))
    refresh_tokens.revoke_user(uow.conn, user_id, rfc3339(uow.now), keep_family=keep_family)
    for family_id in live:
        if family_id != keep_family:
            end_session(uow, family_id, user_id, "password_change")
