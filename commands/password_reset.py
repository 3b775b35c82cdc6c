"""Password reset, write side: issue a single-use token for an e-mail address, and spend it.

The token is stored only as its SHA-256 (`password_resets.token_hash`); the clear token waits in the same
primary-only row (`mail_token`) for the mailer, which clears it once the mail is sent. Events carry the
reset's id, never the token or its hash, so nothing secret reaches the log, the feed or an edge.
The handlers read through the unit of work and decide with pure functions (`reset_recipient`, `valid_reset`).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from commands.common import Command
from commands.sessions import revoke_other_sessions
from commands.users import EMAIL_CLAIM, STREAM, User, load_user
from core.clock import rfc3339, rfc3339_ms
from core.errors import BadRequest
from core.events.users import (
    PasswordResetCompleted,
    PasswordResetNotIssued,
    PasswordResetRequested,
    UserPasswordChanged,
)
from core.password_resets import Reset
from core.store import UnitOfWork

MAILS_PER_HOUR = 3  # per account, kept across restarts (the HTTP layer also limits in memory, with a 429)
INVALID = "This reset link is not valid (unknown, already used or expired); ask for a new one"


class RequestPasswordReset(Command):
    """Someone asked for a reset link for an e-mail address; issue one if it names an active account."""

    email_key: str  # normalized (see commands.users.normalize_email)
    request_id: str
    reset_id: str
    token: str
    token_hash: str
    ttl_minutes: int


class ConfirmPasswordReset(Command):
    """Spend a reset token: set the (already hashed) new password and end every session of the account."""

    token_hash: str
    password_hash: str


def token_hash(token: str) -> str:
    """How a reset token is stored and looked up: 256 random bits need no slow hash, only a one-way one."""
    return hashlib.sha256(token.encode()).hexdigest()


def since_an_hour_ago(now: datetime) -> str:
    """Where the per-account rate window starts."""
    return rfc3339_ms(now - timedelta(hours=1))


def reset_recipient(user: User | None, sent_last_hour: int) -> User | None:
    """The account a link goes to: an active one sent fewer than MAILS_PER_HOUR in the last hour; else None."""
    if user is None or not user.is_active or sent_last_hour >= MAILS_PER_HOUR:
        return None
    return user


def request_password_reset(uow: UnitOfWork, cmd: RequestPasswordReset) -> None:
    """Both outcomes append one event: an unknown address costs what a known one does, and moves the log as far."""
    now = uow.now
    user_id = uow.claim_owner(EMAIL_CLAIM, cmd.email_key)
    user = load_user(uow, user_id) if user_id is not None else None
    sent = uow.password_resets.issued_since(user.id, since_an_hour_ago(now)) if user is not None else 0
    recipient = reset_recipient(user, sent)
    if recipient is None:
        stream = f"password-reset:{cmd.request_id}"
        uow.append(stream, "password_reset", 0, [PasswordResetNotIssued(request_id=cmd.request_id)])
        return
    expires = now + timedelta(minutes=cmd.ttl_minutes)
    uow.password_resets.issue(
        cmd.reset_id, recipient.id, cmd.token_hash, rfc3339_ms(now), rfc3339_ms(expires), cmd.token
    )
    stream = f"audit:{recipient.id}"
    event = PasswordResetRequested(user_id=recipient.id, reset_id=cmd.reset_id, expires_at=rfc3339(expires))
    uow.append(stream, "audit", uow.version_of(stream), [event])


def valid_reset(reset: Reset | None, now: datetime) -> Reset:
    """The reset a token names, if it may still be spent: known, unused and unexpired."""
    if reset is None or reset.used_at is not None or reset.expires_at <= rfc3339_ms(now):
        raise BadRequest(INVALID, "reset_token_invalid")
    return reset


def check_reset_account(user: User) -> None:
    """An account switched off since the link was sent gets the answer a bad link gets."""
    if not user.is_active:
        raise BadRequest(INVALID, "reset_token_invalid")


def confirm_password_reset(uow: UnitOfWork, cmd: ConfirmPasswordReset) -> str:
    """Returns the account's id. Unknown, used, expired, or for an account switched off since: one answer."""
    reset = valid_reset(uow.password_resets.find(cmd.token_hash), uow.now)
    user_id = reset.user_id
    user = load_user(uow, user_id)
    check_reset_account(user)
    uow.password_resets.spend_all(user_id, rfc3339_ms(uow.now))
    uow.credentials.save_hash(user_id, cmd.password_hash, rfc3339(uow.now))
    uow.append(user_id, STREAM, user.version, [UserPasswordChanged(user_id=user_id)])
    stream = f"audit:{user_id}"
    event = PasswordResetCompleted(user_id=user_id, reset_id=reset.reset_id)
    uow.append(stream, "audit", uow.version_of(stream), [event])
    revoke_other_sessions(uow, user_id, None)  # every session ends, as a password change ends all but its own
    return str(user_id)
