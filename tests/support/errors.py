"""The one error shape every refusal has: `{"detail", "error_type"}`, plus `errors` on a 422."""

from __future__ import annotations

import re
from typing import Any

Json = dict[str, Any]


def assert_error(response: Any, status: int, error_type: str | None = None) -> Json:
    """The answer is `status` with the error shape (and `error_type`, if given); returns the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("detail"), str) and body["detail"], body
    assert isinstance(body.get("error_type"), str) and body["error_type"], body
    if status == 422:
        assert set(body) == {"detail", "error_type", "errors"}, body
        assert isinstance(body["errors"], list) and body["errors"], body
        for item in body["errors"]:
            assert set(item) == {"loc", "msg"}, item
            assert isinstance(item["loc"], list) and all(isinstance(part, (str, int)) for part in item["loc"])
            assert isinstance(item["msg"], str) and item["msg"], item
    else:
        assert set(body) == {"detail", "error_type"}, body
    if error_type is not None:
        assert body["error_type"] == error_type, body
    return body


def assert_edge_headers(response: Any) -> None:
    """The headers every answer of a single-region app carries, errors included."""
    headers = response.headers
    assert re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", headers.get("x-request-id", ""))
    assert headers.get("x-region") == "local"
    assert re.fullmatch(r"\d+", headers.get("x-consistency-token", ""))
    assert headers.get("x-content-type-options") == "nosniff"
    assert headers.get("x-frame-options") == "DENY"
    assert "frame-ancestors 'none'" in headers.get("content-security-policy", "")


def assert_error_with_headers(response: Any, status: int, error_type: str | None = None) -> Json:
    """`assert_error`, and the answer still carries the app's usual headers."""
    body = assert_error(response, status, error_type)
    assert_edge_headers(response)
    return body
