"""Random sequences of marketplace commands over HTTP, checked against a small model after every step.

Users register, post / edit / close / cancel / complete / delete projects, submit / revise / withdraw /
accept / reject proposals, sign and move contracts, add and remove portfolio items. Every answer is
compared with what the model expects (status and error_type), and after each step:

* no response was ever a 5xx;
* at most one accepted proposal per project (read model and log);
* each project's `proposals_count` equals ProposalSubmitted minus ProposalWithdrawn in the log;
* nobody sees what they may not: every user's proposal and contract lists hold exactly what that user may
  see, and a random viewer's GET of a proposal or contract they are no party to is 404 (a rule);
* the board, the statuses in the admin's lists and each freelancer's portfolio agree with the model.

The HTTP reads of the last two run whenever the log head moved since they last ran; when it did not, every
answer would be the same bytes from the position-validated response cache.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from starlette.testclient import TestClient

from api.app import create_app
from commands.users import RegisterUser
from core.clock import FakeClock
from core.db import Connection
from core.ids import new_id
from node.runtime import open_primary, run_command_sync
from queries.registry import projection
from tests.conftest import make_settings

PASSWORD = "correct-horse-battery"
MAX_USERS = 7
OWNER_MOVES = {("open", "closed"), ("open", "cancelled"), ("in_progress", "completed")}
CONTRACT_MOVES = {"completed": {"client"}, "cancelled": {"client", "freelancer"}, "disputed": {"client", "freelancer"}}
WORDS = ["api", "landing", "page", "audit", "mobile", "dashboard", "migrate", "brand", "search", "growth"]
LETTER = "I can deliver this with tests, documentation and a short handover call. "
serial = count()
ID = re.compile(r"[0-9a-f]{32}")
Json = dict[str, Any]


@dataclass
class User:
    id: str
    role: str
    headers: dict[str, str]


@dataclass
class Project:
    id: str
    owner: str
    budget_min: int  # cents
    budget_max: int
    status: str = "open"
    deleted: bool = False
    hired: str | None = None  # the accepted proposal's freelancer


@dataclass
class Proposal:
    id: str
    project_id: str
    author: str
    client: str
    status: str = "submitted"


@dataclass
class Contract:
    id: str
    project_id: str
    client: str
    freelancer: str
    status: str = "active"


@dataclass
class Item:
    id: str
    owner: str
    removed: bool = False


@dataclass
class Expect:
    status: int
    error_type: str | None = None


def refused(status: int, error_type: str) -> Expect:
    return Expect(status, error_type)


words = st.lists(st.sampled_from(WORDS), min_size=2, max_size=5).map(" ".join)
cents = st.integers(1, 500).map(lambda n: n * 1000)


class Marketplace(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="marketplace-sm-"))
        self.settings = make_settings(self.dir)
        self.clock = FakeClock()
        self.http = TestClient(create_app(self.settings, self.clock), raise_server_exceptions=False)
        self.http.__enter__()
        self.db: Connection = open_primary(self.settings)
        self.users: list[User] = []
        self.admin: User | None = None
        self.projects: dict[str, Project] = {}
        self.proposals: dict[str, Proposal] = {}
        self.contracts: dict[str, Contract] = {}
        self.items: dict[str, Item] = {}
        self.checked_at = -1  # the log head the HTTP read checks last ran at

    def teardown(self) -> None:
        self.db.close()
        self.http.__exit__(None, None, None)
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- plumbing --------------------------------------------------------------------------------

    def send(self, method: str, path: str, who: User, expect: Expect, **kwargs: Any) -> httpx.Response:
        response: httpx.Response = self.http.request(method, path, headers=who.headers, **kwargs)
        what = f"{method} {path} as {who.role} {who.id[-6:]}"
        assert response.status_code < 500, f"{what}: {response.status_code} {response.text}"
        assert response.status_code == expect.status, (
            f"{what}: got {response.status_code} {response.text}, expected {expect.status} {expect.error_type or ''}"
        )
        if expect.error_type is not None:
            assert response.json()["error_type"] == expect.error_type, f"{what}: {response.text}"
        event(f"{method} {ID.sub('{id}', path)} -> {response.status_code} {expect.error_type or ''}".rstrip())
        return response

    def get(self, path: str, who: User, **params: Any) -> Json:
        response = self.http.get(path, headers=who.headers, params=params)
        assert response.status_code == 200, f"GET {path} as {who.role}: {response.status_code} {response.text}"
        body: Json = response.json()
        return body

    def listed(self, path: str, who: User, **params: Any) -> list[Json]:
        """Every page of a list endpoint."""
        items: list[Json] = []
        cursor: str | None = None
        while True:
            query = {"limit": 100, **params, **({"cursor": cursor} if cursor else {})}
            page = self.get(path, who, **query)
            items += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return items

    def register(self, role: str) -> User:
        email = f"u{next(serial)}@example.com"
        body = {"email": email, "password": PASSWORD, "name": f"{role} {email}", "role": role}
        response = self.http.post("/api/auth/register", json=body)
        assert response.status_code == 201, response.text
        data = response.json()
        return User(data["user"]["id"], role, {"Authorization": f"Bearer {data['access_token']}"})

    def by_role(self, role: str) -> list[User]:
        return [u for u in self.users if u.role == role]

    def everyone(self) -> list[User]:
        return [*self.users, *([self.admin] if self.admin else [])]

    def user(self, user_id: str) -> User:
        return next(u for u in self.users if u.id == user_id)

    # -- setup ---------------------------------------------------------------------------------------

    @initialize()
    def setup_people(self) -> None:
        self.users += [self.register("client"), self.register("freelancer"), self.register("freelancer")]
        # An admin exists only through the operator's path (megilance create-admin): write it, then log in.
        email = f"root{next(serial)}@example.com"
        command = RegisterUser(
            user_id=new_id(),
            email=email,
            name="Root",
            role="admin",
            password_hash=self.http.app.state.runtime.passwords.hash(PASSWORD),  # type: ignore[attr-defined]
            created_by="test",
        )
        run_command_sync(self.db, projection(), command, {"actor": "test"}, self.clock)
        response = self.http.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        self.admin = User(command.user_id, "admin", {"Authorization": f"Bearer {token}"})
        self.head_start()

    def head_start(self) -> None:
        """So that short runs reach hiring and contracts: two projects with two bids each, one of them hired."""
        client, first, second = self.users[:3]
        body = {
            "title": "Build an api dashboard",
            "description": "A dashboard over our payments api, with search and export.",
            "category": "web",
            "budget_type": "fixed",
            "budget_min": "100.00",
            "budget_max": "900.00",
            "experience_level": "expert",
            "estimated_duration": "2 weeks",
        }
        for hire in (False, True):
            project_id = self.send("POST", "/api/projects", client, Expect(201), json=body).json()["id"]
            project = self.projects[project_id] = Project(project_id, client.id, 10000, 90000)
            bids = []
            for freelancer in (first, second):
                bid = {"project_id": project_id, "cover_letter": LETTER, "estimated_hours": 10, "hourly_rate": "50"}
                bid["availability"] = "immediate"
                proposal_id = self.send("POST", "/api/proposals", freelancer, Expect(201), json=bid).json()["id"]
                bids.append(
                    self.proposals.setdefault(proposal_id, Proposal(proposal_id, project_id, freelancer.id, client.id))
                )
            if hire:
                self.send("POST", f"/api/proposals/{bids[0].id}/accept", client, Expect(200))
                bids[0].status, bids[1].status = "accepted", "rejected"
                project.status, project.hired = "in_progress", first.id

    # -- users -------------------------------------------------------------------------------------

    @precondition(lambda self: len(self.users) < MAX_USERS)
    @rule(role=st.sampled_from(["client", "freelancer"]))
    def register_user(self, role: str) -> None:
        self.users.append(self.register(role))

    # -- projects ----------------------------------------------------------------------------------

    @rule(data=st.data())
    def post_project(self, data: st.DataObject) -> None:
        actor = data.draw(st.sampled_from(self.users + self.by_role("client") * 2), label="actor")
        low = data.draw(cents, label="budget_min")
        high = low + data.draw(cents, label="budget_extra")
        body = {
            "title": "Project " + data.draw(words, label="title"),
            "description": "We need help with " + data.draw(words, label="description") + " for our launch.",
            "category": data.draw(st.sampled_from(["web", "mobile", "data"]), label="category"),
            "budget_type": "fixed",
            "budget_min": f"{low / 100:.2f}",
            "budget_max": f"{high / 100:.2f}",
            "experience_level": "expert",
            "estimated_duration": "2 weeks",
            "skills": data.draw(st.lists(st.sampled_from(["python", "sql", "react"]), max_size=2), label="skills"),
        }
        expect = Expect(201) if actor.role == "client" else refused(403, "forbidden")
        response = self.send("POST", "/api/projects", actor, expect, json=body)
        if response.status_code == 201:
            project_id = response.json()["id"]
            self.projects[project_id] = Project(project_id, actor.id, low, high)

    @precondition(lambda self: self.projects)
    @rule(data=st.data())
    def edit_project(self, data: st.DataObject) -> None:
        project = data.draw(st.sampled_from(sorted(self.projects.values(), key=lambda p: p.id)), label="project")
        actor = data.draw(st.sampled_from(self.users + [self.user(project.owner)] * 3), label="actor")
        edit = data.draw(st.sampled_from(["none", "title", "budget_min", "budget_max"]), label="edit")
        body: Json = {}
        low, high = project.budget_min, project.budget_max
        if edit == "title":
            body["title"] = "Revised " + data.draw(words, label="title")
        elif edit == "budget_min":
            low = data.draw(cents, label="budget_min")
            body["budget_min"] = f"{low / 100:.2f}"
        elif edit == "budget_max":
            high = data.draw(cents, label="budget_max")
            body["budget_max"] = f"{high / 100:.2f}"
        content = bool(body)
        status = data.draw(st.sampled_from([None, "closed", "cancelled", "completed"]), label="status")
        if status is not None:
            body["status"] = status
        if project.deleted:
            expect = refused(404, "not_found")
        elif actor.id != project.owner:
            expect = refused(403, "forbidden")
        elif content and project.status != "open":
            expect = refused(409, "invalid_state")
        elif content and low > high:
            expect = refused(422, "validation_failed")
        elif status is not None and status != project.status and (project.status, status) not in OWNER_MOVES:
            expect = refused(409, "invalid_state")
        else:
            expect = Expect(200)
        response = self.send("PUT", f"/api/projects/{project.id}", actor, expect, json=body)
        if response.status_code == 200:
            project.budget_min, project.budget_max = low, high
            if status in ("closed", "cancelled"):
                self.reject_submitted(project)
            project.status = status or project.status
            assert response.json()["status"] == project.status

    def reject_submitted(self, project: Project) -> None:
        """A project that ends without a hire rejects every proposal still submitted on it."""
        for proposal in self.proposals.values():
            if proposal.project_id == project.id and proposal.status == "submitted":
                proposal.status = "rejected"

    @precondition(lambda self: self.projects)
    @rule(data=st.data())
    def delete_project(self, data: st.DataObject) -> None:
        project = data.draw(st.sampled_from(sorted(self.projects.values(), key=lambda p: p.id)), label="project")
        actor = data.draw(st.sampled_from(self.users + [self.user(project.owner)] * 2), label="actor")
        if project.deleted:
            expect = refused(404, "not_found")
        elif actor.id != project.owner:
            expect = refused(403, "forbidden")
        elif project.status != "open" or project.hired is not None:
            expect = refused(409, "invalid_state")
        else:
            expect = Expect(204)
        if self.send("DELETE", f"/api/projects/{project.id}", actor, expect).status_code == 204:
            project.deleted = True
            self.reject_submitted(project)

    # -- proposals ---------------------------------------------------------------------------------

    @precondition(lambda self: self.projects)
    @rule(data=st.data())
    def submit_proposal(self, data: st.DataObject) -> None:
        project = data.draw(st.sampled_from(sorted(self.projects.values(), key=lambda p: p.id)), label="project")
        actor = data.draw(st.sampled_from(self.users + self.by_role("freelancer") * 2), label="actor")
        body = {
            "project_id": project.id,
            "cover_letter": LETTER + data.draw(words, label="letter"),
            "estimated_hours": data.draw(st.integers(1, 500), label="hours"),
            "hourly_rate": data.draw(st.sampled_from(["25", "40.50", 60]), label="rate"),
            "availability": data.draw(st.sampled_from(["immediate", "flexible"]), label="availability"),
        }
        duplicate = any(p.project_id == project.id and p.author == actor.id for p in self.proposals.values())
        if actor.role != "freelancer":
            expect = refused(403, "forbidden")
        elif project.deleted:
            expect = refused(404, "not_found")
        elif project.status != "open":
            expect = refused(409, "invalid_state")
        elif duplicate:
            expect = refused(409, "duplicate_proposal")
        else:
            expect = Expect(201)
        response = self.send("POST", "/api/proposals", actor, expect, json=body)
        if response.status_code == 201:
            proposal_id = response.json()["id"]
            self.proposals[proposal_id] = Proposal(proposal_id, project.id, actor.id, project.owner)

    def pick_proposal(self, data: st.DataObject, side: str) -> tuple[Proposal, User]:
        """A proposal (submitted ones more often) and an actor: anyone, but mostly the `side` meant to act."""
        proposals = sorted(self.proposals.values(), key=lambda p: p.id)
        submitted = [p for p in proposals if p.status == "submitted"]
        proposal = data.draw(st.sampled_from(proposals + submitted * 2), label="proposal")
        meant = self.user(proposal.author if side == "author" else proposal.client)
        actor = data.draw(st.sampled_from(self.users + [meant] * 4), label="actor")
        return proposal, actor

    def authored(self, proposal: Proposal, actor: User) -> Expect | None:
        """The refusal a change by `actor` meets, if any (author only, while submitted)."""
        if actor.id not in (proposal.author, proposal.client):
            return refused(404, "not_found")
        if actor.id != proposal.author:
            return refused(403, "forbidden")
        if proposal.status != "submitted":
            return refused(409, "invalid_state")
        return None

    @precondition(lambda self: self.proposals)
    @rule(data=st.data())
    def revise_proposal(self, data: st.DataObject) -> None:
        proposal, actor = self.pick_proposal(data, "author")
        body = {"estimated_hours": data.draw(st.integers(1, 500), label="hours")}
        expect = self.authored(proposal, actor) or Expect(200)
        self.send("PUT", f"/api/proposals/{proposal.id}", actor, expect, json=body)

    @precondition(lambda self: self.proposals)
    @rule(data=st.data())
    def withdraw_proposal(self, data: st.DataObject) -> None:
        proposal, actor = self.pick_proposal(data, "author")
        expect = self.authored(proposal, actor) or Expect(204)
        if self.send("DELETE", f"/api/proposals/{proposal.id}", actor, expect).status_code == 204:
            proposal.status = "withdrawn"

    def decided(self, proposal: Proposal, actor: User) -> Expect | None:
        """The refusal an accept/reject by `actor` meets, if any (project owner, whatever their role, while
        submitted): the author may read it (403), anyone else is told it does not exist (404)."""
        if actor.id not in (proposal.author, proposal.client):
            return refused(404, "not_found")
        if actor.id != proposal.client:
            return refused(403, "forbidden")
        if proposal.status != "submitted":
            return refused(409, "invalid_state")
        return None

    @precondition(lambda self: self.proposals)
    @rule(data=st.data())
    def accept_proposal(self, data: st.DataObject) -> None:
        proposal, actor = self.pick_proposal(data, "client")
        project = self.projects[proposal.project_id]
        expect = self.decided(proposal, actor)
        if expect is None:
            if project.deleted:
                expect = refused(404, "not_found")
            elif project.status != "open":
                expect = refused(409, "invalid_state")
            else:
                expect = Expect(200)
        response = self.send("POST", f"/api/proposals/{proposal.id}/accept", actor, expect)
        if response.status_code == 200:
            assert response.json()["status"] == "accepted"
            for other in self.proposals.values():
                if other.project_id == project.id and other.status == "submitted":
                    other.status = "rejected"
            proposal.status = "accepted"
            project.status, project.hired = "in_progress", proposal.author

    @precondition(lambda self: self.proposals)
    @rule(data=st.data())
    def reject_proposal(self, data: st.DataObject) -> None:
        proposal, actor = self.pick_proposal(data, "client")
        expect = self.decided(proposal, actor) or Expect(200)
        if self.send("POST", f"/api/proposals/{proposal.id}/reject", actor, expect).status_code == 200:
            proposal.status = "rejected"

    # -- contracts ---------------------------------------------------------------------------------

    @precondition(lambda self: self.projects)
    @rule(data=st.data())
    def create_contract(self, data: st.DataObject) -> None:
        projects = sorted(self.projects.values(), key=lambda p: p.id)
        hired = [p for p in projects if p.hired is not None]
        project = data.draw(st.sampled_from(projects + hired * 3), label="project")
        actor = data.draw(st.sampled_from(self.users + [self.user(project.owner)] * 3), label="actor")
        candidates = [u.id for u in self.by_role("freelancer")]
        freelancer_id = data.draw(st.sampled_from(candidates + [project.hired or candidates[0]] * 3), label="hire")
        amount = data.draw(st.sampled_from(["1250", "99.5", "0.000001", 300]), label="amount")
        body: Json = {"project_id": project.id, "freelancer_id": freelancer_id, "amount": amount}
        if data.draw(st.booleans(), label="milestones"):
            body["milestones"] = [{"title": "All of it", "amount": amount}]
        live = [c for c in self.contracts.values() if c.project_id == project.id and c.status != "cancelled"]
        if project.deleted:
            expect = refused(404, "not_found")
        elif actor.id != project.owner:  # the owner, whatever their role (a freelancer never is one here)
            expect = refused(403, "forbidden")
        elif project.hired is None or project.status != "in_progress":
            expect = refused(409, "invalid_state")
        elif freelancer_id != project.hired:
            expect = refused(422, "validation_failed")
        elif live:
            expect = refused(409, "conflict")
        else:
            expect = Expect(201)
        response = self.send("POST", "/api/contracts", actor, expect, json=body)
        if response.status_code == 201:
            contract_id = response.json()["id"]
            self.contracts[contract_id] = Contract(contract_id, project.id, actor.id, freelancer_id)

    def pick_contract(self, data: st.DataObject) -> tuple[Contract, User]:
        contract = data.draw(st.sampled_from(sorted(self.contracts.values(), key=lambda c: c.id)), label="contract")
        parties = [self.user(contract.client), self.user(contract.freelancer)]
        actor = data.draw(st.sampled_from(self.users + parties * 2), label="actor")
        return contract, actor

    @precondition(lambda self: self.contracts)
    @rule(data=st.data())
    def move_contract(self, data: st.DataObject) -> None:
        contract, actor = self.pick_contract(data)
        status = data.draw(st.sampled_from(["completed", "cancelled", "disputed", "active"]), label="status")
        side = "client" if actor.id == contract.client else "freelancer"
        if actor.id not in (contract.client, contract.freelancer):
            expect = refused(404, "not_found")
        elif status == contract.status:
            expect = Expect(200)
        elif contract.status != "active" or status not in CONTRACT_MOVES:
            expect = refused(409, "invalid_state")
        elif side not in CONTRACT_MOVES[status]:
            expect = refused(403, "forbidden")
        else:
            expect = Expect(200)
        response = self.send("PUT", f"/api/contracts/{contract.id}", actor, expect, json={"status": status})
        if response.status_code == 200:
            contract.status = status
            assert response.json()["status"] == status

    @precondition(lambda self: self.contracts)
    @rule(data=st.data())
    def cancel_contract(self, data: st.DataObject) -> None:
        contract, actor = self.pick_contract(data)
        if actor.id not in (contract.client, contract.freelancer):
            expect = refused(404, "not_found")
        elif actor.id != contract.client:
            expect = refused(403, "forbidden")
        elif contract.status != "active":
            expect = refused(409, "invalid_state")
        else:
            expect = Expect(204)
        if self.send("DELETE", f"/api/contracts/{contract.id}", actor, expect).status_code == 204:
            contract.status = "cancelled"

    # -- portfolio ---------------------------------------------------------------------------------

    @rule(data=st.data())
    def add_portfolio_item(self, data: st.DataObject) -> None:
        actor = data.draw(st.sampled_from(self.users + self.by_role("freelancer") * 2), label="actor")
        body = {
            "title": data.draw(words, label="title"),
            "image_url": f"https://img.example.com/{next(serial)}.png",
            "tags": data.draw(st.lists(st.sampled_from(WORDS), max_size=3), label="tags"),
        }
        expect = Expect(201) if actor.role == "freelancer" else refused(403, "forbidden")
        response = self.send("POST", "/api/portfolio", actor, expect, json=body)
        if response.status_code == 201:
            item_id = response.json()["id"]
            self.items[item_id] = Item(item_id, actor.id)

    @precondition(lambda self: self.items)
    @rule(data=st.data())
    def remove_portfolio_item(self, data: st.DataObject) -> None:
        item = data.draw(st.sampled_from(sorted(self.items.values(), key=lambda i: i.id)), label="item")
        actor = data.draw(st.sampled_from(self.users + [self.user(item.owner)] * 2), label="actor")
        if item.removed:
            expect = refused(404, "not_found")
        else:
            expect = refused(403, "forbidden") if actor.id != item.owner else Expect(204)
        if self.send("DELETE", f"/api/portfolio/{item.id}", actor, expect).status_code == 204:
            item.removed = True

    # -- looking -----------------------------------------------------------------------------------

    @precondition(lambda self: self.proposals)
    @rule(data=st.data())
    def peek_proposal(self, data: st.DataObject) -> None:
        proposal = data.draw(st.sampled_from(sorted(self.proposals.values(), key=lambda p: p.id)), label="proposal")
        viewer = data.draw(st.sampled_from(self.everyone()), label="viewer")
        allowed = viewer.role == "admin" or viewer.id in (proposal.author, proposal.client)
        response = self.send(
            "GET", f"/api/proposals/{proposal.id}", viewer, Expect(200) if allowed else refused(404, "not_found")
        )
        if allowed:
            assert response.json()["status"] == proposal.status

    @precondition(lambda self: self.contracts)
    @rule(data=st.data())
    def peek_contract(self, data: st.DataObject) -> None:
        contract = data.draw(st.sampled_from(sorted(self.contracts.values(), key=lambda c: c.id)), label="contract")
        viewer = data.draw(st.sampled_from(self.everyone()), label="viewer")
        allowed = viewer.role == "admin" or viewer.id in (contract.client, contract.freelancer)
        response = self.send(
            "GET", f"/api/contracts/{contract.id}", viewer, Expect(200) if allowed else refused(404, "not_found")
        )
        if allowed:
            assert response.json()["status"] == contract.status

    @precondition(lambda self: self.projects or self.items)
    @rule(data=st.data())
    def peek_public(self, data: st.DataObject) -> None:
        viewer = data.draw(st.sampled_from(self.everyone()), label="viewer")
        if self.projects:
            project = data.draw(st.sampled_from(sorted(self.projects.values(), key=lambda p: p.id)), label="project")
            expect = refused(404, "not_found") if project.deleted else Expect(200)
            response = self.send("GET", f"/api/projects/{project.id}", viewer, expect)
            if not project.deleted:
                assert response.json()["status"] == project.status
        if self.items:
            item = data.draw(st.sampled_from(sorted(self.items.values(), key=lambda i: i.id)), label="item")
            expect = refused(404, "not_found") if item.removed else Expect(200)
            self.send("GET", f"/api/portfolio/{item.id}", viewer, expect)

    # -- invariants --------------------------------------------------------------------------------

    @invariant()
    def at_most_one_accepted_proposal_per_project(self) -> None:
        doubled = self.db.execute(
            "SELECT project_id FROM rm_proposals WHERE status = 'accepted' GROUP BY project_id HAVING COUNT(*) > 1"
        ).fetchall()
        assert doubled == []
        in_log = self.db.execute(
            "SELECT json_extract(data, '$.project_id') FROM events WHERE type = 'ProposalAccepted' "
            "GROUP BY 1 HAVING COUNT(*) > 1"
        ).fetchall()
        assert in_log == []

    @invariant()
    def proposals_count_matches_the_log(self) -> None:
        logged: dict[str, int] = {}
        for project_id, kind, n in self.db.execute(
            "SELECT json_extract(data, '$.project_id'), type, COUNT(*) FROM events "
            "WHERE type IN ('ProposalSubmitted', 'ProposalWithdrawn') GROUP BY 1, 2"
        ).fetchall():
            logged[project_id] = logged.get(project_id, 0) + (n if kind == "ProposalSubmitted" else -n)
        for project_id, proposals_count in self.db.execute("SELECT id, proposals_count FROM rm_projects").fetchall():
            assert proposals_count == logged.get(project_id, 0), project_id

    def log_moved(self) -> bool:
        """Did anything commit since the HTTP read checks last ran? (Else every read is the same cached answer.)"""
        head = int(self.db.execute("SELECT COALESCE(MAX(position), 0) FROM events").fetchone()[0])
        moved, self.checked_at = head != self.checked_at, head
        return moved

    @invariant()
    def reads_agree_with_the_model(self) -> None:
        if self.admin is None or not self.log_moved():
            return
        self.lists_show_exactly_what_each_caller_may_see()
        self.the_board_and_portfolios_agree_with_the_model()

    def lists_show_exactly_what_each_caller_may_see(self) -> None:
        assert self.admin is not None
        for viewer in self.everyone():
            mine = {
                p.id for p in self.proposals.values() if viewer.role == "admin" or viewer.id in (p.author, p.client)
            }
            proposals = self.listed("/api/proposals", viewer)
            assert [p["id"] for p in proposals] == sorted(mine, reverse=True), viewer.role
            contracts = self.listed("/api/contracts", viewer)
            visible = {
                c.id for c in self.contracts.values() if viewer.role == "admin" or viewer.id in (c.client, c.freelancer)
            }
            assert [c["id"] for c in contracts] == sorted(visible, reverse=True), viewer.role
            if viewer.role == "admin":
                assert {p["id"]: p["status"] for p in proposals} == {p.id: p.status for p in self.proposals.values()}
                assert {c["id"]: c["status"] for c in contracts} == {c.id: c.status for c in self.contracts.values()}

    def the_board_and_portfolios_agree_with_the_model(self) -> None:
        assert self.admin is not None
        board = self.listed("/api/projects", self.admin)
        live = {p.id: p for p in self.projects.values() if not p.deleted}
        assert {p["id"]: p["status"] for p in board} == {p.id: p.status for p in live.values()}
        for row in board:
            project = live[row["id"]]
            assert row["client_id"] == project.owner
            assert (row["budget_min"], row["budget_max"]) == (
                f"{project.budget_min / 100:.2f}",
                f"{project.budget_max / 100:.2f}",
            )
        for freelancer in self.by_role("freelancer"):
            shown = self.listed("/api/portfolio", self.admin, freelancer_id=freelancer.id)
            kept = {i.id for i in self.items.values() if i.owner == freelancer.id and not i.removed}
            assert [i["id"] for i in shown] == sorted(kept, reverse=True)


Marketplace.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestMarketplace = Marketplace.TestCase
