"""A real `megilance serve` (uvicorn) subprocess on a free 127.0.0.1 port, for end-to-end tests.

Usage: `with LiveServer.start({"EXTRA": "env"}) as server: httpx.get(server.url + "/api/health/live")`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import httpx

READY_PATH = "/api/health/ready"
TEST_ENV: dict[str, str] = {
    "ENVIRONMENT": "test",
    "SECRET_KEY": "e2e-" + "s" * 60,
    "RATE_LIMIT_ENABLED": "false",
    "ARGON2_MEMORY_KIB": "1024",
    "ARGON2_TIME_COST": "1",
    "LOG_LEVEL": "warning",
    # Matching loads a model and encodes every profile: only the tests about it turn it on.
    "FEATURE_FLAG_AI_MATCHING": "false",
    # One process unless a test asks for more (the default is one per core).
    "WORKERS": "1",
}


class ServerStartError(RuntimeError):
    """The server process exited or did not become ready in time."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _command() -> list[str]:
    script = Path(sys.executable).with_name("megilance")
    if script.exists():
        return [str(script), "serve"]
    return [sys.executable, "-m", "ops.cli", "serve"]


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(unreadable)"
    return text[-limit:] if text else "(empty)"


class LiveServer:
    """One server process. Use `LiveServer.start(...)` (or as a context manager, which stops it on exit)."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        url: str,
        workdir: Path,
        data_dir: Path,
        stdout: IO[bytes],
        stderr: IO[bytes],
        owns_workdir: bool,
    ) -> None:
        self.process = process
        self.url = url
        self.workdir = workdir
        self.data_dir = data_dir
        self.stdout_path = workdir / "stdout.log"
        self.stderr_path = workdir / "stderr.log"
        self._stdout = stdout
        self._stderr = stderr
        self._owns_workdir = owns_workdir

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @classmethod
    def start(
        cls,
        extra_env: Mapping[str, str] | None = None,
        *,
        workdir: Path | None = None,
        data_dir: Path | None = None,
        ready_timeout: float = 30.0,
        host: str = "127.0.0.1",
        port: int | None = None,
        wait: bool = True,
    ) -> Self:
        """Start the server and wait (up to `ready_timeout` seconds) until GET /api/health/ready answers 200.

        With `wait=False` it returns at once (for a server that is expected never to become ready).

        `workdir` holds stdout.log/stderr.log (and DATA_DIR unless `data_dir` is given). If omitted it is a
        fresh temporary directory, removed by `cleanup()` (the context manager does it after `stop()`); a killed
        server's data survives until then, so a test can restart on `data_dir=server.data_dir`.
        """
        owns_workdir = workdir is None
        workdir = Path(tempfile.mkdtemp(prefix="megilance-e2e-")) if workdir is None else workdir
        workdir.mkdir(parents=True, exist_ok=True)
        data_dir = workdir / "data" if data_dir is None else data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        port = port or free_port("127.0.0.1" if host == "::" else host)
        env = {
            **os.environ,
            **TEST_ENV,
            "DATA_DIR": str(data_dir),
            "HOST": host,
            "PORT": str(port),
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        stdout = (workdir / "stdout.log").open("wb")
        stderr = (workdir / "stderr.log").open("wb")
        process = subprocess.Popen(
            _command(),
            env=env,
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            start_new_session=True,
        )
        reach = "[::1]" if host == "::" else f"[{host}]" if ":" in host else host  # `::` is reached on loopback
        server = cls(process, f"http://{reach}:{port}", workdir, data_dir, stdout, stderr, owns_workdir)
        if not wait:
            return server
        try:
            server.wait_ready(ready_timeout)
        except BaseException:
            server.kill()  # keeps the workdir and its logs for a look
            raise
        return server

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        with httpx.Client(timeout=2.0) as client:
            while True:
                if self.process.poll() is not None:
                    raise self._error(f"exited with code {self.process.returncode} before becoming ready")
                try:
                    response = client.get(self.url + READY_PATH)
                    if response.status_code == 200:
                        return
                    last = f"{response.status_code} {response.text[:300]}"
                except httpx.HTTPError as exc:
                    last = repr(exc)
                if time.monotonic() >= deadline:
                    raise self._error(f"not ready after {timeout:.0f}s (last: {last})")
                with contextlib.suppress(subprocess.TimeoutExpired):  # the poll interval; notices an exit at once
                    self.process.wait(timeout=0.05)

    def _error(self, what: str) -> ServerStartError:
        self._stdout.flush()
        self._stderr.flush()
        return ServerStartError(
            f"megilance serve (pid {self.pid}, {self.url}, workdir {self.workdir}) {what}\n"
            f"--- stdout tail ---\n{_tail(self.stdout_path)}\n"
            f"--- stderr tail ---\n{_tail(self.stderr_path)}"
        )

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        self._close_logs()
        return self.process.returncode

    def kill(self) -> int:
        """SIGKILL at once (a crash); returns the exit code (-9). The data directory is left as it was."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)  # its workers too (the server leads its own session)
            self.process.wait(timeout=10)
        self._close_logs()
        return self.process.returncode

    def cleanup(self) -> None:
        """Remove the temporary workdir (only one this helper created), once the process has ended."""
        if self.process.poll() is None:
            self.stop()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _close_logs(self) -> None:
        for stream in (self._stdout, self._stderr):
            if not stream.closed:
                stream.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        self.cleanup()
