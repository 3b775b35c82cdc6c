"""The environment the operator CLI is run with in tests: a data directory and nothing from the caller's shell."""

from __future__ import annotations

from pathlib import Path


def cli_env(data_dir: Path) -> dict[str, str | None]:
    return {
        "DATA_DIR": str(data_dir),
        "SECRET_KEY": "s" * 48,
        "ENVIRONMENT": "test",
        "DATABASE_URL": None,
        "REGION": None,
        "FLY_REGION": None,
        "PRIMARY_REGION": None,
        "DB_SYNCHRONOUS": "NORMAL",
    }
