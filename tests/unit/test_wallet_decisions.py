"""Wallet nonces and linking decide on plain rows: no store, no clock."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commands.users import User
from commands.wallets import check_nonce, check_wallet_free, decide_link, nonces_to_drop
from core.errors import Conflict, Forbidden, ValidationFailed
from core.wallet_nonces import Nonce, OpenNonce

ANN, BOB = "user-ann", "user-bob"
ADDRESS = "0x" + "Ab" * 20
OTHER_ADDRESS = "0x" + "cd" * 20
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def at(minutes: float) -> str:
    """A time `minutes` after NOW, as the table stores it."""
    return (NOW + timedelta(minutes=minutes)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def nonce(*, user_id: str = ANN, address: str = ADDRESS, expires_in: float = 5, used: bool = False) -> Nonce:
    return Nonce(user_id, address, at(expires_in), at(-1) if used else None)


def user(*, active: bool = True) -> User:
    return User(ANN, "ann@example.com", "freelancer", active, 3)


def test_a_nonce_is_handed_out_for_a_free_address_or_ones_own() -> None:
    check_wallet_free(None, ANN, ADDRESS)
    check_wallet_free(ANN, ANN, ADDRESS)


def test_no_nonce_is_handed_out_for_someone_elses_wallet() -> None:
    with pytest.raises(Conflict, match=f"The wallet {ADDRESS} is already linked to another account") as refused:
        check_wallet_free(BOB, ANN, ADDRESS)
    assert refused.value.code == "wallet_taken"


def test_below_the_limit_no_nonce_is_dropped() -> None:
    open_nonces = [OpenNonce(f"n{i}", at(-i)) for i in range(1, 4)]
    assert nonces_to_drop(open_nonces, OpenNonce("new", at(0)), keep=4) == []


def test_past_the_limit_the_oldest_open_nonces_go_and_the_new_one_stays() -> None:
    open_nonces = [OpenNonce("n2", at(-2)), OpenNonce("n5", at(-5)), OpenNonce("n1", at(-1)), OpenNonce("n4", at(-4))]
    assert nonces_to_drop(open_nonces, OpenNonce("new", at(0)), keep=3) == ["n4", "n5"]


def test_among_nonces_issued_at_the_same_instant_the_lowest_is_kept() -> None:
    same = [OpenNonce("b", at(-1)), OpenNonce("c", at(-1)), OpenNonce("a", at(-1))]
    assert nonces_to_drop(same, OpenNonce("new", at(0)), keep=2) == ["b", "c"]
    assert nonces_to_drop([], OpenNonce("new", at(0)), keep=0) == ["new"]


def sql_order(a: OpenNonce, b: OpenNonce) -> int:
    """`ORDER BY issued_at DESC, nonce` spelled out, as the table once trimmed in SQL."""
    if a.issued_at != b.issued_at:
        return -1 if a.issued_at > b.issued_at else 1
    return (a.nonce > b.nonce) - (a.nonce < b.nonce)


@given(
    st.lists(
        st.builds(OpenNonce, st.text("abcdef0123", min_size=1, max_size=4), st.sampled_from([at(-2), at(-1), at(0)])),
        max_size=12,
        unique_by=lambda n: n.nonce,
    ),
    st.integers(0, 12),
)
def test_the_nonces_dropped_are_those_past_the_newest_keep(open_nonces: list[OpenNonce], keep: int) -> None:
    issued = OpenNonce("zz-new", at(0))
    ordered = sorted([*open_nonces, issued], key=functools.cmp_to_key(sql_order))
    assert nonces_to_drop(open_nonces, issued, keep) == [n.nonce for n in ordered[keep:]]


@pytest.mark.parametrize(
    ("found", "detail"),
    [
        (None, "The message nonce is unknown; request a new message"),
        (nonce(user_id=BOB), "The message nonce is unknown; request a new message"),
        (nonce(used=True), "The message nonce was already used; request a new message"),
        (nonce(expires_in=0), "The message nonce has expired; request a new message"),
        (nonce(expires_in=-1), "The message nonce has expired; request a new message"),
        (
            nonce(address=OTHER_ADDRESS),
            "The message nonce was issued for another wallet address; request a new message",
        ),
    ],
)
def test_a_nonce_that_cannot_be_spent_here_is_refused(found: Nonce | None, detail: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        check_nonce(found, ANN, ADDRESS, NOW)
    assert (refused.value.detail, refused.value.code) == (detail, "invalid_nonce")


def test_ones_own_unused_unexpired_nonce_for_the_address_may_be_spent_whatever_its_case() -> None:
    check_nonce(nonce(expires_in=0.001), ANN, ADDRESS, NOW)
    check_nonce(nonce(address=ADDRESS.lower()), ANN, ADDRESS, NOW)


def test_a_deactivated_account_links_nothing() -> None:
    with pytest.raises(Forbidden, match="This account is deactivated"):
        decide_link(user(active=False), ADDRESS, ADDRESS, ANN)


def test_linking_the_wallet_one_has_already_changes_nothing() -> None:
    assert decide_link(user(), ADDRESS, ADDRESS.lower(), ANN) is False


def test_someone_elses_wallet_cannot_be_linked() -> None:
    with pytest.raises(Conflict, match="already linked to another account") as refused:
        decide_link(user(), ADDRESS, OTHER_ADDRESS, BOB)
    assert refused.value.code == "wallet_taken"


@pytest.mark.parametrize(("previous", "owner"), [(None, None), (OTHER_ADDRESS, None), (None, ANN)])
def test_a_free_address_is_claimed_and_the_link_recorded(previous: str | None, owner: str | None) -> None:
    assert decide_link(user(), ADDRESS, previous, owner) is True
