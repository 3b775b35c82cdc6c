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

The routes that write are declared `idempotent=False`, so edge/routing.py never reads their body: the
Idempotency-Key wrapper (which reads the whole body to fingerprint it) never buffers an upload, and the
direct PUT is not held to the empty body of other writes without a body model. Retrying them is safe
without it: a retried upload or presign makes a second unused record, a second direct PUT is refused once
the upload is complete, and `complete` answers an already completed upload with its metadata.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import queue
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, Field
from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header
from starlette.responses import RedirectResponse, Response, StreamingResponse

from commands.uploads import CompleteUpload, PresignUpload, StoreUpload
from core.clock import rfc3339
from core.db import Connection
from core.errors import (
    BadRequest,
    Forbidden,
    InvalidState,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    UnsupportedMediaType,
    ValidationFailed,
)
from core.ids import is_id, new_id
from core.sniff import ALLOWED_CONTENT_TYPES, SNIFF_BYTES, sniff_content_type
from core.storage import LocalStorage, Storage, StoredObjectMissing
from edge.commanding import execute, written
from edge.responses import JSON
from edge.routing import Call, Operation, require_json, validate_json
from edge.runtime import Runtime
from edge.schemas import JsonInt, Strict
from edge.upload_housekeeping import require_room, upload_limit
from queries.uploads import UploadRow, find_upload, get_own_upload, get_upload, is_own_image, is_own_stored

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

T = TypeVar("T")
Piece = bytes | memoryview  # file data on its way to storage: the request's bytes, or a view into them
M = TypeVar("M", bound=BaseModel)
MB = 1024 * 1024
CHUNK_SIZE = 256 * 1024  # the unit carried to storage: uvloop reads up to 256 KiB at once, so ~1 piece a read
PIPE_DEPTH = 1  # chunks queued for the storage thread (plus the one it writes): double buffering
MULTIPART_SLACK = 64 * 1024  # boundaries, part headers and small fields around the file
IDLE_TIMEOUT_S = 60.0  # a storage thread gives up on a client that sends nothing for this long
PRESIGN_TTL_S = 900
DOWNLOAD_TTL_S = 3600
STORAGE_THREADS = 32
ACCEPTED = "PNG, JPEG, WebP, GIF or PDF"

# Storage calls block (disk, boto3): they run here, never on the event loop, and never in the default
# executor, so slow uploads cannot starve password hashing and the other `in_thread` users.
_threads = ThreadPoolExecutor(max_workers=STORAGE_THREADS, thread_name_prefix="storage")


