"""The wallet_nonces table (write side, primary only): one-time nonces for linking a wallet by signature."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.db import Connection

INSERT_NONCE = "INSERT INTO wallet_nonces (nonce, user_id, address, issued_at, expires_at) VALUES (?, ?, ?, ?, ?)"
SELECT_NONCE = "SELECT user_id, address, expires_at, used_at FROM wallet_nonces WHERE nonce = ?"
SELECT_OPEN = "SELECT nonce, issued_at FROM wallet_nonces WHERE user_id = ? AND used_at IS NULL AND expires_at > ?"
SPEND_NONCE = "UPDATE wallet_nonces SET used_at = ? WHERE nonce = ? AND used_at IS NULL"
DELETE_EXPIRED = "DELETE FROM wallet_nonces WHERE expires_at <= ?"
DELETE_NONCE = "DELETE FROM wallet_nonces WHERE nonce = ?"


@dataclass(frozen=True, slots=True)
class Nonce:
    """A nonce handed to a user for signing a message with `address`."""

    user_id: str
    address: str
    expires_at: str
    used_at: str | None


@dataclass(frozen=True, slots=True)
class OpenNonce:
    """A nonce that could still be spent: unused and unexpired."""

    nonce: str
    issued_at: str


class WalletNonceTable:
    """The table as a command's unit of work reaches it: handlers never hold the connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def find(self, nonce: str) -> Nonce | None:
        row = self._conn.execute(SELECT_NONCE, (nonce,)).fetchone()
        return Nonce(*row) if row is not None else None

    def open_for(self, user_id: str, now: str) -> list[OpenNonce]:
        """The user's nonces that are neither spent nor expired at `now`."""
        rows = self._conn.execute(SELECT_OPEN, (user_id, now)).fetchall()
        return [OpenNonce(nonce, issued_at) for nonce, issued_at in rows]

    def issue(self, nonce: str, user_id: str, address: str, now: str, expires_at: str, drop: Sequence[str]) -> None:
        """Record a nonce, forget the expired ones (they can never be spent) and drop the nonces named."""
        self._conn.execute(DELETE_EXPIRED, (now,))
        self._conn.execute(INSERT_NONCE, (nonce, user_id, address, now, expires_at))
        for dropped in drop:
            self._conn.execute(DELETE_NONCE, (dropped,))

    def spend(self, nonce: str, at: str) -> None:
        self._conn.execute(SPEND_NONCE, (at, nonce))
