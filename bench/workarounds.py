"""`python -m bench.workarounds [inprocess] [http]`: what each Starlette/uvicorn workaround buys over the public way.

In-process (`inprocess`): one app (`api.app.create_app`, its lifespan run, on uvloop) driven by a minimal ASGI
harness, `await app(scope, receive, send)` BENCH_WORKAROUNDS_N times per run, for five requests: a cached project
(`GET /api/projects/{id}`, route 21 of 61), a cached contract total (`GET /api/payments/contract/{id}/total`,
route 50), ReDoc (`GET /api/redoc`, route 58, no parameters), `GET /api/health/live` (route 1) and an unknown
path (404). The pairs, each workaround against its public alternative, swap only that one piece:

- `router`: `api.routing.IndexedRouter` against Starlette's `Router` with the same routes (errors then go up to
  the middleware, which answers them in the same shape);
- `stack`: `Api.build_middleware_stack` (our middleware only) against Starlette's own stack
  (`ServerErrorMiddleware` and `ExceptionMiddleware` around it; domain and HTTP errors as `exception_handlers`);
- `public`: both at once (Starlette's `Router` inside Starlette's stack);
- `response`: `api.cache.CachedResponse` (a cached answer's headers kept in ASGI form) against
  `Response(body, media_type=..., headers=...)` built on every hit (cached reads only).

Over HTTP (`http`): `megilance serve` as shipped (its protocol sends a sized response's head with its body in
one write, `httpserver.bounded.CoalescingTransport`) against `python -m bench.two_writes serve` (uvicorn's own
two writes: head, then body); one worker each, on one data directory. wrk `-t1` on a cached
`GET /api/projects/{id}`, `GET /api/auth/me` and `GET /api/health/live`; server CPU per request from
/proc/<pid>/stat, req/s, and wrk's own CPU per request (it shares the machine's cores). The servers alternate,
shipped first and last, for BENCH_WORKAROUNDS_HTTP_ROUNDS (3) rounds of (shipped, two writes); each round's
ratio is against the mean of the shipped runs either side, and the median round is reported.

In-process, every pair runs workaround, public, workaround (A, B, A); ratio = workaround / public time per request,
against the mean of the two A runs: 0.90 means the workaround costs 10% less. Each pair and request repeats
that BENCH_WORKAROUNDS_ROUNDS (5) times and reports the median ratio.
Results in bench/results/<date>-workarounds.json.
"""

from __future__ import annotations

import asyncio
import os
import resource
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Router
from starlette.types import ASGIApp, Message, Scope

import api.cache
from api.app import Api, create_app
from api.errors import error_for
from bench.run import (
    CONNECTIONS,
    DURATION_S,
    WARMUP_S,
    env_int,
    host_info,
    progress,
    run_loop,
    save_results,
    speed_check,
)
from bench.servers import AppServer, Server, app_env, app_server, bench_workdir, free_port
from bench.wrk import ensure_wrk, run_wrk, wrk_version
from core.errors import DomainError
from core.settings import load_settings

N = env_int("BENCH_WORKAROUNDS_N", 10000)  # in-process requests per timed run
WARMUP_N = env_int("BENCH_WORKAROUNDS_WARMUP_N", 500)
ROUNDS = env_int("BENCH_WORKAROUNDS_ROUNDS", 5)  # rounds of (workaround, public, workaround) per pair and request
PASSWORD = "bench-password-123"
PROJECT = {
    "title": "Build a landing page",
    "description": "A responsive landing page for our product launch.",
    "category": "web",
    "budget_type": "fixed",
    "budget_min": "500",
    "budget_max": "1500",
    "experience_level": "intermediate",
    "estimated_duration": "2 weeks",
    "skills": ["html"],
}
PROPOSAL = {
    "cover_letter": "I have built many landing pages like this one. " * 3,
    "estimated_hours": 20,
    "hourly_rate": "40",
    "availability": "immediate",
}


# -- the in-process harness ----------------------------------------------------------------------


def http_scope(method: str, path: str, headers: dict[str, str] | None = None) -> Scope:
    """An HTTP scope as uvicorn builds it for a request on 127.0.0.1."""
    raw = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench")]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": raw,
        "state": {},
    }


