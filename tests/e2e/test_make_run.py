"""`make run` on a clean clone: creates the venv, installs, migrates and serves; ready answers 200."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.e2e.server import free_port

REPO = Path(__file__).resolve().parents[2]
INSTALL_AND_START_S = 900


def test_make_run_from_a_clean_clone_answers_ready(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(clone)], check=True)
    # Work not yet committed in this checkout is part of what is tested (CI runs on a fresh clone anyway).
    for path in tracked_changes():
        target = clone / path
        if (REPO / path).exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / path, target)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "DATABASE_URL", "DATA_DIR"))}
    env.update({"PORT": str(port), "HOST": "127.0.0.1", "PATH": clean_path()})
    log = (tmp_path / "make-run.log").open("wb")
    process = subprocess.Popen(
        ["make", "run"], cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        status = wait_ready(process, f"http://127.0.0.1:{port}/api/health/ready")
        assert status == 200, (tmp_path / "make-run.log").read_text()[-3000:]
        assert (clone / "data" / "megilance.db").exists()  # the embedded libSQL file, default location
        assert (clone / ".venv" / "bin" / "megilance").exists()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def tracked_changes() -> list[str]:
    out = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout
    return [line[3:].strip() for line in out.splitlines() if line[3:].strip() and not line.startswith("!!")]


def clean_path() -> str:
    """PATH without this test run's virtualenv: `make` must build its own."""
    venv_bin = str(REPO / ".venv" / "bin")
    return os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != venv_bin)


def wait_ready(process: subprocess.Popen[bytes], url: str) -> int:
    deadline = time.monotonic() + INSTALL_AND_START_S
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return -process.returncode if process.returncode else -1
            try:
                response = client.get(url)
                if response.status_code == 200:
                    return 200
            except httpx.HTTPError:
                pass
            try:
                process.wait(timeout=0.5)  # the poll interval; notices an early exit at once
            except subprocess.TimeoutExpired:
                continue
    return 0
