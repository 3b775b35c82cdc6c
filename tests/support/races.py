"""Racing commands through a running runtime: run them on its loop, queue them behind a held writer, read rows."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any

from core.db import Connection
from core.settings import Settings
from node.runtime import Runtime, open_primary

META = {"actor": "test", "region": "local"}


def db_rows(settings: Settings, sql: str, *params: object) -> list[tuple[Any, ...]]:
    conn = open_primary(settings)
    try:
        return [tuple(row) for row in conn.execute(sql, params).fetchall()]
    finally:
        conn.close()


def on_loop(loop: asyncio.AbstractEventLoop, runtime: Runtime, command: Any) -> Any:
    result, _ = asyncio.run_coroutine_threadsafe(runtime.execute(command, META), loop).result(30)
    return result


def queued_behind_the_writer(
    runtime: Runtime, loop: asyncio.AbstractEventLoop, *commands: object
) -> list[concurrent.futures.Future[object]]:
    """Run the commands in one writer batch, in this order: the writer is held busy until all are queued."""
    writer = runtime.writer
    assert writer is not None
    writer_busy, release = threading.Event(), threading.Event()

    def hold_writer(conn: Connection) -> None:
        writer_busy.set()
        release.wait(30)

    held = writer.submit_nowait(hold_writer)
    assert writer_busy.wait(30)
    futures = [asyncio.run_coroutine_threadsafe(runtime.execute(command, META), loop) for command in commands]

    async def nothing() -> None:
        """Runs after every command's first step: by then their jobs are queued in the writer."""

    asyncio.run_coroutine_threadsafe(nothing(), loop).result(30)
    release.set()
    held.result(30)
    return futures
