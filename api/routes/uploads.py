"""`/api/uploads`: files (PNG, JPEG, WebP, GIF, PDF) judged by their bytes, streamed, never held whole in memory.

Three ways in, one rule: a file is recorded (UploadStored) only after its first bytes were sniffed, its size
counted against MAX_UPLOAD_MB and its sha256 computed, and it is then kept under a key only the server chose.

- `POST /api/uploads` (multipart): python-multipart's streaming `MultipartParser` is fed `request.stream()`
  chunk by chunk; the `file` part's bytes go through a bounded pipe to `storage.save` running in a worker
  thread. (Starlette's `request.form()` was not used: it spools each file to a SpooledTemporaryFile that we
  would then have to copy to storage, writing every byte twice, and it decides about size only afterwards.)
  The parser hands out views of the request's own buffers; the storage thread makes the one copy. Memory per
  upload is a few chunks of CHUNK_SIZE (the read being parsed, one queued, one being written) whatever the
  file's size; the S3 backend adds its 5 MiB multipart part buffer. Measured by
  tests/e2e/test_upload_memory.py: copies on the event loop, a deeper queue, zero-copy hand-off of whole
  reads or 64 KiB pieces all left a larger or noisier peak.
- `POST /api/uploads/presign` hands out a one-file URL: S3 presigned PUT, or (local backend) our own signed
  `PUT /api/uploads/direct/{key}`, which streams like the multipart route and records the file at once.
  For S3, `POST /api/uploads/{id}/complete` then copies the object into a fresh server-only key while
  sniffing, counting and hashing it, so bytes put later through the still-valid URL can never replace
  what was checked.
- Who sees an upload: its owner; and anyone signed in once a profile or portfolio item shows it (those are
  public to signed-in users). Everyone else gets 404. See queries/uploads.py.

The routes that write are declared `idempotent=False`, so api/routing.py never reads their body: the
Idempotency-Key wrapper (which reads the whole body to fingerprint it) never buffers an upload, and the
direct PUT is not held to the empty body of other writes without a body model. Retrying them is safe
without it: a retried upload or presign makes a second unused record, a second direct PUT is refused once
the upload is complete, and `complete` answers an already completed upload with its metadata.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, Field
from starlette.responses import RedirectResponse, Response, StreamingResponse

from api.commanding import execute, written
from api.responses import JSON
from api.routing import Call, Operation, require_json, validate_json
from api.schemas import JsonInt, Strict
from api.uploads.housekeeping import require_room, upload_limit
from api.uploads.intake import (
    ACCEPTED,
    CHUNK_SIZE,
    Intake,
    Received,
    declared_length,
    limit_bytes,
    not_accepted,
    size_mismatch,
    too_large,
)
from api.uploads.multipart import receive_multipart
from api.uploads.storage import _storage, blocking, discard
from commands.uploads import CompleteUpload, PresignUpload, StoreUpload
from core.clock import rfc3339
from core.db import Connection
from core.errors import (
    Forbidden,
    InvalidState,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from core.ids import is_id, new_id
from core.sniff import ALLOWED_CONTENT_TYPES, SNIFF_BYTES, sniff_content_type
from core.storage import LocalStorage, Storage, StoredObjectMissing
from queries.uploads import UploadRow, find_upload, get_own_upload, get_upload

M = TypeVar("M", bound=BaseModel)
PRESIGN_TTL_S = 900
DOWNLOAD_TTL_S = 3600


# ------------------------------------------------------------------------------- shapes


class UploadOut(Strict):
    id: str
    url: str = Field(description="where to download it: a presigned S3 URL, or this API's /content route")
    content_type: str
    size: int
    sha256: str


class UploadMeta(UploadOut):
    created_at: str


class PresignBody(Strict):
    filename: str = Field(min_length=1, max_length=1024)
    content_type: str = Field(min_length=1, max_length=255, examples=["image/png"])
    size: JsonInt = Field(ge=1, description="exact size in bytes; the upload must match it")


class PresignOut(Strict):
    file_id: str
    upload_url: str
    method: str
    headers: dict[str, str]
    expires_in: int


class DirectQuery(Strict):
    expires: int
    sig: str = Field(max_length=128)


# ------------------------------------------------------------------------------- helpers


def absolute(call: Call, url: str) -> str:
    """A URL of this API as clients should call it: PUBLIC_BASE_URL, else the address the request came to."""
    if not url.startswith("/"):
        return url
    base = call.runtime.settings.public_base_url or str(call.request.base_url)
    return base.rstrip("/") + url


async def download_url(call: Call, upload_id: str, storage_key: str) -> str:
    presigned = await blocking(lambda: _storage(call.runtime).download_url(storage_key, DOWNLOAD_TTL_S))
    return presigned or absolute(call, f"/api/uploads/{upload_id}/content")


async def upload_view(call: Call, upload_id: str, storage_key: str, stored: Received) -> dict[str, Any]:
    return {
        "id": upload_id,
        "url": await download_url(call, upload_id, storage_key),
        "content_type": stored.content_type,
        "size": stored.size,
        "sha256": stored.sha256,
    }


async def meta_view(call: Call, row: UploadRow) -> dict[str, Any]:
    stored = Received(row.content_type, row.size, row.sha256 or "")
    return {**await upload_view(call, row.id, row.storage_key or row.id, stored), "created_at": row.created_at}


async def record(call: Call, command: Any, storage_key: str) -> tuple[int, int]:
    """Run the command that records a stored object: the upload's new version and the position (its ETag and
    token). If it fails, the object goes too."""
    upload_id = command.upload_id

    def version(conn: Connection) -> int:
        row = find_upload(conn, upload_id)
        return row.version if row is not None else 0

    try:
        return await execute(call, command, version)
    except BaseException:
        await discard(call.runtime, storage_key)
        raise


async def json_body(call: Call, model: type[M]) -> M:
    """A small JSON body read with the JSON size limit (/api/uploads paths skip the middleware's limit)."""
    request, limit = call.request, call.runtime.settings.max_body_bytes
    require_json(request)
    if (declared_length(call) or 0) > limit:
        raise PayloadTooLarge(f"The body exceeds {limit} bytes")
    raw = bytearray()
    async for data in request.stream():
        raw += data
        if len(raw) > limit:
            raise PayloadTooLarge(f"The body exceeds {limit} bytes")
    return validate_json(model, raw)


def upload_id_of(call: Call, name: str = "upload_id") -> str:
    value = call.path[name]
    if not is_id(value):
        raise NotFound("No upload with that id")
    return value


# ------------------------------------------------------------------------------- handlers


async def upload(call: Call) -> Response:
    runtime = call.runtime
    upload_id = new_id()  # also the storage key: the client's file name never comes near a path
    limit, too_big, code = await upload_limit(call, limit_bytes(runtime), str(too_large(runtime)))
    intake = Intake(runtime, upload_id, limit, too_big, too_big_code=code)
    try:
        stored, filename = await receive_multipart(call, intake)
    except BaseException:
        await intake.abort()
        raise
    command = StoreUpload(
        upload_id=upload_id,
        owner_id=call.user.sub,
        content_type=stored.content_type,
        size=stored.size,
        sha256=stored.sha256,
        backend=runtime.settings.storage_backend,
        original_name=filename,
        storage_key=upload_id,
    )
    version, position = await record(call, command, upload_id)
    return written(await upload_view(call, upload_id, upload_id, stored), position, 201, etag=version)


async def presign(call: Call) -> Response:
    runtime = call.runtime
    body = await json_body(call, PresignBody)
    content_type = body.content_type.strip().lower()
    if content_type not in ALLOWED_CONTENT_TYPES:
        raise not_accepted(f"Only {ACCEPTED} files are accepted; {content_type!r} is not one of them")
    if body.size > limit_bytes(runtime):
        raise too_large(runtime)
    await require_room(call, body.size)
    upload_id = new_id()
    presigned = await blocking(lambda: _storage(runtime).presign_put(upload_id, content_type, body.size, PRESIGN_TTL_S))
    command = PresignUpload(
        upload_id=upload_id,
        owner_id=call.user.sub,
        content_type=content_type,
        size=body.size,
        backend=runtime.settings.storage_backend,
        original_name=body.filename,
        expires_at=rfc3339(runtime.clock.now() + timedelta(seconds=presigned.expires_in)),
    )
    pending, position = await execute(call, command, lambda conn: find_upload(conn, upload_id))
    out = {
        "file_id": pending.id,
        "upload_url": absolute(call, presigned.url),
        "method": presigned.method,
        "headers": presigned.headers,
        "expires_in": presigned.expires_in,
    }
    return written(out, position)


async def put_direct(call: Call) -> Response:
    """Local backend: the signed URL from presign. The signature is the credential (no bearer token)."""
    runtime, key, query = call.runtime, call.path["key"], call.query
    storage = await blocking(_storage, runtime)
    row = await runtime.read(lambda conn: find_upload(conn, key)) if is_id(key) else None
    if (
        not isinstance(storage, LocalStorage)
        or row is None
        or not storage.verify_presigned(key, row.content_type, row.size, query.expires, query.sig, time.time())
    ):
        raise Forbidden("This upload URL is not valid or has expired")
    if row.stored:
        raise InvalidState("This upload is already complete")
    sent_type = call.request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if sent_type != row.content_type:
        raise not_accepted(f"Send the file with Content-Type: {row.content_type}, as presigned")
    if (declared_length(call) or 0) > row.size:
        raise PayloadTooLarge(f"The body is larger than the presigned size of {row.size} bytes")
    storage_key = new_id()  # a key no URL can write: a second PUT on the same URL cannot replace checked bytes
    too_big = f"The body is larger than the presigned size of {row.size} bytes"
    intake = Intake(runtime, storage_key, row.size, too_big, expected_type=row.content_type)
    try:
        async for data in call.request.stream():
            await intake.feed(data)
        stored = await intake.finish(exact_size=row.size)
    except BaseException:
        await intake.abort()
        raise
    command = CompleteUpload(
        upload_id=key,
        actor_id=row.owner_id,
        storage_key=storage_key,
        content_type=stored.content_type,
        size=stored.size,
        sha256=stored.sha256,
    )
    version, position = await record(call, command, storage_key)
    return written(await upload_view(call, key, storage_key, stored), position, etag=version)


def copy_checked(storage: Storage, source: str, target: str, content_type: str, size: int) -> Received:
    """Storage thread: copy `source` to `target`, sniffing, counting and hashing on the way; raise if wrong."""
    sha = hashlib.sha256()
    head = bytearray()
    counted = 0

    def check_head() -> None:
        found = sniff_content_type(bytes(head))
        if found is None:
            raise not_accepted()
        if found != content_type:
            raise not_accepted(f"The file's content is {found}, but the upload was announced as {content_type}")

    def checked() -> Iterator[bytes]:
        nonlocal counted
        chunks = storage.open(source, CHUNK_SIZE)
        try:
            for chunk in chunks:
                counted += len(chunk)
                if counted > size:
                    raise size_mismatch(counted, size)
                if len(head) < SNIFF_BYTES:
                    head.extend(chunk[: SNIFF_BYTES - len(head)])
                    if len(head) >= SNIFF_BYTES:
                        check_head()
                sha.update(chunk)
                yield chunk
            if len(head) < SNIFF_BYTES:
                check_head()
            if counted != size:
                raise size_mismatch(counted, size)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    storage.save(target, checked(), content_type)
    return Received(content_type, counted, sha.hexdigest())


async def complete(call: Call) -> Response:
    """S3: the client put the file with the presigned URL; check it and record it (owner only)."""
    runtime, upload_id, user_id = call.runtime, upload_id_of(call), call.user.sub
    row = await runtime.read(lambda conn: get_own_upload(conn, upload_id, user_id))
    if row.stored:  # completing again answers like the first time
        stored = Received(row.content_type, row.size, row.sha256 or "")
        view = await upload_view(call, row.id, row.storage_key or row.id, stored)
        return JSON(view, headers={"ETag": f'"{row.version}"'})
    storage = await blocking(_storage, runtime)
    found = await blocking(storage.size, upload_id)
    if found is None:
        raise ValidationFailed(
            "Nothing has been uploaded with this upload's URL yet",
            errors=[{"loc": ["path", "upload_id"], "msg": "no object in storage"}],
        )
    if found != row.size:
        await discard(runtime, upload_id)  # the URL stays usable until it expires: the client may put it again
        raise size_mismatch(found, row.size)
    storage_key = new_id()
    try:
        stored = await blocking(copy_checked, storage, upload_id, storage_key, row.content_type, row.size)
    except (UnsupportedMediaType, ValidationFailed):
        await discard(runtime, upload_id)
        raise
    except StoredObjectMissing:
        raise ValidationFailed("The uploaded object disappeared; upload it again") from None
    command = CompleteUpload(
        upload_id=upload_id,
        actor_id=user_id,
        storage_key=storage_key,
        content_type=stored.content_type,
        size=stored.size,
        sha256=stored.sha256,
    )
    version, position = await record(call, command, storage_key)
    await discard(runtime, upload_id)  # the checked copy is what counts; the writable slot is emptied
    return written(await upload_view(call, upload_id, storage_key, stored), position, etag=version)


async def get_one(call: Call) -> Response:
    upload_id, viewer = upload_id_of(call), call.user.sub
    row = await call.runtime.read(lambda conn: get_upload(conn, upload_id, viewer))
    return JSON(await meta_view(call, row), headers={"ETag": f'"{row.version}"'})


EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
    "application/pdf": "pdf",
}


