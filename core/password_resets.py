"""The password_resets table (write side, primary only): issued reset tokens, by hash."""

from __future__ import annotations

from dataclasses import dataclass

from core.db import Connection

COUNT_ISSUED = "SELECT COUNT(*) FROM password_resets WHERE user_id = ? AND requested_at > ?"
INSERT_RESET = (
    "INSERT INTO password_resets (reset_id, user_id, token_hash, requested_at, expires_at, mail_token) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
SELECT_RESET = "SELECT reset_id, user_id, expires_at, used_at FROM password_resets WHERE token_hash = ?"
# Spending one token spends every other outstanding token of the account too: one reset ends them all.
SPEND_RESETS = "UPDATE password_resets SET used_at = ?, mail_token = NULL WHERE user_id = ? AND used_at IS NULL"


@dataclass(frozen=True, slots=True)
class Reset:
    """One issued reset token."""

    reset_id: str
    user_id: str
    expires_at: str
    used_at: str | None


class PasswordResetTable:
    """The table as a command's unit of work reaches it: handlers never hold the connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def issue(
        self, reset_id: str, user_id: str, token_hash: str, requested_at: str, expires_at: str, token: str
    ) -> None:
        self._conn.execute(INSERT_RESET, (reset_id, user_id, token_hash, requested_at, expires_at, token))

    def issued_since(self, user_id: str, since: str) -> int:
        """How many tokens the account was sent after `since`."""
        row = self._conn.execute(COUNT_ISSUED, (user_id, since)).fetchone()
        return int(row[0])

    def find(self, token_hash: str) -> Reset | None:
        row = self._conn.execute(SELECT_RESET, (token_hash,)).fetchone()
        return Reset(*row) if row is not None else None

    def spend_all(self, user_id: str, at: str) -> None:
        self._conn.execute(SPEND_RESETS, (at, user_id))
