"""The event log: append with an expected version, load a stream, read after a position.

The whole concurrency story is `UNIQUE(stream_id, version)`: a stale writer collides and gets a
VersionConflict. Uniqueness across streams (e-mails, tx hashes) is claimed in `claims`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import Any

import orjson

from core.clock import Clock, rfc3339_ms
from core.credentials import CredentialTable
from core.db import Connection, is_unique_violation, unique_violation_target
from core.errors import Conflict, VersionConflict
from core.events.base import Event, StoredEvent
from core.events.upcasting import UPCASTERS, upcast
from core.password_resets import PasswordResetTable
from core.refresh_tokens import RefreshTokenTable
from core.wallet_nonces import WalletNonceTable

COLUMNS = "position, stream_id, stream_type, version, type, schema_version, data, meta, recorded_at"
INSERT_EVENT = (
    "INSERT INTO events (stream_id, stream_type, version, type, schema_version, data, meta, recorded_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
SELECT_STREAM = f"SELECT {COLUMNS} FROM events WHERE stream_id = ? ORDER BY version"
SELECT_STREAM_VERSION = "SELECT MAX(version) FROM events WHERE stream_id = ?"
SELECT_AFTER = f"SELECT {COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?"
# The same rows with NULL for meta, for replays: projectors never read it, so it is not even fetched.
BARE_COLUMNS = "position, stream_id, stream_type, version, type, schema_version, data, NULL, recorded_at"
SELECT_AFTER_BARE = f"SELECT {BARE_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?"
SELECT_HEAD = "SELECT COALESCE(MAX(position), 0) FROM events"
INSERT_CLAIM = "INSERT INTO claims (kind, key, owner, claimed_at) VALUES (?, ?, ?, ?)"
SELECT_CLAIM = "SELECT owner FROM claims WHERE kind = ? AND key = ?"
DELETE_CLAIM = "DELETE FROM claims WHERE kind = ? AND key = ? AND owner = ?"
SELECT_CLAIMS_FROM = "SELECT owner FROM claims WHERE kind = ? AND key >= ? AND key < ?"


def row_to_event(row: Sequence[Any], meta: bool = True) -> StoredEvent:
    """An event from its COLUMNS (or BARE_COLUMNS) row."""
    position, stream_id, stream_type, stream_version, event_type, schema_version, data, meta_json, recorded_at = row
    payload = orjson.loads(data)
    if UPCASTERS:  # checked here: a replay decodes every event, and most logs have nothing to upcast
        schema_version, payload = upcast(event_type, schema_version, payload)
    return StoredEvent(
        position,
        stream_id,
        stream_type,
        stream_version,
        event_type,
        schema_version,
        payload,
        orjson.loads(meta_json) if meta and meta_json else {},
        recorded_at,
    )


def load_stream(conn: Connection, stream_id: str) -> list[StoredEvent]:
    return [row_to_event(row) for row in conn.execute(SELECT_STREAM, (stream_id,)).fetchall()]


def stream_version(conn: Connection, stream_id: str) -> int:
    row = conn.execute(SELECT_STREAM_VERSION, (stream_id,)).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def read_after(conn: Connection, position: int, limit: int) -> list[StoredEvent]:
    return [row_to_event(row) for row in conn.execute(SELECT_AFTER, (position, limit)).fetchall()]


def decode_bare(rows: Sequence[Sequence[Any]]) -> Iterator[StoredEvent]:
    """Rows of SELECT_AFTER_BARE as events, when nothing needs upcasting: `row_to_event` inlined, about
    a quarter cheaper per event (a replay decodes the whole log; docs/performance.md). Lazily:
    each event is applied while its dict is still in the CPU cache."""
    loads, new = orjson.loads, tuple.__new__
    for position, stream_id, stream_type, version, event_type, schema_version, data, _meta, recorded_at in rows:
        yield new(
            StoredEvent,
            (position, stream_id, stream_type, version, event_type, schema_version, loads(data), {}, recorded_at),
        )


def iter_all(conn: Connection, batch: int = 5000, *, meta: bool = True) -> Iterator[StoredEvent]:
    """Every event in order; `meta=False` leaves each event's metadata out ({}), as projectors never read it."""
    position = 0
    sql = SELECT_AFTER if meta else SELECT_AFTER_BARE
    while rows := conn.execute(sql, (position, batch)).fetchall():
        if meta or UPCASTERS:
            yield from (row_to_event(row, meta) for row in rows)
        else:
            yield from decode_bare(rows)
        position = rows[-1][0]


def read_until(conn: Connection, last: int, batch: int = 5000, *, meta: bool = True) -> Iterator[StoredEvent]:
    """Every event up to and including `last`, in order."""
    for event in iter_all(conn, batch, meta=meta):
        if event.position > last:
            return
        yield event


FEED_COLUMNS = "position, stream_id, stream_type, version, type, schema_version, data, recorded_at"
SELECT_FEED = f"SELECT {FEED_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?"


def read_feed(conn: Connection, position: int, limit: int) -> list[tuple[Any, ...]]:
    """Raw rows for the replication feed (data stays JSON text: it is relayed, not parsed)."""
    return [tuple(row) for row in conn.execute(SELECT_FEED, (position, limit)).fetchall()]


