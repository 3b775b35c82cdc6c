"""Contract rules: given events → when a command → then events or an error (a real UnitOfWork on a temp libSQL file)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, settings
from hypothesis import given as for_all
from hypothesis import strategies as st
from pydantic import ValidationError as PydanticValidationError

from commands.contracts import (
    CancelContract,
    CreateContract,
    Milestone,
    ReviseContract,
    cancel_contract,
    create_contract,
    load_contract,
    platform_fee_minor,
    revise_contract,
)
from core import store
from core.clock import FakeClock
from core.db import Connection, connect
from core.errors import Conflict, DomainError, Forbidden, InvalidState, NotFound, PreconditionFailed, ValidationFailed
from core.events.base import Event
from core.events.contracts import (
    ContractCreated,
    ContractPaymentCompleted,
    ContractPaymentRefunded,
    ContractRevised,
    ContractStatusChanged,
)
from core.events.projects import ProjectAwarded, ProjectDeleted, ProjectPosted, ProjectStatusChanged
from core.events.users import UserDeactivated, UserRegistered
from migrations.runner import migrate

AT = "2026-11-23T10:00:00.000Z"
META = {"actor": "test", "region": "local"}
CLIENT, FREELANCER, STRANGER = "client-1", "freelancer-1", "stranger-1"
PROJECT, CONTRACT = "project-1", "contract-1"
Then = list[tuple[str, dict[str, Any]]]


@contextmanager
def fresh_log() -> Iterator[Connection]:
    """An empty, migrated event log in its own libSQL file."""
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


def when(conn: Connection, handler: Callable[[store.UnitOfWork, Any], Any], command: Any) -> Then:
    uow = store.UnitOfWork(conn, META, FakeClock())
    handler(uow, command)
    return [(event.type, event.data) for event in uow.new_events]


def hired_project(conn: Connection, freelancer_id: str | None = FREELANCER) -> None:
    given(
        conn,
        PROJECT,
        "project",
        ProjectPosted(
            project_id=PROJECT,
            client_id=CLIENT,
            title="Landing page",
            description="A landing page for the launch",
            category="web",
            budget_type="fixed",
            budget_min_minor=50_000,
            budget_max_minor=150_000,
            experience_level="entry",
            estimated_duration="2 weeks",
        ),
    )
    if freelancer_id is not None:
        given(
            conn,
            freelancer_id,
            "user",
            UserRegistered(
                user_id=freelancer_id, email=f"{freelancer_id}@x.io", name="F", role="freelancer", joined_at=AT
            ),
        )
        given(
            conn,
            PROJECT,
            "project",
            ProjectAwarded(project_id=PROJECT, proposal_id="proposal-1", freelancer_id=freelancer_id),
        )


def create_command(**overrides: Any) -> CreateContract:
    fields: dict[str, Any] = {
        "contract_id": CONTRACT,
        "project_id": PROJECT,
        "client_id": CLIENT,
        "freelancer_id": FREELANCER,
        "amount_minor": 1_000_000_000,
        "currency": "USDC",
        "fee_bps": 500,
        "start_date": "2026-12-01",
        "end_date": "2026-12-31",
        "milestones": [Milestone(title="Design", amount_minor=400_000_000, due_date="2026-12-10")],
    }
    return CreateContract(**{**fields, **overrides})


def existing(conn: Connection, currency: str = "USDC", amount_minor: int = 1_000_000_000, *later: Event) -> None:
    """A contract as create_contract leaves it (claim included), then `later` events on its stream."""
    hired_project(conn)
    store.claim(conn, "contract", PROJECT, CONTRACT, AT)
    given(
        conn,
        CONTRACT,
        "contract",
        ContractCreated(
            contract_id=CONTRACT,
            project_id=PROJECT,
            client_id=CLIENT,
            freelancer_id=FREELANCER,
            amount_minor=amount_minor,
            currency=currency,
            platform_fee_minor=0,
            start_date="2026-12-01",
            end_date="2026-12-31",
        ),
        *later,
    )


def payment(amount_minor: int, refund: bool = False) -> Event:
    kind = ContractPaymentRefunded if refund else ContractPaymentCompleted
    return kind(contract_id=CONTRACT, payment_id=f"payment-{amount_minor}", amount_minor=amount_minor)


# -- create ----------------------------------------------------------------------------------


def test_creating_records_the_contract_with_minor_units_and_claims_the_project(conn: Connection) -> None:
    hired_project(conn)

    events = when(conn, create_contract, create_command(terms="Net 30"))

    assert events == [
        (
            "ContractCreated",
            {
                "contract_id": CONTRACT,
                "project_id": PROJECT,
                "client_id": CLIENT,
                "freelancer_id": FREELANCER,
                "amount_minor": 1_000_000_000,
                "currency": "USDC",
                "platform_fee_minor": 50_000_000,
                "description": None,
                "start_date": "2026-12-01",
                "end_date": "2026-12-31",
                "milestones": [{"title": "Design", "amount_minor": 400_000_000, "due_date": "2026-12-10"}],
                "terms": "Net 30",
            },
        )
    ]
    assert store.claim_owner(conn, "contract", PROJECT) == CONTRACT


@pytest.mark.parametrize(
    ("setup", "overrides", "error", "code"),
    [
        ("none", {}, NotFound, "not_found"),
        ("deleted", {}, NotFound, "not_found"),
        ("hired", {"client_id": STRANGER}, Forbidden, "forbidden"),
        ("open", {}, InvalidState, "invalid_state"),
        ("hired", {"freelancer_id": "freelancer-2"}, ValidationFailed, "validation_failed"),
        ("hired", {"start_date": "2026-12-31", "end_date": "2026-12-01"}, ValidationFailed, "validation_failed"),
        ("hired", {"start_date": "2026-12-31", "end_date": "2026-12-31"}, ValidationFailed, "validation_failed"),
        (
            "hired",
            {
                "milestones": [
                    Milestone(title="A", amount_minor=600_000_000),
                    Milestone(title="B", amount_minor=400_000_001),
                ]
            },
            ValidationFailed,
            "validation_failed",
        ),
        ("claimed", {}, Conflict, "conflict"),
        ("completed", {}, InvalidState, "invalid_state"),
        ("deactivated", {}, ValidationFailed, "validation_failed"),
    ],
)
def test_creating_is_refused(
    conn: Connection, setup: str, overrides: dict[str, Any], error: type[DomainError], code: str
) -> None:
    if setup != "none":
        hired_project(conn, None if setup == "open" else FREELANCER)
    if setup == "deleted":
        given(conn, PROJECT, "project", ProjectDeleted(project_id=PROJECT))
    if setup == "claimed":
        store.claim(conn, "contract", PROJECT, "contract-0", AT)
    if setup == "completed":
        given(
            conn,
            PROJECT,
            "project",
            ProjectStatusChanged(project_id=PROJECT, status="completed", previous_status="in_progress"),
        )
    if setup == "deactivated":
        given(conn, FREELANCER, "user", UserDeactivated(user_id=FREELANCER, changed_by="admin-1"))

    with pytest.raises(error) as raised:
        when(conn, create_contract, create_command(**overrides))

    assert raised.value.code == code
    assert store.stream_version(conn, CONTRACT) == 0


def test_milestones_may_use_up_the_whole_amount_and_dates_are_optional(conn: Connection) -> None:
    hired_project(conn)
    command = create_command(
        start_date=None, end_date="2026-01-01", milestones=[Milestone(title="All", amount_minor=1_000_000_000)]
    )

    assert [t for t, _ in when(conn, create_contract, command)] == ["ContractCreated"]


# -- revise ----------------------------------------------------------------------------------


def revise(**fields: Any) -> ReviseContract:
    return ReviseContract(**{"contract_id": CONTRACT, "actor_id": CLIENT, "changes": {}, **fields})


@pytest.mark.parametrize(("currency", "amount", "minor"), [("USDC", "12.345678", 12_345_678), ("USD", "12.34", 1234)])
def test_the_client_revises_and_milestones_become_minor_units_of_the_contract_currency(
    conn: Connection, currency: str, amount: str, minor: int
) -> None:
    existing(conn, currency, 1_000_000_000)
    changes = {"terms": "Net 15", "end_date": None, "milestones": [{"title": "A", "amount": amount, "due_date": None}]}

    events = when(conn, revise_contract, revise(changes=changes, expected_versions=frozenset({1})))

    assert events == [
        (
            "ContractRevised",
            {
                "contract_id": CONTRACT,
                "changes": {
                    "terms": "Net 15",
                    "end_date": None,
                    "milestones": [{"title": "A", "amount_minor": minor, "due_date": None}],
                },
            },
        )
    ]


@pytest.mark.parametrize(
    ("actor", "changes", "expected", "error", "code"),
    [
        (FREELANCER, {"terms": "mine"}, None, Forbidden, "forbidden"),
        (STRANGER, {"terms": "mine"}, None, NotFound, "not_found"),
        (STRANGER, {}, None, NotFound, "not_found"),
        (CLIENT, {"terms": "late"}, frozenset({2, 3}), PreconditionFailed, "precondition_failed"),
        (CLIENT, {"end_date": "2026-12-01"}, None, ValidationFailed, "validation_failed"),
        (CLIENT, {"milestones": [{"title": "A", "amount": "1.001"}]}, None, ValidationFailed, "validation_failed"),
        (CLIENT, {"milestones": [{"title": "A", "amount": "0"}]}, None, ValidationFailed, "validation_failed"),
        (
            CLIENT,
            {"milestones": [{"title": "A", "amount": "6"}, {"title": "B", "amount": "4.01"}]},
            None,
            ValidationFailed,
            "validation_failed",
        ),
        (CLIENT, {"amount_minor": 1}, None, ValidationFailed, "validation_failed"),
    ],
)
def test_revising_is_refused(
    conn: Connection,
    actor: str,
    changes: dict[str, Any],
    expected: frozenset[int] | None,
    error: type[DomainError],
    code: str,
) -> None:
    existing(conn, "USD", 1_000)

    with pytest.raises(error) as raised:
        when(conn, revise_contract, revise(actor_id=actor, changes=changes, expected_versions=expected))

    assert raised.value.code == code


def test_the_end_date_stays_on_or_after_the_latest_revised_milestone(conn: Connection) -> None:
    milestones = [{"title": "A", "amount_minor": 1, "due_date": "2026-12-20"}]
    existing(conn, "USD", 1_000, ContractRevised(contract_id=CONTRACT, changes={"milestones": milestones}))

    with pytest.raises(ValidationFailed) as raised:
        when(conn, revise_contract, revise(changes={"end_date": "2026-12-19"}))

    assert raised.value.errors == [{"loc": ["body", "end_date"], "msg": "must not be before a milestone's due_date"}]
    assert [t for t, _ in when(conn, revise_contract, revise(changes={"end_date": "2026-12-20"}))] == [
        "ContractRevised"
    ]


@pytest.mark.parametrize("status", ["completed", "cancelled", "disputed"])
def test_only_an_active_contract_can_be_edited(conn: Connection, status: str) -> None:
    existing(
        conn,
        "USDC",
        1_000,
        ContractStatusChanged(
            contract_id=CONTRACT, project_id=PROJECT, status=status, previous_status="active", actor_id=CLIENT
        ),
    )

    with pytest.raises(InvalidState):
        when(conn, revise_contract, revise(changes={"terms": "late"}))


def test_an_empty_revision_records_nothing(conn: Connection) -> None:
    existing(conn)

    assert when(conn, revise_contract, revise(status="active")) == []


# -- status moves ----------------------------------------------------------------------------

# (to, who) → None when allowed, else the error's code; from `active` with nothing paid.
ACTIVE_MOVES = {
    ("completed", CLIENT): None,
    ("completed", FREELANCER): "forbidden",
    ("cancelled", CLIENT): None,
    ("cancelled", FREELANCER): None,
    ("disputed", CLIENT): None,
    ("disputed", FREELANCER): None,
}


@pytest.mark.parametrize(("to", "who"), sorted(ACTIVE_MOVES))
def test_moves_out_of_active(conn: Connection, to: str, who: str) -> None:
    existing(conn)
    command = revise(actor_id=who, status=to)

    if ACTIVE_MOVES[(to, who)] is None:
        assert when(conn, revise_contract, command) == [
            (
                "ContractStatusChanged",
                {
                    "contract_id": CONTRACT,
                    "project_id": PROJECT,
                    "status": to,
                    "previous_status": "active",
                    "actor_id": who,
                },
            )
        ]
    else:
        with pytest.raises(Forbidden):
            when(conn, revise_contract, command)


@pytest.mark.parametrize("first", ["completed", "cancelled", "disputed"])
@pytest.mark.parametrize("then", ["active", "completed", "cancelled", "disputed"])
@pytest.mark.parametrize("who", [CLIENT, FREELANCER])
def test_nothing_moves_once_out_of_active(conn: Connection, first: str, then: str, who: str) -> None:
    existing(
        conn,
        "USDC",
        1_000,
        ContractStatusChanged(
            contract_id=CONTRACT, project_id=PROJECT, status=first, previous_status="active", actor_id=CLIENT
        ),
    )
    if then == first:
        assert when(conn, revise_contract, revise(actor_id=who, status=then)) == []
        return

    with pytest.raises(InvalidState):
        when(conn, revise_contract, revise(actor_id=who, status=then))


@pytest.mark.parametrize("who", [CLIENT, FREELANCER])
def test_cancelling_by_status_releases_the_project_claim(conn: Connection, who: str) -> None:
    existing(conn)

    when(conn, revise_contract, revise(actor_id=who, status="cancelled"))

    assert store.claim_owner(conn, "contract", PROJECT) is None


@pytest.mark.parametrize("status", ["completed", "disputed"])
def test_other_moves_keep_the_claim(conn: Connection, status: str) -> None:
    existing(conn)

    when(conn, revise_contract, revise(status=status))

    assert store.claim_owner(conn, "contract", PROJECT) == CONTRACT


# -- cancel (DELETE) and payments ------------------------------------------------------------


def test_the_client_cancels_and_the_claim_is_released(conn: Connection) -> None:
    existing(conn)

    events = when(
        conn,
        cancel_contract,
        CancelContract(contract_id=CONTRACT, actor_id=CLIENT, expected_versions=frozenset({2, 1})),
    )

    assert [(t, d["status"]) for t, d in events] == [("ContractStatusChanged", "cancelled")]
    assert store.claim_owner(conn, "contract", PROJECT) is None


@pytest.mark.parametrize(
    ("actor", "expected", "error"),
    [(FREELANCER, None, Forbidden), (STRANGER, None, NotFound), (CLIENT, frozenset({0}), PreconditionFailed)],
)
def test_cancelling_is_refused(
    conn: Connection, actor: str, expected: frozenset[int] | None, error: type[DomainError]
) -> None:
    existing(conn)

    with pytest.raises(error):
        when(conn, cancel_contract, CancelContract(contract_id=CONTRACT, actor_id=actor, expected_versions=expected))

    assert store.claim_owner(conn, "contract", PROJECT) == CONTRACT


def test_an_admin_who_may_read_a_contract_is_refused_changing_it(conn: Connection) -> None:
    existing(conn)

    with pytest.raises(Forbidden):
        when(conn, revise_contract, revise(actor_id=STRANGER, changes={}, status="disputed", actor_is_admin=True))
    with pytest.raises(Forbidden):
        when(conn, cancel_contract, CancelContract(contract_id=CONTRACT, actor_id=STRANGER, actor_is_admin=True))

    assert load_contract(store.UnitOfWork(conn, META, FakeClock()), CONTRACT).status == "active"


def test_an_unknown_contract_is_not_found(conn: Connection) -> None:
    with pytest.raises(NotFound):
        when(conn, cancel_contract, CancelContract(contract_id=CONTRACT, actor_id=CLIENT))


def test_payments_fold_into_paid_minor_and_the_version(conn: Connection) -> None:
    existing(conn, "USDC", 1_000_000_000, payment(300), payment(200), payment(300, refund=True))

    contract = load_contract(store.UnitOfWork(conn, META, FakeClock()), CONTRACT)

    assert (contract.paid_minor, contract.version, contract.status) == (200, 4, "active")


@settings(deadline=None, max_examples=50)  # each example migrates a fresh libSQL file
@for_all(payments=st.lists(st.tuples(st.integers(1, 10**9), st.booleans()), max_size=6))
@example(payments=[(5, False), (5, True)])
def test_cancelling_is_allowed_exactly_when_nothing_remains_paid(payments: list[tuple[int, bool]]) -> None:
    with fresh_log() as conn:
        # Each completed payment is refunded at most once, as the payments slice guarantees.
        events = [payment(amount) for amount, _ in payments]
        events += [payment(amount, refund=True) for amount, refund in payments if refund]
        existing(conn, "USDC", 10**12, *events)
        outstanding = sum(amount for amount, refund in payments if not refund)
        command = CancelContract(contract_id=CONTRACT, actor_id=CLIENT)
        if outstanding == 0:
            assert [t for t, _ in when(conn, cancel_contract, command)] == ["ContractStatusChanged"]
        else:
            with pytest.raises(InvalidState):
                when(conn, cancel_contract, command)


# -- the platform fee ------------------------------------------------------------------------


@for_all(amount_minor=st.integers(0, 10**15), fee_bps=st.integers(0, 10_000))
@example(amount_minor=30, fee_bps=500)  # 1.5 → 2
@example(amount_minor=10, fee_bps=500)  # 0.5 → 0
@example(amount_minor=50, fee_bps=500)  # 2.5 → 2
def test_the_fee_is_amount_times_bps_over_10000_rounded_half_to_even(amount_minor: int, fee_bps: int) -> None:
    exact = Decimal(amount_minor) * fee_bps / 10_000
    expected = int(exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))

    assert platform_fee_minor(amount_minor, fee_bps) == expected


@pytest.mark.parametrize(
    ("amount_minor", "fee_bps", "fee"),
    [(30, 500, 2), (10, 500, 0), (70, 500, 4), (100, 0, 0), (100, 10_000, 100), (1, 5_000, 0), (3, 5_000, 2)],
)
def test_fee_examples(amount_minor: int, fee_bps: int, fee: int) -> None:
    assert platform_fee_minor(amount_minor, fee_bps) == fee


@pytest.mark.parametrize(("fee_bps", "fee"), [(0, 0), (250, 25_000_000), (500, 50_000_000), (10_000, 1_000_000_000)])
def test_the_command_computes_the_fee_from_the_servers_basis_points(conn: Connection, fee_bps: int, fee: int) -> None:
    hired_project(conn)

    events = when(conn, create_contract, create_command(fee_bps=fee_bps))

    assert events[0][1]["platform_fee_minor"] == fee


def test_a_contract_command_takes_no_fee_amount_and_no_basis_points_out_of_range() -> None:
    with pytest.raises(PydanticValidationError):
        create_command(platform_fee_minor=1)
    with pytest.raises(PydanticValidationError):
        create_command(fee_bps=10_001)
