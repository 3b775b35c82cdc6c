"""A streaming multipart/form-data reader (python-multipart) that feeds the `file` part to an intake."""

from __future__ import annotations

from typing import TYPE_CHECKING

from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header

from api.routing import Call
from core.errors import (
    BadRequest,
    UnsupportedMediaType,
    ValidationFailed,
)

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks
from api.uploads.intake import CHUNK_SIZE, Intake, Received, declared_length, limit_bytes, too_large
from api.uploads.pipe import Piece

MULTIPART_SLACK = 64 * 1024  # boundaries, part headers and small fields around the file


class FilePart:
    """python-multipart callbacks: keep the `file` part's bytes (views of at most CHUNK_SIZE), drop the rest."""

    def __init__(self) -> None:
        self.pieces: list[Piece] = []
        self.filename = ""
        self.found = False
        self.repeated = False
        self.ended = False
        self._in_file = False
        self._field = bytearray()
        self._value = bytearray()
        self._headers: dict[bytes, bytes] = {}

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def take(self) -> list[Piece]:
        pieces, self.pieces = self.pieces, []
        return pieces

    def _part_begin(self) -> None:
        self._headers = {}
        self._in_file = False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[bytes(self._field).strip().lower()] = bytes(self._value).strip()
        self._field.clear()
        self._value.clear()

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b"").decode("latin-1"))
        if params.get(b"name") != b"file":
            return
        if self.found:
            self.repeated = True
            return
        self.found = self._in_file = True
        self.filename = params.get(b"filename", b"").decode("utf-8", "replace")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        # Views, not copies: the storage thread copies each piece when it takes it. They stay valid: `data` is
        # the request's immutable bytes (or python-multipart's own immutable boundary bytes).
        if self._in_file:
            view = memoryview(data)
            for at in range(start, end, CHUNK_SIZE):
                self.pieces.append(view[at : min(at + CHUNK_SIZE, end)])

    def _part_end(self) -> None:
        self._in_file = False

    def _end(self) -> None:
        self.ended = True


def multipart_boundary(call: Call) -> bytes:
    kind, params = parse_options_header(call.request.headers.get("content-type", ""))
    if kind != b"multipart/form-data":
        raise UnsupportedMediaType("Send the file as multipart/form-data in a field named `file`")
    boundary = params.get(b"boundary", b"")
    if not boundary:
        raise BadRequest("The multipart/form-data Content-Type has no boundary")
    return boundary


async def receive_multipart(call: Call, intake: Intake) -> tuple[Received, str]:
    """Feed the request body through the parser into `intake`; returns what was stored and the file name."""
    runtime = call.runtime
    boundary = multipart_boundary(call)
    body_limit = limit_bytes(runtime) + MULTIPART_SLACK
    if (declared_length(call) or 0) > body_limit:
        raise too_large(runtime)
    form = FilePart()
    try:
        parser = MultipartParser(boundary, form.callbacks())
    except MultipartParseError as exc:
        raise BadRequest("The multipart boundary is invalid") from exc
    received = 0
    async for data in call.request.stream():
        received += len(data)
        if received > body_limit:
            raise too_large(runtime)
        try:
            parser.write(data)
        except MultipartParseError as exc:
            raise BadRequest("The multipart/form-data body is malformed") from exc
        if form.repeated:
            raise ValidationFailed(
                "Send exactly one file per request", errors=[{"loc": ["body", "file"], "msg": "sent more than once"}]
            )
        for piece in form.take():
            await intake.feed(piece)
    if not form.ended:
        raise BadRequest("The multipart/form-data body ended before its closing boundary")
    if not form.found:
        raise ValidationFailed(
            "The form has no `file` field", errors=[{"loc": ["body", "file"], "msg": "Field required"}]
        )
    return await intake.finish(), form.filename
