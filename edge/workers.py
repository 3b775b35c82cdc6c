"""`megilance serve --workers N`: N processes on one listening socket, one of which owns the writer.

Worker 0 (the writer) is the primary as one process runs it: the writer thread, housekeeping, mail. It also
answers on a Unix socket next to the database file. Every other worker (a reader) opens the same file (WAL)
for reads and hands every write to worker 0 over that socket (edge.forwarding.Forwarder). Before each request
a reader asks SQLite whether another connection committed (`PRAGMA data_version`); if so it reads the new
checkpoint and events, so its sessions, its position and its response cache (keyed by position) follow
worker 0's writes before the request is served, with no timer involved.

The supervisor (the `serve` process) binds both sockets, starts the workers (spawned, not forked) and stops
them all when one exits or when it is told to stop.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import socket
import sys
from dataclasses import dataclass
from multiprocessing.context import SpawnProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.settings import Settings
    from edge.forwarding import Proxy
    from edge.runtime import Runtime

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
    from edge.forwarding import Forwarder
    from edge.unix_forwarder import UnixForwarder

    if role is not None and not role.owns_writer:
        return UnixForwarder(role.writer_socket)
    if not settings.is_primary and not settings.fly_region:
        return Forwarder(settings.primary_url)
    return None


def unix_listener(path: Path) -> socket.socket:
    """The writer's local socket, readable and writable by this user only."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # left by a process that did not stop cleanly
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o077)
    try:
        sock.bind(str(path))
        sock.listen(2048)  # now: a reader may hand on a request before worker 0 has started (it waits in the backlog)
    except OSError:
        sock.close()
        raise
    finally:
        os.umask(old)
    return sock


def serve_worker(index: int, writer_socket: str, sockets: list[socket.socket], config: dict[str, Any]) -> None:
    """A worker's whole life (the target of each spawned process)."""
    import uvicorn

    from edge import server

    os.environ[WORKER_ENV] = f"{index}:{writer_socket}"
    stop_with_parent()
    server.HEAD_TIMEOUT_S, server.MIN_BODY_RATE = config.pop("head_timeout_s"), config.pop("min_body_rate")
    host = config.pop("host")
    server.return_large_blocks_to_the_system()
    serving = server.Server(uvicorn.Config("edge.app:create_app", factory=True, **config), host, announce=index == 0)
    serving.run(sockets=sockets)
    if not serving.started:
        sys.exit(3)


PR_SET_PDEATHSIG = 1  # Linux prctl(2)


def stop_with_parent() -> None:
    """On Linux, get SIGTERM (a graceful stop) when the `serve` process dies, even by SIGKILL."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def supervise(
    workers: int, tcp: socket.socket, writer_path: Path, config: dict[str, Any]
) -> int:  # pragma: no cover - runs in the `serve` process; tests drive it through the command
    """Start `workers` processes on `tcp` (worker 0 also on `writer_path`), and wait for them; the exit code."""
    context = multiprocessing.get_context("spawn")
    unix = unix_listener(writer_path)
    processes: list[SpawnProcess] = []
    stopping = False

    def stop(signum: int, _: object) -> None:
        nonlocal stopping
        stopping = True
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for index in range(workers):
            sockets = [tcp, unix] if index == 0 else [tcp]
            process = context.Process(
                target=serve_worker, args=(index, str(writer_path), sockets, dict(config)), name=f"worker-{index}"
            )
            process.start()
            processes.append(process)
        code = _wait_any(processes)
        if not stopping:  # one worker ended on its own: the others stop too (a supervisor above restarts us)
            stop(signal.SIGTERM, None)
        for process in processes:
            process.join(STOP_TIMEOUT_S)
            if process.is_alive():
                process.kill()
                process.join()
        return 0 if stopping else (code or 1)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        unix.close()
        with contextlib.suppress(OSError):
            writer_path.unlink()
            writer_path.parent.rmdir()  # the supervisor's private directory


def _wait_any(processes: list[SpawnProcess]) -> int:
    """Block until one process ends; its exit code."""
    from multiprocessing.connection import wait

    sentinels = {process.sentinel: process for process in processes}
    while True:
        ready = wait(list(sentinels), timeout=1.0)
        for sentinel in ready:
            process = sentinels[sentinel]  # type: ignore[index]
            process.join()
            return process.exitcode or 0
