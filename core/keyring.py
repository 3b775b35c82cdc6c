"""Key-ring fingerprints: nodes compare their token-signing keys without ever sending them.

Each (kid, key) is fingerprinted with an HMAC keyed by the replication token, which both ends of the feed hold:
an observer of the feed learns nothing it could test a guessed key against, and the keys never leave the node.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Key-Ring"
CONTEXT = b"megilance/key-ring/v1"


def fingerprints(ring: list[tuple[str, bytes]], replication_token: str) -> str:
    """`kid=fingerprint,...` in ring order (the first entry signs): the header the primary's feed carries."""
    parts = []
    for kid, key in ring:
        mac = hmac.new(replication_token.encode(), CONTEXT + b"\0" + kid.encode() + b"\0" + key, hashlib.sha256)
        parts.append(f"{kid}={mac.hexdigest()[:32]}")
    return ",".join(parts)


def parse(header: str) -> list[tuple[str, str]]:
    pairs = []
    for item in filter(None, (part.strip() for part in header.split(","))):
        kid, _, mark = item.partition("=")
        pairs.append((kid, mark))
    return pairs


def mismatch(primary: str, ours: str) -> str | None:
    """Why tokens the primary signs would fail here (None: they verify): its signing key must be in our ring,
    and every kid both rings name must be the same key."""
    theirs, mine = parse(primary), dict(parse(ours))
    if not theirs:
        return "the primary sent no key-ring fingerprint"
    signing_kid = theirs[0][0]
    if signing_kid not in mine:
        return f"the primary signs tokens with key {signing_kid!r}, which this node does not have"
    for kid, mark in theirs:
        if kid in mine and not hmac.compare_digest(mine[kid], mark):
            return f"key {kid!r} differs between the primary and this node"
    return None
