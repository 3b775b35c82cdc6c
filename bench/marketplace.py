"""`python -m bench.marketplace [scenario ...]`: the marketplace endpoints on seed-demo data, vs the bare app.

`megilance seed-demo` fills the server's DATA_DIR before it starts (200 users, 1,000 projects, 5,000 proposals,
contracts, portfolio items), then: the project board, full-text search and the detail page (each with the
response cache in play and defeated), the user list with no answers cached, the access log's cost, proposals
posted at 64 connections with durable commits, and the rebuild of every read model from the log. Prints a
Markdown table; results in bench/results/<date>-marketplace.json.
See bench/README.md (Marketplace) for what each row measures and its target.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from api.cache import MAX_ENTRIES
from bench.run import (
    CONNECTIONS,
    DURATION_S,
    ROUND_S,
    ROUNDS,
    WARMUP_S,
    Bench,
    Row,
    alternate,
    compare,
    compared_rows,
    env_int,
    machine_info,
    progress,
    save_results,
    speed_check,
    table,
    wrk_errors,
)
from bench.servers import (
    APP_LOG_LEVEL,
    ARGON2_DEFAULTS,
    HOST,
    AppServer,
    Server,
    app_env,
    bare_sqlite_server,
    free_port,
    megilance_command,
)
from bench.wrk import WrkResult, ensure_wrk, lua_string, run_wrk
from core import store
from core.db import Connection, connect
from ops.seed import DEMO_PASSWORD
from queries.rebuild import rebuild
from queries.registry import projection

SEARCH_WORD = "api"  # one of ops.seed.WORDS: in most seeded titles and descriptions
PROPOSAL_CONNECTIONS = env_int("BENCH_PROPOSAL_CONNECTIONS", 64)
REBUILD_RUNS = env_int("BENCH_REBUILD_RUNS", 5)
MAX_PROPOSAL_RATE = 10_000  # pairs prepared per second of wrk: more than the app can take, so none repeats
# Seeded budgets are at least $200 (budget_max), so `budget_min` below that filters nothing out: a no-op
# query parameter whose every value is a distinct cache key.
NO_OP_BUDGETS = 19_999
LETTER = "I have shipped this kind of work many times; here is how I would approach your project, step by step."


class MarketBench(Bench):
    """The shared servers, with the app's DATA_DIR seeded by `megilance seed-demo` before it starts."""

    def __init__(self) -> None:
        super().__init__()
        self.data_dir = self.workdir / "app-data"
        self.env = app_env(self.data_dir)
        self.seeded: dict[str, Any] = {}
        self._token: str | None = None
        self._floor: Server | None = None

    @property
    def floor(self) -> Server:
        """bench.bare_sqlite_app on the app's own database file (started on first use)."""
        if self._floor is None:
            progress("starting the bare sqlite3 page app")
            self._floor = bare_sqlite_server(self.workdir, self.data_dir / "megilance.db").start()
        return self._floor

    def close(self) -> None:
        if self._floor is not None:
            self._floor.stop()
        super().close()

    def db(self) -> Connection:
        return connect(str(self.data_dir / "megilance.db"), synchronous="NORMAL")

    def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        conn = self.db()
        try:
            return [tuple(row) for row in conn.execute(sql, params).fetchall()]
        finally:
            conn.close()

    def seed(self) -> dict[str, Any]:
        progress("megilance seed-demo (200 users, 1,000 projects, 5,000 proposals, contracts, portfolio)")
        started = time.perf_counter()
        proc = subprocess.run(
            [megilance_command(), "seed-demo"], env=self.env, capture_output=True, text=True, timeout=600, check=False
        )
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError(f"seed-demo failed ({proc.returncode}): {proc.stderr[-2000:]}")
        head = self.rows("SELECT COALESCE(MAX(position), 0) FROM events")[0][0]
        self.seeded = {"output": proc.stdout.strip().splitlines()[-1], "seconds": wall, "events": head}
        return self.seeded

    def token(self) -> str:
        """An access token of a seeded client (demo0 is one), for the GET scenarios."""
        if self._token is None:
            self._token = login(self.app.base_url, "demo0@megilance.test")
        return self._token

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}

    def data_file(self, name: str, lines: list[str]) -> Path:
        path = self.workdir / name
        path.write_text("\n".join(lines) + "\n")
        return path


