"""The streaming intake: sniffs, counts and hashes an upload while storage saves it; its size and type rules."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass

from api.routing import Call
from api.uploads.pipe import IDLE_TIMEOUT_S, Piece, Pipe, UploadStalled
from api.uploads.storage import _storage, _threads, discard
from core.errors import (
    BadRequest,
    PayloadTooLarge,
    ServiceUnavailable,
    UnsupportedMediaType,
    ValidationFailed,
)
from core.sniff import SNIFF_BYTES, sniff_content_type
from node.runtime import Runtime

MB = 1024 * 1024
CHUNK_SIZE = 256 * 1024  # the unit carried to storage: uvloop reads up to 256 KiB at once, so ~1 piece a read
PIPE_DEPTH = 1  # chunks queued for the storage thread (plus the one it writes): double buffering
ACCEPTED = "PNG, JPEG, WebP, GIF or PDF"


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
