"""Settings: secrets refused or generated, aliases honoured, roles derived from regions."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import InsecureSettings, load_settings


def test_production_refuses_a_missing_secret_key(tmp_path: Path) -> None:
    with pytest.raises(InsecureSettings):
        load_settings(ENVIRONMENT="production", DATA_DIR=tmp_path, SECRET_KEY="")


@pytest.mark.parametrize("weak", ["changeme", "secret", "short-but-not-empty", "your-secret-key-min-32-characters"])
def test_production_refuses_a_weak_secret_key(tmp_path: Path, weak: str) -> None:
    with pytest.raises(InsecureSettings):
        load_settings(ENVIRONMENT="production", DATA_DIR=tmp_path, SECRET_KEY=weak)


def test_production_accepts_a_strong_secret_key(tmp_path: Path) -> None:
    key = "k" * 40
    assert load_settings(ENVIRONMENT="production", DATA_DIR=tmp_path, SECRET_KEY=key).secret_key == key
    assert not (tmp_path / ".secret_key").exists()


def test_development_generates_a_key_once_and_keeps_it(tmp_path: Path) -> None:
    first = load_settings(ENVIRONMENT="development", DATA_DIR=tmp_path, SECRET_KEY="").secret_key
    second = load_settings(ENVIRONMENT="development", DATA_DIR=tmp_path, SECRET_KEY="").secret_key
    assert len(first) >= 32
    assert first == second
    stored = tmp_path / ".secret_key"
    assert stored.read_text() == first
    assert stored.stat().st_mode & 0o777 == 0o600


def test_environment_aliases_are_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOWAPI_ENABLED", "false")
    monkeypatch.setenv("REQUEST_LOG_LEVEL", "debug")
    monkeypatch.setenv("FLY_REGION", "FRA")
    monkeypatch.setenv("PRIMARY_REGION", "iad")
    settings = load_settings(DATA_DIR=tmp_path, SECRET_KEY="s" * 40)
    assert settings.rate_limit_enabled is False
    assert settings.log_level == "debug"
    assert settings.region == "fra"
    assert settings.role == "edge"


@pytest.mark.parametrize(
    ("region", "primary", "role"),
    [("", "", "primary"), ("iad", "iad", "primary"), ("fra", "iad", "edge"), ("iad", "", "primary")],
)
def test_role_follows_the_regions(tmp_path: Path, region: str, primary: str, role: str) -> None:
    settings = load_settings(DATA_DIR=tmp_path, SECRET_KEY="s" * 40, REGION=region, PRIMARY_REGION=primary)
    assert settings.role == role


def test_database_defaults_live_under_data_dir(tmp_path: Path) -> None:
    settings = load_settings(DATA_DIR=tmp_path, SECRET_KEY="s" * 40, REGION="syd", PRIMARY_REGION="iad")
    assert settings.resolved_database_url() == str(tmp_path / "megilance.db")
    assert settings.resolved_read_path() == str(tmp_path / "read-syd.db")
