"""structlog JSON logs: one line per event, with request id, region, route, status and duration.

Every line goes through one `LineSink`, in order. Access lines wait in memory and leave in a few large writes:
when SINK_MAX_BYTES are waiting, SINK_DELAY_S after the first waiting one (a background thread), with any other
line (written at once, after those waiting), and at exit.
One write per line (structlog's default) cost the board about 30% of its throughput (docs/performance.md).
The access log skips structlog's processor chain: `access_line` queues its fields as they are, and they are
rendered in batches by a byte template when written (rendering each line in the request cost more than the rest of
a health check).
"""

from __future__ import annotations

import atexit
import logging
import os
import stat
import sys
import threading
import time
from collections import deque
from collections.abc import MutableMapping
from typing import IO, Any

import orjson
import structlog

REDACTED_KEYS = frozenset(
    {
        "password",
        "current_password",
        "new_password",
        "access_token",
        "refresh_token",
        "secret_key",
        "authorization",
        "token",
        "signature",
    }
)
SINK_DELAY_S = 0.05  # the longest a line waits in memory before it is written
SINK_MAX_BYTES = 64 * 1024  # waiting lines written at once, whatever the delay
# A write to a pipe of at most PIPE_BUF bytes is never interleaved with another process's (workers share stdout).
PIPE_BUF = 4096


def redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Never let a secret through, whatever a caller passes."""
    for key in list(event_dict):
        if key.lower() in REDACTED_KEYS:
            event_dict[key] = "[redacted]"
    return event_dict


def logging_enabled(configured: str, level: str) -> bool:
    """Would a line at `level` be written under the configured level? (lets hot paths skip building it)"""
    wanted = logging.getLevelName(configured.upper())
    return not isinstance(wanted, int) or logging.getLevelName(level.upper()) >= wanted


# One request's access-log fields, rendered only when the line is written: request id, method, route template,
# status, seconds taken, region, worker (or None) and epoch seconds at the end. A plain tuple: the fastest to make.
# The request id holds only `[A-Za-z0-9._:-]` (the middleware checks a client's); the strings are JSON-quoted.
Access = tuple[bytes, str, str, int, float, str, "int | None", float]
ACCESS_LINE = (
    b'{"request_id":"%b","method":%b,"route":%b,"status":%d,"duration_ms":%a,"region":%b%b,'
    b'"event":"request","level":"info","timestamp":"%b.%06dZ"}\n'
)


class AccessRenderer:
    """Access lines as JSON bytes, in a batch: the same fields and order as structlog's lines, at a fraction of
    the cost (quoted strings and the timestamp's seconds are reused from one line to the next)."""

    def __init__(self) -> None:
        self._quoted: dict[str, bytes] = {}  # methods, route templates and the region: a few dozen strings
        self._second = -1
        self._stamp = b""

    def quote(self, text: str) -> bytes:
        quoted = self._quoted.get(text)
        if quoted is None:
            quoted = orjson.dumps(text)
            if len(self._quoted) < 4096:
                self._quoted[text] = quoted
        return quoted

    def render(self, entry: Access) -> bytes:
        request_id, method, route, status, elapsed_s, region, worker, at = entry
        second = int(at)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)).encode()
        return ACCESS_LINE % (
            request_id,
            self.quote(method),
            self.quote(route),
            status,
            round(elapsed_s * 1000, 2),
            self.quote(region),
            b"" if worker is None else b',"worker":%d' % worker,
            self._stamp,
            int((at - second) * 1_000_000),
        )


ACCESS_LINE_BYTES = 220  # about what one rendered access line takes, to count waiting ones against SINK_MAX_BYTES


