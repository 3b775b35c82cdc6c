"""structlog JSON logs: one line per event, with request id, region, route, status and duration."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

REDACTED_KEYS = frozenset(
    {
        "password",
        "current_password",
        "new_password",
        "access_token",
        "refresh_token",
        "secret_key",
        "authorization",
        "token",
        "signature",
    }
)


def redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Never let a secret through, whatever a caller passes."""
    for key in list(event_dict):
        if key.lower() in REDACTED_KEYS:
            event_dict[key] = "[redacted]"
    return event_dict


def logging_enabled(configured: str, level: str) -> bool:
    """Would a line at `level` be written under the configured level? (lets hot paths skip building it)"""
    wanted = logging.getLevelName(configured.upper())
    return not isinstance(wanted, int) or logging.getLevelName(level.upper()) >= wanted


def configure(level: str = "info", stream: object = None) -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
