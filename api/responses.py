"""JSON responses (orjson) and the one function that builds every error body."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_body(detail: str, error_type: str, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """`{"detail", "error_type"}` plus `errors` for validation: the API's only error shape."""
    body: dict[str, Any] = {"detail": detail, "error_type": error_type}
    if errors is not None:
        body["errors"] = errors
    return body


def error_response(
    status: int,
    detail: str,
    error_type: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSON:
    return JSON(error_body(detail, error_type, errors), status_code=status, headers=headers)
