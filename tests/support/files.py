"""Upload payloads: the real leading bytes of each accepted file type, padded with noise."""

from __future__ import annotations

import os

KB = 1024


def body_of(magic: bytes, size: int) -> bytes:
    return magic + os.urandom(size - len(magic))


# Real leading bytes of each accepted type, padded with noise past one 64 KiB chunk.
SAMPLES: dict[str, bytes] = {
    "image/png": body_of(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", 150 * KB),
    "image/jpeg": body_of(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01", 150 * KB),
    "image/webp": body_of(b"RIFF\x24\x58\x02\x00WEBPVP8 \x18\x58\x02\x00", 150 * KB),
    "image/gif": body_of(b"GIF89a\x01\x00\x01\x00\x80\x00\x00", 150 * KB),
    "application/pdf": body_of(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", 150 * KB),
}
PNG = SAMPLES["image/png"]