async def content(call: Call) -> Response:
    """The bytes (local backend streams them; S3 redirects to a short-lived presigned GET)."""
    upload_id, viewer = upload_id_of(call), call.user.sub
    row = await call.runtime.read(lambda conn: get_upload(conn, upload_id, viewer))
    key = row.storage_key or row.id
    storage = await blocking(_storage, call.runtime)
    presigned = await blocking(storage.download_url, key, DOWNLOAD_TTL_S)
    if presigned is not None:
        return RedirectResponse(presigned, status_code=307, headers={"Cache-Control": "private, no-store"})
    try:
        chunks = await blocking(storage.open, key, CHUNK_SIZE)
    except StoredObjectMissing:
        raise NotFound("The file of this upload is missing from storage") from None
    disposition = "attachment" if row.content_type == "application/pdf" else "inline"
    headers = {
        "Content-Length": str(row.size),
        "Content-Disposition": f'{disposition}; filename="{row.id}.{EXTENSIONS.get(row.content_type, "bin")}"',
        "Cache-Control": "private, max-age=86400, immutable",
        "ETag": f'"{row.sha256}"',
    }
    return StreamingResponse(stream(chunks), media_type=row.content_type, headers=headers)


async def stream(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Pull chunks in a storage thread, one at a time (the response sends each before the next is read)."""
    try:
        while (chunk := await blocking(next, chunks, None)) is not None:
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            await blocking(close)


UPLOAD_ERRORS = (400, 401, 413, 415, 422, 503)

OPERATIONS = [
    Operation(
        "POST",
        "/api/uploads",
        upload,
        "Upload a file (multipart/form-data, field `file`; PNG, JPEG, WebP, GIF or PDF by content; signed in)",
        "uploads",
        response=UploadOut,
        status=201,
        etag=True,
        idempotent=False,
        multipart=True,
        errors=UPLOAD_ERRORS,
    ),
    Operation(
        "POST",
        "/api/uploads/presign",
        presign,
        "Get a URL to upload one file straight to storage (signed in)",
        "uploads",
        response=PresignOut,
        reads_body=PresignBody,
        idempotent=False,
        errors=(400, 401, 413, 415, 422, 503),
    ),
    Operation(
        "PUT",
        "/api/uploads/direct/{key}",
        put_direct,
        "Upload the file of a presigned upload (local storage; the URL's signature authorizes it)",
        "uploads",
        query=DirectQuery,
        response=UploadOut,
        etag=True,
        auth=False,
        idempotent=False,
        errors=(400, 403, 409, 413, 415, 422),
    ),
    Operation(
        "POST",
        "/api/uploads/{upload_id}/complete",
        complete,
        "Check and record a file put with a presigned S3 URL (owner; signed in)",
        "uploads",
        response=UploadOut,
        etag=True,
        idempotent=False,
        errors=(401, 404, 409, 415, 422, 503),
    ),
    Operation(
        "GET",
        "/api/uploads/{upload_id}",
        get_one,
        "An upload's metadata and download URL (owner; anyone once a profile or portfolio shows it; the owner "
        "of a project a proposal attaches it to)",
        "uploads",
        response=UploadMeta,
        etag=True,
        errors=(401, 404),
    ),
    Operation(
        "GET",
        "/api/uploads/{upload_id}/content",
        content,
        "An upload's bytes (local storage streams them; S3 redirects to a presigned URL)",
        "uploads",
        etag=True,
        errors=(401, 404),
        answers=((307, "With S3 storage: a redirect to a short-lived presigned URL of the bytes", None),),
    ),
]
