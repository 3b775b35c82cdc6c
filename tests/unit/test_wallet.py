"""Sign-In with Ethereum wallet linking: messages signed with real keys, checked without I/O."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from hypothesis import assume, given
from hypothesis import strategies as st

from core.errors import ValidationFailed
from core.wallet import build_message, new_nonce, verify_signed_message

DOMAIN = "megilance.test"
NONCE = "k3Pq9ZxT4mWb7NcR2vYh8LsD"
ISSUED = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
EXPIRES = ISSUED + timedelta(minutes=10)
NOW = ISSUED + timedelta(minutes=1)

SIGNER: LocalAccount = Account.from_key("0x" + "4c" * 32)  # fixed so hypothesis examples are reproducible
OTHER: LocalAccount = Account.from_key("0x" + "5d" * 32)


def message_for(account: LocalAccount = SIGNER, **overrides: object) -> str:
    fields: dict[str, object] = {
        "domain": DOMAIN,
        "address": account.address,
        "uri": f"https://{DOMAIN}/api/auth/wallet",
        "chain_id": 8453,
        "nonce": NONCE,
        "issued_at": ISSUED,
        "expiration_time": EXPIRES,
    } | overrides
    return build_message(**fields)  # type: ignore[arg-type]  # test helper: overrides are typed by the call


def sign(message: str, account: LocalAccount = SIGNER) -> str:
    return account.sign_message(encode_defunct(text=message)).signature.to_0x_hex()


def verify(
    message: str,
    signature: str,
    *,
    nonce: str = NONCE,
    domain: str = DOMAIN,
    uri: str = f"https://{DOMAIN}",
    chain_id: int = 8453,
    now: datetime = NOW,
) -> str:
    return verify_signed_message(
        message,
        signature,
        expected_nonce=nonce,
        expected_domain=domain,
        expected_uri=uri,
        expected_chain_id=chain_id,
        now=now,
    )


def rejected(message: str, signature: str, **kwargs: object) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        verify(message, signature, **kwargs)  # type: ignore[arg-type]
    assert caught.value.code == "invalid_signature"
    assert caught.value.detail.endswith(".") and "Traceback" not in caught.value.detail
    return caught.value


def test_new_nonces_are_long_alphanumeric_and_distinct() -> None:
    nonces = {new_nonce() for _ in range(100)}

    assert len(nonces) == 100
    assert all(re.fullmatch(r"[A-Za-z0-9]{16,}", nonce) for nonce in nonces)


def test_the_message_follows_eip_4361() -> None:
    assert message_for() == (
        "megilance.test wants you to sign in with your Ethereum account:\n"
        f"{SIGNER.address}\n"
        "\n"
        "Link this wallet to your MegiLance account.\n"
        "\n"
        "URI: https://megilance.test/api/auth/wallet\n"
        "Version: 1\n"
        "Chain ID: 8453\n"
        f"Nonce: {NONCE}\n"
        "Issued At: 2030-01-01T12:00:00.000Z\n"
        "Expiration Time: 2030-01-01T12:10:00.000Z"
    )


def test_a_message_signed_by_its_wallet_returns_the_checksum_address() -> None:
    message = message_for(address=SIGNER.address.lower())

    assert verify(message, sign(message)) == SIGNER.address


def test_a_signature_with_v_as_0_or_1_is_accepted() -> None:
    message = message_for()
    signature = bytearray.fromhex(sign(message)[2:])
    signature[64] -= 27

    assert verify(message, "0x" + signature.hex()) == SIGNER.address


def test_building_a_message_for_a_malformed_address_is_a_validation_error() -> None:
    with pytest.raises(ValidationFailed) as caught:
        message_for(address="0x1234")
    assert caught.value.code == "validation_failed"


def test_a_wrong_nonce_is_rejected() -> None:
    message = message_for()

    rejected(message, sign(message), nonce=new_nonce())


def test_a_message_for_another_domain_is_rejected() -> None:
    message = message_for(domain="evil.example")

    rejected(message, sign(message))


@pytest.mark.parametrize(
    "uri",
    [
        "https://evil.example",
        "https://evil.example/api/auth/wallet",
        f"http://{DOMAIN}/api/auth/wallet",
        f"https://{DOMAIN}.evil.example/",
        f"https://{DOMAIN}:8443/",
        f"https://user@{DOMAIN}/",
        "urn:megilance",
        "https://[megilance.test/",
    ],
)
def test_a_message_whose_uri_is_of_another_origin_is_rejected(uri: str) -> None:
    message = message_for(uri=uri)

    error = rejected(message, sign(message))
    assert "URI" in error.detail


def test_a_uri_on_this_origin_may_name_any_path() -> None:
    message = message_for(uri=f"https://{DOMAIN.upper()}/login?next=/me")

    assert verify(message, sign(message)) == SIGNER.address


def test_a_message_for_another_chain_is_rejected() -> None:
    message = message_for(chain_id=5)

    error = rejected(message, sign(message))
    assert "chain" in error.detail
    assert verify(message, sign(message), chain_id=5) == SIGNER.address


def test_an_expired_message_is_rejected() -> None:
    message = message_for()

    rejected(message, sign(message), now=EXPIRES)
    rejected(message, sign(message), now=EXPIRES + timedelta(days=1))


def test_a_tampered_message_is_rejected() -> None:
    message = message_for()
    signature = sign(message)

    rejected(message.replace("Chain ID: 8453", "Chain ID: 1"), signature)
    rejected(message.replace("2030-01-01T12:10:00.000Z", "2031-01-01T12:10:00.000Z"), signature)
    rejected(message + "\n", signature)


def test_a_message_naming_another_wallet_is_rejected() -> None:
    message = message_for(OTHER)

    rejected(message, sign(message, SIGNER))


def test_a_signature_from_another_key_is_rejected() -> None:
    message = message_for()

    rejected(message, sign(message, OTHER))


@pytest.mark.parametrize(
    "signature",
    [
        "",
        "0x",
        "0x1234",
        "not hex at all",
        "0x" + "00" * 65,
        "0x" + "ff" * 65,
        "0x" + "zz" * 65,
        "0x" + "11" * 64,
    ],
)
def test_a_garbage_signature_is_rejected(signature: str) -> None:
    rejected(message_for(), signature)


def test_a_message_without_expiration_is_rejected() -> None:
    message = message_for().rsplit("\nExpiration Time:", 1)[0]

    rejected(message, sign(message))


def test_a_message_not_valid_yet_is_rejected() -> None:
    message = message_for() + "\nNot Before: 2030-01-01T12:05:00.000Z"

    rejected(message, sign(message))
    assert verify(message, sign(message), now=ISSUED + timedelta(minutes=5)) == SIGNER.address


def test_the_full_eip_4361_layout_with_optional_fields_is_accepted() -> None:
    message = (
        f"https://{DOMAIN} wants you to sign in with your Ethereum account:\n"
        f"{SIGNER.address}\n"
        "\n"
        "\n"
        "URI: https://megilance.test/login\n"
        "Version: 1\n"
        "Chain ID: 1\n"
        f"Nonce: {NONCE}\n"
        "Issued At: 2030-01-01T12:00:00Z\n"
        "Expiration Time: 2030-01-01T14:00:00.123456+01:00\n"
        "Request ID: abc-123\n"
        "Resources:\n"
        "- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/\n"
        "- https://example.com/my-web2-claim.json"
    )

    assert verify(message, sign(message), chain_id=1) == SIGNER.address


def test_a_lowercase_address_in_the_message_is_rejected() -> None:
    message = message_for().replace(SIGNER.address, SIGNER.address.lower())

    rejected(message, sign(message))


@given(message=st.text(max_size=600), signature=st.text(max_size=200))
def test_random_text_only_ever_fails_validation(message: str, signature: str) -> None:
    with pytest.raises(ValidationFailed):
        verify(message, signature)


@given(signature=st.binary(min_size=65, max_size=65))
def test_random_signature_bytes_on_a_valid_message_fail_validation(signature: bytes) -> None:
    with pytest.raises(ValidationFailed):
        verify(message_for(), "0x" + signature.hex())


VALID = message_for()
VALID_SIGNATURE = sign(VALID)


@given(
    index=st.integers(min_value=0, max_value=len(VALID)),
    cut=st.integers(min_value=0, max_value=3),
    insert=st.text(max_size=3),
)
def test_any_edit_of_a_signed_message_fails_validation(index: int, cut: int, insert: str) -> None:
    edited = VALID[:index] + insert + VALID[index + cut :]
    assume(edited != VALID)
    with pytest.raises(ValidationFailed):
        verify(edited, VALID_SIGNATURE)


def test_an_expiration_time_is_compared_with_its_offset() -> None:
    message = message_for().replace("2030-01-01T12:10:00.000Z", "2030-01-01T13:00:30+01:00")  # 12:00:30 UTC
    signature = sign(message)

    assert verify(message, signature, now=ISSUED) == SIGNER.address
    rejected(message, signature, now=ISSUED + timedelta(seconds=30))
