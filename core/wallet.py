"""Wallet linking by Sign-In with Ethereum (EIP-4361 message, EIP-191 `personal_sign` signature).

Pure functions, no I/O. The server issues a message with a one-time nonce, the wallet signs
it, and `verify_signed_message` returns the address that signed it. Only plain EOA signatures
are accepted (no EIP-1271 contract wallets: that would need a chain call).

The message is parsed by a small strict parser (the exact EIP-4361 layout, ASCII only) and
the signature is checked over the exact text received, not over a re-serialisation of it.

Why not the `siwe` library: the version that was locked (4.4.0) did not even import with the `abnf` it pulls in
(2.9.1 refuses its grammar, which redefines the core rule ALPHA), it imports web3 as a whole (which this service loads
only when a payment is first confirmed), and its `verify` checks the signature over its own re-serialisation
of the parsed message rather than over the text that was signed. The layout is small and fixed; the tests in
tests/unit/test_wallet.py pin it (wrong layouts, non-ASCII, checksums, dates, replay).
"""

from __future__ import annotations

import hmac
import re
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NoReturn
from urllib.parse import urlsplit

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_keys.exceptions import BadSignature
from eth_utils.address import is_checksum_address, to_checksum_address
from eth_utils.exceptions import ValidationError as EthValidationError

from core.errors import ValidationFailed

__all__ = ["build_message", "new_nonce", "verify_signed_message"]

DEFAULT_STATEMENT = "Link this wallet to your MegiLance account."
MAX_MESSAGE_CHARS = 4096

_ALPHANUMERIC = string.ascii_letters + string.digits
_NONCE_CHARS = 24  # ~143 bits

# EIP-4361 ABNF, restricted to ASCII; explicit classes only (no \s, \d or . which match Unicode/anything).
_SCHEME = r"[A-Za-z][A-Za-z0-9+.\-]*"
_DOMAIN = r"[A-Za-z0-9\-._~%!$&'()*+,;=:@\[\]]+"  # RFC 3986 authority: no / ? # or whitespace
_URI = _SCHEME + r":[\x21-\x7e]+"  # scheme ":" then printable ASCII without spaces
_STATEMENT = r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;= ]+"  # reserved / unreserved / space
_DATETIME = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:Z|[+\-][0-9]{2}:[0-9]{2})"
_NONCE = r"[A-Za-z0-9]{8,128}"
_MESSAGE_RE = re.compile(
    rf"(?:(?P<scheme>{_SCHEME})://)?(?P<domain>{_DOMAIN}) wants you to sign in with your Ethereum account:\n"
    r"(?P<address>0x[0-9a-fA-F]{40})\n"
    r"\n"
    rf"(?:(?P<statement>{_STATEMENT})\n)?"
    r"\n"
    rf"URI: (?P<uri>{_URI})\n"
    r"Version: (?P<version>1)\n"
    r"Chain ID: (?P<chain_id>[0-9]{1,20})\n"
    rf"Nonce: (?P<nonce>{_NONCE})\n"
    rf"Issued At: (?P<issued_at>{_DATETIME})"
    rf"(?:\nExpiration Time: (?P<expiration_time>{_DATETIME}))?"
    rf"(?:\nNot Before: (?P<not_before>{_DATETIME}))?"
    r"(?:\nRequest ID: (?P<request_id>[A-Za-z0-9\-._~!$&'()*+,;=:@%]*))?"
    rf"(?:\nResources:(?P<resources>(?:\n- {_URI})*))?"
)
_SIGNATURE_RE = re.compile(r"0x[0-9a-fA-F]{130}")


@dataclass(frozen=True, slots=True)
class _SiweMessage:
    domain: str
    address: str
    uri: str
    nonce: str
    chain_id: int
    issued_at: datetime
    expiration_time: datetime | None
    not_before: datetime | None


def new_nonce() -> str:
    """A one-time nonce: 24 random alphanumeric characters from `secrets`."""
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(_NONCE_CHARS))


