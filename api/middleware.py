"""Pure-ASGI middleware: request id, region gate and consistency headers, security headers, body limit, access log;
and CORS."""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_for, internal_error
from api.responses import error_response
from api.scope import POSITION_KEY, REQUEST_ID_KEY, RESPONDED_KEY
from core.errors import PayloadTooLarge
from core.logging import access_line
from core.positions import PositionTracker
from node.metrics import Metrics

if TYPE_CHECKING:
    from api.forwarding import RegionGate

log = structlog.get_logger("access")
MAX_HEADER_BYTES = 16 * 1024
BODYLESS = frozenset({"GET", "HEAD", "OPTIONS"})
# A request whose client went away before its answer (nginx's code): counted apart from the server's own errors.
CLIENT_CLOSED = 499
# Generated request ids: a random per-process prefix and a counter (unique, cheap, not guessable across runs).
REQUEST_ID_PREFIX = os.urandom(8).hex().encode()
REQUEST_COUNTER = itertools.count(1)
REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
STRICT_CSP = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
DOCS_CSP = (
    b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    b"script-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'"
)
DOCS_PATHS = ("/api/docs", "/api/redoc", "/api/static/")


class EdgeMiddleware:
    """Everything every response carries, and the one access-log line per request."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        region: str,
        tracker: PositionTracker,
        metrics: Metrics,
        max_body_bytes: int,
        hsts: bool,
        unlimited_paths: tuple[str, ...] = (),
        gate: RegionGate,
        access_log: bool = True,
        refresh: Callable[[], None] | None = None,
        worker: int | None = None,
    ) -> None:
        self.app = app
        self.gate = gate
        self.region = region.encode()
        self.tracker = tracker
        self.metrics = metrics
        self.max_body = max_body_bytes
        self.hsts = hsts
        self.unlimited = unlimited_paths
        self.region_text = region
        self.access_log = access_log
        self.refresh = refresh  # a reader worker's catch-up with worker 0's commits (api.workers)
        self.worker = worker
        security = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY")]
        if hsts:
            security.append((b"strict-transport-security", b"max-age=63072000; includeSubDomains"))
        self._api_headers = [*security, (b"content-security-policy", STRICT_CSP)]
        # Pages a browser renders also get a referrer policy (JSON responses carry no links to leak).
        self._docs_headers = [*security, (b"referrer-policy", b"no-referrer"), (b"content-security-policy", DOCS_CSP)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        if self.refresh is not None:
            self.refresh()
        size, request_id, length, token = _scan(scope["headers"])
        scope[REQUEST_ID_KEY] = request_id
        # The position this answer is served at: raised by the region gate after waiting for a token.
        scope[POSITION_KEY] = self.tracker.position
        path: str = scope["path"]
        status = 500
        responded = False
        limit = None if path.startswith(self.unlimited) or scope["method"] in BODYLESS else self.max_body

        async def send_wrapper(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
                scope[RESPONDED_KEY] = True
                self._decorate(message.setdefault("headers", []), request_id, scope[POSITION_KEY], path)
            await send(message)

        try:
            if size > MAX_HEADER_BYTES:
                response = error_response(
                    431, f"The request headers exceed {MAX_HEADER_BYTES} bytes", "headers_too_large"
                )
                await response(scope, receive, send_wrapper)
            elif limit is not None and length > limit:
                response = error_response(413, f"The body exceeds {limit} bytes", "payload_too_large")
                await response(scope, receive, send_wrapper)
            elif not self.gate.concerns(scope, token) or await self.gate.admit(scope, receive, send_wrapper, token):
                await self.app(scope, self._limited(receive, limit) if limit else receive, send_wrapper)
        except ClientDisconnect:
            # The client left mid-request (e.g. during its body): nothing to answer, and not the server's error.
            if not responded:
                status = CLIENT_CLOSED
            log.info(
                "client_aborted",
                request_id=request_id.decode(),
                method=scope["method"],
                path=path,
                route=getattr(scope.get("route"), "path", "<unmatched>"),
            )
        except Exception as exc:  # noqa: BLE001 - the one place an unhandled error becomes a 500
            answer = error_for(exc)  # domain and HTTP errors are answered by the router; these came from outside it
            if answer is None:
                log.error(
                    "unhandled_error",
                    request_id=request_id.decode(),
                    error_class=type(exc).__name__,
                    error=str(exc)[:500],
                    path=path,
                )
                answer = internal_error()
            if not responded:  # a response already under way cannot be replaced
                await answer(scope, receive, send_wrapper)
        finally:
            self._record(scope, status, time.perf_counter() - began, request_id)

    def _record(self, scope: Scope, status: int, elapsed: float, request_id: bytes) -> None:
        """One histogram observation and (when info is on) one access-log line."""
        template = getattr(scope.get("route"), "path", "<unmatched>")
        self.metrics.requests.observe(scope["method"], template, status, elapsed)
        if self.access_log:  # straight to the sink: structlog's chain cost more than the rest of a cached read
            access_line(
                (request_id, scope["method"], template, status, elapsed, self.region_text, self.worker, time.time())
            )

    @staticmethod
    def _limited(receive: Receive, limit: int) -> Receive:
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise PayloadTooLarge(f"The body exceeds {limit} bytes")
            return message

        return limited

    def _decorate(self, headers: list[Any], request_id: bytes, position: int, path: str) -> None:
        present = {name for name, _ in headers}  # ASGI servers and Starlette send lower-case names
        if b"x-request-id" not in present:
            headers.append((b"x-request-id", request_id))
        if b"x-region" not in present:  # a response relayed from the primary keeps the primary's region
            headers.append((b"x-region", self.region))
        if b"x-consistency-token" not in present:
            headers.append((b"x-consistency-token", str(position).encode()))
        if b"x-content-type-options" in present:  # relayed: the primary already set the security headers
            return
        headers.extend(self._docs_headers if path.startswith(DOCS_PATHS) else self._api_headers)


def _scan(headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes, int, bytes | None]:
    """One pass over the request headers: their size, the request id, the declared length, the consistency token."""
    size, request_id, length, token = 0, None, 0, None
    for name, value in headers:
        size += len(name) + len(value)
        if name == b"x-request-id":
            request_id = value
        elif name == b"content-length":
            length = int(value) if value.isdigit() else 0  # a malformed length is the server's to refuse
        elif name == b"x-consistency-token":
            token = value
    if request_id is None or not REQUEST_ID.fullmatch(request_id):
        request_id = b"%s%016x" % (REQUEST_ID_PREFIX, next(REQUEST_COUNTER))
    return size, bytes(request_id), length, token


class Cors(CORSMiddleware):
    """Starlette's CORS, but a refused preflight is answered in the API's error shape (Starlette's is plain text)."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        refused = bytes(response.body).decode().removeprefix("Disallowed CORS ")  # e.g. "origin, headers"
        headers = {k: v for k, v in response.headers.items() if k not in ("content-length", "content-type")}
        return error_response(
            400, f"This cross-origin request is not allowed ({refused})", "bad_request", headers=headers
        )
