"""Domain errors and framework errors → HTTP, in one table."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import Response

from api.responses import error_response
from core import errors as e

STATUS: dict[type[e.DomainError], int] = {
    e.BadRequest: 400,
    e.Unauthenticated: 401,
    e.Forbidden: 403,
    e.NotFound: 404,
    e.Conflict: 409,
    e.PreconditionFailed: 412,
    e.PayloadTooLarge: 413,
    e.UnsupportedMediaType: 415,
    e.ValidationFailed: 422,
    e.PaymentVerificationFailed: 422,
    e.RateLimited: 429,
    e.ServiceUnavailable: 503,
}

HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    412: "precondition_failed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    503: "service_unavailable",
}


# What a 422 without field errors of its own names in `errors` (every 422 has them); else the body.
LOCATIONS: dict[str, list[str | int]] = {
    "idempotency_key_reused": ["header", "Idempotency-Key"],
    "invalid_signature": ["body", "signature"],
    "invalid_nonce": ["body", "message"],
    "wallet_not_linked": ["body", "transaction_hash"],
}


def status_for(exc: e.DomainError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


# A 503 is a passing state (a restart, a database server that is coming back): a client may retry soon.
SERVICE_RETRY_AFTER_S = "1"


def field_errors(exc: e.DomainError, status: int) -> list[dict[str, Any]] | None:
    """`errors` of the body: the error's own, or for a 422 without any, one naming where the request failed."""
    if exc.errors is not None or status != 422:
        return exc.errors
    if isinstance(exc, e.PaymentVerificationFailed):
        loc: list[str | int] = ["body", "transaction_hash"]
    else:
        loc = LOCATIONS.get(exc.code, ["body"])
    return [{"loc": loc, "msg": exc.detail}]


def error_for(exc: Exception) -> Response | None:
    """The answer for a domain or HTTP error; None for anything else (a bug: the caller answers 500)."""
    if isinstance(exc, e.DomainError):
        status = status_for(exc)
        headers = None
        if isinstance(exc, e.RateLimited):
            headers = {"Retry-After": str(exc.retry_after)}
        elif isinstance(exc, e.ServiceUnavailable):
            headers = {"Retry-After": SERVICE_RETRY_AFTER_S}
        return error_response(status, exc.detail, exc.code, field_errors(exc, status), headers)
    if isinstance(exc, HTTPException):
        detail = {404: "No such resource", 405: "Method not allowed on this resource"}.get(exc.status_code, exc.detail)
        return error_response(
            exc.status_code, detail, HTTP_CODES.get(exc.status_code, "error"), headers=dict(exc.headers or {})
        )
    return None


def internal_error() -> Response:
    return error_response(500, "The server failed to handle this request; it has been logged", "internal_error")
