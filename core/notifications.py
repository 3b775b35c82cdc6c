"""The e-mail notifications a user can switch on and off (all on unless switched off)."""

from __future__ import annotations

from typing import Any

KINDS = ("proposal_received", "proposal_decided", "contract_created", "payment_confirmed")


def switches(stored: dict[str, Any]) -> dict[str, bool]:
    """Every switch, as stored where set and on where never set."""
    return {kind: bool(stored.get(kind, True)) for kind in KINDS}
