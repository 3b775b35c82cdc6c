"""User accounts, write side: commands, state folding, decide rules, handlers."""

from __future__ import annotations

import hmac
import unicodedata
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from commands.common import check_version, fold
from commands.sessions import OpenSession, open_session, revoke_all_for_user, revoke_other_sessions
from core.clock import rfc3339
from core.errors import Conflict, Forbidden, NotFound, Unauthenticated
from core.events.base import Event, StoredEvent
from core.events.sessions import LoginFailed
from core.events.users import (
    UserDeactivated,
    UserPasswordChanged,
    UserProfileUpdated,
    UserReactivated,
    UserRegistered,
    UserRoleChanged,
)
from core.store import UnitOfWork

STREAM = "user"
EMAIL_CLAIM = "email"
Role = Literal["client", "freelancer", "admin"]
WRONG_LOGIN = "The e-mail or password is wrong"


class _Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RegisterUser(_Command):
    """Open an account with an already-hashed password, and its first session when one is given."""

    user_id: str
    email: str
    name: str
    role: Role
    password_hash: str
    created_by: str | None = None
    by_admin: bool = False  # `created_by` is an admin's id (POST /api/users): still an active admin at commit
    session: OpenSession | None = None


class UpdateProfile(_Command):
    """Change one's own public profile fields (and password, already verified and hashed).

    A password change ends every other session: all refresh-token families but `keep_family`. It applies only
    while the stored hash is still `checked_hash`, the one `current_password` was checked against.
    """

    user_id: str
    changes: dict[str, Any]
    password_hash: str | None = None
    checked_hash: str | None = None
    keep_family: str | None = None
    expected_versions: frozenset[int] | None = None


class ChangeAccount(_Command):
    """An admin changes a user's role or switches the account on or off."""

    user_id: str
    admin_id: str
    role: Role | None = None
    is_active: bool | None = None
    expected_versions: frozenset[int] | None = None


class RecordLogin(_Command):
    """A password check against `checked_hash` passed: open the session, upgrading the hash if parameters changed."""

    session: OpenSession
    checked_hash: str
    new_password_hash: str | None = None


class RecordLoginFailure(_Command):
    """A wrong password was given for an existing account (for the audit trail)."""

    user_id: str


@dataclass(frozen=True, slots=True)
class User:
    """What the write side needs to know about an account."""

    id: str
    email: str
    role: str
    is_active: bool
    version: int


def normalize_email(email: str) -> str:
    """The key e-mail uniqueness (and sign-in) is judged on: NFKC, trimmed, case-folded.

    NFKC first, so an address written in fullwidth letters is the same key as in plain ones (the API refuses
    addresses that are not ASCII after NFKC; this key also serves sign-in attempts, which are not validated)."""
    return unicodedata.normalize("NFKC", email).strip().casefold()


def evolve(state: User | None, event: StoredEvent) -> User | None:
    data = event.data
    if event.type == "UserRegistered":
        return User(data["user_id"], data["email"], data["role"], True, event.version)
    if state is None:
        return None
    state = replace(state, version=event.version)
    if event.type == "UserRoleChanged":
        return replace(state, role=data["role"])
    if event.type == "UserDeactivated":
        return replace(state, is_active=False)
    if event.type == "UserReactivated":
        return replace(state, is_active=True)
    return state


def load_user(uow: UnitOfWork, user_id: str) -> User:
    return fold(uow, user_id, evolve, "user")


def register_user(uow: UnitOfWork, cmd: RegisterUser) -> str:
    if cmd.by_admin:
        require_active_admin(uow, cmd.created_by or "", "create accounts")
    if uow.load(cmd.user_id):
        raise Conflict("That user id is taken")
    uow.claim(
        EMAIL_CLAIM,
        normalize_email(cmd.email),
        cmd.user_id,
        code="email_taken",
        detail="An account with that e-mail already exists",
    )
    uow.credentials.save_hash(cmd.user_id, cmd.password_hash, rfc3339(uow.now))
    event = UserRegistered(
        user_id=cmd.user_id,
        email=cmd.email.strip(),
        name=cmd.name,
        role=cmd.role,
        joined_at=rfc3339(uow.now),
        created_by=cmd.created_by,
    )
    uow.append(cmd.user_id, STREAM, 0, [event])
    if cmd.session is not None:
        open_session(uow, cmd.session)
    return cmd.user_id


