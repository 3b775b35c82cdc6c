"""Refresh-token rotation and revocation decide on plain rows: no store, no clock."""

from __future__ import annotations

import pytest

from commands.sessions import Rotation, decide_rotation, family_to_revoke, sessions_to_end
from core.errors import Unauthenticated
from core.refresh_tokens import RefreshToken

ANN, BOB = "user-ann", "user-bob"
SPENT_AT, REVOKED_AT = "2026-11-23T10:05:00Z", "2026-11-23T10:06:00Z"


def token(*, spent: bool = False, revoked: bool = False, user_id: str = ANN) -> RefreshToken:
    return RefreshToken(
        "family-1", user_id, SPENT_AT if spent else None, REVOKED_AT if revoked else None, "2026-12-07T10:00:00Z"
    )


def test_an_unknown_token_is_refused() -> None:
    with pytest.raises(Unauthenticated, match="This refresh token is not known") as refused:
        decide_rotation(None)
    assert refused.value.code == "token_invalid"


@pytest.mark.parametrize("spent", [False, True])
def test_a_token_of_an_ended_session_is_refused_even_if_it_was_spent(spent: bool) -> None:
    with pytest.raises(Unauthenticated, match="This session has ended; sign in again") as refused:
        decide_rotation(token(spent=spent, revoked=True))
    assert refused.value.code == "token_invalid"


def test_a_spent_token_is_reuse_and_names_the_family_to_end() -> None:
    assert decide_rotation(token(spent=True)) == Rotation(ANN, "family-1", reused=True)


def test_a_live_token_may_be_traded_for_its_successor() -> None:
    assert decide_rotation(token()) == Rotation(ANN, "family-1", reused=False)


@pytest.mark.parametrize("found", [None, token(user_id=BOB), token(user_id=BOB, revoked=True)])
def test_a_logout_with_an_unknown_or_someone_elses_token_is_refused_alike(found: RefreshToken | None) -> None:
    with pytest.raises(Unauthenticated, match="This refresh token is not known") as refused:
        family_to_revoke(found, ANN)
    assert refused.value.code == "token_invalid"


@pytest.mark.parametrize("spent", [False, True])
def test_a_logout_ends_the_family_of_ones_own_token(spent: bool) -> None:
    assert family_to_revoke(token(spent=spent), ANN) == "family-1"


def test_a_logout_of_an_ended_session_ends_nothing_more() -> None:
    assert family_to_revoke(token(revoked=True), ANN) is None


def test_a_password_change_ends_every_live_session_but_its_own() -> None:
    live = ["family-1", "family-2", "family-3"]
    assert sessions_to_end(live, "family-2") == ["family-1", "family-3"]
    assert sessions_to_end(live, None) == live
    assert sessions_to_end(live, "family-9") == live  # keeping a family with no live token spares none
    assert sessions_to_end([], "family-1") == []
