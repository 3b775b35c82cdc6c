"""Settings from the environment (one table in the README). Read only by the app factory and the CLI."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.db import REMOTE_SCHEMES
from core.tokens import parse_key_ring

WEAK_SECRETS = frozenset({"", "changeme", "secret", "your-secret-key-min-32-characters"})
MIN_SECRET_LENGTH = 32


class InsecureSettings(ValueError):
    """The configuration would run production with a guessable key."""


class SettingsError(ValueError):
    """A variable holds a value the service cannot run with; the message names it (one line)."""


URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
EVM_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def http_url(value: str) -> str:
    """Empty, or an absolute http(s) URL with a host."""
    if value.strip():
        parts = urlsplit(value.strip())
        try:
            parts.port  # noqa: B018 (raises on a port that is not a number in range)
        except ValueError:
            raise ValueError("has an invalid port") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http:// or https:// URL")
    return value


class Settings(BaseSettings):
    """Every knob of the service; names are the environment variables."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    app_name: str = Field("MegiLance API", alias="APP_NAME")
    environment: Literal["development", "test", "production"] = Field("development", alias="ENVIRONMENT")
    data_dir: Path = Field(Path("./data"), alias="DATA_DIR")
    database_url: str = Field("", alias="DATABASE_URL")
    database_auth_token: str = Field("", alias="DATABASE_AUTH_TOKEN")
    read_database_path: str = Field("", alias="READ_DATABASE_PATH")
    synchronous: Literal["FULL", "NORMAL"] = Field("FULL", alias="DB_SYNCHRONOUS")
    # Embedded files: stdlib sqlite3 releases the GIL while SQLite works, libsql 0.1.11 does not (README: drivers).
    local_driver: Literal["libsql", "sqlite3"] = Field("sqlite3", alias="LOCAL_DRIVER")
    group_commit_max: int = Field(256, alias="GROUP_COMMIT_MAX", ge=1, le=10000)
    # One reader per core, at most 4: more threads than cores only queue for the GIL (measured: README, drivers).
    read_threads: int = Field(default_factory=lambda: min(4, os.cpu_count() or 1), alias="READ_THREADS", ge=1, le=64)
    host: str = Field("127.0.0.1", alias="HOST")
    port: int = Field(8000, alias="PORT", ge=1, le=65535)

    secret_key: str = Field("", alias="SECRET_KEY")
    jwt_keys: str = Field("", alias="JWT_KEYS")
    # Bounded: an access token is checked only by its signature and lifetime, so it lives a day at most; and
    # an unbounded lifetime overflows the expiry date (a 500 at every login).
    access_token_expire_minutes: int = Field(30, alias="ACCESS_TOKEN_EXPIRE_MINUTES", ge=1, le=1440)
    refresh_token_expire_minutes: int = Field(10080, alias="REFRESH_TOKEN_EXPIRE_MINUTES", ge=1, le=525600)
    argon2_time_cost: int = Field(3, alias="ARGON2_TIME_COST", ge=1)
    argon2_memory_kib: int = Field(19456, alias="ARGON2_MEMORY_KIB", ge=1024)
    argon2_parallelism: int = Field(1, alias="ARGON2_PARALLELISM", ge=1)

    region: str = Field("", validation_alias=AliasChoices("REGION", "FLY_REGION"))
    fly_region: str = Field("", alias="FLY_REGION")
    primary_region: str = Field("", alias="PRIMARY_REGION")
    primary_url: str = Field("", alias="PRIMARY_URL")
    replication_token: str = Field("", alias="REPLICATION_TOKEN")
    read_your_writes_timeout_ms: int = Field(2000, alias="READ_YOUR_WRITES_TIMEOUT_MS", ge=0)
    max_replication_lag_s: float = Field(10.0, alias="MAX_REPLICATION_LAG_S", gt=0)

    rate_limit_enabled: bool = Field(True, validation_alias=AliasChoices("RATE_LIMIT_ENABLED", "SLOWAPI_ENABLED"))
    rate_limit_auth_per_minute: int = Field(30, alias="RATE_LIMIT_AUTH_PER_MINUTE", ge=1)
    rate_limit_writes_per_minute: int = Field(600, alias="RATE_LIMIT_WRITES_PER_MINUTE", ge=1)
    trusted_proxies: str = Field("", alias="TRUSTED_PROXIES")
    cors_origins: str = Field("", alias="CORS_ORIGINS")
    max_body_bytes: int = Field(1_048_576, alias="MAX_BODY_BYTES", ge=1024)
    header_timeout_s: float = Field(10.0, alias="HEADER_TIMEOUT_S", gt=0)
    max_connections: int = Field(2048, alias="MAX_CONNECTIONS", ge=2)
    log_level: Literal["debug", "info", "warning", "error", "critical"] = Field(
        "info", validation_alias=AliasChoices("LOG_LEVEL", "REQUEST_LOG_LEVEL")
    )

    storage_backend: Literal["local", "s3"] = Field("local", alias="STORAGE_BACKEND")
    max_upload_mb: int = Field(10, alias="MAX_UPLOAD_MB", ge=1)
    s3_bucket_uploads: str = Field("megilance-uploads", alias="S3_BUCKET_UPLOADS")
    aws_region: str = Field("us-east-2", alias="AWS_REGION")
    s3_endpoint_url: str = Field("", alias="S3_ENDPOINT_URL")
    public_base_url: str = Field("", alias="PUBLIC_BASE_URL")

    chain_rpc_url: str = Field("", alias="CHAIN_RPC_URL")
    chain_id: int = Field(1, alias="CHAIN_ID", ge=1)
    usdc_contract_address: str = Field("", alias="USDC_CONTRACT_ADDRESS")
    min_confirmations: int = Field(1, alias="MIN_CONFIRMATIONS", ge=0)
    platform_fee_bps: int = Field(500, alias="PLATFORM_FEE_BPS", ge=0, le=10000)
    # AI matching (docs/matching.md): off, its endpoints answer 404 feature_disabled and nothing is encoded.
    feature_flag_ai_matching: bool = Field(True, alias="FEATURE_FLAG_AI_MATCHING")
    matching_encoder: Literal["use-multilingual-v3", "hashing"] = Field("use-multilingual-v3", alias="MATCHING_ENCODER")

    @field_validator("region", "primary_region", "fly_region")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.strip().lower()

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("primary_url", "public_base_url", "chain_rpc_url", "s3_endpoint_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if URL_SCHEME.match(value) and not value.startswith((*REMOTE_SCHEMES, "file:")):
            raise ValueError("must be a file path, file:…, or libsql://… (Turso)")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, value: str) -> str:
        for net in filter(None, (part.strip() for part in value.split(","))):
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(f"{net!r} is not an IP address or CIDR") from None
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        for origin in filter(None, (part.strip() for part in value.split(","))):
            parts = urlsplit(origin)
            if origin != "*" and (not parts.scheme or not parts.netloc or parts.path or parts.query):
                raise ValueError(f"{origin!r} is not an origin (scheme://host[:port], no path or trailing slash)")
        return value

    @field_validator("usdc_contract_address")
    @classmethod
    def _address(cls, value: str) -> str:
        if value and not EVM_ADDRESS.match(value):
            raise ValueError("must be a 0x-prefixed 20-byte hex address")
        return value

    @field_validator("jwt_keys")
    @classmethod
    def _key_ring(cls, value: str) -> str:
        parse_key_ring(value, "")
        return value

    @property
    def is_primary(self) -> bool:
        """No region configured, or this region is the primary one."""
        return not self.region or not self.primary_region or self.region == self.primary_region

    @property
    def role(self) -> Literal["primary", "edge"]:
        return "primary" if self.is_primary else "edge"

    def require_edge_settings(self) -> None:
        """An edge reads the primary's feed (with the token) and forwards writes to it: it cannot start without."""
        if not self.is_primary and not self.primary_url:
            raise InsecureSettings("an edge needs PRIMARY_URL (where the primary's event feed and writes are)")
        if not self.is_primary and not self.replication_token:
            raise InsecureSettings("an edge needs REPLICATION_TOKEN (the primary's event feed refuses it without)")

    @property
    def region_name(self) -> str:
        return self.region or "local"

    def resolved_database_url(self) -> str:
        return self.database_url or str(self.data_dir / "megilance.db")

    def resolved_read_path(self) -> str:
        """Where an edge keeps its read store (the primary reads its own database)."""
        return self.read_database_path or str(self.data_dir / f"read-{self.region_name}.db")


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with overrides (tests and the CLI pass them); SettingsError names a bad one."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(validation_summary(exc)) from None
    settings.secret_key = ensure_secret_key(settings)
    return settings


def validation_summary(exc: ValidationError) -> str:
    """`PORT: Input should be less than or equal to 65535`, one line per variable joined by `; `.

    The value itself is left out: it may be a secret or carry credentials (a URL with a key).
    """
    problems = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"]) or "settings"
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{name}: {message}")
    return "; ".join(problems)


def ensure_secret_key(settings: Settings) -> str:
    """Refuse a weak key in production; in development generate one and keep it under DATA_DIR."""
    key = settings.secret_key
    if key not in WEAK_SECRETS and len(key) >= MIN_SECRET_LENGTH:
        return key
    if settings.environment == "production":
        raise InsecureSettings(
            f"SECRET_KEY must be set to at least {MIN_SECRET_LENGTH} random characters in production"
        )
    path = settings.data_dir / ".secret_key"
    if path.exists():
        stored = path.read_text().strip()
        if len(stored) >= MIN_SECRET_LENGTH:
            return stored
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key
