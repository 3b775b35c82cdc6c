"""Matching: ranking 10,000 freelancers over HTTP, encoding throughput, seed to ready, and the matrix's memory.

Run: `.venv/bin/python -m bench.matching` (a few minutes: it encodes 10,000 profiles with the real model).
Writes `bench/results/<UTC date>-matching.json` and prints a Markdown table. Steps:
1. seed a demo marketplace (15,000 accounts: 10,000 freelancers) and give every freelancer a bio and skills
   (texts drawn from tests/data/matching_eval.json plus random words, so each is distinct);
2. embed everything (`matching.catch_up`, as `megilance seed-demo` does): seed to model ready, texts/s;
3. rebuild the read store and re-derive the documents: the text-hash cache means nothing is encoded again;
4. start `megilance serve` on that store and time GET /api/projects/{id}/matches for 400 different projects
   (each request a response-cache miss: every key differs), against GET /api/projects/{id} for the same ids;
5. the float32 matrix's memory at 10k (measured) and 100k profiles, and a brute-force search at 100k.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.run import host_info, save_results
from bench.servers import app_server, bench_workdir
from commands.handlers import COMMAND_HANDLERS
from commands.users import RegisterUser, UpdateProfile
from core import store
from core.clock import Clock
from core.db import Connection, connect
from core.encoder import UseEncoder, Vectors, single_threaded_blas
from core.ids import new_id
from core.passwords import Passwords
from core.store import UnitOfWork
from node.runtime import prepare_primary
from ops.seed import DEMO_PASSWORD, WORDS, seed
from queries import matching
from queries.ranking import IndexCache
from queries.rebuild import rebuild
from queries.registry import projection

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT / "tests" / "data" / "matching_eval.json"
# A third of the accounts are clients: 10,000 freelancers. BENCH_MATCHING_USERS shrinks it for a quick try.
USERS = int(os.environ.get("BENCH_MATCHING_USERS", "15000"))
PROJECTS, PROPOSALS = 1_000, 2_000
REQUESTS = 400
ADMIN_EMAIL = "bench-admin@megilance.test"


class TimedEncoder(UseEncoder):
    """The real encoder, counting texts and the seconds spent encoding them."""

    def __init__(self) -> None:
        self.texts = 0
        self.seconds = 0.0

    def encode(self, texts: Sequence[str]) -> Vectors:
        started = time.perf_counter()
        out = super().encode(texts)
        self.seconds += time.perf_counter() - started
        self.texts += len(texts)
        return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_commands(conn: Connection, commands: list[Any], batch: int = 500) -> None:
    clock = Clock()
    proj = projection()
    for start in range(0, len(commands), batch):
        conn.execute("BEGIN IMMEDIATE")
        for command in commands[start : start + batch]:
            uow = UnitOfWork(conn, {"actor": "bench"}, clock)
            COMMAND_HANDLERS[type(command)](uow, command)
            proj.apply_events(conn, uow.new_events)
        conn.execute("COMMIT")


def profiles(freelancers: list[str]) -> list[UpdateProfile]:
    """A bio and skills for every freelancer: one of the evaluation set's, made distinct by random words."""
    rng = random.Random(11)
    people = json.loads(EVAL.read_text())["freelancers"]
    out = []
    for i, user_id in enumerate(freelancers):
        person = people[i % len(people)]
        extra = " ".join(rng.choice(WORDS) for _ in range(8))
        changes = {
            "bio": f"{person['bio']} Also: {extra}.",
            "skills": person["skills"],
            "hourly_rate": str(rng.randrange(15, 150)),
        }
        out.append(UpdateProfile(user_id=user_id, changes=changes))
    return out


def prepare(data_dir: Path, hashed: str) -> dict[str, Any]:
    conn = connect(str(data_dir / "megilance.db"), synchronous="NORMAL")
    figures: dict[str, Any] = {}
    started = time.perf_counter()
    prepare_primary(conn, projection())
    demo = seed(conn, projection(), hashed, users_n=USERS, projects_n=PROJECTS, proposals_n=PROPOSALS)
    admin = RegisterUser(
        user_id=new_id(), email=ADMIN_EMAIL, name="Bench", role="admin", password_hash=hashed, created_by="bench"
    )
    run_commands(conn, [admin, *profiles(demo.freelancers)])
    figures["seed_s"] = time.perf_counter() - started
    print(f"seeded {len(demo.freelancers)} freelancers in {figures['seed_s']:.1f} s", file=sys.stderr)

    encoder = TimedEncoder()
    started = time.perf_counter()
    matching.catch_up(conn, encoder)
    figures["embed_s"] = time.perf_counter() - started
    figures["seed_to_ready_s"] = figures["seed_s"] + figures["embed_s"]
    figures["texts_encoded"] = encoder.texts
    figures["encode_texts_per_s"] = encoder.texts / encoder.seconds
    print(f"embedded {encoder.texts} texts in {figures['embed_s']:.1f} s", file=sys.stderr)

    started = time.perf_counter()
    rebuild(conn, projection(), store.iter_all(conn, meta=False))
    conn.execute("UPDATE rm_matching_state SET doc_version = 0")  # re-derive every document (a new doc version)
    again = TimedEncoder()
    matching.catch_up(conn, again)
    figures["rebuild_and_rederive_s"] = time.perf_counter() - started
    figures["rebuild_texts_encoded"] = again.texts

    index = IndexCache().get(conn, "freelancer")
    figures["freelancers_indexed"] = len(index.ids)
    figures["matrix_mib_measured"] = index.matrix.nbytes / 2**20
    figures["projects"] = demo.projects[:REQUESTS]
    conn.close()
    return figures


