"""`python -m bench.soak` (`make soak`): a primary and an edge as real processes under a marketplace mix.

SOAK_SECONDS (default 60) of fixed concurrency (SOAK_CONCURRENCY, default 16 workers) against the edge: reads are
served there, writes are forwarded to the primary, and every read after a write carries its X-Consistency-Token.
The mix: browse and search the board, view a project, post projects, propose, accept, contract the hired
freelancer and, when the payments API is there, announce a payment on the contract.

The time is cut into SOAK_ROUNDS (default 4) rounds; the first is the warm-up. Each process's RSS (VmRSS from
/proc) is read after every round and must stay within a ceiling: at most SOAK_RSS_CEILING_MIB (default 300,
or 160 with FEATURE_FLAG_AI_MATCHING=false) at the end, and at most SOAK_RSS_GROWTH_MIB (default 16) above what
it was after the warm-up.

Prints Markdown: per request type the count, 4xx, 5xx and p50/p95/p99/max latency; the RSS of both processes
at the start, after the warm-up and at the end; the edge's replication position against the primary's head.
Writes the same to bench/results/soak-<UTC start>.json. Exits 1 on any 5xx or transport error, when a process
died, or when the RSS passed its ceiling.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import shutil
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.run import host_info, save_results
from bench.servers import HOST, Server, app_env, bench_workdir, free_port, megilance_command

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "60"))
CONCURRENCY = int(os.environ.get("SOAK_CONCURRENCY", "16"))
ROUNDS = max(2, int(os.environ.get("SOAK_ROUNDS", "4")))  # the first is the warm-up
# The matching encoder's weights stay resident once loaded (about 125 MiB, measured with and without
# FEATURE_FLAG_AI_MATCHING): the ceiling counts them when the flag is on, as it is by default.
MATCHING_ON = os.environ.get("FEATURE_FLAG_AI_MATCHING", "true").strip().lower() not in ("false", "0", "no", "off")
RSS_CEILING_MIB = float(os.environ.get("SOAK_RSS_CEILING_MIB", "300" if MATCHING_ON else "160"))
RSS_GROWTH_MIB = float(os.environ.get("SOAK_RSS_GROWTH_MIB", "16"))
CLIENT_SHARE = 0.4  # of the workers (and accounts), the rest are freelancers
REPLICATION_TOKEN = "soak-" + secrets.token_urlsafe(32)
PASSWORD = "soak-password-123"
SEARCH_WORDS = ("python", "api", "mobile", "data", "design", "rust", "web", "shop", "sqlite", "edge")
CATEGORIES = ("web", "mobile", "data", "design")
Json = dict[str, Any]


STARTED = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def rss_kib(pid: int) -> int:
    """Resident set size of a process (VmRSS in /proc/<pid>/status), KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def error_type(response: httpx.Response) -> str:
    """The `error_type` of an API error body (docs/api.md), or `?` when the body is not one."""
    try:
        body = response.json()
    except ValueError:
        return "?"
    return str(body.get("error_type", "?")) if isinstance(body, dict) else "?"


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    refusals: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))  # "409 invalid_state"
    server_errors: list[str] = field(default_factory=list)
    transport_errors: list[str] = field(default_factory=list)

    def record(self, kind: str, response: httpx.Response, elapsed: float) -> None:
        self.latencies[kind].append(elapsed)
        self.statuses[kind][response.status_code] += 1
        if 400 <= response.status_code < 500:
            self.refusals[kind][f"{response.status_code} {error_type(response)}"] += 1
        if response.status_code >= 500:
            self.server_errors.append(
                f"{kind}: {response.request.method} {response.request.url.path} -> {response.status_code} "
                f"{response.text[:200]}"
            )


@dataclass
class Account:
    id: str
    role: str
    token: str
    position: int = 0  # the newest X-Consistency-Token this account's writes got

    def headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"}
        if self.position:
            headers["X-Consistency-Token"] = str(self.position)
        return headers


@dataclass
class ClientState:
    accepted: list[tuple[str, str]] = field(default_factory=list)  # (project_id, freelancer_id) without a contract
    contracts: list[str] = field(default_factory=list)


