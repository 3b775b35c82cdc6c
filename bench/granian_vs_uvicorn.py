"""`python -m bench.granian_vs_uvicorn`: the same app on uvicorn (`megilance serve`) and on granian.

Needs granian installed (`pip install granian`; not a dependency of the project). Both run one process
with uvloop on seed-demo data. granian gets its nearest equivalents of the server's protections: a header
read timeout (HEADER_TIMEOUT_S), a 16 KiB head buffer, and a bound on requests in flight; it has no minimum
body rate, no answer in the API's error shape for malformed or oversized heads, and no 503 past
MAX_CONNECTIONS. Order: uvicorn, granian, uvicorn (the ratio is against the mean of the two uvicorn runs).
Results in bench/results/<date>-granian.json.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from bench.marketplace import MarketBench, check, no_op_budget_lua
from bench.run import CONNECTIONS, DURATION_S, WARMUP_S, Row, machine_info, progress, save_results, speed_check, table
from bench.servers import Server, free_port, megilance_command
from bench.wrk import WrkResult, ensure_wrk, run_wrk

BOARD = "/api/projects?limit=20"


def granian_server(bench: MarketBench) -> Server:
    port = free_port()
    granian = shutil.which("granian", path=str(Path(sys.executable).parent)) or "granian"
    cmd = [
        granian,
        "--interface",
        "asgi",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--http",
        "1",
        "--http1-header-read-timeout",
        "10000",
        "--http1-buffer-size",
        str(16 * 1024),
        "--backpressure",
        "2048",
        "--no-ws",
        "--log-level",
        "warning",
        "api.app:create_app",
    ]
    return Server("granian", cmd, port, "/api/health/live", bench.app.env, bench.workdir)


def uvicorn_server(bench: MarketBench) -> Server:
    port = free_port()
    cmd = [megilance_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    return Server("uvicorn", cmd, port, "/api/health/live", bench.app.env, bench.workdir)


def measure(bench: MarketBench, server: Server, path: str, lua: str) -> WrkResult:
    with server:
        url = server.url(path)
        check(url, bench.auth())
        if WARMUP_S > 0:
            run_wrk(url, duration_s=WARMUP_S, connections=CONNECTIONS, headers=bench.auth(), extra_lua=lua)
        progress(f"{server.name}: {path} ({'cache defeated' if lua else 'cached'}), {DURATION_S}s")
        return run_wrk(url, duration_s=DURATION_S, connections=CONNECTIONS, headers=bench.auth(), extra_lua=lua)


def compare(bench: MarketBench, label: str, path: str, lua: str) -> list[Row]:
    first = measure(bench, uvicorn_server(bench), path, lua)
    other = measure(bench, granian_server(bench), path, lua)
    second = measure(bench, uvicorn_server(bench), path, lua)
    base = (first.rps + second.rps) / 2
    return [
        Row(label, f"{label}: uvicorn (mean of 2)", base, first.p50_ms, first.p99_ms, "0", 1.0,
            notes=f"runs {first.rps:,.0f} / {second.rps:,.0f} req/s",
            detail={"runs": [first.to_dict(), second.to_dict()]}),
        Row(label, f"{label}: granian", other.rps, other.p50_ms, other.p99_ms, str(other.error_total),
            other.rps / base if base else 0.0, detail={"run": other.to_dict()}),
    ]  # fmt: skip


def main(argv: list[str]) -> int:
    ensure_wrk()
    started = datetime.now(UTC)
    machine = machine_info()
    bench = MarketBench()
    rows: list[Row] = []
    try:
        seeded = bench.seed()
        bench.token()  # logs in on the bench's own app, whose secret the other servers share
        bench.app.stop()
        rows += compare(bench, "board", BOARD, "")
        rows += compare(bench, "board-nocache", BOARD, no_op_budget_lua(BOARD))
    finally:
        bench.close()
    machine["speed at end"] = speed_check()
    print("\n".join(f"- {key}: {value}" for key, value in machine.items()))
    print(f"- data: {seeded['output']}; wrk -t1 -c{CONNECTIONS} -d{DURATION_S}s")
    print(table(rows))
    save_results("granian", started, {"machine": machine, "seeded": seeded, "rows": [asdict(row) for row in rows]})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
