"""A reader worker's lean HTTP/1.1 proxy to worker 0 over its Unix socket (api.workers).

httpx (api.forwarding.Forwarder) spent about half of a reader worker's time on a write in its connection
pool's bookkeeping (docs/performance.md). This one keeps idle keep-alive connections in a list, writes the
request head and body as they come, and relays the answer as httptools parses it. Same contract as Forwarder:
503 when nothing was sent, 504 once it may have been applied, a client leaving mid-body is an abort.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
import structlog
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from api.forwarding import FORWARD_DROPS, HOP_BY_HOP, OWN_HEADERS, WRITE_METHODS
from api.responses import error_response
from api.scope import REQUEST_ID_KEY

log = structlog.get_logger("forwarding")
MAX_IDLE = 64  # keep-alive connections kept for the next request
READ_CHUNK = 64 * 1024
ANSWER_TIMEOUT_S = 60.0
RELAYED_DROPS = HOP_BY_HOP | OWN_HEADERS | {b"content-length"}


class NotSent(Exception):
    """The request could not be handed to worker 0: nothing was done."""


class Unanswered(Exception):
    """Worker 0 did not answer (it may have applied the request)."""


class _Answer:
    """httptools callbacks: the status line and headers, then body chunks, in a queue the relay drains."""

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_done = asyncio.Event()
        self.chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.head_done.set()

    def on_body(self, body: bytes) -> None:
        self.chunks.put_nowait(bytes(body))

    def on_message_complete(self) -> None:
        self.complete = True
        self.chunks.put_nowait(None)


class IdleConnections:
    """Keep-alive connections to one Unix socket: an open one is taken again, at most MAX_IDLE are kept."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def take(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while self._idle:
            reader, writer = self._idle.pop()
            if not writer.is_closing() and not reader.at_eof():
                return reader, writer
            writer.close()
        return await asyncio.open_unix_connection(self.path)

    def give_back(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, reusable: bool) -> None:
        if reusable and len(self._idle) < MAX_IDLE:
            self._idle.append((reader, writer))
        else:
            writer.close()

    def __len__(self) -> int:
        return len(self._idle)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for _, writer in idle:
            writer.close()


class UnixForwarder:
    """Forwarder's interface (`forward`, `close`) over a Unix socket, with a plain list of idle connections."""

    def __init__(self, path: str) -> None:
        self.connections = IdleConnections(path)

    async def close(self) -> None:
        await self.connections.close()

    async def forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            reader, writer = await self.connections.take()
        except OSError as exc:
            log.warning("forward_failed", error=type(exc).__name__, path=scope["path"])
            await unanswered(sent=False)(scope, receive, send)
            return
        reusable = False
        try:
            await self._send_request(writer, scope, receive)
            answer = await self._read_head(reader, scope["method"] == "HEAD")
            reusable = await self._relay(reader, answer, send)
        except ClientDisconnect:
            raise
        except (OSError, Unanswered, httptools.HttpParserError, TimeoutError) as exc:
            log.warning("forward_failed", error=type(exc).__name__, path=scope["path"])
            await unanswered(sent=True)(scope, receive, send)
        finally:
            self.connections.give_back(reader, writer, reusable=reusable)

    async def _send_request(self, writer: asyncio.StreamWriter, scope: Scope, receive: Receive) -> None:
        has_body = scope["method"] in WRITE_METHODS
        lines = [_request_line(scope), *_headers(scope, chunked=has_body)]
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n")
        if has_body:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":  # the client left mid-body: an abort
                    raise ClientDisconnect
                chunk = message.get("body", b"")
                if chunk:
                    writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    await writer.drain()
                if not message.get("more_body", False):
                    break
            writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def _read_head(
        self, reader: asyncio.StreamReader, head_only: bool
    ) -> tuple[_Answer, httptools.HttpResponseParser]:
        answer = _Answer()
        parser = httptools.HttpResponseParser(answer)
        async with asyncio.timeout(ANSWER_TIMEOUT_S):
            while not answer.head_done.is_set():
                data = await reader.read(READ_CHUNK)
                if not data:
                    raise Unanswered("worker 0 closed the connection")
                parser.feed_data(data)
        if head_only and not answer.complete:  # an answer to HEAD has no body, whatever its length says
            answer.complete = True
            answer.chunks.put_nowait(None)
        return answer, parser

    async def _relay(self, reader: asyncio.StreamReader, head: Any, send: Send) -> bool:
        """Send the answer on as it arrives; True when the connection may carry another request."""
        answer, parser = head
        headers = [(k, v) for k, v in answer.headers if k not in RELAYED_DROPS]
        length = next((v for k, v in answer.headers if k == b"content-length"), None)
        if length is not None:  # kept: the local server then writes it as is, not chunked
            headers.append((b"content-length", length))
        await send({"type": "http.response.start", "status": parser.get_status_code(), "headers": headers})
        while True:
            if answer.chunks.empty() and not answer.complete:
                async with asyncio.timeout(ANSWER_TIMEOUT_S):
                    data = await reader.read(READ_CHUNK)
                if not data:
                    raise Unanswered("worker 0 closed the connection mid-answer")
                parser.feed_data(data)
                continue
            chunk = answer.chunks.get_nowait()
            if chunk is None:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return bool(parser.should_keep_alive()) and answer.chunks.empty()
            await send({"type": "http.response.body", "body": chunk, "more_body": True})


def _request_line(scope: Scope) -> bytes:
    target = scope.get("raw_path") or scope["path"].encode()
    if scope.get("query_string"):
        target += b"?" + scope["query_string"]
    return b"%s %s HTTP/1.1" % (scope["method"].encode(), target)


def _headers(scope: Scope, *, chunked: bool) -> list[bytes]:
    drops = FORWARD_DROPS | {b"content-length"}
    lines = [b"%s: %s" % (k, v) for k, v in scope["headers"] if k.lower() not in drops]
    lines.append(b"host: worker-0")
    if REQUEST_ID_KEY in scope:
        lines.append(b"x-request-id: " + scope[REQUEST_ID_KEY])
    client = scope.get("client")
    peer = str(client[0]).encode() if client else b"unknown"
    prior = [v for k, v in scope["headers"] if k == b"x-forwarded-for"]
    lines.append(b"x-forwarded-for: " + b", ".join([*prior, peer]))
    lines.append(b"x-forwarded-proto: " + scope.get("scheme", "http").encode())
    if chunked:
        lines.append(b"transfer-encoding: chunked")
    return lines


def unanswered(*, sent: bool) -> Response:
    """503 when nothing reached worker 0; 504 once it may have applied the request."""
    if not sent:
        detail = "The writing worker cannot be reached; nothing was done: retry shortly"
        return error_response(503, detail, "service_unavailable", headers={"Retry-After": "1"})
    detail = (
        "The writing worker did not answer; the request may have been applied: "
        "retry it with the same Idempotency-Key, or read the resource back"
    )
    return error_response(504, detail, "gateway_timeout", headers={"Retry-After": "1"})
