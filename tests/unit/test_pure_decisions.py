"""The write side's decisions that need no store: plain values in, a value or a domain error out (no I/O)."""

from __future__ import annotations

import pytest

from commands.contracts import check_dates, check_milestones, platform_fee_minor
from commands.payments import Payment, check_confirmable
from core.errors import Forbidden, InvalidState, NotFound, ValidationFailed

PAYER, PAYEE, ADMIN, STRANGER = "payer-1", "payee-1", "admin-1", "stranger-1"


def payment(status: str = "pending") -> Payment:
    return Payment("payment-1", None, PAYER, PAYEE, 1_000_000, "USDC", status, 1)


def test_the_payer_may_confirm_a_pending_payment() -> None:
    check_confirmable(payment(), PAYER)
    check_confirmable(payment(), PAYER, is_admin=True)  # an admin who paid it is its payer


@pytest.mark.parametrize(("actor", "is_admin"), [(PAYEE, False), (ADMIN, True)])
def test_the_payee_and_admins_are_refused_a_confirmation(actor: str, is_admin: bool) -> None:
    with pytest.raises(Forbidden, match="Only the payer can confirm a payment"):
        check_confirmable(payment(), actor, is_admin=is_admin)


def test_anyone_else_is_told_the_payment_does_not_exist() -> None:
    with pytest.raises(NotFound, match="No payment with that id"):
        check_confirmable(payment(), STRANGER)


@pytest.mark.parametrize("status", ["completed", "failed", "refunded"])
def test_only_a_pending_payment_can_be_confirmed(status: str) -> None:
    with pytest.raises(InvalidState, match=f"it is {status}"):
        check_confirmable(payment(status), PAYER)


def test_the_fee_follows_the_basis_points_given() -> None:
    assert [platform_fee_minor(1_000_000, bps) for bps in (0, 1, 500, 10_000)] == [0, 100, 50_000, 1_000_000]


def test_an_end_date_must_follow_the_start_date() -> None:
    check_dates("2026-12-01", "2026-12-02")
    check_dates(None, "2026-12-02")
    with pytest.raises(ValidationFailed, match="end_date: must be after start_date"):
        check_dates("2026-12-02", "2026-12-02")


def test_milestones_stay_within_the_amount_and_the_dates() -> None:
    fits = [
        {"title": "A", "amount_minor": 60, "due_date": "2026-12-05"},
        {"title": "B", "amount_minor": 40, "due_date": None},
    ]
    check_milestones(fits, 100, "2026-12-01", "2026-12-31")
    with pytest.raises(ValidationFailed, match="add up to more"):
        check_milestones(fits, 99, None, None)
    with pytest.raises(ValidationFailed, match="another milestone has this title"):
        check_milestones([*fits, {"title": " a ", "amount_minor": 0, "due_date": None}], 100, None, None)
    with pytest.raises(ValidationFailed, match="before the contract's start_date"):
        check_milestones(fits, 100, "2026-12-06", None)
    with pytest.raises(ValidationFailed, match="after the contract's end_date"):
        check_milestones(fits, 100, None, "2026-12-04")
