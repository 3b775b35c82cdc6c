"""The projector contract: an event becomes SQL statements; the checkpoint moves in the same transaction.

The same `apply_events` runs inline in the primary's command transaction, in an edge's catch-up
loop and in a rebuild. Projectors never validate or call out: an event is a fact.

A model may list statements in `ADDITIVE`: `UPDATE t SET c = c + ? WHERE key = ?` with parameters
(delta, key), where no other statement writes or reads `c` and the row exists before its first delta
(a proposal is submitted to a posted project). Such deltas commute with everything else, so
`apply_events` sums them per row and runs each sum once, after the other statements: a replay
updates a project's count once instead of once per proposal.

Statements in a model's `INDEXING` only maintain an index (full-text search, or a table derived
from another's column): `apply_events(..., indexes=False)` skips them, and `create_indexes` builds
those indexes in one pass with the model's `REINDEX` steps (SQL, or a function of the connection),
as it builds the B-tree indexes after a bulk replay.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from core.db import Connection
from core.events.base import StoredEvent
from queries.readmodel import Projector, ReadModel, Statement

__all__ = ["Projection", "Projector", "ReadModel", "Statement"]

# Summed deltas, and parameters of one run, kept per call before they are written out (they bound a
# long replay's memory: a run of proposal inserts can span the whole log).
MAX_DELTAS = 100_000
MAX_RUN = 10_000

SELECT_CHECKPOINT = "SELECT position FROM projection_checkpoint WHERE id = 1"
UPDATE_CHECKPOINT = "UPDATE projection_checkpoint SET position = ? WHERE id = 1"
CHECKPOINT_TO_HEAD = (
    "UPDATE projection_checkpoint SET position = (SELECT MAX(position) FROM events) "
    "WHERE id = 1 AND position < (SELECT MAX(position) FROM events)"
)
SELECT_VERSIONS = "SELECT name, version FROM projection_versions"
UPSERT_VERSION = (
    "INSERT INTO projection_versions (name, version) VALUES (?, ?) "
    "ON CONFLICT (name) DO UPDATE SET version = excluded.version"
)


class Projection:
    """Every read model's projectors, dispatched by event type."""

    def __init__(self, models: Sequence[ReadModel]) -> None:
        self.models = tuple(models)
        self.dispatch: dict[str, list[Projector]] = {}
        self.additive = frozenset(sql for model in self.models for sql in model.ADDITIVE)
        self.indexing = frozenset(sql for model in self.models for sql in model.INDEXING)
        for model in self.models:
            for event_type, projector in model.PROJECTORS.items():
                self.dispatch.setdefault(event_type, []).append(projector)

    def apply_events(
        self, conn: Connection, events: Iterable[StoredEvent], *, indexes: bool = True, advance: bool = True
    ) -> int:
        """Apply events in order and advance the checkpoint (also past events no model handles).

        `advance=False` leaves the checkpoint to the caller: the primary's writer moves it once per
        group commit (`checkpoint_to_head`) instead of once per command.

        Statements run in the order the projectors return them; a run of the same statement goes to the
        driver as one `executemany` (prepared once, bound in C). ADDITIVE deltas are summed per row and
        written after the others; with `indexes=False`, INDEXING statements are left out for
        `create_indexes` (module docstring).
        """
        dispatch, additive = self.dispatch, self.additive
        skipped = frozenset() if indexes else self.indexing
        deltas: dict[tuple[str, Any], int] = {}
        run_sql, run = "", []
        last = 0
        for event in events:
            for projector in dispatch.get(event.type, ()):
                for sql, params in projector(event):
                    if sql == run_sql:  # first: the common case (neither additive nor skipped is ever run_sql)
                        run.append(params)
                        if len(run) >= MAX_RUN:
                            _execute_run(conn, run_sql, run)
                            run = []
                    elif sql in additive:
                        key = (sql, params[1])
                        deltas[key] = deltas.get(key, 0) + params[0]
                        if len(deltas) >= MAX_DELTAS:  # the rows they add to may still wait in the run
                            _execute_run(conn, run_sql, run)
                            run_sql, run = "", []
                            _execute_deltas(conn, deltas)
                    elif sql not in skipped:
                        _execute_run(conn, run_sql, run)
                        run_sql, run = sql, [params]
            last = event.position
        _execute_run(conn, run_sql, run)
        _execute_deltas(conn, deltas)
        if last and advance:
            conn.execute(UPDATE_CHECKPOINT, (last,))
        return last

    def tables(self) -> list[str]:
        return [table for model in self.models for table in model.TABLES]

    def create_tables(self, conn: Connection, *, indexes: bool = True) -> None:
        for model in self.models:
            for ddl in model.SCHEMA:
                if indexes or not is_index(ddl):
                    conn.execute(ddl)

    def create_indexes(self, conn: Connection) -> None:
        """Search and derived tables (REINDEX), then the secondary indexes, each built in one pass (after
        a bulk replay: far cheaper than row by row)."""
        for model in self.models:
            for step in model.REINDEX:
                if isinstance(step, str):
                    conn.execute(step)
                else:
                    step(conn)
            for ddl in model.SCHEMA:
                if is_index(ddl):
                    conn.execute(ddl)

    def drop_tables(self, conn: Connection) -> None:
        for model in self.models:
            for table in reversed(model.TABLES):
                conn.execute(f"DROP TABLE IF EXISTS {table}")

    def record_versions(self, conn: Connection) -> None:
        for model in self.models:
            conn.execute(UPSERT_VERSION, (model.NAME, str(model.VERSION)))

    def stale_models(self, conn: Connection) -> list[str]:
        """Read models whose code version differs from the one that built the store's tables."""
        built = dict(conn.execute(SELECT_VERSIONS).fetchall())
        return [model.NAME for model in self.models if built.get(model.NAME) != str(model.VERSION)]


