"""Signed list cursors: the list's own keyset cursor, then a dot and an HMAC of it, so a client cannot make one up.

The read side (`queries.pagination`) knows nothing of keys: cursors are sealed on the way out of `cached_page` and
opened on the way into the list's query model, with a key derived from SECRET_KEY (shared by every node, so a
cursor one region issued pages on in any other).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from core.errors import ValidationFailed
from queries.pagination import bad_cursor

TAG_BYTES = 12  # 96 bits: forging one takes 2**95 tries on average, each a request


class CursorSigner:
    """Seals and opens cursors with one key."""

    def __init__(self, secret_key: str) -> None:
        self._key = hmac.new(secret_key.encode(), b"megilance/cursors/v1", hashlib.sha256).digest()

    def _tag(self, inner: str) -> str:
        digest = hmac.new(self._key, inner.encode(), hashlib.sha256).digest()[:TAG_BYTES]
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def seal(self, inner: str | None) -> str | None:
        return None if inner is None else f"{inner}.{self._tag(inner)}"

    def open(self, cursor: str) -> str:
        """The list's cursor inside a sealed one; 422 (like any other invalid parameter) when the seal is wrong."""
        inner, dot, tag = cursor.rpartition(".")
        if not dot or not inner or not hmac.compare_digest(tag.encode(), self._tag(inner).encode()):
            raise ValidationFailed("The cursor is not one this API issued", errors=[bad_cursor()])
        return inner
