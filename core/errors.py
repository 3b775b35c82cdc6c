"""Domain errors: what a rule refused, with a stable code. No HTTP here; edge/ maps classes to statuses."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error a caller may see; `code` becomes the API's `error_type`."""

    code = "bad_request"

    def __init__(self, detail: str, code: str | None = None, *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.errors = errors


class BadRequest(DomainError):
    code = "bad_request"


class ValidationFailed(DomainError):
    code = "validation_failed"


class Unauthenticated(DomainError):
    code = "unauthenticated"


class Forbidden(DomainError):
    code = "forbidden"


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    """A rule about current state said no (duplicate, wrong status, balance exceeded)."""

    code = "conflict"


class InvalidState(Conflict):
    code = "invalid_state"


class VersionConflict(Conflict):
    """Another writer appended to the stream first (optimistic concurrency lost)."""

    code = "version_conflict"


class PreconditionFailed(DomainError):
    code = "precondition_failed"


class PayloadTooLarge(DomainError):
    code = "payload_too_large"


class UnsupportedMediaType(DomainError):
    code = "unsupported_media_type"


class PaymentVerificationFailed(DomainError):
    """The chain does not show the transfer the payment claims (tx_not_found, wrong_sender, ...)."""

    code = "payment_verification_failed"


class RateLimited(DomainError):
    code = "rate_limited"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class ServiceUnavailable(DomainError):
    """A dependency (chain RPC, primary region) cannot answer now; nothing was changed."""

    code = "service_unavailable"
