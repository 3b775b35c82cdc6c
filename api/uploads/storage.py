"""Storage calls off the event loop: their own thread pool, and discarding a stored object."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from core.storage import Storage
from node.runtime import Runtime

T = TypeVar("T")
STORAGE_THREADS = 32

# Storage calls block (disk, boto3): they run here, never on the event loop, and never in the default
# executor, so slow uploads cannot starve the other `in_thread` users.
_threads = ThreadPoolExecutor(max_workers=STORAGE_THREADS, thread_name_prefix="storage")


async def blocking(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(_threads, fn, *args)


def _storage(runtime: Runtime) -> Storage:
    return runtime.storage


async def discard(runtime: Runtime, key: str) -> None:
    """Best effort: remove an object whose record could not be written."""
    with contextlib.suppress(Exception):
        await blocking(lambda: _storage(runtime).delete(key))
