"""Regions: reads wait for the client's consistency token or go to the primary; writes go to the primary.

On Fly (`FLY_REGION` set) a write is answered with `fly-replay: region=<primary>` and Fly's proxy
replays it there; elsewhere the edge proxies it to `PRIMARY_URL` itself and relays the answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

import httpx
import structlog
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from api.responses import error_response
from api.scope import POSITION_KEY, REQUEST_ID_KEY
from core.positions import PositionTracker
from node.metrics import Metrics

log = structlog.get_logger("forwarding")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
READ_METHODS = frozenset({"GET", "HEAD"})
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
        b"host",
    }
)
OWN_HEADERS = frozenset({b"date", b"server"})
# X-Forwarded-For and X-Request-ID are sent anew. A primary that trusts its edges believes their Fly-Client-IP,
# so a client's own must not pass through (Fly's proxy sets it, and on Fly writes are replayed, not proxied).
FORWARD_DROPS = HOP_BY_HOP | {b"x-forwarded-for", b"x-request-id", b"fly-client-ip"}
# Failures before a connection to the primary exists: the request cannot have reached it.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
INFO_PATHS = frozenset({"/", "/api"})  # about the node asked, at no position: served where they arrive
LOCAL_PATHS = ("/internal/", "/api/health/", "/api/docs", "/api/redoc", "/api/openapi.json", "/api/static/")


def is_regional(path: str) -> bool:
    """Whether requests for this path honour X-Consistency-Token, and an edge may send them to the primary."""
    return not path.startswith(LOCAL_PATHS) and path not in INFO_PATHS


class Proxy(Protocol):
    """What the region gate sends requests through: Forwarder, or a reader worker's UnixForwarder."""

    async def forward(self, scope: Scope, receive: Receive, send: Send) -> None: ...
    async def close(self) -> None: ...


