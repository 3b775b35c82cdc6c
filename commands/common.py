"""What every aggregate's handlers share: folding a stream into state, and If-Match checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel, ConfigDict

from core.errors import NotFound, PreconditionFailed
from core.events.base import StoredEvent
from core.store import UnitOfWork

S = TypeVar("S")


class Command(BaseModel):
    """Commands are frozen and strict: a typo in a field name is a bug, not an ignored value."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def fold(uow: UnitOfWork, stream_id: str, evolve: Callable[[S | None, StoredEvent], S | None], what: str) -> S:
    """The stream's current state, or NotFound (also for deleted aggregates: evolve returns None)."""
    state: S | None = None
    for event in uow.load(stream_id):
        state = evolve(state, event)
    if state is None:
        raise NotFound(f"No {what} with that id")
    return state


def check_version(version: int, expected: frozenset[int] | None, what: str) -> None:
    """`If-Match` named the versions the change may apply to; refuse if the current one is none of them."""
    if expected is not None and version not in expected:
        raise PreconditionFailed(f"The {what} changed since you read it (If-Match does not match)")