def login(base_url: str, email: str) -> str:
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        response = client.post("/api/auth/login", json={"email": email, "password": DEMO_PASSWORD})
    if response.status_code != 200:
        raise RuntimeError(f"login {email} failed: HTTP {response.status_code} {response.text[:300]}")
    return str(response.json()["access_token"])


def lua_lines(name: str, path: Path) -> str:
    """Lua that loads a data file into the array `name` (one string per line) when the script loads."""
    return f"local {name} = {{}}\nfor line in io.lines({lua_string(str(path))}) do {name}[#{name} + 1] = line end\n"


def check(url: str, headers: dict[str, str]) -> None:
    response = httpx.get(url, headers=headers, timeout=10.0)
    if response.status_code != 200:
        raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:300]}")


# -- GET scenarios -------------------------------------------------------------------------------

NO_OP_BUDGET_LUA = f"""
local n = 0
function request()
  n = n + 1
  local v = n % {NO_OP_BUDGETS} + 1
  return wrk.format(nil, string.format("%s&budget_min=%d.%02d", PATH, math.floor(v / 100), v % 100))
end
"""


def no_op_budget_lua(path: str) -> str:
    """A `request()` that adds a different no-op `budget_min` to `path` each time: every request misses the cache."""
    return f"local PATH = {lua_string(path)}\n" + NO_OP_BUDGET_LUA


FLOOR_TARGET = 0.7


def compare_floor(
    bench: MarketBench,
    scenario: str,
    path: str,
    floor_path: str,
    app_lua: str,
    floor_lua: str,
    label: str,
    notes: str,
    app: Server | None = None,
) -> list[Row]:
    """The bare sqlite3 page app and the app (`app`, or the bench's) in turn (`alternate`); ratio = the median
    round's app / floor."""
    floor_url, app_url = bench.floor.url(floor_path), (app or bench.app).url(path)

    def floor(seconds: int) -> WrkResult:
        return run_wrk(floor_url, duration_s=seconds, connections=CONNECTIONS, extra_lua=floor_lua)

    def served(seconds: int) -> WrkResult:
        return run_wrk(app_url, duration_s=seconds, connections=CONNECTIONS, headers=bench.auth(), extra_lua=app_lua)

    return compared_rows(
        scenario,
        alternate(floor, served, scenario),
        base_label=f"{scenario}: bare sqlite3 page app (mean of {ROUNDS + 1})",
        label=label,
        target=FLOOR_TARGET,
        target_text=f">= {FLOOR_TARGET} x floor",
        notes=notes,
        base_notes=f"GET {floor_path}: ",
    )


def scenario_board(bench: MarketBench) -> list[Row]:
    path = "/api/projects?limit=20"
    check(bench.app.url(path), bench.auth())
    rows = compare(bench, "board", path, 0.6, bench.auth(), notes="response cache in play (one key)")
    rows += compare_floor(
        bench,
        "board-nocache",
        path,
        "/board",
        no_op_budget_lua(path),
        no_op_budget_lua("/board?limit=20"),
        label=f"board: GET {path}&budget_min=<no-op, new each request>",
        notes="cache defeated: every request a distinct key, same 20 rows",
    )
    return rows


def scenario_search(bench: MarketBench) -> list[Row]:
    path = f"/api/projects?q={SEARCH_WORD}&limit=20"
    matches = bench.rows("SELECT COUNT(*) FROM rm_projects_fts WHERE rm_projects_fts MATCH ?", SEARCH_WORD)[0][0]
    check(bench.app.url(path), bench.auth())
    rows = compare(bench, "search", path, 0.35, bench.auth(), notes=f"{matches} matching projects; cache in play")
    rows += compare_floor(
        bench,
        "search-nocache",
        path,
        f"/board?q={SEARCH_WORD}",
        no_op_budget_lua(path),
        no_op_budget_lua(f"/board?q={SEARCH_WORD}"),
        label=f"search: GET {path}&budget_min=<no-op, new each request>",
        notes=f"cache defeated; FTS5 match over {matches} projects, newest 20",
    )
    return rows


ACCESS_LOG_TARGET = 0.9  # the access log may cost at most 10% of the board's throughput