class Soak:
    def __init__(self, http: httpx.AsyncClient, stats: Stats, payments: bool, deadline: float) -> None:
        self.http = http
        self.stats = stats
        self.payments = payments
        self.deadline = deadline

    async def call(self, kind: str, method: str, path: str, account: Account, **kwargs: Any) -> httpx.Response | None:
        began = time.perf_counter()
        try:
            response = await self.http.request(method, path, headers=account.headers(), **kwargs)
        except httpx.HTTPError as exc:
            self.stats.transport_errors.append(f"{kind}: {method} {path}: {type(exc).__name__}: {exc}")
            return None
        self.stats.record(kind, response, time.perf_counter() - began)
        token = response.headers.get("x-consistency-token")
        if method != "GET" and response.is_success and token and token.isascii() and token.isdigit():
            account.position = max(account.position, int(token))
        return response

    async def browse(self, account: Account, rng: random.Random) -> list[Json]:
        params: dict[str, Any] = {"status": "open", "limit": 20}
        if rng.random() < 0.3:
            params["category"] = rng.choice(CATEGORIES)
        response = await self.call("browse", "GET", "/api/projects", account, params=params)
        return list(response.json()["items"]) if response is not None and response.is_success else []

    async def search(self, account: Account, rng: random.Random) -> None:
        q = " ".join(rng.sample(SEARCH_WORDS, rng.randint(1, 2)))
        await self.call("search", "GET", "/api/projects", account, params={"q": q, "limit": 20})

    async def freelancer_step(self, account: Account, rng: random.Random) -> None:
        roll = rng.random()
        if roll < 0.35:
            await self.browse(account, rng)
        elif roll < 0.6:
            await self.search(account, rng)
        elif roll < 0.75:
            projects = await self.browse(account, rng)
            if projects:
                project = rng.choice(projects)
                await self.call("view", "GET", f"/api/projects/{project['id']}", account)
        else:
            projects = await self.browse(account, rng)
            if projects:
                body: Json = {
                    "project_id": rng.choice(projects)["id"],
                    "cover_letter": "I have delivered this kind of project several times and can start now. " * 2,
                    "estimated_hours": rng.randint(5, 200),
                    "hourly_rate": f"{rng.randint(20, 150)}.00",
                    "availability": rng.choice(["immediate", "1-2_weeks", "1_month", "flexible"]),
                }
                await self.call("propose", "POST", "/api/proposals", account, json=body)

    async def client_step(self, account: Account, state: ClientState, rng: random.Random) -> None:
        roll = rng.random()
        if state.accepted and roll < 0.5:
            project_id, freelancer_id = state.accepted.pop()
            body: Json = {
                "project_id": project_id,
                "freelancer_id": freelancer_id,
                "amount": f"{rng.randint(200, 900)}.00",
            }
            response = await self.call("contract", "POST", "/api/contracts", account, json=body)
            if response is not None and response.status_code == 201:
                state.contracts.append(response.json()["id"])
        elif self.payments and state.contracts and roll < 0.6:
            body = {"contract_id": rng.choice(state.contracts), "amount": "5.00", "description": "soak milestone"}
            await self.call("pay", "POST", "/api/payments", account, json=body)
        elif roll < 0.75:
            body = {
                "title": f"Soak project {rng.randrange(10**6)}",
                "description": "A " + " ".join(rng.sample(SEARCH_WORDS, 3)) + " project for the soak test.",
                "category": rng.choice(CATEGORIES),
                "budget_type": rng.choice(["fixed", "hourly"]),
                "budget_min": "100.00",
                "budget_max": f"{rng.randint(100, 5000)}.00",
                "experience_level": rng.choice(["entry", "intermediate", "expert"]),
                "estimated_duration": "2 weeks",
                "skills": rng.sample(SEARCH_WORDS, 2),
            }
            await self.call("post_project", "POST", "/api/projects", account, json=body)
        elif roll < 0.9:
            listing = await self.call(
                "my_proposals", "GET", "/api/proposals", account, params={"status": "submitted", "limit": 20}
            )
            if listing is not None and listing.is_success and listing.json()["items"]:
                proposal = rng.choice(listing.json()["items"])
                accepted = await self.call("accept", "POST", f"/api/proposals/{proposal['id']}/accept", account)
                if accepted is not None and accepted.status_code == 200:
                    state.accepted.append((proposal["project_id"], proposal["freelancer_id"]))
        else:
            await self.search(account, rng)

    async def worker(self, account: Account, seed: int) -> None:
        rng, state = random.Random(seed), ClientState()
        while time.monotonic() < self.deadline:
            if account.role == "client":
                await self.client_step(account, state, rng)
            else:
                await self.freelancer_step(account, rng)


async def register(http: httpx.AsyncClient, role: str, n: int) -> Account:
    body = {"email": f"soak-{role}-{n}@example.com", "password": PASSWORD, "name": f"Soak {role} {n}", "role": role}
    response = await http.post("/api/auth/register", json=body)
    if response.status_code != 201:
        raise RuntimeError(f"register failed: {response.status_code} {response.text[:300]}")
    data = response.json()
    return Account(data["user"]["id"], role, data["access_token"], int(response.headers["x-consistency-token"]))


async def position(http: httpx.AsyncClient, url: str) -> int:
    body = (await http.get(url + "/api/health/ready")).json()
    return int(body["checks"]["position"]["position"])


