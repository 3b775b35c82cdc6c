"""Wallet linking over HTTP: Sign-In-with-Ethereum messages signed with real keys, single-use expiring nonces."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from starlette.testclient import TestClient

from api.app import create_app
from commands.wallets import MAX_OPEN_NONCES
from core.clock import FakeClock
from core.settings import Settings
from tests.conftest import make_settings
from tests.support.accounts import User, register
from tests.support.errors import assert_error
from tests.support.wallet import ask_nonce, link, nonce_for, send_link, sign

Json = dict[str, Any]


def new_account() -> LocalAccount:
    account: LocalAccount = Account.create()
    return account


def me(client: TestClient, user: User) -> Any:
    return client.get("/api/auth/me", headers=user.headers)


@pytest.fixture
def ann(client: TestClient) -> User:
    return register(client, "client", "Ann Client")


@pytest.fixture
def fred(client: TestClient) -> User:
    return register(client, "freelancer", "Fred Freelancer")


# -- the message -----------------------------------------------------------------------------


def test_the_nonce_message_names_this_site_the_address_the_chain_and_expires_in_ten_minutes(
    client: TestClient, ann: User
) -> None:
    account = new_account()

    body = nonce_for(client, ann, account.address.lower())

    assert set(body) == {"message", "nonce", "expires_at"}
    lines = body["message"].split("\n")
    assert lines[0] == "testserver wants you to sign in with your Ethereum account:"
    assert lines[1] == account.address  # checksum form, whatever case was sent
    assert "URI: http://testserver" in lines
    assert "Chain ID: 1" in lines
    assert f"Nonce: {body['nonce']}" in lines
    assert "Issued At: 2026-11-23T10:00:00.000Z" in lines
    assert "Expiration Time: 2026-11-23T10:10:00.000Z" in lines
    assert body["expires_at"] == "2026-11-23T10:10:00Z"
    assert len(body["nonce"]) >= 16 and body["nonce"].isalnum()
    assert nonce_for(client, ann, account.address)["nonce"] != body["nonce"]


def test_the_message_uses_public_base_url_and_chain_id_when_configured(tmp_path: Any, clock: FakeClock) -> None:
    settings = make_settings(tmp_path, PUBLIC_BASE_URL="https://megilance.example", CHAIN_ID=8453)
    with TestClient(create_app(settings, clock), raise_server_exceptions=False) as other:
        ann, account = register(other, "client", "Ann"), new_account()
        message = nonce_for(other, ann, account.address)["message"]
        linked = send_link(other, ann, message, sign(message, account))

    assert message.startswith("megilance.example wants you to sign in")
    assert "URI: https://megilance.example" in message and "Chain ID: 8453" in message
    assert linked.status_code == 200, linked.text


@pytest.mark.parametrize("address", ["", "0x1234", "0x" + "g" * 40, "ab" * 21, "0x" + "ab" * 20 + " ", None, 5])
def test_a_malformed_address_is_422(client: TestClient, ann: User, address: object) -> None:
    body = assert_error(
        client.post("/api/auth/wallet/nonce", json={"address": address}, headers=ann.headers), 422, "validation_failed"
    )
    assert body["errors"][0]["loc"][:2] == ["body", "address"]


def test_wallet_endpoints_need_a_signed_in_user(client: TestClient) -> None:
    assert_error(client.post("/api/auth/wallet/nonce", json={"address": "0x" + "ab" * 20}), 401, "unauthenticated")
    assert_error(client.post("/api/auth/wallet", json={"message": "m", "signature": "s"}), 401, "unauthenticated")


# -- linking ---------------------------------------------------------------------------------


def test_a_signed_message_links_the_wallet_to_the_account(client: TestClient, ann: User, fred: User) -> None:
    account = new_account()
    before = me(client, ann)
    assert before.json()["wallet_address"] is None

    user = link(client, ann, account)

    assert user["id"] == ann.id and user["wallet_address"] == account.address
    after = me(client, ann)
    assert after.json()["wallet_address"] == account.address
    assert after.headers["etag"] != before.headers["etag"]
    assert client.get(f"/api/users/{ann.id}", headers=fred.headers).json()["wallet_address"] == account.address


@pytest.mark.parametrize("role", ["client", "freelancer"])
def test_any_role_may_link_a_wallet(client: TestClient, role: str) -> None:
    user = register(client, role, "Someone")

    assert link(client, user, new_account())["wallet_address"]


def test_a_nonce_links_at_most_once(client: TestClient, ann: User) -> None:
    account = new_account()
    message = nonce_for(client, ann, account.address)["message"]
    signature = sign(message, account)
    assert send_link(client, ann, message, signature).status_code == 200

    body = assert_error(send_link(client, ann, message, signature), 422, "invalid_nonce")

    assert "already used" in body["detail"]


def test_an_expired_nonce_is_refused_and_a_fresh_one_works(client: TestClient, clock: FakeClock, ann: User) -> None:
    account = new_account()
    message = nonce_for(client, ann, account.address)["message"]
    clock.advance(minutes=10)

    body = assert_error(send_link(client, ann, message, sign(message, account)), 422, "invalid_signature")

    assert "expired" in body["detail"]
    assert me(client, ann).json()["wallet_address"] is None
    assert link(client, ann, account)["wallet_address"] == account.address


def test_a_nonce_is_good_until_just_before_it_expires(client: TestClient, clock: FakeClock, ann: User) -> None:
    account = new_account()
    message = nonce_for(client, ann, account.address)["message"]
    clock.advance(minutes=9, seconds=59)

    assert send_link(client, ann, message, sign(message, account)).status_code == 200


def test_someone_elses_nonce_cannot_be_used(client: TestClient, ann: User, fred: User) -> None:
    """Fred controls the wallet but signs the message Ann was given: the nonce is Ann's, not his."""
    account = new_account()
    message = nonce_for(client, ann, account.address)["message"]

    body = assert_error(send_link(client, fred, message, sign(message, account)), 422, "invalid_nonce")

    assert "unknown" in body["detail"]
    assert me(client, fred).json()["wallet_address"] is None
    assert send_link(client, ann, message, sign(message, account)).status_code == 200  # still unspent for Ann


