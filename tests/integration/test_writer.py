"""The group-commit writer on real database files (both local drivers): batching, per-job rollback, crash atomicity."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from textwrap import dedent

import pytest

from core import store
from core.db import Connection
from core.errors import ServiceUnavailable, VersionConflict
from core.events.base import Event
from core.writer import Writer, WriterStopped
from tests.integration.logfile import open_db

REPO = Path(__file__).resolve().parents[2]
AT = "2026-11-23T10:00:00.000Z"


@dataclass(frozen=True, slots=True, kw_only=True)
class Noted(Event):
    TYPE = "Noted"
    text: str


@pytest.fixture
def writer(db_path: str) -> Iterator[Writer]:
    w = Writer(lambda: open_db(db_path))
    w.start()
    yield w
    w.stop()


def appender(stream: str, text: str, expected: int = 0) -> Callable[[Connection], int]:
    def job(conn: Connection) -> int:
        [event] = store.append(conn, stream, "note", expected, [Noted(text=text)], {}, AT)
        return event.position

    return job


def read_streams(db_path: str) -> dict[str, list[str]]:
    conn = open_db(db_path)
    try:
        out: dict[str, list[str]] = {}
        for event in store.iter_all(conn):
            out.setdefault(event.stream_id, []).append(event.data["text"])
        return out
    finally:
        conn.close()


def hold_writer(writer: Writer) -> tuple[threading.Event, Future[None]]:
    """Occupy the writer thread with one job until the returned event is set; later jobs queue up."""
    started, release = threading.Event(), threading.Event()

    def gate(conn: Connection) -> None:
        started.set()
        if not release.wait(timeout=30):
            raise TimeoutError("the test never released the writer")

    future = writer.submit_nowait(gate)
    assert started.wait(timeout=30)
    return release, future


def test_many_concurrent_jobs_commit_in_fewer_batches(writer: Writer, db_path: str) -> None:
    release, gate = hold_writer(writer)
    futures: list[Future[int]] = []
    lock = threading.Lock()

    def submitter(worker: int) -> None:
        for i in range(25):
            future = writer.submit_nowait(appender(f"w{worker}-{i}", f"{worker}:{i}"))
            with lock:
                futures.append(future)

    threads = [threading.Thread(target=submitter, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    release.set()

    positions = [future.result(timeout=30) for future in futures]
    gate.result(timeout=30)

    assert len(positions) == 200 and len(set(positions)) == 200
    assert writer.jobs == 201
    assert writer.batches < writer.jobs
    assert writer.batches <= 2  # the gate alone, then everything queued behind it
    streams = read_streams(db_path)
    assert sum(len(texts) for texts in streams.values()) == 200


def test_concurrent_async_submissions_all_return(writer: Writer, db_path: str) -> None:
    async def main() -> list[int]:
        return await asyncio.gather(*(writer.submit(appender(f"a-{i}", str(i))) for i in range(300)))

    positions = asyncio.run(main())

    assert sorted(positions) == sorted(set(positions)) and len(positions) == 300
    assert writer.jobs == 300
    assert writer.batches < writer.jobs
    assert len(read_streams(db_path)) == 300


def test_async_callers_of_one_batch_get_their_own_outcome_even_if_one_gave_up(writer: Writer, db_path: str) -> None:
    """A batch answers a loop's callers together: a failure reaches its own caller, a cancelled caller is skipped."""
    release, _ = hold_writer(writer)

    async def main() -> list[object]:
        kept = asyncio.ensure_future(writer.submit(appender("kept", "yes")))
        abandoned = asyncio.ensure_future(writer.submit(appender("abandoned", "written anyway")))
        lost = asyncio.ensure_future(writer.submit(appender("kept", "no")))  # same expected version: conflict

        async def give_up() -> None:  # tasks start in order: the three jobs are queued behind the gate by now
            abandoned.cancel()
            release.set()

        return list(await asyncio.gather(kept, abandoned, lost, give_up(), return_exceptions=True))

    kept, abandoned, lost, _ = asyncio.run(main())

    assert isinstance(kept, int)
    assert isinstance(abandoned, asyncio.CancelledError)
    assert isinstance(lost, VersionConflict)
    assert writer.batches == 2  # the gate, then the three together
    assert read_streams(db_path) == {"kept": ["yes"], "abandoned": ["written anyway"]}


def test_max_batch_bounds_each_group(db_path: str) -> None:
    w = Writer(lambda: open_db(db_path), max_batch=10)
    w.start()
    try:
        release, gate = hold_writer(w)
        futures = [w.submit_nowait(appender(f"s-{i}", str(i))) for i in range(50)]
        release.set()
        for future in futures:
            future.result(timeout=30)
        gate.result(timeout=30)
    finally:
        w.stop()

    assert w.jobs == 51
    assert w.batches == 1 + 5


