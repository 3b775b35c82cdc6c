"""On-chain USDC settlement check: does a transaction show the ERC-20 Transfer a payment claims?

Read-only: talks to a JSON-RPC node through web3, never holds or uses private keys.
`verify_transfer` blocks on network I/O; async callers run it in a worker thread.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NoReturn, TypeVar

import requests
from eth_typing import ChecksumAddress, HexStr
from web3 import HTTPProvider, Web3
from web3.exceptions import TransactionNotFound, Web3Exception
from web3.types import LogReceipt, TxReceipt

from core.errors import PaymentVerificationFailed, ServiceUnavailable, ValidationFailed

__all__ = ["TransferProof", "UsdcVerifier"]

log = logging.getLogger(__name__)

T = TypeVar("T")

TRANSFER_TOPIC = bytes(Web3.keccak(text="Transfer(address,address,uint256)"))
_DECIMALS_ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "decimals",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "uint8"}],
    }
]
_TX_HASH_RE = re.compile(r"0x[0-9a-fA-F]{64}")
_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{40}")
# Failures of the transport or of the node itself: the chain cannot answer now.
_UNAVAILABLE = (requests.RequestException, OSError, Web3Exception, ValueError)


@dataclass(frozen=True, slots=True)
class TransferProof:
    tx_hash: str  # 0x-prefixed lowercase hex
    sender: str  # checksum address
    recipient: str  # checksum address
    amount: Decimal  # token units (e.g. Decimal("12.5"))
    block_number: int
    confirmations: int


@dataclass(frozen=True, slots=True)
class _TokenTransfer:
    sender: str  # lowercase
    recipient: str  # lowercase
    value: int  # raw token units


class UsdcVerifier:
    """Verifies ERC-20 `Transfer`s of one token contract, requiring `min_confirmations` blocks."""

    def __init__(self, w3: Web3, token_address: str, min_confirmations: int) -> None:
        if not isinstance(token_address, str) or not _ADDRESS_RE.fullmatch(token_address):
            raise ValueError(f"token_address {token_address!r} is not a 20-byte hex address")
        if min_confirmations < 0:
            raise ValueError("min_confirmations must be >= 0")
        self._w3 = w3
        self._token: ChecksumAddress = Web3.to_checksum_address(token_address)
        self._min_confirmations = min_confirmations
        self._decimals: int | None = None
        self._expected_chain_id: int | None = None

    @classmethod
    def from_rpc(
        cls,
        rpc_url: str,
        token_address: str,
        min_confirmations: int,
        chain_id: int | None = None,
        timeout_s: float = 10,
    ) -> UsdcVerifier:
        """Verifier over an HTTP JSON-RPC node. No request is made here.

        If `chain_id` is given it is checked on first use until it matches: a node on another chain is a
        configuration error, logged as one and answered as ServiceUnavailable (nothing is verified against
        the wrong chain). Requests are not retried: a failure surfaces at once as ServiceUnavailable and
        the caller may retry.
        """
        provider = HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s}, exception_retry_configuration=None)
        verifier = cls(Web3(provider), token_address, min_confirmations)
        verifier._expected_chain_id = chain_id
        return verifier

    @property
    def token_address(self) -> str:
        return self._token

    def decimals(self) -> int:
        """The token's `decimals()`, read once from the contract and cached."""
        if self._decimals is None:
            self._check_chain_id()
            contract = self._w3.eth.contract(address=self._token, abi=_DECIMALS_ABI)
            value = self._rpc("read decimals() of the token contract", contract.functions.decimals().call)
            if not isinstance(value, int) or not 0 <= value <= 36:
                raise ServiceUnavailable(
                    "The configured token contract returned an unusable decimals() value.",
                    "chain_unavailable",
                )
            self._decimals = value
        return self._decimals

    def verify_transfer(self, tx_hash: str, *, sender: str, recipient: str, amount: Decimal) -> TransferProof:
        """Check that `tx_hash` succeeded and moved exactly `amount` tokens from `sender` to `recipient`."""
        tx_hash = _parse_tx_hash(tx_hash)
        sender_lc = _parse_address(sender, "sender")
        recipient_lc = _parse_address(recipient, "recipient")
        if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
            raise ValidationFailed("The amount must be a positive decimal number.", "validation_failed")
        self._check_chain_id()
        receipt = self._receipt(tx_hash)
        if receipt.get("status") != 1:
            raise PaymentVerificationFailed("The transaction failed (reverted) on chain.", "tx_failed")
        match = self._matching_transfer(receipt["logs"], sender_lc, recipient_lc, amount)
        block_number = int(receipt["blockNumber"])
        confirmations = self._confirmations(block_number)
        return TransferProof(
            tx_hash=tx_hash,
            sender=Web3.to_checksum_address(match.sender),
            recipient=Web3.to_checksum_address(match.recipient),
            amount=Decimal(match.value).scaleb(-self.decimals()),
            block_number=block_number,
            confirmations=confirmations,
        )

    # -- internals -------------------------------------------------------------------------

    def _receipt(self, tx_hash: str) -> TxReceipt:
        try:
            return self._rpc(
                "fetch the transaction receipt",
                lambda: self._w3.eth.get_transaction_receipt(HexStr(tx_hash)),
                not_found=True,
            )
        except TransactionNotFound:
            raise PaymentVerificationFailed(
                "The transaction was not found on chain, or it has not been mined yet.", "tx_not_found"
            ) from None

    def _matching_transfer(
        self, logs: Sequence[LogReceipt], sender: str, recipient: str, amount: Decimal
    ) -> _TokenTransfer:
        """The Transfer sender -> recipient of exactly `amount`; the first empty filter names the error."""
        transfers = [t for t in map(self._decode_transfer, logs) if t is not None]
        if not transfers:
            _refuse("The transaction contains no transfer of the accepted token.", "wrong_token")
        transfers = [t for t in transfers if t.sender == sender]
        if not transfers:
            _refuse("The token transfer in this transaction was not sent from the payer's wallet.", "wrong_sender")
        transfers = [t for t in transfers if t.recipient == recipient]
        if not transfers:
            _refuse(
                "The token transfer in this transaction was not sent to the payee's wallet.",
                "wrong_recipient",
            )
        expected = _to_units(amount, self.decimals())
        for transfer in transfers:
            if transfer.value == expected:
                return transfer
        _refuse("The transferred amount does not match the payment amount.", "amount_mismatch")

    def _confirmations(self, block_number: int) -> int:
        head = self._rpc("read the latest block number", lambda: self._w3.eth.block_number)
        confirmations = max(int(head) - block_number + 1, 0)
        if confirmations < self._min_confirmations:
            _refuse(
                f"The transaction has {confirmations} of the {self._min_confirmations} required "
                "confirmations; try again shortly.",
                "insufficient_confirmations",
            )
        return confirmations

    def _decode_transfer(self, entry: LogReceipt) -> _TokenTransfer | None:
        """An ERC-20 Transfer log emitted by the configured token, or None for any other log."""
        address = str(entry.get("address", ""))
        topics = list(entry.get("topics", []))
        data = bytes(entry.get("data", b""))
        # ERC-721 shares the signature but indexes the id (4 topics); only 3 topics + 32 data bytes is ERC-20.
        if address.lower() != self._token.lower() or len(topics) != 3 or len(data) != 32:
            return None
        if bytes(topics[0]) != TRANSFER_TOPIC:
            return None
        return _TokenTransfer(
            sender="0x" + bytes(topics[1])[-20:].hex(),
            recipient="0x" + bytes(topics[2])[-20:].hex(),
            value=int.from_bytes(data, "big"),
        )

    def _check_chain_id(self) -> None:
        expected = self._expected_chain_id
        if expected is None:
            return
        actual = self._rpc("read the chain id", lambda: self._w3.eth.chain_id)
        if actual != expected:
            log.error("chain RPC: the node serves chain id %s, but CHAIN_ID is %s", actual, expected)
            raise ServiceUnavailable(
                "Payments cannot be verified right now: the blockchain node is misconfigured.", "chain_unavailable"
            )
        self._expected_chain_id = None  # checked once

    def _rpc(self, what: str, call: Callable[[], T], *, not_found: bool = False) -> T:
        """Run one RPC call, turning transport and node failures into ServiceUnavailable."""
        try:
            return call()
        except TransactionNotFound:
            if not_found:
                raise
            log.warning("chain RPC: could not %s: transaction not found", what)
            raise ServiceUnavailable(
                "The blockchain node gave an unexpected answer; try again later.", "chain_unavailable"
            ) from None
        except _UNAVAILABLE as exc:
            # The exception text may carry the RPC URL (often with an API key): log only its type.
            log.warning("chain RPC: could not %s: %s", what, type(exc).__name__)
            raise ServiceUnavailable(
                "The blockchain node cannot be reached right now; try again later.", "chain_unavailable"
            ) from None


def _refuse(detail: str, code: str) -> NoReturn:
    raise PaymentVerificationFailed(detail, code)


def _parse_tx_hash(tx_hash: str) -> str:
    if not isinstance(tx_hash, str) or not _TX_HASH_RE.fullmatch(tx_hash):
        raise ValidationFailed(
            "The transaction hash must be 0x followed by 64 hexadecimal characters.", "validation_failed"
        )
    return tx_hash.lower()


def _parse_address(address: str, role: str) -> str:
    if not isinstance(address, str) or not _ADDRESS_RE.fullmatch(address):
        raise ValidationFailed(f"The {role} wallet address is not a valid address.", "validation_failed")
    return address.lower()


def _to_units(amount: Decimal, decimals: int) -> int | None:
    """Exact raw units of `amount`, or None when it has more decimals than the token."""
    numerator, denominator = amount.as_integer_ratio()
    units, remainder = divmod(numerator * 10**decimals, denominator)
    return units if remainder == 0 else None