def test_an_unknown_nonce_is_refused(client: TestClient, ann: User) -> None:
    account = new_account()
    message = nonce_for(client, ann, account.address)["message"]
    forged = message.replace(message.split("Nonce: ")[1].split("\n")[0], "A" * 24)

    assert_error(send_link(client, ann, forged, sign(forged, account)), 422, "invalid_nonce")


def test_a_nonce_issued_for_one_address_cannot_link_another(client: TestClient, ann: User) -> None:
    asked, signer = new_account(), new_account()
    message = nonce_for(client, ann, asked.address)["message"]
    swapped = message.replace(asked.address, signer.address)

    body = assert_error(send_link(client, ann, swapped, sign(swapped, signer)), 422, "invalid_nonce")

    assert "another wallet address" in body["detail"]


def test_a_signature_by_another_key_is_refused(client: TestClient, ann: User) -> None:
    account, impostor = new_account(), new_account()
    message = nonce_for(client, ann, account.address)["message"]

    assert_error(send_link(client, ann, message, sign(message, impostor)), 422, "invalid_signature")
    assert me(client, ann).json()["wallet_address"] is None


def test_a_message_for_another_site_is_refused(client: TestClient, ann: User) -> None:
    account = new_account()
    message = nonce_for(client, ann, account.address)["message"]

    body = assert_error(
        send_link(client, ann, message, sign(message, account), host="evil.example"), 422, "invalid_signature"
    )

    assert "another site" in body["detail"]


@pytest.mark.parametrize(
    ("line", "edited"),
    [
        ("URI: http://testserver", "URI: https://evil.example"),
        ("URI: http://testserver", "URI: http://evil.example/api/auth/wallet"),
        ("Chain ID: 1", "Chain ID: 5"),
    ],
)
def test_a_message_edited_to_another_uri_or_chain_is_refused_even_when_signed_by_the_wallet(
    client: TestClient, ann: User, line: str, edited: str
) -> None:
    account = new_account()
    message = nonce_for(client, ann, account.address)["message"]
    assert line + "\n" in message
    forged = message.replace(line + "\n", edited + "\n")

    assert_error(send_link(client, ann, forged, sign(forged, account)), 422, "invalid_signature")

    assert me(client, ann).json()["wallet_address"] is None
    assert send_link(client, ann, message, sign(message, account)).status_code == 200  # the nonce was not spent


