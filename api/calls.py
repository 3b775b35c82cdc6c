"""A reader worker hands worker 0 a write as a validated call, not as HTTP to parse again (api.workers).

The reader does everything before the handler itself: it authenticates the caller, checks the role, validates
the query and the body, and answers any 4xx on its own. It then sends worker 0 what the handler needs: the
operation, the request's scope (headers, client address, request id), the caller's claims, the parsed query
and body, and the raw body. Worker 0 runs the operation's handler as it would for a request of its own
(Idempotency-Key, rate limits, the command, the read-back) and sends back the status, headers and body; the
reader answers with them and writes the one access line.

Frames are a 4-byte length and a pickle. The socket sits in the supervisor's private directory (mode 0700):
only this user's processes reach it, and they can write the database file anyway.

Same contract as the HTTP proxy (api.unix_forwarder): 503 when nothing was sent, 504 once the call may have
been applied.
"""

from __future__ import annotations

import asyncio
import pickle
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_for, internal_error
from api.forwarding import Proxy
from api.scope import REQUEST_ID_KEY
from api.unix_forwarder import IdleConnections, unanswered
from core.tokens import Claims
from node.metrics import Metrics

log = structlog.get_logger("forwarding")
FRAME = struct.Struct("!I")
MAX_FRAME = 256 * 1024 * 1024  # far above any body a handed write may carry (MAX_BODY_BYTES)
ANSWER_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0  # how long a stopping worker 0 lets the calls in progress finish
# What of a request's scope a handler may look at: never the app, the server's state or the ASGI callables.
SCOPE_KEYS = (
    "type",
    "asgi",
    "http_version",
    "method",
    "scheme",
    "path",
    "raw_path",
    "root_path",
    "query_string",
    "headers",
    "client",
    "server",
    "path_params",
    REQUEST_ID_KEY,
)

# (method, path template), the request, the caller, the parsed body and query → the handler's response
Operation = tuple[str, str]
HandedHandler = Callable[[Request, Claims | None, Any, Any], Awaitable[Response]]
# status, raw headers, body
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


class NotSent(Exception):
    """The call could not be handed to worker 0: nothing was done."""


class Unanswered(Exception):
    """Worker 0 did not answer (it may have applied the call)."""


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = FRAME.unpack(await reader.readexactly(FRAME.size))
    if size > MAX_FRAME:
        raise ValueError(f"a frame of {size} bytes")
    return await reader.readexactly(size)


def frame(value: object) -> bytes:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return FRAME.pack(len(data)) + data


class CallClient:
    """A reader worker's connections to worker 0's call socket: one call in flight on each."""

    def __init__(self, path: str) -> None:
        self.connections = IdleConnections(path)

    async def close(self) -> None:
        await self.connections.close()

    async def call(
        self, operation: Operation, request: Request, principal: Claims | None, body: Any, query: Any
    ) -> Answer:
        raw = await request.body()  # already read and validated by the route
        scope = {key: request.scope[key] for key in SCOPE_KEYS if key in request.scope}
        message = frame((operation, scope, principal, body, query, raw))
        try:
            reader, writer = await self.connections.take()
        except OSError as exc:
            raise NotSent(type(exc).__name__) from exc
        reusable = False
        try:
            writer.write(message)
            async with asyncio.timeout(ANSWER_TIMEOUT_S):
                await writer.drain()
                answer: Answer = pickle.loads(await read_frame(reader))  # noqa: S301 - from worker 0
            reusable = True
            return answer
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
            raise Unanswered(type(exc).__name__) from exc
        finally:
            self.connections.give_back(reader, writer, reusable=reusable)


async def hand(
    client: CallClient, operation: Operation, request: Request, principal: Claims | None, body: Any, query: Any
) -> Response:
    """Worker 0's answer to this validated call, or the 503/504 of a call that did not come back."""
    try:
        status, headers, content = await client.call(operation, request, principal, body, query)
    except (NotSent, Unanswered) as exc:
        log.warning("forward_failed", error=str(exc), path=request.scope["path"])
        return unanswered(sent=isinstance(exc, Unanswered))
    response = Response(content, status_code=status)
    response.raw_headers = headers
    return response


class CallServer:
    """Worker 0's side: runs each handed call's handler and sends its response back."""

    def __init__(self, handlers: dict[Operation, HandedHandler]) -> None:
        self.handlers = handlers
        self.app: ASGIApp | None = None  # what a handler finds as `request.app` (its state: the rate limits)
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._busy: set[asyncio.Task[None]] = set()
        self._stopping = False

    async def start(self, app: ASGIApp, listener: socket.socket) -> None:
        self.app = app
        self._server = await asyncio.start_unix_server(self._serve, sock=listener)

    async def stop(self) -> None:
        """No new calls: idle connections close now, busy ones once their call is answered."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for task, writer in self._connections.items():
            if task not in self._busy:
                writer.close()  # its reader sees the end of the stream: the task ends
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=STOP_TIMEOUT_S)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        try:
            while not self._stopping:
                call = pickle.loads(await read_frame(reader))  # noqa: S301 - from this user's own processes only
                self._busy.add(task)
                try:
                    writer.write(frame(await self.answer(*call)))
                    await writer.drain()
                finally:
                    self._busy.discard(task)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass  # the reader closed the connection (or sent what no reader sends)
        finally:
            del self._connections[task]
            writer.close()

    async def answer(
        self, operation: Operation, scope: Scope, principal: Claims | None, body: Any, query: Any, raw: bytes
    ) -> Answer:
        scope = {**scope, "app": self.app}
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}

        try:
            response = await self.handlers[operation](Request(scope, receive), principal, body, query)
        except Exception as exc:  # noqa: BLE001 - answered as the router and the middleware would answer it
            known = error_for(exc)
            if known is None:
                log.error(
                    "unhandled_error",
                    request_id=scope.get(REQUEST_ID_KEY, b"").decode(),
                    error_class=type(exc).__name__,
                    error=str(exc)[:500],
                    path=scope["path"],
                )
            response = known if known is not None else internal_error()
        return await captured(response, scope, receive)


async def captured(response: Response, scope: Scope, receive: Callable[[], Awaitable[Message]]) -> Answer:
    """What the response sends (its background work included), as status, headers and body."""
    status, headers, parts = 500, [], []

    async def send(message: Message) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status, headers = message["status"], list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            parts.append(message.get("body", b""))

    await response(scope, receive, send)
    return status, headers, b"".join(parts)


class Relayed(Response):
    """A response that is worker 0's, relayed over HTTP as it comes (streamed bodies, address-limited auth writes)."""

    def __init__(self, proxy: Proxy) -> None:  # no body of its own: nothing to render
        self.proxy = proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.proxy.forward(scope, receive, send)


class WriterLink:
    """How a reader worker's routes reach worker 0: validated calls over the call socket, and the writes that
    must reach it as they came (a streamed body, or an address-limited sign-in counted before any parsing)
    over the HTTP proxy. Both count in `forwarded_requests_total` with reason `write`."""

    def __init__(self, client: CallClient, proxy: Proxy, metrics: Metrics) -> None:
        self.client = client
        self.proxy = proxy
        self.metrics = metrics

    async def hand(
        self, operation: Operation, request: Request, principal: Claims | None, body: Any, query: Any
    ) -> Response:
        self.metrics.forwarded.labels("write").inc()
        return await hand(self.client, operation, request, principal, body, query)

    def relay(self) -> Response:
        self.metrics.forwarded.labels("write").inc()
        return Relayed(self.proxy)
