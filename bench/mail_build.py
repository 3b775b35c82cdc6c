"""`python -m bench.mail_build`: the time to build and serialise one notification, the service's policy against
the stock e-mail policy (its baseline, measured in the same run).

Each round times LOOPS messages built with the stock policy, then LOOPS with the service's, alternating for
ROUNDS rounds; the figure of each is its best round. Results in bench/results/<date>-mail.json.
"""

from __future__ import annotations

import email.policy
import sys
import time
from datetime import UTC, datetime
from typing import Any

from bench.run import host_info, save_results
from core import mail

LOOPS, ROUNDS = 500, 5
CONTEXT = {
    "name": "Ann",
    "base_url": "http://localhost:8000",
    "project_id": "p1",
    "project_title": "A project with a title of ordinary length",
    "freelancer_name": "Bob",
}


def timed(policy: Any) -> float:
    """Microseconds per message: render, build, serialise."""
    saved = mail.POLICY
    mail.POLICY = policy
    renderer = mail.Renderer()
    try:
        began = time.perf_counter()
        for n in range(LOOPS):
            subject, text, html = renderer.render("proposal_received", CONTEXT)
            mail.build_message(
                message_id=f"<proposal_received.{n}.0@example.com>",
                sender="MegiLance <no-reply@example.com>",
                recipient="ann@example.com",
                subject=subject,
                text=text,
                html=html,
                date=1_765_000_000.0,
            ).as_bytes()
        return (time.perf_counter() - began) / LOOPS * 1e6
    finally:
        mail.POLICY = saved


def main() -> int:
    started = datetime.now(UTC)
    stock, ours = [], []
    for _ in range(ROUNDS):
        stock.append(timed(email.policy.default))
        ours.append(timed(mail.POLICY))
    best_stock, best_ours = min(stock), min(ours)
    ratio = best_ours / best_stock
    print("| message | µs per message (best of rounds) | ratio |")
    print("|---|---:|---:|")
    print(f"| stock policy (baseline) | {best_stock:.0f} | 1.00 |")
    print(f"| the service's policy | {best_ours:.0f} | {ratio:.2f} |")
    save_results(
        "mail",
        started,
        {
            "machine": host_info(),
            "loops": LOOPS,
            "rounds_us": {"stock": stock, "service": ours},
            "best_us": {"stock": best_stock, "service": best_ours},
            "ratio": ratio,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