def copy_server(bench: MarketBench, name: str, log_level: str, **settings: str) -> Server:
    """`megilance serve` at `log_level` on a copy of the app's database (its secret too, so its tokens hold)."""
    data_dir = bench.workdir / f"{name}-data"
    data_dir.mkdir()
    with (
        closing(sqlite3.connect(bench.data_dir / "megilance.db")) as source,
        closing(sqlite3.connect(data_dir / "megilance.db")) as copy,
    ):
        source.backup(copy)
    port = free_port()
    cmd = [megilance_command(), "serve", "--host", HOST, "--port", str(port)]
    # One hash seed for every copy: two servers at the same level, each with its own random seed, differed by up to
    # 5% in req/s (dict layouts differ), as much as the access log costs.
    env = app_env(data_dir, LOG_LEVEL=log_level, SECRET_KEY=bench.app.env["SECRET_KEY"], PYTHONHASHSEED="0", **settings)
    progress(f"starting {name} (LOG_LEVEL={log_level}) on a copy of the app's database")
    return AppServer(name, cmd, port, "/api/health/live", env, bench.workdir).start()


def scenario_access_log(bench: MarketBench) -> list[Row]:
    """The cached board at LOG_LEVEL=info against the same server at warning (no access lines), in turn."""
    path = "/api/projects?limit=20"
    headers = bench.auth()
    with copy_server(bench, "logged", "info") as logged, copy_server(bench, "quiet", "warning") as quiet:
        for server in (logged, quiet):
            check(server.url(path), headers)

        def without_log(seconds: int) -> WrkResult:
            return run_wrk(quiet.url(path), duration_s=seconds, connections=CONNECTIONS, headers=headers)

        def with_log(seconds: int) -> WrkResult:
            return run_wrk(logged.url(path), duration_s=seconds, connections=CONNECTIONS, headers=headers)

        alternation = alternate(without_log, with_log, "access-log")
        lines = sum(1 for _ in logged.stdout_path.open("rb"))
    return compared_rows(
        "access-log",
        alternation,
        base_label=f"access-log: board at LOG_LEVEL=warning (mean of {ROUNDS + 1})",
        label=f"access-log: GET {path} at LOG_LEVEL=info",
        target=ACCESS_LOG_TARGET,
        target_text=f">= {ACCESS_LOG_TARGET} (the log costs <= 10%)",
        notes=f"response cache in play; {lines:,} lines on the logged server's stdout",
    )


def scenario_users(bench: MarketBench) -> list[Row]:
    """The user list with no answers cached (a server with RESPONSE_CACHE_ENTRIES=0 on a copy of the database)
    against the bare sqlite3 page app's same page query."""
    path = "/api/users?limit=20"
    with copy_server(bench, "no-cache", APP_LOG_LEVEL, RESPONSE_CACHE_ENTRIES="0") as uncached:
        check(uncached.url(path), bench.auth())
        return compare_floor(
            bench,
            "users-nocache",
            path,
            "/users",
            "",
            "",
            label=f"users: GET {path} (RESPONSE_CACHE_ENTRIES=0)",
            notes="no answer cached: every request runs the page query",
            app=uncached,
        )


def rotate_ids_lua(ids_file: Path, prefix: str = "/api/projects/") -> str:
    return (
        lua_lines("ids", ids_file)
        + f"local PREFIX = {lua_string(prefix)}\n"
        + """
local n = 0
function request()
  n = n + 1
  return wrk.format(nil, PREFIX .. ids[n % #ids + 1])
end
"""
    )


def scenario_detail(bench: MarketBench) -> list[Row]:
    seeded = [row[0] for row in bench.rows("SELECT id FROM rm_projects ORDER BY id")]
    check(bench.app.url(f"/api/projects/{seeded[0]}"), bench.auth())
    rows = compare(
        bench,
        "detail",
        f"/api/projects/{seeded[0]}",
        0.6,
        bench.auth(),
        extra_lua=rotate_ids_lua(bench.data_file("seeded-ids.txt", seeded)),
        label="detail: GET /api/projects/{id}",
        notes=f"rotating over the {len(seeded)} seeded projects; cache in play",
    )
    # The detail read has no query parameters; to defeat the cache, rotate over more projects than it holds.
    added = add_projects(bench, MAX_ENTRIES + 1000 - len(seeded))
    every = [row[0] for row in bench.rows("SELECT id FROM rm_projects ORDER BY id")]
    ids_file = bench.data_file("all-ids.txt", every)
    rows += compare_floor(
        bench,
        "detail-nocache",
        f"/api/projects/{every[0]}",
        f"/detail/{every[0]}",
        rotate_ids_lua(ids_file),
        rotate_ids_lua(ids_file, "/detail/"),
        label="detail: GET /api/projects/{id} (cache defeated)",
        notes=f"rotating over {len(every)} projects (> the cache's {MAX_ENTRIES} entries; {added:,} posted "
        "over HTTP first)",
    )
    return rows


