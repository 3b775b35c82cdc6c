"""Opaque, time-ordered, unguessable ids (UUIDv7 as 32 lowercase hex characters)."""

from __future__ import annotations

import os
import time


def new_id() -> str:
    """A UUIDv7: 48 bits of milliseconds, then 74 random bits; sorts by creation time."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a (12 bits)
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b
    return f"{value:032x}"


def is_id(text: str) -> bool:
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)
