"""Rebuild read models by replaying the log, and compare two read stores (verify)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from core.db import Connection
from core.events.base import StoredEvent
from queries.projection import Projection, checkpoint, reset

PROGRESS_EVERY = 2000
# The whole replay is one transaction: with SQLite's default 2 MiB page cache its dirty pages spill into
# the WAL mid-way and are written again when touched later. 64 MiB keeps a large store's replay in memory
# until COMMIT (SQLite allocates it only as pages are used).
REBUILD_CACHE_KIB = 65536


def rebuild(
    conn: Connection,
    projection: Projection,
    events: Iterable[StoredEvent],
    progress: Callable[[int], None] | None = None,
) -> int:
    """Fresh tables, every event replayed, swapped in by one commit (readers see old rows until then)."""
    cache_size = conn.execute("PRAGMA cache_size").fetchone()[0]
    conn.execute(f"PRAGMA cache_size=-{REBUILD_CACHE_KIB}")
    conn.execute("BEGIN IMMEDIATE")
    try:
        reset(conn, projection, indexes=False)
        # One call for the whole log: runs of a statement and ADDITIVE deltas batch across all of it.
        projection.apply_events(conn, counted(events, progress) if progress else events, indexes=False)
        projection.create_indexes(conn)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    finally:
        conn.execute(f"PRAGMA cache_size={int(cache_size)}")
    return checkpoint(conn)


def counted(events: Iterable[StoredEvent], progress: Callable[[int], None]) -> Iterator[StoredEvent]:
    """The events, reporting every PROGRESS_EVERY of them once applied (and the rest at the end)."""
    done = 0
    for event in events:
        yield event
        done += 1
        if done == PROGRESS_EVERY:
            progress(done)
            done = 0
    if done:
        progress(done)


def table_rows(conn: Connection, table: str) -> list[tuple[object, ...]]:
    rows = conn.execute(f"SELECT * FROM {table}").fetchall()
    return sorted((tuple(row) for row in rows), key=repr)


def differences(live: Connection, scratch: Connection, projection: Projection) -> list[str]:
    """Human-readable differences between two read stores, table by table (empty when equal)."""
    found = []
    for table in projection.tables():
        a, b = table_rows(live, table), table_rows(scratch, table)
        if a != b:
            only_live = len(set(a) - set(b))
            only_replay = len(set(b) - set(a))
            found.append(f"{table}: {only_live} row(s) only in the live store, {only_replay} only in the replay")
    if checkpoint(live) != checkpoint(scratch):
        found.append(f"checkpoint: live at {checkpoint(live)}, replay at {checkpoint(scratch)}")
    return found
