"""`Projection.apply_events` batches without changing what it writes.

Runs of one statement go to `executemany`, and ADDITIVE deltas are summed per row and written after
the other statements. Both must leave exactly the rows that executing every statement in order
leaves, however the events are split into calls, on each local driver.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.db import Connection
from core.events.base import StoredEvent
from migrations.runner import migrate
from queries import projection as projection_module
from queries.projection import Projection, Projector, Statement, checkpoint
from tests.integration.logfile import DRIVERS, open_db

INSERT = "INSERT INTO t_items (id, label, hits) VALUES (?, ?, 0)"
RELABEL = "UPDATE t_items SET label = ? WHERE id = ?"
HIT = "UPDATE t_items SET hits = hits + ? WHERE id = ?"
DELETE = "DELETE FROM t_items WHERE id = ?"
LOG = "INSERT INTO t_log (item, label) VALUES (?, ?)"


def on_created(event: StoredEvent) -> list[Statement]:
    return [(INSERT, (event.stream_id, event.data["label"]))]


def on_relabelled(event: StoredEvent) -> list[Statement]:
    return [(RELABEL, (event.data["label"], event.stream_id)), (LOG, (event.stream_id, event.data["label"]))]


def on_hit(event: StoredEvent) -> list[Statement]:
    return [(HIT, (event.data["delta"], event.stream_id))]


def on_removed(event: StoredEvent) -> list[Statement]:
    return [(DELETE, (event.stream_id,))]


TOY_PROJECTORS = {"Created": on_created, "Relabelled": on_relabelled, "Hit": on_hit, "Removed": on_removed}


@dataclass(frozen=True)
class Toy:
    """A read model that is not a module: the ReadModel protocol asks only for these attributes."""

    ADDITIVE: tuple[str, ...]
    NAME: str = "toy"
    VERSION: int = 1
    TABLES: tuple[str, ...] = ("t_items", "t_log")
    SCHEMA: tuple[str, ...] = (
        "CREATE TABLE t_items (id TEXT PRIMARY KEY, label TEXT NOT NULL, hits INTEGER NOT NULL)",
        "CREATE TABLE t_log (seq INTEGER PRIMARY KEY, item TEXT NOT NULL, label TEXT NOT NULL)",
    )
    PROJECTORS: Mapping[str, Projector] = field(default_factory=lambda: dict(TOY_PROJECTORS))
    INDEXING: tuple[str, ...] = ()
    REINDEX: tuple[str, ...] = ()


def model(*, additive: bool) -> Toy:
    return Toy(ADDITIVE=(HIT,) if additive else ())


KEYS = ("a", "b", "c")


@st.composite
def histories(draw: st.DrawFn) -> list[StoredEvent]:
    """Events that keep ADDITIVE's promise: an item is created before its first hit, and only once."""
    created: list[str] = []
    events: list[StoredEvent] = []
    for position in range(1, draw(st.integers(0, 40)) + 1):
        kind = draw(st.sampled_from(["Created", "Relabelled", "Hit", "Removed"]) if created else st.just("Created"))
        if kind == "Created":
            fresh = [k for k in KEYS if k not in created]
            if not fresh:
                continue
            key = draw(st.sampled_from(fresh))
            created.append(key)
        else:
            key = draw(st.sampled_from(created))
        data: dict[str, Any] = {
            "Created": {"label": draw(st.sampled_from(["x", "y"]))},
            "Relabelled": {"label": draw(st.sampled_from(["x", "y", "z"]))},
            "Hit": {"delta": draw(st.integers(-3, 3))},
            "Removed": {},
        }[kind]
        events.append(StoredEvent(position, key, "toy", position, kind, 1, data, {}, "2026-11-24T10:00:00.000Z"))
    return events


def fresh_store(folder: Path, driver: str, projection: Projection) -> Connection:
    """A read store file in `folder/<driver>/` (open_db picks the driver by the folder's name)."""
    (folder / driver).mkdir(parents=True)
    conn = open_db(str(folder / driver / "read.db"))
    migrate(conn, ("read",))
    projection.create_tables(conn)
    return conn


def rows(conn: Connection) -> list[list[tuple[Any, ...]]]:
    return [
        [tuple(r) for r in conn.execute("SELECT id, label, hits FROM t_items ORDER BY id").fetchall()],
        [tuple(r) for r in conn.execute("SELECT seq, item, label FROM t_log ORDER BY seq").fetchall()],
    ]


@pytest.mark.parametrize("driver", DRIVERS)
@settings(max_examples=60, deadline=None)
@given(
    events=histories(),
    cuts=st.sets(st.integers(0, 40)),
    max_deltas=st.sampled_from([1, 2, 100_000]),
    max_run=st.sampled_from([1, 2, 10_000]),
)
def test_batched_application_writes_what_one_statement_at_a_time_writes(
    driver: str, events: list[StoredEvent], cuts: set[int], max_deltas: int, max_run: int
) -> None:
    plain, batched = Projection([model(additive=False)]), Projection([model(additive=True)])
    with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as patch:
        patch.setattr(projection_module, "MAX_DELTAS", max_deltas)
        patch.setattr(projection_module, "MAX_RUN", max_run)
        reference = fresh_store(Path(folder) / "reference", driver, plain)
        store = fresh_store(Path(folder) / "batched", driver, batched)
        try:
            for event in events:  # the meaning: every statement, in order, one at a time
                for projector in plain.dispatch.get(event.type, ()):
                    for sql, params in projector(event):
                        reference.execute(sql, params)
            bounds = [0, *sorted(c for c in cuts if 0 < c < len(events)), len(events)]
            for start, end in itertools.pairwise(bounds):
                batched.apply_events(store, events[start:end])
            assert rows(store) == rows(reference)
            assert checkpoint(store) == (events[-1].position if events else 0)
        finally:
            reference.close()
            store.close()
