"""A primary whose log lives on a libSQL server: a local working copy that ships its log writes at COMMIT.

The writer runs each group-commit batch on a local SQLite file of the same schema, exactly as an
embedded primary does. `MirroredConnection` records the statements that write the log's tables (never
the read models) and, at `COMMIT`, sends them to the server as one transaction in one round trip, led
by a claim on the next number of `log_commits`. Only when the server has committed does the local
transaction commit; if the server refuses or cannot be reached, the caller rolls the local one back,
so nothing is half applied. Events carry explicit positions on the server, and a writer whose copy is
behind (another writer got there first) fails on a primary key: `CopyStale`. `RemoteLog.pull` then
brings the copy level with the server before the batch runs again.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from core.db import is_unique_violation
from core.errors import ServiceUnavailable
from core.hrana import HranaAuthError, HranaClient, HranaError, HranaUnavailable
from core.store import COLUMNS, INSERT_EVENT

log = structlog.get_logger("mirror")

INSERT_EVENT_AT = (
    "INSERT INTO events (position, stream_id, stream_type, version, type, schema_version, data, meta, recorded_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SELECT_SEQ = "SELECT COALESCE(MAX(seq), 0) FROM log_commits"
INSERT_COMMIT = "INSERT INTO log_commits (seq, committed_at) VALUES (?, ?)"
PRUNE_COMMITS = "DELETE FROM log_commits WHERE seq <= ?"
SELECT_HEAD = "SELECT COALESCE(MAX(position), 0) FROM events"
SELECT_EVENT_KEY = "SELECT stream_id, version FROM events WHERE position = ?"
SELECT_EVENTS_AFTER = f"SELECT {COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?"
KEPT_COMMITS = 100
PULL_PAGE = 2000

WRITE = re.compile(
    r"^\s*(?:INSERT|REPLACE|UPDATE|DELETE)(?:\s+OR\s+\w+)?(?:\s+INTO|\s+FROM)?\s+([A-Za-z_][A-Za-z0-9_]*)", re.I
)
CONTROL = {"BEGIN": "begin", "COMMIT": "commit", "END": "commit", "ROLLBACK": "rollback", "SAVEPOINT": "savepoint"}
MAX_CACHED_KINDS = 4096


class RemoteUnavailable(ServiceUnavailable):
    """The libSQL server holding the log could not be reached, or refused the write; nothing was saved."""

    code = "service_unavailable"


class CopyStale(RemoteUnavailable):
    """The server's log has writes this node's copy lacks (another writer, or an outcome never heard)."""


class CopyDiverged(RuntimeError):
    """The local copy holds events the server does not: it belongs to another database and must be rebuilt."""


def statement_kind(sql: str, log_tables: frozenset[str]) -> str:
    """`begin`, `commit`, `rollback`, `rollback_to`, `savepoint`, `release`, `log` (writes a log table) or ``."""
    words = sql.lstrip().split(None, 2)
    first = words[0].upper() if words else ""
    if first == "ROLLBACK" and len(words) > 1 and words[1].upper() == "TO":
        return "rollback_to"
    if first == "RELEASE":
        return "release"
    if first in CONTROL:
        return CONTROL[first]
    match = WRITE.match(sql)
    return "log" if match and match.group(1).lower() in log_tables else ""


@dataclass
class RemoteLog:
    """The server's side of the log: migrations, shipping a transaction, and bringing a copy level with it."""

    client: HranaClient
    log_tables: frozenset[str]
    synced: bool = False  # the local copy was level with the server when last checked, and nothing failed since
    last_error: str = ""
    batches: int = field(default=0)

    def ship(self, statements: list[tuple[str, Sequence[Any]]]) -> None:
        try:
            self.client.transaction(statements)
        except HranaError as exc:
            self.synced = False
            if is_unique_violation(exc):
                raise CopyStale("Another writer changed the log first; retry") from exc
            self.last_error = str(exc)
            log.error("remote_write_refused", error=str(exc), server=self.client.endpoint.label)
            raise RemoteUnavailable("The database server refused the change; nothing was saved") from exc
        except HranaUnavailable as exc:
            self.synced = False
            self.last_error = str(exc)
            log.warning("remote_unavailable", error=str(exc))
            raise RemoteUnavailable("The database server cannot be reached; nothing was saved, retry shortly") from exc
        self.batches += 1
        self.last_error = ""

    def pull(self, local: Any) -> int:
        """Copy what the server has and `local` lacks; returns the events added. Run outside a transaction."""
        local = getattr(local, "local", local)  # the plain connection under a MirroredConnection: nothing to ship
        local_head = _head(local)
        seq, head, key = self.client.query_many(
            [(SELECT_SEQ, ()), (SELECT_HEAD, ()), (SELECT_EVENT_KEY, (local_head,))]
        )
        server_seq, server_head = int(seq.rows[0][0]), int(head.rows[0][0])
        if server_seq == int(local.execute(SELECT_SEQ).fetchone()[0]) and server_head == local_head:
            self.synced = True
            return 0
        mine = local.execute(SELECT_EVENT_KEY, (local_head,)).fetchone()
        if local_head > server_head or (mine is not None and (not key.rows or tuple(key.rows[0]) != tuple(mine))):
            raise CopyDiverged(f"the local copy has events up to {local_head} that {self.client.endpoint.label} lacks")
        local.execute("BEGIN IMMEDIATE")
        try:
            added = self._pull_events(local, local_head)
            for table in sorted(self.log_tables - {"events"}):
                self._replace_table(local, table)
            local.execute("COMMIT")
        except BaseException:
            local.execute("ROLLBACK")
            raise
        self.synced = True
        log.info("copy_pulled", events=added, head=local_head + added, server=self.client.endpoint.label)
        return added

    def _pull_events(self, local: Any, after: int) -> int:
        added = 0
        while True:
            rows = self.client.execute(SELECT_EVENTS_AFTER, (after, PULL_PAGE)).rows
            if not rows:
                return added
            local.executemany(INSERT_EVENT_AT, rows)
            added += len(rows)
            after = int(rows[-1][0])

    def _replace_table(self, local: Any, table: str) -> None:
        """A small write-side table (claims, credentials, tokens…) as the server holds it, page by page."""
        columns = local.execute(f"PRAGMA table_info({table})").fetchall()  # (cid, name, type, notnull, default, pk)
        keys = [name for _cid, name, _type, _notnull, _default, pk in columns if pk]
        order = ", ".join(keys) or "rowid"
        local.execute(f"DELETE FROM {table}")
        offset = 0
        while True:
            result = self.client.execute(
                f"SELECT * FROM {table} ORDER BY {order} LIMIT ? OFFSET ?", (PULL_PAGE, offset)
            )
            if not result.rows:
                return
            marks = ", ".join("?" for _ in result.columns)
            local.executemany(f"INSERT INTO {table} ({', '.join(result.columns)}) VALUES ({marks})", result.rows)
            offset += len(result.rows)

    def check(self) -> None:
        """One round trip that proves the server answers and takes the token (for readiness)."""
        self.client.execute("SELECT 1")


