"""The HTTP server's own limits: uvicorn's httptools protocol with a bound on the request head.

uvicorn's `h11_max_incomplete_event_size` applies only to h11; with httptools a header block
that never ends would be buffered without limit. This protocol counts the bytes of a request
head as they arrive and answers 431 (then closes) once they pass MAX_HEAD_BYTES — before the
app, or even the header parser's callbacks, see anything.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024  # request line + headers; the app refuses more than 16 KiB of headers itself
_BODY = b'{"detail":"The request head is too large","error_type":"headers_too_large"}'
REFUSAL = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_BODY), _BODY)
)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that refuses a request head larger than MAX_HEAD_BYTES."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._in_body = False

    def data_received(self, data: bytes) -> None:
        in_head = not self._in_body
        super().data_received(data)
        if in_head and not self._in_body:  # the head is still not complete after this chunk
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
                self.transport.write(REFUSAL)
                self.transport.close()

    def on_headers_complete(self) -> None:
        self._in_body, self._head_bytes = True, 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        super().on_message_complete()