def add_projects(bench: MarketBench, at_least: int) -> int:
    """Post projects over HTTP (wrk, one client) until `at_least` more exist; returns how many were added."""
    url = bench.app.url("/api/projects")
    return post_projects(url, bench.auth(), lambda: bench.rows("SELECT COUNT(*) FROM rm_projects")[0][0], at_least)


FILLER_PROJECT = {
    "title": "Filler project for the uncached detail benchmark",
    "description": "Posted by the benchmark so the detail pages outnumber the response cache.",
    "category": "web",
    "budget_type": "fixed",
    "budget_min": "300",
    "budget_max": "900",
    "experience_level": "entry",
    "estimated_duration": "1 week",
    "skills": ["python"],
}


def post_projects(url: str, auth: dict[str, str], count: Callable[[], int], at_least: int) -> int:
    """POST filler projects to `url` as a client (wrk) until `count()` has grown by `at_least`; how many were added."""
    before = count()
    headers, body = {**auth, "Content-Type": "application/json"}, json.dumps(FILLER_PROJECT)
    progress(f"posting at least {at_least:,} projects over HTTP")
    now = before
    while now - before < at_least:
        result = run_wrk(url, duration_s=3, connections=32, method="POST", body=body, headers=headers)
        if result.error_total:
            raise RuntimeError(f"posting projects failed: {result.errors}")
        now = count()
    return int(now - before)


# -- POST /api/proposals ---------------------------------------------------------------------------

PROPOSAL_LUA = """
local n = 0
function request()
  n = n + 1
  local f, p = string.match(pairs_[(n - 1) % #pairs_ + 1], "(%d+) (%d+)")
  local body = '{"project_id":"' .. projects[tonumber(p)] .. '","cover_letter":"' .. LETTER ..
    '","estimated_hours":20,"hourly_rate":"45.50","availability":"immediate"}'
  return wrk.format("POST", "/api/proposals",
    {["Authorization"] = "Bearer " .. tokens[tonumber(f)], ["Content-Type"] = "application/json"}, body)
end
"""


async def login_all(base_url: str, emails: list[str], parallel: int = 8) -> list[str]:
    gate = asyncio.Semaphore(parallel)
    async with httpx.AsyncClient(base_url=base_url, timeout=60.0) as client:

        async def one(email: str) -> str:
            async with gate:
                response = await client.post("/api/auth/login", json={"email": email, "password": DEMO_PASSWORD})
            if response.status_code != 200:
                raise RuntimeError(f"login {email} failed: HTTP {response.status_code} {response.text[:200]}")
            return str(response.json()["access_token"])

        return list(await asyncio.gather(*(one(e) for e in emails)))


