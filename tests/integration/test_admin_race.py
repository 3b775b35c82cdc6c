"""Two admins demote each other at the same moment: the second change is refused, one admin remains. An admin
deactivated while their new account waits in the queue does not create it.

Both requests pass authentication before either commits (their tokens are still valid), so the rule has to
hold in the writer: an account change is made by an account that is, in that transaction, an active admin.
The order is forced with events, not timing: the writer is held busy while both jobs queue behind it.
"""

from __future__ import annotations

import asyncio

import pytest

from commands.users import ChangeAccount, RegisterUser
from core.errors import Forbidden
from core.ids import new_id
from core.settings import Settings
from node.runtime import Runtime
from tests.support.races import db_rows, on_loop, queued_behind_the_writer


def admin(runtime: Runtime, loop: asyncio.AbstractEventLoop) -> str:
    user_id = new_id()
    command = RegisterUser(
        user_id=user_id, email=f"{user_id}@x.example", name="Ada", role="admin", password_hash="x", created_by="t"
    )
    on_loop(loop, runtime, command)
    return user_id


def test_an_admin_deactivated_while_their_new_account_is_queued_does_not_create_it(
    running: tuple[Runtime, asyncio.AbstractEventLoop], settings: Settings
) -> None:
    runtime, loop = running
    ann, bob = admin(runtime, loop), admin(runtime, loop)
    email = f"{new_id()}@x.example"
    created = RegisterUser(
        user_id=new_id(), email=email, name="Cy", role="client", password_hash="x", created_by=ann, by_admin=True
    )

    deactivation, creation = queued_behind_the_writer(
        runtime, loop, ChangeAccount(user_id=ann, admin_id=bob, is_active=False), created
    )

    deactivation.result(30)
    with pytest.raises(Forbidden):
        creation.result(30)
    assert db_rows(settings, "SELECT COUNT(*) FROM rm_users WHERE email = ?", email) == [(0,)]


@pytest.mark.parametrize("change", [{"role": "client"}, {"is_active": False}])
def test_admins_changing_each_other_at_once_leave_one_admin(
    running: tuple[Runtime, asyncio.AbstractEventLoop], settings: Settings, change: dict[str, object]
) -> None:
    runtime, loop = running
    ann, bob = admin(runtime, loop), admin(runtime, loop)

    first, second = queued_behind_the_writer(
        runtime,
        loop,
        ChangeAccount(user_id=bob, admin_id=ann, **change),
        ChangeAccount(user_id=ann, admin_id=bob, **change),
    )

    first.result(30)
    with pytest.raises(Forbidden):
        second.result(30)
    assert db_rows(settings, "SELECT role, is_active FROM rm_users WHERE id = ?", ann) == [("admin", 1)]
