"""`python -m bench.lag`: replication lag from a primary to one edge under ~500 writes/s, and edge vs primary reads.

Both servers are real `megilance serve` processes on 127.0.0.1 (bench/servers.py), DB_SYNCHRONOUS=FULL.

Writes: `POST /api/projects` as a client, open loop (write i is due at t0 + i / rate) from asyncio on uvloop over
LAG_CONCURRENCY keep-alive connections. The client is a minimal HTTP/1.1 writer/reader on asyncio streams, not
httpx: httpx.AsyncClient cost 1.6-3.4 ms of CPU per request here (more than the server's ~1.5 ms per write), so
on 2 cores it could not offer 500 writes/s; the raw client costs ~0.2 ms. The achieved rate is reported.

Lag, per write: from the moment the client receives the primary's 2xx (which carries the write's position in
`X-Consistency-Token`) to the first moment a reader on the edge could observe that position. A separate process
polls the edge's `GET /api/health/live` on one keep-alive socket; every response carries `X-Consistency-Token` =
the edge's read-store position when the request arrived (it advances only after the applied batch committed, so
rows up to it are readable). The write counts as visible at the *receive* time of the first poll whose position
>= the write's: an upper bound, late by at most one poll cycle (printed). No consistency token is sent to the
edge: a token would make the edge wait and measure the wait. All timestamps are CLOCK_MONOTONIC (shared by the
processes). A lag below 0 (the edge applied the event before the client had read the primary's answer) is
counted as 0 ms and reported.

Reads: wrk on `GET /api/projects/{id}` (authenticated, no token: the edge answers from its own store) against the
primary, the edge, the primary again; ratio = edge req/s / mean of the two primary runs (target >= 1).

Knobs: LAG_RATE (writes/s, 500), LAG_DURATION (s, 10), LAG_CONCURRENCY (connections, 64), LAG_POLL_PAUSE_US
(pause between polls, 500), LAG_WRK_DURATION (s, 8), LAG_WRK_CONNECTIONS (32), BENCH_WARMUP (s, 2).
"""

from __future__ import annotations

import asyncio
import bisect
import json
import multiprocessing
import secrets
import shutil
import socket
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection as Pipe
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import httpx

from bench.run import env_int, machine_info, percentile, progress, run_loop, save_results
from bench.servers import Server, app_env, bench_workdir, free_port, megilance_command
from bench.wrk import WrkResult, ensure_wrk, run_wrk

RATE = env_int("LAG_RATE", 500)
DURATION_S = env_int("LAG_DURATION", 10)
CONCURRENCY = env_int("LAG_CONCURRENCY", 64)
POLL_PAUSE_US = env_int("LAG_POLL_PAUSE_US", 500)
WRK_DURATION_S = env_int("LAG_WRK_DURATION", 8)
WRK_CONNECTIONS = env_int("LAG_WRK_CONNECTIONS", 32)
WARMUP_S = env_int("BENCH_WARMUP", 2)
TARGET_P50_MS, TARGET_P99_MS = 10.0, 50.0
PRIMARY_REGION, EDGE_REGION = "iad", "ams"
CATCH_UP_DEADLINE_S = 15.0


# -- the two servers ---------------------------------------------------------------------------------------------


