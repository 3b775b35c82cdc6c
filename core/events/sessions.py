"""Facts about sign-in sessions (the audit trail of logins, refresh reuse and revocations)."""

from __future__ import annotations

from dataclasses import dataclass

from core.events.base import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionOpened(Event):
    """A user signed in (or registered) and a refresh-token family began."""

    TYPE = "SessionOpened"
    family_id: str
    user_id: str
    method: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionRevoked(Event):
    """A refresh-token family was ended (logout, reuse, deactivation)."""

    TYPE = "SessionRevoked"
    family_id: str
    user_id: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RefreshTokenReused(Event):
    """A spent refresh token was presented again: likely stolen; its family was revoked."""

    TYPE = "RefreshTokenReused"
    family_id: str
    user_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LoginFailed(Event):
    """Someone gave a wrong password for an existing account."""

    TYPE = "LoginFailed"
    user_id: str
    reason: str
