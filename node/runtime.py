"""The composition root: settings, the writer, the read pool, projections, and the command path."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from commands.handlers import COMMAND_HANDLERS
from core import backup, idempotency, keyring, store
from core.clock import Clock
from core.db import Connection, LoopReader, ReadPool, connect, is_remote, local_path
from core.errors import ServiceUnavailable
from core.events.base import StoredEvent
from core.files import private_database
from core.ids import new_id
from core.logging import flush as flush_logs
from core.passwords import Passwords
from core.positions import PositionTracker
from core.settings import Settings
from core.tokens import TokenService, parse_key_ring
from core.writer import Writer
from migrations.runner import migrate
from node.cursors import CursorSigner
from node.remote_primary import COPY_NAME, RemotePrimary, describe
from queries.projection import Projection, checkpoint, checkpoint_to_head, reset
from queries.rebuild import rebuild
from queries.registry import projection as make_projection
from queries.sessions import Sessions

if TYPE_CHECKING:
    from core.chain import UsdcVerifier
    from core.storage import Storage

T = TypeVar("T")


class Replicator(Protocol):
    """What readiness reads of the feed consumer an edge runs (replication.replicator)."""

    connected: bool
    ever_connected: bool
    head: int
    last_error: str | None
    key_ring_error: str | None

    @property
    def lag_events(self) -> int: ...

    @property
    def lag_seconds(self) -> float: ...

    def start(self) -> None: ...

    async def stop(self) -> None: ...


class Matcher(Protocol):
    """What readiness reads of the matching projector (api.matcher)."""

    tracker: PositionTracker
    last_error: str | None


class Runtime:
    """Everything a request handler needs, opened in the lifespan and closed after it."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or Clock()
        self.projection: Projection = make_projection()
        self.tracker = PositionTracker()
        self.passwords = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism)
        ring = parse_key_ring(settings.jwt_keys, settings.secret_key)
        # Fingerprints, never keys: the primary's feed sends them, an edge compares them with its own.
        self.key_ring = keyring.fingerprints(ring, settings.replication_token)
        self.tokens = TokenService(
            ring,
            timedelta(minutes=settings.access_token_expire_minutes),
            timedelta(minutes=settings.refresh_token_expire_minutes),
        )
        self.sessions = Sessions()
        self.cursors = CursorSigner(settings.secret_key)
        # This process's id: an Idempotency-Key claim recorded by another boot will never get its answer stored.
        self.boot = new_id()
        self.writer: Writer | None = None
        self.replicator: Replicator | None = None
        self.matcher: Matcher | None = None  # the asynchronous matching projector, when FEATURE_FLAG_AI_MATCHING
        self.reads: ReadPool | None = None
        self.backup: backup.Litestream | None = None  # BACKUP_URL on an embedded primary (docs/backup.md)
        self.log_epoch: tuple[str, int] = ("", 0)  # primary: (epoch, head) of its last restore from the backup
        self.loop_reader: LoopReader | None = None
        # A reader worker of `serve --workers N`: writes go to worker 0, commits are noticed by `refresh`.
        self.forwards_writes = False
        self._watch: Connection | None = None
        self._data_version = -1
        self.verifier: UsdcVerifier | None = None  # built on first use by chain(); tests may set their own
        self._storage: Storage | None = None  # built on first use by `storage` (in a worker thread)
        self._storage_lock = threading.Lock()
        self.remote: RemotePrimary | None = None
        if settings.is_primary and is_remote(settings.resolved_database_url()):
            self.remote = RemotePrimary(settings, self.projection, prepare_primary)
            self.remote.on_pulled = self._pulled

    @property
    def owns_writer(self) -> bool:
        """The process whose writer commits to the primary's log (not an edge, not a reader worker)."""
        return self.settings.is_primary and not self.forwards_writes

    # -- lifecycle -------------------------------------------------------------------------

    def connect_primary(self) -> Connection:
        s = self.settings
        conn = connect(s.resolved_database_url(), synchronous=s.synchronous, driver=s.local_driver)
        if self.backup is not None:
            backup.hand_checkpoints_to_litestream(conn)
        return conn

    def connect_read_store(self) -> Connection:
        """An edge's own read store: a local libSQL file kept current from the primary's feed."""
        s = self.settings
        return connect(s.resolved_read_path(), synchronous=s.synchronous, driver=s.local_driver)

    def open(self) -> None:
        """Migrate, rebuild stale read models, start the writer, the readers and the backup (blocking)."""
        backup_cfg = backup.backup_config(self.settings)
        if backup_cfg is not None:
            backup.restore_if_missing(self.settings)
            self.backup = backup.Litestream(backup_cfg)
        if self.settings.is_primary:
            self.log_epoch = backup.log_epoch(self.settings.data_dir)
        secure_database_files(self.settings)
        opener: Callable[[], Connection] = self.connect_primary if self.settings.is_primary else self.connect_read_store
        read_opener = opener
        if self.remote is not None:
            self.remote.open(required=False)
            opener, read_opener = self.remote.connect_mirrored, self.remote.connect_local
        if self.forwards_writes:
            self._open_reader(read_opener)
            return
        conn = read_opener()
        try:
            if self.remote is None:  # a remote primary's copy was prepared by remote.open
                (prepare_primary if self.settings.is_primary else prepare_edge)(conn, self.projection)
            self.tracker.advance(checkpoint(conn))
            self.sessions.load(conn, self.clock.now())
        finally:
            conn.close()
        self.writer = Writer(
            opener,
            on_commit=self._committed,
            max_batch=self.settings.group_commit_max,
            # Commands leave the checkpoint to the batch: one UPDATE per group commit, not per command.
            before_commit=checkpoint_to_head if self.settings.is_primary else None,
            before_batch=self.remote.before_batch if self.remote is not None else None,
        )
        self.writer.start()
        self.reads = ReadPool(read_opener, self.settings.read_threads)
        if self.backup is not None:
            self.backup.start()
        self.loop_reader = self._loop_reader(read_opener)

    def _open_reader(self, opener: Callable[[], Connection]) -> None:
        """A reader worker: the file worker 0 migrated and writes; reads here, and a connection to watch it."""
        self._watch = watch = opener()
        watch.execute("BEGIN")  # one snapshot: the sessions as of the position the tracker starts at
        try:
            self.tracker.advance(checkpoint(watch))
            self.sessions.load(watch, self.clock.now())
        finally:
            watch.execute("COMMIT")
        self.refresh()
        self.reads = ReadPool(opener, self.settings.read_threads)
        self.loop_reader = self._loop_reader(opener)

    def refresh(self) -> None:
        """Reader worker, on the loop before each request: catch up with what other connections committed.

        `PRAGMA data_version` changes when another connection commits to the file (a few microseconds to ask).
        Then the new events reach the sessions before the position moves: a token revoked by that write is
        refused here as soon as the position (and so the response cache) shows the write.
        """
        watch = self._watch
        if watch is None:
            return
        version = int(watch.execute("PRAGMA data_version").fetchone()[0])
        if version == self._data_version:
            return
        self._data_version = version
        after, reached = self.tracker.position, checkpoint(watch)
        if reached > after:
            self.sessions.observe(store.read_after(watch, after, reached - after))
            self.tracker.advance(reached)

    def _loop_reader(self, opener: Callable[[], Connection]) -> LoopReader | None:
        """The event loop's own read connection, when reads may run there (LOOP_READ_BUDGET_MS > 0)."""
        if self.settings.loop_read_budget_ms <= 0:
            return None
        conn = opener()
        if not LoopReader.supported(conn):
            conn.close()
            return None
        return LoopReader(conn, self.settings.loop_read_budget_ms / 1000)

    def _pulled(self, events: list[StoredEvent]) -> None:
        """Writer thread: events another writer put on the log server, now in the copy's read models."""
        self.sessions.observe(events)

    async def apply_feed(self, events: list[StoredEvent]) -> None:
        """Edge: apply one feed batch and its checkpoint in one transaction, skipping what is already applied."""
        projection = self.projection

        def job(conn: Connection) -> None:
            fresh = [e for e in events if e.position > checkpoint(conn)]
            projection.apply_events(conn, fresh)
            # Before the commit, which moves the tracker: a read that waits for this position (or comes
            # after it) must not find a token these events end still accepted.
            self.sessions.observe(fresh)

        if self.writer is None:
            raise RuntimeError("runtime not opened")
        await self.writer.submit(job)

    async def rebuild_read_store(self) -> None:
        """Edge: empty every read model and restart from position 0 (the primary's log lost events we applied)."""
        projection = self.projection

        def job(conn: Connection) -> None:
            reset(conn, projection)

        if self.writer is None:
            raise RuntimeError("runtime not opened")
        await self.writer.submit(job)
        self.tracker.rewind(0)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.stop()
        if self.backup is not None:
            self.backup.stop()  # after the last commit: Litestream copies the rest of the WAL before it exits
        if self.reads is not None:
            self.reads.close()
        if self.loop_reader is not None:
            self.loop_reader.close()
        if self._watch is not None:
            self._watch.close()
        flush_logs()  # the last lines leave before the server says it stopped

    async def sync_position(self) -> int:
        """Primary: catch up with writes other processes committed to the same file (the CLI, a seed run)."""
        if self._watch is not None:
            self.refresh()
        elif self.settings.is_primary and self.reads is not None:
            self.tracker.advance(await self.read(checkpoint))
        return self.tracker.position

    def _committed(self, conn: Connection) -> None:
        self.tracker.advance(checkpoint(conn))

    async def readiness(self) -> dict[str, dict[str, object]]:
        """What `/api/health/ready` reports: the database answers (and, on an edge, lag is small)."""
        checks: dict[str, dict[str, object]] = {}
        try:
            await asyncio.wait_for(self.read(lambda conn: conn.execute("SELECT 1").fetchone()), 2.0)
            checks["database"] = {"ok": True}
        except Exception as exc:  # noqa: BLE001 - any failure means not ready; the reason is reported
            checks["database"] = {"ok": False, "error": type(exc).__name__}
        if self.forwards_writes:  # worker 0 writes; its own readiness reports its writer
            checks["writer"] = {"ok": True, "forwarded": True}
        else:
            checks["writer"] = {"ok": self.writer is not None and self.writer.alive}
        checks["position"] = {"ok": True, "position": self.tracker.position}
        if self.matcher is not None:
            # Informative only: matching behind never takes a node out of rotation (its reads wait, or 503).
            m = self.matcher
            checks["matching"] = {"ok": True, "position": m.tracker.position, "last_error": m.last_error}
        if self.remote is not None:
            checks["log_server"] = await self._log_server_check(self.remote)
        if self.replicator is not None:
            r, limit = self.replicator, self.settings.max_replication_lag_s
            # Read once and judge the figure reported, so a refusal never shows a lag within the limit.
            lag_s = round(r.lag_seconds, 3)
            checks["replication"] = {
                # A short loss of the primary does not take a caught-up edge out of rotation: only lag does.
                "ok": r.ever_connected and lag_s <= limit,
                "connected": r.connected,
                "head": r.head,
                "lag_events": r.lag_events,
                "lag_seconds": lag_s,
                "max_lag_seconds": limit,
                "last_error": r.last_error,
            }
            # An edge whose signing keys differ from the primary's refuses every token the primary issues.
            checks["key_ring"] = {"ok": r.key_ring_error is None, "error": r.key_ring_error}
        if self.backup is not None:
            checks["backup"] = self.backup.report(self.settings.max_backup_lag_s)
        return checks

    @staticmethod
    async def _log_server_check(remote: RemotePrimary) -> dict[str, object]:
        """One round trip to the libSQL server that holds the log: it answers, and takes the token."""
        try:
            await asyncio.wait_for(asyncio.to_thread(remote.check), 2.0)
        except Exception as exc:  # noqa: BLE001 - any failure means not ready; the reason is reported
            error = "timed out" if isinstance(exc, TimeoutError) else describe(exc, remote.label)
            return {"ok": False, "server": remote.label, "error": error}
        return {"ok": True, "server": remote.label, "batches": remote.log.batches}

    def refresh_gauges(self, metrics: Any) -> None:
        metrics.position.set(self.tracker.position)
        r = self.replicator
        metrics.head.set(r.head if r is not None else self.tracker.position)
        metrics.lag_events.set(r.lag_events if r is not None else 0)
        metrics.lag_seconds.set(r.lag_seconds if r is not None else 0)
        if self.backup is not None:
            metrics.backup_lag_seconds.set(self.backup.lag_seconds())
            metrics.backup_last_success.set(self.backup.last_success or 0)

    # -- the two paths ---------------------------------------------------------------------

    async def execute(
        self,
        command: Any,
        meta: dict[str, Any],
        claim: idempotency.Claim | None = None,
        read_back: Callable[[Connection], Any] | None = None,
        guard: Callable[[Connection], None] | None = None,
    ) -> tuple[Any, int]:
        """Run a command in the writer; returns its result and the position of its last event.

        With `read_back`, the result is instead what `read_back` reads from the projections the
        command just wrote, in the same transaction: the answer to a write is exactly what it wrote,
        without a second trip through the read pool. A `guard` runs first in the same transaction: it may
        refuse the command on what the projections hold (a domain error), with nothing written.
        """
        handler = COMMAND_HANDLERS[type(command)]
        projection, clock, boot = self.projection, self.clock, self.boot

        def job(conn: Connection) -> tuple[Any, list[StoredEvent], int]:
            uow = store.UnitOfWork(conn, meta, clock)
            if guard is not None:
                guard(conn)
            if claim is not None:
                idempotency.claim(conn, claim, uow.now)
            result = handler(uow, command)
            events = uow.new_events
            projection.apply_events(conn, events, advance=False)  # the batch advances it
            # A command without events answers the head its transaction saw: later commands of the same batch
            # (a role change after a refresh) are not behind it, whatever the tracker reaches by then.
            position = events[-1].position if events else store.head(conn)
            if claim is not None:
                first = (events[0].stream_type, events[0].stream_id) if events else None
                idempotency.record_outcome(conn, claim, boot, position, first)
            return (read_back(conn) if read_back is not None else result), events, position

        if self.writer is None or not self.settings.is_primary:
            raise RuntimeError("commands run on the primary only (edges forward writes)")
        result, events, position = await self.writer.submit(job)
        self.sessions.observe(events)
        return result, position

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """A small write of the edge's own bookkeeping (not a command: no events)."""
        if self.writer is None:
            raise RuntimeError("runtime not opened")
        return await self.writer.submit(fn)

    async def read(self, fn: Callable[[Connection], T]) -> T:
        if self.reads is None:
            raise RuntimeError("runtime not opened")
        return await self.reads.run(fn)

    async def read_bounded(self, fn: Callable[[Connection], T]) -> T:
        """A read of at most a page (100 rows) or one resource: on the loop, or on a reader thread once it
        runs past LOOP_READ_BUDGET_MS (core.db.LoopReader)."""
        if self.loop_reader is not None:
            done, value = self.loop_reader.run(fn)
            if done:
                return value  # type: ignore[return-value]
        return await self.read(fn)

    def chain(self) -> UsdcVerifier:
        """The USDC verifier for CHAIN_RPC_URL and USDC_CONTRACT_ADDRESS, made on first use (no request here)."""
        if self.verifier is None:
            from core.chain import UsdcVerifier  # web3 is heavy: imported when a payment is first confirmed

            s = self.settings
            if not s.chain_rpc_url or not s.usdc_contract_address:
                raise ServiceUnavailable("On-chain settlement is not configured on this server", "chain_unavailable")
            self.verifier = UsdcVerifier.from_rpc(
                s.chain_rpc_url, s.usdc_contract_address, s.min_confirmations, chain_id=s.chain_id
            )
        return self.verifier

    @property
    def storage(self) -> Storage:
        """File storage (STORAGE_BACKEND), made on first use; touch it from a worker thread (boto3 setup blocks)."""
        with self._storage_lock:
            if self._storage is None:
                from core.storage import make_storage

                s = self.settings
                self._storage = make_storage(
                    s.storage_backend,
                    data_dir=s.data_dir,
                    signing_key=hmac.new(s.secret_key.encode(), b"megilance/uploads/v1", hashlib.sha256).digest(),
                    bucket=s.s3_bucket_uploads,
                    region=s.aws_region,
                    endpoint_url=s.s3_endpoint_url or None,
                    public_base_url=s.public_base_url,
                )
            return self._storage

    async def in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Blocking work (chain calls) off the event loop."""
        return await asyncio.to_thread(fn, *args)

    async def hashing(self, fn: Callable[..., T], *args: Any) -> T:
        """A password hash or check, on the hashing threads (core.passwords)."""
        return await asyncio.get_running_loop().run_in_executor(self.passwords.threads, fn, *args)


def secure_database_files(settings: Settings) -> None:
    """The local database files this node opens, created 0600 before SQLite first opens them (core.files)."""
    if not settings.is_primary:
        private_database(Path(settings.resolved_read_path()))
        return
    url = settings.resolved_database_url()
    if is_remote(url):  # the log is on a libSQL server: the local copy of it (node.remote_primary)
        private_database(settings.data_dir / COPY_NAME)
    else:
        private_database(Path(local_path(url)))


def run_command_sync(
    conn: Connection, projection: Projection, command: Any, meta: dict[str, Any], clock: Clock | None = None
) -> Any:
    """One command in its own transaction on a connection of the caller's (CLI, seeding)."""
    handler = COMMAND_HANDLERS[type(command)]
    conn.execute("BEGIN IMMEDIATE")
    try:
        uow = store.UnitOfWork(conn, meta, clock or Clock())
        result = handler(uow, command)
        projection.apply_events(conn, uow.new_events)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return result


def open_primary(settings: Settings, projection: Projection | None = None) -> Connection:
    """The primary's database for a process beside the server (the CLI, tests): the embedded file, or the
    local copy of a log on a libSQL server, brought level with it first (its writes then reach the server)."""
    url = settings.resolved_database_url()
    if not is_remote(url):
        return connect(url, synchronous=settings.synchronous, driver=settings.local_driver)
    remote = RemotePrimary(settings, projection or make_projection(), prepare_primary)
    remote.open(required=True)
    return remote.connect_mirrored()


def prepare_edge(conn: Connection, projection: Projection) -> None:
    """Edge read store: migrations for the read side; stale read models restart from position 0."""
    migrate(conn, ("read",))
    if projection.stale_models(conn):
        conn.execute("BEGIN IMMEDIATE")
        try:
            reset(conn, projection)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def prepare_primary(conn: Connection, projection: Projection) -> list[str]:
    """Apply migrations; if a read model's code version changed, rebuild every model from the log."""
    applied = migrate(conn, ("log", "read"))
    if projection.stale_models(conn):
        rebuild(conn, projection, store.iter_all(conn, meta=False))
    return applied
