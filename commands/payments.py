"""Payments, write side: create (within the contract's balance), settle on a verified transfer, refund, cancel.

The contract balance rule, pending + completed <= contract amount, is decided on the contract's own
stream: creating a payment appends `ContractPaymentReserved` to it at the version the decision was
based on. The single writer runs commands one after another, so each sees the reservations before
it; a writer elsewhere racing on the same stream loses with a VersionConflict instead of overdrawing.

Confirmation trusts the chain check the edge ran before submitting (never in the writer: it is slow
network I/O) and re-checks here what may have moved since: the payment is still pending, the wallets
verified are still the payer's and the payee's, and the transaction hash settles no other payment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from commands import contracts, users
from commands.common import Command, fold
from commands.wallets import CLAIM as WALLET_CLAIM
from commands.wallets import wallet_key
from core.errors import Conflict, Forbidden, InvalidState, NotFound, ValidationFailed
from core.events.base import Event, StoredEvent
from core.events.contracts import ContractPaymentCompleted, ContractPaymentRefunded
from core.events.payments import (
    ContractPaymentReleased,
    ContractPaymentReserved,
    PaymentCompleted,
    PaymentCreated,
    PaymentFailed,
    PaymentRefunded,
)
from core.money import DECIMALS, BadAmount, format_minor, parse_amount, to_minor
from core.store import UnitOfWork

STREAM = "payment"
TX_CLAIM = "tx_hash"  # key: lower-case 0x hash → the one payment it settled, ever (refunds keep the claim)
CURRENCIES = frozenset(DECIMALS)


class CreatePayment(Command):
    """A client announces a payment, against their contract (to its freelancer) or straight to a user.

    `amount` is a decimal string: only the currency (the contract's, when none is given) knows its decimals.
    """

    payment_id: str
    payer_id: str
    amount: str
    contract_id: str | None = None
    to_user_id: str | None = None
    currency: str | None = None
    description: str | None = None


class ConfirmPayment(Command):
    """Settle a pending payment with a transfer the chain was seen to show (verified before this command)."""

    payment_id: str
    actor_id: str
    transaction_hash: str
    sender_address: str
    recipient_address: str
    block_number: int
    confirmations: int
    actor_is_admin: bool = False  # admins see every payment, so they are refused (403), not told it is missing


class RefundPayment(Command):
    """An admin marks a completed payment refunded."""

    payment_id: str
    admin_id: str


class CancelPayment(Command):
    """The payer (or an admin) calls off a pending payment; it becomes `failed` and frees the contract's balance."""

    payment_id: str
    actor_id: str
    is_admin: bool = False


@dataclass(frozen=True, slots=True)
class Payment:
    """What the write side needs to know about a payment."""

    id: str
    contract_id: str | None
    from_user_id: str
    to_user_id: str
    amount_minor: int
    currency: str
    status: str
    version: int


STATUS_AFTER = {
    "PaymentCompleted": "completed",
    "PaymentFailed": "failed",
    "PaymentRefunded": "refunded",
}


def evolve(state: Payment | None, event: StoredEvent) -> Payment | None:
    d = event.data
    if event.type == "PaymentCreated":
        return Payment(
            d["payment_id"],
            d["contract_id"],
            d["from_user_id"],
            d["to_user_id"],
            d["amount_minor"],
            d["currency"],
            "pending",
            event.version,
        )
    if state is None:
        return None
    status = STATUS_AFTER.get(event.type, state.status)
    return replace(state, status=status, version=event.version)


def load_payment(uow: UnitOfWork, payment_id: str) -> Payment:
    return fold(uow, payment_id, evolve, "payment")


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", errors=[{"loc": ["body", field], "msg": message}])


def _minor(amount: str, currency: str) -> int:
    try:
        return to_minor(parse_amount(amount, currency), currency)
    except BadAmount as exc:
        raise _invalid("amount", str(exc)) from exc


def create_payment(uow: UnitOfWork, cmd: CreatePayment) -> str:
    if cmd.currency is not None and cmd.currency not in CURRENCIES:
        raise _invalid("currency", "must be USDC or USD")
    if cmd.contract_id is not None:
        payee_id, currency, amount_minor = _reserve_on_contract(uow, cmd, cmd.contract_id)
    else:
        if cmd.to_user_id is None:
            raise _invalid("to_user_id", "give contract_id or to_user_id")
        currency = cmd.currency or "USDC"
        amount_minor = _minor(cmd.amount, currency)
        if cmd.to_user_id == cmd.payer_id:
            raise _invalid("to_user_id", "you cannot pay yourself")
        payee = users.load_user(uow, cmd.to_user_id)
        if not payee.is_active:
            raise _invalid("to_user_id", "that account is deactivated")
        payee_id = payee.id
    event = PaymentCreated(
        payment_id=cmd.payment_id,
        contract_id=cmd.contract_id,
        from_user_id=cmd.payer_id,
        to_user_id=payee_id,
        amount_minor=amount_minor,
        currency=currency,
        description=cmd.description,
    )
    uow.append(cmd.payment_id, STREAM, 0, [event])
    return cmd.payment_id


def _reserve_on_contract(uow: UnitOfWork, cmd: CreatePayment, contract_id: str) -> tuple[str, str, int]:
    """Check the payment fits the contract and hold its amount on the contract's stream."""
    contract = contracts.party_contract(uow, contract_id, cmd.payer_id)
    if cmd.payer_id != contract.client_id:
        raise Forbidden("Only the contract's client pays on it")
    if cmd.to_user_id is not None and cmd.to_user_id != contract.freelancer_id:
        raise _invalid("to_user_id", "a payment on a contract goes to the contract's freelancer")
    if contract.freelancer_id == cmd.payer_id:
        raise _invalid("to_user_id", "you cannot pay yourself")
    if cmd.currency is not None and cmd.currency != contract.currency:
        raise _invalid("currency", f"the contract is in {contract.currency}")
    currency = contract.currency
    amount_minor = _minor(cmd.amount, currency)
    if contract.status == "cancelled":
        raise InvalidState("A cancelled contract takes no payments")
    committed = contract.paid_minor + contract.pending_minor
    if committed + amount_minor > contract.amount_minor:
        left = max(contract.amount_minor - committed, 0)
        raise Conflict(
            f"The payment would exceed the contract's balance: {format_minor(left, currency)} {currency} "
            "is left after completed and pending payments",
            "exceeds_contract_balance",
        )
    reserved = ContractPaymentReserved(contract_id=contract.id, payment_id=cmd.payment_id, amount_minor=amount_minor)
    uow.append(contract.id, contracts.STREAM, contract.version, [reserved])
    return contract.freelancer_id, currency, amount_minor


def _own_payment(uow: UnitOfWork, payment_id: str, actor_id: str, what: str, *, is_admin: bool = False) -> Payment:
    """The payment, if the actor paid it (or is an admin); its payee is refused, anyone else told it does not exist."""
    payment = load_payment(uow, payment_id)
    if actor_id == payment.from_user_id or is_admin:
        return payment
    if actor_id == payment.to_user_id:
        raise Forbidden(f"Only the payer can {what} a payment")
    raise NotFound("No payment with that id")


def _pending(payment: Payment, what: str) -> None:
    if payment.status != "pending":
        raise InvalidState(f"Only a pending payment can be {what} (it is {payment.status})")


def check_confirmable(payment: Payment, actor_id: str, *, is_admin: bool = False) -> None:
    """Only the payer confirms, and only a pending payment; the payee and admins are refused, anyone else is
    told it does not exist."""
    if actor_id != payment.from_user_id:
        if actor_id == payment.to_user_id or is_admin:
            raise Forbidden("Only the payer can confirm a payment")
        raise NotFound("No payment with that id")
    _pending(payment, "confirmed")


def check_unused(uow: UnitOfWork, tx_hash: str) -> None:
    if uow.claim_owner(TX_CLAIM, tx_hash.lower()) is not None:
        raise Conflict("That transaction hash already settled a payment", "tx_already_used")


def precheck_confirm(uow: UnitOfWork, payment_id: str, actor_id: str, tx_hash: str, *, is_admin: bool) -> Payment:
    """The rules of `confirm_payment` that need no chain proof, checked before the slow chain check: a
    confirmation they would refuse never reaches the chain (the command checks them again when it runs)."""
    payment = load_payment(uow, payment_id)
    check_confirmable(payment, actor_id, is_admin=is_admin)
    check_unused(uow, tx_hash)
    return payment


def confirm_payment(uow: UnitOfWork, cmd: ConfirmPayment) -> None:
    payment = load_payment(uow, cmd.payment_id)
    check_confirmable(payment, cmd.actor_id, is_admin=cmd.actor_is_admin)
    if uow.claim_owner(WALLET_CLAIM, wallet_key(cmd.sender_address)) != payment.from_user_id or (
        uow.claim_owner(WALLET_CLAIM, wallet_key(cmd.recipient_address)) != payment.to_user_id
    ):
        raise Conflict(
            "The payer's or payee's linked wallet changed while the transfer was verified; confirm again",
            "wallet_changed",
        )
    tx_hash = cmd.transaction_hash.lower()
    uow.claim(
        TX_CLAIM,
        tx_hash,
        payment.id,
        code="tx_already_used",
        detail="That transaction hash already settled a payment",
    )
    completed = PaymentCompleted(
        payment_id=payment.id,
        contract_id=payment.contract_id,
        amount_minor=payment.amount_minor,
        transaction_hash=tx_hash,
        sender_address=cmd.sender_address,
        recipient_address=cmd.recipient_address,
        block_number=cmd.block_number,
        confirmations=cmd.confirmations,
    )
    uow.append(payment.id, STREAM, payment.version, [completed])
    tell_contract(uow, payment, ContractPaymentCompleted)


def tell_contract(uow: UnitOfWork, payment: Payment, event_type: Callable[..., Event]) -> None:
    """Record on the payment's contract (if any) what happened to the money, at the contract's version."""
    if payment.contract_id is None:
        return
    contract = contracts.load_contract(uow, payment.contract_id)
    event = event_type(contract_id=contract.id, payment_id=payment.id, amount_minor=payment.amount_minor)
    uow.append(contract.id, contracts.STREAM, contract.version, [event])


def refund_payment(uow: UnitOfWork, cmd: RefundPayment) -> None:
    payment = load_payment(uow, cmd.payment_id)
    if payment.status != "completed":
        raise InvalidState(f"Only a completed payment can be refunded (it is {payment.status})")
    refunded = PaymentRefunded(
        payment_id=payment.id,
        contract_id=payment.contract_id,
        amount_minor=payment.amount_minor,
        refunded_by=cmd.admin_id,
    )
    uow.append(payment.id, STREAM, payment.version, [refunded])
    tell_contract(uow, payment, ContractPaymentRefunded)


def cancel_payment(uow: UnitOfWork, cmd: CancelPayment) -> None:
    payment = _own_payment(uow, cmd.payment_id, cmd.actor_id, "cancel", is_admin=cmd.is_admin)
    _pending(payment, "cancelled")
    failed = PaymentFailed(
        payment_id=payment.id,
        contract_id=payment.contract_id,
        amount_minor=payment.amount_minor,
        reason="cancelled",
        actor_id=cmd.actor_id,
    )
    uow.append(payment.id, STREAM, payment.version, [failed])
    tell_contract(uow, payment, ContractPaymentReleased)