@pytest.mark.parametrize(
    ("message", "signature"),
    [
        ("hello", "0x" + "00" * 65),
        ("", "0x00"),
        ("Nonce: abcdefgh12345678", "0x" + "zz" * 65),
    ],
)
def test_garbage_is_refused_without_a_500(client: TestClient, ann: User, message: str, signature: str) -> None:
    response = send_link(client, ann, message, signature)

    assert response.status_code == 422, response.text
    assert response.json()["error_type"] in {"invalid_signature", "validation_failed"}


def test_a_bad_host_header_is_400(client: TestClient, ann: User) -> None:
    assert_error(ask_nonce(client, ann, new_account().address, host="a b/c"), 400, "bad_request")


# -- one user per address --------------------------------------------------------------------


def test_an_address_linked_to_another_user_cannot_get_a_nonce(client: TestClient, ann: User, fred: User) -> None:
    account = new_account()
    link(client, ann, account)

    assert_error(ask_nonce(client, fred, account.address.lower()), 409, "wallet_taken")


def test_of_two_users_racing_for_one_address_the_first_link_wins(client: TestClient, ann: User, fred: User) -> None:
    account = new_account()
    ann_message = nonce_for(client, ann, account.address)["message"]
    fred_message = nonce_for(client, fred, account.address)["message"]
    assert send_link(client, ann, ann_message, sign(ann_message, account)).status_code == 200

    assert_error(send_link(client, fred, fred_message, sign(fred_message, account)), 409, "wallet_taken")
    assert me(client, fred).json()["wallet_address"] is None
    assert me(client, ann).json()["wallet_address"] == account.address


def test_relinking_another_address_frees_the_old_one(client: TestClient, ann: User, fred: User) -> None:
    first, second = new_account(), new_account()
    link(client, ann, first)

    assert link(client, ann, second)["wallet_address"] == second.address
    assert link(client, fred, first)["wallet_address"] == first.address
    assert_error(ask_nonce(client, fred, second.address), 409, "wallet_taken")


def test_relinking_the_same_address_changes_nothing_but_spends_the_nonce(client: TestClient, ann: User) -> None:
    account = new_account()
    link(client, ann, account)
    before = me(client, ann)
    message = nonce_for(client, ann, account.address)["message"]
    signature = sign(message, account)

    again = send_link(client, ann, message, signature)

    assert again.status_code == 200 and again.json()["wallet_address"] == account.address
    assert me(client, ann).headers["etag"] == before.headers["etag"]
    assert_error(send_link(client, ann, message, signature), 422, "invalid_nonce")


def test_nonces_are_kept_write_side_and_expired_ones_are_forgotten(
    client: TestClient, settings: Settings, clock: FakeClock, ann: User
) -> None:
    import libsql

    account = new_account()
    nonce_for(client, ann, account.address)
    clock.advance(minutes=11)
    fresh = nonce_for(client, ann, account.address)["nonce"]

    conn = libsql.connect(str(settings.resolved_database_url()))
    try:
        rows = conn.execute("SELECT nonce, user_id, address, expires_at, used_at FROM wallet_nonces").fetchall()
    finally:
        conn.close()
    assert rows == [(fresh, ann.id, account.address, _ms(clock.now() + timedelta(minutes=10)), None)]


def test_past_the_open_nonce_limit_the_oldest_are_dropped_and_the_rest_still_link(
    client: TestClient, clock: FakeClock, ann: User
) -> None:
    account = new_account()
    messages = []
    for _ in range(MAX_OPEN_NONCES + 2):
        messages.append(nonce_for(client, ann, account.address)["message"])
        clock.advance(seconds=1)

    for dropped in messages[:2]:
        refused = send_link(client, ann, dropped, sign(dropped, account))
        assert_error(refused, 422, "invalid_nonce")
        assert refused.json()["detail"] == "The message nonce is unknown; request a new message"
    oldest_kept = messages[2]
    assert send_link(client, ann, oldest_kept, sign(oldest_kept, account)).status_code == 200


def _ms(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")
