"""`/api/auth`: register, login, refresh, logout, me, password reset."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator
from starlette.responses import Response

from api.cache import cached_view
from api.commanding import execute, if_match, written
from api.responses import JSON
from api.routing import Call, Operation
from api.schemas import (
    Accepted,
    Email,
    ImageUrl,
    MoneyIn,
    Name,
    NotificationChanges,
    Omittable,
    Password,
    Skill,
    Strict,
    TokenPair,
    UserPrivate,
)
from api.text import free_text, single_line
from api.uploads.ownership import require_own_image
from commands.password_reset import INVALID as INVALID_RESET
from commands.password_reset import ConfirmPasswordReset, RequestPasswordReset, token_hash
from commands.sessions import OpenSession, RevokeSession, RotateRefreshToken
from commands.users import RecordLogin, RecordLoginFailure, RegisterUser, UpdateProfile, normalize_email
from core import refresh_tokens
from core.clock import rfc3339, rfc3339_ms
from core.credentials import get_credentials, reset_is_live
from core.db import Connection
from core.errors import BadRequest, NotFound, Unauthenticated
from core.ids import new_id
from core.refresh_tokens import RefreshToken
from core.tokens import Claims
from queries.users import get_user

SUMMARY_ERRORS = (400, 409, 415, 422, 429)


class RegisterBody(Strict):
    email: Email
    password: Password
    name: Name
    role: Literal["client", "freelancer"]


class LoginBody(Strict):
    email: str = Field(max_length=254)
    password: str = Field(max_length=128)


class RefreshBody(Strict):
    refresh_token: str = Field(min_length=1, max_length=4096)


class ProfileBody(Strict):
    name: Omittable[Name] = None
    bio: Annotated[str, Field(max_length=5000), AfterValidator(free_text)] | None = None
    skills: Omittable[list[Skill]] = Field(None, max_length=50)
    hourly_rate: MoneyIn | None = None
    location: Annotated[str, Field(max_length=200), AfterValidator(single_line)] | None = None
    profile_image_url: ImageUrl | None = None
    password: Omittable[Password] = None
    current_password: str | None = Field(None, max_length=128)
    notifications: Omittable[NotificationChanges] = None

    @model_validator(mode="after")
    def _passwords_go_together(self) -> ProfileBody:
        if self.password is not None and not self.current_password:
            raise ValueError("changing the password needs current_password")
        if self.password is None and self.current_password is not None:
            raise ValueError("current_password is only used with a new password")
        return self


def token_response(call: Call, user: dict[str, Any], refresh: str, family: str, position: int, status: int) -> JSON:
    """The access token names the session (refresh-token family) it belongs to: a password change keeps that one."""
    now = call.runtime.clock.now()
    access, _ = call.runtime.tokens.issue(user["id"], user["role"], "access", now, family=family, position=position)
    body = {
        "user": user,
        "access_token": access,
        "refresh_token": refresh,
        "token_type": "bearer",
        "expires_in": int(call.runtime.tokens.access_ttl.total_seconds()),
    }
    return written(body, position, status)


def new_refresh(call: Call, user_id: str, role: str, family: str, now: datetime) -> tuple[str, Claims]:
    return call.runtime.tokens.issue(user_id, role, "refresh", now, family=family)


def account_of(call: Call, claims: Claims) -> Callable[[Connection], tuple[dict[str, Any], int]]:
    """A read of the token's own account (private view): a signed token for no account is invalid, not a 404."""
    known = call.runtime.tracker.position  # before the query: the read store has at least this

    def read(conn: Connection) -> tuple[dict[str, Any], int]:
        try:
            return get_user(conn, claims.sub, private=True)
        except NotFound:
            if claims.pos > known:  # a replica that has not applied the account's registration yet
                raise
            raise Unauthenticated("The token names no account", "token_invalid") from None

    return read


async def register(call: Call) -> Response:
    body: RegisterBody = call.body
    runtime = call.runtime
    password_hash = await runtime.hashing(runtime.passwords.hash, body.password)
    user_id, family, now = new_id(), new_id(), runtime.clock.now()
    refresh, claims = new_refresh(call, user_id, body.role, family, now)
    session = OpenSession(
        user_id=user_id,
        family_id=family,
        jti=claims.jti,
        expires_at=rfc3339(datetime.fromtimestamp(claims.exp, now.tzinfo)),
        method="register",
    )
    command = RegisterUser(
        user_id=user_id, email=body.email, name=body.name, role=body.role, password_hash=password_hash, session=session
    )
    (user, _), position = await execute(call, command, lambda conn: get_user(conn, user_id, private=True))
    return token_response(call, user, refresh, family, position, 201)


