"""Read model `sessions`: which access tokens must stop working before they expire.

Two kinds, both kept in memory for the check every signed-in request makes:
- Accounts that were deactivated or changed role. Each token carries the log position its issuer
  had reached; a token issued before the account's last role change or deactivation is refused, and
  so is every token of an inactive account. Positions, not clocks: exact ordering on every node,
  whatever their clocks say.
- Sessions that ended (`SessionRevoked`: logout, a reused refresh token, a password change ending the
  other sessions). Every access token names its session (`fam`), so the session's access tokens stop
  with its refresh tokens. An ended session is remembered for `ENDED_KEPT` after it ended: a token it
  issued before has expired by then (access tokens live a day at most). `rm_ended_sessions` keeps them
  across restarts and on every edge.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from datetime import datetime, timedelta

from core.clock import rfc3339
from core.db import Connection
from core.errors import Unauthenticated
from core.events.base import StoredEvent
from core.tokens import Claims
from queries.projection import Statement, recorded_at

NAME = "sessions"
VERSION = 1
TABLES = ("rm_ended_sessions",)
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS rm_ended_sessions (
        family_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, ended_at TEXT NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS rm_ended_sessions_ended ON rm_ended_sessions (ended_at)",
)
INSERT_ENDED = "INSERT OR IGNORE INTO rm_ended_sessions (family_id, user_id, ended_at) VALUES (?, ?, ?)"
SELECT_ENDED_SINCE = "SELECT family_id, ended_at FROM rm_ended_sessions WHERE ended_at >= ? ORDER BY ended_at"
SELECT_CHANGED = "SELECT id, is_active, security_position FROM rm_users WHERE is_active = 0 OR security_position > 0"
WATCHED = frozenset({"UserRoleChanged", "UserDeactivated", "UserReactivated"})
# The longest access-token lifetime (ACCESS_TOKEN_EXPIRE_MINUTES is at most a day), and an hour for
# the difference between the clock that recorded the end and the clock that checks a token's expiry.
ENDED_KEPT = timedelta(days=1, hours=1)


def on_session_revoked(event: StoredEvent) -> list[Statement]:
    """The first end counts (a family is revoked once; a later reuse of its token revokes nothing new)."""
    d = event.data
    return [(INSERT_ENDED, (d["family_id"], d["user_id"], recorded_at(event)))]


# No summed deltas, index-only statements or reindex steps (queries/readmodel.py).
ADDITIVE: tuple[str, ...] = ()
INDEXING: tuple[str, ...] = ()
REINDEX: tuple[str, ...] = ()

PROJECTORS = {"SessionRevoked": on_session_revoked}


def _epoch(moment: str) -> float:
    return datetime.fromisoformat(moment).timestamp()


class Sessions:
    """Which tokens must be refused now; kept current from the events each store applies."""

    def __init__(self) -> None:
        self._state: dict[str, tuple[bool, int]] = {}
        self._ended: dict[str, float] = {}  # session (refresh-token family) -> when it ended, epoch seconds
        self._ended_order: deque[tuple[float, str]] = deque()  # the same, oldest first, to forget them

    def load(self, conn: Connection, now: datetime) -> None:
        """Start from the read store (at startup, before serving)."""
        self._state = {
            user_id: (bool(is_active), int(version))
            for user_id, is_active, version in conn.execute(SELECT_CHANGED).fetchall()
        }
        self._ended.clear()
        self._ended_order.clear()
        for family_id, ended_at in conn.execute(SELECT_ENDED_SINCE, (rfc3339(now - ENDED_KEPT),)).fetchall():
            self._end(family_id, _epoch(ended_at))

    def _end(self, family_id: str, at: float) -> None:
        if family_id in self._ended:
            return
        self._ended[family_id] = at
        self._ended_order.append((at, family_id))
        horizon = at - ENDED_KEPT.total_seconds()
        while self._ended_order and self._ended_order[0][0] < horizon:
            _, old = self._ended_order.popleft()
            del self._ended[old]

    def ended(self) -> int:
        """How many ended sessions are remembered (bounded by ENDED_KEPT)."""
        return len(self._ended)

    def observe(self, events: Iterable[StoredEvent]) -> None:
        for event in events:
            if event.type == "SessionRevoked":
                self._end(event.data["family_id"], _epoch(event.recorded_at))
                continue
            if event.type not in WATCHED:
                continue
            user_id = event.data["user_id"]
            active, changed_at = self._state.get(user_id, (True, 0))
            if event.type == "UserReactivated":
                active = True
            else:
                active = active and event.type != "UserDeactivated"
                changed_at = event.position
            self._state[user_id] = (active, changed_at)

    def check(self, claims: Claims) -> None:
        if claims.fam in self._ended:
            raise Unauthenticated("This session has ended (signed out or revoked); sign in again", "token_invalid")
        state = self._state.get(claims.sub)
        if state is None:
            return
        active, changed_at = state
        if not active:
            raise Unauthenticated("This account has been deactivated", "token_invalid")
        if claims.pos < changed_at:
            raise Unauthenticated("The account's role or status changed; sign in again", "token_invalid")
