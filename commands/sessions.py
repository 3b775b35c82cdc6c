"""Sign-in sessions, write side: refresh-token families, rotation with reuse detection, revocation.

Each handler reads the tokens it needs through the unit of work, asks a pure decide function what to do
(`decide_rotation`, `family_to_revoke`, `sessions_to_end`), and applies the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from core.clock import rfc3339
from core.errors import Unauthenticated
from core.events.sessions import RefreshTokenReused, SessionOpened, SessionRevoked
from core.refresh_tokens import RefreshToken
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


def decide_rotation(token: RefreshToken | None) -> Rotation:
    """May this token be traded for a successor? Unknown or revoked: no; spent before: reuse, its family must end.

    Expiry is not judged here: the token's signature check refuses an expired token before the command runs."""
    if token is None:
        raise Unauthenticated("This refresh token is not known", "token_invalid")
    if token.revoked_at is not None:
        raise Unauthenticated("This session has ended; sign in again", "token_invalid")
    return Rotation(token.user_id, token.family_id, reused=token.spent_at is not None)


def family_to_revoke(token: RefreshToken | None, user_id: str) -> str | None:
    """The family a logout ends (None if it ended already); someone else's token looks exactly like an unknown one."""
    if token is None or token.user_id != user_id:
        raise Unauthenticated("This refresh token is not known", "token_invalid")
    return token.family_id if token.revoked_at is None else None


def sessions_to_end(live_families: list[str], keep_family: str | None) -> list[str]:
    """The sessions a password change ends: every one that could still refresh, but the one that made it."""
    return [family_id for family_id in live_families if family_id != keep_family]


def store_token(uow: UnitOfWork, jti: str, family_id: str, user_id: str, expires_at: str) -> None:
    uow.refresh_tokens.insert(jti, family_id, user_id, rfc3339(uow.now), expires_at)


def open_session(uow: UnitOfWork, cmd: OpenSession) -> str:
    store_token(uow, cmd.jti, cmd.family_id, cmd.user_id, cmd.expires_at)
    uow.append(
        cmd.family_id, STREAM, 0, [SessionOpened(family_id=cmd.family_id, user_id=cmd.user_id, method=cmd.method)]
    )
    return cmd.family_id


def rotate_refresh_token(uow: UnitOfWork, cmd: RotateRefreshToken) -> Rotation:
    """A spent token revokes its whole family (reuse detected): returned, not raised, so the revocation commits."""
    rotation = decide_rotation(uow.refresh_tokens.find(cmd.jti))
    family_id, user_id = rotation.family_id, rotation.user_id
    if rotation.reused:
        revoke_family(uow, family_id, user_id, reason="reuse")
        uow.append(
            family_id, STREAM, uow.version_of(family_id), [RefreshTokenReused(family_id=family_id, user_id=user_id)]
        )
        return rotation
    uow.refresh_tokens.spend(cmd.jti, rfc3339(uow.now))
    store_token(uow, cmd.next_jti, family_id, user_id, cmd.next_expires_at)
    return rotation


def revoke_session(uow: UnitOfWork, cmd: RevokeSession) -> None:
    family_id = family_to_revoke(uow.refresh_tokens.find(cmd.jti), cmd.user_id)
    if family_id is not None:
        revoke_family(uow, family_id, cmd.user_id, reason="logout")


def revoke_family(uow: UnitOfWork, family_id: str, user_id: str, reason: str) -> None:
    uow.refresh_tokens.revoke_family(family_id, rfc3339(uow.now))
    end_session(uow, family_id, user_id, reason)


def end_session(uow: UnitOfWork, family_id: str, user_id: str, reason: str) -> None:
    """Record that a session ended: its access tokens are refused from then on (`queries.sessions`)."""
    revoked = SessionRevoked(family_id=family_id, user_id=user_id, reason=reason)
    uow.append(family_id, STREAM, uow.version_of(family_id), [revoked])


def revoke_all_for_user(uow: UnitOfWork, user_id: str) -> None:
    """Deactivation and role changes end every refresh token at once."""
    uow.refresh_tokens.revoke_user(user_id, rfc3339(uow.now))


def revoke_other_sessions(uow: UnitOfWork, user_id: str, keep_family: str | None) -> None:
    """A password change ends every session but the one that made it (all, if none).

    Every refresh token goes; each session that could still refresh is ended with `SessionRevoked`, so
    its access tokens stop too (`queries.sessions`). A session whose refresh tokens have all expired
    issued its last access token when it last refreshed, and that one has expired as well.
    """
    now = rfc3339(uow.now)
    ending = sessions_to_end(uow.refresh_tokens.live_families(user_id, now), keep_family)
    uow.refresh_tokens.revoke_user(user_id, now, keep_family=keep_family)
    for family_id in ending:
        end_session(uow, family_id, user_id, "password_change")
