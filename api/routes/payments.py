"""`/api/payments`: clients pay freelancers in USDC; a payment settles when the chain shows the transfer.

Confirmation runs the chain check (slow network I/O) in a worker thread *before* the command is
submitted: the single writer never waits on the chain, and a failed check or an unreachable node
changes nothing. The command then re-checks what could have moved meanwhile and claims the hash.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator
from starlette.responses import Response

from api.cache import cached_page, cached_read, cached_view
from api.commanding import execute, written
from api.routing import Call, Operation
from api.schemas import AmountIn, Page, Strict
from commands.payments import CancelPayment, ConfirmPayment, CreatePayment, Payment, RefundPayment, precheck_confirm
from core.clock import Clock
from core.db import Connection
from core.errors import ValidationFailed
from core.ids import new_id
from core.money import format_minor
from core.store import UnitOfWork
from queries.payments import contract_totals, get_payment, linked_wallet, list_payments

if TYPE_CHECKING:
    from core.chain import TransferProof  # web3 is heavy: the verifier is built on first use

CLIENT = frozenset({"client"})
ADMIN = frozenset({"admin"})
Currency = Literal["USDC", "USD"]
PaymentStatus = Literal["pending", "completed", "failed", "refunded"]


class PaymentBody(Strict):
    contract_id: str | None = Field(None, min_length=1, max_length=64)
    to_user_id: str | None = Field(None, min_length=1, max_length=64)
    amount: AmountIn
    currency: Currency | None = Field(None, description="USDC (default) or USD; with a contract: the contract's")
    description: str | None = Field(None, max_length=2000)

    @model_validator(mode="after")
    def _payee_named(self) -> PaymentBody:
        if self.contract_id is None and self.to_user_id is None:
            raise ValueError("give contract_id or to_user_id")
        return self


class ConfirmBody(Strict):
    transaction_hash: str = Field(pattern=r"^0x[0-9a-fA-F]{64}$", json_schema_extra={"examples": ["0x" + "ab" * 32]})


class PaymentFilters(Page):
    status: PaymentStatus | None = None
    contract_id: str | None = Field(None, min_length=1, max_length=64)


class PaymentOut(Strict):
    id: str
    contract_id: str | None
    from_user_id: str
    to_user_id: str
    amount: str
    currency: Currency
    status: PaymentStatus
    transaction_hash: str | None
    description: str | None
    created_at: str
    updated_at: str


class PaymentList(Strict):
    items: list[PaymentOut]
    next_cursor: str | None


class PaymentTotals(Strict):
    total_paid: str
    total_pending: str
    total_refunded: str
    currency: Currency


def read_back(call: Call, payment_id: str) -> Callable[[Connection], tuple[dict[str, Any], int]]:
    """The payment as its caller sees it, read inside the write's transaction (Runtime.execute)."""
    viewer, role = call.user.sub, call.user.role
    return lambda conn: get_payment(conn, payment_id, viewer, role)


async def list_all(call: Call) -> Response:
    f: PaymentFilters = call.query
    viewer, role = call.user.sub, call.user.role
    return await cached_page(
        call,
        ("payments", viewer, role, f),
        lambda conn: list_payments(
            conn,
            viewer_id=viewer,
            viewer_role=role,
            limit=f.limit,
            cursor=f.cursor,
            status=f.status,
            contract_id=f.contract_id,
        ),
    )


async def get_one(call: Call) -> Response:
    payment_id, viewer, role = call.path["payment_id"], call.user.sub, call.user.role
    return await cached_view(
        call, ("payment", viewer, role, payment_id), lambda conn: get_payment(conn, payment_id, viewer, role)
    )


async def contract_total(call: Call) -> Response:
    contract_id, viewer, role = call.path["contract_id"], call.user.sub, call.user.role

    def build(conn: Connection) -> tuple[Any, dict[str, str]]:
        return contract_totals(conn, contract_id, viewer, role), {}

    return await cached_read(call, ("payment-totals", viewer, role, contract_id), build)


async def create(call: Call) -> Response:
    body: PaymentBody = call.body
    payment_id = new_id()
    command = CreatePayment(
        payment_id=payment_id,
        payer_id=call.user.sub,
        amount=str(body.amount),
        contract_id=body.contract_id,
        to_user_id=body.to_user_id,
        currency=body.currency,
        description=body.description,
    )
    (payment, version), position = await execute(call, command, read_back(call, payment_id))
    return written(payment, position, 201, etag=version)


