"""`make run` installs the service's runtime lock only; `make test` adds the test and lint tools."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def planned(target: str, tmp_path: Path) -> str:
    """What `make -n <target>` would run in a fresh clone (no virtualenv yet)."""
    for name in ("Makefile", "requirements.lock", "requirements-runtime.lock", "pyproject.toml"):
        shutil.copy2(REPO / name, tmp_path / name)
    done = subprocess.run(["make", "-n", target], cwd=tmp_path, capture_output=True, text=True, check=True)
    return done.stdout


def test_make_run_installs_the_runtime_lock_only(tmp_path: Path) -> None:
    commands = planned("run", tmp_path)
    assert "-r requirements-runtime.lock" in commands
    assert "-r requirements.lock" not in commands
    assert "megilance serve" in commands


def test_make_test_installs_the_dev_tools_too(tmp_path: Path) -> None:
    commands = planned("test", tmp_path)
    assert "-r requirements-runtime.lock" in commands
    assert "-r requirements.lock" in commands
    assert "pytest" in commands
