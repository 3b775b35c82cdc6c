"""Opaque keyset cursors: the list that issued them and the last row's sort key, never an OFFSET."""

from __future__ import annotations

import base64
import binascii

import orjson

from core.errors import ValidationFailed


def encode_cursor(name: str, *key: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([name, *key])).decode().rstrip("=")


def decode_cursor(cursor: str, name: str, arity: int) -> list[str]:
    """The sort key in a cursor the list `name` issued; another list's cursor is refused like a made-up one.

    Every list sorts by id, so a key is a string: a number (which SQLite could not even bind beyond 64 bits)
    was never issued."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        raise ValidationFailed("The cursor is not one this API issued", errors=[bad_cursor()]) from exc
    if (
        not isinstance(key, list)
        or len(key) != arity + 1
        or key[0] != name
        or not all(isinstance(k, str) for k in key[1:])
    ):
        raise ValidationFailed("The cursor is not one this API issued for this list", errors=[bad_cursor()])
    return key[1:]


def bad_cursor() -> dict[str, object]:
    return {"loc": ["query", "cursor"], "msg": "invalid cursor"}


def page(
    rows: list[tuple[object, ...]], limit: int, key: tuple[int, ...], name: str
) -> tuple[list[tuple[object, ...]], str | None]:
    """Rows were fetched with LIMIT limit+1; cut to `limit` and make list `name`'s next cursor from `key` columns."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, encode_cursor(name, *(last[i] for i in key))
