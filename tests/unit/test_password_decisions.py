"""Password resets, changes and sign-ins decide on plain rows: no store, no clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from commands.password_reset import (
    INVALID,
    MAILS_PER_HOUR,
    check_reset_account,
    reset_recipient,
    since_an_hour_ago,
    valid_reset,
)
from commands.users import WRONG_LOGIN, User, check_login, check_password_unchanged
from core.errors import BadRequest, Unauthenticated
from core.password_resets import Reset

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
HASH, NEW_HASH = "$argon2id$v=19$m=1024,t=1,p=1$old", "$argon2id$v=19$m=1024,t=1,p=1$new"


def user(*, active: bool = True) -> User:
    return User("user-ann", "ann@example.com", "client", active, 2)


def reset(*, expires_at: str = "2026-11-23T10:30:00.000Z", used: bool = False) -> Reset:
    return Reset("reset-1", "user-ann", expires_at, "2026-11-23T09:59:00.000Z" if used else None)


def test_the_rate_window_starts_an_hour_back_to_the_millisecond() -> None:
    assert since_an_hour_ago(NOW) == "2026-11-23T09:00:00.000Z"


def test_a_link_goes_to_an_active_account_below_the_hourly_limit() -> None:
    ann = user()
    assert reset_recipient(ann, 0) is ann
    assert reset_recipient(ann, MAILS_PER_HOUR - 1) is ann


@pytest.mark.parametrize(
    ("account", "sent"), [(None, 0), (user(active=False), 0), (user(), MAILS_PER_HOUR), (user(), MAILS_PER_HOUR + 4)]
)
def test_no_link_goes_to_an_unknown_or_deactivated_account_or_past_the_limit(account: User | None, sent: int) -> None:
    assert reset_recipient(account, sent) is None


@pytest.mark.parametrize(
    "found",
    [
        None,
        reset(used=True),
        reset(expires_at="2026-11-23T10:00:00.000Z"),
        reset(expires_at="2026-11-23T09:59:59.999Z"),
    ],
)
def test_an_unknown_spent_or_expired_link_is_refused_alike(found: Reset | None) -> None:
    with pytest.raises(BadRequest) as refused:
        valid_reset(found, NOW)
    assert (refused.value.detail, refused.value.code) == (INVALID, "reset_token_invalid")


def test_a_live_link_names_its_reset() -> None:
    live = reset(expires_at="2026-11-23T10:00:00.001Z")
    assert valid_reset(live, NOW) is live


def test_a_link_for_an_account_switched_off_since_is_refused_as_a_bad_link() -> None:
    check_reset_account(user())
    with pytest.raises(BadRequest) as refused:
        check_reset_account(user(active=False))
    assert (refused.value.detail, refused.value.code) == (INVALID, "reset_token_invalid")


@pytest.mark.parametrize(("stored", "checked"), [(None, HASH), (HASH, None), (NEW_HASH, HASH), (HASH, HASH + "x")])
def test_a_password_changed_since_it_was_checked_is_refused(stored: str | None, checked: str | None) -> None:
    with pytest.raises(Unauthenticated, match="current_password is wrong") as refused:
        check_password_unchanged(stored, checked, "current_password is wrong")
    assert refused.value.code == "invalid_credentials"


def test_the_password_checked_is_still_the_stored_one() -> None:
    check_password_unchanged(HASH, HASH, "current_password is wrong")


def test_a_sign_in_is_refused_like_a_wrong_password_if_the_account_changed_since_the_check() -> None:
    for account, stored in [(user(active=False), HASH), (user(), NEW_HASH), (user(), None)]:
        with pytest.raises(Unauthenticated) as refused:
            check_login(account, stored, HASH)
        assert (refused.value.detail, refused.value.code) == (WRONG_LOGIN, "invalid_credentials")


def test_a_sign_in_goes_ahead_for_an_active_account_with_the_hash_checked() -> None:
    check_login(user(), HASH, HASH)
    assert WRONG_LOGIN == "The e-mail or password is wrong"  # the answer a wrong password gets at the HTTP layer
