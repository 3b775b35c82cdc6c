"""The wallet_nonces table (write side, primary only): one-time nonces for linking a wallet by signature."""

from __future__ import annotations

from dataclasses import dataclass

from core.db import Connection

INSERT_NONCE = "INSERT INTO wallet_nonces (nonce, user_id, address, issued_at, expires_at) VALUES (?, ?, ?, ?, ?)"
SELECT_NONCE = "SELECT user_id, address, expires_at, used_at FROM wallet_nonces WHERE nonce = ?"
SPEND_NONCE = "UPDATE wallet_nonces SET used_at = ? WHERE nonce = ? AND used_at IS NULL"
DELETE_EXPIRED = "DELETE FROM wallet_nonces WHERE expires_at <= ?"
TRIM_OPEN = (
    "DELETE FROM wallet_nonces WHERE nonce IN (SELECT nonce FROM wallet_nonces WHERE user_id = ? AND used_at IS NULL "
    "ORDER BY issued_at DESC, nonce LIMIT -1 OFFSET ?)"
)


@dataclass(frozen=True, slots=True)
class Nonce:
    """A nonce handed to a user for signing a message with `address`."""

    user_id: str
    address: str
    expires_at: str
    used_at: str | None


def issue(conn: Connection, nonce: str, user_id: str, address: str, now: str, expires_at: str, keep: int) -> None:
    """Record a nonce; expired ones go, and the user keeps at most `keep` unspent ones (the newest)."""
    conn.execute(DELETE_EXPIRED, (now,))  # expired nonces can never be spent: forget them
    conn.execute(INSERT_NONCE, (nonce, user_id, address, now, expires_at))
    conn.execute(TRIM_OPEN, (user_id, keep))


def find(conn: Connection, nonce: str) -> Nonce | None:
    row = conn.execute(SELECT_NONCE, (nonce,)).fetchone()
    return Nonce(*row) if row is not None else None


def spend(conn: Connection, nonce: str, at: str) -> None:
    conn.execute(SPEND_NONCE, (at, nonce))