async def login(call: Call) -> Response:
    body: LoginBody = call.body
    runtime, limits = call.runtime, call.request.app.state.limits
    email_key, address = normalize_email(body.email), limits.client_ip(call.request)
    with limits.sign_in(email_key, address):
        found = await runtime.read(lambda conn: get_credentials(conn, email_key))
        ok = await runtime.hashing(runtime.passwords.verify, found.password_hash if found else None, body.password)
        if not ok or found is None or not found.is_active:
            limits.sign_in_failed(email_key, address)
            if found is not None and not ok:
                await execute(call, RecordLoginFailure(user_id=found.user_id))
            raise Unauthenticated("The e-mail or password is wrong", "invalid_credentials")
    rehash = None
    if runtime.passwords.needs_rehash(found.password_hash):
        rehash = await runtime.hashing(runtime.passwords.hash, body.password)
    now = runtime.clock.now()
    family = new_id()
    refresh, claims = new_refresh(call, found.user_id, found.role, family, now)
    session = OpenSession(
        user_id=found.user_id,
        family_id=family,
        jti=claims.jti,
        expires_at=rfc3339(datetime.fromtimestamp(claims.exp, now.tzinfo)),
    )
    command = RecordLogin(session=session, checked_hash=found.password_hash, new_password_hash=rehash)
    user_id = found.user_id
    (user, _), position = await execute(call, command, lambda conn: get_user(conn, user_id, private=True))
    return token_response(call, user, refresh, family, position, 200)


async def refresh(call: Call) -> Response:
    runtime = call.runtime
    now = runtime.clock.now()
    claims = runtime.tokens.verify(call.body.refresh_token, "refresh", now)
    user, _ = await runtime.read(account_of(call, claims))
    if not user["is_active"]:
        raise Unauthenticated("This account has been deactivated", "token_invalid")
    successor, next_claims = new_refresh(call, claims.sub, user["role"], claims.fam or "", now)
    command = RotateRefreshToken(
        jti=claims.jti,
        next_jti=next_claims.jti,
        next_expires_at=rfc3339(datetime.fromtimestamp(next_claims.exp, now.tzinfo)),
    )
    (user, recorded), position = await execute(call, command, rotated(call, claims, next_claims.jti))
    if recorded is None:  # the token was spent before: the command revoked its family and recorded no successor
        raise Unauthenticated("This refresh token was already used; the session has been revoked", "token_invalid")
    return token_response(call, user, successor, recorded.family_id, position, 200)


def rotated(
    call: Call, claims: Claims, successor_jti: str
) -> Callable[[Connection], tuple[dict[str, Any], RefreshToken | None]]:
    """Read back a rotation: the account, and the successor token as recorded (None if reuse revoked the family)."""
    read_account = account_of(call, claims)

    def read(conn: Connection) -> tuple[dict[str, Any], RefreshToken | None]:
        user, _ = read_account(conn)
        return user, refresh_tokens.find(conn, successor_jti)

    return read


async def logout(call: Call) -> Response:
    runtime = call.runtime
    claims = runtime.tokens.verify(call.body.refresh_token, "refresh", runtime.clock.now())
    _, position = await execute(call, RevokeSession(jti=claims.jti, user_id=call.user.sub))
    return Response(status_code=204, headers={"X-Consistency-Token": str(position)})


async def me(call: Call) -> Response:
    runtime, claims = call.runtime, call.user
    if claims.pos > runtime.tracker.position and not runtime.settings.is_primary:
        # An edge behind the token (an account registered or signed in through another region a moment ago):
        # the token names the position it was issued at, which the edge waits for as for a consistency token.
        await runtime.tracker.wait_for(claims.pos, runtime.settings.read_your_writes_timeout_ms / 1000)
    return await cached_view(call, ("me", claims.sub), account_of(call, claims))


async def update_me(call: Call) -> Response:
    runtime, body, limits = call.runtime, call.body, call.request.app.state.limits
    account, _ = await runtime.read(account_of(call, call.user))
    await require_own_image(call, body.profile_image_url, "profile_image_url")
    changes = body.model_dump(exclude_unset=True, exclude={"password", "current_password"})
    if "notifications" in changes:  # only the switches sent change
        changes["notifications"] = body.notifications.model_dump(exclude_unset=True)
    password_hash = checked_hash = None
    if body.password is not None:
        email_key = normalize_email(account["email"])  # a guess here is a guess at the sign-in password
        address = limits.client_ip(call.request)
        with limits.sign_in(email_key, address):
            found = await runtime.read(lambda conn: get_credentials(conn, None, user_id=call.user.sub))
            ok = await runtime.hashing(
                runtime.passwords.verify, found.password_hash if found else None, body.current_password or ""
            )
            if not ok or found is None:
                limits.sign_in_failed(email_key, address)
                raise Unauthenticated("current_password is wrong", "invalid_credentials")
        checked_hash = found.password_hash
        password_hash = await runtime.hashing(runtime.passwords.hash, body.password)
    command = UpdateProfile(
        user_id=call.user.sub,
        changes=changes,
        password_hash=password_hash,
        checked_hash=checked_hash,
        keep_family=call.user.fam,
        expected_versions=if_match(call),
    )
    (user, version), position = await execute(call, command, account_of(call, call.user))
    return written(user, position, etag=version)


