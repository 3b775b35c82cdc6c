"""UsdcVerifier against a real in-process EVM (eth-tester + py-evm) running the compiled TestUSDC."""

from __future__ import annotations

import json
import secrets
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from web3 import Web3
from web3.contract import Contract
from web3.types import Wei

from core.chain import TransferProof, UsdcVerifier
from core.errors import PaymentVerificationFailed, ServiceUnavailable, ValidationFailed
from tests import chainkit as ck

TOKEN = "0x" + "11" * 20
SENDER = "0x" + "22" * 20
RECIPIENT = "0x" + "33" * 20
HASH = "0x" + "ab" * 32


@dataclass
class Chain:
    w3: Web3
    token: Contract
    payer: LocalAccount
    payee: LocalAccount
    stranger: LocalAccount

    def verifier(self, min_confirmations: int = 1) -> UsdcVerifier:
        return UsdcVerifier(self.w3, self.token.address, min_confirmations)


@pytest.fixture(scope="module")
def deployed() -> Chain:
    w3 = ck.make_chain()
    token = ck.deploy_token(w3, w3.eth.accounts[0])
    payer, payee, stranger = ck.funded_account(w3), ck.funded_account(w3), ck.funded_account(w3)
    ck.mint(token, payer.address, ck.units("100"))
    return Chain(w3, token, payer, payee, stranger)


@pytest.fixture
def chain(deployed: Chain) -> Iterator[Chain]:
    """The deployed chain, reverted to its snapshot after each test (much faster than a new chain)."""
    tester = ck.tester(deployed.w3)
    snapshot = tester.take_snapshot()
    yield deployed
    tester.revert_to_snapshot(snapshot)


def pay(chain: Chain, amount: str, *, token: Contract | None = None, to: str | None = None) -> str:
    token = token or chain.token
    return ck.send_transfer(token, chain.payer.address, to or chain.payee.address, ck.units(amount))


def refused(chain: Chain, tx_hash: str, amount: str = "12.5", *, min_confirmations: int = 1) -> str:
    """Verify a transfer that must be refused; returns the error code."""
    with pytest.raises(PaymentVerificationFailed) as caught:
        chain.verifier(min_confirmations).verify_transfer(
            tx_hash, sender=chain.payer.address, recipient=chain.payee.address, amount=Decimal(amount)
        )
    assert caught.value.detail and "Traceback" not in caught.value.detail
    return caught.value.code


def test_a_matching_transfer_is_verified_with_its_proof(chain: Chain) -> None:
    tx_hash = pay(chain, "12.5")

    proof = chain.verifier().verify_transfer(
        tx_hash, sender=chain.payer.address, recipient=chain.payee.address, amount=Decimal("12.5")
    )

    receipt = chain.w3.eth.get_transaction_receipt(HexStr(tx_hash))
    assert proof == TransferProof(
        tx_hash=tx_hash.lower(),
        sender=chain.payer.address,
        recipient=chain.payee.address,
        amount=Decimal("12.5"),
        block_number=receipt["blockNumber"],
        confirmations=1,
    )


def test_hash_and_addresses_are_matched_case_insensitively(chain: Chain) -> None:
    tx_hash = pay(chain, "0.000001")

    proof = chain.verifier().verify_transfer(
        "0x" + tx_hash[2:].upper(),
        sender=chain.payer.address.lower(),
        recipient=chain.payee.address.upper().replace("0X", "0x"),
        amount=Decimal("0.0000010"),
    )

    assert proof.tx_hash == tx_hash.lower()
    assert (proof.sender, proof.recipient) == (chain.payer.address, chain.payee.address)


def test_decimals_are_read_from_the_token(chain: Chain) -> None:
    assert chain.verifier().decimals() == 6


def test_an_unknown_transaction_is_not_found(chain: Chain) -> None:
    assert refused(chain, "0x" + secrets.token_hex(32)) == "tx_not_found"


def test_a_reverted_transfer_failed(chain: Chain) -> None:
    tx_hash = pay(chain, "1000")  # the payer holds 100

    assert chain.w3.eth.get_transaction_receipt(HexStr(tx_hash))["status"] == 0
    assert refused(chain, tx_hash, "1000") == "tx_failed"


def test_a_transfer_of_another_token_is_the_wrong_token(chain: Chain) -> None:
    lookalike = ck.deploy_token(chain.w3, chain.w3.eth.accounts[0])
    ck.mint(lookalike, chain.payer.address, ck.units("100"))

    assert refused(chain, pay(chain, "12.5", token=lookalike)) == "wrong_token"


def test_a_transaction_without_token_logs_is_the_wrong_token(chain: Chain) -> None:
    tx = chain.w3.eth.send_transaction({"from": chain.payer.address, "to": chain.payee.address, "value": Wei(1)})

    assert refused(chain, tx.to_0x_hex()) == "wrong_token"


def test_a_transfer_from_another_wallet_is_the_wrong_sender(chain: Chain) -> None:
    ck.mint(chain.token, chain.stranger.address, ck.units("100"))
    tx_hash = ck.send_transfer(chain.token, chain.stranger.address, chain.payee.address, ck.units("12.5"))

    assert refused(chain, tx_hash) == "wrong_sender"


