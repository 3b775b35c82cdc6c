"""The failed-login window: places held by attempts under way, and what a refusal says in each case."""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from core.errors import RateLimited
from edge.ratelimit import RateLimits


def limits() -> RateLimits:
    return RateLimits(enabled=True, auth_per_minute=1000, writes_per_minute=1000, trusted_proxies="")


def test_attempts_under_way_hold_the_free_places_and_the_next_is_told_to_retry_in_a_second() -> None:
    rl = limits()
    with ExitStack() as held:
        for _ in range(5):
            held.enter_context(rl.attempt(rl.failed_logins, "failed-login", "ann"))
        with pytest.raises(RateLimited) as refused, rl.attempt(rl.failed_logins, "failed-login", "ann"):
            pass
        assert refused.value.retry_after == 1
        assert "being checked" in str(refused.value), refused.value
        with rl.attempt(rl.failed_logins, "failed-login", "bob"):  # another account is not held up
            pass
    with rl.attempt(rl.failed_logins, "failed-login", "ann"):  # the places are free again once they end
        pass


def test_a_full_window_says_too_many_failed_sign_ins_and_when_to_come_back() -> None:
    rl = limits()
    for _ in range(5):
        rl.count(rl.failed_logins, "failed-login", "ann")
    with pytest.raises(RateLimited) as refused, rl.attempt(rl.failed_logins, "failed-login", "ann"):
        pass
    assert "Too many failed sign-ins" in str(refused.value)
    assert 14 * 60 < refused.value.retry_after <= 15 * 60
