"""`python -m bench.run [scenario ...]`: the API against a bare Starlette baseline, and the writer in-process.

Prints machine info and a Markdown table on stdout (progress on stderr) and writes the full results to
bench/results/<date>-foundation.json. See bench/README.md for what each scenario measures and its target.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import httpx

from bench.servers import APP_LOG_LEVEL, ARGON2_DEFAULTS, Server, app_server, bare_server, bench_workdir
from bench.wrk import WrkResult, ensure_wrk, run_wrk, wrk_version
from core import store
from core.clock import rfc3339_ms
from core.events.base import Event
from core.settings import Settings, load_settings
from node.runtime import Runtime

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PASSWORD = "bench-password-123"


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip().rstrip("s")
    return int(raw) if raw else default


DURATION_S = env_int("BENCH_DURATION", 10)
# Ratios against a baseline: ROUNDS rounds of (baseline, app) and a last baseline run, ROUND_S seconds each.
ROUNDS = env_int("BENCH_ROUNDS", 3)
ROUND_S = env_int("BENCH_ROUND_DURATION", 5)
CONNECTIONS = env_int("BENCH_CONNECTIONS", 32)
WARMUP_S = env_int("BENCH_WARMUP", 2)
LOGIN_N = env_int("BENCH_LOGIN_N", 200)
APPEND_N = env_int("BENCH_APPEND_N", 20000)
APPEND_SEQ_N = env_int("BENCH_APPEND_SEQ_N", 2000)
APPEND_CONCURRENCY = (64, 256)


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchPinged(Event):
    """The tiny event the append scenario writes, one per stream."""

    TYPE = "BenchPinged"
    n: int


# -- results -----------------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    name: str
    rps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: str = "0"
    ratio: float | None = None
    target: str = ""
    ok: bool | None = None
    notes: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


def percentile(samples: list[float], pct: float) -> float:
    """Nearest-rank percentile (samples in any order)."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def wrk_errors(*results: WrkResult) -> str:
    totals: dict[str, int] = {}
    for result in results:
        for key, count in result.errors.items():
            totals[key] = totals.get(key, 0) + count
    total = sum(totals.values())
    if not total:
        return "0"
    return f"{total} (" + ", ".join(f"{k} {v}" for k, v in totals.items() if v) + ")"


# -- the shared servers ------------------------------------------------------------------------


class Bench:
    """Lazily started servers shared by the HTTP scenarios, all stopped at the end."""

    def __init__(self) -> None:
        self.workdir = bench_workdir()
        self._bare: Server | None = None
        self._app: Server | None = None

    @property
    def bare(self) -> Server:
        if self._bare is None:
            progress("starting the bare Starlette baseline")
            self._bare = bare_server(self.workdir).start()
        return self._bare

    @property
    def app(self) -> Server:
        if self._app is None:
            progress(f"starting the app (megilance serve, LOG_LEVEL={APP_LOG_LEVEL}, DB_SYNCHRONOUS=FULL)")
            self._app = app_server(self.workdir).start()
        return self._app

    def app_log_lines(self) -> int | None:
        if self._app is None:
            return None
        try:
            with open(self._app.stdout_path, "rb") as fh:
                return sum(1 for _ in fh)
        except OSError:
            return None

    def close(self) -> None:
        for server in (self._app, self._bare):
            if server is not None:
                server.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def register(server: Server, label: str) -> tuple[str, str]:
    """A fresh client account over HTTP; returns (email, access token)."""
    email = f"{label}-{secrets.token_hex(6)}@bench.example.com"
    with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
        response = client.post(
            "/api/auth/register", json={"email": email, "password": PASSWORD, "name": "Bench User", "role": "client"}
        )
    if response.status_code != 201:
        raise RuntimeError(f"register failed: HTTP {response.status_code} {response.text[:300]}")
    return email, str(response.json()["access_token"])


