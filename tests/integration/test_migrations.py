"""Migrations on real libSQL files: from empty, idempotent, refuse a newer schema, atomic per file."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

import migrations.runner as runner
from api.app import create_app
from core import idempotency
from core.clock import FakeClock, rfc3339_ms
from core.db import Connection, connect
from migrations.runner import SchemaTooNew, migrate
from node.runtime import open_primary
from ops.cli import app as cli_app
from tests.conftest import make_settings
from tests.support.cli import cli_env

LOG_TABLES = {"events", "claims", "credentials", "refresh_tokens"}
READ_TABLES = {"projection_checkpoint", "projection_versions"}
BROKEN_SQL = """-- A migration that fails half way: its first statement must not survive.
CREATE TABLE half_applied (id INTEGER PRIMARY KEY);
INSERT INTO half_applied (id) VALUES (1);
INSERT INTO no_such_table (x) VALUES (1);
CREATE TABLE after_failure (id INTEGER PRIMARY KEY);
"""
FIXED_SQL = "CREATE TABLE half_applied (id INTEGER PRIMARY KEY);\n"


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[Connection]:
    connection = connect(str(tmp_path / "megilance.db"), synchronous="NORMAL")
    yield connection
    connection.close()


def tables(conn: Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger')").fetchall()
    return {str(row[0]) for row in rows}


def recorded(conn: Connection) -> set[tuple[str, int]]:
    rows = conn.execute("SELECT kind, version FROM schema_migrations").fetchall()
    return {(str(row[0]), int(row[1])) for row in rows}


def test_migrate_from_empty_creates_log_and_read_tables(conn: Connection) -> None:
    assert tables(conn) == set()

    applied = migrate(conn)

    assert applied == [f"log/{m.name}" for m in runner.available("log")] + ["read/0001_read_store"]
    assert applied[0] == "log/0001_event_log"
    assert LOG_TABLES | READ_TABLES | {"schema_migrations", "events_no_update", "events_no_delete"} <= tables(conn)
    assert recorded(conn) == {("log", m.version) for m in runner.available("log")} | {("read", 1)}
    assert conn.execute("SELECT id, position FROM projection_checkpoint").fetchall() == [(1, 0)]
    assert not conn.in_transaction  # type: ignore[attr-defined]


def test_migrate_read_only_creates_only_the_read_store(conn: Connection) -> None:
    assert migrate(conn, ("read",)) == ["read/0001_read_store"]

    assert tables(conn) >= READ_TABLES
    assert not LOG_TABLES & tables(conn)


def test_running_again_applies_nothing(conn: Connection) -> None:
    migrate(conn)
    before = conn.execute("SELECT kind, version, name, applied_at FROM schema_migrations ORDER BY 1, 2").fetchall()

    assert migrate(conn) == []
    assert migrate(conn, ("read",)) == []

    after = conn.execute("SELECT kind, version, name, applied_at FROM schema_migrations ORDER BY 1, 2").fetchall()
    assert after == before


def test_migrations_survive_reopening_the_file(tmp_path: Path) -> None:
    path = str(tmp_path / "reopen.db")
    first = connect(path, synchronous="NORMAL")
    migrate(first)
    first.close()

    second = connect(path, synchronous="NORMAL")
    try:
        assert migrate(second) == []
        assert tables(second) >= LOG_TABLES | READ_TABLES
    finally:
        second.close()


@pytest.mark.parametrize("kind", ["log", "read"])
def test_schema_newer_than_the_code_is_refused(conn: Connection, kind: str) -> None:
    migrate(conn)
    conn.execute("INSERT INTO schema_migrations VALUES (?, 9999, '9999_from_the_future', '2099-01-01')", (kind,))
    schema_before = tables(conn)

    with pytest.raises(SchemaTooNew, match="9999"):
        migrate(conn)

    assert tables(conn) == schema_before
    assert (kind, 9999) in recorded(conn)


def test_migrate_command_refuses_a_newer_schema(tmp_path: Path) -> None:
    db = connect(str(tmp_path / "megilance.db"), synchronous="NORMAL")
    migrate(db)
    db.execute("INSERT INTO schema_migrations VALUES ('log', 9999, '9999_from_the_future', '2099-01-01')")
    db.close()

    result = CliRunner().invoke(cli_app, ["migrate"], env=cli_env(tmp_path))

    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert "9999" in result.stderr
    assert "applied:" not in result.output


def test_migrate_command_applies_then_reports_up_to_date(tmp_path: Path) -> None:
    runner_cli = CliRunner()
    first = runner_cli.invoke(cli_app, ["migrate"], env=cli_env(tmp_path))
    second = runner_cli.invoke(cli_app, ["migrate"], env=cli_env(tmp_path))

    assert first.exit_code == 0, first.output
    assert "log/0001_event_log" in first.output
    assert second.exit_code == 0, second.output
    assert "nothing (up to date)" in second.output


def test_app_refuses_to_start_on_a_newer_schema(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    db = open_primary(settings)
    migrate(db)
    db.execute("INSERT INTO schema_migrations VALUES ('read', 9999, '9999_from_the_future', '2099-01-01')")
    db.close()

    with pytest.raises(SchemaTooNew), TestClient(create_app(settings, FakeClock())):
        pass


@pytest.fixture
def broken_migrations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the runner's directory with a failing `log/0099` file."""
    here = tmp_path / "migrations"
    for kind in ("log", "read"):
        shutil.copytree(runner.HERE / kind, here / kind)
    (here / "log" / "0099_broken.sql").write_text(BROKEN_SQL)
    monkeypatch.setattr(runner, "HERE", here)
    return here


