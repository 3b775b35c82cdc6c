"""File modes for what the service keeps on disk: databases 0600, its own directories 0700.

The database holds password hashes and sessions; SQLite gives its `-wal` and `-shm` files the mode of the
database file, so creating that file 0600 before SQLite first opens it covers all three.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")


def private_dir(path: Path) -> None:
    """Create `path` (and missing parents) readable by this user only; an existing one is tightened if ours."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    _tighten(path, PRIVATE_DIR)


def private_database(path: Path, *, create: bool = True) -> None:
    """Create an empty database file 0600 if there is none (a new DATA_DIR is made 0700), and tighten an older one
    (and its companions) that an earlier version left 0644. `create=False` only tightens (a file another library
    creates in its own way)."""
    if not path.parent.exists():
        private_dir(path.parent)
    if create:
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_FILE))
    for suffix in SQLITE_COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            _tighten(companion, PRIVATE_FILE)


def _tighten(path: Path, mode: int) -> None:
    if path.stat().st_mode & 0o777 & ~mode:
        try:
            path.chmod(mode)
        except PermissionError:  # not ours (a mounted volume): leave it as the operator set it
            return