async def confirm(call: Call) -> Response:
    body: ConfirmBody = call.body
    runtime, payment_id, caller = call.runtime, call.path["payment_id"], call.user.sub
    tx_hash, is_admin = body.transaction_hash.lower(), call.user.role == "admin"

    def precheck(conn: Connection) -> tuple[Payment, str | None, str | None]:
        # The primary's own store (writes run there): the command's rules, before the slow chain check.
        payment = precheck_confirm(UnitOfWork(conn, {}, Clock()), payment_id, caller, tx_hash, is_admin=is_admin)
        return payment, linked_wallet(conn, payment.from_user_id), linked_wallet(conn, payment.to_user_id)

    pending, sender, recipient = await runtime.read(precheck)
    if sender is None or recipient is None:
        whose = "payer" if sender is None else "payee"
        raise ValidationFailed(
            f"The {whose} has not linked a wallet yet (POST /api/auth/wallet); the transfer cannot be checked",
            "wallet_not_linked",
        )
    verifier = runtime.chain()
    amount = Decimal(format_minor(pending.amount_minor, pending.currency))  # USD payments settle in USDC at par

    def verify() -> TransferProof:
        return verifier.verify_transfer(tx_hash, sender=sender, recipient=recipient, amount=amount)

    proof = await runtime.in_thread(verify)
    command = ConfirmPayment(
        payment_id=payment_id,
        actor_id=caller,
        transaction_hash=proof.tx_hash,
        sender_address=proof.sender,
        recipient_address=proof.recipient,
        block_number=proof.block_number,
        confirmations=proof.confirmations,
        actor_is_admin=is_admin,
    )
    (payment, version), position = await execute(call, command, read_back(call, payment_id))
    return written(payment, position, etag=version)


async def refund(call: Call) -> Response:
    payment_id = call.path["payment_id"]
    command = RefundPayment(payment_id=payment_id, admin_id=call.user.sub)
    (payment, version), position = await execute(call, command, read_back(call, payment_id))
    return written(payment, position, etag=version)


async def cancel(call: Call) -> Response:
    payment_id = call.path["payment_id"]
    command = CancelPayment(payment_id=payment_id, actor_id=call.user.sub, is_admin=call.user.role == "admin")
    (payment, version), position = await execute(call, command, read_back(call, payment_id))
    return written(payment, position, etag=version)


OPERATIONS = [
    Operation(
        "GET",
        "/api/payments",
        list_all,
        "Payments the caller makes or receives (admins: all)",
        "payments",
        query=PaymentFilters,
        response=PaymentList,
        errors=(401, 422),
    ),
    Operation(
        "GET",
        "/api/payments/{payment_id}",
        get_one,
        "One payment (payer, payee, admins)",
        "payments",
        response=PaymentOut,
        etag=True,
        errors=(401, 404),
    ),
    Operation(
        "POST",
        "/api/payments",
        create,
        "Announce a payment to a contract's freelancer or a user (client); it is pending until confirmed",
        "payments",
        body=PaymentBody,
        response=PaymentOut,
        status=201,
        roles=CLIENT,
        etag=True,
        errors=(400, 401, 403, 404, 409, 415, 422),
    ),
    Operation(
        "POST",
        "/api/payments/{payment_id}/confirm",
        confirm,
        "Settle a pending payment with the hash of its on-chain USDC transfer (payer)",
        "payments",
        body=ConfirmBody,
        response=PaymentOut,
        etag=True,
        errors=(400, 401, 403, 404, 409, 415, 422, 503),
    ),
    Operation(
        "POST",
        "/api/payments/{payment_id}/refund",
        refund,
        "Mark a completed payment refunded (admin)",
        "payments",
        response=PaymentOut,
        roles=ADMIN,
        etag=True,
        errors=(401, 403, 404, 409),
    ),
    Operation(
        "POST",
        "/api/payments/{payment_id}/cancel",
        cancel,
        "Call off a pending payment, freeing its contract balance (payer, admin); it becomes failed",
        "payments",
        response=PaymentOut,
        etag=True,
        errors=(401, 403, 404, 409),
    ),
    Operation(
        "GET",
        "/api/payments/contract/{contract_id}/total",
        contract_total,
        "Paid, pending and refunded totals on a contract (parties, admins)",
        "payments",
        response=PaymentTotals,
        errors=(401, 404),
    ),
]
