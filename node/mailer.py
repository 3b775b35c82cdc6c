"""The mailer: follows the log from its own checkpoint, queues messages in the outbox, sends them after commit.

Primary only. Queuing reads events past `mail_checkpoint`, turns each into messages (the read store names
the recipients) and writes them with the new checkpoint in one writer transaction: an event is queued once.
Sending takes due rows, renders them and hands them to the transport; a row is marked sent only after the
transport took it, so a crash in between sends it again, under the same Message-ID (at least once).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import structlog

from core import outbox, store
from core.db import Connection
from core.events.base import StoredEvent
from core.mail import FileTransport, Renderer, SmtpTarget, SmtpTransport, Transport, build_message, mail_domain
from core.money import format_minor
from core.outbox import Queued
from queries.mail import Recipient, get_payment_parties, get_project_title, get_proposal_author, get_recipient

if TYPE_CHECKING:
    from node.metrics import Metrics
    from node.runtime import Runtime

log = structlog.get_logger("mailer")
BATCH = 200  # events per queuing transaction
SEND_BATCH = 20  # due messages read at once
IDLE_WAIT_S = 1.0  # longest sleep without a commit or a due retry
# Shortest time between passes: under a stream of commits the mailer wakes at most 20 times a second, and each
# pass queues the events of many commits in one transaction instead of costing the writer a job per commit.
PASS_INTERVAL_S = 0.05


def make_transport(runtime: Runtime) -> Transport:
    s = runtime.settings
    if s.smtp_url:
        return SmtpTransport(SmtpTarget.parse(s.smtp_url), s.smtp_timeout_s, s.smtp_ca_file)
    return FileTransport(s.data_dir / "outbox")


def backoff(attempts: int, least_s: float, most_s: float) -> float:
    """Seconds before the next try after `attempts` failures: doubling from `least_s`, at most `most_s`."""
    return float(min(most_s, least_s * 2 ** min(attempts - 1, 30)))


class Composer:
    """Which messages an event makes: recipients from the read store, switches honoured, no secret copied."""

    def __init__(self, domain: str, base_url: str, ttl_minutes: int) -> None:
        self.domain = domain
        self.base_url = base_url
        self.ttl_minutes = ttl_minutes
        self.rules: dict[str, Callable[[Connection, StoredEvent], list[Queued]]] = {
            "PasswordResetRequested": self.password_reset,
            "ProposalSubmitted": self.proposal_received,
            "ProposalAccepted": self.proposal_decided,
            "ProposalRejected": self.proposal_decided,
            "ContractCreated": self.contract_created,
            "PaymentCompleted": self.payment_confirmed,
        }

    def compose(self, conn: Connection, event: StoredEvent) -> list[Queued]:
        rule = self.rules.get(event.type)
        return rule(conn, event) if rule is not None else []

    def message(self, event: StoredEvent, n: int, kind: str, to: Recipient, context: dict[str, Any]) -> Queued:
        """Its Message-ID is the event's position and the recipient's place: the same on every attempt."""
        message_id = f"<{kind}.{event.position}.{n}@{self.domain}>"
        full = {"name": to.name, "base_url": self.base_url, **context}
        return Queued(message_id, event.position, kind, to.email, full)

    def to_each(
        self, conn: Connection, event: StoredEvent, kind: str, user_ids: list[str], context: dict[str, Any]
    ) -> list[Queued]:
        """A notification to each account that is active and has not switched `kind` off."""
        out = []
        for n, user_id in enumerate(user_ids):
            to = get_recipient(conn, user_id)
            if to is not None and to.is_active and to.notifications.get(kind, True):
                out.append(self.message(event, n, kind, to, context))
        return out

    def password_reset(self, conn: Connection, event: StoredEvent) -> list[Queued]:
        to = get_recipient(conn, event.data["user_id"])
        if to is None:
            return []
        context = {"reset_id": event.data["reset_id"], "ttl_minutes": self.ttl_minutes}
        return [self.message(event, 0, "password_reset", to, context)]

    def proposal_received(self, conn: Connection, event: StoredEvent) -> list[Queued]:
        d = event.data
        freelancer = get_recipient(conn, d["freelancer_id"])
        context = {
            "project_id": d["project_id"],
            "project_title": get_project_title(conn, d["project_id"]),
            "freelancer_name": freelancer.name if freelancer else "A freelancer",
        }
        return self.to_each(conn, event, "proposal_received", [d["client_id"]], context)

    def proposal_decided(self, conn: Connection, event: StoredEvent) -> list[Queued]:
        d = event.data
        author = get_proposal_author(conn, d["proposal_id"])
        if author is None:
            return []
        decision = "accepted" if event.type == "ProposalAccepted" else "rejected"
        context = {
            "project_id": d["project_id"],
            "project_title": get_project_title(conn, d["project_id"]),
            "decision": decision,
        }
        return self.to_each(conn, event, "proposal_decided", [author[0]], context)

    def contract_created(self, conn: Connection, event: StoredEvent) -> list[Queued]:
        d = event.data
        context = {
            "contract_id": d["contract_id"],
            "project_title": get_project_title(conn, d["project_id"]),
            "amount": format_minor(d["amount_minor"], d["currency"]),
            "currency": d["currency"],
        }
        return self.to_each(conn, event, "contract_created", [d["client_id"], d["freelancer_id"]], context)

    def payment_confirmed(self, conn: Connection, event: StoredEvent) -> list[Queued]:
        parties = get_payment_parties(conn, event.data["payment_id"])
        if parties is None:
            return []
        payer, payee = get_recipient(conn, parties.payer_id), get_recipient(conn, parties.payee_id)
        context = {
            "payment_id": event.data["payment_id"],
            "amount": format_minor(parties.amount_minor, parties.currency),
            "currency": parties.currency,
            "payer_name": payer.name if payer else "",
            "payee_name": payee.name if payee else "",
        }
        return self.to_each(conn, event, "payment_confirmed", [parties.payer_id, parties.payee_id], context)


class Mailer:
    """The outbox follower and sender, one task on the primary's event loop."""

    def __init__(self, runtime: Runtime, metrics: Metrics, transport: Transport | None = None) -> None:
        s = runtime.settings
        self.runtime = runtime
        self.metrics = metrics
        self.transport = transport or make_transport(runtime)
        self.sender = s.mail_from
        self.composer = Composer(mail_domain(s.mail_from), s.mail_base_url, s.password_reset_ttl_minutes)
        self.renderer = Renderer()
        self.position = 0  # the mailer's checkpoint, as last read
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        """Follow the log from the checkpoint; the gauges show the backlog from the start, not after a pass."""
        self.position = await self.runtime.read(outbox.checkpoint)
        await self.refresh_gauges()
        self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        # Python 3.11's asyncio.wait_for can swallow a cancellation that races its inner future (fixed in
        # 3.12): the flag ends the loop within one pass even then.
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run(self) -> None:
        while not self._stopping:
            try:
                await self.queue_new()
                await self.send_due()
                await self.refresh_gauges()
                await self.idle()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the loop must outlive a bad pass; it retries next time
                log.error("mailer_pass_failed", error=type(exc).__name__, message=str(exc)[:200])
                await asyncio.sleep(IDLE_WAIT_S)

    async def queue_new(self) -> None:
        """Queue the messages of every event committed past the checkpoint, a batch per transaction."""
        composer, clock = self.composer, self.runtime.clock

        def job(conn: Connection) -> tuple[int, int]:
            after = outbox.checkpoint(conn)
            events = store.read_after(conn, after, BATCH)
            if not events:
                return after, 0
            messages = [m for event in events for m in composer.compose(conn, event)]
            outbox.queue(conn, messages, events[-1].position, clock.now())
            return events[-1].position, len(events)

        while True:
            self.position, count = await self.runtime.write(job)
            if count < BATCH:
                return

    async def send_due(self) -> None:
        clock = self.runtime.clock
        while batch := await self.runtime.read(lambda conn: outbox.due(conn, clock.now(), SEND_BATCH)):
            for message in batch:
                await self.send_one(message)
            if len(batch) < SEND_BATCH:
                return

    async def send_one(self, message: Queued) -> None:
        runtime, clock = self.runtime, self.runtime.clock
        context = dict(message.context)
        if message.kind == "password_reset":
            token = await runtime.read(lambda conn: outbox.reset_token(conn, context["reset_id"]))
            if token is None:  # already spent (or sent by an attempt whose mark was lost): nothing to send
                await runtime.write(lambda conn: outbox.mark_sent(conn, message, clock.now()))
                return
            context["link"] = f"{context['base_url']}/reset-password?token={token}"
        try:
            where = await self.transport.send(self.build(message, context))
        except Exception as exc:  # noqa: BLE001 - any failure (transport or rendering) is retried later, alone
            await self.failed(message, exc)
            return
        await runtime.write(lambda conn: outbox.mark_sent(conn, message, clock.now()))
        self.metrics.mail_sent.inc()
        log.info("mail_sent", message_id=message.message_id, kind=message.kind, to=where)

    def build(self, message: Queued, context: dict[str, Any]) -> EmailMessage:
        subject, text, html = self.renderer.render(message.kind, context)
        return build_message(
            message_id=message.message_id,
            sender=self.sender,
            recipient=message.recipient,
            subject=subject,
            text=text,
            html=html,
            date=self.runtime.clock.now().timestamp(),
        )

    async def failed(self, message: Queued, exc: Exception) -> None:
        s, clock = self.runtime.settings, self.runtime.clock
        attempts = message.attempts + 1
        delay = backoff(attempts, s.mail_retry_min_s, s.mail_retry_max_s)
        retry_at = clock.now() + timedelta(seconds=delay)
        error = f"{type(exc).__name__}: {exc}"[:300]
        await self.runtime.write(lambda conn: outbox.mark_failed(conn, message, retry_at, error))
        self.metrics.mail_failures.inc()
        log.warning("mail_send_failed", message_id=message.message_id, attempts=attempts, retry_in_s=delay, error=error)

    async def refresh_gauges(self) -> None:
        count, oldest = await self.runtime.read(outbox.pending)
        self.metrics.mail_pending.set(count)
        self.metrics.mail_lag_events.set(max(0, self.runtime.tracker.position - self.position))
        self.metrics.mail_oldest_pending_seconds.set(age_s(oldest, self.runtime.clock.now()) if oldest else 0)

    async def idle(self) -> None:
        """Until a commit moves the log past the checkpoint, or the next retry is due (at most IDLE_WAIT_S)."""
        await asyncio.sleep(PASS_INTERVAL_S)
        upcoming = await self.runtime.read(outbox.next_due)
        wait = IDLE_WAIT_S
        if upcoming is not None:
            wait = min(wait, max(0.0, -age_s(upcoming, self.runtime.clock.now())))
        if wait > 0:
            await self.runtime.tracker.wait_for(self.position + 1, wait)


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def age_s(since: str, now: datetime) -> float:
    return (now - parse(since)).total_seconds()
