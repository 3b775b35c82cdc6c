"""`python -m bench.workers`: one worker against two (`megilance serve`, WORKERS) on seed-demo data.

Uncached board pages (every request a distinct key) on one worker, two workers, one worker again (the ratio
is against the mean of the two one-worker runs), each with wrk's own CPU time; then proposals at 64
connections on one worker, two, and one again, the same way. Results in bench/results/<date>-workers.json.
"""

from __future__ import annotations

import resource
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from bench.marketplace import MarketBench, check, no_op_budget_lua, scenario_proposals
from bench.run import CONNECTIONS, DURATION_S, WARMUP_S, Row, machine_info, progress, save_results, speed_check, table
from bench.servers import Server, free_port, megilance_command
from bench.wrk import WrkResult, ensure_wrk, run_wrk

BOARD = "/api/projects?limit=20"
READ_CONNECTIONS = 64  # enough to keep two processes busy
TARGET = 1.6


def app_with(bench: MarketBench, workers: int) -> Server:
    """Replace the bench's app by one with `workers` processes, on the same data and secret."""
    env = {**bench.app.env, "WORKERS": str(workers)}
    bench.app.stop()
    port = free_port()
    cmd = [megilance_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    bench._app = Server(f"app-{workers}w", cmd, port, "/api/health/live", env, bench.workdir).start()
    return bench._app


def timed_wrk(url: str, headers: dict[str, str], lua: str, connections: int) -> tuple[WrkResult, float]:
    """One wrk run, and wrk's own CPU use in cores (user + system seconds over the run's seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = run_wrk(url, duration_s=DURATION_S, connections=connections, headers=headers, extra_lua=lua)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result, cpu / result.duration_s


def board_reads(bench: MarketBench, workers: int) -> tuple[WrkResult, float]:
    server = app_with(bench, workers)
    url = server.url(BOARD)
    check(url, bench.auth())
    lua = no_op_budget_lua(BOARD)
    if WARMUP_S > 0:
        run_wrk(url, duration_s=WARMUP_S, connections=READ_CONNECTIONS, headers=bench.auth(), extra_lua=lua)
    progress(f"board, cache defeated, {workers} worker(s): {DURATION_S}s at -c{READ_CONNECTIONS}")
    return timed_wrk(url, bench.auth(), lua, READ_CONNECTIONS)


def read_rows(bench: MarketBench) -> list[Row]:
    first = board_reads(bench, 1)
    two = board_reads(bench, 2)
    second = board_reads(bench, 1)
    base = (first[0].rps + second[0].rps) / 2
    ratio = two[0].rps / base if base else 0.0

    def row(label: str, run: tuple[WrkResult, float], ratio_: float | None, target: str, ok: bool | None) -> Row:
        result, wrk_cpu = run
        return Row(
            "workers",
            label,
            result.rps,
            result.p50_ms,
            result.p99_ms,
            str(result.error_total),
            ratio_,
            target,
            ok,
            notes=f"wrk -t1 -c{READ_CONNECTIONS}: wrk itself used {wrk_cpu:.2f} of a core",
            detail={"run": result.to_dict(), "wrk_cpu_cores": wrk_cpu},
        )

    return [
        row("board, cache defeated: 1 worker (before)", first, 1.0, "", None),
        row("board, cache defeated: 2 workers", two, ratio, f">= {TARGET} x 1 worker", ratio >= TARGET),
        row("board, cache defeated: 1 worker (after)", second, 1.0, "", None),
    ]


def proposal_rows(bench: MarketBench) -> list[Row]:
    """One worker, two, one again (each run adds proposals: the ratio is against the mean of the runs around it)."""
    runs = []
    for workers in (1, 2, 1):
        app_with(bench, workers)
        runs.append(scenario_proposals(bench)[0])
    first, two, second = runs
    first.name, two.name, second.name = (
        "proposals, -c64: 1 worker (before)",
        "proposals, -c64: 2 workers",
        "proposals, -c64: 1 worker (after)",
    )
    base = ((first.rps or 0.0) + (second.rps or 0.0)) / 2
    two.ratio = (two.rps or 0.0) / base if base else 0.0
    two.target, two.ok = ">= 1 worker", two.ratio >= 1.0 and two.errors == "0"
    return runs


def main(argv: list[str]) -> int:
    ensure_wrk()
    started = datetime.now(UTC)
    machine = machine_info()
    bench = MarketBench()
    rows: list[Row] = []
    try:
        seeded = bench.seed()
        if "proposals" not in argv:
            rows += read_rows(bench)
        if "reads" not in argv:
            rows += proposal_rows(bench)
    finally:
        bench.close()
    machine["speed at end"] = speed_check()
    print("\n".join(f"- {key}: {value}" for key, value in machine.items()))
    print(f"- data: {seeded['output']}; GET: wrk -t1 -c{READ_CONNECTIONS} (default -c{CONNECTIONS}), {DURATION_S}s")
    print(table(rows))
    record: dict[str, Any] = {"machine": machine, "seeded": seeded, "rows": [asdict(row) for row in rows]}
    save_results("workers", started, record)
    return 0 if all(row.ok is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
