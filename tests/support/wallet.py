"""Linking a wallet over HTTP: ask for a message, sign it with the account's key, send it back."""

from __future__ import annotations

from typing import Any

from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from starlette.testclient import TestClient

from tests.support.accounts import Json, User


def sign(message: str, account: LocalAccount) -> str:
    return str(account.sign_message(encode_defunct(text=message)).signature.to_0x_hex())


def ask_nonce(client: TestClient, user: User, address: str, **headers: str) -> Any:
    return client.post("/api/auth/wallet/nonce", json={"address": address}, headers={**user.headers, **headers})


def nonce_for(client: TestClient, user: User, address: str) -> Json:
    response = ask_nonce(client, user, address)
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


def send_link(client: TestClient, user: User, message: str, signature: str, **headers: str) -> Any:
    return client.post(
        "/api/auth/wallet", json={"message": message, "signature": signature}, headers={**user.headers, **headers}
    )


def link(client: TestClient, user: User, account: LocalAccount) -> Json:
    """The whole flow: ask for a message for the account's address, sign it with its key, send it back."""
    message = nonce_for(client, user, account.address)["message"]
    response = send_link(client, user, message, sign(message, account))
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body
