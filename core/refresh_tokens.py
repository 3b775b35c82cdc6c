"""The refresh_tokens table (write side, primary only): one row per issued refresh token, by family."""

from __future__ import annotations

from dataclasses import dataclass

from core.db import Connection

INSERT_TOKEN = "INSERT INTO refresh_tokens (jti, family_id, user_id, issued_at, expires_at) VALUES (?, ?, ?, ?, ?)"
SELECT_TOKEN = "SELECT family_id, user_id, spent_at, revoked_at, expires_at FROM refresh_tokens WHERE jti = ?"
SPEND_TOKEN = "UPDATE refresh_tokens SET spent_at = ? WHERE jti = ? AND spent_at IS NULL AND revoked_at IS NULL"
REVOKE_FAMILY = "UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL"
REVOKE_USER = "UPDATE refresh_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL"
REVOKE_USER_BUT_FAMILY = (
    "UPDATE refresh_tokens SET revoked_at = ? WHERE user_id = ? AND family_id <> ? AND revoked_at IS NULL"
)
SELECT_LIVE_FAMILIES = (
    "SELECT DISTINCT family_id FROM refresh_tokens WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ?"
)


@dataclass(frozen=True, slots=True)
class RefreshToken:
    """One issued refresh token: its family and owner, and whether it was spent or revoked."""

    family_id: str
    user_id: str
    spent_at: str | None
    revoked_at: str | None
    expires_at: str


def find(conn: Connection, jti: str) -> RefreshToken | None:
    row = conn.execute(SELECT_TOKEN, (jti,)).fetchone()
    return RefreshToken(*row) if row is not None else None


class RefreshTokenTable:
    """The table as a command's unit of work reaches it: handlers never hold the connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def insert(self, jti: str, family_id: str, user_id: str, issued_at: str, expires_at: str) -> None:
        self._conn.execute(INSERT_TOKEN, (jti, family_id, user_id, issued_at, expires_at))

    def find(self, jti: str) -> RefreshToken | None:
        return find(self._conn, jti)

    def spend(self, jti: str, at: str) -> None:
        self._conn.execute(SPEND_TOKEN, (at, jti))

    def revoke_family(self, family_id: str, at: str) -> None:
        self._conn.execute(REVOKE_FAMILY, (at, family_id))

    def revoke_user(self, user_id: str, at: str, *, keep_family: str | None = None) -> None:
        """Every token of the user's, but those of `keep_family` (if given)."""
        if keep_family is None:
            self._conn.execute(REVOKE_USER, (at, user_id))
        else:
            self._conn.execute(REVOKE_USER_BUT_FAMILY, (at, user_id, keep_family))

    def live_families(self, user_id: str, at: str) -> list[str]:
        """Families with a token that is neither revoked nor expired at `at`."""
        rows = self._conn.execute(SELECT_LIVE_FAMILIES, (user_id, at)).fetchall()
        return [family_id for (family_id,) in rows]