class Forwarder:
    """A streaming reverse proxy to the primary (httpx, bounded timeouts)."""

    def __init__(self, primary_url: str) -> None:
        self.client = httpx.AsyncClient(
            base_url=primary_url,
            timeout=httpx.Timeout(connect=3.0, read=60.0, write=60.0, pool=5.0),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in FORWARD_DROPS]
        # The primary records this region's id for the request (it answers the client with it, too).
        if REQUEST_ID_KEY in scope:
            headers.append((b"x-request-id", scope[REQUEST_ID_KEY]))
        client = scope.get("client")
        peer = str(client[0]) if client else "unknown"
        prior = [v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for"]
        headers.append((b"x-forwarded-for", ", ".join([*prior, peer]).encode("latin-1")))
        headers.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
        url = scope["path"] + (("?" + scope["query_string"].decode("latin-1")) if scope.get("query_string") else "")
        body = _body(receive) if scope["method"] in WRITE_METHODS else None
        request = self.client.build_request(scope["method"], url, headers=headers, content=body)
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            log.warning("forward_failed", error=type(exc).__name__, path=scope["path"])
            await _unanswered(exc)(scope, receive, send)
            return
        try:
            # The local server adds its own date and server headers: relaying the primary's would double them.
            relayed = [(k.lower(), v) for k, v in response.headers.raw if k.lower() not in HOP_BY_HOP | OWN_HEADERS]
            await send({"type": "http.response.start", "status": response.status_code, "headers": relayed})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()


def _unanswered(exc: httpx.HTTPError) -> Response:
    """503 when the request never left the edge; 504 once it was sent, since the primary may have applied it."""
    if isinstance(exc, NOT_SENT):
        detail = "The primary region cannot be reached; nothing was done: retry shortly"
        return error_response(503, detail, "service_unavailable", headers={"Retry-After": "1"})
    detail = (
        "The primary region did not answer; the request may have been applied: "
        "retry it with the same Idempotency-Key, or read the resource back"
    )
    return error_response(504, detail, "gateway_timeout", headers={"Retry-After": "1"})


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":  # the client left mid-body: an abort, not the primary's failure
            raise ClientDisconnect
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


class RegionGate:
    """Honours X-Consistency-Token on reads; on an edge also sends writes (and late reads) to the primary.

    EdgeMiddleware asks it only about requests it concerns (`concerns`): a read without a token on
    the primary, the common case, costs one comparison.
    """

    def __init__(
        self,
        *,
        tracker: PositionTracker,
        metrics: Metrics,
        wait_s: float,
        forwarder: Proxy | None,
        fly_primary_region: str | None,
        sync_position: Callable[[], Awaitable[int]] | None = None,
        authenticate: Callable[[Scope], Awaitable[object]] | None = None,
        forward_reads: Callable[[Scope], bool] | None = None,
        writes_routed: bool = False,
    ) -> None:
        self.forward_reads = forward_reads  # reads only the primary's process answers (matching, api.workers)
        # A reader worker's writes go on to its routes, which hand them to worker 0 once validated (api.calls).
        self.forwards_writes = (forwarder is not None or fly_primary_region is not None) and not writes_routed
        self.sync_position = sync_position
        self.authenticate = authenticate
        self.tracker = tracker
        self.metrics = metrics
        self.wait_s = wait_s
        self.forwarder = forwarder
        self.fly_primary = fly_primary_region
        self.edge = forwarder is not None or fly_primary_region is not None

    def concerns(self, scope: Scope, token: bytes | None) -> bool:
        if self.forward_reads is not None and self.forward_reads(scope):
            return True
        if token is None and not (self.forwards_writes and scope["method"] in WRITE_METHODS):
            return False
        return is_regional(scope["path"])

    async def admit(self, scope: Scope, receive: Receive, send: Send, token: bytes | None) -> bool:
        """True when the request may be served here; False when it was answered (forwarded or refused)."""
        if self.forwards_writes and scope["method"] in WRITE_METHODS:
            await self._to_primary(scope, receive, send, "write")
            return False
        if self.forward_reads is not None and self.forward_reads(scope):
            await self._to_primary(scope, receive, send, "worker")
            return False
        if token is None:
            return True
        text = token.strip()
        target = int(text) if text.isdigit() and len(text) < 19 else -1  # bytes.isdigit(): ASCII digits only
        if target < 0:
            await error_response(400, "X-Consistency-Token must be a position this API issued", "bad_request")(
                scope, receive, send
            )
            return False
        if target > self.tracker.position and self.authenticate is not None and scope["method"] in READ_METHODS:
            # Every regional read needs a signed-in caller: refuse a stranger before waiting (or forwarding)
            # for a position they chose. The route authenticates again once the position is reached.
            await self.authenticate(scope)
        if target > self.tracker.position and self.sync_position is not None:
            await self.sync_position()  # the token may come from another process's write (the CLI, worker 0)
        # Once synced, the primary has every position there is: one it lacks will not come by waiting.
        if await self.tracker.wait_for(target, self.wait_s if self.edge else 0):
            scope[POSITION_KEY] = max(scope.get(POSITION_KEY, 0), self.tracker.position)
            return True
        if self.edge:
            await self._to_primary(scope, receive, send, "consistency")
        else:
            await error_response(400, "X-Consistency-Token is ahead of the event log", "bad_request")(
                scope, receive, send
            )
        return False

    async def _to_primary(self, scope: Scope, receive: Receive, send: Send, reason: str) -> None:
        self.metrics.forwarded.labels(reason).inc()
        if self.forward_reads is not None:  # a reader worker: logged and counted under the route worker 0 runs
            _name_route(scope)
        if self.fly_primary is not None:
            body = error_response(
                409, "Replayed in the primary region", "replayed", headers={"fly-replay": f"region={self.fly_primary}"}
            )
            await body(scope, receive, send)
            return
        if self.forwarder is None:  # constructed with neither: only on a misconfigured edge
            raise RuntimeError("edge without PRIMARY_URL or FLY_REGION")
        await self.forwarder.forward(scope, receive, send)


def _name_route(scope: Scope) -> None:
    """Set the route a request would take here (the router's own lookup), for its access line and metrics."""
    resolve = getattr(getattr(scope.get("app"), "router", None), "resolve", None)
    found = resolve(scope) if resolve is not None else None
    if found is not None:
        scope["route"] = found[0]
