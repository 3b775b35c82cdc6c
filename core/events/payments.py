"""Facts about payments (money as integer minor units of `currency` in `*_minor` fields).

A payment lives in its own stream. When it is made against a contract, the contract's stream also
records the money it holds back (`ContractPaymentReserved`) and releases (`ContractPaymentReleased`),
so the contract alone decides whether pending + completed payments still fit in its amount.
Completion and refund on the contract stream are `ContractPaymentCompleted` / `ContractPaymentRefunded`.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.events.base import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentCreated(Event):
    """A client announced a payment to a payee (against a contract or directly); it waits for settlement."""

    TYPE = "PaymentCreated"
    payment_id: str
    contract_id: str | None
    from_user_id: str
    to_user_id: str
    amount_minor: int
    currency: str
    description: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentCompleted(Event):
    """The chain shows the transfer: `transaction_hash` moved `amount_minor` from the payer's wallet to the payee's.

    `confirmations` is how many blocks confirmed it when it was verified.
    """

    TYPE = "PaymentCompleted"
    payment_id: str
    contract_id: str | None
    amount_minor: int
    transaction_hash: str
    sender_address: str
    recipient_address: str
    block_number: int
    confirmations: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentFailed(Event):
    """A pending payment was called off before it settled (`actor_id` did it); it no longer holds money back."""

    TYPE = "PaymentFailed"
    payment_id: str
    contract_id: str | None
    amount_minor: int
    reason: str
    actor_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentRefunded(Event):
    """An admin marked a completed payment refunded; it no longer counts as paid."""

    TYPE = "PaymentRefunded"
    payment_id: str
    contract_id: str | None
    amount_minor: int
    refunded_by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ContractPaymentReserved(Event):
    """Contract stream: a pending payment holds `amount_minor` of the contract's amount until it settles or fails."""

    TYPE = "ContractPaymentReserved"
    contract_id: str
    payment_id: str
    amount_minor: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ContractPaymentReleased(Event):
    """Contract stream: a pending payment failed; the `amount_minor` it held is free again."""

    TYPE = "ContractPaymentReleased"
    contract_id: str
    payment_id: str
    amount_minor: int