def update_profile(uow: UnitOfWork, cmd: UpdateProfile) -> None:
    user = load_user(uow, cmd.user_id)
    check_version(user.version, cmd.expected_versions, "user")
    if not user.is_active:
        raise Forbidden("This account is deactivated")
    events: list[Event] = []
    if cmd.changes:
        events.append(UserProfileUpdated(user_id=user.id, changes=dict(cmd.changes)))
    if cmd.password_hash is not None:
        check_password_unchanged(uow.credentials.hash_of(user.id), cmd.checked_hash, "current_password is wrong")
        uow.credentials.save_hash(user.id, cmd.password_hash, rfc3339(uow.now))
        events.append(UserPasswordChanged(user_id=user.id))
        revoke_other_sessions(uow, user.id, cmd.keep_family)
    if events:
        uow.append(user.id, STREAM, user.version, events)


def check_password_unchanged(stored: str | None, checked_hash: str | None, detail: str) -> None:
    """The password was checked before the command queued against `checked_hash`; a change may have committed since."""
    if stored is None or checked_hash is None or not hmac.compare_digest(stored, checked_hash):
        raise Unauthenticated(detail, "invalid_credentials")


def require_active_admin(uow: UnitOfWork, admin_id: str, action: str) -> None:
    """The admin's token was checked before the command queued; another admin may have demoted or deactivated
    them since (two admins demoting each other at once would leave none)."""
    try:
        acting = load_user(uow, admin_id)
    except NotFound:
        acting = None
    if acting is None or acting.role != "admin" or not acting.is_active:
        raise Forbidden(f"Only an active admin can {action}")


def change_account(uow: UnitOfWork, cmd: ChangeAccount) -> None:
    require_active_admin(uow, cmd.admin_id, "change accounts")
    user = load_user(uow, cmd.user_id)
    check_version(user.version, cmd.expected_versions, "user")
    if cmd.user_id == cmd.admin_id and (cmd.is_active is False or (cmd.role and cmd.role != "admin")):
        raise Conflict("Admins cannot demote or deactivate themselves; ask another admin", "invalid_state")
    events: list[Event] = []
    if cmd.role is not None and cmd.role != user.role:
        events.append(UserRoleChanged(user_id=user.id, role=cmd.role, previous_role=user.role, changed_by=cmd.admin_id))
    if cmd.is_active is False and user.is_active:
        events.append(UserDeactivated(user_id=user.id, changed_by=cmd.admin_id))
    if cmd.is_active is True and not user.is_active:
        events.append(UserReactivated(user_id=user.id, changed_by=cmd.admin_id))
    if events:
        uow.append(user.id, STREAM, user.version, events)
        revoke_all_for_user(uow, user.id)


def check_login(user: User, stored: str | None, checked_hash: str) -> None:
    """The account is still active and its password still the one checked; else the answer a wrong password gets."""
    if not user.is_active:  # deactivated since the check: answered as a deactivated account's login always is
        raise Unauthenticated(WRONG_LOGIN, "invalid_credentials")
    check_password_unchanged(stored, checked_hash, WRONG_LOGIN)


def record_login(uow: UnitOfWork, cmd: RecordLogin) -> str:
    user = load_user(uow, cmd.session.user_id)
    check_login(user, uow.credentials.hash_of(user.id), cmd.checked_hash)
    if cmd.new_password_hash is not None:
        uow.credentials.save_hash(user.id, cmd.new_password_hash, rfc3339(uow.now))
    return open_session(uow, cmd.session)


def record_login_failure(uow: UnitOfWork, cmd: RecordLoginFailure) -> None:
    """Kept in the account's audit stream, so failed logins never move the profile's version (ETag)."""
    stream = f"audit:{cmd.user_id}"
    uow.append(stream, "audit", uow.version_of(stream), [LoginFailed(user_id=cmd.user_id, reason="wrong_password")])
