"""Payment and wallet rules: given events → when a command → then events or an error.

A real UnitOfWork on a temp libSQL file (no mocks): the contract balance invariant, settlement claims,
refunds, cancellations, and the one-time wallet nonce.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given as for_all
from hypothesis import settings
from hypothesis import strategies as st

from commands.contracts import CancelContract, cancel_contract, load_contract
from commands.payments import (
    CancelPayment,
    ConfirmPayment,
    CreatePayment,
    RefundPayment,
    cancel_payment,
    confirm_payment,
    create_payment,
    load_payment,
    refund_payment,
)
from commands.wallets import IssueWalletNonce, LinkWallet, issue_wallet_nonce, link_wallet
from core import store
from core.clock import FakeClock
from core.db import Connection, connect
from core.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidState,
    NotFound,
    ValidationFailed,
    VersionConflict,
)
from core.events.base import Event, StoredEvent
from core.events.contracts import ContractCreated, ContractPaymentCompleted
from core.events.payments import ContractPaymentReserved
from core.events.users import UserDeactivated, UserRegistered
from core.events.wallets import WalletLinked
from migrations.runner import migrate

AT = "2026-11-23T10:00:00.000Z"
META = {"actor": "test", "region": "local"}
CLIENT, FREELANCER, STRANGER, ADMIN = "client-1", "freelancer-1", "stranger-1", "admin-1"
CONTRACT = "contract-1"
PAYER_WALLET, PAYEE_WALLET = "0x" + "aA" * 20, "0x" + "bB" * 20
HASH = "0x" + "cd" * 32
Then = list[tuple[str, str, dict[str, Any]]]


@contextmanager
def fresh_log() -> Iterator[Connection]:
    with tempfile.TemporaryDirectory() as directory:
        connection = connect(str(Path(directory) / "log.db"), synchronous="NORMAL")
        try:
            migrate(connection, ("log",))
            yield connection
        finally:
            connection.close()


@pytest.fixture
def conn() -> Iterator[Connection]:
    with fresh_log() as connection:
        yield connection


def given(conn: Connection, stream_id: str, stream_type: str, *events: Event) -> None:
    store.append(conn, stream_id, stream_type, store.stream_version(conn, stream_id), events, META, AT)


def when(conn: Connection, handler: Callable[[store.UnitOfWork, Any], Any], command: Any, clock: Any = None) -> Then:
    uow = store.UnitOfWork(conn, META, clock or FakeClock())
    handler(uow, command)
    return [(event.stream_id, event.type, event.data) for event in uow.new_events]


def refused(conn: Connection, handler: Callable[[store.UnitOfWork, Any], Any], command: Any) -> DomainError:
    """The command is refused and leaves the log as it was (the writer's savepoint would drop its rows)."""
    before = store.head(conn)
    conn.execute("SAVEPOINT attempt")
    try:
        with pytest.raises(DomainError) as caught:
            when(conn, handler, command)
    finally:
        conn.execute("ROLLBACK TO attempt")
        conn.execute("RELEASE attempt")
    assert store.head(conn) == before
    return caught.value


def users(conn: Connection, *ids: str) -> None:
    for user_id in ids:
        role = "freelancer" if user_id.startswith("freelancer") else "client"
        given(
            conn,
            user_id,
            "user",
            UserRegistered(user_id=user_id, email=f"{user_id}@x.io", name=user_id, role=role, joined_at=AT),
        )


def contract(conn: Connection, amount_minor: int = 1_000_000_000, currency: str = "USDC") -> None:
    users(conn, CLIENT, FREELANCER, STRANGER)
    given(
        conn,
        CONTRACT,
        "contract",
        ContractCreated(
            contract_id=CONTRACT,
            project_id="project-1",
            client_id=CLIENT,
            freelancer_id=FREELANCER,
            amount_minor=amount_minor,
            currency=currency,
            platform_fee_minor=0,
        ),
    )


def wallets(conn: Connection) -> None:
    store.claim(conn, "wallet", PAYER_WALLET.lower(), CLIENT, AT)
    store.claim(conn, "wallet", PAYEE_WALLET.lower(), FREELANCER, AT)


def create(payment_id: str = "payment-1", amount: str = "100", **fields: Any) -> CreatePayment:
    return CreatePayment(
        **{"payment_id": payment_id, "payer_id": CLIENT, "amount": amount, "contract_id": CONTRACT, **fields}
    )


def settle(payment_id: str = "payment-1", tx_hash: str = HASH, **fields: Any) -> ConfirmPayment:
    values: dict[str, Any] = {
        "payment_id": payment_id,
        "actor_id": CLIENT,
        "transaction_hash": tx_hash,
        "sender_address": PAYER_WALLET,
        "recipient_address": PAYEE_WALLET,
        "block_number": 7,
        "confirmations": 1,
    }
    return ConfirmPayment(**{**values, **fields})


# -- create: the balance invariant, on the contract's stream -----------------------------------


def test_a_payment_on_a_contract_reserves_its_amount_on_the_contract_stream(conn: Connection) -> None:
    contract(conn)

    then = when(conn, create_payment, create(amount="12.5", description="Design"))

    assert then == [
        (
            CONTRACT,
            "ContractPaymentReserved",
            {"contract_id": CONTRACT, "payment_id": "payment-1", "amount_minor": 12_500_000},
        ),
        (
            "payment-1",
            "PaymentCreated",
            {
                "payment_id": "payment-1",
                "contract_id": CONTRACT,
                "from_user_id": CLIENT,
                "to_user_id": FREELANCER,
                "amount_minor": 12_500_000,
                "currency": "USDC",
                "description": "Design",
            },
        ),
    ]
    state = load_contract(store.UnitOfWork(conn, META, FakeClock()), CONTRACT)
    assert (state.pending_minor, state.paid_minor, state.version) == (12_500_000, 0, 2)


def test_the_contract_currency_decides_the_decimals(conn: Connection) -> None:
    contract(conn, 10_000, "USD")

    then = when(conn, create_payment, create(amount="99.99"))

    assert then[1][2]["amount_minor"] == 9_999 and then[1][2]["currency"] == "USD"
    assert isinstance(refused(conn, create_payment, create("payment-2", amount="0.001")), ValidationFailed)
    assert isinstance(refused(conn, create_payment, create("payment-3", amount="1", currency="USDC")), ValidationFailed)


def test_pending_and_completed_together_may_reach_but_not_pass_the_amount(conn: Connection) -> None:
    contract(conn, 1_000_000)  # 1 USDC
    wallets(conn)
    when(conn, create_payment, create("p1", amount="0.6"))
    when(conn, confirm_payment, settle("p1"))
    when(conn, create_payment, create("p2", amount="0.3"))

    error = refused(conn, create_payment, create("p3", amount="0.100001"))

    assert (type(error), error.code) == (Conflict, "exceeds_contract_balance")
    assert "0.10 USDC" in error.detail
    assert when(conn, create_payment, create("p3", amount="0.1"))


def test_a_cancelled_payment_frees_its_reservation_and_a_refund_frees_paid_money(conn: Connection) -> None:
    contract(conn, 1_000_000)
    wallets(conn)
    when(conn, create_payment, create("p1", amount="1"))
    assert refused(conn, create_payment, create("p2", amount="0.000001")).code == "exceeds_contract_balance"

    then = when(conn, cancel_payment, CancelPayment(payment_id="p1", actor_id=CLIENT))

    assert [(s, t) for s, t, _ in then] == [("p1", "PaymentFailed"), (CONTRACT, "ContractPaymentReleased")]
    when(conn, create_payment, create("p2", amount="1"))
    when(conn, confirm_payment, settle("p2"))
    assert refused(conn, create_payment, create("p3", amount="0.000001")).code == "exceeds_contract_balance"
    then = when(conn, refund_payment, RefundPayment(payment_id="p2", admin_id=ADMIN))
    assert [(s, t) for s, t, _ in then] == [("p2", "PaymentRefunded"), (CONTRACT, "ContractPaymentRefunded")]
    assert when(conn, create_payment, create("p3", amount="1"))


def test_a_completion_without_a_reservation_counts_as_paid_and_leaves_pending_alone(conn: Connection) -> None:
    contract(conn)
    when(conn, create_payment, create("p1", amount="10"))
    given(
        conn, CONTRACT, "contract", ContractPaymentCompleted(contract_id=CONTRACT, payment_id="other", amount_minor=5)
    )

    state = load_contract(store.UnitOfWork(conn, META, FakeClock()), CONTRACT)

    assert (state.pending_minor, state.paid_minor, state.reserved) == (10_000_000, 5, frozenset({"p1"}))


class RacingUnitOfWork(store.UnitOfWork):
    """Another process appends a reservation to the contract right after this command read it."""

    def load(self, stream_id: str) -> list[StoredEvent]:
        events = super().load(stream_id)
        if stream_id == CONTRACT:
            rival = ContractPaymentReserved(contract_id=CONTRACT, payment_id="rival", amount_minor=1_000_000_000)
            store.append(self.conn, CONTRACT, "contract", len(events), [rival], META, AT)
        return events


def test_a_reservation_based_on_a_stale_contract_version_is_a_version_conflict(conn: Connection) -> None:
    contract(conn)

    with pytest.raises(VersionConflict):
        create_payment(RacingUnitOfWork(conn, META, FakeClock()), create(amount="1000"))


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"payer_id": FREELANCER}, Forbidden),
        ({"payer_id": STRANGER}, NotFound),
        ({"contract_id": "nope"}, NotFound),
        ({"to_user_id": STRANGER}, ValidationFailed),
        ({"currency": "EUR"}, ValidationFailed),
        ({"amount": "0"}, ValidationFailed),
        ({"contract_id": None}, ValidationFailed),
        ({"contract_id": None, "to_user_id": CLIENT}, ValidationFailed),
        ({"contract_id": None, "to_user_id": "nobody"}, NotFound),
    ],
)
def test_create_refusals(conn: Connection, fields: dict[str, Any], error: type[DomainError]) -> None:
    contract(conn)

    assert type(refused(conn, create_payment, create(**fields))) is error


