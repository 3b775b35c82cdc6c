"""The event store on real database files, both drivers: round trips, order, concurrency, append-only, claims."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from core import store
from core.clock import FakeClock
from core.db import Connection
from core.errors import Conflict, VersionConflict
from core.events import upcasting
from core.events.base import Event
from tests.integration.logfile import open_db

AT = "2026-11-23T10:00:00.000Z"
META = {"actor": "tester", "request_id": "req-1", "region": "local"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Noted(Event):
    TYPE = "Noted"
    text: str
    count: int = 0


@pytest.fixture
def conn(db_path: str) -> Iterator[Connection]:
    connection = open_db(db_path)
    yield connection
    connection.close()


def note(text: str, count: int = 0) -> Noted:
    return Noted(text=text, count=count)


def test_append_then_load_round_trips_every_field(conn: Connection) -> None:
    events = [note("one", 1), note('two ✓ "quoted"', 2), note("three", 3)]

    stored = store.append(conn, "s-1", "note", 0, events, META, AT)
    loaded = store.load_stream(conn, "s-1")

    assert loaded == stored
    assert [e.version for e in loaded] == [1, 2, 3]
    assert [e.data for e in loaded] == [
        {"text": "one", "count": 1},
        {"text": 'two ✓ "quoted"', "count": 2},
        {"text": "three", "count": 3},
    ]
    assert all(e.type == "Noted" and e.schema_version == 1 for e in loaded)
    assert all(e.stream_id == "s-1" and e.stream_type == "note" for e in loaded)
    assert all(e.meta == META and e.recorded_at == AT for e in loaded)
    positions = [e.position for e in loaded]
    assert positions == sorted(positions) and len(set(positions)) == 3
    assert store.stream_version(conn, "s-1") == 3
    assert store.head(conn) == positions[-1]


def test_load_of_an_unknown_stream_is_empty(conn: Connection) -> None:
    assert store.load_stream(conn, "nobody") == []
    assert store.stream_version(conn, "nobody") == 0
    assert store.head(conn) == 0


def test_appends_continue_from_the_expected_version(conn: Connection) -> None:
    store.append(conn, "s", "note", 0, [note("a")], META, AT)
    store.append(conn, "s", "note", 1, [note("b"), note("c")], META, AT)

    assert [e.data["text"] for e in store.load_stream(conn, "s")] == ["a", "b", "c"]
    assert store.stream_version(conn, "s") == 3


def test_read_after_returns_global_order_and_respects_limit(conn: Connection) -> None:
    for i in range(10):
        stream = f"s-{i % 3}"
        store.append(conn, stream, "note", store.stream_version(conn, stream), [note(f"e{i}")], META, AT)

    everything = store.read_after(conn, 0, 100)
    assert [e.data["text"] for e in everything] == [f"e{i}" for i in range(10)]
    assert [e.position for e in everything] == sorted(e.position for e in everything)

    middle = store.read_after(conn, everything[3].position, 4)
    assert [e.position for e in middle] == [e.position for e in everything[4:8]]
    assert store.read_after(conn, everything[-1].position, 10) == []
    assert store.read_after(conn, 0, 1) == everything[:1]

    assert list(store.iter_all(conn, batch=3)) == everything
    assert list(store.read_until(conn, everything[5].position, batch=2)) == everything[:6]
    bare = list(store.iter_all(conn, batch=4, meta=False))  # for replays: projectors never read metadata
    assert bare == [event._replace(meta={}) for event in everything]


def test_same_expected_version_twice_sequentially_one_wins(conn: Connection) -> None:
    store.append(conn, "race", "note", 0, [note("winner")], META, AT)

    with pytest.raises(VersionConflict) as info:
        store.append(conn, "race", "note", 0, [note("loser")], META, AT)

    assert info.value.code == "version_conflict"
    assert [e.data["text"] for e in store.load_stream(conn, "race")] == ["winner"]


def test_a_stale_multi_event_append_keeps_nothing_when_rolled_back(conn: Connection) -> None:
    store.append(conn, "race", "note", 0, [note("a"), note("b")], META, AT)

    conn.execute("BEGIN IMMEDIATE")
    store.append(conn, "other", "note", 0, [note("same transaction")], META, AT)
    with pytest.raises(VersionConflict):
        store.append(conn, "race", "note", 1, [note("x"), note("y"), note("z")], META, AT)
    conn.execute("ROLLBACK")

    assert store.load_stream(conn, "other") == []

    assert [e.data["text"] for e in store.load_stream(conn, "race")] == ["a", "b"]


def test_two_threads_on_their_own_connections_race_and_exactly_one_wins(db_path: str) -> None:
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def contender(name: str) -> None:
        conn = open_db(db_path)
        try:
            expected = store.stream_version(conn, "contested")  # both read 0 before either writes
            barrier.wait()
            conn.execute("BEGIN IMMEDIATE")
            try:
                store.append(conn, "contested", "note", expected, [note(name)], {"actor": name}, AT)
                conn.execute("COMMIT")
                outcomes[name] = "won"
            except VersionConflict:
                conn.execute("ROLLBACK")
                outcomes[name] = "conflict"
            except Exception as exc:
                conn.execute("ROLLBACK")
                outcomes[name] = f"error: {type(exc).__name__}: {exc}"
        finally:
            conn.close()

    threads = [threading.Thread(target=contender, args=(name,)) for name in ("left", "right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)

    assert sorted(outcomes.values()) == ["conflict", "won"], outcomes
    check = open_db(db_path)
    try:
        events = store.load_stream(check, "contested")
    finally:
        check.close()
    winner = next(name for name, outcome in outcomes.items() if outcome == "won")
    assert [(e.version, e.data["text"], e.meta["actor"]) for e in events] == [(1, winner, winner)]


def test_two_threads_racing_in_autocommit_mode_one_wins(db_path: str) -> None:
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def contender(name: str) -> None:
        conn = open_db(db_path)
        try:
            barrier.wait()
            store.append(conn, "contested", "note", 0, [note(name)], {}, AT)
            outcomes[name] = "won"
        except VersionConflict:
            outcomes[name] = "conflict"
        except Exception as exc:
            outcomes[name] = f"error: {type(exc).__name__}: {exc}"
        finally:
            conn.close()

    threads = [threading.Thread(target=contender, args=(name,)) for name in ("left", "right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes.values()) == ["conflict", "won"], outcomes


def test_events_table_rejects_update(conn: Connection) -> None:
    store.append(conn, "s", "note", 0, [note("fact")], META, AT)

    with pytest.raises(Exception, match="append-only"):
        conn.execute('UPDATE events SET data = \'{"text": "rewritten"}\'')

    assert store.load_stream(conn, "s")[0].data["text"] == "fact"


def test_events_table_rejects_delete(conn: Connection) -> None:
    store.append(conn, "s", "note", 0, [note("fact")], META, AT)

    with pytest.raises(Exception, match="append-only"):
        conn.execute("DELETE FROM events")

    assert len(store.load_stream(conn, "s")) == 1


def test_events_table_rejects_replace_of_an_existing_position(conn: Connection) -> None:
    [event] = store.append(conn, "s", "note", 0, [note("fact")], META, AT)

    with pytest.raises(Exception, match=r"UNIQUE|append-only"):
        conn.execute(
            "INSERT INTO events (position, stream_id, stream_type, version, type, data, recorded_at) "
            "VALUES (?, 'other', 'note', 1, 'Noted', '{}', ?)",
            (event.position, AT),
        )


def test_claims_are_unique_and_conflict_with_the_given_code(conn: Connection) -> None:
    store.claim(conn, "email", "ada@example.com", "user-1", AT, code="email_taken")

    with pytest.raises(Conflict) as info:
        store.claim(conn, "email", "ada@example.com", "user-2", AT, code="email_taken")

    assert info.value.code == "email_taken"
    assert not isinstance(info.value, VersionConflict)
    assert "email" in info.value.detail
    assert store.claim_owner(conn, "email", "ada@example.com") == "user-1"


def test_claims_of_another_kind_or_key_do_not_collide(conn: Connection) -> None:
    store.claim(conn, "email", "ada@example.com", "user-1", AT)
    store.claim(conn, "tx_hash", "ada@example.com", "payment-1", AT)
    store.claim(conn, "email", "bob@example.com", "user-2", AT)

    assert store.claim_owner(conn, "tx_hash", "ada@example.com") == "payment-1"
    assert store.claim_owner(conn, "email", "bob@example.com") == "user-2"


def test_a_released_claim_can_be_taken_again_only_by_its_owner_releasing(conn: Connection) -> None:
    store.claim(conn, "email", "ada@example.com", "user-1", AT)
    store.release_claim(conn, "email", "ada@example.com", "user-2")  # not the owner: no effect
    assert store.claim_owner(conn, "email", "ada@example.com") == "user-1"

    store.release_claim(conn, "email", "ada@example.com", "user-1")
    store.claim(conn, "email", "ada@example.com", "user-2", AT)

    assert store.claim_owner(conn, "email", "ada@example.com") == "user-2"


def test_unit_of_work_tracks_what_it_appended(conn: Connection) -> None:
    clock = FakeClock()
    uow = store.UnitOfWork(conn, META, clock)

    uow.append("s", "note", 0, [note("a")])
    assert uow.version_of("s") == 1
    uow.append("s", "note", uow.version_of("s"), [note("b")])
    uow.claim("email", "x@example.com", "s", code="email_taken")
    with pytest.raises(Conflict) as info:
        uow.claim("email", "x@example.com", "t", code="email_taken")

    assert info.value.code == "email_taken"
    assert [e.version for e in uow.new_events] == [1, 2]
    assert uow.last_position == uow.new_events[-1].position
    assert [e.recorded_at for e in uow.load("s")] == ["2026-11-23T10:00:00.000Z"] * 2


def test_old_versions_are_upcast_on_every_read_path(conn: Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    store.append(conn, "old", "note", 0, [note("v1 text", count=2)], META, AT)
    monkeypatch.setitem(upcasting.UPCASTERS, ("Noted", 1), lambda data: {**data, "count": data["count"] * 10})
    monkeypatch.setitem(upcasting.UPCASTERS, ("Noted", 2), lambda data: {"body": data["text"], "count": data["count"]})

    for event in (*store.load_stream(conn, "old"), *store.iter_all(conn, meta=False), *store.read_after(conn, 0, 9)):
        assert (event.schema_version, event.data) == (3, {"body": "v1 text", "count": 20})
    monkeypatch.delitem(upcasting.UPCASTERS, ("Noted", 1))
    monkeypatch.delitem(upcasting.UPCASTERS, ("Noted", 2))
    assert store.load_stream(conn, "old")[0].data == {"text": "v1 text", "count": 2}
