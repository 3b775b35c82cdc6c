"""Uploads, write side: record a file the edge streamed into storage, or a presigned upload and its completion.

The edge does the I/O (streaming, sniffing, hashing, storage); these handlers only decide whether what it
measured may be recorded. A presigned upload is `pending` until its bytes were checked, then `stored`.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from commands.common import Command, fold
from core.errors import InvalidState, NotFound, UnsupportedMediaType, ValidationFailed
from core.events.base import StoredEvent
from core.events.uploads import UploadDiscarded, UploadPresigned, UploadStored
from core.sniff import ALLOWED_CONTENT_TYPES
from core.store import UnitOfWork

STREAM = "upload"
MAX_NAME_LENGTH = 255
FALLBACK_NAME = "upload"


def sanitize_filename(raw: str) -> str:
    """A client's file name made safe to show: last path component, no control characters, at most 255 chars.

    It is metadata only. Storage keys are server ids, so even an unsanitized name could not pick a path.
    """
    text = unicodedata.normalize("NFC", raw).replace("\\", "/")
    text = text.rsplit("/", 1)[-1]
    text = "".join(c for c in text if unicodedata.category(c)[0] not in ("C", "Z") or c == " ")
    text = text.strip().lstrip(".").strip()
    return text[:MAX_NAME_LENGTH] or FALLBACK_NAME


def _allowed(content_type: str) -> str:
    if content_type not in ALLOWED_CONTENT_TYPES:
        raise ValueError(f"content type {content_type!r} is not accepted")
    return content_type


FileName = Annotated[str, AfterValidator(sanitize_filename)]
ContentType = Annotated[str, AfterValidator(_allowed)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Backend = Literal["local", "s3"]


class StoreUpload(Command):
    """Record a file the edge streamed into storage itself (checked type, measured size and sha256)."""

    upload_id: str
    owner_id: str
    content_type: ContentType
    size: int = Field(ge=1)
    sha256: Sha256
    backend: Backend
    original_name: FileName
    storage_key: str


class PresignUpload(Command):
    """Record that the owner was handed a URL to put one file of this type and exact size into storage."""

    upload_id: str
    owner_id: str
    content_type: ContentType
    size: int = Field(ge=1)
    backend: Backend
    original_name: FileName
    expires_at: str


class CompleteUpload(Command):
    """The bytes of a presigned upload arrived and were checked: record them (owner only, once)."""

    upload_id: str
    actor_id: str
    storage_key: str
    content_type: str
    size: int
    sha256: Sha256


class DiscardUpload(Command):
    """Delete an upload that was never completed or never referenced (housekeeping only)."""

    upload_id: str
    reason: Literal["never_completed", "never_referenced"]


@dataclass(frozen=True, slots=True)
class Upload:
    """What the write side needs to know about an upload."""

    id: str
    owner_id: str
    status: Literal["pending", "stored", "discarded"]
    content_type: str
    size: int
    backend: str
    original_name: str
    version: int


def evolve(state: Upload | None, event: StoredEvent) -> Upload | None:
    d = event.data
    if event.type == "UploadPresigned":
        return Upload(
            d["upload_id"], d["owner_id"], "pending", d["content_type"], d["size"], d["backend"], d["original_name"], 1
        )
    if event.type == "UploadStored":
        return Upload(
            d["upload_id"],
            d["owner_id"],
            "stored",
            d["content_type"],
            d["size"],
            d["backend"],
            d["original_name"],
            event.version,
        )
    if event.type == "UploadDiscarded" and state is not None:
        return Upload(
            state.id,
            state.owner_id,
            "discarded",
            state.content_type,
            state.size,
            state.backend,
            state.original_name,
            event.version,
        )
    return state


def store_upload(uow: UnitOfWork, cmd: StoreUpload) -> str:
    uow.append(cmd.upload_id, STREAM, 0, [UploadStored(**cmd.model_dump())])
    return cmd.upload_id


def presign_upload(uow: UnitOfWork, cmd: PresignUpload) -> str:
    uow.append(cmd.upload_id, STREAM, 0, [UploadPresigned(**cmd.model_dump())])
    return cmd.upload_id


def complete_upload(uow: UnitOfWork, cmd: CompleteUpload) -> str:
    upload: Upload = fold(uow, cmd.upload_id, evolve, "upload")
    if upload.owner_id != cmd.actor_id or upload.status == "discarded":
        raise NotFound("No upload with that id")
    if upload.status != "pending":
        raise InvalidState("This upload is already complete")
    if cmd.content_type != upload.content_type:
        raise UnsupportedMediaType(
            f"The file's content is {cmd.content_type}, but the upload was announced as {upload.content_type}"
        )
    if cmd.size != upload.size:
        raise ValidationFailed(
            f"The file has {cmd.size} bytes, but the upload was announced with {upload.size}",
            errors=[{"loc": ["body", "size"], "msg": "does not match the presigned size"}],
        )
    stored = UploadStored(
        upload_id=upload.id,
        owner_id=upload.owner_id,
        content_type=cmd.content_type,
        size=cmd.size,
        sha256=cmd.sha256,
        backend=upload.backend,
        original_name=upload.original_name,
        storage_key=cmd.storage_key,
    )
    uow.append(upload.id, STREAM, upload.version, [stored])
    return upload.id


def discard_upload(uow: UnitOfWork, cmd: DiscardUpload) -> Upload:
    upload: Upload = fold(uow, cmd.upload_id, evolve, "upload")
    if upload.status == "discarded":
        raise InvalidState("This upload was already discarded")
    if (upload.status == "pending") != (cmd.reason == "never_completed"):
        raise InvalidState(f"An upload that is {upload.status} is not discarded as {cmd.reason}")
    discarded = UploadDiscarded(upload_id=upload.id, owner_id=upload.owner_id, reason=cmd.reason)
    uow.append(upload.id, STREAM, upload.version, [discarded])
    return upload