class LineSink:
    """Log lines in order, written in batches: at SINK_MAX_BYTES, SINK_DELAY_S after the first, or on `flush`."""

    def __init__(self, stream: IO[str] | None = None, delay_s: float = SINK_DELAY_S) -> None:
        self._stream = stream or sys.stdout
        self._fd = _fileno(self._stream)
        self._delay = delay_s
        self._lock = threading.Lock()  # one flush at a time: batches leave whole and in order
        self._starting = threading.Lock()  # one flusher thread
        # Lines wait here; appends take no lock (a deque's append and popleft are atomic).
        self._waiting: deque[bytes | Access] = deque()
        self._armed = False  # the flusher's delay is running for the lines waiting
        self._renderer = AccessRenderer()
        # Several workers may share stdout. A write to a regular file is never interleaved with another, so a
        # batch goes in one; anything else (a pipe, a socket, a terminal) gets pieces of at most PIPE_BUF.
        self._whole = self._fd is not None and _is_regular_file(self._fd)
        self._size = 0
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.closed = False

    def access(self, entry: Access) -> None:
        """Queue one access line, written within SINK_DELAY_S (the request path: as little work as can be)."""
        self._waiting.append(entry)
        self._size += ACCESS_LINE_BYTES  # unlocked: a lost update only makes a batch a little larger
        if self._size >= SINK_MAX_BYTES:
            # Written here: handing the batch to the flusher thread measured slower (board 0.62 -> 0.56 of the
            # bare app), as rendering then contends for the GIL with the request path.
            self.flush()
        elif not self._armed:
            self._arm()

    def write(self, line: bytes | Access, *, now: bool = False) -> None:
        """Queue one line (bytes ending in a newline, or access fields); written within SINK_DELAY_S, or `now` with
        those before it."""
        self._waiting.append(line)
        self._size += len(line) if type(line) is bytes else ACCESS_LINE_BYTES
        if now or self._size >= SINK_MAX_BYTES:
            self.flush()
        elif not self._armed:
            self._arm()

    def _arm(self) -> None:
        """Start the flusher's delay (not under the flush lock: a request never waits for a write in progress)."""
        self._armed = True
        self._wake.set()
        if self._thread is None:
            with self._starting:
                if self._thread is None:
                    self._start()

    def flush(self) -> None:
        """Write every line waiting now, in order, in as few writes as the stream allows."""
        with self._lock:
            waiting = self._waiting
            count = len(waiting)
            if not count:
                return
            self._size = 0
            render = self._renderer.render
            lines = [waiting.popleft() for _ in range(count)]
            data = b"".join(line if type(line) is bytes else render(line) for line in lines)  # type: ignore[arg-type]
            try:
                if self._fd is None:
                    self._stream.write(data.decode())
                    self._stream.flush()
                elif self._whole:
                    _write_all(self._fd, data)
                else:
                    _write_lines(self._fd, data)
            except (OSError, ValueError):  # stdout closed or gone: nothing left to tell
                pass

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="log-sink", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self.closed:
            self._wake.wait()
            threading.Event().wait(self._delay)  # lines arriving meanwhile leave in the same write
            self._wake.clear()
            self._armed = False  # before the flush: a line queued after it arms the next round
            self.flush()


class _SinkFile:
    """What structlog's BytesLogger writes to: the sink, without a write per line."""

    def __init__(self, sink: LineSink) -> None:
        self.sink = sink

    def write(self, data: bytes) -> None:
        # Anything but an access line is rare and may say why the process is about to die: written at once.
        self.sink.write(data, now=True)

    def flush(self) -> None:
        """BytesLogger flushes after each line: the sink decides when lines are written instead."""


def _fileno(stream: IO[str]) -> int | None:
    try:
        return stream.fileno()
    except (OSError, ValueError, AttributeError):  # io.StringIO and friends: written through the stream
        return None


def _is_regular_file(fd: int) -> bool:
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        return False  # unknown: keep to the pieces that never interleave


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_lines(fd: int, data: bytes) -> None:
    """Write `data` in pieces of at most PIPE_BUF bytes cut after a newline (or one long line whole)."""
    while data:
        cut = len(data) if len(data) <= PIPE_BUF else data.rfind(b"\n", 0, PIPE_BUF) + 1
        if cut <= 0:  # one line longer than PIPE_BUF: whole, up to its newline
            cut = data.find(b"\n") + 1 or len(data)
        piece = data[:cut]
        view = memoryview(piece)
        while view:
            view = view[os.write(fd, view) :]
        data = data[len(piece) :]


_sink: LineSink | None = None


def sink() -> LineSink:
    """The sink every log line goes through (stdout until `configure` names another stream)."""
    global _sink  # one sink per process, made on first use (no import-time side effects)
    if _sink is None:
        _sink = LineSink()
        atexit.register(flush)
    return _sink


def flush() -> None:
    """Write every waiting line now (shutdown, and before handing the terminal to someone else)."""
    if _sink is not None:
        _sink.flush()


def access_line(entry: Access) -> None:
    """One access-log line at info, with structlog's layout (fields, event, level, timestamp) but none of its chain."""
    (_sink or sink()).access(entry)


def configure(level: str = "info", stream: IO[str] | None = None) -> None:
    global _sink  # the sink follows the configured stream
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    if _sink is not None:
        _sink.flush()
    _sink = LineSink(stream) if stream is not None else None
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.BytesLoggerFactory(_SinkFile(sink())),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
