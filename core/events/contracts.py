"""Facts about contracts (money as integer minor units of `currency` in `*_minor` fields)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.events.base import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class ContractCreated(Event):
    """The project's client signed a contract with the freelancer they hired; it is active.

    `milestones` are `{"title", "amount_minor", "due_date"}`; dates are ISO `YYYY-MM-DD` or None.
    """

    TYPE = "ContractCreated"
    contract_id: str
    project_id: str
    client_id: str
    freelancer_id: str
    amount_minor: int
    currency: str
    platform_fee_minor: int
    description: str | None = None
    start_date: str | None = None
    end_date: str | None = None
    milestones: list[dict[str, Any]] = field(default_factory=list)
    terms: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ContractRevised(Event):
    """The client changed description, terms, end_date or milestones; only changed fields are present."""

    TYPE = "ContractRevised"
    contract_id: str
    changes: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class ContractStatusChanged(Event):
    """The contract left `active`: completed, cancelled or disputed (`actor_id` made the move)."""

    TYPE = "ContractStatusChanged"
    contract_id: str
    project_id: str
    status: str
    previous_status: str
    actor_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ContractPaymentCompleted(Event):
    """A payment against this contract was confirmed; `amount_minor` now counts as paid."""

    TYPE = "ContractPaymentCompleted"
    contract_id: str
    payment_id: str
    amount_minor: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ContractPaymentRefunded(Event):
    """A completed payment against this contract was refunded; `amount_minor` no longer counts as paid."""

    TYPE = "ContractPaymentRefunded"
    contract_id: str
    payment_id: str
    amount_minor: int