def test_a_mint_to_the_payee_is_the_wrong_sender(chain: Chain) -> None:
    assert refused(chain, ck.mint(chain.token, chain.payee.address, ck.units("12.5"))) == "wrong_sender"


def test_a_transfer_to_another_wallet_is_the_wrong_recipient(chain: Chain) -> None:
    assert refused(chain, pay(chain, "12.5", to=chain.stranger.address)) == "wrong_recipient"


@pytest.mark.parametrize(
    ("sent", "claimed"),
    [
        ("12.4", "12.5"),  # short
        ("12.6", "12.5"),  # over: the amount must be exact
        ("12.5", "12.5000001"),  # more decimals than the token has
        ("12.5", "0.0000125"),  # same digits, wrong scale
    ],
)
def test_a_different_amount_is_an_amount_mismatch(chain: Chain, sent: str, claimed: str) -> None:
    assert refused(chain, pay(chain, sent), claimed) == "amount_mismatch"


def test_confirmations_are_required_then_met_as_blocks_are_mined(chain: Chain) -> None:
    tx_hash = pay(chain, "12.5")
    assert refused(chain, tx_hash, min_confirmations=3) == "insufficient_confirmations"
    ck.mine(chain.w3, 1)
    assert refused(chain, tx_hash, min_confirmations=3) == "insufficient_confirmations"
    ck.mine(chain.w3, 1)

    proof = chain.verifier(3).verify_transfer(
        tx_hash, sender=chain.payer.address, recipient=chain.payee.address, amount=Decimal("12.5")
    )

    assert proof.confirmations == 3


@pytest.mark.parametrize(
    ("tx_hash", "sender", "amount"),
    [
        ("", SENDER, "1"),
        ("0x", SENDER, "1"),
        ("0x1234", SENDER, "1"),
        ("12" * 32, SENDER, "1"),  # no 0x
        ("0x" + "g" * 64, SENDER, "1"),
        ("0x" + "a" * 66, SENDER, "1"),
        (" 0x" + "a" * 64, SENDER, "1"),
        (HASH, "0x1234", "1"),
        (HASH, "alice.eth", "1"),
        (HASH, SENDER, "0"),
        (HASH, SENDER, "-1"),
        (HASH, SENDER, "NaN"),
        (HASH, SENDER, "Infinity"),
    ],
)
def test_malformed_input_is_a_validation_error_before_any_rpc(
    closed_port: int, tx_hash: str, sender: str, amount: str
) -> None:
    verifier = UsdcVerifier.from_rpc(f"http://127.0.0.1:{closed_port}", TOKEN, 1)  # any RPC would fail

    with pytest.raises(ValidationFailed) as caught:
        verifier.verify_transfer(tx_hash, sender=sender, recipient=RECIPIENT, amount=Decimal(amount))

    assert caught.value.code == "validation_failed"


# -- an unreachable or misconfigured node, over real HTTP on 127.0.0.1 ----------------------


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def silent_port() -> Iterator[int]:
    """Accepts TCP connections (kernel backlog) but never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


class FakeNode(BaseHTTPRequestHandler):
    """A JSON-RPC node on chain id 1 that answers only eth_chainId; anything else is a 500."""

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if request.get("method") != "eth_chainId":
            self.send_error(500)
            return
        body = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": "0x1"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def fake_node_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeNode)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def unavailable(verifier: UsdcVerifier) -> ServiceUnavailable:
    with pytest.raises(ServiceUnavailable) as caught:
        verifier.verify_transfer(HASH, sender=SENDER, recipient=RECIPIENT, amount=Decimal(1))
    assert caught.value.code == "chain_unavailable"
    return caught.value


def test_a_closed_rpc_port_is_chain_unavailable(closed_port: int) -> None:
    verifier = UsdcVerifier.from_rpc(f"http://127.0.0.1:{closed_port}/secret-key", TOKEN, 1)

    error = unavailable(verifier)

    assert "127.0.0.1" not in error.detail and "secret-key" not in error.detail
    with pytest.raises(ServiceUnavailable):
        verifier.decimals()


def test_a_silent_rpc_node_times_out_as_chain_unavailable(silent_port: int) -> None:
    unavailable(UsdcVerifier.from_rpc(f"http://127.0.0.1:{silent_port}", TOKEN, 1, timeout_s=0.2))


def test_an_rpc_node_answering_errors_is_chain_unavailable(fake_node_url: str) -> None:
    unavailable(UsdcVerifier.from_rpc(fake_node_url, TOKEN, 1, chain_id=1))


def test_an_rpc_node_on_another_chain_is_unavailable_and_logged_as_misconfigured(
    fake_node_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    verifier = UsdcVerifier.from_rpc(fake_node_url, TOKEN, 1, chain_id=8453)

    for _ in range(2):  # checked again until it matches: a fixed node needs no restart
        assert "misconfigured" in unavailable(verifier).detail
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == ["chain RPC: the node serves chain id 1, but CHAIN_ID is 8453"] * 2
