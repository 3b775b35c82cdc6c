"""`python -m bench.backup`: POST /api/proposals at 64 connections with the Litestream backup on and off.

One `megilance seed-demo` database is copied into two servers' DATA_DIRs: one without BACKUP_URL, one that
streams its WAL to a moto S3 server on 127.0.0.1 (Litestream 0.5.17, its default 1 s sync interval; moto runs in
its own process at nice 19, since in production S3 is not on this machine's CPU). The
proposals scenario of bench.marketplace runs on each, alternating off, on, off, on; the ratio is
mean(on) / mean(off), measured in the same run (target >= 0.90). Before the writes, the seeded database
is restored from S3 with `megilance restore` (timed) and checked with `megilance verify`.
Results in bench/results/<date>-backup.json.
"""

from __future__ import annotations

import contextlib
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.marketplace import MarketBench, scenario_proposals
from bench.run import DURATION_S, Row, env_int, machine_info, progress, save_results, speed_check, table
from bench.servers import Server, app_server, free_port, megilance_command
from bench.wrk import ensure_wrk
from tests.s3server import FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY, REGION, create_bucket

ROUNDS = env_int("BENCH_BACKUP_ROUNDS", 3)


class Variant(MarketBench):
    """A server on its own copy of the seeded database, with extra settings (the backup's, or none)."""

    def __init__(self, seed_dir: Path, extra_env: dict[str, str]) -> None:
        super().__init__()
        shutil.copytree(seed_dir, self.data_dir)
        self.extra_env = extra_env
        self.env.update(extra_env)

    @property
    def app(self) -> Server:
        if self._app is None:
            self._app = app_server(self.workdir, **self.extra_env).start()
        return self._app


def start_s3(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """moto's S3 server in its own process at the lowest priority: in production S3 is another machine's CPU."""
    port = free_port()
    log = (workdir / "moto.log").open("wb")
    process = subprocess.Popen(
        ["nice", "-n", "19", str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(endpoint, timeout=1)
            return process, endpoint
        except httpx.HTTPError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError(f"moto_server did not start: see {workdir / 'moto.log'}") from None
            time.sleep(0.1)


def backup_env(endpoint: str) -> dict[str, str]:
    _, bucket = create_bucket(endpoint)
    return {
        "BACKUP_URL": f"s3://{bucket}/bench",
        "S3_ENDPOINT_URL": endpoint,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_ACCESS_KEY,
    }


def wait_backed_up(base_url: str, timeout_s: float = 120) -> dict[str, Any]:
    """Until readiness shows S3 holding everything (the first snapshot of the seeded file included)."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=base_url, timeout=10) as client:
        while True:
            check = client.get("/api/health/ready").json()["checks"].get("backup", {})
            if check.get("in_sync") and check.get("replicated_txid"):
                return dict(check)
            if time.monotonic() > deadline:
                raise RuntimeError(f"backup not in sync after {timeout_s}s: {check}")
            time.sleep(0.2)


def timed_restore(variant: Variant) -> dict[str, Any]:
    """`megilance restore --to` of the seeded database, then `megilance verify` on the copy."""
    target = variant.workdir / "restored.db"
    started = time.perf_counter()
    done = subprocess.run(
        [megilance_command(), "restore", "--to", str(target)],
        env=variant.env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"restore failed: {done.stderr[-1000:]}")
    verify = subprocess.run(
        [megilance_command(), "verify"],
        env={**variant.env, "DATABASE_URL": str(target)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return {
        "seconds": seconds,
        "bytes": target.stat().st_size,
        "verify_exit": verify.returncode,
        "verify": (verify.stdout + verify.stderr).strip()[-300:],
    }


class LagSampler:
    """Reads the backup lag from readiness 4 times a second while the writes run (the same load in both runs)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LagSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            while not self._stop.wait(0.25):
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    lag = client.get("/api/health/ready").json()["checks"].get("backup", {}).get("lag_seconds")
                    if lag is not None:
                        self.samples.append(float(lag))


def proposals_rps(variant: Variant) -> tuple[float, Row]:
    with LagSampler(variant.app.base_url) as lag:
        row = scenario_proposals(variant)[0]
    if lag.samples:
        row.detail["backup_lag_samples"] = lag.samples
        row.notes += (
            f"; backup lag during the run: median {statistics.median(lag.samples):.2f}s, "
            f"max {max(lag.samples):.2f}s ({len(lag.samples)} samples)"
        )
    return float(row.rps or 0.0), row


def main() -> int:
    ensure_wrk()
    started = datetime.now(UTC)
    machine = machine_info()
    seeder = MarketBench()
    s3, endpoint = start_s3(seeder.workdir)
    variants: list[Variant] = []
    off_rps: list[float] = []
    on_rps: list[float] = []
    rows: list[Row] = []
    try:
        seeded = seeder.seed()
        restore: dict[str, Any] = {}
        for round_n in range(ROUNDS):
            for label, extra in (("off", {}), ("on", backup_env(endpoint))):
                variant = Variant(seeder.data_dir, extra)
                variants.append(variant)
                if extra:
                    progress(f"backup on: waiting for the first copy of the seeded database in S3 (round {round_n})")
                    wait_backed_up(variant.app.base_url)
                    if not restore:
                        progress("restoring the seeded database from S3")
                        restore = timed_restore(variant)
                progress(f"proposals with backup {label} (round {round_n + 1} of {ROUNDS})")
                rps, row = proposals_rps(variant)
                row.name = f"proposals, backup {label} (round {round_n + 1})"
                row.target, row.ok = "(reported)", None
                rows.append(row)
                (on_rps if extra else off_rps).append(rps)
                variant.close()
    finally:
        for variant in variants:
            variant.close()
        s3.terminate()
        s3.wait(10)
        shutil.rmtree(seeder.workdir, ignore_errors=True)
    ratio = statistics.mean(on_rps) / statistics.mean(off_rps)
    rows.append(
        Row(
            "backup",
            "ratio: mean(backup on) / mean(backup off)",
            ratio=ratio,
            target=">= 0.90",
            ok=ratio >= 0.90,
            notes=f"off {', '.join(f'{r:,.0f}' for r in off_rps)} req/s; on {', '.join(f'{r:,.0f}' for r in on_rps)}",
        )
    )
    machine["speed at end"] = speed_check()
    print(f"# megilance backup bench — {started:%Y-%m-%d %H:%M:%SZ}\n")
    print("\n".join(f"- {key}: {value}" for key, value in machine.items()))
    print(f"- data: {seeded['output']}")
    print(
        f"- restore of the seeded database from S3 (moto on 127.0.0.1): {restore['seconds']:.2f}s wall for "
        f"{restore['bytes'] / 1e6:.1f} MB; `megilance verify` on it: exit {restore['verify_exit']}"
    )
    print(f"- proposals: wrk -c64 -d{DURATION_S}s per run, alternating off/on, {ROUNDS} rounds\n")
    print(table(rows))
    save_results(
        "backup",
        started,
        {
            "finished_at": datetime.now(UTC).isoformat(),
            "machine": machine,
            "seeded": seeded,
            "restore": restore,
            "off_rps": off_rps,
            "on_rps": on_rps,
            "ratio": ratio,
            "rows": [asdict(row) for row in rows],
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
