"""Payment confirmation against the in-process chain: p50/p99 of POST /api/payments/{id}/confirm.

Run: `.venv/bin/python -m bench.payments` (about 20 s). The app runs in-process (TestClient) with an
EthereumTesterProvider chain (py-evm) and the compiled TestUSDC; each round creates a payment, makes the
matching ERC-20 transfer on chain, then times the confirmation (receipt, logs, confirmations, the claim
of the hash and the command). The bare `UsdcVerifier.verify_transfer` call is timed alongside.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from starlette.testclient import TestClient

from api.app import create_app
from bench.run import host_info, save_results
from core.chain import UsdcVerifier
from core.clock import FakeClock
from tests import chainkit as ck
from tests.api.test_payments_api import Chain, build_world, confirm, pay, transfer, use_chain
from tests.conftest import make_settings

ROUNDS = 100


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    run_started = datetime.now(UTC)
    w3 = ck.make_chain()
    token = ck.deploy_token(w3, w3.eth.accounts[0])
    lookalike = ck.deploy_token(w3, w3.eth.accounts[0])
    payer, payee, stranger = ck.funded_account(w3), ck.funded_account(w3), ck.funded_account(w3)
    ck.mint(token, payer.address, ck.units("1000000"))
    chain = Chain(w3, token, lookalike, payer, payee, stranger)
    confirm_ms: list[float] = []
    verify_ms: list[float] = []
    with tempfile.TemporaryDirectory() as data, TestClient(create_app(make_settings(Path(data)), FakeClock())) as c:
        use_chain(c, chain)
        world = build_world(c, chain)
        verifier = UsdcVerifier(w3, token.address, 1)
        for _ in range(ROUNDS):
            payment = pay(world, "1")
            tx_hash = transfer(chain, "1")
            started = time.perf_counter()
            verifier.verify_transfer(tx_hash, sender=payer.address, recipient=payee.address, amount=Decimal(1))
            verify_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            response = confirm(c, world.ann, payment, tx_hash)
            confirm_ms.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                print(f"confirmation failed: {response.status_code} {response.text}", file=sys.stderr)
                return 1
    print(f"| measure ({ROUNDS} rounds) | p50 ms | p99 ms |\n|---|---:|---:|")
    print(
        f"| POST /api/payments/{{id}}/confirm | {statistics.median(confirm_ms):.2f} | "
        f"{percentile(confirm_ms, 0.99):.2f} |"
    )
    print(
        f"| UsdcVerifier.verify_transfer alone | {statistics.median(verify_ms):.2f} | "
        f"{percentile(verify_ms, 0.99):.2f} |"
    )
    save_results(
        "payments",
        run_started,
        {
            "machine": host_info(),
            "rounds": ROUNDS,
            "confirm_ms": {"p50": statistics.median(confirm_ms), "p99": percentile(confirm_ms, 0.99)},
            "verify_transfer_ms": {"p50": statistics.median(verify_ms), "p99": percentile(verify_ms, 0.99)},
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
