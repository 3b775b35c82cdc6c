"""Rate limits (the `limits` library, moving windows in memory) and the client address they key on."""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.requests import Request

from core.errors import RateLimited

FAILED_LOGINS = parse("5/15minute")
PASSWORD_RESET_MAILS = parse("3/hour")  # per e-mail address asked for, whether or not it has an account


class RateLimits:
    """Per-IP auth requests, failed logins per e-mail, writes per user; all switchable off."""

    def __init__(self, *, enabled: bool, auth_per_minute: int, writes_per_minute: int, trusted_proxies: str) -> None:
        self.enabled = enabled
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

    def count(self, item: RateLimitItem, *key: str) -> None:
        if self.enabled:
            self._limiter.hit(item, *key)

    def retry_after(self, item: RateLimitItem, *key: str) -> int:
        reset = self._limiter.get_window_stats(item, *key).reset_time
        return max(1, math.ceil(reset - time.time()))

    def client_ip(self, request: Request) -> str:
        """The socket peer, unless it is a trusted proxy: then Fly-Client-IP or the last untrusted XFF hop."""
        peer = request.client.host if request.client else "unknown"
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
