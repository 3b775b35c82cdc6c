"""The HTTP server's own limits: uvicorn's httptools protocol with a bound on the request head.

uvicorn's `h11_max_incomplete_event_size` applies only to h11; with httptools a header block
that never ends would be buffered without limit. This protocol counts the bytes of a request
head as they arrive and answers 431 (then closes) once they pass MAX_HEAD_BYTES — before the
app, or even the header parser's callbacks, see anything.

Its timers close a connection that sends nothing, a head or body that stalls, and a body slower than
MIN_BODY_RATE (408); malformed HTTP gets 400 in the API's error shape, not uvicorn's plain text. A response
whose head declares its length leaves in one write with its body, not two.

And it makes the listening socket itself: `::` is bound dual-stack (IPv4 mapped), which asyncio's own
`create_server` does not do (it sets IPV6_V6ONLY), and the server prints one line once it listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import resource
import socket
import sys
from collections.abc import Callable
from typing import Any

import structlog
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

log = structlog.get_logger("server")

MAX_HEAD_BYTES = 64 * 1024  # request line + headers; the app refuses more than 16 KiB of headers itself
# A request head must arrive within this many seconds of its first byte, or of the connection's accept for
# its first request (slow-loris clients, and sockets that never send anything, are cut off).
# `megilance serve` sets it from HEADER_TIMEOUT_S before the server starts.
HEAD_TIMEOUT_S = 10.0
# After a grace of HEAD_TIMEOUT_S, a request body must keep arriving at this many bytes per second on average
# (Apache's mod_reqtimeout uses the same default). 0: no minimum. `megilance serve` sets it from MIN_BODY_RATE.
MIN_BODY_RATE = 500
_BODY = b'{"detail":"The request head is too large","error_type":"headers_too_large"}'
REFUSAL = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_BODY), _BODY)
)


def _answer(status: bytes, body: bytes) -> bytes:
    """A whole response in the API's error shape, written by the protocol itself rather than by the app."""
    head = b"HTTP/1.1 %s\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: %d\r\n\r\n"
    return head % (status, len(body)) + body


TOO_SLOW = _answer(
    b"408 Request Timeout", b'{"detail":"The request body arrived too slowly","error_type":"request_timeout"}'
)
MALFORMED = _answer(
    b"400 Bad Request", b'{"detail":"The request is not well-formed HTTP/1.1","error_type":"bad_request"}'
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


class CountingState(ServerState):
    """uvicorn's state shared by a server's connections, which also counts those that have sent nothing yet."""

    silent = 0


SIZED_HEAD = b"\r\ncontent-length: "  # uvicorn writes header names in lower case
JOIN_MAX_BYTES = 64 * 1024  # a body up to this is copied behind its head; a larger one is not


class CoalescingTransport:
    """A connection's transport that holds a sized response's head until its body: one send() for both, not two.

    uvicorn writes a response's status line and headers as soon as the app starts the response, then the body
    as it comes: two system calls, and two wake-ups of the client, for a response that fits in one. A head that
    declares a Content-Length is held here and leaves with the next write. Whatever else is written (a streamed
    head, a chunk, an interim 100 Continue) goes out at once, and nothing is ever reordered: the end of each
    response (`flush`, called by the protocol), and closing the connection, send a head still held.
    """

    __slots__ = ("_held", "_transport", "get_extra_info", "is_closing", "pause_reading", "resume_reading")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: bytes | None = None
        # The calls uvicorn makes per request or per connection, bound once (no lookup through __getattr__).
        self.is_closing = transport.is_closing
        self.get_extra_info = transport.get_extra_info
        self.pause_reading = transport.pause_reading
        self.resume_reading = transport.resume_reading

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if len(data) <= JOIN_MAX_BYTES:
                self._transport.write(held + data)
            else:  # uvloop sends both buffers in one writev() without copying the body
                self._transport.writelines((held, data))
        elif data[:5] == b"HTTP/" and SIZED_HEAD in data:
            self._held = bytes(data)
        else:
            self._transport.write(data)

    def writelines(self, chunks: Any) -> None:
        self.write(b"".join(chunks))

    def flush(self) -> None:
        """Send a head still held (a response with no body write: HEAD, or one that ended early)."""
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:  # the rest of the transport's interface, unchanged
        return getattr(self._transport, name)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that refuses a request head larger than MAX_HEAD_BYTES or slower than HEAD_TIMEOUT_S
    (counted from the accept for a connection's first request), cuts off a request body that stays silent for
    HEAD_TIMEOUT_S or arrives slower than MIN_BODY_RATE, and answers malformed HTTP in the API's error shape.

    Only a head or body still open after a chunk is parsed costs anything: a request that arrives in one
    packet (nearly all of them) counts no bytes, and the one timer armed at accept is cancelled with its head.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._head_open = False  # between the first byte of a request (or the accept) and the end of its headers
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_open = False  # between the end of a request's headers and the end of its body
        self._body_heard = False  # bytes of the body arrived since the body timer was armed
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_began = 0.0  # when the body's rate is counted from
        self._body_bytes = 0  # body bytes since then
        self._silent = False  # accepted, and not a byte received yet (counted in CountingState.silent)

    # Each response's head and body in one write (CoalescingTransport); False: uvicorn's two writes.
    COALESCE = True

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if self.COALESCE:
            transport = CoalescingTransport(transport)  # type: ignore[assignment]
        super().connection_made(transport)
        # A connection that never sends a byte would otherwise be held for ever: uvicorn's keep-alive timer
        # runs only after a response, and the head timer below only from a request's first byte.
        self._head_open = True
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_too_slow)
        if isinstance(self.server_state, CountingState):
            self._silent = True
            self.server_state.silent += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self._cancel_body_timer()
        self._spoke()
        super().connection_lost(exc)

    def _spoke(self) -> None:
        if self._silent and isinstance(self.server_state, CountingState):
            self._silent = False
            self.server_state.silent -= 1

    def _busy(self) -> int:
        """Connections that count towards MAX_CONNECTIONS: those that have sent something.

        A connection that has sent nothing costs a file and a few objects until HEAD_TIMEOUT_S closes it; were
        it counted, a client opening a few thousand of them would get every other request a 503 meanwhile.
        """
        silent = self.server_state.silent if isinstance(self.server_state, CountingState) else 0
        return len(self.connections) - silent

    def send_400_response(self, msg: str) -> None:
        """Malformed HTTP (a bad request line or header): 400 in the API's error shape, then close."""
        if not self.transport.is_closing():
            self.transport.write(MALFORMED)
            self.transport.close()

    def _body_silent(self) -> None:
        """Every HEAD_TIMEOUT_S of a body: cut off one that sent nothing meanwhile, or arrives too slowly on average."""
        self._body_timer = None
        if not self._body_open or self.transport.is_closing():
            return
        now = self.loop.time()
        if self.flow.read_paused:  # paused: the app is behind, not the client; its rate counts afresh
            self._body_began, self._body_bytes, self._body_heard = now, 0, False
        elif not self._body_heard:
            self.transport.close()
            return
        elif MIN_BODY_RATE and self._body_bytes < MIN_BODY_RATE * (now - self._body_began - HEAD_TIMEOUT_S):
            self._refuse_slow_body()
            return
        self._body_heard = False
        self._body_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._body_silent)

    def _refuse_slow_body(self) -> None:
        """408 in the error shape (unless the app already answered), then close; the app sees a disconnect."""
        log.info("slow_body_refused", body_bytes=self._body_bytes)
        cycle = self.cycle
        if cycle is not None and not cycle.response_started:
            self.transport.write(TOO_SLOW)
        if cycle is not None:  # as on a lost connection: the app's receive() ends, its send() writes nothing
            cycle.disconnected = True
            cycle.message_event.set()
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
        if self._silent:
            self._spoke()
        super().data_received(data)
        if self._body_open:  # this chunk ended inside a request body: silence and rate from here on are timed
            self._body_heard = True
            if self._body_timer is None:  # the first packet that ends inside this body: its rate counts from here
                self._body_heard, self._body_began = False, self.loop.time()
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
        self._body_open, self._body_bytes = True, 0
        limit, app = self.limit_concurrency, self.app
        if limit is not None and (self._busy() >= limit or len(self.tasks) >= limit):
            self.app = overloaded  # uvicorn's own answer would be plain text: this one is in the API's error shape
        self.limit_concurrency = None  # judged here: uvicorn's own check counts silent connections too
        try:
            super().on_headers_complete()
        finally:
            self.app, self.limit_concurrency = app, limit

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._body_open = False
        self._cancel_body_timer()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        transport: Any = self.transport
        if type(transport) is CoalescingTransport:
            transport.flush()
        super().on_response_complete()


