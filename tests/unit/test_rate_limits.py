"""The failed-login window: places held by attempts under way, and what a refusal says in each case."""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from api.ratelimit import RateLimits
from core.errors import RateLimited


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


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_strangers_failures_leave_other_addresses_free_to_sign_in() -> None:
    rl = limits()
    for _ in range(5):
        with rl.sign_in("ann", "198.51.100.7"):
            rl.sign_in_failed("ann", "198.51.100.7")
    with pytest.raises(RateLimited), rl.sign_in("ann", "198.51.100.7"):
        pass
    with rl.sign_in("ann", "203.0.113.9"):  # the owner, from an address that has not been failing
        pass


def test_failing_addresses_wait_longer_after_each_failure_on_the_account() -> None:
    ticks = Ticks()
    rl = RateLimits(enabled=True, auth_per_minute=1000, writes_per_minute=1000, trusted_proxies="", now=ticks)
    addresses = [f"198.51.100.{n}" for n in range(4)]
    for n in range(5):  # five failures spread over four addresses: none is over its own window
        rl.sign_in_failed("ann", addresses[n % 4])
    waits = []
    for _ in range(3):
        with pytest.raises(RateLimited) as refused, rl.sign_in("ann", addresses[0]):
            pass
        waits.append(refused.value.retry_after)
        ticks.t += refused.value.retry_after
        with rl.sign_in("ann", addresses[0]):
            rl.sign_in_failed("ann", addresses[0])
    assert waits == [1, 2, 4]
    with rl.sign_in("ann", "203.0.113.9"):  # a fresh address is never delayed
        pass
    ticks.t += 15 * 60
    with rl.sign_in("ann", addresses[1]):  # the window forgets
        pass
