"""`/api/auth/wallet`: link a wallet by Sign-In with Ethereum (EIP-4361 message, EIP-191 signature).

1. POST `/api/auth/wallet/nonce` {address} → a one-time message naming this site, the address and a nonce.
2. The wallet signs it (`personal_sign`); POST `/api/auth/wallet` {message, signature} links the signer.

The signature is checked here, off the writer (pure crypto, in a worker thread); the command then spends
the nonce and claims the address in one transaction. The server never sees a private key.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import Field
from starlette.responses import Response

from api.commanding import execute, written
from api.routing import Call, Operation
from api.schemas import Strict, UserPrivate
from commands.wallets import NONCE_TTL, IssueWalletNonce, LinkWallet
from core.clock import rfc3339
from core.errors import BadRequest, ValidationFailed
from queries.users import get_user

ADDRESS = r"^0x[0-9a-fA-F]{40}$"
SAFE_HOST = re.compile(r"(?:[A-Za-z0-9\-.]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
NONCE_LINE = re.compile(r"^Nonce: ([A-Za-z0-9]{8,128})$", re.MULTILINE)
MAX_MESSAGE = 4096


class NonceBody(Strict):
    address: str = Field(pattern=ADDRESS, json_schema_extra={"examples": ["0x" + "ab" * 20]})


class NonceOut(Strict):
    message: str
    nonce: str
    expires_at: str


class LinkBody(Strict):
    message: str = Field(min_length=1, max_length=MAX_MESSAGE)
    signature: str = Field(min_length=1, max_length=200)


def site(call: Call) -> tuple[str, str]:
    """(domain, uri) the message names: PUBLIC_BASE_URL when set, else the Host this request came to."""
    base = call.runtime.settings.public_base_url.strip()
    if base:
        parts = urlsplit(base)
        return parts.netloc, f"{parts.scheme}://{parts.netloc}"
    host = call.request.headers.get("host", "")
    if not SAFE_HOST.fullmatch(host):
        raise BadRequest("The Host header is missing or not a valid host name")
    return host, f"{call.request.url.scheme}://{host}"


def _nonce_of(message: str) -> str:
    found = NONCE_LINE.search(message)
    if found is None:
        raise ValidationFailed("The message is not a valid sign-in message.", "invalid_signature")
    return found.group(1)


async def wallet_nonce(call: Call) -> Response:
    from core.wallet import build_message, new_nonce  # eth-account is heavy: imported on first use

    body: NonceBody = call.body
    runtime = call.runtime
    domain, uri = site(call)
    nonce, now = new_nonce(), runtime.clock.now()
    expires = now + NONCE_TTL
    message = build_message(
        domain=domain,
        address=body.address,
        uri=uri,
        chain_id=runtime.settings.chain_id,
        nonce=nonce,
        issued_at=now,
        expiration_time=expires,
    )
    command = IssueWalletNonce(nonce=nonce, user_id=call.user.sub, address=body.address, expires_at=expires)
    _, position = await execute(call, command)
    return written({"message": message, "nonce": nonce, "expires_at": rfc3339(expires)}, position)


async def link_wallet(call: Call) -> Response:
    from core.wallet import verify_signed_message

    body: LinkBody = call.body
    runtime, user_id = call.runtime, call.user.sub
    domain, uri = site(call)
    nonce, now = _nonce_of(body.message), runtime.clock.now()

    def verify() -> str:
        return verify_signed_message(
            body.message,
            body.signature,
            expected_nonce=nonce,
            expected_domain=domain,
            expected_uri=uri,
            expected_chain_id=runtime.settings.chain_id,
            now=now,
        )

    address = await runtime.in_thread(verify)
    command = LinkWallet(user_id=user_id, nonce=nonce, address=address)
    (user, version), position = await execute(call, command, lambda conn: get_user(conn, user_id, private=True))
    return written(user, position, etag=version)


OPERATIONS = [
    Operation(
        "POST",
        "/api/auth/wallet/nonce",
        wallet_nonce,
        "Get a one-time Sign-In-with-Ethereum message for a wallet address",
        "wallet",
        body=NonceBody,
        response=NonceOut,
        errors=(400, 401, 409, 415, 422),
    ),
    Operation(
        "POST",
        "/api/auth/wallet",
        link_wallet,
        "Link the wallet that signed the message to one's account",
        "wallet",
        body=LinkBody,
        response=UserPrivate,
        etag=True,
        errors=(400, 401, 403, 409, 415, 422),
    ),
]
