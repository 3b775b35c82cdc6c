"""An event-log file on each local driver: the store and writer tests run on `sqlite3` and on `libsql`."""

from __future__ import annotations

from pathlib import Path

from core.db import Connection, connect

DRIVERS = ("sqlite3", "libsql")


def open_db(path: str) -> Connection:
    """A connection through the driver the file was made for (its folder is named after it)."""
    return connect(path, synchronous="NORMAL", driver=Path(path).parent.name)
