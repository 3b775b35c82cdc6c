"""Facts about freelancers' portfolio items."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.events.base import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class PortfolioItemAdded(Event):
    """A freelancer showed a piece of past work (`image_url`: an https URL or an upload id)."""

    TYPE = "PortfolioItemAdded"
    item_id: str
    freelancer_id: str
    title: str
    description: str
    image_url: str
    project_url: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class PortfolioItemRevised(Event):
    """The freelancer changed an item; only changed fields are present (`project_url` None clears it)."""

    TYPE = "PortfolioItemRevised"
    item_id: str
    changes: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class PortfolioItemRemoved(Event):
    """The freelancer took the item down; it vanishes from reads but stays in the log."""

    TYPE = "PortfolioItemRemoved"
    item_id: str
    freelancer_id: str
