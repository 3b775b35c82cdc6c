"""The edge's replicator: long-polls the primary's feed and applies batches with the same projectors.

Each batch is applied in one transaction together with the checkpoint, so a crash leaves the
store at a batch boundary and the loop resumes from its checkpoint. Connection failures back off
exponentially (with jitter) and never stop the loop: an edge survives the primary restarting.

A primary restored from its backup names a new epoch of its log and the head it came back at. An
edge whose store is past that head applied events the log no longer has: it says so and rebuilds
from position 0. An edge at or below it resumes from its checkpoint. The epoch it has checked is
kept beside the read store, so a restart does not check (or rebuild) again.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import structlog

from core import keyring
from core.store import feed_event

if TYPE_CHECKING:
    from node.metrics import Metrics
    from node.runtime import Runtime

log = structlog.get_logger("replicator")
BATCH = 1000
WAIT_MS = 5_000  # long-poll length: also bounds how long the primary's graceful shutdown waits for edges
BACKOFF_MIN_S, BACKOFF_MAX_S = 0.05, 5.0


class Replicator:
    def __init__(
        self, runtime: Runtime, metrics: Metrics | None = None, on_rebuild: Callable[[], None] | None = None
    ) -> None:
        self.runtime = runtime
        self.metrics = metrics
        self.on_rebuild = on_rebuild  # the response cache forgets answers keyed by positions that now mean else
        self.head = 0
        self.connected = False
        self.ever_connected = False
        self.caught_up_at = time.monotonic()
        self.last_error: str | None = None
        self.key_ring_error: str | None = None  # why the primary's tokens would be refused here, if they would
        self._task: asyncio.Task[None] | None = None
        self._epoch_file = Path(runtime.settings.resolved_read_path() + ".epoch")
        self.epoch = self._epoch_file.read_text().strip() if self._epoch_file.exists() else ""
        self.rebuilds = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="replicator")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def lag_events(self) -> int:
        return max(0, self.head - self.runtime.tracker.position)

    @property
    def lag_seconds(self) -> float:
        """Seconds since the store was last known to hold everything the primary had (grows while cut off)."""
        if self.connected and self.lag_events == 0:
            return 0.0
        return time.monotonic() - self.caught_up_at

    async def _run(self) -> None:
        settings = self.runtime.settings
        timeout = httpx.Timeout(connect=2.0, read=WAIT_MS / 1000 + 10, write=5.0, pool=2.0)
        headers = {"Authorization": f"Bearer {settings.replication_token}"}
        backoff = BACKOFF_MIN_S
        async with httpx.AsyncClient(base_url=settings.primary_url, headers=headers, timeout=timeout) as client:
            while True:
                try:
                    await self._poll(client)
                    backoff = BACKOFF_MIN_S
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - any failure: log, back off, try again
                    self.connected = False
                    self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                    log.warning("replication_error", error=self.last_error, retry_in_s=round(backoff, 2))
                    await asyncio.sleep(backoff * (0.5 + random.random()))  # noqa: S311 - jitter only
                    backoff = min(BACKOFF_MAX_S, backoff * 2)

    async def _poll(self, client: httpx.AsyncClient) -> None:
        position = self.runtime.tracker.position
        # Long-poll only when caught up and known to be connected: the first answer comes back at once.
        wait = WAIT_MS if self.connected and position >= self.head else 0
        response = await client.get("/internal/events", params={"after": position, "limit": BATCH, "wait_ms": wait})
        if response.status_code != 200:
            raise RuntimeError(f"feed answered {response.status_code}: {response.text[:200]}")
        body: dict[str, Any] = orjson.loads(response.content)
        self._compare_keys(response.headers.get(keyring.HEADER, ""))
        self.connected = self.ever_connected = True
        epoch, head = str(body.get("epoch", "")), int(body["head"])
        # A log shorter than this store lost events it applied (restored by hand, or without the epoch mark).
        if epoch != self.epoch or head < self.runtime.tracker.position:
            await self._new_epoch(epoch, int(body.get("restored_head", head)), head)
            return
        self.head = max(self.head, int(body["head"]))
        events = [feed_event(item) for item in body["events"]]
        if events:
            await self.runtime.apply_feed(events)
            if self.metrics is not None:
                self.metrics.feed_batch.observe(len(events))
        if self.runtime.tracker.position >= self.head:
            self.caught_up_at = time.monotonic()

    async def _new_epoch(self, epoch: str, restored_head: int, head: int) -> None:
        """The primary's log came back from a backup: keep this store if it holds nothing the log lost."""
        position = self.runtime.tracker.position
        if position > restored_head:
            log.warning(
                "primary_restored_behind_this_edge_rebuilding",
                edge_position=position,
                restored_head=restored_head,
                lost_events=position - restored_head,
            )
            await self.runtime.rebuild_read_store()
            if self.on_rebuild is not None:
                self.on_rebuild()
            self.rebuilds += 1
        else:
            log.warning("primary_restored_edge_resumes", edge_position=position, restored_head=restored_head)
        self.head = head
        self._epoch_file.write_text(epoch)
        self.epoch = epoch

    def _compare_keys(self, primary: str) -> None:
        """Readiness reports a key-ring mismatch; the log says it once when it starts (and once when it ends)."""
        error = keyring.mismatch(primary, self.runtime.key_ring)
        if error != self.key_ring_error:
            if error is not None:
                log.error(
                    "key_ring_mismatch",
                    error=error,
                    fix="give every node the same JWT_KEYS (or, without it, the same SECRET_KEY)",
                    effect="this edge refuses every token the primary issues, so it reports not ready",
                )
            else:
                log.warning("key_ring_matches", detail="the primary's signing keys match this node's again")
        self.key_ring_error = error
