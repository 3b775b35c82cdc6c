"""Wallet linking, write side: one-time sign-in nonces and the one-user-per-address rule.

The signature itself is checked before the command (pure crypto, off the writer); the command decides
what needs the write side's state at one instant: the nonce is this user's, for this address, unused
and unexpired; the address is nobody else's. The nonce is spent and the address claimed atomically.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from commands.common import Command
from commands.users import load_user
from core.clock import rfc3339_ms
from core.errors import Conflict, Forbidden, ValidationFailed
from core.events.wallets import WalletLinked
from core.store import UnitOfWork

STREAM = "user"  # a wallet is part of its user's account: WalletLinked goes to the user's stream
CLAIM = "wallet"  # key: lower-cased address → the user it belongs to
NONCE_TTL = timedelta(minutes=10)
MAX_OPEN_NONCES = 20  # per user: more unspent, unexpired nonces than this and the oldest are dropped

INSERT_NONCE = "INSERT INTO wallet_nonces (nonce, user_id, address, issued_at, expires_at) VALUES (?, ?, ?, ?, ?)"
SELECT_NONCE = "SELECT user_id, address, expires_at, used_at FROM wallet_nonces WHERE nonce = ?"
SPEND_NONCE = "UPDATE wallet_nonces SET used_at = ? WHERE nonce = ? AND used_at IS NULL"
DELETE_EXPIRED = "DELETE FROM wallet_nonces WHERE expires_at <= ?"
TRIM_OPEN = (
    "DELETE FROM wallet_nonces WHERE nonce IN (SELECT nonce FROM wallet_nonces WHERE user_id = ? AND used_at IS NULL "
    "ORDER BY issued_at DESC, nonce LIMIT -1 OFFSET ?)"
)


class IssueWalletNonce(Command):
    """Remember a nonce handed to a user for signing in with `address` (checksum form) until `expires_at`."""

    nonce: str
    user_id: str
    address: str
    expires_at: datetime


class LinkWallet(Command):
    """Spend the nonce of a verified signed message and make `address` (checksum, recovered) the user's wallet."""

    user_id: str
    nonce: str
    address: str


def wallet_key(address: str) -> str:
    return address.lower()


def current_wallet(uow: UnitOfWork, user_id: str) -> str | None:
    """The address the user's stream last linked (None if never)."""
    address: str | None = None
    for event in uow.load(user_id):
        if event.type == "WalletLinked":
            address = event.data["address"]
    return address


def _taken(address: str) -> Conflict:
    return Conflict(f"The wallet {address} is already linked to another account", "wallet_taken")


def issue_wallet_nonce(uow: UnitOfWork, cmd: IssueWalletNonce) -> str:
    owner = uow.claim_owner(CLAIM, wallet_key(cmd.address))
    if owner is not None and owner != cmd.user_id:
        raise _taken(cmd.address)
    now = rfc3339_ms(uow.now)
    uow.conn.execute(DELETE_EXPIRED, (now,))  # expired nonces can never be spent: forget them
    uow.conn.execute(INSERT_NONCE, (cmd.nonce, cmd.user_id, cmd.address, now, rfc3339_ms(cmd.expires_at)))
    uow.conn.execute(TRIM_OPEN, (cmd.user_id, MAX_OPEN_NONCES))
    return cmd.nonce


def _bad_nonce(detail: str) -> ValidationFailed:
    return ValidationFailed(detail, "invalid_nonce")


def link_wallet(uow: UnitOfWork, cmd: LinkWallet) -> str:
    row = uow.conn.execute(SELECT_NONCE, (cmd.nonce,)).fetchone()
    if row is None or row[0] != cmd.user_id:  # someone else's nonce looks exactly like an unknown one
        raise _bad_nonce("The message nonce is unknown; request a new message")
    _, issued_for, expires_at, used_at = row
    if used_at is not None:
        raise _bad_nonce("The message nonce was already used; request a new message")
    if expires_at <= rfc3339_ms(uow.now):
        raise _bad_nonce("The message nonce has expired; request a new message")
    if wallet_key(issued_for) != wallet_key(cmd.address):
        raise _bad_nonce("The message nonce was issued for another wallet address; request a new message")
    user = load_user(uow, cmd.user_id)
    if not user.is_active:
        raise Forbidden("This account is deactivated")
    uow.conn.execute(SPEND_NONCE, (rfc3339_ms(uow.now), cmd.nonce))
    previous = current_wallet(uow, user.id)
    if previous is not None and wallet_key(previous) == wallet_key(cmd.address):
        return cmd.address  # already this user's wallet: the nonce is spent, nothing else changes
    owner = uow.claim_owner(CLAIM, wallet_key(cmd.address))
    if owner is not None and owner != user.id:
        raise _taken(cmd.address)
    uow.claim(CLAIM, wallet_key(cmd.address), user.id, code="wallet_taken", detail=_taken(cmd.address).detail)
    if previous is not None:
        uow.release_claim(CLAIM, wallet_key(previous), user.id)
    event = WalletLinked(user_id=user.id, address=cmd.address, previous_address=previous)
    uow.append(user.id, STREAM, user.version, [event])
    return cmd.address