@dataclass
class Answer:
    status: int = 0
    body: bytes = b""

    def json(self) -> Any:
        return orjson.loads(self.body)


async def call(app: ASGIApp, scope: Scope, body: bytes = b"") -> Answer:
    """One request through the app; the whole answer."""
    answer = Answer()
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # a client that stays: nothing more arrives
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]
        elif message["type"] == "http.response.body":
            answer.body += message.get("body", b"")

    await app(dict(scope, state={}), receive, send)
    return answer


async def post(app: ASGIApp, path: str, data: dict[str, Any], token: str | None = None) -> Any:
    headers = {"content-type": "application/json"} | ({"authorization": f"Bearer {token}"} if token else {})
    answer = await call(app, http_scope("POST", path, headers), orjson.dumps(data))
    if answer.status not in (200, 201):
        raise RuntimeError(f"POST {path}: {answer.status} {answer.body[:300]!r}")
    return answer.json()


async def drive(app: ASGIApp, scope: Scope, n: int) -> float:
    """Microseconds per request over `n` sequential requests (scope copied per request, as a server makes one)."""
    request = {"type": "http.request", "body": b"", "more_body": False}

    async def receive() -> Message:
        return request

    async def send(message: Message) -> None:
        pass

    started = time.perf_counter()
    for _ in range(n):
        await app(dict(scope, state={}), receive, send)
    return (time.perf_counter() - started) / n * 1e6


async def constant(scope: Scope, receive: Any, send: Any) -> None:
    """The harness's floor: an app that answers a constant, as small as ASGI allows."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"{}"})


# -- the variants ------------------------------------------------------------------------------


async def answer_error(request: Request, exc: Exception) -> Response:
    """Starlette exception handler: domain and HTTP errors in the API's one error shape."""
    response = error_for(exc)
    assert response is not None
    return response


class PublicCachedResponse:
    """Stands in for `CachedResponse`: a public `Response` built on every hit, as without the workaround."""

    headers_of: dict[int, dict[str, str]] = {}  # the cache keeps each entry's header list: converted once

    def __new__(cls, body: bytes, raw_headers: list[tuple[bytes, bytes]]) -> Response:  # type: ignore[misc]
        headers = cls.headers_of.get(id(raw_headers))
        if headers is None:
            skip = {b"content-length", b"content-type"}
            headers = {k.decode(): v.decode() for k, v in raw_headers if k not in skip}
            cls.headers_of[id(raw_headers)] = headers
        return Response(body, media_type="application/json", headers=headers)


@dataclass
class Variant:
    name: str
    stack: ASGIApp
    router: Router
    public_response: bool = False


class Harness:
    """One app, its lifespan run; each variant is a router and a middleware stack swapped into it."""

    def __init__(self, app: Api) -> None:
        self.app = app
        indexed = app.router
        plain = Router(routes=list(indexed.routes))
        app.exception_handlers = {DomainError: answer_error, HTTPException: answer_error}
        self.variants = {
            "shipped": Variant("shipped", self.build(indexed, Api), indexed),
            "starlette Router": Variant("starlette Router", self.build(plain, Api), plain),
            "starlette stack": Variant("starlette stack", self.build(indexed, Starlette), indexed),
            "all public": Variant("all public", self.build(plain, Starlette), plain),
            "public Response": Variant("public Response", self.build(indexed, Api), indexed, public_response=True),
        }
        self.use("shipped")

    def build(self, router: Router, stack_of: type[Starlette]) -> ASGIApp:
        self.app.router = router
        stack: ASGIApp = stack_of.build_middleware_stack(self.app)
        return stack

    def use(self, name: str) -> None:
        variant = self.variants[name]
        self.app.router, self.app.middleware_stack = variant.router, variant.stack
        api.cache.CachedResponse = PublicCachedResponse if variant.public_response else ORIGINAL_CACHED  # type: ignore[misc]


ORIGINAL_CACHED = api.cache.CachedResponse
PAIRS = {  # (workaround, public alternative, requests it concerns)
    "router": ("shipped", "starlette Router", ("detail", "late", "docs", "live", "unknown")),
    "stack": ("shipped", "starlette stack", ("detail", "late", "docs", "live", "unknown")),
    "public": ("shipped", "all public", ("detail", "late", "docs", "live", "unknown")),
    "response": ("shipped", "public Response", ("detail", "late")),
}


