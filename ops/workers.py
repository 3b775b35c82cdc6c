"""The `serve --workers N` supervisor: binds worker 0's Unix sockets, spawns the workers (not forked) and stops
them all when one exits or when it is told to stop. What each worker does is api.workers."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import socket
import sys
from multiprocessing.context import SpawnProcess
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

from api.workers import CALLS_SOCKET_NAME, STOP_TIMEOUT_S, WORKER_ENV, adopt_call_listener


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


def first_to_start(announced: Synchronized[int]) -> bool:
    """True for the one worker that claims the flag first: it prints where the workers listen."""
    with announced.get_lock():
        if announced.value:
            return False
        announced.value = 1
        return True


def serve_worker(
    index: int,
    writer_socket: str,
    sockets: list[socket.socket],
    calls: socket.socket | None,
    config: dict[str, Any],
    announced: Synchronized[int],
) -> None:
    """A worker's whole life (the target of each spawned process); `calls` is worker 0's call socket."""
    import uvicorn

    from httpserver import bounded as server

    os.environ[WORKER_ENV] = f"{index}:{writer_socket}"
    if calls is not None:
        adopt_call_listener(calls)
    stop_with_parent()
    server.HEAD_TIMEOUT_S, server.MIN_BODY_RATE = config.pop("head_timeout_s"), config.pop("min_body_rate")
    host = config.pop("host")
    server.fix_malloc_thresholds()
    serving = server.Server(
        uvicorn.Config("api.app:create_app", factory=True, **config), host, announce=lambda: first_to_start(announced)
    )
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
    """Start `workers` processes on `tcp` (worker 0 also on `writer_path` and the call socket beside it), and wait
    for them; the exit code."""
    context = multiprocessing.get_context("spawn")
    unix = unix_listener(writer_path)
    calls_path = writer_path.parent / CALLS_SOCKET_NAME
    try:
        calls = unix_listener(calls_path)
    except OSError:
        unix.close()
        raise
    processes: list[SpawnProcess] = []
    announced = context.Value("b", 0)  # any worker may answer first: the first to start says where they listen
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
                target=serve_worker,
                args=(index, str(writer_path), sockets, calls if index == 0 else None, dict(config), announced),
                name=f"worker-{index}",
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
        calls.close()
        with contextlib.suppress(OSError):
            writer_path.unlink()
            calls_path.unlink()
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
