"""Memory the server holds stays bounded: the response cache, and what password hashing leaves behind."""

from __future__ import annotations

import subprocess
import sys

from edge.cache import ResponseCache

HASHING = """
import concurrent.futures
from pathlib import Path
from core.passwords import Passwords
from edge.server import return_large_blocks_to_the_system

def rss_mib():
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmRSS"))
    return int(line.split()[1]) // 1024

if {fixed}:
    assert return_large_blocks_to_the_system()
passwords = Passwords(time_cost=1, memory_kib=19456)  # the default memory cost
before = rss_mib()
with concurrent.futures.ThreadPoolExecutor(6) as pool:  # asyncio.to_thread's pool on two cores
    for _ in range(2):
        list(pool.map(passwords.hash, [str(n) for n in range(12)]))
print(rss_mib() - before)
"""


def retained_mib(*, fixed: bool) -> int:
    """RSS a fresh process keeps after hashing 24 passwords on 6 threads (argon2: 19 MiB each)."""
    done = subprocess.run(
        [sys.executable, "-c", HASHING.format(fixed=fixed)], check=True, capture_output=True, text=True, timeout=120
    )
    return int(done.stdout.strip())


def test_password_hashing_on_many_threads_leaves_no_memory_behind() -> None:
    assert retained_mib(fixed=False) > 60  # what glibc's moving threshold keeps: the bound below is not vacuous
    assert retained_mib(fixed=True) < 24


def test_the_cache_keeps_only_entries_at_the_newest_position() -> None:
    """An entry at an older position can never be served again: it is dropped, not kept until the cache is full."""
    cache = ResponseCache(max_entries=100, max_bytes=1 << 20)
    for n in range(10):
        cache.put(("page", n), 1, b"x" * 100, [])
    cache.put(("page", 0), 2, b"y" * 100, [])
    assert len(cache) == 1
    assert cache.size_bytes == 100
    assert cache.get(("page", 0), 2) == (b"y" * 100, [])
    cache.put(("late", 0), 1, b"z" * 100, [])  # computed at a position already passed: never served, not kept
    assert len(cache) == 1
    assert cache.get(("late", 0), 1) is None


def test_the_cache_never_holds_more_than_its_bounds() -> None:
    cache = ResponseCache(max_entries=50, max_bytes=10_000)
    for n in range(1_000):
        cache.put(("page", n), 7, b"x" * (n % 300), [])
        assert len(cache) <= 50
        assert cache.size_bytes <= 10_000
    cache.put(("huge",), 7, b"x" * 10_001, [])
    assert cache.get(("huge",), 7) is None
