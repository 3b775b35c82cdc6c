"""Helpers for the backup tests: Litestream's settings against the moto S3 server, the CLI, and a cuttable S3 link.

The S3 link is a TCP forwarder on 127.0.0.1 between Litestream and moto: `cut()` closes it (S3 unreachable,
while moto keeps what it already holds), `restore()` listens again on the same port.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from tests.s3server import FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY, REGION, create_bucket

T = TypeVar("T")
SYNC_INTERVAL_S = "0.05"  # tests: Litestream copies every 50 ms (its default is 1 s)


def backup_env(endpoint_url: str, bucket: str | None = None, prefix: str = "primary") -> dict[str, str]:
    """The settings of a primary backed up to a fresh bucket on `endpoint_url`."""
    if bucket is None:
        _, bucket = create_bucket(endpoint_url)
    return {
        "BACKUP_URL": f"s3://{bucket}/{prefix}",
        "S3_ENDPOINT_URL": endpoint_url,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_ACCESS_KEY,
        "BACKUP_SYNC_INTERVAL_S": SYNC_INTERVAL_S,
    }


def megilance(
    data_dir: Path, env: Mapping[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the `megilance` CLI in a subprocess (as an operator would) with DATA_DIR and `env`."""
    script = Path(sys.executable).with_name("megilance")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "ops.cli"]
    full_env = {**os.environ, "ENVIRONMENT": "test", "SECRET_KEY": "b" * 64, "DATA_DIR": str(data_dir), **env}
    full_env.pop("REGION", None)
    full_env.pop("PRIMARY_REGION", None)
    return subprocess.run([*command, *args], env=full_env, capture_output=True, text=True, timeout=timeout, check=False)


def backup_status(data_dir: Path, env: Mapping[str, str]) -> dict[str, Any]:
    done = megilance(data_dir, env, "backup", "status", "--json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def poll(probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
    """Call `probe` until it returns something other than None; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not reached within {timeout:.1f}s")
        pause.wait(interval)


def wait_replicated(data_dir: Path, env: Mapping[str, str], timeout: float = 30) -> dict[str, Any]:
    """Until `megilance backup status` shows S3 holding everything Litestream has read from the WAL."""
    last: dict[str, Any] = {}

    def probe() -> dict[str, Any] | None:
        nonlocal last
        last = backup_status(data_dir, env)
        return last if last.get("in_sync") and last.get("replica_txid") == last.get("local_txid") else None

    try:
        return poll(probe, timeout, "backup in sync", interval=0.1)
    except AssertionError as exc:
        raise AssertionError(f"{exc} (last status: {last})") from None


def children(pid: int) -> list[int]:
    """The processes `pid` started (from every one of its threads), read from /proc."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def gone(pid: int) -> bool:
    """The process has ended (and been reaped), or is a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


class S3Link:
    """A TCP forwarder from 127.0.0.1:<port> to the S3 server, which can be cut and restored."""

    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.port = 0
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def restore(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, []
        for sock in [*([listener] if listener else []), *sockets]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