def reused(workdir: Path) -> dict[str, Any]:
    """The seed and embedding figures of the last results file, for the store left in `workdir`."""
    last = sorted((ROOT / "bench" / "results").glob("*-matching.json"))[-1]
    kept = ("seed_s", "embed_s", "seed_to_ready_s", "texts_encoded", "encode_texts_per_s")
    kept += ("rebuild_and_rederive_s", "rebuild_texts_encoded", "freelancers_indexed", "matrix_mib_measured")
    earlier = json.loads(last.read_text())
    figures: dict[str, Any] = {k: earlier[k] for k in kept}
    figures["prepared_at"] = earlier["started_at"]
    conn = connect(str(workdir / "app-data" / "megilance.db"), synchronous="NORMAL")
    figures["projects"] = [r[0] for r in conn.execute("SELECT id FROM rm_projects ORDER BY id LIMIT ?", (REQUESTS,))]
    conn.close()
    return figures


def query_latency(encoder: UseEncoder, rounds: int = 50) -> list[float]:
    rng = random.Random(3)
    out = []
    for _ in range(rounds):
        text = " ".join(rng.choice(WORDS) for _ in range(6))
        started = time.perf_counter()
        encoder.encode([text])
        out.append((time.perf_counter() - started) * 1000)
    return out


def brute_force_100k() -> dict[str, float]:
    rng = np.random.default_rng(5)
    matrix = rng.standard_normal((100_000, 512), dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    times = []
    for _ in range(20):
        query = matrix[rng.integers(0, len(matrix))]
        started = time.perf_counter()
        scores = matrix @ query
        np.argsort(-scores)
        times.append((time.perf_counter() - started) * 1000)
    return {"matrix_mib_100k": matrix.nbytes / 2**20, "search_and_sort_100k_p50_ms": statistics.median(times)}


def timed_gets(client: httpx.Client, paths: list[str], headers: dict[str, str]) -> list[float]:
    out = []
    for path in paths:
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        out.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")
    return out


def http_figures(workdir: Path, project_ids: list[str]) -> dict[str, float]:
    with (
        app_server(workdir, FEATURE_FLAG_AI_MATCHING="true") as server,
        httpx.Client(base_url=server.base_url, timeout=60) as client,
    ):
        login = client.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": DEMO_PASSWORD})
        login.raise_for_status()
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        timed_gets(client, [f"/api/projects/{project_ids[0]}/matches?limit=20"], headers)  # builds the matrix
        matches = timed_gets(client, [f"/api/projects/{p}/matches?limit=20" for p in project_ids], headers)
        plain = timed_gets(client, [f"/api/projects/{p}" for p in project_ids], headers)
    return {
        "matches_p50_ms": statistics.median(matches),
        "matches_p99_ms": percentile(matches, 0.99),
        "project_p50_ms": statistics.median(plain),
        "project_p99_ms": percentile(plain, 0.99),
    }


def main() -> int:
    started = datetime.now(UTC)
    single_threaded_blas()  # as the server does: the 100k search below is timed the way it would run there
    workdir = bench_workdir()
    data_dir = workdir / "app-data"
    data_dir.mkdir(parents=True)
    hashed = Passwords(3, 19456, 1).hash(DEMO_PASSWORD)
    reuse = os.environ.get("BENCH_MATCHING_REUSE")  # a store and results of an earlier run: re-time the rest
    if reuse:
        figures = reused(Path(reuse))
        workdir, data_dir = Path(reuse), Path(reuse) / "app-data"
    else:
        figures = prepare(data_dir, hashed)
    project_ids = figures.pop("projects")
    latencies = query_latency(UseEncoder())
    figures["query_encode_p50_ms"] = statistics.median(latencies)
    figures.update(brute_force_100k())
    figures.update(http_figures(workdir, project_ids))
    figures["matches_vs_project_p50_ratio"] = figures["matches_p50_ms"] / figures["project_p50_ms"]
    report(figures, started)
    return 0 if figures["matches_p50_ms"] < 20 and figures["matches_p99_ms"] < 50 else 1


def report(figures: dict[str, Any], started: datetime) -> None:
    save_results("matching", started, {"machine": host_info(), **figures})
    print("| measure | value |\n|---|---:|")
    for key, value in figures.items():
        print(f"| {key} | {value:.2f} |" if isinstance(value, float) else f"| {key} | {value} |")


if __name__ == "__main__":
    sys.exit(main())
