"""Portfolio, write side: a freelancer adds, revises and removes items showing past work."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from commands.common import Command, check_version, fold
from core.errors import Forbidden
from core.events.base import StoredEvent
from core.events.portfolio import PortfolioItemAdded, PortfolioItemRemoved, PortfolioItemRevised
from core.store import UnitOfWork

STREAM = "portfolio_item"


class AddPortfolioItem(Command):
    """Show a piece of past work on one's portfolio."""

    item_id: str
    freelancer_id: str
    title: str
    description: str
    image_url: str
    project_url: str | None = None
    tags: list[str]


class RevisePortfolioItem(Command):
    """Change some fields of one's own portfolio item (`project_url` None clears it)."""

    item_id: str
    actor_id: str
    changes: dict[str, Any]
    expected_versions: frozenset[int] | None = None


class RemovePortfolioItem(Command):
    """Take one's own portfolio item down."""

    item_id: str
    actor_id: str
    expected_versions: frozenset[int] | None = None


@dataclass(frozen=True, slots=True)
class PortfolioItem:
    """What the write side needs to know about a portfolio item: whose it is."""

    id: str
    freelancer_id: str
    version: int


def evolve(state: PortfolioItem | None, event: StoredEvent) -> PortfolioItem | None:
    if event.type == "PortfolioItemAdded":
        return PortfolioItem(event.data["item_id"], event.data["freelancer_id"], event.version)
    if state is None or event.type == "PortfolioItemRemoved":
        return None
    return replace(state, version=event.version)


def owned_item(uow: UnitOfWork, item_id: str, actor_id: str, expected: frozenset[int] | None) -> PortfolioItem:
    """The item, if the actor owns it. Anyone signed in can read it, so others are refused (403)."""
    item: PortfolioItem = fold(uow, item_id, evolve, "portfolio item")
    if item.freelancer_id != actor_id:
        raise Forbidden("Only the item's owner can change it")
    check_version(item.version, expected, "portfolio item")
    return item


def add_portfolio_item(uow: UnitOfWork, cmd: AddPortfolioItem) -> str:
    uow.append(cmd.item_id, STREAM, 0, [PortfolioItemAdded(**cmd.model_dump())])
    return cmd.item_id


def revise_portfolio_item(uow: UnitOfWork, cmd: RevisePortfolioItem) -> None:
    item = owned_item(uow, cmd.item_id, cmd.actor_id, cmd.expected_versions)
    if cmd.changes:
        uow.append(item.id, STREAM, item.version, [PortfolioItemRevised(item_id=item.id, changes=dict(cmd.changes))])


def remove_portfolio_item(uow: UnitOfWork, cmd: RemovePortfolioItem) -> None:
    item = owned_item(uow, cmd.item_id, cmd.actor_id, cmd.expected_versions)
    uow.append(item.id, STREAM, item.version, [PortfolioItemRemoved(item_id=item.id, freelancer_id=item.freelancer_id)])