def test_a_deactivated_payee_takes_no_direct_payments(conn: Connection) -> None:
    contract(conn)
    given(conn, FREELANCER, "user", UserDeactivated(user_id=FREELANCER, changed_by=ADMIN))

    assert isinstance(refused(conn, create_payment, create(contract_id=None, to_user_id=FREELANCER)), ValidationFailed)


def test_pending_payments_block_cancelling_the_contract(conn: Connection) -> None:
    contract(conn)
    when(conn, create_payment, create())

    error = refused(conn, cancel_contract, CancelContract(contract_id=CONTRACT, actor_id=CLIENT))

    assert isinstance(error, InvalidState) and "pending" in error.detail


# -- confirm ---------------------------------------------------------------------------------


def test_confirm_claims_the_hash_and_completes_on_both_streams(conn: Connection) -> None:
    contract(conn)
    wallets(conn)
    when(conn, create_payment, create(amount="100"))

    then = when(conn, confirm_payment, settle(tx_hash=HASH.upper().replace("0X", "0x")))

    assert [(s, t) for s, t, _ in then] == [("payment-1", "PaymentCompleted"), (CONTRACT, "ContractPaymentCompleted")]
    assert then[0][2]["transaction_hash"] == HASH
    assert store.claim_owner(conn, "tx_hash", HASH) == "payment-1"
    state = load_contract(store.UnitOfWork(conn, META, FakeClock()), CONTRACT)
    assert (state.pending_minor, state.paid_minor, state.reserved) == (0, 100_000_000, frozenset())