DUAL_STACK = "::"


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket for HOST; `::` listens on every interface for IPv6 and IPv4 alike (IPv4 mapped)."""
    if host == DUAL_STACK:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        except OSError:
            sock.close()
            raise
        return _bound(sock, (DUAL_STACK, port))
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[
        0
    ]
    return _bound(socket.socket(family, kind, proto), address)


def _bound(sock: socket.socket, address: tuple[Any, ...]) -> socket.socket:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def raise_open_file_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit (each connection is one); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 16)
    if soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
    return soft


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
# Above the bodies the app builds (a 166 KB page serialized 10x slower at glibc's starting 128 KiB: each buffer
# became a fresh mapping) and above argon2's 19 MiB per hash: a fresh mapping per hash faulted in 19 MiB of pages
# every time, 11 ms of a 26 ms password check.
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest
# Free memory at the top of a heap kept for reuse, up to this: one argon2 block per hashing thread (core.passwords).
TRIM_THRESHOLD = 24 * 1024 * 1024


def fix_malloc_thresholds() -> bool:
    """Fix glibc's mmap and trim thresholds, so that what the process keeps does not follow its largest block.

    Left alone, glibc raises both to the size of the largest block freed: a process that hashed passwords on 6
    threads at once kept about 115 MiB. With them fixed, and hashing on its own few threads (core.passwords),
    each hashing thread keeps one argon2 block and reuses it: about 19 MiB a thread, and no page faults.
    False where the C library is not glibc (nothing to do there, or nothing known to help).
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    mallopt = getattr(ctypes.CDLL(name), "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)


def listen_line(host: str, sock: socket.socket) -> str:
    """The one line printed once the server listens: the URL and where the docs are."""
    port = sock.getsockname()[1]
    shown = {DUAL_STACK: "localhost", "0.0.0.0": "localhost"}.get(host) or (f"[{host}]" if ":" in host else host)  # noqa: S104
    url = f"http://{shown}:{port}"
    where = {DUAL_STACK: " on every interface, IPv6 and IPv4", "0.0.0.0": " on every IPv4 interface"}.get(host, "")  # noqa: S104
    return f"MegiLance API listening on {url}{where} (docs: {url}/api/docs)"


class Server(uvicorn.Server):
    """uvicorn's server on sockets made here, which says once where it listens (uvicorn's own line is at info)."""

    def __init__(self, config: uvicorn.Config, host: str, *, announce: Callable[[], bool] = lambda: True) -> None:
        super().__init__(config)
        self.server_state = CountingState()
        self.host = host
        self.announce = announce  # of several workers on one socket, only the first to start says where they listen

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and sockets and self.announce():
            print(listen_line(self.host, sockets[0]), file=sys.stderr, flush=True)  # stdout: JSON log lines only
