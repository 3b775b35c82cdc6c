"""Checks that the upload ids another resource names are uploads of the caller's."""

from __future__ import annotations

from api.routing import Call
from core.errors import (
    ValidationFailed,
)
from core.ids import is_id
from queries.uploads import is_own_image, is_own_stored


async def require_own_image(call: Call, value: str | None, field: str) -> None:
    """Profile and portfolio images may name an upload id: it must be a stored image of the caller's."""
    if value is None or not is_id(value):
        return
    user_id = call.user.sub
    if not await call.runtime.read(lambda conn: is_own_image(conn, value, user_id)):
        raise ValidationFailed(
            f"{field} names no stored image upload of yours",
            errors=[{"loc": ["body", field], "msg": "unknown upload id, not yours, or not an image"}],
        )


async def require_own_uploads(call: Call, values: list[str], field: str) -> None:
    """Proposal attachments may name upload ids: each must be a stored upload (any accepted type) of the caller's."""
    user_id = call.user.sub
    ids = [(index, value) for index, value in enumerate(values) if is_id(value)]
    if not ids:
        return
    owned = await call.runtime.read(lambda conn: [is_own_stored(conn, value, user_id) for _, value in ids])
    for (index, _), ok in zip(ids, owned, strict=True):
        if not ok:
            raise ValidationFailed(
                f"{field} names no stored upload of yours",
                errors=[{"loc": ["body", field, index], "msg": "unknown upload id, not yours, or not complete"}],
            )