def test_a_hash_settles_one_payment_ever(conn: Connection) -> None:
    contract(conn)
    wallets(conn)
    when(conn, create_payment, create("p1"))
    when(conn, create_payment, create("p2"))
    when(conn, confirm_payment, settle("p1"))
    when(conn, refund_payment, RefundPayment(payment_id="p1", admin_id=ADMIN))

    error = refused(conn, confirm_payment, settle("p2"))

    assert (type(error), error.code) == (Conflict, "tx_already_used")


@pytest.mark.parametrize(
    "fields",
    [{"sender_address": "0x" + "ee" * 20}, {"recipient_address": PAYER_WALLET}, {"sender_address": PAYEE_WALLET}],
)
def test_wallets_that_changed_since_the_chain_check_are_refused(conn: Connection, fields: dict[str, Any]) -> None:
    contract(conn)
    wallets(conn)
    when(conn, create_payment, create())

    assert refused(conn, confirm_payment, settle(**fields)).code == "wallet_changed"


@pytest.mark.parametrize(("actor", "error"), [(FREELANCER, Forbidden), (STRANGER, NotFound), (ADMIN, NotFound)])
def test_only_the_payer_confirms(conn: Connection, actor: str, error: type[DomainError]) -> None:
    contract(conn)
    wallets(conn)
    when(conn, create_payment, create())

    assert type(refused(conn, confirm_payment, settle(actor_id=actor))) is error


