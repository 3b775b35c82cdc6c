"""Every read model, in one visible list."""

from __future__ import annotations

from queries import users
from queries.projection import Projection

READ_MODELS = (users,)


def projection() -> Projection:
    return Projection(READ_MODELS)