async def blocking(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(_threads, fn, *args)


def _storage(runtime: Runtime) -> Storage:
    return runtime.storage


def limit_bytes(runtime: Runtime) -> int:
    return runtime.settings.max_upload_mb * MB


def too_large(runtime: Runtime) -> PayloadTooLarge:
    return PayloadTooLarge(f"The file is larger than the limit of {runtime.settings.max_upload_mb} MB")


def not_accepted(detail: str | None = None) -> UnsupportedMediaType:
    return UnsupportedMediaType(detail or f"Only {ACCEPTED} files are accepted (judged by their content)")


def size_mismatch(actual: int, announced: int) -> ValidationFailed:
    return ValidationFailed(
        f"The file has {actual} bytes, but the upload was announced with {announced}",
        errors=[{"loc": ["body", "size"], "msg": "does not match the presigned size"}],
    )


def declared_length(call: Call) -> int | None:
    raw = call.request.headers.get("content-length")
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        raise BadRequest("Content-Length is not a number") from None


# ------------------------------------------------------------------------------- streaming into storage


class UploadAborted(Exception):
    """The request side gave up (bad type, too large, client gone): storage must not keep anything."""


class UploadStalled(Exception):
    """No bytes arrived for IDLE_TIMEOUT_S: the storage thread stops waiting."""


_END = object()
_ABORT = object()


class Pipe:
    """Event loop → one storage thread, at most `depth` chunks in between; the loop never blocks on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, depth: int) -> None:
        self._loop = loop
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._space = asyncio.Semaphore(depth)
        self._consumer_gone = False

    async def put(self, chunk: Piece) -> bool:
        """Queue a chunk once there is room; False when the consumer has stopped (see its result)."""
        if self._consumer_gone:
            return False
        await self._space.acquire()
        if self._consumer_gone:
            return False
        self._queue.put(chunk)
        return True

    def close(self) -> None:
        self._queue.put(_END)

    def abort(self) -> None:
        self._queue.put(_ABORT)

    def chunks(self, sha: Any) -> Iterator[bytes]:
        """The consumer's side (storage thread): yield chunks, hashing them, until close; raise on abort."""
        while True:
            try:
                item = self._queue.get(timeout=IDLE_TIMEOUT_S)
            except queue.Empty:
                raise UploadStalled(f"no data for {IDLE_TIMEOUT_S:.0f} s") from None
            if item is _END:
                return
            if not isinstance(item, (bytes, memoryview)):
                raise UploadAborted
            chunk = bytes(item)  # the copy is made here, off the event loop's heap
            del item
            self._loop.call_soon_threadsafe(self._space.release)
            sha.update(chunk)  # hashlib releases the GIL for large buffers
            yield chunk

    def consumer_done(self) -> None:
        """Storage thread, when save returned or raised: wake a producer waiting for room."""
        self._consumer_gone = True
        with contextlib.suppress(RuntimeError):  # the loop is closing: nobody is waiting any more
            self._loop.call_soon_threadsafe(self._space.release)


@dataclass(frozen=True, slots=True)
class Received:
    content_type: str
    size: int
    sha256: str


class Intake:
    """One file arriving in pieces: sniff its head, count it, and stream it into storage under `key`.

    Nothing reaches storage before the head was sniffed; on abort the backend drops its partial object
    (LocalStorage removes its temp file, S3Storage aborts the multipart upload or never PUTs).
    """

    def __init__(
        self,
        runtime: Runtime,
        key: str,
        limit: int,
        too_big: str,
        expected_type: str | None = None,
        too_big_code: str | None = None,
    ) -> None:
        self._runtime = runtime
        self.key = key
        self.limit = limit
        self.too_big = too_big
        self.too_big_code = too_big_code
        self.expected_type = expected_type
        self.size = 0
        self.content_type = ""
        self._held: list[Piece] = []  # pieces before the sniff (at least SNIFF_BYTES, usually one piece)
        self._held_size = 0
        self._sha = hashlib.sha256()
        self._pipe: Pipe | None = None
        self._saving: asyncio.Future[int] | None = None

    async def feed(self, data: Piece) -> None:
        if not data:
            return
        self.size += len(data)
        if self.size > self.limit:
            raise PayloadTooLarge(self.too_big, self.too_big_code)
        if self._pipe is None:
            self._held.append(data)
            self._held_size += len(data)
            if self._held_size >= SNIFF_BYTES:
                await self._start()
            return
        await self._send(data)

    async def _start(self) -> None:
        held, self._held = self._held, []
        head = bytearray()
        for piece in held:
            head += piece[: SNIFF_BYTES - len(head)]
        found = sniff_content_type(bytes(head))
        if found is None:
            raise not_accepted()
        if self.expected_type is not None and found != self.expected_type:
            raise not_accepted(f"The file's content is {found}, but the upload was announced as {self.expected_type}")
        self.content_type = found
        loop = asyncio.get_running_loop()
        pipe = self._pipe = Pipe(loop, PIPE_DEPTH)
        self._saving = loop.run_in_executor(_threads, self._save, pipe, found)
        for piece in held:
            await self._send(piece)

    def _save(self, pipe: Pipe, content_type: str) -> int:  # storage thread
        try:
            return _storage(self._runtime).save(self.key, pipe.chunks(self._sha), content_type)
        finally:
            pipe.consumer_done()

    async def _send(self, data: Piece) -> None:
        if self._pipe is None or self._saving is None:
            raise RuntimeError("intake not started")
        if not await self._pipe.put(data):
            try:
                await self._saving  # raises what stopped the storage thread
            except UploadStalled:
                raise BadRequest(f"The upload sent no data for {IDLE_TIMEOUT_S:.0f} s") from None
            raise ServiceUnavailable("Storage stopped accepting the file", "storage_unavailable")

    async def finish(self, exact_size: int | None = None) -> Received:
        """All bytes are in: check the total, let storage commit, and say what was stored."""
        if exact_size is not None and self.size != exact_size:
            raise size_mismatch(self.size, exact_size)
        if self._pipe is None:
            await self._start()  # shorter than SNIFF_BYTES (an empty file fails the sniff)
        if self._pipe is None or self._saving is None:
            raise RuntimeError("intake not started")
        self._pipe.close()
        try:
            written_bytes = await self._saving
        except UploadStalled:
            raise BadRequest(f"The upload sent no data for {IDLE_TIMEOUT_S:.0f} s") from None
        if written_bytes != self.size:
            raise RuntimeError(f"storage wrote {written_bytes} bytes of {self.size}")
        return Received(self.content_type, self.size, self._sha.hexdigest())

    async def abort(self) -> None:
        """Make sure storage keeps nothing of this file (safe to call in any state, also after finish)."""
        if self._pipe is None or self._saving is None:
            return
        if not self._saving.done():
            self._pipe.abort()
        try:
            await self._saving
        except Exception:  # noqa: BLE001 - aborted or failed: the backend kept nothing
            return
        await discard(self._runtime, self.key)  # stored, but the request failed afterwards: keep nothing


# ------------------------------------------------------------------------------- multipart


class FilePart:
    """python-multipart callbacks: keep the `file` part's bytes (views of at most CHUNK_SIZE), drop the rest."""

    def __init__(self) -> None:
        self.pieces: list[Piece] = []
        self.filename = ""
        self.found = False
        self.repeated = False
        self.ended = False
        self._in_file = False
        self._field = bytearray()
        self._value = bytearray()
        self._headers: dict[bytes, bytes] = {}

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def take(self) -> list[Piece]:
        pieces, self.pieces = self.pieces, []
        return pieces

    def _part_begin(self) -> None:
        self._headers = {}
        self._in_file = False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[bytes(self._field).strip().lower()] = bytes(self._value).strip()
        self._field.clear()
        self._value.clear()

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b"").decode("latin-1"))
        if params.get(b"name") != b"file":
            return
        if self.found:
            self.repeated = True
            return
        self.found = self._in_file = True
        self.filename = params.get(b"filename", b"").decode("utf-8", "replace")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        # Views, not copies: the storage thread copies each piece when it takes it. They stay valid: `data` is
        # the request's immutable bytes (or python-multipart's own immutable boundary bytes).
        if self._in_file:
            view = memoryview(data)
            for at in range(start, end, CHUNK_SIZE):
                self.pieces.append(view[at : min(at + CHUNK_SIZE, end)])

    def _part_end(self) -> None:
        self._in_file = False

    def _end(self) -> None:
        self.ended = True


