"""Every read model, in one visible list."""

from __future__ import annotations

from queries import contracts, matching, payments, portfolio, projects, proposals, sessions, uploads, users
from queries.projection import Projection
from queries.readmodel import ReadModel

# `matching` last: its change log reads rows the others wrote for the same event (a contract's freelancer).
READ_MODELS: tuple[ReadModel, ...] = (
    users,
    projects,
    proposals,
    contracts,
    portfolio,
    uploads,
    payments,
    sessions,
    matching,
)


def projection() -> Projection:
    return Projection(READ_MODELS)