async def prepare(primary: Server, payments: bool) -> list[Account]:
    """Accounts and a first few projects, on the primary before the edge starts (so the edge starts behind)."""
    clients = max(1, round(CONCURRENCY * CLIENT_SHARE))
    roles = ["client"] * clients + ["freelancer"] * (CONCURRENCY - clients)
    async with httpx.AsyncClient(base_url=primary.base_url, timeout=30.0) as http:
        accounts = list(await asyncio.gather(*(register(http, role, n) for n, role in enumerate(roles))))
        seeder = Soak(http, Stats(), payments, 0.0)
        rng = random.Random(1)
        for account in accounts[:clients]:
            for _ in range(3):
                await seeder.client_step(account, ClientState(), random.Random(rng.random()))
    return accounts


async def soak(primary: Server, edge: Server, accounts: list[Account], payments: bool) -> tuple[Stats, dict[str, Any]]:
    limits = httpx.Limits(max_connections=CONCURRENCY * 2, max_keepalive_connections=CONCURRENCY * 2)
    async with httpx.AsyncClient(base_url=edge.base_url, timeout=30.0, limits=limits) as http:
        rss_start = {"primary": rss_kib(pid_of(primary)), "edge": rss_kib(pid_of(edge))}
        clients = sum(1 for a in accounts if a.role == "client")
        log(
            f"soak: {SOAK_SECONDS:.0f}s in {ROUNDS} rounds, {len(accounts)} workers ({clients} clients), "
            f"payments={payments}"
        )
        stats = Stats()
        began = time.monotonic()
        rounds: list[dict[str, int]] = []
        for n in range(ROUNDS):
            runner = Soak(http, stats, payments, began + SOAK_SECONDS * (n + 1) / ROUNDS)
            await asyncio.gather(*(runner.worker(account, seed + n * 1000) for seed, account in enumerate(accounts)))
            rounds.append({"primary": rss_kib(pid_of(primary)), "edge": rss_kib(pid_of(edge))})
            now = rounds[-1]
            log(f"round {n + 1}: RSS primary {now['primary'] / 1024:.1f} MiB, edge {now['edge'] / 1024:.1f} MiB")
        elapsed = time.monotonic() - began
        rss_end = rounds[-1]
        head = await position(http, primary.base_url)
        caught_up_by = time.monotonic() + 30
        edge_at = await position(http, edge.base_url)
        while edge_at < head and time.monotonic() < caught_up_by:
            await asyncio.sleep(0.1)
            edge_at = await position(http, edge.base_url)
    info: dict[str, Any] = {
        "elapsed": elapsed,
        "rss_start": rss_start,
        "rss_rounds": rounds,
        "rss_warm": rounds[0],
        "rss_end": rss_end,
        "head": head,
        "edge_at": edge_at,
        "payments": payments,
        "workers": len(accounts),
        "clients": clients,
    }
    return stats, info


def has_payments(server: Server) -> bool:
    spec = httpx.get(server.url("/api/openapi.json"), timeout=10.0).json()
    return "/api/payments" in spec.get("paths", {})


def pid_of(server: Server) -> int:
    if server.proc is None or server.proc.poll() is not None:
        raise RuntimeError(f"{server.name} is not running: {server.tail()}")
    return server.proc.pid


