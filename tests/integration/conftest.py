"""Integration fixtures: `db_path`, a migrated event-log file on each local driver."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrations.runner import migrate
from tests.integration.logfile import DRIVERS, open_db


@pytest.fixture(params=DRIVERS)
def db_path(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A migrated log file under `<tmp>/<driver>/`, once per driver."""
    (tmp_path / request.param).mkdir()
    path = str(tmp_path / request.param / "log.db")
    conn = open_db(path)
    migrate(conn, ("log",))
    conn.close()
    return path