def test_only_pending_confirms_only_completed_refunds_only_pending_cancels(conn: Connection) -> None:
    contract(conn)
    wallets(conn)
    when(conn, create_payment, create())
    assert isinstance(
        refused(conn, refund_payment, RefundPayment(payment_id="payment-1", admin_id=ADMIN)), InvalidState
    )
    when(conn, confirm_payment, settle())

    assert isinstance(refused(conn, confirm_payment, settle(tx_hash="0x" + "ef" * 32)), InvalidState)
    assert isinstance(
        refused(conn, cancel_payment, CancelPayment(payment_id="payment-1", actor_id=CLIENT)), InvalidState
    )
    when(conn, refund_payment, RefundPayment(payment_id="payment-1", admin_id=ADMIN))
    assert isinstance(
        refused(conn, refund_payment, RefundPayment(payment_id="payment-1", admin_id=ADMIN)), InvalidState
    )
    assert load_payment(store.UnitOfWork(conn, META, FakeClock()), "payment-1").status == "refunded"


def test_an_admin_may_cancel_a_pending_payment_but_the_payee_may_not(conn: Connection) -> None:
    contract(conn)
    when(conn, create_payment, create())

    assert isinstance(
        refused(conn, cancel_payment, CancelPayment(payment_id="payment-1", actor_id=FREELANCER)), Forbidden
    )
    then = when(conn, cancel_payment, CancelPayment(payment_id="payment-1", actor_id=ADMIN, is_admin=True))
    assert then[0][2]["actor_id"] == ADMIN and then[0][2]["reason"] == "cancelled"


# -- the invariant under any sequence --------------------------------------------------------

Step = tuple[str, int, int]  # (action, payment index, amount in minor units)


def step_command(action: str, payment_id: str, minor: int) -> tuple[Callable[[store.UnitOfWork, Any], Any], Any]:
    if action == "create":
        return create_payment, create(payment_id, amount=str(Decimal(minor).scaleb(-2)))
    if action == "confirm":
        return confirm_payment, settle(payment_id, tx_hash="0x" + payment_id.encode().hex().rjust(64, "0"))
    if action == "cancel":
        return cancel_payment, CancelPayment(payment_id=payment_id, actor_id=CLIENT)
    return refund_payment, RefundPayment(payment_id=payment_id, admin_id=ADMIN)


@settings(max_examples=60, deadline=None)
@for_all(
    amount=st.integers(1, 50),
    steps=st.lists(
        st.tuples(st.sampled_from(["create", "confirm", "cancel", "refund"]), st.integers(0, 5), st.integers(1, 30)),
        max_size=25,
    ),
)
def test_no_sequence_of_commands_lets_pending_plus_paid_pass_the_amount(amount: int, steps: list[Step]) -> None:
    with fresh_log() as conn:
        contract(conn, amount, "USD")
        wallets(conn)
        for action, index, minor in steps:
            command = step_command(action, f"p{index}", minor)
            conn.execute("SAVEPOINT step")
            try:
                when(conn, *command)
            except DomainError:
                conn.execute("ROLLBACK TO step")
            conn.execute("RELEASE step")
            state = load_contract(store.UnitOfWork(conn, META, FakeClock()), CONTRACT)
            assert state.paid_minor >= 0 and state.pending_minor >= 0
            assert state.paid_minor + state.pending_minor <= amount


