"""The backup's pure parts: Litestream's config from the settings, its times, the socket path."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import backup
from core.settings import SettingsError, load_settings


def settings(tmp_path: Path, **extra: object) -> backup.BackupConfig | None:
    values: dict[str, object] = {"data_dir": tmp_path, "environment": "test", "secret_key": "s" * 48, **extra}
    return backup.backup_config(load_settings(**values))


def test_no_backup_url_means_no_backup(tmp_path: Path) -> None:
    assert settings(tmp_path) is None


def test_an_edge_or_a_remote_primary_has_no_backup(tmp_path: Path) -> None:
    url = "s3://bucket/p"
    assert settings(tmp_path, backup_url=url, region="fra", primary_region="iad") is None
    assert settings(tmp_path, backup_url=url, database_url="libsql://db.example.com") is None


def test_the_config_follows_the_settings(tmp_path: Path) -> None:
    cfg = settings(
        tmp_path,
        backup_url="s3://my-bucket/some/prefix/",
        s3_endpoint_url="http://127.0.0.1:9000",
        aws_region="eu-west-1",
        backup_sync_interval_s=0.25,
    )
    assert cfg is not None
    document = backup.config_document(cfg)
    db = document["dbs"][0]
    assert db["path"] == str((tmp_path / "megilance.db").resolve())
    assert db["monitor-interval"] == "250ms"
    assert db["replica"] == {
        "type": "s3",
        "bucket": "my-bucket",
        "path": "some/prefix",
        "region": "eu-west-1",
        "sync-interval": "250ms",
        "endpoint": "http://127.0.0.1:9000",
        "force-path-style": True,
    }
    assert document["socket"] == {"enabled": True, "path": str(cfg.socket_path)}


def test_the_default_sync_interval_is_litestreams_one_second(tmp_path: Path) -> None:
    cfg = settings(tmp_path, backup_url="s3://b/p")
    assert cfg is not None
    assert backup.config_document(cfg)["dbs"][0]["replica"]["sync-interval"] == "1000ms"
    assert "endpoint" not in backup.config_document(cfg)["dbs"][0]["replica"]


@pytest.mark.parametrize("value", ["0", "-1", "abc"])
def test_a_bad_sync_interval_is_refused_by_name(tmp_path: Path, value: str) -> None:
    with pytest.raises(SettingsError, match="BACKUP_SYNC_INTERVAL_S"):
        load_settings(data_dir=tmp_path, environment="test", BACKUP_SYNC_INTERVAL_S=value)


def test_a_long_path_gets_a_short_socket(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120) / "megilance.db"
    short = backup.socket_path_for(deep)
    assert len(str(short)) <= backup.MAX_SOCKET_PATH
    assert short == backup.socket_path_for(deep)  # the server and the CLI find the same one
    assert backup.socket_path_for(tmp_path / "m.db") == tmp_path / ".m.db-litestream.sock"


def test_go_times_with_nanoseconds_are_read() -> None:
    assert backup.parse_time("2026-12-07T17:10:10.228678123Z") == pytest.approx(1796663410.228678)
    assert backup.parse_time("2026-12-07T17:10:10Z") == 1796663410.0


def test_in_sync_means_s3_holds_litestreams_whole_log() -> None:
    snap = backup.Snapshot(local_txid=5, replicated_txid=5, last_sync_at=100.0)
    assert snap.in_sync
    assert snap.as_dict(now=101.5)["last_sync_age_seconds"] == 1.5
    assert not backup.Snapshot(local_txid=6, replicated_txid=5, last_sync_at=None).in_sync


def test_the_lag_counts_from_the_later_of_first_seen_behind_and_the_last_complete_sync() -> None:
    assert backup.lag(None, 10.0, now=500.0) == 0.0  # in sync at the last look, however old the last upload
    assert backup.lag(100.0, 40.0, now=130.0) == 30.0  # an outage: from the first look that saw a gap
    assert backup.lag(100.0, 128.0, now=130.0) == 2.0  # steady writes: S3 keeps taking everything
    assert backup.lag(100.0, None, now=103.0) == 3.0  # no successful sync yet


def test_aws_ca_bundle_becomes_ssl_cert_file_for_litestream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_CA_BUNDLE", "/etc/ssl/bundle.pem")
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    env = backup.child_env()
    assert "AWS_CA_BUNDLE" not in env
    assert env["SSL_CERT_FILE"] == "/etc/ssl/bundle.pem"


def test_the_server_asks_litestream_every_five_sync_intervals_within_bounds() -> None:
    assert backup.poll_interval(1.0) == 5.0  # the default: one extra file (and S3 PUT) per 5 s at most
    assert backup.poll_interval(0.05) == 0.25
    assert backup.poll_interval(0.01) == 0.25
    assert backup.poll_interval(60) == 5.0