def report(stats: Stats, info: dict[str, Any]) -> str:
    lines = [
        f"## Soak: {info['elapsed']:.0f} s, {info['workers']} workers ({info['clients']} clients), "
        f"primary + edge (writes forwarded), payments {'on' if info['payments'] else 'not available'}",
        "",
        "| request | count | req/s | 4xx | 5xx | p50 ms | p95 ms | p99 ms | max ms | 4xx by status and error_type |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    total = 0
    for kind in sorted(stats.latencies):
        values = sorted(stats.latencies[kind])
        statuses = stats.statuses[kind]
        client_errors = sum(n for code, n in statuses.items() if 400 <= code < 500)
        server_errors = sum(n for code, n in statuses.items() if code >= 500)
        total += len(values)
        lines.append(
            f"| {kind} | {len(values)} | {len(values) / info['elapsed']:.1f} | {client_errors} | {server_errors} | "
            f"{percentile(values, 0.5) * 1000:.1f} | {percentile(values, 0.95) * 1000:.1f} | "
            f"{percentile(values, 0.99) * 1000:.1f} | {values[-1] * 1000:.1f} | "
            + ", ".join(f"{name}: {n}" for name, n in stats.refusals[kind].most_common())
            + " |"
        )
    lines.append(f"| **all** | {total} | {total / info['elapsed']:.1f} | | {len(stats.server_errors)} | | | | | |")
    lines += [
        "",
        "| process | RSS start MiB | after warm-up | end | since warm-up | end / warm-up |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in ("primary", "edge"):
        start, warm, end = (info[k][name] / 1024 for k in ("rss_start", "rss_warm", "rss_end"))
        lines.append(f"| {name} | {start:.1f} | {warm:.1f} | {end:.1f} | {end - warm:+.1f} | {end / warm:.3f} |")
    lines.append(
        f"RSS ceiling: {RSS_CEILING_MIB:.0f} MiB at the end, {RSS_GROWTH_MIB:.0f} MiB above the warm-up: "
        + ("; ".join(rss_breaches(info)) or "kept")
    )
    lines += [
        "",
        f"Replication: primary head {info['head']}, edge at {info['edge_at']} after the run.",
        f"5xx responses: {len(stats.server_errors)}; transport errors: {len(stats.transport_errors)}.",
    ]
    return "\n".join(lines)


def summary(stats: Stats, info: dict[str, Any]) -> dict[str, Any]:
    """What the report prints, as data: per request type its count, 4xx, 5xx and latency percentiles in ms."""
    kinds = {}
    for kind in sorted(stats.latencies):
        values = sorted(stats.latencies[kind])
        statuses = stats.statuses[kind]
        kinds[kind] = {
            "count": len(values),
            "4xx": sum(n for code, n in statuses.items() if 400 <= code < 500),
            "5xx": sum(n for code, n in statuses.items() if code >= 500),
            "p50_ms": percentile(values, 0.5) * 1000,
            "p99_ms": percentile(values, 0.99) * 1000,
            "refusals": dict(stats.refusals[kind]),
        }
    return {
        "info": info,
        "requests": kinds,
        "server_errors": len(stats.server_errors),
        "transport_errors": len(stats.transport_errors),
    }


def rss_breaches(info: dict[str, Any]) -> list[str]:
    """Each process whose RSS passed the ceiling, and how."""
    found = []
    for name in ("primary", "edge"):
        warm, end = info["rss_warm"][name] / 1024, info["rss_end"][name] / 1024
        if end > RSS_CEILING_MIB:
            found.append(f"{name} ended at {end:.1f} MiB (> {RSS_CEILING_MIB:.0f})")
        if end - warm > RSS_GROWTH_MIB:
            found.append(f"{name} grew {end - warm:.1f} MiB after the warm-up (> {RSS_GROWTH_MIB:.0f})")
    return found


def main() -> int:
    started = datetime.now(UTC)
    workdir = bench_workdir()
    log(f"workdir {workdir}")
    primary_port, edge_port = free_port(), free_port()
    command = megilance_command()
    primary = Server(
        "primary",
        [command, "serve", "--host", HOST, "--port", str(primary_port)],
        primary_port,
        "/api/health/ready",
        app_env(workdir / "primary-data", REPLICATION_TOKEN=REPLICATION_TOKEN),
        workdir,
    )
    failed = False
    with primary:
        log(f"primary ready at {primary.base_url}")
        payments = has_payments(primary)
        accounts = asyncio.run(prepare(primary, payments))
        log(f"{len(accounts)} accounts registered")
        edge_env = app_env(
            workdir / "edge-data",
            REGION="edge",
            PRIMARY_REGION="primary",
            PRIMARY_URL=primary.base_url,
            REPLICATION_TOKEN=REPLICATION_TOKEN,
        )
        edge_env["SECRET_KEY"] = primary.env["SECRET_KEY"]  # one key ring: the edge verifies the primary's tokens
        edge = Server(
            "edge",
            [command, "serve", "--host", HOST, "--port", str(edge_port)],
            edge_port,
            "/api/health/ready",
            edge_env,
            workdir,
        )
        with edge:
            log(f"edge ready at {edge.base_url}")
            stats, info = asyncio.run(soak(primary, edge, accounts, payments))
            for server in (primary, edge):
                if server.proc is None or server.proc.poll() is not None:
                    log(f"{server.name} died: {server.tail()}")
                    failed = True
            log("stopping")
    log("stopped")
    shutil.rmtree(workdir, ignore_errors=True)
    print(report(stats, info))
    breaches = rss_breaches(info)
    save_results("soak", started, {"machine": host_info(), "summary": summary(stats, info), "rss_breaches": breaches})
    for line in stats.server_errors[:20] + stats.transport_errors[:20]:
        log(line)
    if stats.server_errors or stats.transport_errors or failed:
        log("FAIL: 5xx responses, transport errors or a dead process")
        return 1
    if breaches:
        log("FAIL: RSS past its ceiling: " + "; ".join(breaches))
        return 1
    log("OK: zero 5xx, RSS within its ceiling")
    return 0


if __name__ == "__main__":
    sys.exit(main())