def _head(conn: Any) -> int:
    return int(conn.execute(SELECT_HEAD).fetchone()[0])


class MirroredConnection:
    """A local SQLite connection whose log writes reach the server at COMMIT, or not at all."""

    def __init__(self, local: sqlite3.Connection, remote: RemoteLog) -> None:
        self.local = local
        self.remote = remote
        self.recorded: list[tuple[str, Sequence[Any]]] = []
        self._marks: list[int] = []
        self._kinds: dict[str, str] = {}

    def _kind(self, sql: str) -> str:
        kind = self._kinds.get(sql)
        if kind is None:
            kind = statement_kind(sql, self.remote.log_tables)
            if len(self._kinds) < MAX_CACHED_KINDS:
                self._kinds[sql] = kind
        return kind

    def execute(self, sql: str, parameters: Any = ()) -> Any:
        kind = self._kind(sql)
        if kind == "commit":
            if self.recorded:
                self._ship()
            cursor = self.local.execute(sql, parameters)
            self._clear()
            return cursor
        cursor = self.local.execute(sql, parameters)
        if kind == "log":
            if sql == INSERT_EVENT:  # the server gets the position SQLite gave it here: a raced writer collides
                self.recorded.append((INSERT_EVENT_AT, (cursor.lastrowid, *parameters)))
            else:
                self.recorded.append((sql, tuple(parameters)))
        elif kind in ("begin", "rollback"):
            self._clear()
        elif kind == "savepoint":
            self._marks.append(len(self.recorded))
        elif kind == "rollback_to" and self._marks:
            del self.recorded[self._marks[-1] :]
        elif kind == "release" and self._marks:
            self._marks.pop()
        return cursor

    def executemany(self, sql: str, parameters: Any) -> Any:
        if self._kind(sql) != "log":
            return self.local.executemany(sql, parameters)
        if sql == INSERT_EVENT:
            raise ValueError("events are appended one at a time, so that each gets its position")
        rows = [tuple(p) for p in parameters]
        cursor = self.local.executemany(sql, rows)
        self.recorded.extend((sql, row) for row in rows)
        return cursor

    def executescript(self, sql: str) -> Any:
        raise ValueError("a mirrored connection runs statements one by one")

    def _ship(self) -> None:
        seq = int(self.local.execute(SELECT_SEQ).fetchone()[0]) + 1
        at = datetime.now(UTC).isoformat()
        self.local.execute(INSERT_COMMIT, (seq, at))
        self.local.execute(PRUNE_COMMITS, (seq - KEPT_COMMITS,))
        self.remote.ship([(INSERT_COMMIT, (seq, at)), *self.recorded, (PRUNE_COMMITS, (seq - KEPT_COMMITS,))])

    def _clear(self) -> None:
        self.recorded.clear()
        self._marks.clear()

    @property
    def total_changes(self) -> int:
        return self.local.total_changes

    @property
    def in_transaction(self) -> bool:
        return self.local.in_transaction

    def close(self) -> None:
        self.local.close()


__all__ = [
    "CopyDiverged",
    "CopyStale",
    "HranaAuthError",
    "HranaUnavailable",
    "MirroredConnection",
    "RemoteLog",
    "RemoteUnavailable",
]
