"""`megilance serve --workers N`: N processes on one listening socket, one of which owns the writer.

Worker 0 (the writer) is the primary as one process runs it: the writer thread, housekeeping, mail. It also
answers on two Unix sockets in the supervisor's private directory: calls (api.calls) and HTTP. Every other
worker (a reader) opens the same file (WAL) for reads, validates each write itself and hands it to worker 0 as
a call, or relays it over HTTP when its body streams or its address limit counts before parsing
(api.unix_forwarder); matching reads also go over HTTP. Before each request
a reader asks SQLite whether another connection committed (`PRAGMA data_version`); if so it reads the new
checkpoint and events, so its sessions, its position and its response cache (keyed by position) follow
worker 0's writes before the request is served, with no timer involved.

The supervisor (ops.workers, in the `serve` process) binds the sockets, starts the workers and stops them.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from api.calls import CallServer, WriterLink
    from api.forwarding import Proxy
    from api.routing import Operation
    from core.settings import Settings
    from node.metrics import Metrics
    from node.runtime import Runtime

WORKER_ENV = "MEGILANCE_WORKER"  # set by the supervisor in each worker: "<index>:<unix socket path>"
SOCKET_NAME = "writer.sock"  # worker 0's HTTP
CALLS_SOCKET_NAME = "calls.sock"  # worker 0's handed calls
_call_listeners: list[socket.socket] = []  # worker 0's, bound by the supervisor (ops.workers)
STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class WorkerRole:
    """Which worker this process is, and where worker 0 answers."""

    index: int
    writer_socket: str

    @property
    def owns_writer(self) -> bool:
        return self.index == 0

    @property
    def calls_socket(self) -> str:
        return os.path.join(os.path.dirname(self.writer_socket), CALLS_SOCKET_NAME)


def adopt_call_listener(listener: socket.socket) -> None:
    """Worker 0's call socket, handed over by the supervisor before the app starts."""
    _call_listeners.append(listener)


def call_listener() -> socket.socket | None:
    return _call_listeners[-1] if _call_listeners else None


def role_from_env() -> WorkerRole | None:
    """This process's role under `serve --workers N` (N > 1); None when it is the only process."""
    value = os.environ.get(WORKER_ENV, "")
    index, _, path = value.partition(":")
    if not index.isdigit() or not path:
        return None
    return WorkerRole(int(index), path)


@dataclass
class Wiring:
    """How this process takes part: its role, where it sends writes, and the call socket's two ends."""

    role: WorkerRole | None  # None: the only process
    forwarder: Proxy | None  # a reader worker's HTTP proxy to worker 0, or an edge's to its primary
    link: WriterLink | None = None  # a reader worker's way to hand worker 0 its writes
    call_server: CallServer | None = None  # worker 0's end of the call socket

    async def start(self, app: Any) -> None:
        listener = call_listener()
        if self.call_server is not None and listener is not None:
            await self.call_server.start(app, listener)

    async def stop(self) -> None:
        if self.call_server is not None:
            await self.call_server.stop()
        if self.link is not None:
            await self.link.client.close()
        if self.forwarder is not None:
            await self.forwarder.close()


def worker_setup(settings: Settings, runtime: Runtime, ops: list[Operation], metrics: Metrics) -> Wiring:
    """This process's wiring, and `runtime` told whether it hands its writes on."""
    from api.calls import CallClient, CallServer, WriterLink
    from api.routing import handed_endpoints

    role = role_from_env()
    runtime.forwards_writes = role is not None and not role.owns_writer
    wiring = Wiring(role, writes_forwarder(settings, role))
    if role is not None and wiring.forwarder is not None and not role.owns_writer:
        wiring.link = WriterLink(CallClient(role.calls_socket), wiring.forwarder, metrics)
    elif role is not None and call_listener() is not None:
        wiring.call_server = CallServer(handed_endpoints(ops, runtime))
    return wiring


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