def multipart_boundary(call: Call) -> bytes:
    kind, params = parse_options_header(call.request.headers.get("content-type", ""))
    if kind != b"multipart/form-data":
        raise UnsupportedMediaType("Send the file as multipart/form-data in a field named `file`")
    boundary = params.get(b"boundary", b"")
    if not boundary:
        raise BadRequest("The multipart/form-data Content-Type has no boundary")
    return boundary


async def receive_multipart(call: Call, intake: Intake) -> tuple[Received, str]:
    """Feed the request body through the parser into `intake`; returns what was stored and the file name."""
    runtime = call.runtime
    boundary = multipart_boundary(call)
    body_limit = limit_bytes(runtime) + MULTIPART_SLACK
    if (declared_length(call) or 0) > body_limit:
        raise too_large(runtime)
    form = FilePart()
    try:
        parser = MultipartParser(boundary, form.callbacks())
    except MultipartParseError as exc:
        raise BadRequest("The multipart boundary is invalid") from exc
    received = 0
    async for data in call.request.stream():
        received += len(data)
        if received > body_limit:
            raise too_large(runtime)
        try:
            parser.write(data)
        except MultipartParseError as exc:
            raise BadRequest("The multipart/form-data body is malformed") from exc
        if form.repeated:
            raise ValidationFailed(
                "Send exactly one file per request", errors=[{"loc": ["body", "file"], "msg": "sent more than once"}]
            )
        for piece in form.take():
            await intake.feed(piece)
    if not form.ended:
        raise BadRequest("The multipart/form-data body ended before its closing boundary")
    if not form.found:
        raise ValidationFailed(
            "The form has no `file` field", errors=[{"loc": ["body", "file"], "msg": "Field required"}]
        )
    return await intake.finish(), form.filename


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


async def discard(runtime: Runtime, key: str) -> None:
    """Best effort: remove an object whose record could not be written."""
    with contextlib.suppress(Exception):
        await blocking(lambda: _storage(runtime).delete(key))


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
    _, position = await execute(call, command)
    out = {
        "file_id": upload_id,
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
