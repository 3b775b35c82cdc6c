"""Password hashing keeps one argon2 block per hashing thread, reused without page faults (glibc's thresholds
are fixed and hashes run on core.passwords' own threads)."""

from __future__ import annotations

import json
import subprocess
import sys

HASHING = """
import concurrent.futures, json, resource
from pathlib import Path
from core.passwords import HASH_THREADS, Passwords
from httpserver.bounded import fix_malloc_thresholds

def rss_mib():
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmRSS"))
    return int(line.split()[1]) // 1024

if {fixed}:
    assert fix_malloc_thresholds()
passwords = Passwords(time_cost=1, memory_kib=19456)  # the default memory cost
before = rss_mib()
with concurrent.futures.ThreadPoolExecutor(6) as callers:  # six requests signing in at once
    run = (lambda pw: passwords.threads.submit(passwords.hash, pw).result()) if {fixed} else passwords.hash
    for _ in range(2):
        list(callers.map(run, [str(n) for n in range(12)]))
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
passwords.threads.submit(passwords.hash, "one more").result()
print(json.dumps({{"retained_mib": rss_mib() - before, "threads": HASH_THREADS,
                  "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults}}))
"""
ARGON2_PAGES = 19456 // 4  # one hash's memory, in 4 KiB pages


def hashing(*, fixed: bool) -> dict[str, int]:
    """A fresh process hashes 24 passwords from 6 threads, then one more: what it kept, and that one's page faults."""
    done = subprocess.run(
        [sys.executable, "-c", HASHING.format(fixed=fixed)], check=True, capture_output=True, text=True, timeout=120
    )
    return dict(json.loads(done.stdout))


def test_hashing_keeps_one_block_per_hashing_thread_and_reuses_it() -> None:
    fixed = hashing(fixed=True)
    assert fixed["retained_mib"] <= 19 * fixed["threads"] + 8
    assert fixed["faults"] < ARGON2_PAGES // 4  # the block was reused, not mapped and faulted in again


def test_left_to_glibc_hashing_on_many_threads_keeps_far_more() -> None:
    assert hashing(fixed=False)["retained_mib"] > 60  # what the bound above guards against
