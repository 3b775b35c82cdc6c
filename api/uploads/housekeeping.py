"""Uploads an account may keep: a quota (UPLOAD_QUOTA_MB), and housekeeping that deletes what nobody uses.

The quota counts stored uploads and presigned ones whose URL has not expired (the space they may still fill).
It is checked before bytes are accepted, so two uploads sent at the same moment may each pass against the same
remaining room: the overshoot is bounded by what one account sends at once (each file at most MAX_UPLOAD_MB).

Housekeeping (on the primary, every hour) discards uploads never completed (a presigned URL that expired more
than UPLOAD_GC_GRACE_HOURS ago) and uploads stored more than that long ago that no profile, portfolio item or
proposal shows. Each is an `UploadDiscarded` event, decided in the writer after checking, in the same
transaction, that nothing references the upload; its bytes are removed from storage after the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal, cast

import structlog

from commands.uploads import DiscardUpload
from core.clock import rfc3339
from core.db import Connection
from core.errors import DomainError, InvalidState, PayloadTooLarge
from core.ids import new_id
from queries.uploads import get_usage, is_in_use, list_collectable

if TYPE_CHECKING:
    from api.routing import Call
    from node.runtime import Runtime

log = structlog.get_logger("uploads")
MB = 1024 * 1024
QUOTA_CODE = "upload_quota_exceeded"
GC_BATCH = 100
Reason = Literal["never_completed", "never_referenced"]


async def room_left(call: Call) -> int | None:
    """Bytes the caller may still upload (None: no quota)."""
    runtime = call.runtime
    quota = runtime.settings.upload_quota_mb * MB
    if not quota:
        return None
    now, user_id = rfc3339(runtime.clock.now()), call.user.sub
    used = await runtime.read(lambda conn: get_usage(conn, user_id, now))
    return quota - used


def quota_exceeded(call: Call, left: int) -> PayloadTooLarge:
    quota = call.runtime.settings.upload_quota_mb
    return PayloadTooLarge(
        f"Your uploads would exceed your storage quota of {quota} MB ({max(left, 0)} bytes left); "
        "uploads no profile, portfolio item or proposal shows are deleted after a while",
        QUOTA_CODE,
    )


async def require_room(call: Call, size: int) -> None:
    """A presigned upload of `size` bytes fits in the caller's quota (413 `upload_quota_exceeded` if not)."""
    left = await room_left(call)
    if left is not None and size > left:
        raise quota_exceeded(call, left)


async def upload_limit(call: Call, max_bytes: int, too_big: str) -> tuple[int, str, str | None]:
    """The most bytes a streamed upload may have, and the message and error type for one that has more."""
    left = await room_left(call)
    if left is None or left >= max_bytes:
        return max_bytes, too_big, None
    if left <= 0:
        raise quota_exceeded(call, left)
    return left, quota_exceeded(call, left).detail, QUOTA_CODE


def unused(upload_id: str) -> Callable[[Connection], None]:
    """A check run in the discarding command's transaction, before it: refuse if the upload is shown now."""

    def guard(conn: Connection) -> None:
        if is_in_use(conn, upload_id):
            raise InvalidState("The upload is in use")

    return guard


async def collect_uploads(runtime: Runtime, now: datetime) -> int:
    """Discard one batch of uploads past the grace period; returns how many were found (call again while full)."""
    cutoff = rfc3339(now - timedelta(hours=runtime.settings.upload_gc_grace_hours))
    found = await runtime.read(lambda conn: list_collectable(conn, cutoff, cutoff, GC_BATCH))
    meta = {"actor": "housekeeping", "request_id": new_id(), "region": runtime.settings.region_name}
    for upload_id, storage_key, reason in found:
        command = DiscardUpload(upload_id=upload_id, reason=cast(Reason, reason))
        try:
            await runtime.execute(command, meta, guard=unused(upload_id))
        except DomainError:  # shown somewhere since it was listed, or already discarded: keep it
            continue
        for key in {upload_id, storage_key or upload_id}:  # a presigned S3 upload may have bytes under its id
            with contextlib.suppress(Exception):
                await asyncio.to_thread(runtime.storage.delete, key)
        log.info("upload_discarded", upload_id=upload_id, reason=reason)
    return len(found)
