"""Portfolio rules: given events → when a command → then events or an error (real UnitOfWork, temp libSQL file)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from commands.portfolio import (
    AddPortfolioItem,
    RemovePortfolioItem,
    RevisePortfolioItem,
    add_portfolio_item,
    remove_portfolio_item,
    revise_portfolio_item,
)
from core import store
from core.clock import FakeClock
from core.db import Connection, connect
from core.errors import DomainError, Forbidden, NotFound, PreconditionFailed
from core.events.base import Event
from core.events.portfolio import PortfolioItemAdded, PortfolioItemRemoved, PortfolioItemRevised
from migrations.runner import migrate

AT = "2026-11-23T10:00:00.000Z"
META = {"actor": "test", "region": "local"}
OWNER, OTHER, ITEM = "freelancer-1", "freelancer-2", "item-1"
Then = list[tuple[str, dict[str, Any]]]


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[Connection]:
    connection = connect(str(tmp_path / "log.db"), synchronous="NORMAL")
    migrate(connection, ("log",))
    yield connection
    connection.close()


def given(conn: Connection, *events: Event) -> None:
    store.append(conn, ITEM, "portfolio_item", store.stream_version(conn, ITEM), events, META, AT)


def when(conn: Connection, handler: Callable[[store.UnitOfWork, Any], Any], command: Any) -> Then:
    uow = store.UnitOfWork(conn, META, FakeClock())
    handler(uow, command)
    return [(event.type, event.data) for event in uow.new_events]


def added() -> PortfolioItemAdded:
    return PortfolioItemAdded(
        item_id=ITEM, freelancer_id=OWNER, title="Shop", description="", image_url="https://img.example.com/a.png"
    )


def test_adding_records_the_item(conn: Connection) -> None:
    command = AddPortfolioItem(
        item_id=ITEM,
        freelancer_id=OWNER,
        title="Shop",
        description="Redesign",
        image_url="0123456789abcdef0123456789abcdef",
        project_url=None,
        tags=["ux"],
    )

    assert when(conn, add_portfolio_item, command) == [
        (
            "PortfolioItemAdded",
            {
                "item_id": ITEM,
                "freelancer_id": OWNER,
                "title": "Shop",
                "description": "Redesign",
                "image_url": "0123456789abcdef0123456789abcdef",
                "project_url": None,
                "tags": ["ux"],
            },
        )
    ]


def test_the_owner_revises_with_only_the_changed_fields(conn: Connection) -> None:
    given(conn, added())
    command = RevisePortfolioItem(
        item_id=ITEM,
        actor_id=OWNER,
        changes={"title": "Shop v2", "project_url": None},
        expected_versions=frozenset({1}),
    )

    assert when(conn, revise_portfolio_item, command) == [
        ("PortfolioItemRevised", {"item_id": ITEM, "changes": {"title": "Shop v2", "project_url": None}})
    ]


def test_an_empty_revision_records_nothing(conn: Connection) -> None:
    given(conn, added())

    assert when(conn, revise_portfolio_item, RevisePortfolioItem(item_id=ITEM, actor_id=OWNER, changes={})) == []


def test_the_owner_removes_an_item(conn: Connection) -> None:
    given(conn, added(), PortfolioItemRevised(item_id=ITEM, changes={"title": "v2"}))

    events = when(
        conn,
        remove_portfolio_item,
        RemovePortfolioItem(item_id=ITEM, actor_id=OWNER, expected_versions=frozenset({1, 2})),
    )

    assert events == [("PortfolioItemRemoved", {"item_id": ITEM, "freelancer_id": OWNER})]


def revise(actor: str, expected: frozenset[int] | None = None) -> RevisePortfolioItem:
    return RevisePortfolioItem(item_id=ITEM, actor_id=actor, changes={"title": "x"}, expected_versions=expected)


def remove(actor: str, expected: frozenset[int] | None = None) -> RemovePortfolioItem:
    return RemovePortfolioItem(item_id=ITEM, actor_id=actor, expected_versions=expected)


@pytest.mark.parametrize(
    ("history", "handler", "command", "error"),
    [
        ([], revise_portfolio_item, revise(OWNER), NotFound),
        ([], remove_portfolio_item, remove(OWNER), NotFound),
        ([added()], revise_portfolio_item, revise(OTHER), Forbidden),
        ([added()], remove_portfolio_item, remove(OTHER), Forbidden),
        ([added()], revise_portfolio_item, revise(OWNER, expected=frozenset({2, 3})), PreconditionFailed),
        ([added()], remove_portfolio_item, remove(OWNER, expected=frozenset()), PreconditionFailed),
        (
            [added(), PortfolioItemRemoved(item_id=ITEM, freelancer_id=OWNER)],
            revise_portfolio_item,
            revise(OWNER),
            NotFound,
        ),
        (
            [added(), PortfolioItemRemoved(item_id=ITEM, freelancer_id=OWNER)],
            remove_portfolio_item,
            remove(OWNER),
            NotFound,
        ),
    ],
)
def test_only_the_owner_changes_an_existing_item_at_the_version_they_read(
    conn: Connection,
    history: list[Event],
    handler: Callable[[store.UnitOfWork, Any], Any],
    command: Any,
    error: type[DomainError],
) -> None:
    if history:
        given(conn, *history)

    with pytest.raises(error):
        when(conn, handler, command)

    assert store.stream_version(conn, ITEM) == len(history)
