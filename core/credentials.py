"""The credentials table (primary only): the sign-in lookup, and the password hashes commands store and check.

Credentials are write-side rows, not events, so they live with the write side's tables rather than in
`queries/` (no edge has them): this lookup answers on the primary, where login is served (an edge
forwards every POST).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.db import Connection

SELECT_BY_EMAIL = (
    "SELECT c.user_id, c.password_hash, u.role, u.is_active FROM claims k "
    "JOIN credentials c ON c.user_id = k.owner JOIN rm_users u ON u.id = k.owner "
    "WHERE k.kind = 'email' AND k.key = ?"
)
SELECT_BY_ID = (
    "SELECT c.user_id, c.password_hash, u.role, u.is_active FROM credentials c "
    "JOIN rm_users u ON u.id = c.user_id WHERE c.user_id = ?"
)
SELECT_LIVE_RESET = "SELECT 1 FROM password_resets WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?"


@dataclass(frozen=True, slots=True)
class Credentials:
    """Who owns this e-mail, and what their password hash is."""

    user_id: str
    password_hash: str
    role: str
    is_active: bool


def get_credentials(conn: Connection, email_key: str | None, *, user_id: str | None = None) -> Credentials | None:
    """Whose account is this e-mail (normalised) or id, with the hash to check against? None if unknown."""
    row = (
        conn.execute(SELECT_BY_ID, (user_id,)) if user_id else conn.execute(SELECT_BY_EMAIL, (email_key,))
    ).fetchone()
    if row is None:
        return None
    user_id, password_hash, role, is_active = row
    return Credentials(user_id, password_hash, role, bool(is_active))


def reset_is_live(conn: Connection, token_hash: str, now_ms: str) -> bool:
    """Could a reset token with this hash still be spent (known, unused, unexpired at `now_ms`)?"""
    return conn.execute(SELECT_LIVE_RESET, (token_hash, now_ms)).fetchone() is not None


UPSERT_CREDENTIALS = (
    "INSERT INTO credentials (user_id, password_hash, updated_at) VALUES (?, ?, ?) "
    "ON CONFLICT (user_id) DO UPDATE SET password_hash = excluded.password_hash, updated_at = excluded.updated_at"
)
SELECT_PASSWORD_HASH = "SELECT password_hash FROM credentials WHERE user_id = ?"


class CredentialTable:
    """The password hashes as a command's unit of work reaches them: handlers never hold the connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def save_hash(self, user_id: str, password_hash: str, at: str) -> None:
        self._conn.execute(UPSERT_CREDENTIALS, (user_id, password_hash, at))

    def hash_of(self, user_id: str) -> str | None:
        row = self._conn.execute(SELECT_PASSWORD_HASH, (user_id,)).fetchone()
        return str(row[0]) if row is not None else None
