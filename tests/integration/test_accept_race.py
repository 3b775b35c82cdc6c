"""Accepting several proposals of one project at the same moment: exactly one hire, every other one refused.

Raced twice: through the HTTP app (httpx.ASGITransport, asyncio.gather) and through the runtime's command
path from real threads released together by a barrier (Runtime.execute on the app's loop, and the writer's
run_sync from each thread).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import httpx
import pytest

from api.app import create_app
from commands.projects import PostProject
from commands.proposals import AcceptProposal, SubmitProposal
from commands.users import RegisterUser
from core import store
from core.clock import FakeClock
from core.db import Connection
from core.errors import InvalidState
from core.ids import new_id
from core.settings import Settings
from node.runtime import Runtime
from tests.support.accounts import bearer, signup_async
from tests.support.market import PROJECT as BASE_PROJECT
from tests.support.races import META, db_rows, on_loop

CONTENDERS = 8
ROUNDS = 5
LETTER = "I have shipped this exact kind of project many times, on time and on budget. " * 2
TITLE = "Build a payments dashboard"
DESCRIPTION = "A dashboard that shows USDC payments per contract, with filters and export."
PROJECT = {**BASE_PROJECT, "title": TITLE, "description": DESCRIPTION, "skills": ["python", "sql"]}


def assert_one_hire(settings: Settings, project_id: str, winner: str, proposal_ids: list[str]) -> None:
    """Read model and log agree: the winner accepted, every other proposal rejected, the project in progress."""
    statuses = dict(db_rows(settings, "SELECT id, status FROM rm_proposals WHERE project_id = ?", project_id))
    assert statuses == {pid: ("accepted" if pid == winner else "rejected") for pid in proposal_ids}
    [(status, count)] = db_rows(settings, "SELECT status, proposals_count FROM rm_projects WHERE id = ?", project_id)
    assert (status, count) == ("in_progress", len(proposal_ids))
    awarded = db_rows(
        settings,
        "SELECT json_extract(data, '$.proposal_id') FROM events WHERE type = 'ProjectAwarded' AND stream_id = ?",
        project_id,
    )
    assert awarded == [(winner,)]
    accepted = db_rows(
        settings,
        "SELECT stream_id FROM events WHERE type = 'ProposalAccepted' AND json_extract(data, '$.project_id') = ?",
        project_id,
    )
    assert accepted == [(winner,)]


# -- over HTTP -------------------------------------------------------------------------------


async def http_race(settings: Settings, clock: FakeClock) -> list[tuple[str, str, list[str], list[httpx.Response]]]:
    app = create_app(settings, clock)
    rounds = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            owner = bearer((await signup_async(client, "client"))["access_token"])
            freelancers = [
                bearer((await signup_async(client, "freelancer"))["access_token"]) for _ in range(CONTENDERS)
            ]
            for _ in range(ROUNDS):
                posted = await client.post("/api/projects", json=PROJECT, headers=owner)
                assert posted.status_code == 201, posted.text
                project_id = posted.json()["id"]
                proposal_ids = []
                for headers in freelancers:
                    body = {
                        "project_id": project_id,
                        "cover_letter": LETTER,
                        "estimated_hours": 20,
                        "hourly_rate": "45",
                        "availability": "immediate",
                    }
                    sent = await client.post("/api/proposals", json=body, headers=headers)
                    assert sent.status_code == 201, sent.text
                    proposal_ids.append(sent.json()["id"])
                accepts = [client.post(f"/api/proposals/{pid}/accept", headers=owner) for pid in proposal_ids]
                # Readers during the race: the project is open or in progress, never anything torn.
                peeks = [client.get(f"/api/projects/{project_id}", headers=owner) for _ in range(CONTENDERS)]
                responses = await asyncio.gather(*accepts, *peeks)
                for peek in responses[CONTENDERS:]:
                    assert peek.status_code == 200, peek.text
                    assert peek.json()["status"] in ("open", "in_progress")
                winners = [r for r in responses[:CONTENDERS] if r.status_code == 200]
                winner = winners[0].json()["id"] if winners else ""
                listed = await client.get("/api/proposals", params={"project_id": project_id}, headers=owner)
                assert listed.status_code == 200, listed.text
                seen = {p["id"]: p["status"] for p in listed.json()["items"]}
                assert seen == {pid: ("accepted" if pid == winner else "rejected") for pid in proposal_ids}
                project = await client.get(f"/api/projects/{project_id}", headers=owner)
                assert project.json()["status"] == "in_progress"
                rounds.append((project_id, winner, proposal_ids, list(responses[:CONTENDERS])))
    return rounds


def test_concurrent_http_accepts_hire_exactly_one(settings: Settings, clock: FakeClock) -> None:
    for project_id, winner, proposal_ids, responses in asyncio.run(http_race(settings, clock)):
        statuses = [r.status_code for r in responses]
        assert statuses.count(200) == 1, [r.text for r in responses]
        assert statuses.count(409) == CONTENDERS - 1, [r.text for r in responses]
        for response in responses:
            if response.status_code == 200:
                assert response.json()["status"] == "accepted"
            else:
                assert response.json()["error_type"] == "invalid_state", response.text
        assert_one_hire(settings, project_id, winner, proposal_ids)


# -- from real threads, through the runtime --------------------------------------------------


def prepare(runtime: Runtime, loop: asyncio.AbstractEventLoop) -> tuple[str, str, list[str]]:
    """A client's open project with one submitted proposal from each of CONTENDERS freelancers."""
    owner = new_id()
    on_loop(
        loop,
        runtime,
        RegisterUser(
            user_id=owner, email=f"{owner}@example.com", name="Owner", role="client", password_hash="x", created_by="t"
        ),
    )
    project_id = new_id()
    on_loop(
        loop,
        runtime,
        PostProject(
            project_id=project_id,
            client_id=owner,
            title=TITLE,
            description=DESCRIPTION,
            category="web",
            budget_type="fixed",
            budget_min_minor=50000,
            budget_max_minor=150000,
            experience_level="intermediate",
            estimated_duration="2 weeks",
            skills=["python"],
        ),
    )
    proposal_ids = []
    for n in range(CONTENDERS):
        freelancer = new_id()
        on_loop(
            loop,
            runtime,
            RegisterUser(
                user_id=freelancer,
                email=f"{freelancer}@example.com",
                name=f"Freelancer {n}",
                role="freelancer",
                password_hash="x",
                created_by="t",
            ),
        )
        proposal_id = new_id()
        on_loop(
            loop,
            runtime,
            SubmitProposal(
                proposal_id=proposal_id,
                project_id=project_id,
                freelancer_id=freelancer,
                cover_letter=LETTER,
                estimated_hours=20,
                hourly_rate_minor=4500,
                availability="immediate",
                attachments=[],
            ),
        )
        proposal_ids.append(proposal_id)
    return owner, project_id, proposal_ids