async def seed(app: Api) -> dict[str, Scope]:
    """A client, a freelancer, a project, an accepted proposal and a contract; the timed requests' scopes."""
    accounts = {}
    for role in ("client", "freelancer"):
        email = f"{role}-{secrets.token_hex(4)}@bench.example.com"
        body = {"email": email, "password": PASSWORD, "name": role.title(), "role": role}
        accounts[role] = await post(app, "/api/auth/register", body)
    client, freelancer = accounts["client"]["access_token"], accounts["freelancer"]["access_token"]
    project = (await post(app, "/api/projects", PROJECT, client))["id"]
    proposal = (await post(app, "/api/proposals", {"project_id": project, **PROPOSAL}, freelancer))["id"]
    await post(app, f"/api/proposals/{proposal}/accept", {}, client)
    contract = {"project_id": project, "freelancer_id": accounts["freelancer"]["user"]["id"], "amount": "1250"}
    contract_id = (await post(app, "/api/contracts", contract, client))["id"]
    auth = {"authorization": f"Bearer {client}"}
    return {
        "detail": http_scope("GET", f"/api/projects/{project}", auth),
        "late": http_scope("GET", f"/api/payments/contract/{contract_id}/total", auth),
        "docs": http_scope("GET", "/api/redoc"),
        "live": http_scope("GET", "/api/health/live"),
        "unknown": http_scope("GET", "/api/nowhere/at-all"),
    }


EXPECTED = {"detail": 200, "late": 200, "docs": 200, "live": 200, "unknown": 404}


async def check(harness: Harness, scopes: dict[str, Scope]) -> None:
    """Every variant answers every request alike (status and body), before anything is timed."""
    for label, scope in scopes.items():
        bodies = set()
        for name in harness.variants:
            harness.use(name)
            answer = await call(harness.app, scope)
            if answer.status != EXPECTED[label]:
                raise RuntimeError(f"{name}: {scope['path']} answered {answer.status}: {answer.body[:300]!r}")
            bodies.add(answer.body)
        if len(bodies) != 1:
            raise RuntimeError(f"the variants answer {scope['path']} differently: {bodies}")
    harness.use("shipped")


async def compare_in_process(harness: Harness, scopes: dict[str, Scope]) -> list[dict[str, Any]]:
    """Per pair and request, ROUNDS rounds of workaround, public, workaround; ratio = median of the rounds' ratios."""
    rows = []
    for pair, (workaround, public, labels) in PAIRS.items():
        for label in labels:
            rounds = []
            for _ in range(ROUNDS):
                runs: dict[str, list[float]] = {workaround: [], public: []}
                for name in (workaround, public, workaround):
                    harness.use(name)
                    await drive(harness.app, scopes[label], WARMUP_N)
                    runs[name].append(await drive(harness.app, scopes[label], N))
                ours, theirs = sum(runs[workaround]) / 2, runs[public][0]
                rounds.append({"workaround_us": runs[workaround], "public_us": theirs, "ratio": ours / theirs})
            harness.use("shipped")
            ratios = sorted(r["ratio"] for r in rounds)
            best_ours = min(min(r["workaround_us"]) for r in rounds)
            best_theirs = min(r["public_us"] for r in rounds)
            rows.append(
                {
                    "pair": pair,
                    "request": label,
                    "path": scopes[label]["path"],
                    "workaround": workaround,
                    "public": public,
                    "workaround_us": median([sum(r["workaround_us"]) / 2 for r in rounds]),
                    "public_us": median([r["public_us"] for r in rounds]),
                    "ratio": median(ratios),
                    "ratio_range": [ratios[0], ratios[-1]],
                    "ratio_of_best": best_ours / best_theirs,
                    "rounds": rounds,
                }
            )
            progress(f"{pair} {label}: ratio {median(ratios):.2f} (rounds {ratios[0]:.2f}-{ratios[-1]:.2f})")
    return rows


