"""The HTTP server's own limits: uvicorn's httptools protocol with a bound on the request head.

uvicorn's `h11_max_incomplete_event_size` applies only to h11; with httptools a header block
that never ends would be buffered without limit. This protocol counts the bytes of a request
head as they arrive and answers 431 (then closes) once they pass MAX_HEAD_BYTES — before the
app, or even the header parser's callbacks, see anything.

It also sends a response's head together with its first body chunk: uvicorn writes the two
separately, one `send()` each, and on a busy loop that second system call is measurable.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

log = structlog.get_logger("server")

MAX_HEAD_BYTES = 64 * 1024  # request line + headers; the app refuses more than 16 KiB of headers itself
# A request head must arrive within this many seconds of its first byte (slow-loris clients are cut off).
# `megilance serve` sets it from HEADER_TIMEOUT_S before the server starts.
HEAD_TIMEOUT_S = 10.0
_BODY = b'{"detail":"The request head is too large","error_type":"headers_too_large"}'
REFUSAL = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_BODY), _BODY)
)


_OVERLOADED = b'{"detail":"The server has too many open connections; retry shortly","error_type":"service_unavailable"}'


async def overloaded(scope: Any, receive: Any, send: Any) -> None:
    """The answer past the connection limit (`MAX_CONNECTIONS`): 503 in the error shape, and the connection closed."""
    log.warning("connection_limit_reached")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(_OVERLOADED)),
        (b"retry-after", b"1"),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": _OVERLOADED, "more_body": False})


class _Held:
    """Stands in for the transport while uvicorn writes a response head: keeps the bytes instead."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data


class _Prefixed:
    """Stands in for the transport during the first body write: sends the held head and the chunk at once."""

    __slots__ = ("head", "transport")

    def __init__(self, transport: Any, head: bytes) -> None:
        self.transport, self.head = transport, head

    def write(self, data: bytes) -> None:
        head, self.head = self.head, b""
        self.transport.write(head + data)

    def close(self) -> None:
        self.transport.close()


class CoalescingCycle(RequestResponseCycle):
    """One response of a connection, whose head leaves with its first body chunk.

    Only a head that declares a Content-Length is held (the body follows at once). A streamed
    answer of unknown length may wait for its first chunk, so its head goes out straight away.
    """

    _head: bytes | None = None

    async def send(self, message: Any) -> None:
        transport = self.transport
        if message["type"] == "http.response.start" and self._holds(message):
            held = _Held()
            self.transport = held  # type: ignore[assignment]
            try:
                await super().send(message)
            finally:
                self.transport = transport
            self._head = held.data
            return
        head, self._head = self._head, None
        if not head:
            await super().send(message)
            return
        prefixed = _Prefixed(transport, head)
        self.transport = prefixed  # type: ignore[assignment]
        try:
            await super().send(message)
        finally:
            self.transport = transport
        if prefixed.head and not self.disconnected:  # the body wrote nothing (an empty final chunk)
            transport.write(prefixed.head)

    def _holds(self, message: Any) -> bool:
        if self.response_started or self.scope["method"] == "HEAD":
            return False
        return any(name.lower() == b"content-length" for name, _ in message.get("headers", ()))


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that refuses a request head larger than MAX_HEAD_BYTES or slower than HEAD_TIMEOUT_S,
    and cuts off a request body that stays silent for HEAD_TIMEOUT_S.

    Only a head or body still open after a chunk is parsed costs anything: a request that arrives in one
    packet (nearly all of them) arms no timer and counts no bytes.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._head_open = False  # between the first byte of a request and the end of its headers
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_open = False  # between the end of a request's headers and the end of its body
        self._body_heard = False  # bytes of the body arrived since the body timer was armed
        self._body_timer: asyncio.TimerHandle | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self._cancel_body_timer()
        super().connection_lost(exc)

    def _body_silent(self) -> None:
        """A body that sent nothing for HEAD_TIMEOUT_S (while the app was ready to read) is cut off."""
        self._body_timer = None
        if not self._body_open or self.transport.is_closing():
            return
        if self._body_heard or self.flow.read_paused:  # paused: the app is behind, not the client
            self._body_heard = False
            self._body_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._body_silent)
            return
        self.transport.close()

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._head_open and not self.transport.is_closing():
            self.transport.close()

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._body_open:  # this chunk ended inside a request body: silence from here on is timed
            self._body_heard = True
            if self._body_timer is None:
                self._body_heard = False
                self._body_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._body_silent)
        if self._head_open:  # this chunk ended inside a request head
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_too_slow)
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
                self.transport.write(REFUSAL)
                self.transport.close()

    def on_message_begin(self) -> None:
        self._head_open = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._head_open, self._head_bytes = False, 0
        self._cancel_head_timer()
        self._body_open = True
        limit = self.limit_concurrency
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            # uvicorn would answer this request with its own plain-text 503: answer it in the API's error shape.
            app, self.app, self.limit_concurrency = self.app, overloaded, None
            try:
                super().on_headers_complete()
            finally:
                self.app, self.limit_concurrency = app, limit
        else:
            super().on_headers_complete()
        # uvicorn made this request's cycle and scheduled its task, which has not run yet: it runs as a
        # CoalescingCycle. (An upgrade request makes no cycle; an earlier one is left as it was.)
        if type(self.cycle) is RequestResponseCycle:
            self.cycle.__class__ = CoalescingCycle

    def on_message_complete(self) -> None:
        self._body_open = False
        self._cancel_body_timer()
        super().on_message_complete()