@dataclass
class Alternation:
    """Baseline and app runs taken in turn: base, app, base, app, …, base (ROUNDS app runs)."""

    base: list[WrkResult]
    app: list[WrkResult]

    @property
    def ratios(self) -> list[float]:
        """Each app run against the mean of the baseline runs either side of it."""
        means = [(before.rps + after.rps) / 2 for before, after in zip(self.base, self.base[1:], strict=False)]
        return [app.rps / mean if mean else 0.0 for app, mean in zip(self.app, means, strict=True)]

    @property
    def ratio(self) -> float:
        """The median round's ratio: one burst of other load on the machine moves one round, not the result."""
        return statistics.median(self.ratios)

    @property
    def base_rps(self) -> float:
        return statistics.fmean(run.rps for run in self.base)

    @property
    def spread(self) -> float:
        """How far apart the fastest and slowest baseline runs were, against their mean."""
        rates = [run.rps for run in self.base]
        return (max(rates) - min(rates)) / self.base_rps if self.base_rps else 0.0

    def median_app(self) -> WrkResult:
        """The app run of the median round."""
        ratios = self.ratios
        return self.app[sorted(range(len(ratios)), key=ratios.__getitem__)[len(ratios) // 2]]

    def rounds_note(self) -> str:
        return "rounds " + ", ".join(f"{ratio:.2f}" for ratio in self.ratios)


def alternate(base: Callable[[int], WrkResult], app: Callable[[int], WrkResult], label: str) -> Alternation:
    """Warm both up, then ROUNDS rounds of (baseline, app) and a last baseline run, each ROUND_S seconds."""
    if WARMUP_S > 0:
        progress(f"{label}: warm-up {WARMUP_S}s each")
        base(WARMUP_S)
        app(WARMUP_S)
    progress(f"{label}: {ROUNDS} rounds of baseline, app; then baseline ({ROUND_S}s each, -t1 -c{CONNECTIONS})")
    bases, apps = [base(ROUND_S)], []
    for _ in range(ROUNDS):
        apps.append(app(ROUND_S))
        bases.append(base(ROUND_S))
    return Alternation(bases, apps)


def compared_rows(
    scenario: str,
    alternation: Alternation,
    *,
    base_label: str,
    label: str,
    target: float | None,
    target_text: str,
    notes: str,
    base_notes: str = "",
) -> list[Row]:
    """The baseline row and the app row of one alternation (target None: the ratio is reported, not judged)."""
    ratio, spread, median_app = alternation.ratio, alternation.spread, alternation.median_app()
    runs = " / ".join(f"{run.rps:,.0f}" for run in alternation.base)
    base_row = Row(
        scenario,
        base_label,
        alternation.base_rps,
        statistics.fmean(run.p50_ms for run in alternation.base),
        statistics.fmean(run.p99_ms for run in alternation.base),
        wrk_errors(*alternation.base),
        1.0,
        notes=f"{base_notes}runs {runs} req/s (spread {spread:.0%})",
        detail={"runs": [run.to_dict() for run in alternation.base], "spread": spread},
    )
    errors = sum(run.error_total for run in alternation.app)
    app_row = Row(
        scenario,
        label,
        median_app.rps,
        median_app.p50_ms,
        median_app.p99_ms,
        wrk_errors(*alternation.app),
        ratio,
        target_text if target is not None else "(reported)",
        ratio >= target and errors == 0 if target is not None else None,
        notes="; ".join(
            n for n in (notes, alternation.rounds_note(), "baseline spread > 10%: noisy" if spread > 0.10 else "") if n
        ),
        detail={
            "runs": [run.to_dict() for run in alternation.app],
            "round_ratios": alternation.ratios,
            "baseline_rps": alternation.base_rps,
        },
    )
    return [base_row, app_row]


def compare(
    bench: Bench,
    scenario: str,
    path: str,
    target_ratio: float | None,
    headers: dict[str, str] | None = None,
    extra_lua: str = "",
    label: str | None = None,
    notes: str = "",
) -> list[Row]:
    """The bare app and the app in turn (`alternate`); ratio = the median round's app req/s / bare req/s.

    `extra_lua` may define a `request()` that varies each request (then `path` is only the first one);
    `target_ratio` None reports the ratio without judging it.
    """
    bare_url, app_url = bench.bare.url("/"), bench.app.url(path)

    def bare(seconds: int) -> WrkResult:
        return run_wrk(bare_url, duration_s=seconds, connections=CONNECTIONS)

    def app(seconds: int) -> WrkResult:
        return run_wrk(app_url, duration_s=seconds, connections=CONNECTIONS, headers=headers, extra_lua=extra_lua)

    return compared_rows(
        scenario,
        alternate(bare, app, scenario),
        base_label=f"{scenario}: bare Starlette (mean of {ROUNDS + 1})",
        label=label or f"{scenario}: GET {path}",
        target=target_ratio,
        target_text=f">= {target_ratio}",
        notes=notes,
    )


# -- scenarios ---------------------------------------------------------------------------------


def scenario_live(bench: Bench) -> list[Row]:
    return compare(bench, "live", "/api/health/live", 0.8)


def scenario_me(bench: Bench) -> list[Row]:
    _, token = register(bench.app, "me")
    headers = {"Authorization": f"Bearer {token}"}
    check = httpx.get(bench.app.url("/api/auth/me"), headers=headers, timeout=10.0)
    if check.status_code != 200:
        raise RuntimeError(f"/api/auth/me answered {check.status_code}: {check.text[:300]}")
    return compare(bench, "me", "/api/auth/me", 0.6, headers)


def scenario_login(bench: Bench) -> list[Row]:
    from argon2 import PasswordHasher

    t, m, p = (int(ARGON2_DEFAULTS[k]) for k in ("ARGON2_TIME_COST", "ARGON2_MEMORY_KIB", "ARGON2_PARALLELISM"))
    hasher = PasswordHasher(time_cost=t, memory_cost=m, parallelism=p)
    stored = hasher.hash(PASSWORD)
    email, _ = register(bench.app, "login")
    verify_ms: list[float] = []
    login_ms: list[float] = []
    failures: dict[str, int] = {}

    def verify_batch(n: int) -> None:
        for _ in range(n):
            start = time.perf_counter()
            hasher.verify(stored, PASSWORD)
            verify_ms.append((time.perf_counter() - start) * 1000)

    progress(f"login: {LOGIN_N} argon2 verifies (t={t}, m={m} KiB, p={p}) around {LOGIN_N} sequential logins")
    for _ in range(3):
        hasher.verify(stored, PASSWORD)
    verify_batch(LOGIN_N // 2)
    with httpx.Client(base_url=bench.app.base_url, timeout=30.0) as client:
        body = {"email": email, "password": PASSWORD}
        for _ in range(3):
            client.post("/api/auth/login", json=body)
        started = time.perf_counter()
        for _ in range(LOGIN_N):
            start = time.perf_counter()
            response = client.post("/api/auth/login", json=body)
            login_ms.append((time.perf_counter() - start) * 1000)
            if response.status_code != 200:
                key = f"HTTP {response.status_code}"
                failures[key] = failures.get(key, 0) + 1
        elapsed = time.perf_counter() - started
    verify_batch(LOGIN_N - LOGIN_N // 2)
    v50, l50 = percentile(verify_ms, 50), percentile(login_ms, 50)
    ratio = l50 / v50
    errors = sum(failures.values())
    return [
        Row(
            "login",
            f"login: argon2 verify in-process (t={t}, m={m}, p={p})",
            1000 / (sum(verify_ms) / len(verify_ms)),
            v50,
            percentile(verify_ms, 99),
            "0",
            None,
            "p50 20-100 ms",
            20 <= v50 <= 100,
            notes=f"{len(verify_ms)} calls, sequential",
            detail={"samples": len(verify_ms), "mean_ms": sum(verify_ms) / len(verify_ms)},
        ),
        Row(
            "login",
            "login: POST /api/auth/login",
            LOGIN_N / elapsed,
            l50,
            percentile(login_ms, 99),
            f"{errors} ({', '.join(f'{k} {v}' for k, v in failures.items())})" if errors else "0",
            ratio,
            "<= 1.3 (p50 vs verify p50)",
            ratio <= 1.3 and errors == 0,
            notes=f"{LOGIN_N} sequential, httpx keep-alive",
            detail={"samples": len(login_ms), "mean_ms": sum(login_ms) / len(login_ms), "failures": failures},
        ),
    ]


def scenario_append(bench: Bench) -> list[Row]:
    rows: list[Row] = []
    for sync in ("FULL", "NORMAL"):
        baseline: float | None = None
        for concurrency in (1, *APPEND_CONCURRENCY):
            n = APPEND_SEQ_N if concurrency == 1 else APPEND_N
            progress(f"append: DB_SYNCHRONOUS={sync}, {n} commands, concurrency {concurrency}")
            result = append_run(sync, n, concurrency)
            rate = result["commands_per_s"]
            if concurrency == 1:
                baseline = rate
                target, ok = "group-commit baseline", None
            elif sync == "FULL":
                target, ok = ">= 5,000/s", rate >= 5000 and result["failed"] == 0
            else:
                target, ok = "(comparison)", None
            rows.append(
                Row(
                    "append",
                    f"append {sync} c={concurrency}",
                    rate,
                    result["p50_ms"],
                    result["p99_ms"],
                    str(result["failed"]),
                    rate / baseline if baseline else None,
                    target,
                    ok,
                    notes=f"avg batch {result['avg_batch']:.1f}, {n} cmds" + (", one per commit" * (concurrency == 1)),
                    detail=result,
                )
            )
    return rows


def append_run(sync: str, n: int, concurrency: int) -> dict[str, Any]:
    """N single-event commands through a fresh runtime's writer from `concurrency` asyncio tasks."""
    data_dir = Path(tempfile.mkdtemp(prefix="megilance-append-"))
    settings = load_settings(
        data_dir=data_dir,
        synchronous=sync,
        secret_key=secrets.token_urlsafe(48),
        environment="test",
        database_url="",
        region="",
        primary_region="",
        log_level="warning",
    )
    runtime = Runtime(settings)
    runtime.open()
    writer = runtime.writer
    assert writer is not None
    projection = runtime.projection
    meta = {"actor": "bench", "region": "local"}
    prefix = secrets.token_hex(4)

    def make_job(i: int) -> Callable[[Any], Any]:
        stream_id = f"bench-{prefix}-{i}"
        event = BenchPinged(n=i)

        def job(conn: Any) -> Any:
            events = store.append(conn, stream_id, "bench", 0, [event], meta, rfc3339_ms(runtime.clock.now()))
            projection.apply_events(conn, events)
            return events

        return job

    latencies: list[float] = []
    failed = 0

    async def worker(indices: range) -> None:
        nonlocal failed
        for i in indices:
            start = time.perf_counter()
            try:
                await writer.submit(make_job(i))
            except Exception:
                failed += 1
            latencies.append((time.perf_counter() - start) * 1000)

    async def drive(offset: int, count: int) -> float:
        per, extra = divmod(count, concurrency)
        chunks, at = [], offset
        for k in range(concurrency):
            size = per + (1 if k < extra else 0)
            chunks.append(range(at, at + size))
            at += size
        start = time.perf_counter()
        await asyncio.gather(*(worker(chunk) for chunk in chunks))
        return time.perf_counter() - start

    async def main() -> dict[str, Any]:
        nonlocal failed
        runtime.tracker.bind(asyncio.get_running_loop())
        await drive(0, min(500, n))  # warm-up: caches, page allocation
        latencies.clear()
        failed = 0
        jobs0, batches0 = writer.jobs, writer.batches
        elapsed = await drive(10_000_000, n)
        jobs, batches = writer.jobs - jobs0, writer.batches - batches0
        return {
            "sync": sync,
            "concurrency": concurrency,
            "commands": n,
            "seconds": elapsed,
            "commands_per_s": n / elapsed,
            "p50_ms": percentile(latencies, 50),
            "p99_ms": percentile(latencies, 99),
            "avg_batch": jobs / batches if batches else 0.0,
            "batches": batches,
            "failed": failed,
        }

    try:
        return run_loop(main)
    finally:
        runtime.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def run_loop(main: Callable[[], Any]) -> Any:
    """On uvloop, as the server runs."""
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())


SCENARIOS: dict[str, Callable[[Bench], list[Row]]] = {
    "live": scenario_live,
    "me": scenario_me,
    "login": scenario_login,
    "append": scenario_append,
}


# -- report ------------------------------------------------------------------------------------


def save_results(name: str, started: datetime, record: dict[str, Any], label: str = "results") -> Path:
    """Everything a run measured, as JSON in bench/results/<UTC date>-<name>[-N].json; prints where.

    The date names the day of the run; a second run on the same day gets -2, a third -3, and so on.
    """
    out = dated_path(RESULTS_DIR, name, started)
    out.write_text(json.dumps({"started_at": started.isoformat(), **record}, indent=2, default=str) + "\n")
    print(f"\n{label}: {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")
    return out


def dated_path(directory: Path, name: str, started: datetime) -> Path:
    """The first free `<YYYY-MM-DD>-<name>.json`, `…-<name>-2.json`, … in `directory` (created if need be)."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"{started:%Y-%m-%d}-{name}"
    out, n = directory / f"{stem}.json", 1
    while out.exists():
        n += 1
        out = directory / f"{stem}-{n}.json"
    return out


SPEED_LOOP = 5_000_000  # additions in a pure-Python loop: about 0.18 s on a quiet core of this machine


def speed_check() -> str:
    """How fast this machine is right now: a fixed Python loop (best of 3) and fsync of 1 MiB (median of 20).

    Shared machines swing by a factor of 2 within minutes; absolute targets (events/s, proposals/s) are only
    comparable between runs whose speed checks agree. Printed at the start and end of a run."""
    loop = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(SPEED_LOOP):
            total += i
        loop = min(loop, time.perf_counter() - started)
    syncs = []
    with tempfile.NamedTemporaryFile(dir=Path.cwd()) as handle:
        block = os.urandom(1 << 20)
        for _ in range(20):
            handle.write(block)
            handle.flush()
            started = time.perf_counter()
            os.fsync(handle.fileno())
            syncs.append(time.perf_counter() - started)
    return f"Python loop of {SPEED_LOOP:,} additions {loop:.2f} s; fsync of 1 MiB {sorted(syncs)[10] * 1e3:.1f} ms"


def machine_info() -> dict[str, Any]:
    """host_info() with the wrk version and a speed check (for the HTTP benchmarks)."""
    return {**host_info(), "wrk": wrk_version(), "speed at start": speed_check()}


def host_info() -> dict[str, Any]:
    """The machine and the engines a figure was measured with (every benchmark's JSON carries it)."""
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        nproc = subprocess.run(["nproc"], check=False, capture_output=True, text=True, timeout=5).stdout.strip()
    except OSError:
        nproc = str(os.cpu_count())
    import sqlite3

    import libsql

    conn = libsql.connect(":memory:")
    libsql_engine = conn.execute("SELECT sqlite_version()").fetchone()[0]
    conn.close()

    def pkg(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "?"

    return {
        "nproc": nproc,
        "cpu": model,
        "python": platform.python_version(),
        "local driver (LOCAL_DRIVER)": os.environ.get("LOCAL_DRIVER", Settings.model_fields["local_driver"].default),
        "sqlite3 module's SQLite": sqlite3.sqlite_version,
        "libsql": f"{pkg('libsql')} (libSQL {libsql_engine})",
        "uvicorn": pkg("uvicorn"),
        "starlette": pkg("starlette"),
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def table(rows: list[Row]) -> str:
    lines = [
        "| scenario | req/s | p50 ms | p99 ms | errors | ratio | target | ok | notes |",
        "|---|---:|---:|---:|---|---:|---|---|---|",
    ]
    for row in rows:
        verdict = "-" if row.ok is None else ("yes" if row.ok else "**NO**")
        lines.append(
            f"| {row.name} | {fmt(row.rps, 0 if (row.rps or 0) >= 100 else 1)} | {fmt(row.p50_ms)} | "
            f"{fmt(row.p99_ms)} | {row.errors} | {fmt(row.ratio)} | {row.target} | {verdict} | {row.notes} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if any(arg in ("-h", "--help") for arg in argv):
        print(__doc__)
        print("scenarios:", " ".join(SCENARIOS))
        return 0
    unknown = [name for name in argv if name not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s): {' '.join(unknown)}; choose from: {' '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    chosen = argv or list(SCENARIOS)
    if any(name in ("live", "me") for name in chosen):
        ensure_wrk()
    started = datetime.now(UTC)
    machine = machine_info()
    config = {
        "wrk": f"-t1 -c{CONNECTIONS}, {ROUNDS} rounds of (baseline, app) and a baseline run, {ROUND_S}s each",
        "warmup_s": WARMUP_S,
        "login_n": LOGIN_N,
        "append_n": APPEND_N,
        "append_seq_n": APPEND_SEQ_N,
        "app_env": {
            "LOG_LEVEL": APP_LOG_LEVEL,
            "ENVIRONMENT": "test",
            "RATE_LIMIT_ENABLED": "false",
            "DB_SYNCHRONOUS": "FULL",
            **ARGON2_DEFAULTS,
        },
    }
    rows: list[Row] = []
    failures: dict[str, str] = {}
    bench = Bench()
    try:
        for name in chosen:
            progress(f"scenario {name}")
            try:
                rows.extend(SCENARIOS[name](bench))
            except Exception as exc:
                failures[name] = f"{type(exc).__name__}: {exc}"
                rows.append(Row(name, f"{name}: FAILED", ok=False, notes=failures[name][:200]))
                progress(f"scenario {name} failed: {failures[name]}")
        access_lines = bench.app_log_lines()
    finally:
        bench.close()
    machine["speed at end"] = speed_check()
    finished = datetime.now(UTC)

    header = [f"# megilance bench — {started:%Y-%m-%d %H:%M:%SZ} ({(finished - started).total_seconds():.0f}s)", ""]
    header += [f"- {key}: {value}" for key, value in machine.items()]
    header += [
        f"- wrk {config['wrk']} (+{WARMUP_S}s warm-up per server); ratio = the median round's app req/s / mean of "
        "the bare runs either side",
        f"- app: `megilance serve` (1 worker, uvloop, httptools), LOG_LEVEL={APP_LOG_LEVEL} (one access-log "
        f"line per request at info, none at warning), ENVIRONMENT=test, RATE_LIMIT_ENABLED=false, "
        f"DB_SYNCHRONOUS=FULL, argon2 t={ARGON2_DEFAULTS['ARGON2_TIME_COST']} "
        f"m={ARGON2_DEFAULTS['ARGON2_MEMORY_KIB']} KiB p={ARGON2_DEFAULTS['ARGON2_PARALLELISM']}"
        + (f"; app stdout lines: {access_lines}" if access_lines is not None else ""),
        "- append: in-process Runtime writer, ratio = commands/s vs one-command-per-commit (c=1) in the same sync mode",
        "",
    ]
    print("\n".join(header))
    print(table(rows))

    save_results(
        "foundation",
        started,
        {
            "finished_at": finished.isoformat(),
            "machine": machine,
            "config": config,
            "scenarios": chosen,
            "failures": failures,
            "app_stdout_lines": access_lines,
            "rows": [asdict(row) for row in rows],
        },
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
