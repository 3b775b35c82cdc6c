"""Writes racing each other over HTTP (httpx.ASGITransport, asyncio.gather): every answer tells the truth.

A request that answers an error changed nothing, a request that answers 2xx is in the log, and the read
store equals a replay of the log afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from api.app import create_app
from core import store
from core.clock import FakeClock
from core.db import connect
from core.settings import Settings
from migrations.runner import migrate
from node.runtime import open_primary
from queries.projection import checkpoint
from queries.rebuild import differences, rebuild
from queries.registry import projection
from tests.support.accounts import bearer, signup_async
from tests.support.errors import assert_error
from tests.support.market import PROJECT
from tests.support.races import db_rows

ROUNDS = 10
CONTENDERS = 6
ITEM = {"title": "Shop redesign", "image_url": "https://img.example.com/shop.png"}
Headers = dict[str, str]
Race = Callable[[httpx.AsyncClient, Settings], Awaitable[None]]


def run_race(settings: Settings, clock: FakeClock, race: Race) -> None:
    """Serve the app in-process, run the race, then check the read store against a replay of the log."""

    async def main() -> None:
        app = create_app(settings, clock)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                await race(client, settings)

    asyncio.run(main())
    assert replay_differences(settings) == []


def replay_differences(settings: Settings) -> list[str]:
    live = open_primary(settings)
    scratch = connect(str(settings.data_dir / "replay.db"), synchronous="NORMAL")
    try:
        migrate(scratch, ("read",))
        live.execute("BEGIN")
        rebuild(scratch, projection(), store.read_until(live, checkpoint(live), meta=False))
        found = differences(live, scratch, projection())
        live.execute("COMMIT")
        return found
    finally:
        scratch.close()
        live.close()


def event_types(settings: Settings, stream_id: str) -> list[str]:
    return [t for (t,) in db_rows(settings, "SELECT type FROM events WHERE stream_id = ? ORDER BY position", stream_id)]


@pytest.mark.parametrize(
    ("role", "path", "body", "revised_type"),
    [
        ("client", "/api/projects", PROJECT, "ProjectRevised"),
        ("freelancer", "/api/portfolio", ITEM, "PortfolioItemRevised"),
    ],
    ids=["project", "portfolio-item"],
)
def test_an_edit_racing_the_removal_of_what_it_edits_is_answered_as_it_happened(
    settings: Settings, clock: FakeClock, role: str, path: str, body: dict[str, Any], revised_type: str
) -> None:
    async def race(client: httpx.AsyncClient, settings: Settings) -> None:
        owner = bearer((await signup_async(client, role, email=f"{role}@example.com", name="Pat"))["access_token"])
        for n in range(ROUNDS):
            created = await client.post(path, json=body, headers=owner)
            item_id = created.json()["id"]
            edit = client.put(f"{path}/{item_id}", json={"title": f"Edited title {n}"}, headers=owner)
            removal = client.delete(f"{path}/{item_id}", headers=owner)
            edited, removed = await asyncio.gather(edit, removal)

            assert removed.status_code == 204, removed.text
            revised = revised_type in event_types(settings, item_id)
            if edited.status_code == 200:
                assert revised and edited.json()["title"] == f"Edited title {n}"
            else:
                assert_error(edited, 404, "not_found")
                assert not revised

    run_race(settings, clock, race)


def test_one_idempotency_key_sent_at_once_executes_once(settings: Settings, clock: FakeClock) -> None:
    async def race(client: httpx.AsyncClient, settings: Settings) -> None:
        ann = bearer((await signup_async(client, "client", email="ann@example.com", name="Pat"))["access_token"])
        for n in range(ROUNDS):
            headers = {**ann, "Idempotency-Key": f"same-{n}"}
            responses = await asyncio.gather(
                *(client.post("/api/projects", json=PROJECT, headers=headers) for _ in range(CONTENDERS))
            )

            created = [r for r in responses if r.status_code == 201]
            assert len({r.json()["id"] for r in created}) == 1, [r.text for r in responses]
            for response in responses:
                if response.status_code != 201:
                    assert_error(response, 409, "idempotency_in_progress")
        posted = db_rows(settings, "SELECT count(*) FROM events WHERE type = 'ProjectPosted'")
        assert posted == [(ROUNDS,)]

    run_race(settings, clock, race)


def test_one_idempotency_key_sent_at_once_with_different_bodies_is_refused_as_reused(
    settings: Settings, clock: FakeClock
) -> None:
    async def race(client: httpx.AsyncClient, settings: Settings) -> None:
        ann = bearer((await signup_async(client, "client", email="ann@example.com", name="Pat"))["access_token"])
        for n in range(ROUNDS):
            headers = {**ann, "Idempotency-Key": f"different-{n}"}
            bodies = [{**PROJECT, "title": f"Landing page number {k}"} for k in range(CONTENDERS)]
            responses = await asyncio.gather(*(client.post("/api/projects", json=b, headers=headers) for b in bodies))

            assert [r.status_code for r in responses].count(201) == 1, [r.text for r in responses]
            for response in responses:
                if response.status_code != 201:
                    assert_error(response, 422, "idempotency_key_reused")
        posted = db_rows(settings, "SELECT count(*) FROM events WHERE type = 'ProjectPosted'")
        assert posted == [(ROUNDS,)]

    run_race(settings, clock, race)
