"""Settings: secrets refused or generated, aliases honoured, roles derived from regions."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import InsecureSettings, SettingsError, load_settings


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


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORT", "abc"),
        ("PORT", "-1"),
        ("PORT", "70000"),
        ("GROUP_COMMIT_MAX", "0"),
        ("ENVIRONMENT", "prod"),
        ("LOCAL_DRIVER", "pg"),
        ("LOG_LEVEL", "loud"),
        ("RATE_LIMIT_ENABLED", "maybe"),
        ("CHAIN_ID", "0"),
        ("MAX_REPLICATION_LAG_S", "-1"),
        ("STORAGE_BACKEND", "gcs"),
        ("DATABASE_URL", "postgres://db.example/megilance"),
        ("PRIMARY_URL", "iad.internal:8080"),
        ("PUBLIC_BASE_URL", "megilance.example"),
        ("CHAIN_RPC_URL", "localhost:8545"),
        ("S3_ENDPOINT_URL", "ftp://s3.example"),
        ("TRUSTED_PROXIES", "10.0.0.0/8,garbage"),
        ("CORS_ORIGINS", "https://app.example/"),
        ("USDC_CONTRACT_ADDRESS", "0x1234"),
        ("JWT_KEYS", "k1-without-a-secret"),
        ("ACCESS_TOKEN_EXPIRE_MINUTES", "1441"),
        ("REFRESH_TOKEN_EXPIRE_MINUTES", "525601"),
        ("REFRESH_TOKEN_EXPIRE_MINUTES", "10000000000"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        load_settings(DATA_DIR=tmp_path, SECRET_KEY="s" * 40)
    message = str(raised.value)
    assert message.startswith(f"{variable}: ")
    assert "\n" not in message


def test_a_secret_is_not_echoed_in_the_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_KEYS", "k1:too-short-secret-value")
    with pytest.raises(SettingsError) as raised:
        load_settings(DATA_DIR=tmp_path, SECRET_KEY="s" * 40)
    assert "too-short-secret-value" not in str(raised.value)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LOG_LEVEL", "WARNING"),
        ("DATABASE_URL", "libsql://megilance-org.turso.io"),
        ("DATABASE_URL", "file:data/x.db"),
        ("DATABASE_URL", "data/x.db"),
        ("PRIMARY_URL", "http://iad.megilance-api.internal:8080"),
        ("PUBLIC_BASE_URL", "https://megilance.example"),
        ("TRUSTED_PROXIES", "127.0.0.1/32, 10.0.0.0/8,::1"),
        ("CORS_ORIGINS", "https://app.example, http://localhost:3000"),
        ("USDC_CONTRACT_ADDRESS", "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"),
        ("JWT_KEYS", "k1:" + "a" * 32 + ",k2:" + "b" * 32),
        ("ACCESS_TOKEN_EXPIRE_MINUTES", "1440"),
        ("REFRESH_TOKEN_EXPIRE_MINUTES", "525600"),
    ],
)
def test_good_values_are_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    load_settings(DATA_DIR=tmp_path, SECRET_KEY="s" * 40)


def test_production_needs_its_public_address(tmp_path: Path) -> None:
    settings = load_settings(ENVIRONMENT="production", DATA_DIR=tmp_path, SECRET_KEY="k" * 40)
    with pytest.raises(InsecureSettings, match="PUBLIC_BASE_URL"):
        settings.require_public_url()
    load_settings(ENVIRONMENT="development", DATA_DIR=tmp_path, SECRET_KEY="k" * 40).require_public_url()
    settings.public_base_url = "https://api.megilance.example"
    settings.require_public_url()
