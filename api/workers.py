"""`megilance serve --workers N`: N processes on one listening socket, one of which owns the writer.

Worker 0 (the writer) is the primary as one process runs it: the writer thread, housekeeping, mail. It also
answers on a Unix socket next to the database file. Every other worker (a reader) opens the same file (WAL)
for reads and hands every write to worker 0 over that socket (api.forwarding.Forwarder). Before each request
a reader asks SQLite whether another connection committed (`PRAGMA data_version`); if so it reads the new
checkpoint and events, so its sessions, its position and its response cache (keyed by position) follow
worker 0's writes before the request is served, with no timer involved.

The supervisor (ops.workers, in the `serve` process) binds both sockets, starts the workers and stops them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from api.forwarding import Proxy
    from core.settings import Settings
    from node.runtime import Runtime

WORKER_ENV = "MEGILANCE_WORKER"  # set by the supervisor in each worker: "<index>:<unix socket path>"
SOCKET_NAME = "writer.sock"
STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class WorkerRole:
    """Which worker this process is, and where worker 0 answers."""

    index: int
    writer_socket: str

    @property
    def owns_writer(self) -> bool:
        return self.index == 0


def role_from_env() -> WorkerRole | None:
    """This process's role under `serve --workers N` (N > 1); None when it is the only process."""
    value = os.environ.get(WORKER_ENV, "")
    index, _, path = value.partition(":")
    if not index.isdigit() or not path:
        return None
    return WorkerRole(int(index), path)


def worker_setup(settings: Settings, runtime: Runtime) -> tuple[WorkerRole | None, Proxy | None]:
    """This process's role (None: the only one), marked on `runtime`, and where it sends writes."""
    role = role_from_env()
    runtime.forwards_writes = role is not None and not role.owns_writer
    return role, writes_forwarder(settings, role)


def answered_by_writer(scope: Any) -> bool:
    """Reads a reader worker hands to worker 0: matching, whose documents and encoder live in worker 0's process."""
    path: str = scope["path"]
    if path.startswith("/api/matches/") or (path.startswith("/api/projects/") and path.endswith("/matches")):
        return True
    return b"sort=relevance" in scope["query_string"]


def writes_forwarder(settings: Settings, role: WorkerRole | None) -> Proxy | None:
    """Where this process sends writes: worker 0 for a reader worker, PRIMARY_URL for an edge off Fly, or nowhere."""
    from api.forwarding import Forwarder
    from api.unix_forwarder import UnixForwarder

    if role is not None and not role.owns_writer:
        return UnixForwarder(role.writer_socket)
    if not settings.is_primary and not settings.fly_region:
        return Forwarder(settings.primary_url)
    return None
