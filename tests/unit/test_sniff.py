"""Content sniffing: the type comes from the bytes, strictly, and nothing makes it raise."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.sniff import ALLOWED_CONTENT_TYPES, SNIFF_BYTES, sniff_content_type


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def make_png() -> bytes:
    """A complete, valid 1x1 RGBA PNG."""
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    idat = zlib.compress(b"\x00\xff\x00\x00\xff")
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


# A complete 1x1 GIF89a.
GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")
GIF87 = b"GIF87a" + GIF[6:]
# JFIF and Exif JPEG headers as cameras/editors write them (SOI + APP0 / APP1).
JPEG_JFIF = bytes.fromhex("ffd8ffe000104a46494600010101004800480000ffdb004300") + bytes(64)
JPEG_EXIF = bytes.fromhex("ffd8ffe1001845786966000049492a00080000000000000000000000") + bytes(64)
# Lossy (VP8), lossless (VP8L) and extended (VP8X) WebP headers.
WEBP_VP8 = (
    b"RIFF"
    + struct.pack("<I", 36)
    + b"WEBPVP8 "
    + struct.pack("<I", 24)
    + bytes.fromhex("300100009d012a0100010002003425a400037000feff940000")
)
WEBP_VP8L = (
    b"RIFF"
    + struct.pack("<I", 26)
    + b"WEBPVP8L"
    + struct.pack("<I", 13)
    + bytes.fromhex("2f00000010071011118888fe0700")
)
WEBP_VP8X = b"RIFF" + struct.pack("<I", 60) + b"WEBPVP8X" + struct.pack("<I", 10) + bytes(10)
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (make_png(), "image/png"),
        (JPEG_JFIF, "image/jpeg"),
        (JPEG_EXIF, "image/jpeg"),
        (WEBP_VP8, "image/webp"),
        (WEBP_VP8L, "image/webp"),
        (WEBP_VP8X, "image/webp"),
        (GIF, "image/gif"),
        (GIF87, "image/gif"),
        (PDF, "application/pdf"),
        (b"%PDF-2.0\n", "application/pdf"),
    ],
    ids=[
        "png",
        "jpeg-jfif",
        "jpeg-exif",
        "webp-vp8",
        "webp-vp8l",
        "webp-vp8x",
        "gif89a",
        "gif87a",
        "pdf",
        "pdf2",
    ],
)
def test_real_magic_bytes_accepted(content: bytes, expected: str) -> None:
    assert sniff_content_type(content) == expected
    assert sniff_content_type(content[:SNIFF_BYTES]) == expected
    assert sniff_content_type(content + bytes(10_000)) == expected  # longer input: only the head matters
    assert expected in ALLOWED_CONTENT_TYPES


def test_allowed_content_types() -> None:
    assert sorted(ALLOWED_CONTENT_TYPES) == [
        "application/pdf",
        "image/gif",
        "image/jpeg",
        "image/png",
        "image/webp",
    ]
    assert isinstance(ALLOWED_CONTENT_TYPES, frozenset)
    assert SNIFF_BYTES >= 16


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>",
        b"<html><img src=x onerror=alert(1)>",
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        b'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>',
        b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(48) + b"PE\x00\x00",
        b"\x7fELF\x02\x01\x01\x00" + bytes(56),
        b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(40),
        b"PK\x05\x06" + bytes(18),  # empty zip
        b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00",  # RIFF, but audio
        b"RIFF\x24\x00\x00\x00AVI LIST",  # RIFF, but video
        b"RIFF\x24\x00\x00\x00WEB",  # truncated WebP
        b"\x89PNG",  # truncated PNG signature
        b"\x89PNG\r\n\x1a",  # 7 of 8 signature bytes
        b"\x89PNX\r\n\x1a\n\x00\x00\x00\x0dIHDR",  # corrupted signature
        b"GIF8",
        b"GIF90a\x01\x00\x01\x00",  # no such GIF version
        b"%PDF",  # no dash
        b"%PDF1.4",
        b"\xef\xbb\xbf%PDF-1.4\n",  # BOM before the header (filetype would accept it)
        b" %PDF-1.4\n",  # not at offset 0
        b"\xff\xd8",  # truncated JPEG SOI
        b"Hello, this is a text file pretending to be image.png",
        b"\x00" * 512,
        b'{"json": true}',
        b"II*\x00\x08\x00\x00\x00",  # TIFF: an image, but not an allowed one
        b"BM\x3a\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00",  # BMP
        b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00",  # AVIF
    ],
    ids=lambda c: repr(c[:14]),
)
def test_rejected(content: bytes) -> None:
    assert sniff_content_type(content) is None


@pytest.mark.parametrize("name", ["photo.png", "invoice.pdf", "evil.exe", "page.html", "archive.zip", "noext"])
def test_png_is_png_whatever_it_is_called(tmp_path: Path, name: str) -> None:
    # Only the content counts: a PNG saved under any name sniffs as PNG, and HTML named "x.png" does not.
    path = tmp_path / name
    path.write_bytes(make_png())
    with path.open("rb") as fh:
        assert sniff_content_type(fh.read(SNIFF_BYTES)) == "image/png"
    fake = tmp_path / "photo.png"
    fake.write_bytes(b"<html>" + make_png())
    assert sniff_content_type(fake.read_bytes()[:SNIFF_BYTES]) is None


def test_accepts_bytearray_and_memoryview_heads() -> None:
    png = make_png()
    assert sniff_content_type(bytearray(png)) == "image/png"  # type: ignore[arg-type]
    assert sniff_content_type(memoryview(png)) == "image/png"  # type: ignore[arg-type]


@given(st.binary(max_size=2 * SNIFF_BYTES))
def test_random_bytes_never_raise(data: bytes) -> None:
    result = sniff_content_type(data)
    assert result is None or result in ALLOWED_CONTENT_TYPES


@given(st.binary(min_size=0, max_size=64))
def test_no_false_positive_without_signature(data: bytes) -> None:
    result = sniff_content_type(data)
    signatures = {
        "image/png": data.startswith(b"\x89PNG\r\n\x1a\n"),
        "image/jpeg": data.startswith(b"\xff\xd8\xff"),
        "image/webp": data[:4] == b"RIFF" and data[8:12] == b"WEBP",
        "image/gif": data[:6] in (b"GIF87a", b"GIF89a"),
        "application/pdf": data.startswith(b"%PDF-"),
    }
    if result is not None:
        assert signatures[result]
    else:
        # webp additionally needs a VP8* chunk (via filetype); every other signature is decisive.
        assert not any(ok for mime, ok in signatures.items() if mime != "image/webp")


@given(st.sampled_from([make_png(), JPEG_JFIF, WEBP_VP8, GIF, PDF]), st.binary(max_size=600))
def test_trailing_bytes_do_not_matter(header: bytes, tail: bytes) -> None:
    assert sniff_content_type(header + tail) == sniff_content_type(header)