def region_server(name: str, workdir: Path, env: dict[str, str]) -> Server:
    port = free_port()
    cmd = [megilance_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    return Server(name, cmd, port, "/api/health/ready", app_env(workdir / f"{name}-data", **env), workdir)


def register(base_url: str) -> str:
    email = f"lag-{secrets.token_hex(6)}@bench.example.com"
    body = {"email": email, "password": "bench-password-123", "name": "Lag Bench", "role": "client"}
    response = httpx.post(base_url + "/api/auth/register", json=body, timeout=30.0)
    if response.status_code != 201:
        raise RuntimeError(f"register failed: HTTP {response.status_code} {response.text[:300]}")
    return str(response.json()["access_token"])


def project(i: int) -> dict[str, Any]:
    return {
        "title": f"Lag bench project {i}",
        "description": f"Written on the primary, read on the edge ({i}).",
        "category": "engineering",
        "budget_type": "fixed",
        "budget_min": "100",
        "budget_max": "200",
        "experience_level": "entry",
        "estimated_duration": "1 week",
        "skills": ["python"],
    }


# -- the poller (its own process, so the write load does not delay its clock reads) -----------------------------


def read_response(stream: BinaryIO) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length body (what uvicorn sends for these routes)."""
    status = int(stream.readline().split(b" ", 2)[1])
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return status, headers, stream.read(int(headers.get("content-length", "0")))


def poll_positions(host: str, port: int, polling: MpEvent, stop: MpEvent, out: Pipe) -> None:
    """Back-to-back GET /api/health/live on one keep-alive socket; records (sent, received, position) on change."""
    changes: list[tuple[float, float, int]] = []
    cycles, last, pause = 0, -1, POLL_PAUSE_US / 1e6
    request = f"GET /api/health/live HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    began = time.monotonic()
    with socket.create_connection((host, port), timeout=5.0) as sock, sock.makefile("rb") as stream:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while not stop.is_set():
            sent = time.monotonic()
            sock.sendall(request)
            _, headers, _ = read_response(stream)
            received = time.monotonic()
            cycles += 1
            position = int(headers["x-consistency-token"])
            if position != last:
                changes.append((sent, received, position))
                last = position
                polling.set()  # the first answer is in: the writes may begin
            if pause:
                time.sleep(pause)
    out.send({"changes": changes, "cycles": cycles, "elapsed_s": time.monotonic() - began})
    out.close()


# -- the write load ------------------------------------------------------------------------------------------------


@dataclass
class Write:
    i: int
    sent: float
    done: float
    status: int
    position: int


class Connection:
    """A minimal HTTP/1.1 keep-alive client connection on asyncio streams (requests are prebuilt bytes)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> tuple[int, dict[str, str]]:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        try:
            self.writer.write(raw)
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head[:-4].split(b"\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
            await self.reader.readexactly(int(headers.get("content-length", "0")))
            return int(lines[0].split(b" ", 2)[1]), headers
        except (OSError, asyncio.IncompleteReadError):
            self.close()
            raise

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def drive(base_url: str, token: str, rate: int, duration_s: int) -> tuple[list[Write], float]:
    """Open loop: write i is sent at t0 + i / rate on one of CONCURRENCY keep-alive connections.

    Returns the writes and the elapsed time. A write that finds every connection busy waits for one (the
    schedule slips; the achieved rate is reported).
    """
    url = urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    n = rate * duration_s
    requests = []
    for i in range(n):
        body = json.dumps(project(i)).encode()
        requests.append(
            (
                f"POST /api/projects HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
    pool: asyncio.Queue[Connection] = asyncio.Queue()  # FIFO: every connection stays warm
    for _ in range(CONCURRENCY):
        pool.put_nowait(Connection(host, port))
    writes: list[Write] = []

    async def one(i: int) -> None:
        conn = await pool.get()
        sent = time.monotonic()
        try:
            status, headers = await conn.request(requests[i])
        except (OSError, asyncio.IncompleteReadError):
            status, headers = 0, {}
        done = time.monotonic()
        pool.put_nowait(conn)
        writes.append(Write(i, sent, done, status, int(headers.get("x-consistency-token", "-1"))))

    tasks: list[asyncio.Task[None]] = []
    began = time.monotonic()
    for i in range(n):
        delay = began + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - began
    while not pool.empty():
        pool.get_nowait().close()
    return writes, elapsed


def edge_position(client: httpx.Client, edge: Server) -> int:
    return int(client.get(edge.url("/api/health/live")).headers["x-consistency-token"])


# -- the report ----------------------------------------------------------------------------------------------------


@dataclass
class Result:
    writes_sent: int
    writes_2xx: int
    write_rate: float
    write_p50_ms: float
    write_p99_ms: float
    lag_p50_ms: float
    lag_p90_ms: float
    lag_p99_ms: float
    lag_max_ms: float
    lag_mean_ms: float
    visible_before_2xx: int
    not_visible: int
    poll_cycle_ms: float
    polls: int
    reads: dict[str, dict[str, Any]]
    read_ratio: float


def lags(writes: list[Write], changes: list[tuple[float, float, int]]) -> tuple[list[float], int, int]:
    """Per 2xx write: seconds from its 2xx to the first poll that saw its position (upper bound)."""
    positions = [c[2] for c in changes]
    out: list[float] = []
    early = missing = 0
    for w in writes:
        if not 200 <= w.status < 300:
            continue
        k = bisect.bisect_left(positions, w.position)
        if k == len(positions):
            missing += 1
            continue
        lag = changes[k][1] - w.done
        if lag <= 0:
            early += 1
        out.append(max(0.0, lag))
    return out, early, missing


def write_timeline(writes: list[Write], changes: list[tuple[float, float, int]]) -> list[list[float]]:
    positions = [c[2] for c in changes]
    t0 = min((w.sent for w in writes), default=0.0)
    rows = []
    for w in sorted(writes, key=lambda w: w.sent):
        k = bisect.bisect_left(positions, w.position)
        if 200 <= w.status < 300 and k < len(positions):
            seen = changes[k][1]
            rows.append([round((t - t0) * 1000, 3) for t in (w.sent, w.done, seen)] + [w.position])
    return rows


def verdict(ok: bool) -> str:
    return "yes" if ok else "**NO**"


def markdown(r: Result) -> str:
    edge, before, after = r.reads["edge"], r.reads["primary (before)"], r.reads["primary (after)"]
    primary_rps = (before["rps"] + after["rps"]) / 2
    lines = [
        "| measure | value | target | ok |",
        "|---|---:|---|---|",
        f"| writes on the primary (POST /api/projects) | {r.writes_2xx}/{r.writes_sent} 2xx at {r.write_rate:.0f}/s "
        f"(p50 {r.write_p50_ms:.1f} ms, p99 {r.write_p99_ms:.1f} ms) | ~{RATE}/s for {DURATION_S} s | "
        f"{verdict(r.writes_2xx == r.writes_sent and r.write_rate >= 0.9 * RATE)} |",
        f"| replication lag p50 | {r.lag_p50_ms:.2f} ms | < {TARGET_P50_MS:.0f} ms | "
        f"{verdict(r.lag_p50_ms < TARGET_P50_MS)} |",
        f"| replication lag p99 | {r.lag_p99_ms:.2f} ms | < {TARGET_P99_MS:.0f} ms | "
        f"{verdict(r.lag_p99_ms < TARGET_P99_MS)} |",
        f"| replication lag p90 / max / mean | {r.lag_p90_ms:.2f} / {r.lag_max_ms:.2f} / {r.lag_mean_ms:.2f} ms "
        "| - | - |",
        f"| writes visible on the edge before the client read the 2xx (counted 0 ms) | {r.visible_before_2xx} "
        "| - | - |",
        f"| writes never seen on the edge | {r.not_visible} | 0 | {verdict(r.not_visible == 0)} |",
        f"| poll cycle on the edge (resolution) | {r.poll_cycle_ms:.2f} ms ({r.polls} polls) | - | - |",
        f"| GET /api/projects/{{id}} on the primary | {before['rps']:,.0f} / {after['rps']:,.0f} req/s (before / "
        f"after), p99 {before['p99_ms']:.1f} / {after['p99_ms']:.1f} ms | - | - |",
        f"| GET /api/projects/{{id}} on the edge | {edge['rps']:,.0f} req/s, p99 {edge['p99_ms']:.1f} ms | "
        f">= primary | {verdict(edge['rps'] >= primary_rps)} |",
        f"| edge / primary read ratio | {r.read_ratio:.2f} | >= 1.00 | {verdict(r.read_ratio >= 1.0)} |",
    ]
    return "\n".join(lines)


def wrk_summary(result: WrkResult) -> dict[str, Any]:
    errors = result.error_total
    if errors:
        raise RuntimeError(f"wrk {result.url}: {errors} errors {result.errors}")
    return {"rps": result.rps, "p50_ms": result.p50_ms, "p99_ms": result.p99_ms, "requests": result.requests}


def read_bench(url: str, token: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    if WARMUP_S:
        run_wrk(url, duration_s=WARMUP_S, connections=WRK_CONNECTIONS, headers=headers)
    return wrk_summary(run_wrk(url, duration_s=WRK_DURATION_S, connections=WRK_CONNECTIONS, headers=headers))


def main() -> int:
    ensure_wrk()
    started = datetime.now(UTC)
    machine = machine_info()
    workdir = bench_workdir()
    shared = {
        "SECRET_KEY": secrets.token_urlsafe(48),  # one key: tokens the primary issues verify on the edge
        "REPLICATION_TOKEN": secrets.token_urlsafe(32),
        "PRIMARY_REGION": PRIMARY_REGION,
    }
    primary = region_server("primary", workdir, {**shared, "REGION": PRIMARY_REGION})
    edge: Server | None = None
    try:
        progress("starting the primary")
        primary.start()
        token = register(primary.base_url)  # the log is not empty when the edge starts (its first poll returns)
        progress("starting the edge")
        edge = region_server("edge", workdir, {**shared, "REGION": EDGE_REGION, "PRIMARY_URL": primary.base_url})
        edge.start()

        ctx = multiprocessing.get_context("spawn")
        polling, stop = ctx.Event(), ctx.Event()
        receiver, sender = ctx.Pipe(duplex=False)
        poller = ctx.Process(target=poll_positions, args=("127.0.0.1", edge.port, polling, stop, sender), daemon=True)
        poller.start()
        sender.close()
        if not polling.wait(30.0):  # a spawned interpreter takes a while to import; writes wait for its first poll
            raise RuntimeError("the poller did not start")
        with httpx.Client(timeout=5.0) as client:
            if edge_position(client, edge) < 1:
                raise RuntimeError("the edge has not replicated the registration")
            progress(f"writing {RATE}/s for {DURATION_S} s on the primary")
            writes, elapsed = run_loop(lambda: drive(primary.base_url, token, RATE, DURATION_S))
            head = max(w.position for w in writes)
            deadline = time.monotonic() + CATCH_UP_DEADLINE_S
            while edge_position(client, edge) < head and time.monotonic() < deadline:
                time.sleep(0.01)
        stop.set()
        if not receiver.poll(30.0):
            raise RuntimeError("the poller sent no results")
        polled: dict[str, Any] = receiver.recv()
        poller.join(10.0)

        changes = polled["changes"]
        samples, early, missing = lags(writes, changes)
        timeline = write_timeline(writes, changes)
        ok_writes = [w for w in writes if 200 <= w.status < 300]
        latencies = [w.done - w.sent for w in ok_writes]

        with httpx.Client(timeout=5.0, headers={"Authorization": f"Bearer {token}"}) as client:
            listing = client.get(primary.url("/api/projects"), params={"limit": 1}).json()  # a written project
            project_id = listing["items"][0]["id"]
            check = client.get(edge.url(f"/api/projects/{project_id}"))
            if check.status_code != 200 or check.headers.get("x-region") != EDGE_REGION:
                raise RuntimeError(f"edge read not served locally: {check.status_code} {check.headers}")
        progress("wrk: primary, edge, primary")
        path = f"/api/projects/{project_id}"
        reads = {
            "primary (before)": read_bench(primary.url(path), token),
            "edge": read_bench(edge.url(path), token),
            "primary (after)": read_bench(primary.url(path), token),
        }
        primary_rps = (reads["primary (before)"]["rps"] + reads["primary (after)"]["rps"]) / 2
        ms = [s * 1000 for s in samples]
        result = Result(
            writes_sent=len(writes),
            writes_2xx=len(ok_writes),
            write_rate=len(writes) / elapsed,
            write_p50_ms=percentile(latencies, 50) * 1000,
            write_p99_ms=percentile(latencies, 99) * 1000,
            lag_p50_ms=percentile(ms, 50),
            lag_p90_ms=percentile(ms, 90),
            lag_p99_ms=percentile(ms, 99),
            lag_max_ms=max(ms) if ms else float("nan"),
            lag_mean_ms=statistics.fmean(ms) if ms else float("nan"),
            visible_before_2xx=early,
            not_visible=missing,
            poll_cycle_ms=polled["elapsed_s"] / max(1, polled["cycles"]) * 1000,
            polls=polled["cycles"],
            reads=reads,
            read_ratio=reads["edge"]["rps"] / primary_rps,
        )
    except BaseException:
        for server in (edge, primary):
            if server is not None:
                alive = server.proc is not None and server.proc.poll() is None
                progress(f"{server.name} ({'running' if alive else 'exited'}) stderr tail:\n{server.tail()}")
        raise
    finally:
        for server in (edge, primary):
            if server is not None:
                server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    finished = datetime.now(UTC)

    print(f"# megilance replication lag — {started:%Y-%m-%d %H:%M:%SZ} ({(finished - started).total_seconds():.0f}s)")
    print()
    for key, value in machine.items():
        print(f"- {key}: {value}")
    print(
        f"- primary ({PRIMARY_REGION}) + 1 edge ({EDGE_REGION}), `megilance serve` each, 127.0.0.1, "
        f"DB_SYNCHRONOUS=FULL; writes: open loop at {RATE}/s for {DURATION_S} s from asyncio (uvloop), raw HTTP/1.1 "
        f"on {CONCURRENCY} keep-alive connections (httpx.AsyncClient costs more CPU per request than the server)"
    )
    print(
        "- lag = receive time of the first edge poll (`GET /api/health/live` back to back from a separate process; "
        "its `X-Consistency-Token` = the edge's read-store position) at or past the write's position - receive time "
        "of the primary's 2xx; an upper bound, late by at most one poll cycle; no consistency token is sent"
    )
    print(
        f"- reads: wrk -t1 -c{WRK_CONNECTIONS} -d{WRK_DURATION_S}s (+{WARMUP_S}s warm-up) GET /api/projects/{{id}} "
        "with a bearer token; ratio = edge / mean(primary before, primary after)"
    )
    print()
    print(markdown(result))
    save_results(
        "regions",
        started,
        {
            "finished_at": finished.isoformat(),
            "machine": machine,
            "config": {
                "rate": RATE,
                "duration_s": DURATION_S,
                "concurrency": CONCURRENCY,
                "poll_pause_us": POLL_PAUSE_US,
                "wrk": f"-t1 -c{WRK_CONNECTIONS} -d{WRK_DURATION_S}s",
                "warmup_s": WARMUP_S,
            },
            "result": asdict(result),
            # per 2xx write, ms from the first write's send: [sent, 2xx received, first seen on the edge, position]
            "timeline": timeline,
        },
        label="full results",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