def via_execute(runtime: Runtime, loop: asyncio.AbstractEventLoop) -> Callable[[AcceptProposal], object]:
    """The server's path: Runtime.execute awaited on the app's loop, submitted from the calling thread."""
    return lambda command: on_loop(loop, runtime, command)


def via_run_sync(runtime: Runtime, loop: asyncio.AbstractEventLoop) -> Callable[[AcceptProposal], object]:
    """The writer straight from the thread: the job Runtime.execute would queue, waited on with run_sync."""
    from commands.proposals import accept_proposal

    writer = runtime.writer
    assert writer is not None

    def call(command: AcceptProposal) -> object:
        def job(conn: Connection) -> list[Any]:
            uow = store.UnitOfWork(conn, META, runtime.clock)
            accept_proposal(uow, command)
            runtime.projection.apply_events(conn, uow.new_events)
            return uow.new_events

        return writer.run_sync(job)

    return call


def thread_race(call: Callable[[AcceptProposal], object], owner: str, proposal_ids: list[str]) -> list[object]:
    """One thread per proposal, all released at once by a barrier; each returns its result or its exception."""
    barrier = threading.Barrier(len(proposal_ids))
    outcomes: list[Future[object]] = [Future() for _ in proposal_ids]

    def contender(i: int) -> None:
        barrier.wait(30)
        try:
            outcomes[i].set_result(call(AcceptProposal(proposal_id=proposal_ids[i], actor_id=owner)))
        except Exception as exc:
            outcomes[i].set_exception(exc)

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(len(proposal_ids))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    results: list[object] = []
    for outcome in outcomes:
        assert outcome.done()
        error = outcome.exception()
        results.append(error if error is not None else outcome.result())
    return results


@pytest.mark.parametrize("path", [via_execute, via_run_sync], ids=["Runtime.execute", "writer.run_sync"])
def test_concurrent_accepts_from_threads_hire_exactly_one(
    running: tuple[Runtime, asyncio.AbstractEventLoop],
    settings: Settings,
    path: Callable[[Runtime, asyncio.AbstractEventLoop], Callable[[AcceptProposal], object]],
) -> None:
    runtime, loop = running
    call = path(runtime, loop)
    for _ in range(ROUNDS):
        owner, project_id, proposal_ids = prepare(runtime, loop)
        results = thread_race(call, owner, proposal_ids)

        refused = [r for r in results if isinstance(r, Exception)]
        assert len(refused) == CONTENDERS - 1, results
        assert all(isinstance(r, InvalidState) and r.code == "invalid_state" for r in refused), results
        [winner] = [pid for pid, r in zip(proposal_ids, results, strict=True) if not isinstance(r, Exception)]
        assert_one_hire(settings, project_id, winner, proposal_ids)