def feed_event(item: dict[str, Any]) -> StoredEvent:
    """An event as received from the primary's feed, upcast like one read from the log."""
    version, data = upcast(item["type"], item.get("schema_version", 1), item["data"])
    return StoredEvent(
        item["position"],
        item["stream_id"],
        item.get("stream_type", ""),
        item["version"],
        item["type"],
        version,
        data,
        {},
        item["recorded_at"],
    )


def head(conn: Connection) -> int:
    return int(conn.execute(SELECT_HEAD).fetchone()[0])


def append(
    conn: Connection,
    stream_id: str,
    stream_type: str,
    expected_version: int,
    events: Sequence[Event],
    meta: dict[str, Any],
    recorded_at: str,
) -> list[StoredEvent]:
    """Append after `expected_version`; raise VersionConflict if someone else got there first."""
    meta_json = orjson.dumps(meta).decode()
    stored: list[StoredEvent] = []
    for offset, event in enumerate(events, start=1):
        data = event.to_data()
        version = expected_version + offset
        try:
            cursor = conn.execute(
                INSERT_EVENT,
                (
                    stream_id,
                    stream_type,
                    version,
                    event.TYPE,
                    event.VERSION,
                    orjson.dumps(data).decode(),
                    meta_json,
                    recorded_at,
                ),
            )
        except Exception as exc:
            if is_unique_violation(exc):
                raise VersionConflict(f"{stream_type} {stream_id} was changed by another request; retry") from exc
            raise
        position = int(cursor.lastrowid or 0)
        stored.append(
            StoredEvent(position, stream_id, stream_type, version, event.TYPE, event.VERSION, data, meta, recorded_at)
        )
    return stored


def claim(
    conn: Connection, kind: str, key: str, owner: str, at: str, code: str = "conflict", detail: str | None = None
) -> None:
    """Reserve a key that must be unique across streams; Conflict(code) when taken."""
    try:
        conn.execute(INSERT_CLAIM, (kind, key, owner, at))
    except Exception as exc:
        if is_unique_violation(exc) and "claims" in unique_violation_target(exc):
            raise Conflict(detail or f"That {kind.replace('_', ' ')} is already in use", code) from exc
        raise


def claim_owner(conn: Connection, kind: str, key: str) -> str | None:
    row = conn.execute(SELECT_CLAIM, (kind, key)).fetchone()
    return str(row[0]) if row else None


def claim_owners(conn: Connection, kind: str, prefix: str) -> list[str]:
    """The owners of every claim of `kind` whose key starts with `prefix` (which ends in ':')."""
    # ':' sorts just below ';', so this range is every key with the "<...>:" prefix.
    upper = prefix[:-1] + ";"
    return [str(owner) for (owner,) in conn.execute(SELECT_CLAIMS_FROM, (kind, prefix, upper)).fetchall()]


def release_claim(conn: Connection, kind: str, key: str, owner: str) -> None:
    conn.execute(DELETE_CLAIM, (kind, key, owner))


class UnitOfWork:
    """What a command handler may do inside the writer's transaction: load, append, claim, and reach the
    write-side tables through their typed objects (handlers never touch `conn`: `tests/unit/test_command_purity.py`)."""

    def __init__(self, conn: Connection, meta: dict[str, Any], clock: Clock) -> None:
        self.conn = conn
        self.meta = meta
        self.clock = clock
        self.now = clock.now()
        self.new_events: list[StoredEvent] = []

    def load(self, stream_id: str) -> list[StoredEvent]:
        return load_stream(self.conn, stream_id)

    def append(self, stream_id: str, stream_type: str, expected_version: int, events: Sequence[Event]) -> None:
        stored = append(self.conn, stream_id, stream_type, expected_version, events, self.meta, rfc3339_ms(self.now))
        self.new_events.extend(stored)

    def version_of(self, stream_id: str) -> int:
        """The stream's current version, counting what this unit of work already appended."""
        pending = [e.version for e in self.new_events if e.stream_id == stream_id]
        return max(pending) if pending else stream_version(self.conn, stream_id)

    def claim(self, kind: str, key: str, owner: str, code: str = "conflict", detail: str | None = None) -> None:
        claim(self.conn, kind, key, owner, rfc3339_ms(self.now), code, detail)

    def claim_owner(self, kind: str, key: str) -> str | None:
        return claim_owner(self.conn, kind, key)

    def claim_owners(self, kind: str, prefix: str) -> list[str]:
        return claim_owners(self.conn, kind, prefix)

    def release_claim(self, kind: str, key: str, owner: str) -> None:
        release_claim(self.conn, kind, key, owner)

    # Built on first use: most commands reach none of these tables.
    @cached_property
    def refresh_tokens(self) -> RefreshTokenTable:
        return RefreshTokenTable(self.conn)

    @cached_property
    def wallet_nonces(self) -> WalletNonceTable:
        return WalletNonceTable(self.conn)

    @cached_property
    def password_resets(self) -> PasswordResetTable:
        return PasswordResetTable(self.conn)

    @cached_property
    def credentials(self) -> CredentialTable:
        return CredentialTable(self.conn)

    @property
    def last_position(self) -> int:
        return self.new_events[-1].position if self.new_events else 0
