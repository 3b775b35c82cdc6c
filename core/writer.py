"""The one writer: a thread that owns the write connection and commits queued jobs in groups.

Each batch is one `BEGIN IMMEDIATE` transaction (group commit: one fsync for many commands), and
a job that raises is undone alone while the others commit together. On stdlib `sqlite3` the jobs
first run without savepoints: a job that fails before writing anything needs no undo, and each
savepoint costs two statements, each a trip through the GIL. If a job fails after writing, the
batch is rolled back and run again with a SAVEPOINT per job (the jobs are pure database work, and
nothing of the first run was committed or answered). "Writing" is what SQLite's `total_changes`
counts (INSERT, UPDATE, DELETE): a job must not run DDL, which it does not count. `libsql` has no
row-change counter, so there every job always gets its savepoint. Callers on the event loop await a
future; the loop never blocks. A batch wakes each loop once, however many of its callers it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

import structlog

from core.db import Connection
from core.errors import ServiceUnavailable
from core.mirror import CopyStale, MirroredConnection

T = TypeVar("T")
log = structlog.get_logger("writer")

_STOP = object()


@dataclass(slots=True)
class Job(Generic[T]):
    """One unit of work; its caller waits on `future` (a thread) or `waiter` (a task on `loop`)."""

    fn: Callable[[Connection], T]
    future: Future[T] | None = None
    waiter: asyncio.Future[T] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    result: Any = None
    error: BaseException | None = None


def _settle(jobs: list[Job[Any]]) -> None:
    """On the callers' loop: resolve each waiter still wanted (a cancelled request's is left alone)."""
    for job in jobs:
        waiter = job.waiter
        if waiter is None or waiter.done():
            continue
        if job.error is not None:
            waiter.set_exception(job.error)
        else:
            waiter.set_result(job.result)


class WriterStopped(ServiceUnavailable):
    code = "service_unavailable"


class Writer:
    """Serializes every write through one connection.

    `before_commit` runs in each batch's transaction after its jobs, when at least one of them
    succeeded (its failure fails the batch); `on_commit` hears each committed batch. With a log on a
    libSQL server, `before_batch` runs before each batch outside any transaction (it brings the local
    copy level with the server when that is in doubt; its failure fails the batch's jobs), and a batch
    the server refuses because the copy was behind (`CopyStale`) runs once more after `before_batch`.
    """

    def __init__(
        self,
        opener: Callable[[], Connection],
        on_commit: Callable[[Connection], None] | None = None,
        max_batch: int = 256,
        before_commit: Callable[[Connection], None] | None = None,
        before_batch: Callable[[Connection], None] | None = None,
    ) -> None:
        self._opener = opener
        self._on_commit = on_commit
        self._before_commit = before_commit
        self._before_batch = before_batch
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._running = False
        self.batches = 0
        self.jobs = 0
        self.reruns = 0  # batches run again with a savepoint per job

    def start(self) -> None:
        ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="writer", daemon=True)
        self._running = True
        self._thread.start()
        ready.result()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._running = False
        self._queue.put(_STOP)
        self._thread.join()
        self._thread = None

    @property
    def alive(self) -> bool:
        return self._running and self._thread is not None and self._thread.is_alive()

    def submit_nowait(self, fn: Callable[[Connection], T]) -> Future[T]:
        future: Future[T] = Future()
        self._enqueue(Job(fn, future=future))
        return future

    async def submit(self, fn: Callable[[Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[T] = loop.create_future()
        self._enqueue(Job(fn, waiter=waiter, loop=loop))
        return await waiter

    def _enqueue(self, job: Job[Any]) -> None:
        if not self._running:
            raise WriterStopped("The service is shutting down; retry shortly")
        self._queue.put(job)

    def run_sync(self, fn: Callable[[Connection], T]) -> T:
        return self.submit_nowait(fn).result()

    def _run(self, ready: Future[None]) -> None:
        try:
            conn = self._opener()
        except BaseException as exc:  # noqa: BLE001 - surfaced to start()
            ready.set_exception(exc)
            return
        ready.set_result(None)
        try:
            while True:
                batch = self._take()
                if batch is None:
                    return
                self._commit(conn, batch)
        finally:
            conn.close()

    def _take(self) -> list[Job[Any]] | None:
        first = self._queue.get()
        if first is _STOP:
            return None
        batch = [first]
        while len(batch) < self._max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                self._queue.put(_STOP)
                break
            batch.append(item)
        return batch

    def _commit(self, conn: Connection, batch: list[Job[Any]]) -> None:
        for attempt in (1, 2):
            if self._before_batch is not None and not self._prepared(conn, batch):
                break
            try:
                self._transaction(conn, batch)
            except CopyStale:
                self._rollback(conn)
                if attempt == 1:
                    continue
                self._fail(batch, ServiceUnavailable("Another writer keeps changing the log; retry"))
            except Exception as exc:  # noqa: BLE001 - the transaction failed as a whole: nobody's work is kept
                log.error("write_batch_failed", error=str(exc), jobs=len(batch))
                self._rollback(conn)
                self._fail(batch, exc if isinstance(exc, ServiceUnavailable) else None)
            break
        self.batches += 1
        self.jobs += len(batch)
        if self._on_commit is not None and any(job.error is None for job in batch):
            self._on_commit(conn)
        self._answer(batch)

    def _prepared(self, conn: Connection, batch: list[Job[Any]]) -> bool:
        """Run `before_batch`; on failure every job of the batch gets a 503 and nothing runs."""
        try:
            if self._before_batch is not None:
                self._before_batch(conn)
        except Exception as exc:  # noqa: BLE001 - reported to every caller as the service being unavailable
            log.warning("write_batch_not_prepared", error=str(exc), jobs=len(batch))
            self._fail(batch, exc if isinstance(exc, ServiceUnavailable) else None)
            return False
        return True

    @staticmethod
    def _fail(batch: list[Job[Any]], error: ServiceUnavailable | None) -> None:
        failure = error or ServiceUnavailable("The database could not commit the change; nothing was saved")
        for job in batch:
            job.error, job.result = failure, None

    def _transaction(self, conn: Connection, batch: list[Job[Any]]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        guarded = not isinstance(conn, sqlite3.Connection | MirroredConnection)
        if not guarded and not self._run_unguarded(conn, batch):
            self.reruns += 1  # a job failed after writing: start over, each job in a savepoint
            conn.execute("ROLLBACK")
            conn.execute("BEGIN IMMEDIATE")
            guarded = True
        if guarded:
            for job in batch:
                self._run_job(conn, job)
        if self._before_commit is not None and any(job.error is None for job in batch):
            self._before_commit(conn)
        conn.execute("COMMIT")

    @staticmethod
    def _answer(batch: list[Job[Any]]) -> None:
        """Hand each job's outcome to its caller: threads directly, each event loop in one call for all its jobs."""
        by_loop: dict[asyncio.AbstractEventLoop, list[Job[Any]]] = {}
        for job in batch:
            if job.loop is not None:
                by_loop.setdefault(job.loop, []).append(job)
            elif job.future is not None and job.future.set_running_or_notify_cancel():
                if job.error is not None:
                    job.future.set_exception(job.error)
                else:
                    job.future.set_result(job.result)
        for loop, jobs in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting any more
                loop.call_soon_threadsafe(_settle, jobs)

    @staticmethod
    def _run_unguarded(conn: Connection, batch: list[Job[Any]]) -> bool:
        """Run the jobs without savepoints; False as soon as one fails after writing (nothing is kept then)."""
        counters = cast(sqlite3.Connection, conn)  # the caller checked the driver
        for job in batch:
            before = counters.total_changes
            try:
                job.result, job.error = job.fn(conn), None
            except Exception as exc:  # noqa: BLE001 - the job's own failure, handed to its caller
                if counters.total_changes != before:
                    return False
                job.result, job.error = None, exc
            if not counters.in_transaction:  # SQLite ended it (an I/O error): the batch cannot commit
                raise sqlite3.OperationalError("the transaction ended inside a job")
        return True

    @staticmethod
    def _run_job(conn: Connection, job: Job[Any]) -> None:
        conn.execute("SAVEPOINT job")
        try:
            job.result, job.error = job.fn(conn), None
        except Exception as exc:  # noqa: BLE001 - the job's own failure, handed to its caller
            conn.execute("ROLLBACK TO job")
            job.result, job.error = None, exc
        conn.execute("RELEASE job")

    @staticmethod
    def _rollback(conn: Connection) -> None:
        with contextlib.suppress(Exception):  # no transaction open: nothing to undo
            conn.execute("ROLLBACK")
