"""Integration fixtures: `db_path`, a migrated event-log file on each local driver; `running`, an opened runtime
with its event loop in a thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.clock import FakeClock
from core.settings import Settings
from migrations.runner import migrate
from node.runtime import Runtime
from tests.integration.logfile import DRIVERS, open_db


@pytest.fixture(params=DRIVERS)
def db_path(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A migrated log file under `<tmp>/<driver>/`, once per driver."""
    (tmp_path / request.param).mkdir()
    path = str(tmp_path / request.param / "log.db")
    conn = open_db(path)
    migrate(conn, ("log",))
    conn.close()
    return path


@pytest.fixture
def running(settings: Settings, clock: FakeClock) -> Iterator[tuple[Runtime, asyncio.AbstractEventLoop]]:
    """An opened runtime and an event loop running in its own thread, as the server has them."""
    runtime = Runtime(settings, clock)
    runtime.open()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="loop", daemon=True)
    thread.start()
    runtime.tracker.bind(loop)
    try:
        yield runtime, loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        runtime.close()
