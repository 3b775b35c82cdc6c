"""The app factory: one ASGI app for the primary and every edge."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.types import ASGIApp

from api.auth import authenticate
from api.cache import ResponseCache
from api.forwarding import RegionGate
from api.matcher import start_matching, stop_matching
from api.middleware import Cors, EdgeMiddleware
from api.openapi import build_spec
from api.ratelimit import RateLimits
from api.routes import (
    auth,
    contracts,
    docs,
    health,
    internal,
    matching,
    payments,
    portfolio,
    projects,
    proposals,
    uploads,
    users,
    wallet,
)
from api.routing import IndexedRouter, Operation, routes
from api.uploads.housekeeping import GC_BATCH, collect_uploads
from api.workers import answered_by_writer, worker_setup
from core.clock import Clock
from core.housekeeping import BATCH, purge_expired
from core.logging import configure, logging_enabled
from core.settings import Settings, load_settings
from node.mailer import Mailer
from node.metrics import Metrics
from node.runtime import Runtime
from replication.replicator import Replicator

UPLOAD_PATHS = ("/api/uploads",)


def operations() -> list[Operation]:
    """Every public endpoint, in the order the docs list them."""
    return [
        *health.OPERATIONS,
        *auth.OPERATIONS,
        *wallet.OPERATIONS,
        *users.OPERATIONS,
        *projects.OPERATIONS,
        *matching.OPERATIONS,
        *proposals.OPERATIONS,
        *contracts.OPERATIONS,
        *portfolio.OPERATIONS,
        *payments.OPERATIONS,
        *uploads.OPERATIONS,
        *docs.OPERATIONS,
        *internal.OPERATIONS,
    ]


EXTERNAL_WRITES_POLL_S = 1.0
HOUSEKEEPING_INTERVAL_S = 3600.0
GC_THRESHOLD = 20_000  # allocations between young-generation collections (CPython default: 700)


async def watch_external_writes(runtime: Runtime) -> None:
    """Primary: notice commits other processes made to the same file (CLI, seeding) within a second.

    Reads that carry such a write's consistency token do not wait for this: they look at once.
    """
    while True:
        await asyncio.sleep(EXTERNAL_WRITES_POLL_S)
        try:
            await runtime.sync_position()
        except Exception as exc:  # noqa: BLE001 - a failed poll is retried on the next tick
            structlog.get_logger("app").warning("position_poll_failed", error=type(exc).__name__)


async def purge_expired_rows(runtime: Runtime) -> None:
    """Expired idempotency records and refresh tokens, a batch per writer job so writes never wait long."""
    while await runtime.write(lambda conn: purge_expired(conn, runtime.clock.now())) >= BATCH:
        pass


async def housekeeping(runtime: Runtime, passed: asyncio.Event) -> None:
    """Primary: `purge_expired_rows` and `collect_uploads` at start and every HOUSEKEEPING_INTERVAL_S after;
    `passed` is set by each pass.

    The start does not wait for the first pass: after a long stop it may have many batches to delete, and
    requests are served (their writes interleaved with its batches) meanwhile.
    """
    while True:
        try:
            await purge_expired_rows(runtime)
            while await collect_uploads(runtime, runtime.clock.now()) >= GC_BATCH:
                pass
            passed.set()
        except Exception as exc:  # noqa: BLE001 - retried on the next tick
            structlog.get_logger("app").warning("housekeeping_failed", error=type(exc).__name__)
        await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)


def settle_gc() -> None:
    """After start: what exists lives as long as the process, and requests make no cycles worth hunting."""
    # Everything built so far lives as long as the process: keep it out of every GC pass.
    gc.collect()
    gc.freeze()
    # Requests make no reference cycles worth hunting: at the default 700 allocations the collector
    # ran ~1,000 times in a 6 s proposals run and freed nothing, 150 ms of the GIL (docs/performance.md,
    # "Where the time goes"). Collections still happen, 30x less often.
    gc.set_threshold(GC_THRESHOLD, 10, 10)


class Api(Starlette):
    """Starlette with only our middleware around the router.

    Starlette's default stack adds ServerErrorMiddleware and ExceptionMiddleware; here EdgeMiddleware
    answers unhandled errors with the 500 of docs/api.md and the router answers domain and HTTP errors,
    so both would be layers every request pays for and nothing uses.
    """

    def build_middleware_stack(self) -> ASGIApp:
        app: ASGIApp = self.router
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return app


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> Api:
    settings = settings or load_settings()
    configure(settings.log_level)
    runtime = Runtime(settings, clock)
    metrics = Metrics()
    ops = operations()

    settings.require_edge_settings()
    settings.require_public_url()
    wiring = worker_setup(settings, runtime, ops, metrics)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime.tracker.bind(asyncio.get_running_loop())
        await asyncio.to_thread(runtime.open)
        if not settings.is_primary:
            runtime.replicator = Replicator(runtime, metrics, on_rebuild=app.state.cache.clear)
            runtime.replicator.start()
        runtime.matcher = await start_matching(runtime)
        background = []
        mailer = Mailer(runtime, metrics) if runtime.owns_writer else None  # mail leaves from the primary only
        if mailer is not None:
            await mailer.start()
        if runtime.owns_writer:
            loop = asyncio.get_running_loop()
            background = [
                loop.create_task(watch_external_writes(runtime)),
                loop.create_task(housekeeping(runtime, app.state.housekept)),
            ]
        await wiring.start(app)
        settle_gc()
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await stop_matching(runtime.matcher)
            if mailer is not None:
                await mailer.stop()
            if runtime.replicator is not None:
                await runtime.replicator.stop()
            await wiring.stop()
            await asyncio.to_thread(runtime.close)

    gate = RegionGate(
        tracker=runtime.tracker,
        metrics=metrics,
        wait_s=settings.read_your_writes_timeout_ms / 1000,
        forwarder=wiring.forwarder,
        fly_primary_region=settings.primary_region if not settings.is_primary and settings.fly_region else None,
        sync_position=runtime.sync_position,
        authenticate=lambda scope: authenticate(Request(scope), runtime),
        forward_reads=answered_by_writer if runtime.forwards_writes else None,
        writes_routed=wiring.link is not None,
    )
    # CORS is outermost, so every answer a browser gets carries it: errors from the middleware and the
    # region gate too (a 4xx without CORS headers reaches a browser app as an opaque network error).
    middleware: list[Middleware] = []
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:
        middleware.append(
            Middleware(
                Cors,
                allow_origins=origins,
                allow_credentials=False,
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                allow_headers=[
                    "Authorization",
                    "Content-Type",
                    "Idempotency-Key",
                    "If-Match",
                    "X-Consistency-Token",
                    "X-Request-ID",
                ],
                expose_headers=[
                    "ETag",
                    "Idempotent-Replayed",
                    "Retry-After",
                    "X-Consistency-Token",
                    "X-Request-ID",
                    "X-Region",
                ],
            )
        )
    middleware.append(
        Middleware(
            EdgeMiddleware,
            region=settings.region_name,
            tracker=runtime.tracker,
            metrics=metrics,
            max_body_bytes=settings.max_body_bytes,
            hsts=settings.environment == "production",
            unlimited_paths=UPLOAD_PATHS,
            gate=gate,
            access_log=logging_enabled(settings.log_level, "info"),
            refresh=runtime.refresh if runtime.forwards_writes else None,
            worker=wiring.role.index if wiring.role is not None else None,
        )
    )
    app = Api(middleware=middleware)
    app.router = IndexedRouter([*routes(ops, runtime, wiring.link), docs.static_mount()], lifespan=lifespan)
    app.state.runtime = runtime
    app.state.housekept = asyncio.Event()  # set by each pass of `housekeeping` (primary only)
    app.state.metrics = metrics
    app.state.cache = ResponseCache(settings.response_cache_entries)
    app.state.openapi = build_spec(ops, settings.app_name)
    app.state.limits = RateLimits(
        enabled=settings.rate_limit_enabled,
        auth_per_minute=settings.rate_limit_auth_per_minute,
        writes_per_minute=settings.rate_limit_writes_per_minute,
        trusted_proxies=settings.trusted_proxies,
    )
    return app
