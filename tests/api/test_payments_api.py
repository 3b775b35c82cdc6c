"""Payments over HTTP, settled against a real in-process EVM (eth-tester + py-evm) running TestUSDC.

Payer and payee link real eth-account wallets through the Sign-In-with-Ethereum flow; the payer transfers
on chain; confirmation verifies the transfer. Every verification failure is provoked for real.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from starlette.applications import Starlette
from starlette.testclient import TestClient
from web3 import Web3
from web3.contract import Contract
from web3.types import Wei

from api.app import create_app
from core.chain import UsdcVerifier
from core.clock import FakeClock
from core.settings import Settings
from tests import chainkit as ck
from tests.conftest import make_settings
from tests.support.accounts import User, bearer, make_admin, register, signup_async
from tests.support.errors import assert_error
from tests.support.market import PROJECT, created
from tests.support.wallet import link

# Every test here that opens the primary runs twice: on an embedded file and on a real libSQL server.
DATABASES = ("local", "remote")

Json = dict[str, Any]
PAYMENT_KEYS = {
    "id",
    "contract_id",
    "from_user_id",
    "to_user_id",
    "amount",
    "currency",
    "status",
    "transaction_hash",
    "description",
    "created_at",
    "updated_at",
}


# -- the chain -------------------------------------------------------------------------------


@dataclass
class Chain:
    w3: Web3
    token: Contract
    lookalike: Contract  # another ERC-20 with the same code at another address: the wrong token
    payer: LocalAccount
    payee: LocalAccount
    stranger: LocalAccount


@pytest.fixture(scope="module")
def deployed() -> Chain:
    w3 = ck.make_chain()
    token = ck.deploy_token(w3, w3.eth.accounts[0])
    lookalike = ck.deploy_token(w3, w3.eth.accounts[0])
    payer, payee, stranger = ck.funded_account(w3), ck.funded_account(w3), ck.funded_account(w3)
    for coin in (token, lookalike):
        ck.mint(coin, payer.address, ck.units("10000"))
    ck.mint(token, stranger.address, ck.units("10000"))
    return Chain(w3, token, lookalike, payer, payee, stranger)


@pytest.fixture
def chain(deployed: Chain) -> Iterator[Chain]:
    """The deployed chain, reverted to its snapshot after each test."""
    tester = ck.tester(deployed.w3)
    snapshot = tester.take_snapshot()
    yield deployed
    tester.revert_to_snapshot(snapshot)


def use_chain(client: TestClient, chain: Chain) -> None:
    """Point the app's verifier at the in-process chain, with the app's MIN_CONFIRMATIONS."""
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    runtime.verifier = UsdcVerifier(chain.w3, chain.token.address, runtime.settings.min_confirmations)


def transfer(chain: Chain, amount: str, *, token: Contract | None = None, sender: str = "", to: str = "") -> str:
    return ck.send_transfer(
        token or chain.token, sender or chain.payer.address, to or chain.payee.address, ck.units(amount)
    )


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- the marketplace -------------------------------------------------------------------------


@dataclass
class World:
    client: TestClient
    ann: User  # client, pays
    fred: User  # freelancer, is paid
    contract: Json  # Ann hired Fred for 1250 USDC


@pytest.fixture
def world(client: TestClient, chain: Chain) -> World:
    use_chain(client, chain)
    return build_world(client, chain)


def build_world(client: TestClient, chain: Chain) -> World:
    ann, fred = register(client, "client", "Ann Client"), register(client, "freelancer", "Fred Freelancer")
    link(client, ann, chain.payer)
    link(client, fred, chain.payee)
    return World(client, ann, fred, created(client, ann, fred))


def create(client: TestClient, user: User, **body: Any) -> Any:
    return client.post("/api/payments", json=body, headers=user.headers)


def pay(w: World, amount: str = "100", **fields: Any) -> Json:
    response = create(w.client, w.ann, contract_id=w.contract["id"], amount=amount, **fields)
    assert response.status_code == 201, response.text
    body: Json = response.json()
    return body


def confirm(client: TestClient, user: User, payment: Json, tx_hash: str) -> Any:
    return client.post(
        f"/api/payments/{payment['id']}/confirm", json={"transaction_hash": tx_hash}, headers=user.headers
    )


def refused(w: World, payment: Json, tx_hash: str, status: int, code: str) -> Json:
    """The confirmation is refused with this code, and the payment is still pending with nothing recorded."""
    body = assert_error(confirm(w.client, w.ann, payment, tx_hash), status, code)
    assert "Traceback" not in body["detail"]
    assert get(w.client, w.ann, payment).json() == payment
    return body


def get(client: TestClient, user: User, payment: Json) -> Any:
    return client.get(f"/api/payments/{payment['id']}", headers=user.headers)


def totals(w: World, user: User | None = None) -> Json:
    response = w.client.get(f"/api/payments/contract/{w.contract['id']}/total", headers=(user or w.ann).headers)
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


def contract_now(w: World) -> Json:
    body: Json = w.client.get(f"/api/contracts/{w.contract['id']}", headers=w.ann.headers).json()
    return body


# -- create ----------------------------------------------------------------------------------


def test_the_client_creates_a_pending_payment_to_the_contracts_freelancer(world: World) -> None:
    response = create(
        world.client, world.ann, contract_id=world.contract["id"], amount=12.5, description="Design milestone"
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == PAYMENT_KEYS
    assert (body["contract_id"], body["from_user_id"], body["to_user_id"]) == (
        world.contract["id"],
        world.ann.id,
        world.fred.id,
    )
    assert (body["amount"], body["currency"], body["status"]) == ("12.50", "USDC", "pending")
    assert (body["transaction_hash"], body["description"]) == (None, "Design milestone")
    assert body["created_at"] == body["updated_at"] == "2026-11-23T10:00:00Z"
    assert response.headers["etag"] == '"1"' and response.headers["x-consistency-token"].isdigit()
    assert get(world.client, world.fred, body).json() == body


def test_a_payment_straight_to_a_user_needs_no_contract(world: World) -> None:
    response = create(world.client, world.ann, to_user_id=world.fred.id, amount="0.000001")

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["contract_id"], body["to_user_id"], body["amount"], body["currency"]) == (
        None,
        world.fred.id,
        "0.000001",
        "USDC",
    )
    usd = create(world.client, world.ann, to_user_id=world.fred.id, amount="19.99", currency="USD").json()
    assert (usd["amount"], usd["currency"]) == ("19.99", "USD")


def test_a_payment_on_a_usd_contract_is_in_usd_and_keeps_to_cents(world: World) -> None:
    usd = created(world.client, world.ann, world.fred, amount="100", currency="USD")

    ok = create(world.client, world.ann, contract_id=usd["id"], amount="99.99")
    cents = create(world.client, world.ann, contract_id=usd["id"], amount="0.001")
    other = create(world.client, world.ann, contract_id=usd["id"], amount="1", currency="USDC")

    assert ok.status_code == 201 and ok.json()["currency"] == "USD"
    assert assert_error(cents, 422, "validation_failed")["errors"][0]["loc"] == ["body", "amount"]
    assert assert_error(other, 422, "validation_failed")["errors"][0]["loc"] == ["body", "currency"]


def test_nobody_pays_themselves(world: World) -> None:
    body = assert_error(create(world.client, world.ann, to_user_id=world.ann.id, amount="1"), 422, "validation_failed")

    assert body["errors"][0]["loc"] == ["body", "to_user_id"]


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"amount": "0"}, "amount"),
        ({"amount": "-1"}, "amount"),
        ({"amount": "1.0000001"}, "amount"),
        ({"amount": True}, "amount"),
        ({"amount": "NaN"}, "amount"),
        ({"currency": "EUR"}, "currency"),
        ({"tip": "1"}, "tip"),
        ({"description": "x" * 2001}, "description"),
    ],
)
def test_bodies_that_break_shape_rules_are_422(world: World, fields: Json, where: str) -> None:
    body = {"contract_id": world.contract["id"], "amount": "1", **fields}

    error = assert_error(create(world.client, world.ann, **body), 422, "validation_failed")

    assert any(where in [str(part) for part in e["loc"]] for e in error["errors"]), error


def test_a_payee_must_be_named(world: World) -> None:
    assert_error(create(world.client, world.ann, amount="1"), 422, "validation_failed")


def test_on_a_contract_the_payee_is_its_freelancer(world: World) -> None:
    gina = register(world.client, "freelancer", "Gina")

    body = assert_error(
        create(world.client, world.ann, contract_id=world.contract["id"], to_user_id=gina.id, amount="1"),
        422,
        "validation_failed",
    )
    same = create(world.client, world.ann, contract_id=world.contract["id"], to_user_id=world.fred.id, amount="1")

    assert body["errors"][0]["loc"] == ["body", "to_user_id"]
    assert same.status_code == 201 and same.json()["to_user_id"] == world.fred.id


def test_only_clients_create_payments(world: World, settings: Settings, clock: FakeClock) -> None:
    admin = User(make_admin(world.client))
    for user in (world.fred, admin):
        assert_error(create(world.client, user, to_user_id=world.ann.id, amount="1"), 403, "forbidden")


def test_a_client_cannot_pay_on_someone_elses_contract(world: World) -> None:
    bob = register(world.client, "client", "Bob")

    assert_error(create(world.client, bob, contract_id=world.contract["id"], amount="1"), 404, "not_found")
    assert_error(create(world.client, bob, contract_id="nope", amount="1"), 404, "not_found")
    assert_error(create(world.client, bob, to_user_id="nobody", amount="1"), 404, "not_found")


def test_pending_and_completed_never_exceed_the_contract_amount(world: World, chain: Chain) -> None:
    first = pay(world, "1000")
    assert confirm(world.client, world.ann, first, transfer(chain, "1000")).status_code == 200
    pay(world, "200")

    body = assert_error(
        create(world.client, world.ann, contract_id=world.contract["id"], amount="50.000001"),
        409,
        "exceeds_contract_balance",
    )

    assert "50.00 USDC" in body["detail"]
    assert pay(world, "50")["amount"] == "50.00"  # exactly the amount is fine
    assert_error(
        create(world.client, world.ann, contract_id=world.contract["id"], amount="0.000001"),
        409,
        "exceeds_contract_balance",
    )
    assert totals(world) == {
        "total_paid": "1000.00",
        "total_pending": "250.00",
        "total_refunded": "0.00",
        "currency": "USDC",
    }


def test_a_cancelled_contract_takes_no_payments(world: World) -> None:
    assert world.client.delete(f"/api/contracts/{world.contract['id']}", headers=world.ann.headers).status_code == 204

    assert_error(create(world.client, world.ann, contract_id=world.contract["id"], amount="1"), 409, "invalid_state")


@pytest.mark.parametrize(("status", "by"), [("completed", "ann"), ("disputed", "fred")])
def test_a_completed_or_disputed_contract_still_takes_payments_within_its_amount(
    world: World, chain: Chain, status: str, by: str
) -> None:
    """The final payment often follows completion, and a dispute (the API has no way out) is settled by paying."""
    moved = world.client.put(
        f"/api/contracts/{world.contract['id']}", json={"status": status}, headers=getattr(world, by).headers
    )
    assert (moved.status_code, moved.json()["status"]) == (200, status), moved.text

    payment = pay(world, "1000")
    confirmed = confirm(world.client, world.ann, payment, transfer(chain, "1000"))
    assert (confirmed.status_code, confirmed.json()["status"]) == (200, "completed"), confirmed.text
    over = create(world.client, world.ann, contract_id=world.contract["id"], amount="250.01")
    assert_error(over, 409, "exceeds_contract_balance")
    assert totals(world)["total_paid"] == "1000.00"


def test_a_contract_with_pending_payments_cannot_be_cancelled_until_they_are(world: World) -> None:
    payment = pay(world, "10")
    url = f"/api/contracts/{world.contract['id']}"

    assert_error(world.client.delete(url, headers=world.ann.headers), 409, "invalid_state")
    cancelled = world.client.post(f"/api/payments/{payment['id']}/cancel", headers=world.ann.headers)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "failed"
    assert world.client.delete(url, headers=world.ann.headers).status_code == 204


def test_reservations_move_the_contracts_etag_but_not_amount_paid(world: World) -> None:
    pay(world, "10")

    response = world.client.get(f"/api/contracts/{world.contract['id']}", headers=world.ann.headers)

    assert response.headers["etag"] == '"2"' and response.json()["amount_paid"] == "0.00"
    stale = world.client.put(
        f"/api/contracts/{world.contract['id']}", json={"terms": "x"}, headers={**world.ann.headers, "If-Match": '"1"'}
    )
    assert_error(stale, 412, "precondition_failed")


def test_idempotency_key_replays_a_create_without_reserving_twice(world: World) -> None:
    headers = {**world.ann.headers, "Idempotency-Key": "pay-1"}
    body = {"contract_id": world.contract["id"], "amount": "1000"}

    first = world.client.post("/api/payments", json=body, headers=headers)
    again = world.client.post("/api/payments", json=body, headers=headers)

    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert totals(world)["total_pending"] == "1000.00"


# -- read ------------------------------------------------------------------------------------


def test_payer_payee_and_admins_see_a_payment_and_others_get_404(
    world: World, settings: Settings, clock: FakeClock
) -> None:
    payment = pay(world)
    admin = User(make_admin(world.client))

    for viewer in (world.ann, world.fred, admin):
        response = get(world.client, viewer, payment)
        assert response.status_code == 200 and response.json() == payment
        assert response.headers["etag"] == '"1"'
    for stranger in (register(world.client, "client", "Carl"), register(world.client, "freelancer", "Gina")):
        assert_error(get(world.client, stranger, payment), 404, "not_found")
        assert_error(
            world.client.get(f"/api/payments/contract/{world.contract['id']}/total", headers=stranger.headers),
            404,
            "not_found",
        )
    assert_error(world.client.get("/api/payments/nope", headers=admin.headers), 404, "not_found")


def test_lists_show_each_caller_their_own_newest_first_with_filters(
    world: World, chain: Chain, settings: Settings, clock: FakeClock
) -> None:
    gina = register(world.client, "freelancer", "Gina")
    bob = register(world.client, "client", "Bob")
    a = pay(world, "10")
    b = create(world.client, world.ann, to_user_id=gina.id, amount="5").json()
    c = create(world.client, bob, to_user_id=world.fred.id, amount="7").json()
    confirm(world.client, world.ann, a, transfer(chain, "10"))
    admin = User(make_admin(world.client))

    def ids(user: User, query: str = "") -> list[str]:
        response = world.client.get(f"/api/payments{query}", headers=user.headers)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert ids(world.ann) == [b["id"], a["id"]]
    assert ids(world.fred) == [c["id"], a["id"]]
    assert ids(gina) == [b["id"]]
    assert ids(bob) == [c["id"]]
    assert ids(admin) == [c["id"], b["id"], a["id"]]
    assert ids(world.ann, "?status=completed") == [a["id"]]
    assert ids(world.ann, "?status=pending") == [b["id"]]
    assert ids(world.fred, f"?contract_id={world.contract['id']}") == [a["id"]]
    assert ids(admin, "?status=pending") == [c["id"], b["id"]]
    assert ids(gina, f"?contract_id={world.contract['id']}") == []
    page = world.client.get("/api/payments?limit=1", headers=admin.headers).json()
    assert [i["id"] for i in page["items"]] == [c["id"]] and page["next_cursor"]
    rest = world.client.get(f"/api/payments?limit=5&cursor={page['next_cursor']}", headers=admin.headers).json()
    assert [i["id"] for i in rest["items"]] == [b["id"], a["id"]] and rest["next_cursor"] is None
    assert_error(world.client.get("/api/payments?status=paid", headers=admin.headers), 422, "validation_failed")


def test_totals_are_for_parties_and_admins_in_the_contracts_currency(
    world: World, settings: Settings, clock: FakeClock
) -> None:
    admin = User(make_admin(world.client))
    empty = {"total_paid": "0.00", "total_pending": "0.00", "total_refunded": "0.00", "currency": "USDC"}

    assert totals(world) == totals(world, world.fred) == totals(world, admin) == empty
    assert_error(world.client.get("/api/payments/contract/nope/total", headers=admin.headers), 404, "not_found")


# -- confirm: success ------------------------------------------------------------------------


def test_a_matching_transfer_completes_the_payment_and_counts_as_paid(world: World, chain: Chain) -> None:
    payment = pay(world, "12.345678")
    tx_hash = transfer(chain, "12.345678")

    response = confirm(world.client, world.ann, payment, tx_hash.upper().replace("0X", "0x"))

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["transaction_hash"]) == ("completed", tx_hash.lower())
    assert response.headers["etag"] == '"2"'
    assert get(world.client, world.fred, payment).json() == body
    assert contract_now(world)["amount_paid"] == "12.345678"
    assert totals(world) == {
        "total_paid": "12.345678",
        "total_pending": "0.00",
        "total_refunded": "0.00",
        "currency": "USDC",
    }


def test_a_usd_payment_settles_in_usdc_at_par(world: World, chain: Chain) -> None:
    payment = create(world.client, world.ann, to_user_id=world.fred.id, amount="19.99", currency="USD").json()

    response = confirm(world.client, world.ann, payment, transfer(chain, "19.99"))

    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["amount"]) == ("completed", "19.99")


# -- confirm: each verification failure, for real --------------------------------------------


def test_an_unknown_hash_is_tx_not_found(world: World) -> None:
    refused(world, pay(world), "0x" + "ab" * 32, 422, "tx_not_found")


def test_a_reverted_transfer_is_tx_failed(world: World, chain: Chain) -> None:
    payment = pay(world, "1250")
    tx_hash = ck.send_transfer(chain.token, chain.payee.address, chain.payer.address, ck.units("1250"))  # payee: 0

    refused(world, payment, tx_hash, 422, "tx_failed")


def test_a_transfer_of_another_token_is_wrong_token(world: World, chain: Chain) -> None:
    refused(world, pay(world), transfer(chain, "100", token=chain.lookalike), 422, "wrong_token")


def test_a_plain_ether_transfer_is_wrong_token(world: World, chain: Chain) -> None:
    tx = chain.w3.eth.send_transaction({"from": chain.payer.address, "to": chain.payee.address, "value": Wei(1)})

    refused(world, pay(world), tx.to_0x_hex(), 422, "wrong_token")


def test_a_transfer_from_another_wallet_is_wrong_sender(world: World, chain: Chain) -> None:
    refused(world, pay(world), transfer(chain, "100", sender=chain.stranger.address), 422, "wrong_sender")


def test_a_transfer_to_another_wallet_is_wrong_recipient(world: World, chain: Chain) -> None:
    refused(world, pay(world), transfer(chain, "100", to=chain.stranger.address), 422, "wrong_recipient")


@pytest.mark.parametrize(("sent", "owed"), [("99.999999", "100"), ("100.000001", "100"), ("0.0001", "100")])
def test_a_different_amount_is_amount_mismatch(world: World, chain: Chain, sent: str, owed: str) -> None:
    refused(world, pay(world, owed), transfer(chain, sent), 422, "amount_mismatch")


def test_too_few_confirmations_then_enough_once_blocks_are_mined(
    tmp_path: Path, clock: FakeClock, chain: Chain
) -> None:
    settings = make_settings(tmp_path, MIN_CONFIRMATIONS=3)
    with TestClient(create_app(settings, clock), raise_server_exceptions=False) as client:
        use_chain(client, chain)
        w = build_world(client, chain)
        payment = pay(w, "100")
        tx_hash = transfer(chain, "100")

        body = refused(w, payment, tx_hash, 422, "insufficient_confirmations")
        assert "1 of the 3" in body["detail"]
        ck.mine(chain.w3, 1)
        refused(w, payment, tx_hash, 422, "insufficient_confirmations")
        ck.mine(chain.w3, 1)
        response = confirm(client, w.ann, payment, tx_hash)

        assert response.status_code == 200, response.text
        assert response.json()["status"] == "completed"


def test_a_hash_settles_at_most_one_payment(world: World, chain: Chain) -> None:
    first, second = pay(world, "100"), pay(world, "100")
    tx_hash = transfer(chain, "100")
    assert confirm(world.client, world.ann, first, tx_hash).status_code == 200

    refused(world, second, tx_hash, 409, "tx_already_used")
    refused(world, second, tx_hash.upper().replace("0X", "0x"), 409, "tx_already_used")
    direct = create(world.client, world.ann, to_user_id=world.fred.id, amount="100").json()
    refused(world, direct, tx_hash, 409, "tx_already_used")


def test_an_unreachable_node_is_503_and_changes_nothing(
    tmp_path: Path, clock: FakeClock, chain: Chain, closed_port: int
) -> None:
    settings = make_settings(
        tmp_path, CHAIN_RPC_URL=f"http://127.0.0.1:{closed_port}", USDC_CONTRACT_ADDRESS=chain.token.address
    )
    with TestClient(create_app(settings, clock), raise_server_exceptions=False) as client:
        w = build_world(client, chain)
        payment = pay(w, "100")
        tx_hash = transfer(chain, "100")

        body = refused(w, payment, tx_hash, 503, "chain_unavailable")

        assert str(closed_port) not in body["detail"]
        assert totals(w)["total_pending"] == "100.00"
        use_chain(client, chain)  # the node is back: the same hash still settles the payment
        assert confirm(client, w.ann, payment, tx_hash).json()["status"] == "completed"


def test_without_a_configured_chain_confirmation_is_503(client: TestClient, chain: Chain) -> None:
    w = build_world(client, chain)

    refused(w, pay(w), transfer(chain, "100"), 503, "chain_unavailable")


def test_both_wallets_must_be_linked(client: TestClient, chain: Chain) -> None:
    use_chain(client, chain)
    ann, fred = register(client, "client", "Ann"), register(client, "freelancer", "Fred")
    w = World(client, ann, fred, created(client, ann, fred))
    payment = pay(w)
    tx_hash = transfer(chain, "100")

    assert "payer" in refused(w, payment, tx_hash, 422, "wallet_not_linked")["detail"]
    link(client, ann, chain.payer)
    assert "payee" in refused(w, payment, tx_hash, 422, "wallet_not_linked")["detail"]
    link(client, fred, chain.payee)
    assert confirm(client, ann, payment, tx_hash).status_code == 200


def test_a_transfer_from_the_payers_old_wallet_no_longer_counts(world: World, chain: Chain) -> None:
    payment = pay(world)
    tx_hash = transfer(chain, "100")
    link(world.client, world.ann, chain.stranger)  # Ann moved to another wallet before confirming

    refused(world, payment, tx_hash, 422, "wrong_sender")


def test_only_the_payer_confirms(world: World, chain: Chain, settings: Settings, clock: FakeClock) -> None:
    payment = pay(world)
    tx_hash = transfer(chain, "100")

    assert_error(confirm(world.client, world.fred, payment, tx_hash), 403, "forbidden")
    assert_error(confirm(world.client, User(make_admin(world.client)), payment, tx_hash), 403, "forbidden")
    assert_error(confirm(world.client, register(world.client, "client", "Carl"), payment, tx_hash), 404, "not_found")
    assert get(world.client, world.ann, payment).json()["status"] == "pending"


@pytest.mark.parametrize("tx_hash", ["", "0x1234", "ab" * 32, "0x" + "g" * 64, "0x" + "a" * 66])
def test_a_malformed_hash_is_422_before_any_chain_call(world: World, tx_hash: str) -> None:
    refused(world, pay(world), tx_hash, 422, "validation_failed")


def test_a_completed_payment_cannot_be_confirmed_again(world: World, chain: Chain) -> None:
    payment = pay(world)
    tx_hash = transfer(chain, "100")
    assert confirm(world.client, world.ann, payment, tx_hash).status_code == 200

    assert_error(confirm(world.client, world.ann, payment, tx_hash), 409, "invalid_state")
    assert_error(confirm(world.client, world.ann, payment, transfer(chain, "100")), 409, "invalid_state")


# -- refund and cancel -----------------------------------------------------------------------


def test_an_admin_refunds_a_completed_payment(world: World, chain: Chain, settings: Settings, clock: FakeClock) -> None:
    admin = User(make_admin(world.client))
    payment = pay(world, "1250")
    assert_error(
        world.client.post(f"/api/payments/{payment['id']}/refund", headers=admin.headers), 409, "invalid_state"
    )
    tx_hash = transfer(chain, "1250")
    confirm(world.client, world.ann, payment, tx_hash)
    assert_error(
        create(world.client, world.ann, contract_id=world.contract["id"], amount="1"), 409, "exceeds_contract_balance"
    )
    for user in (world.ann, world.fred):
        assert_error(world.client.post(f"/api/payments/{payment['id']}/refund", headers=user.headers), 403, "forbidden")

    response = world.client.post(f"/api/payments/{payment['id']}/refund", headers=admin.headers)

    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["transaction_hash"]) == ("refunded", tx_hash)
    assert contract_now(world)["amount_paid"] == "0.00"
    assert totals(world) == {
        "total_paid": "0.00",
        "total_pending": "0.00",
        "total_refunded": "1250.00",
        "currency": "USDC",
    }
    assert_error(
        world.client.post(f"/api/payments/{payment['id']}/refund", headers=admin.headers), 409, "invalid_state"
    )
    again = pay(world, "1250")  # the balance is free again, but the refunded hash settles nothing else
    refused(world, again, tx_hash, 409, "tx_already_used")


def test_the_payer_cancels_a_pending_payment_and_frees_the_balance(world: World, chain: Chain) -> None:
    payment = pay(world, "1250")
    url = f"/api/payments/{payment['id']}/cancel"
    assert_error(world.client.post(url, headers=world.fred.headers), 403, "forbidden")
    assert_error(world.client.post(url, headers=register(world.client, "client", "C").headers), 404, "not_found")

    response = world.client.post(url, headers=world.ann.headers)

    assert response.status_code == 200 and response.json()["status"] == "failed"
    assert totals(world)["total_pending"] == "0.00"
    assert_error(world.client.post(url, headers=world.ann.headers), 409, "invalid_state")
    assert_error(confirm(world.client, world.ann, payment, transfer(chain, "1250")), 409, "invalid_state")
    assert pay(world, "1250")["status"] == "pending"


def test_a_completed_payment_cannot_be_cancelled(world: World, chain: Chain) -> None:
    payment = pay(world)
    confirm(world.client, world.ann, payment, transfer(chain, "100"))

    assert_error(
        world.client.post(f"/api/payments/{payment['id']}/cancel", headers=world.ann.headers), 409, "invalid_state"
    )


# -- concurrency -----------------------------------------------------------------------------


async def race_for_the_balance(
    app: Starlette, chain: Chain, contenders: int, amount: str
) -> tuple[Json, list[int], Json]:
    """Hire, then send `contenders` payment creations against one contract at once."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            ann = await signup_async(http, "client", email="client@example.com", name="client")
            fred = await signup_async(http, "freelancer", email="freelancer@example.com", name="freelancer")
            ann_h, fred_h = bearer(ann["access_token"]), bearer(fred["access_token"])
            project_id = (await http.post("/api/projects", json=PROJECT, headers=ann_h)).json()["id"]
            proposal = {
                "project_id": project_id,
                "cover_letter": "I have built many landing pages like this one. " * 3,
                "estimated_hours": 20,
                "hourly_rate": "40",
                "availability": "immediate",
            }
            proposal_id = (await http.post("/api/proposals", json=proposal, headers=fred_h)).json()["id"]
            assert (await http.post(f"/api/proposals/{proposal_id}/accept", headers=ann_h)).status_code == 200
            contract = await http.post(
                "/api/contracts",
                json={"project_id": project_id, "freelancer_id": fred["user"]["id"], "amount": "1000"},
                headers=ann_h,
            )
            contract_id = contract.json()["id"]
            responses = await asyncio.gather(
                *(
                    http.post("/api/payments", json={"contract_id": contract_id, "amount": amount}, headers=ann_h)
                    for _ in range(contenders)
                )
            )
            codes = [r.json().get("error_type", "created") for r in responses]
            assert set(codes) <= {"created", "exceeds_contract_balance"}, codes
            total = (await http.get(f"/api/payments/contract/{contract_id}/total", headers=ann_h)).json()
            listed = (await http.get(f"/api/payments?contract_id={contract_id}&limit=100", headers=fred_h)).json()
    return total, [r.status_code for r in responses], listed


def test_concurrent_creations_never_exceed_the_contract_amount(
    settings: Settings, clock: FakeClock, chain: Chain
) -> None:
    total, statuses, listed = asyncio.run(race_for_the_balance(create_app(settings, clock), chain, 40, "75"))

    assert statuses.count(201) == 13  # 13 x 75 = 975 <= 1000 < 14 x 75
    assert statuses.count(409) == 27
    assert total["total_pending"] == "975.00"
    assert len(listed["items"]) == 13
