"""Opaque, time-ordered, unguessable ids (UUIDv7 as 32 lowercase hex characters)."""

from __future__ import annotations

import os
import threading
import time

# Random bytes come from the OS in blocks: one getrandom() call per ~400 ids instead of one each.
# (Each call releases the GIL, and on a busy event loop winning it back costs far more than the call.)
_BLOCK = 4096
_lock = threading.Lock()
_pool = b""
_offset = 0


def _random_bytes(n: int) -> bytes:
    global _pool, _offset
    with _lock:
        if _offset + n > len(_pool):
            _pool, _offset = os.urandom(_BLOCK), 0
        chunk = _pool[_offset : _offset + n]
        _offset += n
        return chunk


def new_id() -> str:
    """A UUIDv7: 48 bits of milliseconds, then 74 random bits; sorts by creation time."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(_random_bytes(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a (12 bits)
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b
    return f"{value:032x}"


def is_id(text: str) -> bool:
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)