def _execute_run(conn: Connection, sql: str, run: Sequence[Sequence[Any]]) -> None:
    if len(run) == 1:
        conn.execute(sql, run[0])
    elif run:
        conn.executemany(sql, run)


def _execute_deltas(conn: Connection, deltas: dict[tuple[str, Any], int]) -> None:
    by_statement: dict[str, list[tuple[int, Any]]] = {}
    for (sql, key), delta in deltas.items():
        if delta:
            by_statement.setdefault(sql, []).append((delta, key))
    for sql, rows in by_statement.items():
        _execute_run(conn, sql, rows)
    deltas.clear()


def checkpoint_to_head(conn: Connection) -> None:
    """The checkpoint at the log's last position: right on a primary, whose every event is projected in
    the transaction that appends it (the writer's commands, and the CLI's in their own)."""
    conn.execute(CHECKPOINT_TO_HEAD)


def checkpoint(conn: Connection) -> int:
    row = conn.execute(SELECT_CHECKPOINT).fetchone()
    return int(row[0]) if row else 0


def is_index(ddl: str) -> bool:
    """An index or a trigger: made after a replay's bulk inserts (REINDEX fills what a trigger would keep)."""
    return ddl.lstrip().upper().startswith(("CREATE INDEX", "CREATE TRIGGER"))


def reset(conn: Connection, projection: Projection, *, indexes: bool = True) -> None:
    """Fresh, empty read tables at position 0 (inside the caller's transaction)."""
    projection.drop_tables(conn)
    projection.create_tables(conn, indexes=indexes)
    projection.record_versions(conn)
    conn.execute(UPDATE_CHECKPOINT, (0,))


def recorded_at(event: StoredEvent) -> str:
    """The event's time at the API's precision (`2026-11-23T10:00:00Z`)."""
    return event.recorded_at[:19] + "Z"


def update_changed(
    table: str,
    row_id: str,
    changes: dict[str, Any],
    event: StoredEvent,
    columns: tuple[str, ...],
    json_columns: tuple[str, ...] = (),
) -> Statement:
    """`UPDATE table SET <changed columns>, updated_at, version WHERE id = ?` for a *Revised/*Updated event.

    Only names listed in `columns`/`json_columns` reach the SQL text, so event data never shapes it.
    """
    sets = [f"{c} = ?" for c in columns if c in changes] + [f"{c} = ?" for c in json_columns if c in changes]
    params: list[Any] = [changes[c] for c in columns if c in changes]
    params += [orjson.dumps(changes[c]).decode() for c in json_columns if c in changes]
    sets += ["updated_at = ?", "version = ?"]
    params += [recorded_at(event), event.version, row_id]
    return f"UPDATE {table} SET {', '.join(sets)} WHERE id = ?", params
