"""Facts about uploaded files (images and PDFs). The bytes live in file storage; the log holds what was checked."""

from __future__ import annotations

from dataclasses import dataclass

from core.events.base import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadPresigned(Event):
    """A user was handed a URL to put one file of this declared type and exact size straight into storage.

    Nothing is stored yet: the upload becomes usable only with a later UploadStored.
    """

    TYPE = "UploadPresigned"
    upload_id: str
    owner_id: str
    content_type: str
    size: int
    backend: str
    original_name: str
    expires_at: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadDiscarded(Event):
    """An upload was deleted by housekeeping: never completed, or never shown anywhere, within the grace period.

    Its bytes (if any) are removed from storage after this is recorded; the id is never used again.
    """

    TYPE = "UploadDiscarded"
    upload_id: str
    owner_id: str
    reason: str  # "never_completed" or "never_referenced"


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadStored(Event):
    """A file is in storage under `storage_key`, its type judged from its bytes, its size and sha256 measured.

    `original_name` is the client's file name, sanitized; it is only ever shown, never used as a key or path.
    """

    TYPE = "UploadStored"
    upload_id: str
    owner_id: str
    content_type: str
    size: int
    sha256: str
    backend: str
    original_name: str
    storage_key: str
