"""The server sends a response whose head declares its length in one write with its body, and never holds back,
reorders or loses a byte: a streamed head goes out at once, a HEAD answer's head at the end of the response, and a
head still held when the connection closes before it."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn

from httpserver.bounded import BoundedHttpToolsProtocol, CoalescingTransport


class Wire:
    """The socket end of a connection: records each write (one `send()` each) and answers what uvicorn asks."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def writelines(self, chunks: Any) -> None:  # one system call (writev) for several buffers
        self.writes.append(b"".join(chunks))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def sized(body: bytes, *, fail_after_start: bool = False) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if fail_after_start:
            raise RuntimeError("the app broke after starting its answer")
        await send({"type": "http.response.body", "body": body})

    return app


def exchange(app: Any, request: bytes, *, until_first_write: bool = False) -> tuple[Wire, list[bytes]]:
    """Feed one request to the server's protocol on a Wire; the writes when the app has finished (or, with
    `until_first_write`, the writes seen while the app is still waiting for its first body chunk)."""
    wire = Wire()
    seen: list[bytes] = []

    async def run() -> None:
        config = uvicorn.Config(app, log_level="critical", access_log=False, lifespan="off")
        config.load()
        protocol = BoundedHttpToolsProtocol(config=config, server_state=uvicorn.server.ServerState(), app_state={})
        protocol.connection_made(wire)  # type: ignore[arg-type]
        protocol.data_received(request)
        for _ in range(50):  # let the app's task run to its end
            await asyncio.sleep(0)
            if until_first_write and wire.writes and not seen:
                seen.extend(wire.writes)
        protocol.connection_lost(None)

    asyncio.run(run())
    return wire, seen


GET = b"GET / HTTP/1.1\r\nhost: test\r\n\r\n"


def test_a_sized_response_leaves_in_one_write() -> None:
    wire, _ = exchange(sized(b'{"ok":true}'), GET)
    assert len(wire.writes) == 1
    head, _, rest = wire.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"content-length: 11" in head
    assert rest == b'{"ok":true}'


def test_an_answer_to_head_sends_its_head_when_the_response_ends() -> None:
    wire, _ = exchange(sized(b'{"ok":true}'), b"HEAD / HTTP/1.1\r\nhost: test\r\n\r\n")
    assert len(wire.writes) == 1
    assert wire.writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and wire.writes[0].endswith(b"\r\n\r\n")


def test_a_large_sized_body_leaves_with_its_head_in_one_call() -> None:
    body = b"[" + b"1," * 100_000 + b"1]"
    wire, _ = exchange(sized(body), GET)
    assert len(wire.writes) == 1
    assert wire.writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and wire.writes[0].endswith(b"\r\n\r\n" + body)


def test_a_streamed_head_goes_out_before_its_first_chunk() -> None:
    chunk = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await chunk.wait()  # never set: the client must have the head meanwhile

    _, seen = exchange(app, GET, until_first_write=True)
    assert len(seen) == 1 and seen[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert seen[0].endswith(b"transfer-encoding: chunked\r\n\r\n")


def test_a_body_in_chunks_keeps_its_order() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"6")]})
        for part in (b"abc", b"def"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    wire, _ = exchange(app, GET)
    assert b"".join(wire.writes).partition(b"\r\n\r\n")[2] == b"abcdef"
    assert wire.writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and wire.writes[0].endswith(b"abc")


def test_a_head_held_when_the_app_breaks_is_sent_before_the_connection_closes() -> None:
    wire, _ = exchange(sized(b"{}", fail_after_start=True), GET)
    assert wire.closed
    assert len(wire.writes) == 1 and wire.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")


def test_two_requests_on_one_connection_get_two_whole_answers() -> None:
    wire, _ = exchange(sized(b"[1]"), GET + GET)
    assert len(wire.writes) == 2
    assert all(write.startswith(b"HTTP/1.1 200 OK\r\n") and write.endswith(b"\r\n\r\n[1]") for write in wire.writes)


def test_the_transport_passes_through_what_it_does_not_hold() -> None:
    wire = Wire()
    transport = CoalescingTransport(wire)  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # an interim answer: no length, not held
    assert wire.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    transport.writelines([b"o", b"k"])
    assert wire.writes[1] == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    assert transport.get_extra_info("peername") == ("127.0.0.1", 50000) and not transport.is_closing()
