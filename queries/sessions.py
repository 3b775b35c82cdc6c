"""Read model `sessions` (in memory): accounts whose access tokens must stop working before they expire.

Only accounts that were deactivated or changed role are tracked. Each token carries the log
position its issuer had reached; a token issued before the account's last role change or
deactivation is refused, and so is every token of an inactive account. Positions, not clocks:
exact ordering on every node, whatever their clocks say.
"""

from __future__ import annotations

from collections.abc import Iterable

from core.db import Connection
from core.errors import Unauthenticated
from core.events.base import StoredEvent
from core.tokens import Claims

SELECT_CHANGED = "SELECT id, is_active, security_position FROM rm_users WHERE is_active = 0 OR security_position > 0"
WATCHED = frozenset({"UserRoleChanged", "UserDeactivated", "UserReactivated"})


class Sessions:
    """Which accounts' tokens must be refused now; kept current from the events each store applies."""

    def __init__(self) -> None:
        self._state: dict[str, tuple[bool, int]] = {}

    def load(self, conn: Connection) -> None:
        """Start from the read store (at startup, before serving)."""
        self._state = {row[0]: (bool(row[1]), int(row[2])) for row in conn.execute(SELECT_CHANGED).fetchall()}

    def observe(self, events: Iterable[StoredEvent]) -> None:
        for event in events:
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
        state = self._state.get(claims.sub)
        if state is None:
            return
        active, changed_at = state
        if not active:
            raise Unauthenticated("This account has been deactivated", "token_invalid")
        if claims.pos < changed_at:
            raise Unauthenticated("The account's role or status changed; sign in again", "token_invalid")
