"""Facts about users' wallets (appended to the user's own stream)."""

from __future__ import annotations

from dataclasses import dataclass

from core.events.base import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class WalletLinked(Event):
    """The user proved control of `address` (checksum form) by signing a one-time message; it is now theirs.

    `previous_address` is the wallet this one replaced, if any (it is free for others again).
    """

    TYPE = "WalletLinked"
    user_id: str
    address: str
    previous_address: str | None = None
