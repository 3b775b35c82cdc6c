"""The coalescing experiment (`bench.coalesced`) sends a response's head with its first body chunk (one write), and only
when that is safe: what `bench.workarounds` measures against uvicorn's own two writes is a correct response."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.flow_control import FlowControl

from bench.coalesced import CoalescingCycle


class Wire:
    """A transport that records each write (what one `send()` would put on the socket)."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def serve(messages: list[dict[str, Any]], method: str = "GET") -> Wire:
    wire = Wire()
    cycle = CoalescingCycle(
        scope={"type": "http", "method": method, "path": "/", "query_string": b"", "http_version": "1.1"},
        transport=wire,  # type: ignore[arg-type]
        flow=FlowControl(wire),  # type: ignore[arg-type]
        logger=logging.getLogger("test"),
        access_logger=logging.getLogger("test.access"),
        access_log=False,
        default_headers=[],
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=True,
        on_response=lambda: None,
    )

    async def run() -> None:
        for message in messages:
            await cycle.send(message)

    asyncio.run(run())
    return wire


def start(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {"type": "http.response.start", "status": 200, "headers": list(headers)}


def body(data: bytes, more: bool = False) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


def test_a_sized_response_leaves_in_one_write() -> None:
    wire = serve([start((b"content-length", b"2"), (b"content-type", b"application/json")), body(b"{}")])
    assert len(wire.writes) == 1
    head, _, rest = wire.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"content-length: 2" in head
    assert rest == b"{}"


def test_a_sized_body_in_several_chunks_carries_the_head_on_the_first() -> None:
    wire = serve([start((b"content-length", b"6")), body(b"abc", more=True), body(b"def", more=True), body(b"")])
    assert [w.partition(b"\r\n\r\n")[2] if i == 0 else w for i, w in enumerate(wire.writes)] == [b"abc", b"def", b""]
    assert wire.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")


def test_an_empty_sized_body_still_sends_the_head() -> None:
    wire = serve([start((b"content-length", b"0")), body(b"")])
    assert b"".join(wire.writes).endswith(b"content-length: 0\r\n\r\n")


def test_a_streamed_response_sends_its_head_at_once() -> None:
    """No Content-Length: the first chunk may be long in coming, so the head is not held for it."""
    wire = serve([start((b"content-type", b"text/plain"))])
    assert len(wire.writes) == 1 and wire.writes[0].endswith(b"transfer-encoding: chunked\r\n\r\n")


def test_a_head_request_gets_its_head() -> None:
    wire = serve([start((b"content-length", b"2")), body(b"")], method="HEAD")
    assert b"".join(wire.writes).startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"".join(wire.writes).endswith(b"\r\n\r\n")
