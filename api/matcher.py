"""The asynchronous matching projector: follows the read store from its own checkpoint, after commit.

Whenever the read store's position moves (a command committed on the primary, a feed batch on an
edge), one step reads the touched documents in a reader thread, encodes new texts in a worker thread
and writes the documents with its checkpoint through the writer, in a transaction of its own: a
command's commit never waits for encoding. `tracker` is how far the documents have come; a read
that carries `X-Consistency-Token` waits for it (`wait_for_token`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import structlog
from starlette.responses import Response

from api.cache import cached_page
from api.scope import POSITION_KEY
from core.db import Connection
from core.encoder import Encoder, Vectors, make_encoder, single_threaded_blas
from core.errors import NotFound, ServiceUnavailable
from core.positions import PositionTracker
from queries.matching import State, Work, encode_work, read_work, state, write_work
from queries.projection import checkpoint
from queries.ranking import IndexCache

if TYPE_CHECKING:
    from api.routing import Call
    from node.runtime import Runtime

log = structlog.get_logger("matcher")
IDLE_WAIT_S = 5.0
# Encoding a batch takes milliseconds, but the first one after a start loads the model (seconds).
MATCHING_WAIT_FLOOR_S = 10.0
QUERY_CACHE = 1024  # encoded search texts kept (a popular query is encoded once)
BACKOFF_MIN_S, BACKOFF_MAX_S = 0.1, 5.0


class Matcher:
    """Keeps `rm_matching_docs` behind the read store and answers how far it has come."""

    def __init__(self, runtime: Runtime, encoder: Encoder | None = None) -> None:
        self.runtime = runtime
        self.encoder = encoder or make_encoder(runtime.settings.matching_encoder)
        self.tracker = PositionTracker()
        self.cache = IndexCache()
        self.state = State(0, 0, 0, self.encoder.name)
        self.encoded = 0  # texts encoded since start (metrics, tests)
        self.last_error: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._queries: OrderedDict[str, Vectors] = OrderedDict()
        # Documents are encoded on one thread of lower CPU priority: a burst of new profiles and projects must
        # not take the cores from requests and replication (a search's query text is encoded at normal priority).
        self._encoding = ThreadPoolExecutor(1, thread_name_prefix="encode", initializer=lower_priority)

    async def start(self) -> None:
        single_threaded_blas()
        loop = asyncio.get_running_loop()
        self.tracker.bind(loop)
        name = self.encoder.name

        def load(conn: object) -> tuple[State, int]:
            return state(conn, name), checkpoint(conn)  # type: ignore[arg-type]

        current, head = await self.runtime.read(load)
        if current.position > head:  # the read store was reset under us: re-derive (vectors stay cached)
            current = replace(current, position=0)
        self.state = current
        self.tracker.advance(current.position)
        self._task = loop.create_task(self._run(), name="matcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._encoding.shutdown(wait=False)

    async def _run(self) -> None:
        # Load the model before the first change needs it (seconds), off the event loop.
        await asyncio.get_running_loop().run_in_executor(self._encoding, self.encoder.encode, ["warm up"])
        backoff = BACKOFF_MIN_S
        while True:
            if self.runtime.tracker.position > self.state.position:
                try:
                    await self.step()
                    backoff = BACKOFF_MIN_S
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - logged and retried; reads wait or answer 503
                    self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                    log.warning("matching_step_failed", error=self.last_error, retry_in_s=backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(BACKOFF_MAX_S, backoff * 2)
            else:
                await self.runtime.tracker.wait_for(self.state.position + 1, IDLE_WAIT_S)

    async def step(self) -> None:
        """One batch: read in a reader, encode in a worker thread, write with the checkpoint in the writer."""
        after, name = self.state.position, self.encoder.name
        work: Work = await self.runtime.read(lambda conn: read_work(conn, after, name))
        if not work.docs:  # nothing of ours moved: only the position (persisted with the next documents)
            self.state = replace(self.state, position=work.upto)
        else:
            vectors = await asyncio.get_running_loop().run_in_executor(self._encoding, encode_work, work, self.encoder)
            self.encoded += len(work.to_encode)
            previous = self.state
            self.state = await self.runtime.write(lambda conn: write_work(conn, work, vectors, name, previous))
        self.tracker.advance(work.upto)

    async def wait_for_token(self, token: str | None, timeout_s: float) -> int:
        """Wait until the documents reflect the position a client's token names; the position they are at."""
        target = int(token.strip()) if token and token.strip().isdigit() and len(token.strip()) < 19 else 0
        deadline = time.monotonic() + timeout_s
        if not await self.tracker.wait_for(target, max(0.0, deadline - time.monotonic())):
            raise ServiceUnavailable("Matching has not caught up with that write yet; retry shortly", "matching_behind")
        return self.tracker.position

    async def encode_query(self, text: str) -> Vectors:
        """A search text's vector (one row), from a small LRU cache or encoded in a worker thread."""
        found = self._queries.get(text)
        if found is None:
            found = (await asyncio.to_thread(self.encoder.encode, [text]))[0]
            self._queries[text] = found
            if len(self._queries) > QUERY_CACHE:
                self._queries.popitem(last=False)
        else:
            self._queries.move_to_end(text)
        return found


ENCODING_NICE = 10  # added to the process's nice value for the encoding thread (Linux: threads have their own)


def lower_priority() -> None:
    """Lower the calling thread's CPU priority where the system allows it (a no-op elsewhere)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0) + ENCODING_NICE)


async def start_matching(runtime: Runtime) -> Matcher | None:
    """The running matcher when FEATURE_FLAG_AI_MATCHING is on; None (nothing encoded) when it is off."""
    if not runtime.settings.feature_flag_ai_matching:
        return None  # the inline change log is still written: a one-row upsert per event
    if runtime.forwards_writes:  # a reader worker: worker 0 runs the matcher, and answers matching reads
        return None
    matcher = Matcher(runtime)
    await matcher.start()
    return matcher


async def stop_matching(matcher: Matcher | None) -> None:
    if matcher is not None:
        await matcher.stop()


def matcher_of(call: Call) -> Matcher:
    """The running matcher; 404 feature_disabled when the flag is off."""
    matcher = call.runtime.matcher
    if not isinstance(matcher, Matcher) or not call.runtime.settings.feature_flag_ai_matching:
        raise NotFound("AI matching is turned off on this server", "feature_disabled")
    return matcher


async def matched_page(
    call: Call, key: tuple[Any, ...], page: Callable[[Connection], tuple[list[Any], str | None]]
) -> Response:
    """A page read once the documents reflect the client's token, cached per documents' position too."""
    matcher = matcher_of(call)
    wait_s = max(MATCHING_WAIT_FLOOR_S, call.runtime.settings.read_your_writes_timeout_ms / 1000)
    at = await matcher.wait_for_token(call.request.headers.get("x-consistency-token"), wait_s)
    response = await cached_page(call, (*key, at), page)
    scope = call.request.scope
    scope[POSITION_KEY] = min(scope[POSITION_KEY], max(at, matcher.tracker.position))  # served at the older one
    return response
