"""In-process EVM helpers for tests: eth-tester + py-evm and the compiled TestUSDC token.

Everything runs inside the test process (no sockets). Accounts made here are test-only.
Recompile the token with tests/contracts/compile.sh.
"""

from __future__ import annotations

import json
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, cast

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester import EthereumTester, PyEVMBackend  # type: ignore[import-untyped,unused-ignore]  # ships no type hints
from eth_typing import ChecksumAddress
from web3 import EthereumTesterProvider, Web3
from web3.contract import Contract
from web3.types import Wei

ARTIFACT = Path(__file__).parent / "contracts" / "TestUSDC.json"
TOKEN_DECIMALS = 6
TRANSFER_GAS = 100_000  # explicit gas lets a failing transfer be mined (status 0) instead of failing estimation


@cache
def token_artifact() -> dict[str, Any]:
    """ABI and bytecode of TestUSDC, as written by compile.sh."""
    return cast(dict[str, Any], json.loads(ARTIFACT.read_text()))


def make_chain() -> Web3:
    """A fresh chain with the py-evm backend; auto-mines one block per transaction."""
    return Web3(EthereumTesterProvider(EthereumTester(backend=PyEVMBackend())))


def tester(w3: Web3) -> EthereumTester:
    provider = w3.provider
    if not isinstance(provider, EthereumTesterProvider):
        raise TypeError("not an eth-tester chain")
    return provider.ethereum_tester


def mine(w3: Web3, blocks: int = 1) -> int:
    """Mine `blocks` empty blocks; returns the new head block number."""
    tester(w3).mine_blocks(blocks)
    return w3.eth.block_number


def funded_account(w3: Web3, private_key: str | None = None, wei: int = 10**18) -> LocalAccount:
    """An account with a known private key, funded with `wei` and unlocked in eth-tester (can `transact`)."""
    account: LocalAccount = Account.from_key(private_key) if private_key else Account.create()
    tester(w3).add_account("0x" + account.key.hex())
    faucet = w3.eth.accounts[0]
    tx = w3.eth.send_transaction({"from": faucet, "to": account.address, "value": Wei(wei)})
    w3.eth.wait_for_transaction_receipt(tx)
    return account


def deploy_token(w3: Web3, deployer: str) -> Contract:
    """Deploy a fresh TestUSDC from `deployer` (an unlocked account) and return the bound contract."""
    artifact = token_artifact()
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx = factory.constructor().transact({"from": Web3.to_checksum_address(deployer)})
    receipt = w3.eth.wait_for_transaction_receipt(tx)
    address = receipt["contractAddress"]
    if receipt["status"] != 1 or address is None:
        raise RuntimeError("TestUSDC deployment failed")
    return w3.eth.contract(address=address, abi=artifact["abi"])


def units(amount: str | int, decimals: int = TOKEN_DECIMALS) -> int:
    """'12.5' -> 12_500_000 raw units of a 6-decimal token (exact)."""
    scaled = Decimal(str(amount)).scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} has more than {decimals} decimals")
    return int(scaled)


def mint(token: Contract, to: str, amount_units: int) -> str:
    """Mint raw token units to `to` (sent from the chain's first account); returns the tx hash."""
    w3 = token.w3
    tx = token.functions.mint(_addr(to), amount_units).transact({"from": w3.eth.accounts[0]})
    w3.eth.wait_for_transaction_receipt(tx)
    return tx.to_0x_hex()


def send_transfer(token: Contract, sender: str, recipient: str, amount_units: int, *, gas: int = TRANSFER_GAS) -> str:
    """`sender` (unlocked) transfers raw units to `recipient`; returns the 0x tx hash, even if it reverted."""
    w3 = token.w3
    tx = token.functions.transfer(_addr(recipient), amount_units).transact({"from": _addr(sender), "gas": gas})
    w3.eth.wait_for_transaction_receipt(tx)
    return tx.to_0x_hex()


def _addr(address: str) -> ChecksumAddress:
    return Web3.to_checksum_address(address)
