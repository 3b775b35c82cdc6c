"""Start and stop the servers under test: the bare Starlette baseline and the real app, each on a free port."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"

# The server's own defaults (core/settings.py), spelled out so a test-only environment cannot shrink them.
ARGON2_DEFAULTS = {"ARGON2_TIME_COST": "3", "ARGON2_MEMORY_KIB": "19456", "ARGON2_PARALLELISM": "1"}
# As users run it (`make run`): info, one access-log line per request. BENCH_LOG_LEVEL=warning for the old figures.
APP_LOG_LEVEL = os.environ.get("BENCH_LOG_LEVEL", "info")
APP_WORKERS = os.environ.get("BENCH_WORKERS", "1")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def megilance_command() -> str:
    beside = Path(sys.executable).parent / "megilance"
    if beside.exists():
        return str(beside)
    found = shutil.which("megilance")
    if found is None:
        raise RuntimeError("the megilance command is not installed (make install)")
    return found


class Server:
    """A uvicorn subprocess; a context manager that waits for readiness and stops it cleanly."""

    def __init__(
        self,
        name: str,
        cmd: list[str],
        port: int,
        ready_path: str,
        env: dict[str, str],
        workdir: Path,
        ready_timeout_s: float = 60.0,
    ) -> None:
        self.name = name
        self.cmd = cmd
        self.port = port
        self.ready_path = ready_path
        self.env = env
        self.workdir = workdir
        self.ready_timeout_s = ready_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.stdout_path = workdir / f"{name}.stdout.log"
        self.stderr_path = workdir / f"{name}.stderr.log"

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def start(self) -> Server:
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                self.cmd, cwd=ROOT, env=self.env, stdout=out, stderr=err, stdin=subprocess.DEVNULL
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        last = "no answer"
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.tail()}")
                try:
                    response = client.get(self.url(self.ready_path))
                    if response.status_code == 200:
                        return
                    last = f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    last = type(exc).__name__
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {self.ready_timeout_s}s ({last}): {self.tail()}")

    def tail(self, chars: int = 2000) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout_s: float = 15.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown (runs the lifespan's close)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def bench_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="megilance-bench-"))


def plain_uvicorn(name: str, app: str, ready_path: str, env: dict[str, str], workdir: Path) -> Server:
    """A baseline app under plain uvicorn: one worker, uvloop, httptools, no access log."""
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", app, "--host", HOST, "--port", str(port), "--workers", "1"]
    cmd += ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
    return Server(name, cmd, port, ready_path, env, workdir)


def bare_server(workdir: Path) -> Server:
    return plain_uvicorn("bare", "bench.bare_app:app", "/", dict(os.environ), workdir)


def bare_sqlite_server(workdir: Path, database: Path) -> Server:
    """bench.bare_sqlite_app on `database`: the floor for an uncached page read."""
    env = {**os.environ, "BARE_SQLITE_DB": str(database)}
    return plain_uvicorn("bare-sqlite", "bench.bare_sqlite_app:app", "/board", env, workdir)


def app_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for key in (
        "DATABASE_URL",
        "DATABASE_AUTH_TOKEN",
        "REGION",
        "FLY_REGION",
        "PRIMARY_REGION",
        "JWT_KEYS",
        "CORS_ORIGINS",
    ):
        env.pop(key, None)
    env.update(
        {
            "DATA_DIR": str(data_dir),
            "SECRET_KEY": secrets.token_urlsafe(48),
            "ENVIRONMENT": "test",
            "RATE_LIMIT_ENABLED": "false",
            "LOG_LEVEL": APP_LOG_LEVEL,
            "DB_SYNCHRONOUS": "FULL",
            "WORKERS": APP_WORKERS,
            **ARGON2_DEFAULTS,
        }
    )
    env.update(extra)
    return env


class AppServer(Server):
    """`megilance serve`: started means ready and settled, with no mail left to send and matching caught up.

    A store seeded in bulk queues thousands of notifications, and thousands of texts for the matcher to encode;
    the first server on it would spend the timed part of a benchmark on them.
    """

    SETTLE_TIMEOUT_S = 600.0
    BACKLOG = ("mail_outbox_pending", "mail_outbox_lag_events")

    def start(self) -> Server:
        super().start()
        deadline = time.monotonic() + self.SETTLE_TIMEOUT_S
        with httpx.Client(timeout=5.0) as client:
            while (left := self.backlog(client)) > 0:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{self.name} has not settled after {self.SETTLE_TIMEOUT_S}s ({left} left)")
                time.sleep(0.5)
        return self

    def backlog(self, client: httpx.Client) -> float:
        """Mail still to send (queued, or events the mailer has not looked at yet), from the metrics; and events
        the matcher has yet to read, from readiness."""
        text = client.get(self.url("/api/health/metrics")).text
        mail = sum(float(line.split()[-1]) for line in text.splitlines() if line.split(" ", 1)[0] in self.BACKLOG)
        checks = client.get(self.url("/api/health/ready")).json().get("checks", {})
        matching = checks.get("matching")
        behind = 0 if matching is None else checks["position"]["position"] - matching["position"]
        return mail + max(behind, 0)


def app_server(workdir: Path, name: str = "app", **extra_env: str) -> Server:
    port = free_port()
    data_dir = workdir / "app-data"
    cmd = [megilance_command(), "serve", "--host", HOST, "--port", str(port)]
    return AppServer(name, cmd, port, "/api/health/live", app_env(data_dir, **extra_env), workdir)
