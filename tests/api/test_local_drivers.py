"""Both local drivers (stdlib `sqlite3`, the default, and `libsql`) serve the same app on the same file format."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from api.app import create_app
from core import store
from core.clock import FakeClock
from core.db import connect
from migrations.runner import migrate
from queries.rebuild import differences, rebuild
from queries.registry import projection
from tests.conftest import make_settings

PROJECT = {
    "title": "Port a service to Rust",
    "description": "A small HTTP service to port, with tests and a benchmark.",
    "category": "web",
    "budget_type": "fixed",
    "budget_min": "100",
    "budget_max": "250.50",
    "experience_level": "expert",
    "estimated_duration": "2 weeks",
    "skills": ["rust"],
}


@pytest.mark.parametrize("driver", ["libsql", "sqlite3"])
def test_a_flow_works_and_replays_equal_on_each_driver(tmp_path: Path, driver: str) -> None:
    settings = make_settings(tmp_path, LOCAL_DRIVER=driver)
    with TestClient(create_app(settings, FakeClock())) as client:
        body = {"email": f"{driver}@example.com", "password": "password123", "name": "Dee", "role": "client"}
        token = client.post("/api/auth/register", json=body).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        created = client.post("/api/projects", json=PROJECT, headers=headers)
        assert created.status_code == 201, created.text
        found = client.get("/api/projects?q=rust", headers=headers).json()["items"]
        assert [p["id"] for p in found] == [created.json()["id"]]
    other = "sqlite3" if driver == "libsql" else "libsql"  # the file is the same format whichever wrote it
    live = connect(settings.resolved_database_url(), driver=other)
    scratch = connect(str(tmp_path / "scratch.db"), driver=other)
    try:
        migrate(scratch, ("read",))
        rebuild(scratch, projection(), store.iter_all(live))
        assert differences(live, scratch, projection()) == []
    finally:
        live.close()
        scratch.close()