@contextmanager
def running_app() -> Iterator[Api]:
    data_dir = Path(tempfile.mkdtemp(prefix="megilance-bench-"))
    settings = load_settings(
        DATA_DIR=data_dir,
        DATABASE_URL="",
        ENVIRONMENT="test",
        SECRET_KEY=secrets.token_urlsafe(48),
        LOG_LEVEL="warning",  # the access log would go to stdout here; its cost is the same either way
        ARGON2_TIME_COST=1,  # only the two sign-ups hash a password
        ARGON2_MEMORY_KIB=1024,
        RATE_LIMIT_ENABLED=False,
        DB_SYNCHRONOUS="FULL",
        FEATURE_FLAG_AI_MATCHING=False,
        CORS_ORIGINS="",
    )
    try:
        yield create_app(settings)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def in_process() -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        with running_app() as app:
            async with app.router.lifespan_context(app):
                scopes = await seed(app)
                harness = Harness(app)
                await check(harness, scopes)
                floor = [await drive(constant, scopes["detail"], N) for _ in range(2)]
                rows = await compare_in_process(harness, scopes)
        return {
            "harness_floor_us": floor,
            "rounds": ROUNDS,
            "requests_per_run": N,
            "warmup_per_run": WARMUP_N,
            "rows": rows,
        }

    return dict(run_loop(main))


# -- over HTTP: one write per response (shipped) or uvicorn's two ------------------------------------------

