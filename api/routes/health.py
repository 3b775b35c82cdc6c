"""Info, health and metrics."""

from __future__ import annotations

from typing import Literal

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.responses import Response

from api.cache import CachedResponse, raw_headers
from api.responses import JSON
from api.routing import Call, Operation
from api.version import app_version


class RootInfo(BaseModel):
    name: str
    version: str
    docs: str


class ApiInfo(BaseModel):
    name: str
    version: str
    region: str
    role: Literal["primary", "edge"]


class Live(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, object]


async def root(call: Call) -> Response:
    return JSON({"name": call.runtime.settings.app_name, "version": app_version(), "docs": "/api/docs"})


async def api_info(call: Call) -> Response:
    s = call.runtime.settings
    return JSON({"name": s.app_name, "version": app_version(), "region": s.region_name, "role": s.role})


LIVE_BODY = b'{"status":"ok"}'
LIVE_HEADERS = raw_headers(LIVE_BODY, {})  # the same answer every time: its headers put in ASGI form once


async def live(call: Call) -> Response:
    return CachedResponse(LIVE_BODY, LIVE_HEADERS)


async def ready(call: Call) -> Response:
    checks = await call.runtime.readiness()
    ok = all(check.get("ok") for check in checks.values())
    return JSON({"status": "ready" if ok else "not_ready", "checks": checks}, status_code=200 if ok else 503)


async def metrics(call: Call) -> Response:
    call.runtime.refresh_gauges(call.request.app.state.metrics)
    return Response(generate_latest(call.request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


# Liveness first: probes hit it most, and routes are matched in order.
OPERATIONS = [
    Operation("GET", "/api/health/live", live, "200 while the process runs", "health", response=Live, auth=False),
    Operation(
        "GET", "/", root, "Service name, version and where the docs are", "health", response=RootInfo, auth=False
    ),
    Operation("GET", "/api", api_info, "API name, version, region and role", "health", response=ApiInfo, auth=False),
    Operation(
        "GET",
        "/api/health/ready",
        ready,
        "200 when the database answers (and an edge is caught up)",
        "health",
        response=Ready,
        auth=False,
        answers=((503, "Not ready: the same body, with the failing checks", Ready),),
    ),
    Operation("GET", "/api/health/metrics", metrics, "Prometheus metrics (text format)", "health", auth=False),
]
