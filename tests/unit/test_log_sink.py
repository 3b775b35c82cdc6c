"""The log sink: access lines leave in batches, in order, within its delay; other lines at once; none is lost."""

from __future__ import annotations

import io
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.logging import ACCESS_LINE_BYTES, PIPE_BUF, SINK_MAX_BYTES, AccessRenderer, LineSink, _write_lines


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


@given(
    method=st.sampled_from(["GET", "POST", "PATCH", "DELETE"]),
    route=st.text(max_size=40),
    region=st.text(max_size=20),
    status=st.integers(100, 599),
    elapsed=st.floats(0, 100, allow_nan=False),
    worker=st.none() | st.integers(0, 7),
    at=st.floats(0, 4_102_444_800, allow_nan=False),
)
def test_an_access_line_is_the_json_of_its_fields_in_order(
    method: str, route: str, region: str, status: int, elapsed: float, worker: int | None, at: float
) -> None:
    line = AccessRenderer().render((b"req-1.a:b", method, route, status, elapsed, region, worker, at))
    assert line.endswith(b"}\n") and line.count(b"\n") == 1
    fields = orjson.loads(line)
    expected = {"request_id": "req-1.a:b", "method": method, "route": route, "status": status}
    expected |= {"duration_ms": round(elapsed * 1000, 2), "region": region}
    expected |= {} if worker is None else {"worker": worker}
    expected |= {"event": "request", "level": "info"}
    assert list(fields) == [*expected, "timestamp"]
    assert {k: v for k, v in fields.items() if k != "timestamp"} == expected
    stamp = datetime.strptime(fields["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs(stamp.timestamp() - at) < 1e-5


def test_access_lines_queued_with_other_lines_keep_their_order() -> None:
    stream = io.StringIO()
    sink = LineSink(stream, delay_s=60)
    sink.write((b"r1", "GET", "/a", 200, 0.001, "iad", None, 0.0))
    sink.write(b'{"event":"other"}\n')
    sink.write((b"r2", "GET", "/b", 404, 0.002, "iad", 1, 1.0))
    sink.flush()
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [line.get("request_id", line["event"]) for line in lines] == ["r1", "other", "r2"]
    assert lines[2]["worker"] == 1


def test_a_batch_to_a_regular_file_is_one_write_and_to_a_pipe_pieces_of_pipe_buf(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    writes: list[int] = []
    real_write = os.write

    def recording(fd: int, data: bytes) -> int:
        writes.append(len(data))
        return real_write(fd, data)

    monkeypatch.setattr("core.logging.os.write", recording)
    lines = [b'{"n":%d,"pad":"%s"}\n' % (n, b"y" * 100) for n in range(200)]  # about 24 KiB
    with open(tmp_path / "log", "w") as file:
        sink = LineSink(file, delay_s=60)
        for line in lines:
            sink.write(line)
        sink.flush()
    assert writes == [sum(map(len, lines))]
    assert (tmp_path / "log").read_bytes() == b"".join(lines)

    writes.clear()
    read, write = os.pipe()
    with os.fdopen(write, "w") as pipe:
        sink = LineSink(pipe, delay_s=60)
        for line in lines:
            sink.write(line)
        sink.flush()
    with os.fdopen(read, "rb") as received:
        assert received.read() == b"".join(lines)
    assert len(writes) > 1 and max(writes) <= PIPE_BUF


def test_access_lines_from_many_threads_are_all_written_each_thread_in_order(tmp_path: Path) -> None:
    with open(tmp_path / "log", "w") as file:
        sink = LineSink(file, delay_s=0.001)  # the flusher runs all the time, beside the writers
        threads = [
            threading.Thread(
                target=lambda t=t: [
                    sink.access((b"t%d-%d" % (t, n), "GET", "/", 200, 0.0, "iad", None, 0.0)) for n in range(5000)
                ]
            )
            for t in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        sink.flush()
    ids = [orjson.loads(line)["request_id"] for line in (tmp_path / "log").read_bytes().splitlines()]
    assert len(ids) == 20_000
    for t in range(4):
        assert [i for i in ids if i.startswith(f"t{t}-")] == [f"t{t}-{n}" for n in range(5000)]


def test_enough_waiting_access_lines_are_written_at_once() -> None:
    stream = io.StringIO()
    sink = LineSink(stream, delay_s=60)
    entries = -(-SINK_MAX_BYTES // ACCESS_LINE_BYTES)  # the first count that reaches the bound
    for n in range(entries - 1):
        sink.access((b"r%d" % n, "GET", "/", 200, 0.0, "iad", None, 0.0))
    assert stream.getvalue() == ""  # below the bound: they wait for the delay
    sink.access((b"last", "GET", "/", 200, 0.0, "iad", None, 0.0))
    assert stream.getvalue().count("\n") == entries
