"""`/api/users`: public profiles for everyone signed in; creating and changing accounts for admins."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, StrictBool
from starlette.responses import Response

from api.cache import cached_page, cached_view
from api.commanding import execute, if_match, written
from api.routing import Call, Operation
from api.schemas import Email, Name, Omittable, Page, Password, Strict, UserAdminView, UserList
from commands.users import ChangeAccount, RegisterUser
from core.ids import new_id
from queries.users import get_user, list_users

ADMIN = frozenset({"admin"})


class UserFilters(Page):
    role: Literal["client", "freelancer", "admin"] | None = None
    skill: str | None = Field(None, max_length=50)
    q: str | None = Field(None, max_length=100)


class CreateUserBody(Strict):
    email: Email
    password: Password
    name: Name
    role: Literal["client", "freelancer", "admin"]


class ChangeUserBody(Strict):
    is_active: Omittable[StrictBool] = None
    role: Omittable[Literal["client", "freelancer", "admin"]] = None


async def list_all(call: Call) -> Response:
    f: UserFilters = call.query
    admin = call.user.role == "admin"
    return await cached_page(
        call,
        ("users", admin, f),
        lambda conn: list_users(conn, limit=f.limit, cursor=f.cursor, role=f.role, skill=f.skill, q=f.q, private=admin),
    )


async def get_one(call: Call) -> Response:
    admin, user_id = call.user.role == "admin", call.path["user_id"]
    return await cached_view(call, ("user", admin, user_id), lambda conn: get_user(conn, user_id, private=admin))


async def create(call: Call) -> Response:
    body: CreateUserBody = call.body
    runtime = call.runtime
    password_hash = await runtime.hashing(runtime.passwords.hash, body.password)
    user_id = new_id()
    command = RegisterUser(
        user_id=user_id,
        email=body.email,
        name=body.name,
        role=body.role,
        password_hash=password_hash,
        created_by=call.user.sub,
        by_admin=True,
    )
    (user, version), position = await execute(call, command, lambda conn: get_user(conn, user_id, private=True))
    return written(user, position, 201, etag=version)


async def change(call: Call) -> Response:
    body: ChangeUserBody = call.body
    user_id = call.path["user_id"]
    command = ChangeAccount(
        user_id=user_id,
        admin_id=call.user.sub,
        role=body.role,
        is_active=body.is_active,
        expected_versions=if_match(call),
    )
    (user, version), position = await execute(call, command, lambda conn: get_user(conn, user_id, private=True))
    return written(user, position, etag=version)


OPERATIONS = [
    Operation(
        "GET",
        "/api/users",
        list_all,
        "List user profiles (admins also see e-mail and status)",
        "users",
        query=UserFilters,
        response=UserList,
        errors=(401, 422),
    ),
    Operation(
        "GET",
        "/api/users/{user_id}",
        get_one,
        "A user's public profile",
        "users",
        response=UserAdminView,
        etag=True,
        errors=(401, 404),
    ),
    Operation(
        "POST",
        "/api/users",
        create,
        "Create an account with any role (admin)",
        "users",
        body=CreateUserBody,
        response=UserAdminView,
        status=201,
        roles=ADMIN,
        etag=True,
        errors=(400, 401, 403, 409, 415, 422),
    ),
    Operation(
        "PATCH",
        "/api/users/{user_id}",
        change,
        "Change a user's role or active state (admin)",
        "users",
        body=ChangeUserBody,
        response=UserAdminView,
        roles=ADMIN,
        if_match=True,
        etag=True,
        errors=(400, 401, 403, 404, 409, 422),
    ),
]
