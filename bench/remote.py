"""`python -m bench.remote`: the primary's log on a real libSQL server (sqld on 127.0.0.1) against an embedded file.

Three configurations, each a fresh app seeded by `megilance seed-demo` and then served:
- `local`: the embedded file (DB_SYNCHRONOUS=FULL), the baseline of this run;
- `sqld`: DATABASE_URL to sqld through a proxy in this process that adds no delay (it counts requests);
- `sqld+5ms`: the same proxy adding 5 ms each way to every chunk, so group commit must hide the latency.
Rows: POST /api/proposals at 64 connections (req/s, errors), HTTP requests to the server per group commit
(proxied pipeline requests / committed batches, from `log_commits`), and the board and detail reads with the
response cache defeated: `local` and `sqld` in turns (BENCH_ROUNDS rounds), each round's `sqld` run against the
`local` runs either side of it, the median round reported. Results in bench/results/<date>-remote.json.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from api.cache import MAX_ENTRIES
from bench.marketplace import (
    LETTER,
    PROPOSAL_LUA,
    login,
    login_all,
    lua_lines,
    no_op_budget_lua,
    post_projects,
    proposal_pairs,
    rotate_ids_lua,
)
from bench.run import (
    DURATION_S,
    ROUND_S,
    ROUNDS,
    WARMUP_S,
    Alternation,
    Row,
    alternate,
    machine_info,
    progress,
    save_results,
    speed_check,
    table,
    wrk_errors,
)
from bench.servers import Server, app_server, bench_workdir
from bench.wrk import WrkResult, ensure_wrk, lua_string, run_wrk
from core.db import connect
from core.hrana import HranaClient
from tests.sqld import DelayProxy, Sqld

SEED = ["seed-demo", "--users", "120", "--projects", "600", "--proposals", "2000"]
DELAY_S = 0.005
PROPOSAL_CONNECTIONS = 64
READ_CONNECTIONS = 32


def data_rows(data_dir: Path, remote: bool, sql: str) -> list[tuple[Any, ...]]:
    conn = connect(str(data_dir / ("primary-copy.db" if remote else "megilance.db")), synchronous="NORMAL")
    try:
        return [tuple(row) for row in conn.execute(sql).fetchall()]
    finally:
        conn.close()


def seed(workdir: Path, env: dict[str, str]) -> None:
    import subprocess

    from bench.servers import app_env, megilance_command

    full = app_env(workdir / "app-data", **env)
    command = [megilance_command(), *SEED]
    done = subprocess.run(command, env=full, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"seed-demo failed: {done.stderr[-2000:]}")


def proposals(app: Server, data_dir: Path, remote: bool) -> tuple[Any, int]:
    emails = [r[0] for r in data_rows(data_dir, remote, "SELECT email FROM rm_users WHERE role = 'freelancer'")]
    tokens = asyncio.run(login_all(app.base_url, sorted(emails)))
    projects = [r[0] for r in data_rows(data_dir, remote, "SELECT id FROM rm_projects WHERE status = 'open'")]
    ids = dict(data_rows(data_dir, remote, "SELECT email, id FROM rm_users WHERE role = 'freelancer'"))
    f_index = {ids[e]: i for i, e in enumerate(sorted(emails))}
    p_index = {p: i for i, p in enumerate(projects)}
    taken = {
        (f_index[f], p_index[p])
        for p, f in data_rows(data_dir, remote, "SELECT project_id, freelancer_id FROM rm_proposals")
        if p in p_index and f in f_index
    }
    chunk = proposal_pairs(len(tokens), len(projects), taken, 0, (DURATION_S + WARMUP_S) * 6000)
    files = {}
    for name, lines in (("tokens", tokens), ("projects", projects), ("pairs_", chunk)):
        files[name] = data_dir.parent / f"{name}.txt"
        files[name].write_text("\n".join(lines) + "\n")
    script = f"local LETTER = {lua_string(LETTER)}\n" + "".join(lua_lines(n, p) for n, p in files.items())
    script += PROPOSAL_LUA
    result = run_wrk(
        app.url("/api/proposals"), duration_s=DURATION_S, connections=PROPOSAL_CONNECTIONS, extra_lua=script
    )
    return result, len(chunk)


def read_runs(app: Server, data_dir: Path, remote: bool, token: str) -> dict[str, Callable[[int], WrkResult]]:
    """The two cache-defeated reads of one app, each as a wrk run of a given length."""
    headers = {"Authorization": f"Bearer {token}"}
    every = [r[0] for r in data_rows(data_dir, remote, "SELECT id FROM rm_projects ORDER BY id")]
    ids_file = data_dir.parent / "ids.txt"
    ids_file.write_text("\n".join(every) + "\n")
    board, detail = "/api/projects?limit=20", f"/api/projects/{every[0]}"

    def run(path: str, lua: str) -> Callable[[int], WrkResult]:
        return lambda seconds: run_wrk(
            app.url(path), duration_s=seconds, connections=READ_CONNECTIONS, headers=headers, extra_lua=lua
        )

    return {"board": run(board, no_op_budget_lua(board)), "detail": run(detail, rotate_ids_lua(ids_file))}


def run_config(
    stack: ExitStack, name: str, database_url: str, proxy: DelayProxy | None, sqld_url: str, *, reads: bool = True
) -> dict[str, Any]:
    """Seed and start an app (left running in `stack`), and post proposals to it; with `reads`, then enough
    projects that the detail reads miss the response cache."""
    progress(f"{name}: seeding and starting the app")
    workdir = bench_workdir()
    env = {"DATABASE_URL": database_url} if database_url else {}
    seed(workdir, env)
    data_dir = workdir / "app-data"
    remote = bool(database_url)
    app = stack.enter_context(app_server(workdir, **env))
    token = login(app.base_url, "demo0@megilance.test")
    seq_before = _seq(sqld_url) if remote else 0
    requests_before = proxy.requests if proxy else 0
    progress(f"{name}: proposals at -c{PROPOSAL_CONNECTIONS} for {DURATION_S}s")
    result, prepared = proposals(app, data_dir, remote)
    batches = (_seq(sqld_url) - seq_before) if remote else 0
    requests = (proxy.requests - requests_before) if proxy else 0
    if reads:  # more projects than the response cache holds, so that every detail read misses it
        projects = len(data_rows(data_dir, remote, "SELECT id FROM rm_projects"))
        post_projects(
            app.url("/api/projects"),
            {"Authorization": f"Bearer {token}"},
            lambda: len(data_rows(data_dir, remote, "SELECT id FROM rm_projects")),
            MAX_ENTRIES + 1000 - projects,
        )
    return {
        "proposals": result,
        "prepared": prepared,
        "batches": batches,
        "requests": requests,
        "per_batch": round(requests / batches, 3) if batches else None,
        "reads": read_runs(app, data_dir, remote, token),
    }


def _seq(url: str) -> int:
    return int(HranaClient(url).query("SELECT COALESCE(MAX(seq), 0) FROM log_commits")[0][0])


def rows_for(results: dict[str, Any]) -> list[Row]:
    local, loop_back, delayed = results["local"], results["sqld"], results["sqld+5ms"]
    p_local, p_loop, p_delay = (r["proposals"].rps for r in (local, loop_back, delayed))
    out = [
        Row(
            "proposals-local",
            "proposals, embedded file (FULL)",
            p_local,
            local["proposals"].p50_ms,
            local["proposals"].p99_ms,
            wrk_errors(local["proposals"]),
            1.0,
            "baseline",
        ),
        Row(
            "proposals-sqld",
            "proposals, log on sqld (loopback)",
            p_loop,
            loop_back["proposals"].p50_ms,
            loop_back["proposals"].p99_ms,
            wrk_errors(loop_back["proposals"]),
            p_loop / p_local,
            ">= 1,000/s, 0 errors",
            p_loop >= 1000 and loop_back["proposals"].error_total == 0,
        ),
        Row(
            "proposals-sqld-5ms",
            "proposals, log on sqld via +5 ms each way",
            p_delay,
            delayed["proposals"].p50_ms,
            delayed["proposals"].p99_ms,
            wrk_errors(delayed["proposals"]),
            p_delay / p_loop,
            ">= 0.5 x loopback",
            p_delay >= 0.5 * p_loop,
        ),
    ]
    for name, res in (("sqld", loop_back), ("sqld+5ms", delayed)):
        out.append(
            Row(
                f"requests-per-batch-{name}",
                f"HTTP requests to sqld per group commit ({name})",
                None,
                None,
                None,
                "0",
                res["per_batch"],
                "<= 2",
                res["per_batch"] is not None and res["per_batch"] <= 2,
                notes=f"{res['requests']:,} requests, {res['batches']:,} batches",
            )
        )
    for read in ("board", "detail"):
        alternation: Alternation = results["reads"][read]
        ratio, errors = alternation.ratio, sum(run.error_total for run in alternation.app)
        median_run = alternation.median_app()
        out.append(
            Row(
                f"{read}-remote",
                f"{read}, cache defeated, log on sqld (the median round)",
                median_run.rps,
                median_run.p50_ms,
                median_run.p99_ms,
                wrk_errors(*alternation.app),
                ratio,
                ">= 0.9 x embedded file",
                ratio >= 0.9 and errors == 0,
                notes=f"embedded file: {' / '.join(f'{run.rps:,.0f}' for run in alternation.base)} req/s; "
                + alternation.rounds_note(),
                detail={"round_ratios": alternation.ratios},
            )
        )
    return out


def main(argv: list[str]) -> int:
    ensure_wrk()
    started = datetime.now(UTC)
    machine = machine_info()
    workdir = bench_workdir()
    results: dict[str, Any] = {}
    with ExitStack() as stack:
        sqld = stack.enter_context(Sqld(workdir / "sqld"))
        delayed = stack.enter_context(Sqld(workdir / "sqld-delayed"))
        loop_proxy = DelayProxy(sqld.port, 0).start()
        delay_proxy = DelayProxy(delayed.port, DELAY_S).start()
        results["local"] = run_config(stack, "local", "", None, sqld.url)
        results["sqld"] = run_config(stack, "sqld", loop_proxy.url, loop_proxy, sqld.url)
        with ExitStack() as only_proposals:  # this app is stopped before the reads, which compare the other two
            results["sqld+5ms"] = run_config(
                only_proposals, "sqld+5ms", delay_proxy.url, delay_proxy, delayed.url, reads=False
            )
        results["reads"] = {
            read: alternate(results["local"]["reads"][read], results["sqld"]["reads"][read], f"{read}, cache defeated")
            for read in ("board", "detail")
        }
    machine["speed at end"] = speed_check()
    rows = rows_for(results)
    print(f"# megilance remote-primary bench — {started:%Y-%m-%d %H:%M:%SZ}\n")
    print("\n".join(f"- {k}: {v}" for k, v in machine.items()))
    print(
        f"- data: megilance {' '.join(SEED)}; wrk -t1; proposals {DURATION_S}s per row; reads: the embedded file's app "
        f"and the sqld app in turns, {ROUNDS} rounds of {ROUND_S}s (the median round); sqld 0.24.32 on 127.0.0.1\n"
    )
    print(table(rows))
    save_results("remote", started, {"machine": machine, "seed": SEED, "rows": [asdict(r) for r in rows]})
    return 0 if all(r.ok is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
