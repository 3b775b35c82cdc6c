"""`make run` installs the service's runtime lock only; `make test` adds the test and lint tools."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def planned(target: str, tmp_path: Path) -> str:
    """What `make -n <target>` would run in a fresh clone (no virtualenv yet)."""
    for name in ("Makefile", "requirements.lock", "requirements-runtime.lock", "pyproject.toml"):
        shutil.copy2(REPO / name, tmp_path / name)
    return planned_here(target, tmp_path)


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


def test_each_set_is_installed_once_and_again_when_its_lock_changes(tmp_path: Path) -> None:
    planned("run", tmp_path)  # copies the files
    (tmp_path / ".venv").mkdir()
    stamp = tmp_path / ".venv" / ".runtime-stamp"
    stamp.touch()
    # Newer than everything the runtime set depends on (the runtime lock and pyproject.toml).
    later = max((tmp_path / name).stat().st_mtime for name in ("requirements-runtime.lock", "pyproject.toml")) + 10
    os.utime(stamp, (later, later))
    assert "pip install" not in planned_here("run", tmp_path)
    os.utime(tmp_path / "requirements-runtime.lock", (later + 10, later + 10))
    assert "-r requirements-runtime.lock" in planned_here("run", tmp_path)


def planned_here(target: str, directory: Path) -> str:
    done = subprocess.run(["make", "-n", target], cwd=directory, capture_output=True, text=True, check=True)
    return done.stdout