def build_message(
    *,
    domain: str,
    address: str,
    uri: str,
    chain_id: int,
    nonce: str,
    issued_at: datetime,
    expiration_time: datetime,
    statement: str = DEFAULT_STATEMENT,
) -> str:
    """The EIP-4361 text for the wallet to sign (`personal_sign`).

    A malformed `address` (user input) raises ValidationFailed; bad server-side values raise ValueError.
    """
    if not isinstance(address, str) or not re.fullmatch(r"0x[0-9a-fA-F]{40}", address):
        raise ValidationFailed("The wallet address is not a valid Ethereum address.", "validation_failed")
    checks = {
        "domain": re.fullmatch(_DOMAIN, domain),
        "uri": re.fullmatch(_URI, uri),
        "nonce": re.fullmatch(_NONCE, nonce),
        "statement": re.fullmatch(_STATEMENT, statement),
    }
    for name, ok in checks.items():
        if not ok:
            raise ValueError(f"{name} is not valid in an EIP-4361 message")
    if isinstance(chain_id, bool) or not isinstance(chain_id, int) or not 1 <= chain_id < 10**20:
        raise ValueError("chain_id must be a positive integer")
    if expiration_time <= issued_at:  # also raises TypeError for naive datetimes
        raise ValueError("expiration_time must be after issued_at")
    return (
        f"{domain} wants you to sign in with your Ethereum account:\n"
        f"{to_checksum_address(address)}\n"
        "\n"
        f"{statement}\n"
        "\n"
        f"URI: {uri}\n"
        "Version: 1\n"
        f"Chain ID: {chain_id}\n"
        f"Nonce: {nonce}\n"
        f"Issued At: {_format_datetime(issued_at)}\n"
        f"Expiration Time: {_format_datetime(expiration_time)}"
    )


def verify_signed_message(
    message: str,
    signature: str,
    *,
    expected_nonce: str,
    expected_domain: str,
    expected_uri: str,
    expected_chain_id: int,
    now: datetime,
) -> str:
    """Check a signed EIP-4361 message and return the checksum address that signed it.

    Checks the layout, domain, the URI's origin (that of `expected_uri`), chain id, nonce,
    expiration (required) and not-before against `now` (timezone-aware), and that the EIP-191
    signature over the exact text recovers to the message's address. Every failure raises
    ValidationFailed(..., "invalid_signature").
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    parsed = _parse(message)
    if parsed.domain.lower() != expected_domain.lower():
        _fail("The message was issued for another site.")
    if _origin(parsed.uri) != _origin(expected_uri):
        _fail("The message's URI is not on this site.")
    if parsed.chain_id != expected_chain_id:
        _fail("The message was issued for another chain.")
    if not hmac.compare_digest(parsed.nonce.encode(), expected_nonce.encode()):
        _fail("The message nonce is unknown or was already used; request a new message.")
    if parsed.expiration_time is None:
        _fail("The message has no expiration time.")
    if now >= parsed.expiration_time:
        _fail("The message has expired; request a new message.")
    if parsed.not_before is not None and now < parsed.not_before:
        _fail("The message is not valid yet.")

    if not isinstance(signature, str) or not _SIGNATURE_RE.fullmatch(signature):
        _fail("The signature must be 0x followed by 130 hexadecimal characters.")
    try:
        signer = Account.recover_message(encode_defunct(text=message), signature=bytes.fromhex(signature[2:]))
    except (ValueError, BadSignature, EthValidationError):  # invalid v, or (r, s) off the curve
        _fail("The signature is not valid.")
    if to_checksum_address(signer) != parsed.address:
        _fail("The signature was not made by the wallet named in the message.")
    return parsed.address


def _parse(message: str) -> _SiweMessage:
    if not isinstance(message, str) or len(message) > MAX_MESSAGE_CHARS:
        _fail("The message is not a valid sign-in message.")
    match = _MESSAGE_RE.fullmatch(message)
    if match is None:
        _fail("The message is not a valid sign-in message.")
    address = match["address"]
    if not is_checksum_address(address):
        _fail("The address in the message is not in checksum (EIP-55) form.")
    return _SiweMessage(
        domain=match["domain"],
        address=address,
        uri=match["uri"],
        nonce=match["nonce"],
        chain_id=int(match["chain_id"]),
        issued_at=_parse_datetime(match["issued_at"]),
        expiration_time=_parse_datetime(match["expiration_time"]) if match["expiration_time"] else None,
        not_before=_parse_datetime(match["not_before"]) if match["not_before"] else None,
    )


def _origin(uri: str) -> tuple[str, str]:
    """(scheme, authority) in lower case; an authority-less URI (`urn:...`) has an empty one."""
    try:
        parts = urlsplit(uri)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        _fail("The message's URI is not valid.")
    return parts.scheme.lower(), parts.netloc.lower()


def _parse_datetime(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)  # the regex already pinned an RFC 3339 layout with an offset
    except ValueError:
        _fail("The message contains an invalid date.")


def _format_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware")
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fail(detail: str) -> NoReturn:
    raise ValidationFailed(detail, "invalid_signature")
