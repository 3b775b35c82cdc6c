"""Litestream (the real binary) against the moto S3 server: point-in-time restore, the CLI verbs, the config."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from commands.users import RegisterUser
from core import backup
from core.db import Connection, connect
from core.ids import new_id
from core.settings import load_settings
from node.runtime import prepare_primary, run_command_sync
from ops.cli import app as cli_app
from queries.registry import projection
from tests.backupkit import backup_env, poll
from tests.s3server import s3_endpoint  # noqa: F401 (fixture)


@pytest.fixture
def env(s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:  # noqa: F811
    """A primary in tmp_path backed up to a fresh bucket; the variables are set for Litestream to inherit."""
    values = {
        **backup_env(s3_endpoint),
        "DATA_DIR": str(tmp_path / "data"),
        "SECRET_KEY": "k" * 48,
        "ENVIRONMENT": "test",
        "DB_SYNCHRONOUS": "NORMAL",
    }
    for name in ("DATABASE_URL", "REGION", "FLY_REGION", "PRIMARY_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def primary(env: dict[str, str]) -> Iterator[tuple[Connection, backup.Litestream]]:
    settings = load_settings()
    cfg = backup.backup_config(settings)
    assert cfg is not None
    conn = connect(str(cfg.db_path), synchronous="NORMAL")
    backup.hand_checkpoints_to_litestream(conn)
    prepare_primary(conn, projection())
    litestream = backup.Litestream(cfg, poll_interval_s=3600)  # the test asks itself, with refresh()
    litestream.start()
    try:
        yield conn, litestream
    finally:
        litestream.stop()
        conn.close()


def register(conn: Connection, email: str) -> None:
    command = RegisterUser(user_id=new_id(), email=email, name="Backup test", role="client", password_hash="x")
    run_command_sync(conn, projection(), command, {"actor": "test"})


def in_s3(litestream: backup.Litestream) -> None:
    """Until S3 holds every commit made so far (Litestream reads the WAL first when asked)."""
    poll(lambda: True if (snap := litestream.refresh()) is not None and snap.in_sync else None, 20, "in S3")


def emails(db: Path) -> set[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {row[0] for row in conn.execute("SELECT email FROM rm_users")}
    finally:
        conn.close()


def cli(*args: str, **env: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli_app, list(args), env=env or None)
    return result.exit_code, result.output


def test_a_restore_to_a_time_between_two_writes_gives_exactly_the_first(
    primary: tuple[Connection, backup.Litestream], tmp_path: Path
) -> None:
    conn, litestream = primary
    register(conn, "first@example.com")
    in_s3(litestream)
    between = datetime.now(UTC)
    # Litestream stamps its files in milliseconds: the second write must be stamped later than `between`.
    pause = threading.Event()
    while time.time() < between.timestamp() + 0.01:
        pause.wait(0.005)
    register(conn, "second@example.com")
    in_s3(litestream)

    then, latest = tmp_path / "then.db", tmp_path / "latest.db"
    code, output = cli("restore", "--to", str(then), "--timestamp", between.isoformat().replace("+00:00", "Z"))
    assert code == 0, output
    assert emails(then) == {"first@example.com"}
    code, output = cli("restore", "--to", str(latest))
    assert code == 0, output
    assert emails(latest) == {"first@example.com", "second@example.com"}

    code, output = cli("verify", DATABASE_URL=str(then))
    assert code == 0, output
    assert "verified" in output


def test_backup_status_reports_the_replicated_position_and_its_age(
    primary: tuple[Connection, backup.Litestream],
) -> None:
    conn, litestream = primary
    register(conn, "status@example.com")
    in_s3(litestream)

    code, output = cli("backup", "status", "--json")

    assert code == 0, output
    status = json.loads(output)
    assert status["litestream"] == "running"
    assert status["in_sync"] is True
    assert status["replica_txid"] == status["local_txid"] == status["replicated_txid"] >= 1
    assert 0 <= status["last_sync_age_seconds"] < 10
    assert 0 <= status["replica_age_seconds"] < 60
    assert litestream.lag_seconds() == 0


def test_restore_refuses_to_overwrite_a_file_and_a_bad_timestamp(
    primary: tuple[Connection, backup.Litestream], tmp_path: Path
) -> None:
    conn, litestream = primary
    register(conn, "x@example.com")
    in_s3(litestream)
    taken = tmp_path / "taken.db"
    taken.write_bytes(b"keep me")

    code, output = cli("restore", "--to", str(taken))
    assert code == 1
    assert "exists" in output
    assert taken.read_bytes() == b"keep me"

    code, output = cli("restore", "--to", str(tmp_path / "new.db"), "--timestamp", "yesterday")
    assert code == 1
    assert "timestamp" in output
    assert not (tmp_path / "new.db").exists()


def test_backup_commands_refuse_without_backup_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BACKUP_URL", raising=False)
    code, output = cli("backup", "status", DATA_DIR=str(tmp_path), ENVIRONMENT="test")
    assert code == 1
    assert "BACKUP_URL" in output


@pytest.mark.parametrize("url", ["http://bucket/x", "s3://", "s3:///path", "s3://bucket/x?versionId=1"])
def test_a_backup_url_that_is_not_s3_is_refused_by_name(url: str, tmp_path: Path) -> None:
    code, output = cli("backup", "status", DATA_DIR=str(tmp_path), ENVIRONMENT="test", BACKUP_URL=url)
    assert code == 1
    assert "BACKUP_URL" in output


def test_the_written_config_holds_no_credentials(env: dict[str, str]) -> None:
    cfg = backup.backup_config(load_settings())
    assert cfg is not None
    text = backup.write_config(cfg).read_text()
    document = json.loads(text)
    replica = document["dbs"][0]["replica"]
    assert replica["endpoint"] == env["S3_ENDPOINT_URL"]
    assert replica["sync-interval"] == "50ms"
    assert "secret-access-key" not in replica
    assert "access-key-id" not in replica


def test_a_primary_without_its_file_refuses_to_start_empty_when_the_backup_cannot_be_read(
    env: dict[str, str],
    s3_endpoint: str,  # noqa: F811
) -> None:
    code, output = cli("migrate", BACKUP_URL="s3://no-such-bucket-here/primary")

    assert code == 1
    assert "NoSuchBucket" in output
    assert not (Path(env["DATA_DIR"]) / "megilance.db").exists()


def test_a_primary_without_its_file_and_an_empty_backup_starts_fresh(env: dict[str, str]) -> None:
    code, output = cli("migrate")

    assert code == 0, output
    assert (Path(env["DATA_DIR"]) / "megilance.db").exists()
    assert not (Path(env["DATA_DIR"]) / backup.RESTORED_MARKER).exists()


def test_litestream_that_dies_is_restarted_and_catches_up(primary: tuple[Connection, backup.Litestream]) -> None:
    conn, litestream = primary
    register(conn, "before@example.com")
    in_s3(litestream)
    process = litestream._process
    assert process is not None
    process.kill()

    poll(lambda: True if litestream.restarts == 1 and litestream.alive else None, 20, "restarted")
    register(conn, "after@example.com")
    in_s3(litestream)
    report = litestream.report(60)
    assert report["running"] is True
    assert report["restarts"] == 1
    assert report["ok"] is True


def test_a_clean_shutdown_copies_the_last_writes_before_litestream_exits(env: dict[str, str], tmp_path: Path) -> None:
    cfg = backup.backup_config(load_settings())
    assert cfg is not None
    slow = replace(cfg, sync_interval_s=60)  # nothing would reach S3 for a minute without the final sync
    conn = connect(str(slow.db_path), synchronous="NORMAL")
    backup.hand_checkpoints_to_litestream(conn)
    prepare_primary(conn, projection())
    litestream = backup.Litestream(slow, poll_interval_s=3600)
    litestream.start()
    try:
        poll(litestream.refresh, 20, "litestream answers")
        register(conn, "last@example.com")
    finally:
        litestream.stop()
        conn.close()

    copy = tmp_path / "copy.db"
    code, output = cli("restore", "--to", str(copy))
    assert code == 0, output
    assert "last@example.com" in emails(copy)


def test_a_leftover_wal_of_the_lost_file_does_not_spoil_the_restore(
    primary: tuple[Connection, backup.Litestream], env: dict[str, str]
) -> None:
    conn, litestream = primary
    for n in range(3):
        register(conn, f"kept{n}@example.com")
    in_s3(litestream)
    db = Path(env["DATA_DIR"]) / "megilance.db"
    wal = Path(f"{db}-wal").read_bytes()
    assert wal  # the WAL holds frames (the app leaves checkpoints to Litestream)
    litestream.stop()
    conn.close()
    db.unlink()  # the file is gone, but a WAL of it is left behind
    Path(f"{db}-wal").write_bytes(wal)

    code, output = cli("migrate")
    assert code == 0, output
    assert {f"kept{n}@example.com" for n in range(3)} <= emails(db)
    code, output = cli("verify")
    assert code == 0, output


def test_backup_status_without_litestream_reads_the_copy_in_s3(primary: tuple[Connection, backup.Litestream]) -> None:
    conn, litestream = primary
    register(conn, "offline@example.com")
    in_s3(litestream)
    txid = litestream.refresh()
    assert txid is not None
    litestream.stop()

    code, output = cli("backup", "status", "--json")

    assert code == 0, output
    status = json.loads(output)
    assert status["litestream"] == "not running"
    assert "not answering" in status["error"]
    assert status["replica_txid"] >= txid.replicated_txid
    assert 0 <= status["replica_age_seconds"] < 60


def test_an_empty_placeholder_file_is_restored_over(
    primary: tuple[Connection, backup.Litestream], env: dict[str, str]
) -> None:
    conn, litestream = primary
    register(conn, "placeholder@example.com")
    in_s3(litestream)
    litestream.stop()
    conn.close()
    db = Path(env["DATA_DIR"]) / "megilance.db"
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        path.unlink(missing_ok=True)
    db.touch()  # what a start that stopped before SQLite's first open leaves behind

    code, output = cli("migrate")

    assert code == 0, output
    assert "placeholder@example.com" in emails(db)
