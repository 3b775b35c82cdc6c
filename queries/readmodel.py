"""The contract every read-model module meets: its tables, their DDL and the projectors that fill them.

A read model is a module; `queries/registry.py` lists them as `ReadModel`s, so mypy checks each one
against this protocol instead of `Projection` reading attributes by name at run time.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Protocol

from core.db import Connection
from core.events.base import StoredEvent

Statement = tuple[str, Sequence[Any]]
Projector = Callable[[StoredEvent], list[Statement]]
# A REINDEX step: SQL to run, or a function of the connection (a derived table built in batches).
ReindexStep = str | Callable[[Connection], None]


class ReadModel(Protocol):
    """A read model: named, versioned tables built from events by its projectors."""

    @property
    def NAME(self) -> str:
        """The name recorded with VERSION in projection_versions."""

    @property
    def VERSION(self) -> int:
        """Changed when the tables' shape or content changes: a store built by another version is stale."""

    @property
    def TABLES(self) -> Sequence[str]:
        """The tables it owns, in creation order (dropped in reverse)."""

    @property
    def SCHEMA(self) -> Sequence[str]:
        """CREATE TABLE and CREATE INDEX statements."""

    @property
    def PROJECTORS(self) -> Mapping[str, Projector]:
        """Event type to projector."""

    @property
    def ADDITIVE(self) -> Collection[str]:
        """Statements whose deltas `apply_events` sums per row (queries/projection.py); empty if none."""

    @property
    def INDEXING(self) -> Collection[str]:
        """Statements that only maintain an index, skipped by a bulk replay; empty if none."""

    @property
    def REINDEX(self) -> Sequence[ReindexStep]:
        """Steps that build what INDEXING maintains, in one pass after a bulk replay; empty if none."""
