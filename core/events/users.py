"""Facts about user accounts. Secrets (password hashes) never go into events: see core/credentials."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.events.base import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class UserRegistered(Event):
    """A person created an account (or an admin created one for them)."""

    TYPE = "UserRegistered"
    user_id: str
    email: str
    name: str
    role: str
    joined_at: str
    created_by: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UserProfileUpdated(Event):
    """A user changed fields of their public profile; only the changed fields are present."""

    TYPE = "UserProfileUpdated"
    user_id: str
    changes: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class UserRoleChanged(Event):
    """An admin gave the account another role."""

    TYPE = "UserRoleChanged"
    user_id: str
    role: str
    previous_role: str
    changed_by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UserDeactivated(Event):
    """An admin switched the account off; its tokens stop working."""

    TYPE = "UserDeactivated"
    user_id: str
    changed_by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UserReactivated(Event):
    """An admin switched the account back on."""

    TYPE = "UserReactivated"
    user_id: str
    changed_by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UserPasswordChanged(Event):
    """The account's password was replaced (the hash is kept in credentials, never here)."""

    TYPE = "UserPasswordChanged"
    user_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PasswordResetRequested(Event):
    """A reset link was issued for the account (the token itself is kept on the primary, hashed, never here)."""

    TYPE = "PasswordResetRequested"
    user_id: str
    reset_id: str
    expires_at: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PasswordResetCompleted(Event):
    """A reset token was spent: the password was replaced and every session of the account ended."""

    TYPE = "PasswordResetCompleted"
    user_id: str
    reset_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PasswordResetNotIssued(Event):
    """A reset was asked for an address with no active account (or past its hourly mails): nothing was sent.

    Appended so that both outcomes move the log alike: the position an answer carries tells nobody which it was.
    """

    TYPE = "PasswordResetNotIssued"
    request_id: str
