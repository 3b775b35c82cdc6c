"""Old event versions are upcast when read, never rewritten in the log."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

# (type, from_version) -> function producing version from_version + 1.
UPCASTERS: dict[tuple[str, int], Upcaster] = {}

LATEST_VERSIONS: dict[str, int] = {}


def upcast(event_type: str, version: int, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    while (step := UPCASTERS.get((event_type, version))) is not None:
        data = step(data)
        version += 1
    return version, data
