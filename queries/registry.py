"""Every read model, in one visible list."""

from __future__ import annotations

from queries import contracts, payments, portfolio, projects, proposals, sessions, uploads, users
from queries.projection import Projection

READ_MODELS = (users, projects, proposals, contracts, portfolio, uploads, payments, sessions)


def projection() -> Projection:
    return Projection(READ_MODELS)
