"""Wallet linking, write side: one-time sign-in nonces and the one-user-per-address rule.

The signature itself is checked before the command (pure crypto, off the writer); the command decides
what needs the write side's state at one instant: the nonce is this user's, for this address, unused
and unexpired; the address is nobody else's. The nonce is spent and the address claimed atomically.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from commands.common import Command
from commands.users import load_user
from core import wallet_nonces
from core.clock import rfc3339_ms
from core.errors import Conflict, Forbidden, ValidationFailed
from core.events.wallets import WalletLinked
from core.store import UnitOfWork

STREAM = "user"  # a wallet is part of its user's account: WalletLinked goes to the user's stream
CLAIM = "wallet"  # key: lower-cased address → the user it belongs to
NONCE_TTL = timedelta(minutes=10)
MAX_OPEN_NONCES = 20  # per user: more unspent, unexpired nonces than this and the oldest are dropped


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
    expires_at = rfc3339_ms(cmd.expires_at)
    wallet_nonces.issue(uow.conn, cmd.nonce, cmd.user_id, cmd.address, now, expires_at, MAX_OPEN_NONCES)
    return cmd.nonce


def _bad_nonce(detail: str) -> ValidationFailed:
    return ValidationFailed(detail, "invalid_nonce")


def link_wallet(uow: UnitOfWork, cmd: LinkWallet) -> str:
    nonce = wallet_nonces.find(uow.conn, cmd.nonce)
    if nonce is None or nonce.user_id != cmd.user_id:  # someone else's nonce looks exactly like an unknown one
        raise _bad_nonce("The message nonce is unknown; request a new message")
    issued_for, expires_at = nonce.address, nonce.expires_at
    if nonce.used_at is not None:
        raise _bad_nonce("The message nonce was already used; request a new message")
    if expires_at <= rfc3339_ms(uow.now):
        raise _bad_nonce("The message nonce has expired; request a new message")
    if wallet_key(issued_for) != wallet_key(cmd.address):
        raise _bad_nonce("The message nonce was issued for another wallet address; request a new message")
    user = load_user(uow, cmd.user_id)
    if not user.is_active:
        raise Forbidden("This account is deactivated")
    wallet_nonces.spend(uow.conn, cmd.nonce, rfc3339_ms(uow.now))
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
