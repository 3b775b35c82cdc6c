"""Database access: opening embedded files, translating driver errors, and the read pool.

An embedded file is opened with stdlib `sqlite3` by default, or with `libsql` (`LOCAL_DRIVER`): the
same file format and the same DB-API, but libsql 0.1.11 holds the GIL while SQLite works, which stalls
the event loop during every commit (docs/performance.md). A log on a libSQL server (`libsql://`,
`https://`, `http://`, `wss://`, `ws://`) is not opened here: the primary runs on a local copy that
ships its writes to the server (core.mirror).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

import libsql

T = TypeVar("T")

REMOTE_SCHEMES = ("libsql://", "https://", "http://", "wss://", "ws://")
# SQLite virtual-machine steps between two looks at a loop read's clock (a few microseconds of work).
PROGRESS_STEPS = 1000


class Cursor(Protocol):
    lastrowid: int | None
    rowcount: int
    description: Any

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    def execute(self, sql: str, parameters: Any = ...) -> Cursor: ...
    def executemany(self, sql: str, parameters: Any) -> Cursor: ...
    def executescript(self, sql: str) -> Any: ...
    def close(self) -> None: ...


class DatabaseUnavailable(Exception):
    """The database could not be opened or answered with an I/O error."""


def is_unique_violation(exc: BaseException) -> bool:
    """libsql raises ValueError (sqlite3 IntegrityError) with SQLite's message; both say this."""
    return "UNIQUE constraint failed" in str(exc)


def unique_violation_target(exc: BaseException) -> str:
    """`UNIQUE constraint failed: claims.kind, claims.key` → `claims.kind, claims.key`."""
    text = str(exc)
    return text.split("UNIQUE constraint failed:", 1)[-1].strip() if is_unique_violation(exc) else ""


def positions(select: str) -> dict[str, int]:
    """Each selected column's place in a row, by name: from `SELECT a, t.b FROM ...` or a bare `a, t.b` list.

    Lets code read `row[AT["version"]]` where unpacking every column would be noise (a table prefix is dropped).
    """
    columns = select.removeprefix("SELECT ").split(" FROM ", 1)[0]
    return {column.strip().rpartition(".")[2]: index for index, column in enumerate(columns.split(","))}


def is_remote(url: str) -> bool:
    return url.startswith(REMOTE_SCHEMES)


def local_path(url: str) -> str:
    """Accept `file:path`, `file:///abs` or a plain path."""
    if url.startswith("file://"):
        return url[len("file://") :]
    if url.startswith("file:"):
        return url[len("file:") :]
    return url


def connect(url: str, *, synchronous: str = "FULL", driver: str = "sqlite3") -> Connection:
    """Open an embedded file in autocommit mode: transactions are explicit (`BEGIN IMMEDIATE`)."""
    if is_remote(url):
        raise ValueError(f"{url} is a libSQL server: the primary opens it through a local copy (core.mirror)")
    path = local_path(url)
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = open_local(path, driver)
    except (OSError, sqlite3.Error, ValueError) as exc:  # libsql raises ValueError with SQLite's message
        raise DatabaseUnavailable(f"{path}: {exc}") from exc
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'FULL' else 'NORMAL'}")
        conn.execute("PRAGMA busy_timeout=10000")
        # One behaviour whichever driver: Debian's SQLite zeroes every freed page (secure_delete=1), libSQL none.
        # FAST zeroes deleted cells where that costs no extra I/O; a rebuild's DROP TABLE stops rewriting the file.
        conn.execute("PRAGMA secure_delete=FAST")
    except (sqlite3.Error, ValueError) as exc:
        conn.close()
        raise DatabaseUnavailable(f"{path}: {exc}") from exc
    return conn


def open_local(path: str, driver: str = "sqlite3") -> Connection:
    """An embedded file through stdlib `sqlite3` (default) or `libsql` (`LOCAL_DRIVER`; docs/performance.md)."""
    if driver == "sqlite3":
        return sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # type: ignore[return-value]
    return libsql.connect(path, isolation_level=None)  # type: ignore[no-any-return]


def sqlite_version(conn: Connection) -> str:
    return str(conn.execute("SELECT sqlite_version()").fetchone()[0])


class ReadPool:
    """Read-only work on a few threads, each with its own connection; never on the event loop."""

    def __init__(self, opener: Callable[[], Connection], threads: int) -> None:
        self._opener = opener
        self._local = threading.local()
        self._connections: list[Connection] = []
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="read")

    def _connection(self) -> Connection:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._opener()
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _call(self, fn: Callable[[Connection], T]) -> T:
        return fn(self._connection())

    async def run(self, fn: Callable[[Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, fn)

    def run_sync(self, fn: Callable[[Connection], T]) -> T:
        """For the CLI and tests outside an event loop."""
        return self._executor.submit(self._call, fn).result()

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()


class LoopReader:
    """Reads on the event loop's own connection, each within a time budget.

    A page of at most 100 indexed rows takes well under a millisecond, less than handing it to a reader
    thread and back (docs/performance.md). A read still running after `budget_s` (a search with many
    matches, a page read while a rebuild holds the file) is interrupted by SQLite's progress handler and
    the caller runs it again on the read pool: the loop is never held for much longer than the budget.
    """

    def __init__(self, conn: Connection, budget_s: float) -> None:
        self._conn = conn
        self._budget = budget_s
        self._deadline = 0.0
        self.interrupted = 0  # reads handed on to the pool (reported by tests and benchmarks)
        conn.set_progress_handler(self._past_deadline, PROGRESS_STEPS)  # type: ignore[attr-defined]

    @staticmethod
    def supported(conn: Connection) -> bool:
        """stdlib sqlite3 can interrupt a statement from Python; libsql cannot."""
        return isinstance(conn, sqlite3.Connection)

    def _past_deadline(self) -> bool:
        return time.perf_counter() > self._deadline

    def run(self, fn: Callable[[Connection], T]) -> tuple[bool, T | None]:
        """(True, result) when `fn` finished within the budget; (False, None) when it was interrupted."""
        self._deadline = time.perf_counter() + self._budget
        try:
            return True, fn(self._conn)
        except sqlite3.OperationalError as exc:
            if str(exc) != "interrupted":
                raise
            self.interrupted += 1
            return False, None
        finally:
            if getattr(self._conn, "in_transaction", False):  # an interrupted read inside BEGIN … COMMIT
                self._conn.execute("ROLLBACK")

    def data_version(self) -> int:
        """SQLite's count of commits by other connections to this file, as this connection sees it."""
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def close(self) -> None:
        self._conn.close()