def test_a_failing_job_is_rolled_back_alone(writer: Writer, db_path: str) -> None:
    release, gate = hold_writer(writer)
    batches_before = writer.batches

    def fails_after_writing(conn: Connection) -> None:
        store.append(conn, "bad", "note", 0, [Noted(text="must vanish")], {}, AT)
        conn.execute("INSERT INTO claims (kind, key, owner, claimed_at) VALUES ('email', 'bad@x', 'bad', ?)", (AT,))
        raise ValueError("the rule said no")

    first = writer.submit_nowait(appender("good-1", "kept"))
    bad = writer.submit_nowait(fails_after_writing)
    last = writer.submit_nowait(appender("good-2", "kept too"))
    release.set()
    gate.result(timeout=30)

    assert first.result(timeout=30) > 0
    assert last.result(timeout=30) > 0
    with pytest.raises(ValueError, match="the rule said no"):
        bad.result(timeout=30)
    assert writer.batches == batches_before + 2  # the gate's batch, then all three together
    assert read_streams(db_path) == {"good-1": ["kept"], "good-2": ["kept too"]}
    conn = open_db(db_path)
    try:
        assert conn.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0
    finally:
        conn.close()


def test_a_lost_race_in_a_batch_does_not_sink_its_batch_mates(writer: Writer, db_path: str) -> None:
    release, gate = hold_writer(writer)

    winner = writer.submit_nowait(appender("contested", "first"))
    loser = writer.submit_nowait(appender("contested", "second"))  # same expected version
    bystander = writer.submit_nowait(appender("elsewhere", "fine"))
    release.set()
    gate.result(timeout=30)

    winner.result(timeout=30)
    bystander.result(timeout=30)
    with pytest.raises(VersionConflict):
        loser.result(timeout=30)
    assert read_streams(db_path) == {"contested": ["first"], "elsewhere": ["fine"]}


def counted(job: Callable[[Connection], int], runs: list[str], name: str) -> Callable[[Connection], int]:
    def run(conn: Connection) -> int:
        runs.append(name)
        return job(conn)

    return run


def one_batch_around(
    writer: Writer, middle: Callable[[Connection], None], runs: list[str]
) -> tuple[Future[int], Future[None], Future[int]]:
    """Jobs a, middle and b, queued behind a held writer so that they run as one batch."""
    release, gate = hold_writer(writer)
    first = writer.submit_nowait(counted(appender("a", "kept"), runs, "a"))
    bad = writer.submit_nowait(middle)
    last = writer.submit_nowait(counted(appender("b", "kept"), runs, "b"))
    release.set()
    gate.result(timeout=30)
    return first, bad, last


def test_a_job_failing_before_it_writes_costs_its_batch_mates_nothing(writer: Writer, db_path: str) -> None:
    runs: list[str] = []

    def refuses(conn: Connection) -> None:
        runs.append("refuses")
        raise ValueError("decided no before writing")

    first, bad, last = one_batch_around(writer, refuses, runs)

    assert first.result(timeout=30) < last.result(timeout=30)
    with pytest.raises(ValueError, match="decided no"):
        bad.result(timeout=30)
    assert runs == ["a", "refuses", "b"]  # each ran once, on either driver
    assert writer.reruns == 0
    assert read_streams(db_path) == {"a": ["kept"], "b": ["kept"]}


def test_a_job_failing_after_it_writes_reruns_its_batch_with_savepoints(writer: Writer, db_path: str) -> None:
    runs: list[str] = []

    def writes_then_fails(conn: Connection) -> None:
        runs.append("bad")
        store.append(conn, "bad", "note", 0, [Noted(text="must vanish")], {}, AT)
        raise ValueError("failed after writing")

    first, bad, last = one_batch_around(writer, writes_then_fails, runs)

    positions = first.result(timeout=30), last.result(timeout=30)
    with pytest.raises(ValueError, match="after writing"):
        bad.result(timeout=30)
    # sqlite3 runs unguarded first, stops at the failure and runs the batch again; libsql guards every job
    expected = ["a", "bad", "a", "bad", "b"] if Path(db_path).parent.name == "sqlite3" else ["a", "bad", "b"]
    assert runs == expected
    assert writer.reruns == (1 if Path(db_path).parent.name == "sqlite3" else 0)
    assert read_streams(db_path) == {"a": ["kept"], "b": ["kept"]}
    conn = open_db(db_path)
    try:  # the answers are the rows that were committed
        assert sorted(e.position for e in store.iter_all(conn)) == sorted(positions)
    finally:
        conn.close()


