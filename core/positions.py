"""The position a read store has reached, and waiting for it (read-your-writes)."""

from __future__ import annotations

import asyncio
import time


class PositionTracker:
    """Advanced from the writer or replicator thread; awaited on the event loop."""

    def __init__(self, position: int = 0) -> None:
        self.position = position
        self.updated_at = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def advance(self, position: int) -> None:
        """Thread-safe: plain assignment, then wake waiters on the loop."""
        if position <= self.position:
            return
        self.position = position
        self.updated_at = time.monotonic()
        if self._loop is not None and self._waiters:
            self._loop.call_soon_threadsafe(self._wake)

    def rewind(self, position: int) -> None:
        """The store was rebuilt from an earlier position (the primary's log came back shorter)."""
        self.position = position
        self.updated_at = time.monotonic()

    def _wake(self) -> None:
        keep = []
        for target, future in self._waiters:
            if future.done():
                continue
            if target <= self.position:
                future.set_result(None)
            else:
                keep.append((target, future))
        self._waiters = keep

    async def wait_for(self, target: int, timeout_s: float) -> bool:
        """True once the store has reached `target`; False after `timeout_s` without it."""
        if target <= self.position:
            return True
        if timeout_s <= 0:
            return False
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, future))
        self._wake()
        try:
            await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            return target <= self.position
        return True
