"""Demo data: a realistic marketplace for demos and benchmarks, written through the real command path.

Users, projects, proposals, hires (accepted proposals), contracts for most hires (amounts in USDC minor
units, some completed or disputed) and a couple of portfolio items per freelancer; deterministic for a seed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from commands import contracts, portfolio, projects, proposals, users
from commands.handlers import COMMAND_HANDLERS
from core.clock import Clock
from core.db import Connection
from core.ids import new_id
from core.money import DECIMALS
from core.store import UnitOfWork
from queries.projection import Projection

# The default PLATFORM_FEE_BPS (core/settings.py); seed-demo passes the configured one.
DEFAULT_FEE_BPS = 500
# Budgets are USD cents; contracts are in USDC, whose minor unit is 10**-6.
CENTS_TO_USDC_MINOR = 10 ** (DECIMALS["USDC"] - DECIMALS["USD"])
CONTRACT_SHARE = 0.75  # of hires that get a contract

DEMO_PASSWORD = "demo-password-1"
SKILLS = [
    "python",
    "rust",
    "go",
    "typescript",
    "react",
    "sql",
    "design",
    "figma",
    "writing",
    "seo",
    "devops",
    "kubernetes",
    "solidity",
    "data",
    "ml",
    "ios",
    "android",
    "video",
    "translation",
    "marketing",
]
CATEGORIES = ["web", "mobile", "design", "writing", "data", "blockchain", "marketing", "devops"]
WORDS = [
    "build",
    "fast",
    "secure",
    "api",
    "dashboard",
    "landing",
    "page",
    "mobile",
    "app",
    "redesign",
    "audit",
    "migrate",
    "database",
    "pipeline",
    "contract",
    "brand",
    "content",
    "growth",
    "search",
    "payments",
]


@dataclass
class Demo:
    clients: list[str] = field(default_factory=list)
    freelancers: list[str] = field(default_factory=list)
    projects: list[str] = field(default_factory=list)
    proposals: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    owner: dict[str, str] = field(default_factory=dict)
    budget_max_minor: dict[str, int] = field(default_factory=dict)
    hired: dict[str, tuple[str, str]] = field(default_factory=dict)  # project id -> (proposal id, freelancer id)
    contracts: list[str] = field(default_factory=list)
    portfolio_items: list[str] = field(default_factory=list)

    @property
    def proposal_count(self) -> int:
        return sum(len(v) for v in self.proposals.values())


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def demo_commands(
    rng: random.Random,
    password_hash: str,
    demo: Demo,
    n_users: int,
    n_projects: int,
    n_proposals: int,
    fee_bps: int = DEFAULT_FEE_BPS,
) -> Iterator[Any]:
    """Every command of the demo, in an order in which each one is valid."""
    yield from _users(password_hash, demo, n_users)
    yield from _projects(rng, demo, n_projects)
    yield from _proposals(rng, demo, n_proposals)
    yield from _hires(rng, demo)
    yield from _contracts(rng, demo, fee_bps)
    yield from _portfolio(rng, demo)


def _users(password_hash: str, demo: Demo, n_users: int) -> Iterator[Any]:
    for i in range(n_users):
        role: users.Role = "client" if i % 3 == 0 else "freelancer"
        user_id = new_id()
        (demo.clients if role == "client" else demo.freelancers).append(user_id)
        yield users.RegisterUser(
            user_id=user_id,
            email=f"demo{i}@megilance.test",
            name=f"Demo {role.title()} {i}",
            role=role,
            password_hash=password_hash,
            created_by="seed",
        )


def _projects(rng: random.Random, demo: Demo, n_projects: int) -> Iterator[Any]:
    if not demo.clients:
        return
    for _ in range(n_projects):
        low = rng.randrange(100, 5000) * 100
        project_id = new_id()
        client_id = rng.choice(demo.clients)
        demo.projects.append(project_id)
        demo.owner[project_id] = client_id
        demo.budget_max_minor[project_id] = low * 2
        yield projects.PostProject(
            project_id=project_id,
            client_id=client_id,
            title=sentence(rng, 5)[:200],
            description=" ".join(sentence(rng, 12) for _ in range(3)),
            category=rng.choice(CATEGORIES),
            budget_type=rng.choice(["fixed", "hourly"]),
            budget_min_minor=low,
            budget_max_minor=low * 2,
            experience_level=rng.choice(["entry", "intermediate", "expert"]),
            estimated_duration="1 month",
            skills=rng.sample(SKILLS, 3),
        )


def _proposals(rng: random.Random, demo: Demo, n_proposals: int) -> Iterator[Any]:
    if not demo.freelancers:
        return
    pairs = {(p, f) for p in demo.projects for f in rng.sample(demo.freelancers, min(8, len(demo.freelancers)))}
    for project_id, freelancer_id in sorted(rng.sample(sorted(pairs), min(n_proposals, len(pairs)))):
        proposal_id = new_id()
        demo.proposals.setdefault(project_id, []).append((proposal_id, freelancer_id))
        yield proposals.SubmitProposal(
            proposal_id=proposal_id,
            project_id=project_id,
            freelancer_id=freelancer_id,
            cover_letter=" ".join(sentence(rng, 10) for _ in range(2)),
            estimated_hours=rng.randrange(5, 200),
            hourly_rate_minor=rng.randrange(20, 150) * 100,
            availability="flexible",
            attachments=[],
        )


def _hires(rng: random.Random, demo: Demo) -> Iterator[Any]:
    """A fifth of the projects hire their first bidder (the others' proposals are rejected with it)."""
    for project_id in rng.sample(demo.projects, len(demo.projects) // 5):
        bids = demo.proposals.get(project_id)
        if bids:
            proposal_id, freelancer_id = bids[0]
            demo.hired[project_id] = (proposal_id, freelancer_id)
            yield proposals.AcceptProposal(proposal_id=proposal_id, actor_id=demo.owner[project_id])


def _contracts(rng: random.Random, demo: Demo, fee_bps: int) -> Iterator[Any]:
    """Most hires get a USDC contract with two milestones; some of those end completed or disputed."""
    hired = sorted(demo.hired)
    for project_id in rng.sample(hired, round(len(hired) * CONTRACT_SHARE)):
        freelancer_id = demo.hired[project_id][1]
        client_id = demo.owner[project_id]
        amount_minor = rng.randrange(demo.budget_max_minor[project_id] // 2, demo.budget_max_minor[project_id] + 1)
        amount_minor *= CENTS_TO_USDC_MINOR
        first = amount_minor * rng.randrange(20, 60) // 100
        contract_id = new_id()
        demo.contracts.append(contract_id)
        start = f"2026-{rng.randrange(1, 10):02d}-{rng.randrange(1, 28):02d}"
        yield contracts.CreateContract(
            contract_id=contract_id,
            project_id=project_id,
            client_id=client_id,
            freelancer_id=freelancer_id,
            amount_minor=amount_minor,
            currency="USDC",
            fee_bps=fee_bps,
            description=sentence(rng, 8),
            start_date=start,
            end_date=f"2026-12-{rng.randrange(1, 28):02d}",
            milestones=[
                contracts.Milestone(title="First delivery", amount_minor=first, due_date=None),
                contracts.Milestone(title="Final delivery", amount_minor=amount_minor - first, due_date=None),
            ],
            terms="Payment in USDC on each accepted milestone.",
        )
        fate = rng.random()
        if fate < 0.25:
            yield contracts.ReviseContract(contract_id=contract_id, actor_id=client_id, changes={}, status="completed")
            yield projects.ReviseProject(project_id=project_id, actor_id=client_id, changes={}, status="completed")
        elif fate < 0.30:
            yield contracts.ReviseContract(
                contract_id=contract_id, actor_id=freelancer_id, changes={}, status="disputed"
            )


def _portfolio(rng: random.Random, demo: Demo) -> Iterator[Any]:
    """One to three portfolio items per freelancer (two on average)."""
    for n, freelancer_id in enumerate(demo.freelancers):
        for k in range(rng.randrange(1, 4)):
            item_id = new_id()
            demo.portfolio_items.append(item_id)
            yield portfolio.AddPortfolioItem(
                item_id=item_id,
                freelancer_id=freelancer_id,
                title=sentence(rng, 4)[:200],
                description=" ".join(sentence(rng, 10) for _ in range(2)),
                image_url=f"https://images.megilance.test/demo/{n}-{k}.png",
                project_url=f"https://example.com/work/{n}-{k}" if rng.random() < 0.5 else None,
                tags=rng.sample(SKILLS, 2),
            )


def seed(
    conn: Connection,
    projection: Projection,
    password_hash: str,
    *,
    users_n: int = 200,
    projects_n: int = 1000,
    proposals_n: int = 5000,
    seed_value: int = 7,
    progress: Callable[[int], None] | None = None,
    batch: int = 500,
    fee_bps: int = DEFAULT_FEE_BPS,
) -> Demo:
    """Write the demo marketplace in batches of commands per transaction (one writer: run it on the primary)."""
    rng = random.Random(seed_value)
    demo = Demo()
    clock = Clock()
    pending: list[Any] = []

    def flush() -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for command in pending:
                uow = UnitOfWork(conn, {"actor": "seed"}, clock)
                COMMAND_HANDLERS[type(command)](uow, command)
                projection.apply_events(conn, uow.new_events)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if progress:
            progress(len(pending))
        pending.clear()

    for command in demo_commands(rng, password_hash, demo, users_n, projects_n, proposals_n, fee_bps):
        pending.append(command)
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    return demo