def test_before_commit_runs_once_per_batch_inside_its_transaction(db_path: str) -> None:
    calls: list[int] = []

    def before_commit(conn: Connection) -> None:  # records the head the batch is about to commit
        calls.append(store.head(conn))
        conn.execute(
            "INSERT INTO claims (kind, key, owner, claimed_at) VALUES ('batch', ?, 'writer', ?)", (str(len(calls)), AT)
        )

    w = Writer(lambda: open_db(db_path), before_commit=before_commit)
    w.start()
    try:
        release, gate = hold_writer(w)
        jobs = [w.submit_nowait(appender(f"s{i}", "x")) for i in range(5)]
        release.set()
        gate.result(timeout=30)
        positions = [job.result(timeout=30) for job in jobs]

        def failing(conn: Connection) -> None:
            raise ValueError("no")

        with pytest.raises(ValueError):
            w.run_sync(failing)  # a batch with no successful job: nothing to commit, no hook
    finally:
        w.stop()

    assert calls == [0, max(positions)]  # the gate's batch, then the five together; not the failed one
    conn = open_db(db_path)
    try:
        assert conn.execute("SELECT COUNT(*) FROM claims WHERE kind = 'batch'").fetchone()[0] == 2
    finally:
        conn.close()


def test_a_failing_before_commit_fails_the_whole_batch(db_path: str) -> None:
    def before_commit(conn: Connection) -> None:
        raise RuntimeError("disk on fire")

    w = Writer(lambda: open_db(db_path), before_commit=before_commit)
    w.start()
    try:
        with pytest.raises(ServiceUnavailable):
            w.run_sync(appender("lost", "never committed"))
    finally:
        w.stop()

    assert read_streams(db_path) == {}


def test_submit_after_stop_is_refused(db_path: str) -> None:
    w = Writer(lambda: open_db(db_path))
    w.start()
    w.stop()

    assert not w.alive
    with pytest.raises(WriterStopped):
        w.submit_nowait(appender("late", "x"))


CRASH_SCRIPT = dedent(
    """
    import os
    import sys
    import threading
    from dataclasses import dataclass

    from core import store
    from core.db import connect
    from core.events.base import Event
    from core.writer import Writer

    AT = "2026-11-23T10:00:00.000Z"


    @dataclass(frozen=True, slots=True, kw_only=True)
    class Noted(Event):
        TYPE = "Noted"
        text: str


    path = sys.argv[1]
    writer = Writer(lambda: connect(path, synchronous="FULL"))
    writer.start()
    started, release = threading.Event(), threading.Event()


    def gate(conn):
        store.append(conn, "committed-before", "note", 0, [Noted(text="durable")], {}, AT)
        started.set()
        release.wait(30)


    def job_a(conn):
        store.append(conn, "stream-a", "note", 0, [Noted(text="a1"), Noted(text="a2")], {}, AT)
        conn.execute("INSERT INTO claims (kind, key, owner, claimed_at) VALUES ('email', 'a@x', 'a', ?)", (AT,))


    def job_b(conn):
        store.append(conn, "stream-b", "note", 0, [Noted(text="b1")], {}, AT)
        # Prove A ran earlier in this same, still open, transaction before dying.
        seen = conn.execute("SELECT COUNT(*) FROM events WHERE stream_id = 'stream-a'").fetchone()[0]
        os._exit(1 if seen == 2 else 3)


    writer.submit_nowait(gate)
    started.wait(30)
    writer.submit_nowait(job_a)
    writer.submit_nowait(job_b)
    release.set()
    threading.Event().wait(30)
    os._exit(4)  # never reached when job B ran
    """
)


def test_a_crash_mid_batch_leaves_no_half_applied_command(db_path: str, tmp_path: Path) -> None:
    script = tmp_path / "crash.py"
    script.write_text(CRASH_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    result = subprocess.run(
        [sys.executable, str(script), db_path], cwd=REPO, env=env, capture_output=True, timeout=120, check=False
    )

    assert result.returncode == 1, result.stderr.decode()
    conn = open_db(db_path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert store.load_stream(conn, "stream-a") == []
        assert store.load_stream(conn, "stream-b") == []
        assert conn.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0
        # The batch that committed before the crash is durable.
        assert [e.data["text"] for e in store.load_stream(conn, "committed-before")] == ["durable"]
        assert store.head(conn) == 1
    finally:
        conn.close()
