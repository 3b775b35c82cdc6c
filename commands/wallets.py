"""Wallet linking, write side: one-time sign-in nonces and the one-user-per-address rule.

The signature itself is checked before the command (pure crypto, off the writer); the command decides
what needs the write side's state at one instant: the nonce is this user's, for this address, unused
and unexpired; the address is nobody else's. The nonce is spent and the address claimed atomically.
Each handler reads through the unit of work, decides with pure functions (`nonces_to_drop`, `check_nonce`,
`decide_link`), then writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from commands.common import Command
from commands.users import User, load_user
from core.clock import rfc3339_ms
from core.errors import Conflict, Forbidden, ValidationFailed
from core.events.wallets import WalletLinked
from core.store import UnitOfWork
from core.wallet_nonces import Nonce, OpenNonce

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


def check_wallet_free(owner: str | None, user_id: str, address: str) -> None:
    """A nonce for an address is handed out only if the address is nobody else's wallet."""
    if owner is not None and owner != user_id:
        raise _taken(address)


def nonces_to_drop(open_nonces: Sequence[OpenNonce], issued: OpenNonce, keep: int) -> list[str]:
    """The user's unspent nonces beyond the newest `keep`, counting the one being issued (ties: lowest nonce kept)."""
    by_nonce = sorted([*open_nonces, issued], key=lambda n: n.nonce)
    newest_first = sorted(by_nonce, key=lambda n: n.issued_at, reverse=True)  # stable: ties stay by nonce
    return [n.nonce for n in newest_first[keep:]]


def issue_wallet_nonce(uow: UnitOfWork, cmd: IssueWalletNonce) -> str:
    check_wallet_free(uow.claim_owner(CLAIM, wallet_key(cmd.address)), cmd.user_id, cmd.address)
    now = rfc3339_ms(uow.now)
    drop = nonces_to_drop(uow.wallet_nonces.open_for(cmd.user_id, now), OpenNonce(cmd.nonce, now), MAX_OPEN_NONCES)
    uow.wallet_nonces.issue(cmd.nonce, cmd.user_id, cmd.address, now, rfc3339_ms(cmd.expires_at), drop)
    return cmd.nonce


def _bad_nonce(detail: str) -> ValidationFailed:
    return ValidationFailed(detail, "invalid_nonce")


def check_nonce(nonce: Nonce | None, user_id: str, address: str, now: datetime) -> None:
    """The nonce may be spent by this user for this address: known and theirs, unused, unexpired, same address."""
    if nonce is None or nonce.user_id != user_id:  # someone else's nonce looks exactly like an unknown one
        raise _bad_nonce("The message nonce is unknown; request a new message")
    if nonce.used_at is not None:
        raise _bad_nonce("The message nonce was already used; request a new message")
    if nonce.expires_at <= rfc3339_ms(now):
        raise _bad_nonce("The message nonce has expired; request a new message")
    if wallet_key(nonce.address) != wallet_key(address):
        raise _bad_nonce("The message nonce was issued for another wallet address; request a new message")


def decide_link(user: User, address: str, previous: str | None, owner: str | None) -> bool:
    """Must `address` be claimed and the link recorded? False when it is the user's wallet already."""
    if not user.is_active:
        raise Forbidden("This account is deactivated")
    if previous is not None and wallet_key(previous) == wallet_key(address):
        return False
    if owner is not None and owner != user.id:
        raise _taken(address)
    return True


def link_wallet(uow: UnitOfWork, cmd: LinkWallet) -> str:
    check_nonce(uow.wallet_nonces.find(cmd.nonce), cmd.user_id, cmd.address, uow.now)
    user = load_user(uow, cmd.user_id)
    previous = current_wallet(uow, user.id)
    key = wallet_key(cmd.address)
    link = decide_link(user, cmd.address, previous, uow.claim_owner(CLAIM, key))
    uow.wallet_nonces.spend(cmd.nonce, rfc3339_ms(uow.now))
    if not link:
        return cmd.address  # already this user's wallet: the nonce is spent, nothing else changes
    uow.claim(CLAIM, key, user.id, code="wallet_taken", detail=_taken(cmd.address).detail)
    if previous is not None:
        uow.release_claim(CLAIM, wallet_key(previous), user.id)
    event = WalletLinked(user_id=user.id, address=cmd.address, previous_address=previous)
    uow.append(user.id, STREAM, user.version, [event])
    return cmd.address