class PasswordResetBody(Strict):
    email: Email


class PasswordResetConfirmBody(Strict):
    token: str = Field(min_length=1, max_length=200)
    new_password: Password


RESET_ACCEPTED = "If an active account uses that address, a message with a reset link is on its way"
RESET_DONE = "Your password was changed and every session of the account ended; sign in with the new password"


async def password_reset(call: Call) -> Response:
    """The same steps whether or not the address has an account: the command alone knows, and answers alike."""
    body: PasswordResetBody = call.body
    runtime, limits = call.runtime, call.request.app.state.limits
    email_key = normalize_email(body.email)
    limits.hit(limits.password_resets, "password-reset", email_key)
    token = secrets.token_urlsafe(32)
    command = RequestPasswordReset(
        email_key=email_key,
        request_id=new_id(),
        reset_id=new_id(),
        token=token,
        token_hash=token_hash(token),
        ttl_minutes=runtime.settings.password_reset_ttl_minutes,
    )
    _, position = await execute(call, command)
    return written({"detail": RESET_ACCEPTED}, position, 202)


async def password_reset_confirm(call: Call) -> Response:
    body: PasswordResetConfirmBody = call.body
    runtime = call.runtime
    hashed = token_hash(body.token)
    now_ms = rfc3339_ms(runtime.clock.now())
    # Checked before the (slow) password hash, so junk tokens cost little; the command checks again.
    if not await runtime.read(lambda conn: reset_is_live(conn, hashed, now_ms)):
        raise BadRequest(INVALID_RESET, "reset_token_invalid")
    password_hash = await runtime.hashing(runtime.passwords.hash, body.new_password)
    _, position = await execute(call, ConfirmPasswordReset(token_hash=hashed, password_hash=password_hash))
    return written({"detail": RESET_DONE}, position)


OPERATIONS = [
    Operation(
        "POST",
        "/api/auth/register",
        register,
        "Create an account (client or freelancer)",
        "auth",
        body=RegisterBody,
        response=TokenPair,
        status=201,
        auth=False,
        ip_limited=True,
        errors=SUMMARY_ERRORS,
    ),
    Operation(
        "POST",
        "/api/auth/login",
        login,
        "Sign in with e-mail and password",
        "auth",
        body=LoginBody,
        response=TokenPair,
        auth=False,
        ip_limited=True,
        errors=(400, 401, 415, 422, 429),
    ),
    Operation(
        "POST",
        "/api/auth/refresh",
        refresh,
        "Trade a refresh token for a new pair (rotation)",
        "auth",
        body=RefreshBody,
        response=TokenPair,
        auth=False,
        ip_limited=True,
        errors=(400, 401, 415, 422, 429),
    ),
    Operation(
        "POST",
        "/api/auth/logout",
        logout,
        "End the session one of one's own refresh tokens belongs to",
        "auth",
        body=RefreshBody,
        status=204,
        errors=(400, 401, 415, 422, 429),
    ),
    Operation(
        "GET",
        "/api/auth/me",
        me,
        "The signed-in user (private view)",
        "auth",
        response=UserPrivate,
        etag=True,
        errors=(401,),
    ),
    Operation(
        "PUT",
        "/api/auth/me",
        update_me,
        "Update one's own profile (and password)",
        "auth",
        body=ProfileBody,
        response=UserPrivate,
        if_match=True,
        etag=True,
        errors=(400, 401, 415, 422),
    ),
    Operation(
        "POST",
        "/api/auth/password-reset",
        password_reset,
        "Ask for a password reset link by e-mail (202 whether or not the address has an account)",
        "auth",
        body=PasswordResetBody,
        response=Accepted,
        status=202,
        auth=False,
        ip_limited=True,
        errors=(400, 415, 422, 429),
    ),
    Operation(
        "POST",
        "/api/auth/password-reset/confirm",
        password_reset_confirm,
        "Set a new password with a reset token; every session of the account ends",
        "auth",
        body=PasswordResetConfirmBody,
        response=Accepted,
        auth=False,
        ip_limited=True,
        errors=(400, 415, 422, 429),
    ),
]
