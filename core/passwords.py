"""Password hashing with argon2id; parameters are settings, and old hashes are upgraded on login."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# A well-formed hash of a random password: verifying against it costs the same as a real check,
# so an unknown e-mail takes as long as a wrong password (no account probing by timing).
DUMMY_PASSWORD = "not-a-real-password-3f1b9c"
# Hashes run on these threads only: each keeps its argon2 block (19 MiB) for the next hash, and a burst of
# sign-ins queues here instead of taking every thread of the default pool (more threads than cores buys nothing).
HASH_THREADS = min(4, os.cpu_count() or 1)


class Passwords:
    """Hash and verify; parameters chosen in docs/performance.md ("Decisions and their numbers")."""

    def __init__(self, time_cost: int = 3, memory_kib: int = 19456, parallelism: int = 1) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        self._dummy = self._hasher.hash(DUMMY_PASSWORD)
        self.threads = ThreadPoolExecutor(max_workers=HASH_THREADS, thread_name_prefix="argon2")  # started on use

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """Constant-ish time: an absent hash still runs one verification."""
        try:
            return self._hasher.verify(stored_hash or self._dummy, password) and stored_hash is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._hasher.check_needs_rehash(stored_hash)
