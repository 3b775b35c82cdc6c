"""Demo data: a realistic marketplace for demos and benchmarks, written through the real command path."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from commands import projects, proposals, users
from commands.handlers import COMMAND_HANDLERS
from core.clock import Clock
from core.db import Connection
from core.ids import new_id
from core.store import UnitOfWork
from queries.projection import Projection

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


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def demo_commands(
    rng: random.Random, password_hash: str, demo: Demo, n_users: int, n_projects: int, n_proposals: int
) -> Iterator[Any]:
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
    for _ in range(n_projects):
        low = rng.randrange(100, 5000) * 100
        project_id = new_id()
        demo.projects.append(project_id)
        yield projects.PostProject(
            project_id=project_id,
            client_id=rng.choice(demo.clients),
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
    for project_id in rng.sample(demo.projects, len(demo.projects) // 5):
        bids = demo.proposals.get(project_id)
        if bids:
            yield ("accept", project_id, bids[0][0])


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
) -> Demo:
    """Write the demo marketplace in batches of commands per transaction (one writer: run it on the primary)."""
    rng = random.Random(seed_value)
    demo = Demo()
    owner_of: dict[str, str] = {}
    clock = Clock()
    pending: list[Any] = []

    def flush() -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for item in pending:
                uow = UnitOfWork(conn, {"actor": "seed"}, clock)
                if isinstance(item, tuple):
                    proposals.accept_proposal(
                        uow, proposals.AcceptProposal(proposal_id=item[2], actor_id=owner_of[item[1]])
                    )
                else:
                    if isinstance(item, projects.PostProject):
                        owner_of[item.project_id] = item.client_id
                    COMMAND_HANDLERS[type(item)](uow, item)
                projection.apply_events(conn, uow.new_events)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if progress:
            progress(len(pending))
        pending.clear()

    for item in demo_commands(rng, password_hash, demo, users_n, projects_n, proposals_n):
        if isinstance(item, projects.PostProject):
            owner_of[item.project_id] = item.client_id
        pending.append(item)
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    return demo
