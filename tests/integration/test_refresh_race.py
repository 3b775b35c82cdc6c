"""A refresh and then a role change committed in one writer batch (group commit).

The refresh writes no event; the position its new access token carries must be the one its own
transaction saw, not the tracker's position once the batch is committed, or the token (with the role
read before the change) would pass the check that refuses tokens older than the change. The order is
forced with events, not timing: the writer is held busy while both jobs queue behind it.
"""

from __future__ import annotations

import asyncio

from commands.sessions import OpenSession, RotateRefreshToken
from commands.users import ChangeAccount, RegisterUser
from core.ids import new_id
from node.runtime import Runtime
from tests.support.races import on_loop, queued_behind_the_writer


def register_with_session(runtime: Runtime, loop: asyncio.AbstractEventLoop) -> tuple[str, str]:
    user_id, jti = new_id(), new_id()
    session = OpenSession(user_id=user_id, family_id=new_id(), jti=jti, expires_at="2999-01-01T00:00:00Z")
    command = RegisterUser(
        user_id=user_id, email=f"{user_id}@x.example", name="Fay", role="freelancer", password_hash="x", session=session
    )
    on_loop(loop, runtime, command)
    return user_id, jti


def test_a_refresh_batched_before_a_role_change_answers_a_position_before_it(
    running: tuple[Runtime, asyncio.AbstractEventLoop],
) -> None:
    runtime, loop = running
    user_id, jti = register_with_session(runtime, loop)
    admin_id = new_id()
    on_loop(
        loop,
        runtime,
        RegisterUser(user_id=admin_id, email=f"{admin_id}@x.example", name="Ada", role="admin", password_hash="x"),
    )

    rotate = RotateRefreshToken(jti=jti, next_jti=new_id(), next_expires_at="2999-01-01T00:00:00Z")
    demote = ChangeAccount(user_id=user_id, admin_id=admin_id, role="client")
    refreshed, demoted = queued_behind_the_writer(runtime, loop, rotate, demote)
    _, changed_at = demoted.result(30)

    rotation, position = refreshed.result(30)
    assert not rotation.reused
    assert position < changed_at
