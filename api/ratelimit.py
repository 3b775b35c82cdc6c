"""Rate limits (the `limits` library, moving windows in memory) and the client address they key on.

Failed sign-ins are counted per (account, client address), never per account alone: a stranger's wrong passwords
for an account only ever slow down the addresses that sent them, so the owner signing in from elsewhere is let in
at once. Per account, each failure makes the addresses that have been failing on it wait longer before their next
try (`SignInDelays`): a guesser with a few addresses gets fewer tries than their windows alone would allow.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.requests import Request

from core.errors import RateLimited

FAILED_LOGINS = parse("5/15minute")  # per (account, client address)
PASSWORD_RESET_MAILS = parse("3/hour")  # per e-mail address asked for, whether or not it has an account
ACCOUNT_WINDOW_S = 15 * 60
FREE_ACCOUNT_FAILURES = 5  # failures on one account (from any address) before its failing addresses are delayed
MAX_DELAY_S = 60
MAX_TRACKED_ACCOUNTS = 100_000


def account_delay(failures: int) -> float:
    """Seconds a failing address waits after the account's last failure: 1, 2, 4 … up to a minute."""
    if failures < FREE_ACCOUNT_FAILURES:
        return 0.0
    return float(min(2 ** (failures - FREE_ACCOUNT_FAILURES), MAX_DELAY_S))


class SignInDelays:
    """Progressive delays per account: the failures of the last window and when the latest one was."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._failures: dict[str, list[float]] = {}

    def failed(self, account: str) -> None:
        now = self._now()
        if len(self._failures) >= MAX_TRACKED_ACCOUNTS:  # a flood of made-up accounts: forget the quiet ones
            self._forget_old(now)
        recent = [t for t in self._failures.get(account, ()) if now - t < ACCOUNT_WINDOW_S]
        recent.append(now)
        self._failures[account] = recent[-64:]

    def wait_left(self, account: str) -> float:
        """Seconds before a failing address may try this account again (0: now)."""
        now = self._now()
        recent = [t for t in self._failures.get(account, ()) if now - t < ACCOUNT_WINDOW_S]
        if not recent:
            self._failures.pop(account, None)
            return 0.0
        return max(0.0, recent[-1] + account_delay(len(recent)) - now)

    def _forget_old(self, now: float) -> None:
        for account in [a for a, times in self._failures.items() if now - times[-1] >= ACCOUNT_WINDOW_S]:
            del self._failures[account]
        if len(self._failures) >= MAX_TRACKED_ACCOUNTS:
            self._failures.clear()


class RateLimits:
    """Per-IP auth requests, failed sign-ins per (e-mail, address) with delays per e-mail, writes per user."""

    def __init__(
        self,
        *,
        enabled: bool,
        auth_per_minute: int,
        writes_per_minute: int,
        trusted_proxies: str,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = enabled
        self.delays = SignInDelays(now)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self.auth = parse(f"{auth_per_minute}/minute")
        self.writes = parse(f"{writes_per_minute}/minute")
        self.failed_logins = FAILED_LOGINS
        self.password_resets = PASSWORD_RESET_MAILS
        self._pending: dict[tuple[str, ...], int] = {}  # attempts under way, per window and key
        self._trusted = [
            ipaddress.ip_network(net.strip(), strict=False) for net in trusted_proxies.split(",") if net.strip()
        ]

    def hit(self, item: RateLimitItem, *key: str) -> None:
        """Count one request; 429 when the window is full."""
        if self.enabled and not self._limiter.hit(item, *key):
            raise RateLimited("Too many requests; slow down", self.retry_after(item, *key))

    @contextmanager
    def attempt(self, item: RateLimitItem, *key: str) -> Iterator[None]:
        """Hold one of the window's free places while an attempt runs; refuse when none is free.

        Only failures are counted (`count`), after the attempt; holding a place meanwhile keeps attempts sent
        at once from all passing while the window still looked empty.
        """
        if not self.enabled:
            yield
            return
        slot = (str(item), *key)
        pending = self._pending.get(slot, 0)
        remaining = self._limiter.get_window_stats(item, *key).remaining
        if remaining <= 0:
            retry_after = self.retry_after(item, *key)
            raise RateLimited("Too many failed sign-ins for this account; try again later", retry_after)
        if remaining <= pending:  # the window's free places are all held by attempts still being checked
            raise RateLimited("Other sign-ins for this account are being checked; try again in a second", 1)
        self._pending[slot] = pending + 1
        try:
            yield
        finally:
            if self._pending[slot] == 1:
                del self._pending[slot]
            else:
                self._pending[slot] -= 1

    @contextmanager
    def sign_in(self, account: str, address: str) -> Iterator[None]:
        """One password check for `account` from `address`: refused while this address is over its window, or
        while it has been failing on an account under attack and the account's delay has not run out."""
        if not self.enabled:
            yield
            return
        pair = ("failed-login", account, address)
        if self._has_failed(pair):
            wait = self.delays.wait_left(account)
            if wait > 0:
                raise RateLimited("Too many failed sign-ins for this account; try again later", math.ceil(wait))
        with self.attempt(self.failed_logins, *pair):
            yield

    def sign_in_failed(self, account: str, address: str) -> None:
        """Count a wrong password (or unknown account) against the pair and the account's delay."""
        if self.enabled:
            self.count(self.failed_logins, "failed-login", account, address)
            self.delays.failed(account)

    def _has_failed(self, pair: tuple[str, ...]) -> bool:
        stats = self._limiter.get_window_stats(self.failed_logins, *pair)
        return stats.remaining < self.failed_logins.amount

    def count(self, item: RateLimitItem, *key: str) -> None:
        if self.enabled:
            self._limiter.hit(item, *key)

    def retry_after(self, item: RateLimitItem, *key: str) -> int:
        reset = self._limiter.get_window_stats(item, *key).reset_time
        return max(1, math.ceil(reset - time.time()))

    def client_ip(self, request: Request) -> str:
        """The socket peer, unless it is a trusted proxy: then Fly-Client-IP or the last untrusted XFF hop."""
        if request.client is None:  # over worker 0's Unix socket (api.workers): the reader worker's last hop
            hops = [hop.strip() for hop in request.headers.get("x-forwarded-for", "").split(",")]
            return hops[-1] if _is_ip(hops[-1]) else "unknown"
        peer = request.client.host
        if not self._is_trusted(peer):
            return peer
        fly = request.headers.get("fly-client-ip", "").strip()
        if fly and _is_ip(fly):
            return fly
        hops = [hop.strip() for hop in request.headers.get("x-forwarded-for", "").split(",") if hop.strip()]
        for hop in reversed(hops):
            if not _is_ip(hop):
                break
            if not self._is_trusted(hop):
                return hop
        return peer

    def _is_trusted(self, address: str) -> bool:
        if not self._trusted:  # the default: no proxy in front, the socket peer is the client
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self._trusted)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
