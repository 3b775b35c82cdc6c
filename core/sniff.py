"""Content sniffing for uploads: the type is judged from the bytes, never from the client's name or claim."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import filetype

# How many leading bytes `sniff_content_type` wants. Every check below needs far fewer (16 at most), but
# 261 is what `filetype` documents as enough for any of its matchers, so callers can keep one constant.
SNIFF_BYTES: int = 261

_PNG = "image/png"
_JPEG = "image/jpeg"
_WEBP = "image/webp"
_GIF = "image/gif"
_PDF = "application/pdf"

ALLOWED_CONTENT_TYPES: frozenset[str] = frozenset({_PNG, _JPEG, _WEBP, _GIF, _PDF})


def _strict_png(head: bytes) -> bool:
    # The full 8-byte signature; filetype only looks at the first 4.
    return head.startswith(b"\x89PNG\r\n\x1a\n")


def _strict_jpeg(head: bytes) -> bool:
    # SOI marker followed by the start of another marker (filetype checks the same).
    return head.startswith(b"\xff\xd8\xff")


def _strict_webp(head: bytes) -> bool:
    # RIFF <4-byte size> WEBP; filetype additionally insists on a VP8/VP8L/VP8X chunk next.
    return len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP"


def _strict_gif(head: bytes) -> bool:
    # Only the two real versions; filetype accepts any "GIF" prefix.
    return head[:6] in (b"GIF87a", b"GIF89a")


def _strict_pdf(head: bytes) -> bool:
    # "%PDF-" at offset 0; filetype also accepts "%PDF" without the dash and after a UTF-8 BOM.
    return head.startswith(b"%PDF-")


# Each accepted type must satisfy both filetype's matcher and the stricter local check.
_CHECKS: tuple[tuple[str, Callable[[bytes], bool]], ...] = (
    (_PNG, _strict_png),
    (_JPEG, _strict_jpeg),
    (_WEBP, _strict_webp),
    (_GIF, _strict_gif),
    (_PDF, _strict_pdf),
)
_MATCHERS: dict[str, Any] = {mime: filetype.get_type(mime=mime) for mime, _ in _CHECKS}
assert all(m is not None for m in _MATCHERS.values()), "filetype lacks a matcher for an allowed type"


def sniff_content_type(head: bytes) -> str | None:
    """Return the allowed MIME type `head` (the content's first SNIFF_BYTES bytes) starts with, else None."""
    buf = bytes(head[:SNIFF_BYTES])
    for mime, strict in _CHECKS:
        if strict(buf) and bool(_MATCHERS[mime].match(bytearray(buf))):
            return mime
    return None
