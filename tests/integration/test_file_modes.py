"""What the service writes to disk is readable by its own user only: databases 0600, its directories 0700."""

from __future__ import annotations

import stat
from pathlib import Path

from starlette.testclient import TestClient

from api.app import create_app
from core.files import private_database
from tests.conftest import make_settings

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 4096


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_data_dir_holds_its_databases_0600_and_uploads_0700(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = make_settings(data)
    with TestClient(create_app(settings)) as client:
        body = {"email": "ann@example.com", "password": "correct-horse-battery", "name": "Ann", "role": "client"}
        registered = client.post("/api/auth/register", json=body)
        assert registered.status_code == 201, registered.text
        headers = {"Authorization": f"Bearer {registered.json()['access_token']}"}
        upload = client.post("/api/uploads", files={"file": ("a.png", PNG, "image/png")}, headers=headers)
        assert upload.status_code == 201, upload.text
        databases = [p for p in data.iterdir() if p.name.startswith("megilance.db")]
        assert {p.name for p in databases} >= {"megilance.db", "megilance.db-wal", "megilance.db-shm"}
        assert {p.name: mode(p) for p in databases} == {p.name: 0o600 for p in databases}
        assert mode(data) == 0o700
        uploads = data / "uploads"
        assert mode(uploads) == 0o700
        stored = [p for p in uploads.rglob("*") if p.is_file()]
        assert stored and all(mode(p) == 0o600 for p in stored)
        assert all(mode(p) == 0o700 for p in uploads.rglob("*") if p.is_dir())


def test_a_database_an_older_version_left_world_readable_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "megilance.db"
    path.write_bytes(b"")
    path.chmod(0o644)
    (tmp_path / "megilance.db-wal").write_bytes(b"")
    (tmp_path / "megilance.db-wal").chmod(0o644)

    private_database(path)

    assert mode(path) == 0o600
    assert mode(tmp_path / "megilance.db-wal") == 0o600
