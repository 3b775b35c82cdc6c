"""A headless Chromium for end-to-end tests: Debian's `chromium` package, installed on first use if missing."""

from __future__ import annotations

import fcntl
import os
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
LOCK_FILE = Path(tempfile.gettempdir()) / "megilance-chromium-install.lock"
APT_TIMEOUT = 900.0

# Flags that work on a machine with no network beyond the package registries.
BASE_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
)

_thread_lock = threading.Lock()


class BrowserUnavailableError(RuntimeError):
    """Chromium is not installed and could not be installed."""


def _run(args: Sequence[str]) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        result = subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=APT_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrowserUnavailableError(f"cannot install chromium: `{' '.join(args)}` failed: {exc}") from exc
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-3000:]
        raise BrowserUnavailableError(
            f"cannot install chromium: `{' '.join(args)}` exited {result.returncode}:\n{tail}"
        )


def _install() -> None:
    if os.geteuid() != 0:
        raise BrowserUnavailableError(
            f"{CHROMIUM} is missing and this process is not root, so it cannot run apt-get: "
            "install it with `apt-get update && apt-get install -y chromium`"
        )
    _run(["apt-get", "update"])
    _run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"])


def chromium_path() -> Path:
    """The path of a working headless Chromium; installs Debian's package (as root) if it is not there yet.

    Safe to call from several tests, threads and processes: installation happens under a file lock, once.
    """
    if CHROMIUM.exists():
        return CHROMIUM
    with _thread_lock, LOCK_FILE.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not CHROMIUM.exists():
                _install()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    if not CHROMIUM.exists():
        raise BrowserUnavailableError(f"apt-get install chromium succeeded but {CHROMIUM} does not exist")
    return CHROMIUM


def chromium_version() -> str:
    """`Chromium 1xx.0.xxxx.xx built on Debian ...`."""
    result = subprocess.run([str(chromium_path()), "--version"], capture_output=True, text=True, timeout=60, check=True)
    return result.stdout.strip()


def headless_command(user_data_dir: Path, *args: str) -> list[str]:
    """The argv to run headless Chromium with a fresh profile in `user_data_dir` plus `args`."""
    return [str(chromium_path()), *BASE_FLAGS, f"--user-data-dir={user_data_dir}", *args]
