"""A bounded pipe that carries an upload's bytes from the event loop to the storage thread."""

from __future__ import annotations

import asyncio
import contextlib
import queue
from collections.abc import Iterator
from typing import Any

Piece = bytes | memoryview  # file data on its way to storage: the request's bytes, or a view into them
IDLE_TIMEOUT_S = 60.0  # a storage thread gives up on a client that sends nothing for this long


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
