"""The primary's log on a libSQL server (sqld, Turso): the local copy it runs on, kept level with the server.

Reads never wait on the network: they are served from the local copy's read models, exactly as on an
embedded primary. Writes run on that copy and reach the server at COMMIT (core.mirror). This module
opens the copy (migrating the server and the copy, pulling what the copy lacks, projecting it), and
gives the writer its `before_batch` hook, which does the same whenever a failure has put the copy in
doubt: the app recovers by itself when the server comes back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import structlog

from core import store
from core.db import Connection, DatabaseUnavailable, connect
from core.events.base import StoredEvent
from core.hrana import HranaAuthError, HranaClient, HranaError, HranaUnavailable
from core.mirror import CopyDiverged, MirroredConnection, RemoteLog, RemoteUnavailable
from core.settings import Settings
from migrations.runner import SchemaTooNew, log_tables, migrate_server
from queries.projection import Projection, checkpoint

log = structlog.get_logger("remote_primary")

CATCH_UP_PAGE = 5000
COPY_NAME = "primary-copy.db"


def catch_up(conn: Connection, projection: Projection) -> list[StoredEvent]:
    """Project the events the copy's log holds beyond its read models' checkpoint (pulled from the server)."""
    applied: list[StoredEvent] = []
    while events := store.read_after(conn, checkpoint(conn), CATCH_UP_PAGE):
        conn.execute("BEGIN IMMEDIATE")
        try:
            projection.apply_events(conn, events)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.extend(events)
    return applied


class RemotePrimary:
    """Opens and keeps level the local copy of a log that lives on a libSQL server."""

    def __init__(self, settings: Settings, projection: Projection, prepare: Callable[[Connection, Projection], object]):
        self.client = HranaClient(
            settings.resolved_database_url(), settings.database_auth_token, settings.database_timeout_s
        )
        self.log = RemoteLog(self.client, log_tables())
        self.copy_path = Path(settings.data_dir) / COPY_NAME
        self.projection = projection
        self._prepare = prepare  # migrations of the copy and rebuilds of stale read models (runtime.prepare_primary)
        self._server_migrated = False
        self.on_pulled: Callable[[list[StoredEvent]], None] | None = None

    @property
    def label(self) -> str:
        return self.client.endpoint.label

    def connect_local(self) -> Connection:
        # The server holds the log: the copy can be rebuilt from it, so it need not fsync every commit.
        return connect(str(self.copy_path), synchronous="NORMAL")

    def connect_mirrored(self) -> MirroredConnection:
        local = self.connect_local()
        return MirroredConnection(local, self.log)  # type: ignore[arg-type]

    def open(self, *, required: bool) -> None:
        """Prepare the copy and bring it level with the server.

        With `required` (CLI verbs) a server that cannot be reached or refuses the token is an error;
        otherwise (serving) it is logged in one line and the first write tries again.
        """
        conn = self.connect_local()
        try:
            self._prepare(conn, self.projection)
            try:
                self.sync(conn)
            except CopyDiverged as exc:
                log.warning("remote_copy_replaced", reason=str(exc), path=str(self.copy_path))
                conn.close()
                self._remove_copy()
                conn = self.connect_local()
                self._prepare(conn, self.projection)
                self.sync(conn)
        except (HranaUnavailable, HranaError) as exc:
            self.log.last_error = describe(exc, self.label)
            if required:
                raise DatabaseUnavailable(self.log.last_error) from exc
            log.error("remote_primary_unavailable", error=self.log.last_error)
        finally:
            conn.close()

    def sync(self, conn: Connection) -> list[StoredEvent]:
        """Migrate the server (once), pull what the copy lacks, project it; returns the events projected."""
        local = getattr(conn, "local", conn)
        if not self._server_migrated:
            migrate_server(self.client)
            self._server_migrated = True
        self.log.pull(local)
        events = catch_up(local, self.projection)
        self.log.last_error = ""
        return events

    def before_batch(self, conn: Connection) -> None:
        """The writer's hook: when the copy is in doubt, bring it level before the batch runs."""
        if self.log.synced:
            return
        try:
            events = self.sync(conn)
        except (HranaUnavailable, HranaError, CopyDiverged, SchemaTooNew) as exc:
            self.log.last_error = describe(exc, self.label)
            raise RemoteUnavailable("The database server cannot be reached; nothing was saved, retry shortly") from exc
        if events and self.on_pulled is not None:
            self.on_pulled(events)

    def check(self) -> None:
        """Readiness: the server answers with this token (raises otherwise)."""
        self.log.check()

    def _remove_copy(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{self.copy_path}{suffix}").unlink()


def describe(exc: BaseException, server: str) -> str:
    """One line for the operator."""
    if isinstance(exc, HranaAuthError):
        return f"the libSQL server at {server} refused DATABASE_AUTH_TOKEN: check the token"
    if isinstance(exc, HranaUnavailable):
        return f"the libSQL server at {server} cannot be reached: {exc}"
    return f"the libSQL server at {server}: {exc}"