def test_a_failing_migration_leaves_nothing_applied(conn: Connection, broken_migrations: Path) -> None:
    with pytest.raises(Exception, match="no_such_table"):
        migrate(conn)

    assert "half_applied" not in tables(conn)
    assert "after_failure" not in tables(conn)
    assert ("log", 99) not in recorded(conn)
    assert not conn.in_transaction  # type: ignore[attr-defined]
    # The file before the broken one was committed on its own and is kept.
    assert ("log", 1) in recorded(conn)
    assert "events" in tables(conn)


def test_a_failing_migration_is_not_recorded_on_disk(tmp_path: Path, broken_migrations: Path) -> None:
    path = str(tmp_path / "ondisk.db")
    first = connect(path, synchronous="NORMAL")
    try:
        with pytest.raises(Exception, match="no_such_table"):
            migrate(first)
    finally:
        first.close()

    second = connect(path, synchronous="NORMAL")
    try:
        assert ("log", 99) not in recorded(second)
        assert "half_applied" not in tables(second)
    finally:
        second.close()


def test_after_fixing_the_file_the_migration_applies(conn: Connection, broken_migrations: Path) -> None:
    with pytest.raises(Exception, match="no_such_table"):
        migrate(conn)
    (broken_migrations / "log" / "0099_broken.sql").write_text(FIXED_SQL)

    applied = migrate(conn)

    assert "log/0099_broken" in applied
    assert ("log", 99) in recorded(conn)
    assert conn.execute("SELECT COUNT(*) FROM half_applied").fetchone()[0] == 0


def test_idempotency_records_kept_before_the_etag_column_still_replay(
    conn: Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`log/0003` adds a nullable column: a record stored by older code survives it, replayed without an ETag."""
    older = tmp_path / "older"
    for kind in ("log", "read"):
        shutil.copytree(runner.HERE / kind, older / kind)
    (older / "log" / "0003_idempotency_etag.sql").unlink()
    monkeypatch.setattr(runner, "HERE", older)
    migrate(conn)
    now = FakeClock().now()
    conn.execute(
        "INSERT INTO idempotency_keys (user_id, key, fingerprint, status, body, position, created_at) "
        "VALUES ('u1', 'k1', 'f1', 201, X'7b7d', 7, ?)",
        (rfc3339_ms(now),),
    )
    monkeypatch.undo()

    assert migrate(conn) == ["log/0003_idempotency_etag"]

    assert idempotency.lookup(conn, "u1", "k1", now) == idempotency.Stored("f1", 201, b"{}", 7, None)
