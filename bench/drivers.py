"""`python -m bench.drivers`: the two local drivers, `libsql` and stdlib `sqlite3`, on the same kind of file.

For each driver, on a fresh WAL file with `synchronous=FULL` (as the server opens it, core.db.connect):

* point SELECT by primary key on 1,000 rows (µs per statement);
* an indexed INSERT inside an open transaction, the projectors' typical statement (µs);
* a durable commit: `BEGIN IMMEDIATE; INSERT; COMMIT` (ms);
* **event-loop share**: while a second thread runs transactions (20 inserts and a commit, as the
  writer does), how much of its solo speed a pure-Python loop in the main thread keeps. A driver
  that releases the GIL while SQLite works keeps it near 1.0; one that holds it steals that time
  from the event loop, which is what the server's main thread is.

Prints a Markdown table; everything bounded (fixed counts, fixed 2 s windows).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.run import host_info, save_results
from core.db import Connection, connect

ROWS = 1000
SELECTS = 20_000
INSERTS = 20_000
COMMITS = 500
WINDOW_S = 2.0
BURST = 2000  # iterations between two I/O waits: about 50 µs of work, a request's worth on the loop
DRIVERS = ("sqlite3", "libsql")


def fresh(path: Path, driver: str) -> Connection:
    conn = connect(str(path), synchronous="FULL", driver=driver)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, body TEXT NOT NULL)")
    conn.execute("CREATE INDEX t_owner ON t (owner)")
    conn.execute("BEGIN IMMEDIATE")
    for i in range(ROWS):
        conn.execute("INSERT INTO t (owner, body) VALUES (?, ?)", (f"owner-{i % 50}", "x" * 200))
    conn.execute("COMMIT")
    return conn


def per_call(fn: object, n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        fn(i)  # type: ignore[operator]
    return (time.perf_counter() - started) / n


def spin(seconds: float) -> int:
    """Pure-Python work standing in for the event loop: bursts of work, each ended by a wait for I/O
    (`time.sleep(0)` releases the GIL as an epoll wait does). Returns the iterations done in `seconds`."""
    n, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(BURST):
            n += 1
        time.sleep(0)
    return n


def loop_share(conn: Connection) -> tuple[float, float]:
    """(main-thread progress while a writer thread commits / alone, writer commits per second)."""
    alone = spin(WINDOW_S)
    stop = threading.Event()
    commits = 0

    def writer() -> None:
        nonlocal commits
        while not stop.is_set():
            conn.execute("BEGIN IMMEDIATE")
            for _ in range(20):
                conn.execute("INSERT INTO t (owner, body) VALUES (?, ?)", ("writer", "y" * 200))
            conn.execute("COMMIT")
            commits += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        during = spin(WINDOW_S)
    finally:
        stop.set()
        thread.join(timeout=30)
    return during / alone, commits / WINDOW_S


def measure(driver: str, workdir: Path) -> dict[str, float]:
    conn = fresh(workdir / f"{driver}.db", driver)
    try:
        select = per_call(
            lambda i: conn.execute("SELECT body FROM t WHERE id = ?", (i % ROWS + 1,)).fetchone(), SELECTS
        )
        conn.execute("BEGIN IMMEDIATE")
        insert = per_call(
            lambda i: conn.execute("INSERT INTO t (owner, body) VALUES (?, ?)", (f"o-{i % 97}", "z" * 200)), INSERTS
        )
        conn.execute("COMMIT")

        def commit(i: int) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (owner, body) VALUES (?, ?)", ("c", "c"))
            conn.execute("COMMIT")

        durable = statistics.median(per_call(commit, COMMITS // 5) for _ in range(5))
        share, commits = loop_share(conn)
    finally:
        conn.close()
    return {
        "select_us": select * 1e6,
        "insert_us": insert * 1e6,
        "commit_ms": durable * 1e3,
        "share": share,
        "cps": commits,
    }


def main() -> int:
    started = datetime.now(UTC)
    print(
        f"python {sys.version.split()[0]}; synchronous=FULL, WAL; {ROWS} rows; medians where repeated", file=sys.stderr
    )
    print(
        "| driver | point SELECT | indexed INSERT (in a transaction) | durable commit "
        "| event-loop share while a thread writes | writer commits/s meanwhile |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    measured = {}
    with tempfile.TemporaryDirectory(prefix="megilance-drivers-") as tmp:
        for driver in DRIVERS:
            r = measured[driver] = measure(driver, Path(tmp))
            print(
                f"| `{driver}` | {r['select_us']:.1f} µs | {r['insert_us']:.1f} µs | {r['commit_ms']:.2f} ms | "
                f"{r['share']:.2f} | {r['cps']:,.0f} |"
            )
    save_results("drivers", started, {"machine": host_info(), "drivers": measured})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
