"""Time, behind a seam tests can move."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


class Clock:
    """The real wall clock (UTC)."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def seconds(self) -> int:
        """Whole seconds since the epoch: `now()` for a comparison with a token's times, without a datetime."""
        return int(time.time())


@dataclass
class FakeClock(Clock):
    """A clock that stays where tests put it."""

    current: datetime = field(default_factory=lambda: datetime(2026, 11, 23, 10, 0, tzinfo=UTC))

    def now(self) -> datetime:
        return self.current

    def seconds(self) -> int:
        return int(self.current.timestamp())

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


def rfc3339(moment: datetime) -> str:
    """`2026-11-23T10:00:00Z` (seconds precision, UTC) as docs/api.md wants."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def rfc3339_ms(moment: datetime) -> str:
    """Millisecond precision for the log, so events order and compare exactly (`2026-11-23T10:00:00.000Z`).

    `isoformat` rather than `strftime`: a third cheaper, and the writer formats two per command."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
