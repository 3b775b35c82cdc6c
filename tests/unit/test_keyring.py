"""Key-ring fingerprints: equal rings match, a different key or a missing signing key is named, keys never show."""

from __future__ import annotations

from core.keyring import fingerprints, mismatch

TOKEN = "r" * 40
A, B = b"a" * 32, b"b" * 32


def test_equal_rings_match_and_the_keys_do_not_appear() -> None:
    ring = fingerprints([("k1", A), ("k0", B)], TOKEN)
    assert mismatch(ring, fingerprints([("k1", A), ("k0", B)], TOKEN)) is None
    assert A.decode() not in ring and B.decode() not in ring
    # rotation: an edge that already knows the next key (and the primary's current one) still verifies
    assert mismatch(ring, fingerprints([("k2", b"c" * 32), ("k1", A)], TOKEN)) is None


def test_a_different_key_or_a_missing_signing_key_is_named() -> None:
    primary = fingerprints([("k1", A)], TOKEN)
    assert mismatch(primary, fingerprints([("k1", B)], TOKEN)) == "key 'k1' differs between the primary and this node"
    missing = mismatch(primary, fingerprints([("k9", A)], TOKEN))
    assert missing is not None and "'k1'" in missing and "does not have" in missing
    assert mismatch("", fingerprints([("k1", A)], TOKEN)) == "the primary sent no key-ring fingerprint"


def test_fingerprints_depend_on_the_replication_token() -> None:
    assert fingerprints([("k1", A)], TOKEN) != fingerprints([("k1", A)], "s" * 40)
