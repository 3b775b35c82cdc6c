"""`python -m bench.libsql_clients [--idle]`: Python clients of a libSQL server, measured against sqld on 127.0.0.1.

For each client that imports in this interpreter: the time to commit one transaction of 3 INSERTs (median and
p99 of 200), the HTTP/WebSocket round trips it took, and how late a 1 ms asyncio timer fires while a thread
commits such transactions (does the client hold the GIL while it waits on the network?). With `--idle`, each
client also waits 11 s (past sqld's stream expiry) and commits again.

The project ships only `core.hrana`; the others are measured from a scratch virtualenv, e.g.
`pip install libsql==0.1.11 libsql-client==0.3.1 turso-serverless==0.1.0 orjson structlog httpx cryptography pyjwt`
then `PYTHONPATH=. python -m bench.libsql_clients`. Results in bench/results/<date>-clients.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from tempfile import mkdtemp
from typing import Any

RUNS = 200
ROWS = 3
Commit = Callable[[int], None]


def hrana_client(url: str) -> tuple[Commit, Callable[[], None]]:
    from core.hrana import HranaClient

    client = HranaClient(url)

    def commit(n: int) -> None:
        client.transaction([("INSERT INTO t (k, v) VALUES (?, ?)", (n * ROWS + i, "x" * 100)) for i in range(ROWS)])

    return commit, client.close


def libsql_remote(url: str) -> tuple[Commit, Callable[[], None]]:
    import libsql

    conn = libsql.connect(url, isolation_level=None)

    def commit(n: int) -> None:
        conn.execute("BEGIN")
        for i in range(ROWS):
            conn.execute("INSERT INTO t (k, v) VALUES (?, ?)", (n * ROWS + i, "x" * 100))
        conn.execute("COMMIT")

    return commit, conn.close


def libsql_client_ws(url: str) -> tuple[Commit, Callable[[], None]]:
    import libsql_client

    client = libsql_client.create_client_sync(url.replace("http://", "ws://"))

    def commit(n: int) -> None:
        with client.transaction() as tx:
            for i in range(ROWS):
                tx.execute("INSERT INTO t (k, v) VALUES (?, ?)", (n * ROWS + i, "x" * 100))
            tx.commit()

    return commit, client.close


def turso_serverless(url: str) -> tuple[Commit, Callable[[], None]]:
    import turso_serverless  # type: ignore[import-not-found]

    conn = turso_serverless.connect(url)
    cursor = conn.cursor()

    def commit(n: int) -> None:
        cursor.execute("BEGIN")
        for i in range(ROWS):
            cursor.execute("INSERT INTO t (k, v) VALUES (?, ?)", (n * ROWS + i, "x" * 100))
        cursor.execute("COMMIT")

    return commit, conn.close


CLIENTS: dict[str, Callable[[str], tuple[Commit, Callable[[], None]]]] = {
    "core.hrana (this project)": hrana_client,
    "libsql 0.1.11 (remote)": libsql_remote,
    "libsql-client 0.3.1 (ws)": libsql_client_ws,
    "turso-serverless 0.1.0": turso_serverless,
}


def loop_lag(commit: Commit, start: int) -> float:
    """p99 lateness (ms) of a 1 ms asyncio timer while another thread commits RUNS transactions."""
    late: list[float] = []
    done = threading.Event()

    def work() -> None:
        for n in range(RUNS):
            commit(start + n)
        done.set()

    async def ticker() -> None:
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            late.append((time.perf_counter() - before - 0.001) * 1000)

    thread = threading.Thread(target=work)
    thread.start()
    asyncio.run(ticker())
    thread.join()
    return statistics.quantiles(late, n=100)[98] if len(late) > 2 else float("nan")


def measure(name: str, url: str, reset: Callable[[], None], idle: bool) -> dict[str, Any]:
    try:
        commit, close = CLIENTS[name](url)
    except ImportError as exc:
        return {"client": name, "error": f"not installed: {exc}"}
    reset()
    out: dict[str, Any] = {"client": name}
    try:
        times = []
        for n in range(RUNS):
            began = time.perf_counter()
            commit(n)
            times.append((time.perf_counter() - began) * 1000)
        out["commit_p50_ms"] = round(statistics.median(times), 3)
        out["commit_p99_ms"] = round(statistics.quantiles(times, n=100)[98], 3)
        out["loop_lag_p99_ms"] = round(loop_lag(commit, RUNS), 3)
        if idle:
            time.sleep(11)
            try:
                commit(10 * RUNS)
                out["after_idle"] = "ok"
            except Exception as exc:
                out["after_idle"] = f"{type(exc).__name__}: {str(exc)[:120]}"
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    finally:
        close()
    return out


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from core.hrana import HranaClient
    from tests.sqld import Sqld

    started = datetime.now(UTC)
    rows = []
    with Sqld(Path(mkdtemp(prefix="megilance-clients-")) / "sqld") as server:
        admin = HranaClient(server.url)

        def reset() -> None:
            admin.execute("DROP TABLE IF EXISTS t")
            admin.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")

        for name in CLIENTS:
            rows.append(measure(name, server.url, reset, "--idle" in argv))
            print(rows[-1], flush=True)
    print("\n| client | commit p50 ms | commit p99 ms | loop lag p99 ms | after 11 s idle |\n|---|---|---|---|---|")
    for row in rows:
        cells = [row.get(k, row.get("error", "")) for k in ("commit_p50_ms", "commit_p99_ms", "loop_lag_p99_ms")]
        print(f"| {row['client']} | " + " | ".join(str(c) for c in cells) + f" | {row.get('after_idle', '-')} |")
    out = Path(__file__).resolve().parent / "results" / f"{started:%Y-%m-%d}-clients.json"
    out.parent.mkdir(exist_ok=True)
    machine = {"nproc": os.cpu_count(), "python": platform.python_version(), "server": "sqld 0.24.32 on 127.0.0.1"}
    record = {
        "started_at": started.isoformat(),
        "machine": machine,
        "runs": RUNS,
        "rows_per_commit": ROWS,
        "rows": rows,
    }
    out.write_text(json.dumps(record, indent=2))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
