"""The log sink: access lines leave in batches, in order, within its delay; other lines at once; none is lost."""

from __future__ import annotations

import io
import os
import threading
import time

import orjson
import pytest

from core.logging import PIPE_BUF, SINK_MAX_BYTES, LineSink, _write_lines


def until(condition: object, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        threading.Event().wait(0.01)
    return bool(condition())  # type: ignore[operator]


def test_batched_lines_wait_for_the_delay_and_an_urgent_line_takes_them_along_in_order() -> None:
    stream = io.StringIO()
    sink = LineSink(stream, delay_s=60)
    sink.write(b"a\n")
    sink.write(b"b\n")
    assert stream.getvalue() == ""  # waiting
    sink.write(b"warning\n", now=True)
    assert stream.getvalue() == "a\nb\nwarning\n"


def test_a_waiting_line_is_written_within_the_delay() -> None:
    stream = io.StringIO()
    sink = LineSink(stream, delay_s=0.05)
    sink.write(b"late\n")
    assert until(lambda: stream.getvalue() == "late\n")


def test_enough_waiting_bytes_are_written_at_once() -> None:
    stream = io.StringIO()
    sink = LineSink(stream, delay_s=60)
    line = b"x" * 1023 + b"\n"
    for _ in range(SINK_MAX_BYTES // len(line)):
        sink.write(line)
    assert len(stream.getvalue()) == SINK_MAX_BYTES


def test_each_write_is_whole_lines_of_at_most_pipe_buf_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pipe never interleaves writes of at most PIPE_BUF bytes from several workers: lines stay whole."""
    read, write = os.pipe()
    writes: list[bytes] = []
    real_write = os.write

    def recording(fd: int, data: bytes) -> int:
        writes.append(bytes(data))
        return real_write(fd, data)

    monkeypatch.setattr("core.logging.os.write", recording)
    lines = [orjson.dumps({"n": n, "pad": "y" * (n % 300)}) + b"\n" for n in range(200)]
    long_line = b"z" * (PIPE_BUF * 2) + b"\n"
    data = b"".join(lines) + long_line + b"end\n"
    writer = threading.Thread(target=_write_lines, args=(write, data))
    writer.start()
    received = b""
    while len(received) < len(data):
        received += os.read(read, 1 << 20)
    writer.join()
    os.close(read)
    os.close(write)
    assert received == data
    assert len(writes) > 1
    for piece in writes:
        assert piece.endswith(b"\n")
        assert len(piece) <= PIPE_BUF or piece == long_line  # only a line longer than PIPE_BUF goes alone