def proposal_pairs(freelancers: int, projects: int, taken: set[tuple[int, int]], start: int, n: int) -> list[str]:
    """`n` distinct (freelancer, project) index pairs (1-based) without a proposal yet, from position `start` on.

    Pair k is freelancer k mod F on project (k div F + 37 * freelancer) mod P: each freelancer walks every
    project once, and consecutive requests spread over different projects.
    """
    out: list[str] = []
    k = start
    while len(out) < n and k < freelancers * projects:
        f = k % freelancers
        p = (k // freelancers + 37 * f) % projects
        k += 1
        if (f, p) not in taken:
            out.append(f"{f + 1} {p + 1}")
    return out


def scenario_proposals(bench: MarketBench) -> list[Row]:
    emails = [row[0] for row in bench.rows("SELECT email FROM rm_users WHERE role = 'freelancer' ORDER BY email")]
    ids_by_email = dict(bench.rows("SELECT email, id FROM rm_users WHERE role = 'freelancer'"))
    progress(f"proposals: logging in {len(emails)} seeded freelancers")
    tokens = asyncio.run(login_all(bench.app.base_url, emails))
    projects = [row[0] for row in bench.rows("SELECT id FROM rm_projects WHERE status = 'open' ORDER BY id")]
    f_index = {ids_by_email[e]: i for i, e in enumerate(emails)}
    p_index = {p: i for i, p in enumerate(projects)}
    taken = {
        (f_index[f], p_index[p])
        for p, f in bench.rows("SELECT project_id, freelancer_id FROM rm_proposals")
        if p in p_index and f in f_index
    }
    tokens_file = bench.data_file("tokens.txt", tokens)
    projects_file = bench.data_file("open-projects.txt", projects)

    def lua(start: int, seconds: int) -> tuple[str, int]:
        chunk = proposal_pairs(len(tokens), len(projects), taken, start, seconds * MAX_PROPOSAL_RATE)
        pairs_file = bench.data_file(f"pairs-{start}.txt", chunk)
        script = (
            f"local LETTER = {lua_string(LETTER)}\n"
            + lua_lines("tokens", tokens_file)
            + lua_lines("projects", projects_file)
            + lua_lines("pairs_", pairs_file)
            + PROPOSAL_LUA
        )
        return script, len(chunk)

    url = bench.app.url("/api/proposals")
    opts: dict[str, Any] = {"connections": PROPOSAL_CONNECTIONS}
    offset = 0
    if WARMUP_S > 0:
        progress(f"proposals: warm-up {WARMUP_S}s")
        script, prepared = lua(0, WARMUP_S)
        run_wrk(url, duration_s=WARMUP_S, extra_lua=script, **opts)
        offset = pairs_end(len(tokens), len(projects), taken, prepared)
    before = bench.rows("SELECT COUNT(*) FROM rm_proposals")[0][0]
    script, prepared = lua(offset, DURATION_S)
    progress(f"proposals: {DURATION_S}s at -c{PROPOSAL_CONNECTIONS}, {prepared:,} fresh pairs prepared")
    result = run_wrk(url, duration_s=DURATION_S, extra_lua=script, **opts)
    created = bench.rows("SELECT COUNT(*) FROM rm_proposals")[0][0] - before
    wrapped = result.requests > prepared
    return [
        Row(
            "proposals",
            f"proposals: POST /api/proposals, -c{PROPOSAL_CONNECTIONS}, DB_SYNCHRONOUS=FULL",
            result.rps,
            result.p50_ms,
            result.p99_ms,
            wrk_errors(result),
            None,
            ">= 1,500/s, 0 errors",
            result.rps >= 1500 and result.error_total == 0,
            notes=f"{result.requests - result.error_total:,} of {result.requests:,} answered 2xx (read model: "
            f"+{created:,} proposals); {len(tokens)} freelancers x "
            f"{len(projects):,} open projects, each request a new pair" + ("; PAIRS WRAPPED" if wrapped else ""),
            detail={"run": result.to_dict(), "created": created, "prepared_pairs": prepared},
        )
    ]


def pairs_end(freelancers: int, projects: int, taken: set[tuple[int, int]], used: int) -> int:
    """The position after the first `used` free pairs (where the next run starts)."""
    k = found = 0
    while found < used and k < freelancers * projects:
        f = k % freelancers
        if (f, (k // freelancers + 37 * f) % projects) not in taken:
            found += 1
        k += 1
    return k


# -- rebuild -------------------------------------------------------------------------------------


def scenario_rebuild(bench: MarketBench) -> list[Row]:
    """Every read model from the log: in-process (queries.rebuild over store.iter_all) and `megilance rebuild`."""
    if bench._app is not None:
        raise RuntimeError("rebuild runs before the server starts (it is listed first)")
    path = str(bench.data_dir / "megilance.db")
    times: list[float] = []
    events = 0
    for i in range(REBUILD_RUNS):
        conn = connect(path, synchronous="FULL")
        try:
            events = store.head(conn)
            started = time.perf_counter()
            rebuild(conn, projection(), store.iter_all(conn, meta=False))
            times.append(time.perf_counter() - started)
        finally:
            conn.close()
        progress(f"rebuild: in-process run {i + 1}: {events:,} events in {times[-1]:.3f}s")
    conn = connect(path, synchronous="FULL")
    try:
        started = time.perf_counter()
        read = sum(1 for _ in store.iter_all(conn, meta=False))
        read_s = time.perf_counter() - started
    finally:
        conn.close()
    started = time.perf_counter()
    proc = subprocess.run(
        [megilance_command(), "rebuild"], env=bench.env, capture_output=True, text=True, timeout=600, check=False
    )
    cli_s = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"megilance rebuild failed: {proc.stderr[-1000:]}")
    verify = subprocess.run(
        [megilance_command(), "verify"], env=bench.env, capture_output=True, text=True, timeout=600, check=False
    )
    median = statistics.median(times)
    rate = events / median
    return [
        Row(
            "rebuild",
            "rebuild: queries.rebuild over store.iter_all (in-process)",
            rate,
            None,
            None,
            "0",
            None,
            ">= 50,000 events/s",
            rate >= 50_000,
            notes=f"events/s; {events:,} events, median of {len(times)}: {median:.3f}s "
            f"(runs: {', '.join(f'{t:.3f}' for t in times)}); "
            f"reading the log alone: {read / read_s:,.0f} events/s",
            detail={"events": events, "seconds": times, "read_only_events_per_s": read / read_s},
        ),
        Row(
            "rebuild",
            "rebuild: `megilance rebuild` (CLI wall time)",
            events / cli_s,
            None,
            None,
            "0",
            None,
            "(reported)",
            None,
            notes=f"events/s; {cli_s:.2f}s wall incl. interpreter start and imports; then `megilance verify` "
            f"exit {verify.returncode}",
            detail={"wall_s": cli_s, "verify_exit": verify.returncode, "verify_output": verify.stdout[-500:]},
        ),
    ]


SCENARIOS: dict[str, Callable[[MarketBench], list[Row]]] = {
    "rebuild": scenario_rebuild,  # first: before the server starts
    "board": scenario_board,
    "search": scenario_search,
    "users": scenario_users,
    "access-log": scenario_access_log,  # before detail, which posts projects: the same board page as `board`
    "detail": scenario_detail,
    "proposals": scenario_proposals,
}


def main(argv: list[str]) -> int:
    if any(arg in ("-h", "--help") for arg in argv):
        print(__doc__)
        print("scenarios:", " ".join(SCENARIOS))
        return 0
    unknown = [name for name in argv if name not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s): {' '.join(unknown)}; choose from: {' '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    chosen = [name for name in SCENARIOS if name in argv] if argv else list(SCENARIOS)
    ensure_wrk()
    started = datetime.now(UTC)
    machine = machine_info()
    rows: list[Row] = []
    failures: dict[str, str] = {}
    bench = MarketBench()
    seeded: dict[str, Any] = {"output": "(not seeded)", "seconds": 0.0}
    try:
        seeded = bench.seed()
        for name in chosen:
            progress(f"scenario {name}")
            try:
                rows.extend(SCENARIOS[name](bench))
            except Exception as exc:
                failures[name] = f"{type(exc).__name__}: {exc}"
                rows.append(Row(name, f"{name}: FAILED", ok=False, notes=failures[name][:200]))
                progress(f"scenario {name} failed: {failures[name]}")
    finally:
        bench.close()
    machine["speed at end"] = speed_check()
    finished = datetime.now(UTC)

    header = [
        f"# megilance marketplace bench — {started:%Y-%m-%d %H:%M:%SZ} ({(finished - started).total_seconds():.0f}s)",
        "",
    ]
    header += [f"- {key}: {value}" for key, value in machine.items()]
    header += [
        f"- data: `megilance seed-demo` into the server's DATA_DIR before it starts: {seeded['output']} "
        f"({seeded['seconds']:.1f}s wall)",
        f"- GET rows: wrk -t1 -c{CONNECTIONS}, as a seeded client, {ROUNDS} rounds of (baseline, app) and a last "
        f"baseline run, {ROUND_S}s each (+{WARMUP_S}s warm-up); ratio = the median round's app req/s / mean of the "
        "baseline runs either side (the bare Starlette app, or the bare sqlite3 page app for cache-defeated rows)",
        f"- app: `megilance serve` (1 worker, uvloop, httptools), LOG_LEVEL={APP_LOG_LEVEL}, ENVIRONMENT=test, "
        f"RATE_LIMIT_ENABLED=false, DB_SYNCHRONOUS=FULL, argon2 t={ARGON2_DEFAULTS['ARGON2_TIME_COST']} "
        f"m={ARGON2_DEFAULTS['ARGON2_MEMORY_KIB']} KiB",
        "",
    ]
    print("\n".join(header))
    print(table(rows))

    save_results(
        "marketplace",
        started,
        {
            "finished_at": finished.isoformat(),
            "machine": machine,
            "seeded": seeded,
            "config": {
                "wrk": f"-t1 -c{CONNECTIONS}, {ROUNDS} rounds of {ROUND_S}s; proposals -d{DURATION_S}s",
                "proposal_connections": PROPOSAL_CONNECTIONS,
                "warmup_s": WARMUP_S,
            },
            "scenarios": chosen,
            "failures": failures,
            "rows": [asdict(row) for row in rows],
        },
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
