"""The container's entrypoint: started as root on a root-owned DATA_DIR (an empty volume mounted over the
image's own /data), it hands the directory to the app user and runs the command as that user."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO / "docker-entrypoint.sh"
APP_UID = 10001


@pytest.fixture
def volume() -> Iterator[Path]:
    """A root-owned, empty directory, as a fresh volume is (created under /tmp so the app user can reach it)."""
    path = Path(tempfile.mkdtemp(prefix="megilance-volume-"))
    os.chown(path, 0, 0)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run(data_dir: Path, *command: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "DATA_DIR": str(data_dir), "APP_UID": str(APP_UID)}
    return subprocess.run([str(ENTRYPOINT), *command], check=False, env=env, capture_output=True, text=True, timeout=30)


def test_the_tests_run_as_root() -> None:
    """The entrypoint's work (chown, then dropping to the app user) is what root does: it is tested as root."""
    assert os.geteuid() == 0


def test_a_root_owned_empty_volume_is_handed_to_the_app_user(volume: Path) -> None:
    assert volume.stat().st_uid == 0
    done = run(volume, "sh", "-c", 'id -u; id -g; id -G; touch "$DATA_DIR/megilance.db"')
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(APP_UID)] * 3  # the command runs as the app user, with no other groups
    assert (volume.stat().st_uid, volume.stat().st_gid) == (APP_UID, APP_UID)
    assert volume.stat().st_mode & 0o777 == 0o700
    assert (volume / "megilance.db").stat().st_uid == APP_UID  # and it could write there


def test_files_root_left_in_the_volume_are_handed_over_too(volume: Path) -> None:
    os.chown(volume, APP_UID, APP_UID)
    (volume / "uploads").mkdir()
    (volume / "uploads" / "a").write_bytes(b"x")  # e.g. from a root shell on the machine
    done = run(volume, "true")
    assert done.returncode == 0, done.stderr
    assert (volume / "uploads").stat().st_uid == APP_UID
    assert (volume / "uploads" / "a").stat().st_uid == APP_UID


def test_a_missing_data_dir_is_created_for_the_app_user(volume: Path) -> None:
    done = run(volume / "data", "id", "-u")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(APP_UID)
    assert (volume / "data").stat().st_uid == APP_UID


def test_the_command_exit_code_and_arguments_pass_through(volume: Path) -> None:
    done = run(volume, "sh", "-c", 'echo "$1 $2"; exit 7', "sh", "two words", "x")
    assert done.returncode == 7
    assert done.stdout == "two words x\n"


def test_the_image_starts_through_the_entrypoint_and_listens_dual_stack() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["docker-entrypoint.sh"]' in dockerfile
    assert "COPY docker-entrypoint.sh /usr/local/bin/" in dockerfile
    assert "\nUSER " not in dockerfile  # the entrypoint drops to the app user itself, after the chown
    assert "HOST=::" in dockerfile
    assert 'HOST = "::"' in (REPO / "fly.toml").read_text()
    assert os.access(ENTRYPOINT, os.X_OK)