HTTP_ROUNDS = env_int("BENCH_WORKAROUNDS_HTTP_ROUNDS", 3)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """User + system CPU of this process's children that have exited (each wrk run, once it is over)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def two_writes_server(workdir: Path, env: dict[str, str]) -> Server:
    port = free_port()
    cmd = [sys.executable, "-m", "bench.two_writes", "serve", "--host", "127.0.0.1", "--port", str(port)]
    return AppServer("two-writes", cmd, port, "/api/health/live", env, workdir)


def shipped_server(workdir: Path, env: dict[str, str]) -> Server:
    server = app_server(workdir)
    server.env = env  # one secret and data directory for every server of the run: the token stays valid
    return server


def measure(server: Server, paths: dict[str, str], headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    out = {}
    with server:
        assert server.proc is not None
        for label, path in paths.items():
            url = server.url(path)
            if (status := httpx.get(url, headers=headers, timeout=10.0).status_code) != 200:
                raise RuntimeError(f"{server.name}: {path} answered {status}")
            if WARMUP_S > 0:
                run_wrk(url, duration_s=WARMUP_S, connections=CONNECTIONS, headers=headers)
            before, client_before = cpu_seconds(server.proc.pid), children_cpu_seconds()
            result = run_wrk(url, duration_s=DURATION_S, connections=CONNECTIONS, headers=headers)
            cpu = cpu_seconds(server.proc.pid) - before
            client = children_cpu_seconds() - client_before  # wrk's, once it has exited
            out[label] = {
                **result.to_dict(),
                "server_cpu_s": cpu,
                "cpu_us_per_request": cpu / result.requests * 1e6,
                "wrk_cpu_us_per_request": client / result.requests * 1e6,
            }
            progress(f"{server.name} {label}: {result.rps:,.0f} req/s, {out[label]['cpu_us_per_request']:.1f} us CPU")
    return out


def over_http() -> dict[str, Any]:
    ensure_wrk()
    workdir = bench_workdir()
    env = app_env(workdir / "app-data")
    try:
        first = shipped_server(workdir, env)
        with first, httpx.Client(base_url=first.base_url, timeout=30.0) as client:
            email = f"client-{secrets.token_hex(4)}@bench.example.com"
            body = {"email": email, "password": PASSWORD, "name": "Bench", "role": "client"}
            token = client.post("/api/auth/register", json=body).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            project = client.post("/api/projects", json=PROJECT, headers=headers).json()["id"]
        paths = {"detail": f"/api/projects/{project}", "me": "/api/auth/me", "live": "/api/health/live"}
        ours = [measure(shipped_server(workdir, env), paths, headers)]
        theirs = []
        for _ in range(HTTP_ROUNDS):
            theirs.append(measure(two_writes_server(workdir, env), paths, headers))
            ours.append(measure(shipped_server(workdir, env), paths, headers))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    rows = []
    for label, path in paths.items():
        cpu = [run[label]["cpu_us_per_request"] for run in ours]
        public = [run[label]["cpu_us_per_request"] for run in theirs]
        rates = [run[label]["rps"] for run in ours]
        public_rates = [run[label]["rps"] for run in theirs]
        ratios = [(cpu[i] + cpu[i + 1]) / 2 / public[i] for i in range(HTTP_ROUNDS)]
        rps_ratios = [(rates[i] + rates[i + 1]) / 2 / public_rates[i] for i in range(HTTP_ROUNDS)]
        rows.append(
            {
                "pair": "one write per response",
                "request": label,
                "path": path,
                "workaround_cpu_us": cpu,
                "public_cpu_us": public,
                "ratio": median(ratios),
                "round_ratios": ratios,
                "workaround_rps": rates,
                "public_rps": public_rates,
                "rps_ratio": median(rps_ratios),
                "round_rps_ratios": rps_ratios,
                "wrk_cpu_us": [run[label]["wrk_cpu_us_per_request"] for run in ours],
                "public_wrk_cpu_us": [run[label]["wrk_cpu_us_per_request"] for run in theirs],
                "runs": {"shipped": [run[label] for run in ours], "two_writes": [run[label] for run in theirs]},
            }
        )
    wrk = f"-t1 -c{CONNECTIONS} -d{DURATION_S}s (+{WARMUP_S}s warm-up)"
    return {"wrk": wrk, "rounds": HTTP_ROUNDS, "rows": rows}


# -- report -----------------------------------------------------------------------------------------


def table(in_proc: dict[str, Any] | None, http: dict[str, Any] | None) -> str:
    lines = [
        "| pair | request | workaround | public | ratio (workaround / public) | notes |",
        "|---|---|---:|---:|---:|---|",
    ]
    for row in (in_proc or {}).get("rows", []):
        low, high = row["ratio_range"]
        lines.append(
            f"| {row['pair']} | {row['request']} `{row['path']}` | {row['workaround_us']:.1f} µs "
            f"| {row['public_us']:.1f} µs | {row['ratio']:.2f} | rounds {low:.2f}-{high:.2f}; "
            f"best runs {row['ratio_of_best']:.2f} |"
        )
    for row in (http or {}).get("rows", []):
        rounds = ", ".join(f"{ratio:.2f}" for ratio in row["round_ratios"])
        lines.append(
            f"| {row['pair']} | {row['request']} `{row['path']}` | {median(row['workaround_cpu_us']):.1f} µs CPU "
            f"| {median(row['public_cpu_us']):.1f} µs CPU | {row['ratio']:.2f} | rounds {rounds}; req/s ratio "
            f"{row['rps_ratio']:.2f}; wrk CPU per request {median(row['wrk_cpu_us']):.1f} vs "
            f"{median(row['public_wrk_cpu_us']):.1f} µs |"
        )
    return "\n".join(lines)


PARTS: dict[str, Callable[[], dict[str, Any]]] = {"inprocess": in_process, "http": over_http}


def main(argv: list[str]) -> int:
    if any(arg in ("-h", "--help") for arg in argv) or any(arg not in PARTS for arg in argv):
        print(__doc__)
        return 0 if all(arg in ("-h", "--help") for arg in argv) else 2
    chosen = argv or list(PARTS)
    started = datetime.now(UTC)
    machine: dict[str, Any] = {**host_info(), "speed at start": speed_check()}
    if "http" in chosen:
        machine["wrk"] = wrk_version()
    results: dict[str, Any] = {}
    for name in chosen:
        progress(f"part {name}")
        results[name] = PARTS[name]()
    machine["speed at end"] = speed_check()
    print("\n".join(f"- {key}: {value}" for key, value in machine.items()))
    if "inprocess" in results:
        floor = results["inprocess"]["harness_floor_us"]
        print(
            f"- in-process: {ROUNDS} rounds of (workaround, public, workaround), {N:,} requests per run after "
            f"{WARMUP_N:,} warm-up; ratio = median of the rounds; harness floor {min(floor):.1f} µs"
        )
    if "http" in results:
        print(
            f"- over HTTP: wrk {results['http']['wrk']}, one worker, {results['http']['rounds']} rounds of (shipped, "
            "two writes) and a last shipped run; ratio = server CPU per request, the median round"
        )
    print(table(results.get("inprocess"), results.get("http")))
    save_results("workarounds", started, {"machine": machine, "parts": chosen, **results})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
