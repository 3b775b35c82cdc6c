"""Shared fixtures: each test gets its own database directory; the header names the engine versions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import libsql
import pytest
from starlette.testclient import TestClient

from api.app import create_app
from core.clock import FakeClock
from core.settings import Settings, load_settings
from tests.sqld import Sqld


def pytest_report_header(config: pytest.Config) -> str:
    conn = libsql.connect(":memory:")
    version = conn.execute("SELECT sqlite_version()").fetchone()[0]
    return f"libSQL (libsql package) SQLite engine {version}"


TIERS = ("unit", "api", "integration", "e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its tier, the name of the directory under tests/ it lives in (`-m unit`)."""
    root = Path(__file__).parent
    for item in items:
        parts = item.path.relative_to(root).parts if item.path.is_relative_to(root) else ()
        if parts and parts[0] in TIERS:
            item.add_marker(parts[0])


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    base: dict[str, object] = {
        "DATA_DIR": data_dir,
        "ENVIRONMENT": "test",
        "SECRET_KEY": "t" * 48,
        "LOG_LEVEL": "warning",
        "ARGON2_TIME_COST": 1,
        "ARGON2_MEMORY_KIB": 1024,
        "RATE_LIMIT_ENABLED": False,
        "DB_SYNCHRONOUS": "NORMAL",
        # Matching encodes every profile and project it sees: only its own tests (tests/*/test_matching*) pay.
        "FEATURE_FLAG_AI_MATCHING": False,
    }
    base.update(overrides)
    return load_settings(**base)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module that sets `DATABASES = ("local", "remote")` runs each of its tests that opens the primary on both."""
    databases = getattr(metafunc.module, "DATABASES", None)
    if databases and "database" in metafunc.fixturenames:
        metafunc.parametrize("database", databases, indirect=True)


@pytest.fixture
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, object]]:
    """Where the primary's log lives: an embedded file, or ("remote") a real sqld on loopback."""
    if getattr(request, "param", "local") == "local":
        yield {}
        return
    with Sqld(tmp_path / "sqld") as server:
        yield {"DATABASE_URL": server.url}


@pytest.fixture
def settings(tmp_path: Path, database: dict[str, object]) -> Settings:
    return make_settings(tmp_path, **database)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client(settings: Settings, clock: FakeClock) -> Iterator[TestClient]:
    with TestClient(create_app(settings, clock), raise_server_exceptions=False) as test_client:
        yield test_client
