"""Read model `sessions` (in memory): accounts whose tokens must stop working before they expire.

Only accounts that were deactivated or changed role are tracked; a token is refused when the
account is inactive or the role in it is no longer the account's role.
"""

from __future__ import annotations

from collections.abc import Iterable

from core.db import Connection
from core.errors import Unauthenticated
from core.events.base import StoredEvent
from core.tokens import Claims

SELECT_CHANGED = "SELECT id, role, is_active FROM rm_users WHERE is_active = 0 OR role_changed = 1"


WATCHED = frozenset({"UserRoleChanged", "UserDeactivated", "UserReactivated"})


class Sessions:
    """Which accounts' tokens must be refused now; kept current from the events each store applies."""

    def __init__(self) -> None:
        self._state: dict[str, tuple[bool, str]] = {}

    def load(self, conn: Connection) -> None:
        """Start from the read store (at startup, before serving)."""
        self._state = {row[0]: (bool(row[2]), row[1]) for row in conn.execute(SELECT_CHANGED).fetchall()}

    def observe(self, events: Iterable[StoredEvent]) -> None:
        for event in events:
            if event.type not in WATCHED:
                continue
            user_id = event.data["user_id"]
            active, role = self._state.get(user_id, (True, ""))
            if event.type == "UserRoleChanged":
                role = event.data["role"]
            else:
                active = event.type == "UserReactivated"
            self._state[user_id] = (active, role)

    def check(self, claims: Claims) -> None:
        state = self._state.get(claims.sub)
        if state is None:
            return
        active, role = state
        if not active:
            raise Unauthenticated("This account has been deactivated", "token_invalid")
        if role and role != claims.role:
            raise Unauthenticated("The account's role changed; sign in again", "token_invalid")
