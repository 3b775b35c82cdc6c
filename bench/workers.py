"""`python -m bench.workers`: one worker against two (`megilance serve`, WORKERS) on seed-demo data.

Uncached board pages (every request a distinct key) on one worker, then BENCH_ROUNDS (3) rounds of two
workers and one worker (each 2-worker run against the mean of the 1-worker runs either side of it; the median
round is reported), each with wrk's own CPU time; then proposals at 64 connections the same way. Results in
bench/results/<date>-workers.json.
"""

from __future__ import annotations

import resource
import statistics
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from bench.marketplace import MarketBench, add_projects, check, no_op_budget_lua, scenario_proposals
from bench.run import (
    CONNECTIONS,
    DURATION_S,
    ROUNDS,
    WARMUP_S,
    Alternation,
    Row,
    machine_info,
    progress,
    save_results,
    speed_check,
    table,
)
from bench.servers import Server, free_port, megilance_command
from bench.wrk import WrkResult, ensure_wrk, run_wrk

BOARD = "/api/projects?limit=20"
READ_CONNECTIONS = 64  # enough to keep two processes busy
TARGET = 1.6
EXTRA_PROJECTS = 2_500


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
    """One worker, then ROUNDS rounds of (two workers, one worker): each 2-worker run against the 1-worker runs
    either side of it, and the median round reported."""
    ones, twos = [board_reads(bench, 1)], []
    for _ in range(ROUNDS):
        twos.append(board_reads(bench, 2))
        ones.append(board_reads(bench, 1))
    alternation = Alternation([run for run, _ in ones], [run for run, _ in twos])
    ratio = alternation.ratio
    median_two = alternation.median_app()
    wrk_cpu = {id(run): cpu for run, cpu in ones + twos}

    def row(label: str, result: WrkResult, runs: list[tuple[WrkResult, float]], note: str, **judged: Any) -> Row:
        return Row(
            "workers",
            label,
            result.rps,
            result.p50_ms,
            result.p99_ms,
            str(result.error_total),
            notes=f"wrk -t1 -c{READ_CONNECTIONS}: wrk itself used {wrk_cpu[id(result)]:.2f} of a core; {note}",
            detail={"runs": [{**run.to_dict(), "wrk_cpu_cores": cpu} for run, cpu in runs]},
            **judged,
        )

    one_rates = " / ".join(f"{run.rps:,.0f}" for run, _ in ones)
    return [
        row("board, cache defeated: 1 worker", ones[0][0], ones, f"runs {one_rates} req/s", ratio=1.0),
        row(
            "board, cache defeated: 2 workers (the median round)",
            median_two,
            twos,
            alternation.rounds_note(),
            ratio=ratio,
            target=f">= {TARGET} x 1 worker",
            ok=ratio >= TARGET and all(run.error_total == 0 for run, _ in twos),
        ),
    ]


def proposal_rows(bench: MarketBench) -> list[Row]:
    """One worker, then ROUNDS rounds of (two workers, one worker); each run adds proposals, so each 2-worker run
    is against the 1-worker runs either side of it, and the median round is reported."""
    # Each run prepares (DURATION_S + WARMUP_S) * 10,000 unused (freelancer, project) pairs and takes about a fifth
    # of them: with 133 freelancers, seven runs need a few thousand open projects, not the 1,000 seeded.
    add_projects(bench, EXTRA_PROJECTS)
    runs = []
    for workers in (1, *(2, 1) * ROUNDS):
        app_with(bench, workers)
        row = scenario_proposals(bench)[0]
        row.name = f"proposals, -c64: {workers} worker{'s' if workers > 1 else ''}"
        runs.append(row)
    ones, twos = runs[0::2], runs[1::2]
    ratios = [
        (two.rps or 0.0) / mean if (mean := ((before.rps or 0.0) + (after.rps or 0.0)) / 2) else 0.0
        for two, before, after in zip(twos, ones, ones[1:], strict=False)
    ]
    order = sorted(range(len(ratios)), key=ratios.__getitem__)
    median_two = twos[order[len(order) // 2]]
    median_two.name += " (the median round)"
    median_two.ratio = statistics.median(ratios)
    median_two.target = ">= 1 worker"
    median_two.ok = median_two.ratio >= 1.0 and all(two.errors == "0" for two in twos)
    median_two.notes = "; ".join(n for n in (median_two.notes, "rounds " + ", ".join(f"{r:.2f}" for r in ratios)) if n)
    return [ones[0], median_two, *ones[1:], *(two for two in twos if two is not median_two)]


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