# -- wallets ---------------------------------------------------------------------------------

WALLET = "0x" + "Ab" * 20
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def nonce(conn: Connection, value: str = "n" * 24, user_id: str = CLIENT, address: str = WALLET) -> str:
    when(
        conn,
        issue_wallet_nonce,
        IssueWalletNonce(nonce=value, user_id=user_id, address=address, expires_at=NOW + timedelta(minutes=10)),
    )
    return value


def link(user_id: str = CLIENT, value: str = "n" * 24, address: str = WALLET) -> LinkWallet:
    return LinkWallet(user_id=user_id, nonce=value, address=address)


def test_a_nonce_links_the_wallet_once(conn: Connection) -> None:
    users(conn, CLIENT)
    nonce(conn)

    then = when(conn, link_wallet, link())

    assert then == [(CLIENT, "WalletLinked", {"user_id": CLIENT, "address": WALLET, "previous_address": None})]
    assert store.claim_owner(conn, "wallet", WALLET.lower()) == CLIENT
    assert refused(conn, link_wallet, link()).code == "invalid_nonce"


def test_a_nonce_expires_after_ten_minutes(conn: Connection) -> None:
    users(conn, CLIENT)
    nonce(conn)
    clock = FakeClock()
    clock.advance(minutes=10)

    with pytest.raises(ValidationFailed) as caught:
        when(conn, link_wallet, link(), clock)

    assert caught.value.code == "invalid_nonce" and "expired" in caught.value.detail


@pytest.mark.parametrize(
    ("command", "words"),
    [
        (link(user_id=STRANGER), "unknown"),
        (link(value="z" * 24), "unknown"),
        (link(address="0x" + "cd" * 20), "another wallet address"),
    ],
)
def test_nonce_refusals(conn: Connection, command: LinkWallet, words: str) -> None:
    users(conn, CLIENT, STRANGER)
    nonce(conn)

    error = refused(conn, link_wallet, command)

    assert error.code == "invalid_nonce" and words in error.detail


def test_one_user_per_address_and_relinking_frees_the_old_one(conn: Connection) -> None:
    users(conn, CLIENT, STRANGER)
    nonce(conn, "a" * 24)
    nonce(conn, "b" * 24, STRANGER)
    when(conn, link_wallet, link(value="a" * 24))

    assert refused(conn, link_wallet, link(STRANGER, "b" * 24)).code == "wallet_taken"
    with pytest.raises(Conflict) as caught:
        nonce(conn, "c" * 24, STRANGER)
    assert caught.value.code == "wallet_taken"
    other = "0x" + "Cd" * 20
    nonce(conn, "d" * 24, CLIENT, other)
    then = when(conn, link_wallet, link(value="d" * 24, address=other))
    assert then[0][2] == {"user_id": CLIENT, "address": other, "previous_address": WALLET}
    assert store.claim_owner(conn, "wallet", WALLET.lower()) is None
    assert when(conn, link_wallet, link(STRANGER, "b" * 24))[0][1] == "WalletLinked"


def test_relinking_the_same_wallet_appends_nothing(conn: Connection) -> None:
    users(conn, CLIENT)
    given(conn, CLIENT, "user", WalletLinked(user_id=CLIENT, address=WALLET))
    store.claim(conn, "wallet", WALLET.lower(), CLIENT, AT)
    nonce(conn)

    assert when(conn, link_wallet, link(address=WALLET.lower())) == []
    assert refused(conn, link_wallet, link()).code == "invalid_nonce"  # but the nonce is spent
