"""A response cache for reads, valid only at the read-store position it was computed at.

A GET served at position p may be answered with bytes computed at p: the store has not changed
in between, so the answer is the same. Any applied event moves the position and so retires every
entry at once; no invalidation logic can go stale. Auth and visibility are checked before the
lookup, and the key names everything the answer depends on (path, query, viewer).

Only entries at the newest position are kept (an older one can never be served again): the first entry
stored at a newer position drops the rest. The entries of one position are bounded twice, by their number
and by the bytes of their bodies (each distinct query string is a new key, and a page can be a megabyte).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from starlette.responses import Response

from api.routing import Call
from api.scope import POSITION_KEY
from core.db import Connection
from core.settings import Settings

MAX_ENTRIES: int = Settings.model_fields["response_cache_entries"].default  # RESPONSE_CACHE_ENTRIES's default
MAX_BYTES = 64 * 1024 * 1024
Build = Callable[[Connection], tuple[Any, dict[str, str]]]


RawHeaders = list[tuple[bytes, bytes]]


class CachedResponse(Response):
    """A 200 JSON answer whose headers were put in ASGI form once, when it was cached."""

    def __init__(self, body: bytes, raw_headers: RawHeaders) -> None:
        self.status_code = 200
        self.body = body
        self.background = None
        self.raw_headers = list(raw_headers)  # the middleware appends to it: never share the cached list


def raw_headers(body: bytes, headers: dict[str, str]) -> RawHeaders:
    return [
        (b"content-length", str(len(body)).encode()),
        (b"content-type", b"application/json"),
        *((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()),
    ]


class ResponseCache:
    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self._entries: dict[tuple[Any, ...], tuple[int, bytes, RawHeaders]] = {}
        self._position = 0  # of every entry held
        self._max = max_entries
        self._max_bytes = max_bytes
        self.size_bytes = 0  # the bodies held
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        """Forget every answer (the store was rebuilt: a position no longer names the same state)."""
        self._entries.clear()
        self.size_bytes = 0

    def get(self, key: tuple[Any, ...], position: int) -> tuple[bytes, RawHeaders] | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] != position:
            self.misses += 1
            return None
        self.hits += 1
        return entry[1], entry[2]

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, key: tuple[Any, ...], position: int, body: bytes, headers: RawHeaders) -> None:
        size = len(body)
        if size > self._max_bytes or position < self._position or not self._max:  # too large, stale, or no cache
            return
        if position > self._position:  # every entry held is at an older position: none can be served again
            self._entries.clear()
            self.size_bytes, self._position = 0, position
        replaced = self._entries.pop(key, None)
        if replaced is not None:
            self.size_bytes -= len(replaced[1])
        if len(self._entries) >= self._max or self.size_bytes + size > self._max_bytes:
            self._entries.clear()
            self.size_bytes = 0
        self._entries[key] = (position, body, headers)
        self.size_bytes += size


async def cached_read(call: Call, key: tuple[Any, ...], build: Build) -> Response:
    """Answer from the cache at the current position, or read, serialize, remember and answer.

    The answer's X-Consistency-Token is raised to the position it was served at: a read that waited for a
    reader thread while writes committed shows them, and a client sending its token elsewhere must see them too.
    """
    cache: ResponseCache = call.request.app.state.cache
    tracker = call.runtime.tracker
    position = tracker.position  # read before the query: the answer is at least this new
    hit = cache.get(key, position)
    if hit is None:
        value, headers = await call.runtime.read_bounded(build)
        body = orjson.dumps(value)
        hit = (body, raw_headers(body, headers))
        cache.put(key, position, *hit)
        position = tracker.position  # what committed while the query waited for its thread
    scope = call.request.scope
    scope[POSITION_KEY] = max(scope[POSITION_KEY], position)
    return CachedResponse(*hit)


def etag(version: int) -> dict[str, str]:
    return {"ETag": f'"{version}"'}


async def cached_view(call: Call, key: tuple[Any, ...], get: Callable[[Connection], tuple[Any, int]]) -> Response:
    """One resource and its version (the ETag), through the cache."""

    def build(conn: Connection) -> tuple[Any, dict[str, str]]:
        view, version = get(conn)
        return view, etag(version)

    return await cached_read(call, key, build)


async def cached_page(
    call: Call, key: tuple[Any, ...], page: Callable[[Connection], tuple[list[Any], str | None]]
) -> Response:
    """One page of a list (`{"items", "next_cursor"}`), through the cache."""

    def build(conn: Connection) -> tuple[Any, dict[str, str]]:
        items, cursor = page(conn)
        return {"items": items, "next_cursor": call.runtime.cursors.seal(cursor)}, {}

    return await cached_read(call, key, build)
