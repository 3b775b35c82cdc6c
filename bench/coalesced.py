"""`python -m bench.coalesced serve ...`: `megilance serve` whose protocol sends a sized response's head with its first
body chunk (one `send()`), an experiment `bench.workarounds` measures against the server as shipped.

uvicorn writes a response's head and body separately, one system call each. Here each request's cycle is
switched (`__class__`) to `CoalescingCycle` once uvicorn has made it, which reaches into uvicorn's internals;
the server keeps every protection of `httpserver.bounded`. Measured, it did not save server CPU
(docs/performance.md, "Framework workarounds"), so the shipped server does without it.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

import ops.cli
from httpserver.bounded import BoundedHttpToolsProtocol


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


class CoalescingProtocol(BoundedHttpToolsProtocol):
    """The shipped protocol, whose request cycles run as CoalescingCycle."""

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        # uvicorn made this request's cycle and scheduled its task, which has not run yet: it runs as a
        # CoalescingCycle. (An upgrade request makes no cycle; an earlier one is left as it was.)
        if type(self.cycle) is RequestResponseCycle:
            self.cycle.__class__ = CoalescingCycle


if __name__ == "__main__":
    ops.cli.BoundedHttpToolsProtocol = CoalescingProtocol  # type: ignore[misc]  # what uvicorn_options hands uvicorn
    ops.cli.main()
