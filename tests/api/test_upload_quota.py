"""Uploads an account may keep: UPLOAD_QUOTA_MB, and housekeeping that deletes uploads nobody completed or shows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from api.app import create_app
from api.uploads.housekeeping import collect_uploads
from core import store
from core.clock import FakeClock
from core.db import connect
from core.settings import Settings
from tests.conftest import make_settings
from tests.support.accounts import User, login, register
from tests.support.errors import assert_error

KB = 1024
PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def png(size: int) -> bytes:
    return PNG_HEAD + b"\x00" * (size - len(PNG_HEAD))


@pytest.fixture
def quota_settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, UPLOAD_QUOTA_MB=1, MAX_UPLOAD_MB=1, UPLOAD_GC_GRACE_HOURS=24)


@pytest.fixture
def app_client(quota_settings: Settings, clock: FakeClock) -> Iterator[TestClient]:
    with TestClient(create_app(quota_settings, clock), raise_server_exceptions=False) as client:
        yield client


def post_png(client: TestClient, user: User, size: int) -> Any:
    return client.post("/api/uploads", files={"file": ("a.png", png(size), "image/png")}, headers=user.headers)


def presign(client: TestClient, user: User, size: int) -> Any:
    body = {"filename": "a.png", "content_type": "image/png", "size": size}
    return client.post("/api/uploads/presign", json=body, headers=user.headers)


def stored_files(settings: Settings) -> list[Path]:
    return [p for p in (settings.data_dir / "uploads").rglob("*") if p.is_file()]


def collect(client: TestClient, clock: FakeClock) -> int:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    return int(client.portal.call(collect_uploads, runtime, clock.now()))  # type: ignore[union-attr]


def test_uploads_beyond_the_quota_are_refused_with_413(app_client: TestClient, quota_settings: Settings) -> None:
    ann, bob = register(app_client, "freelancer", "Ann"), register(app_client, "freelancer", "Bob")
    assert post_png(app_client, ann, 600 * KB).status_code == 201

    refused = assert_error(post_png(app_client, ann, 600 * KB), 413, "upload_quota_exceeded")
    assert "quota of 1 MB" in refused["detail"]
    assert_error(presign(app_client, ann, 600 * KB), 413, "upload_quota_exceeded")
    assert len(stored_files(quota_settings)) == 1  # nothing of the refused upload was kept

    assert presign(app_client, ann, 300 * KB).status_code == 200  # what is left still fits
    assert_error(post_png(app_client, ann, 200 * KB), 413, "upload_quota_exceeded")  # the presign reserved it
    assert post_png(app_client, bob, 600 * KB).status_code == 201  # the quota is per account


def test_housekeeping_deletes_uploads_never_completed_or_never_shown(
    app_client: TestClient, quota_settings: Settings, clock: FakeClock
) -> None:
    ann = register(app_client, "freelancer", "Ann")
    shown = post_png(app_client, ann, 100 * KB).json()["id"]
    in_portfolio = post_png(app_client, ann, 100 * KB).json()["id"]
    unused = post_png(app_client, ann, 600 * KB).json()["id"]
    never_completed = presign(app_client, ann, 100 * KB).json()["file_id"]
    assert app_client.put("/api/auth/me", json={"profile_image_url": shown}, headers=ann.headers).status_code == 200
    item = {"title": "Logo", "image_url": in_portfolio}
    assert app_client.post("/api/portfolio", json=item, headers=ann.headers).status_code == 201
    assert_error(post_png(app_client, ann, 300 * KB), 413, "upload_quota_exceeded")

    clock.advance(hours=23)
    assert collect(app_client, clock) == 0  # within the grace period everything stays
    clock.advance(hours=2)
    assert collect(app_client, clock) == 2

    ann = User(login(app_client, ann.email))  # the first access token has expired meanwhile
    for gone in (unused, never_completed):
        assert_error(app_client.get(f"/api/uploads/{gone}", headers=ann.headers), 404, "not_found")
    for kept in (shown, in_portfolio):
        assert app_client.get(f"/api/uploads/{kept}", headers=ann.headers).status_code == 200
    assert len(stored_files(quota_settings)) == 2  # the unused file's bytes are gone from storage
    assert post_png(app_client, ann, 300 * KB).status_code == 201  # its room is free again
    assert collect(app_client, clock) == 0
    conn = connect(quota_settings.resolved_database_url(), synchronous="NORMAL")
    try:
        discarded = [e.data["reason"] for e in store.read_after(conn, 0, 1000) if e.type == "UploadDiscarded"]
    finally:
        conn.close()
    assert sorted(discarded) == ["never_completed", "never_referenced"]
