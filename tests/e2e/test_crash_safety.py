"""Crash safety: kill -9 real `megilance serve` processes under load and prove nothing acknowledged is lost.

Primary: several threads register users, post projects, send proposals and accept them while the process is
SIGKILLed at random points (at least KILLS times) and restarted on the same data directory and port. Every write
that got a 2xx is then found by id (with the X-Consistency-Token it returned), `megilance verify` exits 0, and the
log shows no half-applied command.

Edge: SIGKILLed at least EDGE_KILLS times while it catches up with a seeded primary; after every kill its read
store equals a replay of the primary's log up to its checkpoint, and in the end it equals a replay of the whole log.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from core import store
from core.db import Connection, connect
from migrations.runner import migrate as run_migrations
from queries.projection import checkpoint
from queries.rebuild import differences, rebuild
from queries.registry import projection
from tests.e2e.server import TEST_ENV, LiveServer, free_port

KILLS = 20
EDGE_KILLS = 5
REPLICATION_TOKEN = "crash-" + "r" * 40
PASSWORD = "crash-password-1"
CLIENTS, FREELANCERS = 3, 4
MAX_WRITES_BETWEEN_KILLS = 25  # each kill comes after 1..this many acknowledged writes since the restart
WAIT_S = 60.0  # any single wait for progress
Json = dict[str, Any]


def megilance(*args: str, data_dir: Path, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("megilance")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "ops.cli"]
    env = {**os.environ, **TEST_ENV, "DATA_DIR": str(data_dir)}
    for name in ("DATABASE_URL", "REGION", "FLY_REGION", "PRIMARY_REGION"):
        env.pop(name, None)
    return subprocess.run(
        [*command, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False, cwd=data_dir
    )


def poll(probe: Callable[[], bool], timeout: float, what: str, process: subprocess.Popen[bytes] | None = None) -> None:
    """Call `probe` until it is true; fail after `timeout` seconds (the pause is a wait on the process or an event)."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not probe():
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not reached within {timeout:.0f}s")
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.005)
        else:
            pause.wait(0.005)


# -- what the writers saw --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ack:
    """A write the server acknowledged with a 2xx."""

    kind: str  # user | project | proposal | accept
    id: str  # the user, project or proposal id it returned
    token: str  # the actor's access token (to read it back)
    position: int  # its X-Consistency-Token
    body: Json


@dataclass
class Ledger:
    acks: list[Ack] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)  # statuses no write here may get (5xx above all)
    statuses: Counter[str] = field(default_factory=Counter)
    transport_errors: int = 0
    changed: threading.Condition = field(default_factory=threading.Condition)

    def ack(self, kind: str, ident: str, token: str, response: httpx.Response) -> None:
        ack = Ack(kind, ident, token, int(response.headers["x-consistency-token"]), response.json())
        with self.changed:
            self.acks.append(ack)
            self.changed.notify_all()

    def count(self) -> int:
        with self.changed:
            return len(self.acks)

    def wait_for(self, total: int, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: len(self.acks) >= total, timeout)


@dataclass
class Actor:
    id: str
    role: str
    token: str


class Load:
    """Writer threads against a fixed URL; each waits (on `up`) while the server is down and then carries on."""

    def __init__(self, url: str, actors: list[Actor], ledger: Ledger, seed: int) -> None:
        self.url = url
        self.actors = actors
        self.ledger = ledger
        self.up = threading.Event()
        self.stop = threading.Event()
        self.seed = seed
        self.emails = itertools.count()
        self.threads = [
            threading.Thread(target=self._run, args=(actor, i), name=f"load-{i}", daemon=True)
            for i, actor in enumerate([*actors, None])  # None: a thread that registers new accounts
        ]

    def __enter__(self) -> Load:
        self.up.set()
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.up.set()
        for thread in self.threads:
            thread.join(timeout=30)
        assert not any(t.is_alive() for t in self.threads), "a load thread did not stop"

    def _run(self, actor: Actor | None, index: int) -> None:
        rng = random.Random(self.seed * 100 + index)
        with httpx.Client(base_url=self.url, timeout=10.0) as http:
            while not self.stop.is_set():
                if not self.up.wait(timeout=1.0):
                    continue
                try:
                    self._step(http, actor, rng)
                except httpx.TransportError:  # the server was killed under us: wait for the restart
                    with self.ledger.changed:
                        self.ledger.transport_errors += 1
                    self.up.wait(timeout=1.0)

    def _check(self, response: httpx.Response, allowed: tuple[int, ...] = ()) -> bool:
        """True on 2xx; a tolerated status (a race or a retried lost response) is False; anything else noted."""
        key = f"{response.request.method} {response.request.url.path.split('/')[2]} {response.status_code}"
        with self.ledger.changed:
            self.ledger.statuses[key] += 1
        if 200 <= response.status_code < 300:
            return True
        if response.status_code not in allowed:
            with self.ledger.changed:
                self.ledger.unexpected.append(f"{key}: {response.text[:300]}")
        return False

    def _step(self, http: httpx.Client, actor: Actor | None, rng: random.Random) -> None:
        if actor is None:
            email = f"new-{self.seed}-{next(self.emails)}@example.com"
            body = {"email": email, "password": PASSWORD, "name": "New", "role": rng.choice(["client", "freelancer"])}
            response = http.post("/api/auth/register", json=body)
            if self._check(response):  # a fresh e-mail every time: nothing but 201 is acceptable
                self.ledger.ack("user", response.json()["user"]["id"], response.json()["access_token"], response)
            return
        auth = {"Authorization": f"Bearer {actor.token}"}
        if actor.role == "client":
            if rng.random() < 0.6:
                response = http.post("/api/projects", json=project_body(rng), headers=auth)
                if self._check(response):
                    self.ledger.ack("project", response.json()["id"], actor.token, response)
                return
            listing = http.get("/api/proposals", params={"status": "submitted", "limit": 50}, headers=auth)
            if not self._check(listing) or not listing.json()["items"]:
                return
            proposal = rng.choice(listing.json()["items"])
            response = http.post(f"/api/proposals/{proposal['id']}/accept", headers=auth)
            if self._check(response, (409,)):  # 409: the project was awarded meanwhile (or a lost 200 retried)
                self.ledger.ack("accept", proposal["id"], actor.token, response)
            return
        listing = http.get("/api/projects", params={"status": "open", "limit": 50}, headers=auth)
        if not self._check(listing) or not listing.json()["items"]:
            return
        project = rng.choice(listing.json()["items"])
        response = http.post("/api/proposals", json=proposal_body(project["id"], rng), headers=auth)
        if self._check(response, (409,)):  # 409: already bid (a lost 201) or the project was just awarded
            self.ledger.ack("proposal", response.json()["id"], actor.token, response)


def project_body(rng: random.Random) -> Json:
    n = rng.randrange(10**9)
    return {
        "title": f"Crash-safe project {n}",
        "description": f"Build something that survives kill -9, number {n}.",
        "category": rng.choice(["web", "mobile", "data"]),
        "budget_type": "fixed",
        "budget_min": "100.00",
        "budget_max": f"{rng.randint(100, 900)}.00",
        "experience_level": "intermediate",
        "estimated_duration": "2 weeks",
        "skills": ["python", "sqlite"],
    }


def proposal_body(project_id: str, rng: random.Random) -> Json:
    return {
        "project_id": project_id,
        "cover_letter": "I have shipped exactly this kind of system before and can start right away. " * 2,
        "estimated_hours": rng.randint(1, 200),
        "hourly_rate": f"{rng.randint(20, 150)}.00",
        "availability": "immediate",
    }


def register(http: httpx.Client, email: str, role: str) -> Actor:
    response = http.post("/api/auth/register", json={"email": email, "password": PASSWORD, "name": role, "role": role})
    assert response.status_code == 201, response.text
    body = response.json()
    return Actor(body["user"]["id"], role, body["access_token"])


# -- what the log must say -------------------------------------------------------------------------------------


def events(conn: Connection) -> list[tuple[int, str, str, Json]]:
    rows = conn.execute("SELECT position, stream_id, type, data FROM events ORDER BY position").fetchall()
    return [(int(r[0]), str(r[1]), str(r[2]), orjson.loads(r[3])) for r in rows]


def half_applied(conn: Connection) -> list[str]:
    """Every multi-part command is in the log whole, or not at all."""
    problems: list[str] = []
    log = events(conn)
    at = {position: (kind, data) for position, _, kind, data in log}
    claims = {
        (str(k), str(key)): str(owner)
        for k, key, owner in conn.execute("SELECT kind, key, owner FROM claims").fetchall()
    }
    credentials = {str(r[0]) for r in conn.execute("SELECT user_id FROM credentials").fetchall()}
    families = {str(r[0]) for r in conn.execute("SELECT family_id FROM refresh_tokens").fetchall()}
    for position, stream_id, kind, data in log:
        if kind == "ProposalAccepted":
            nxt = at.get(position + 1)
            if nxt is None or nxt[0] != "ProjectAwarded" or nxt[1]["proposal_id"] != data["proposal_id"]:
                problems.append(f"ProposalAccepted at {position} without its ProjectAwarded at {position + 1}: {nxt}")
        elif kind == "ProjectAwarded":
            prev = at.get(position - 1)
            if prev is None or prev[0] != "ProposalAccepted" or prev[1]["proposal_id"] != data["proposal_id"]:
                problems.append(f"ProjectAwarded at {position} without its ProposalAccepted at {position - 1}")
        elif kind == "ProposalSubmitted":
            key = ("proposal", f"{data['project_id']}:{data['freelancer_id']}")
            if claims.get(key) != data["proposal_id"]:
                problems.append(
                    f"ProposalSubmitted {data['proposal_id']} at {position}: claim {key} is {claims.get(key)}"
                )
        elif kind == "UserRegistered":
            if stream_id not in credentials:
                problems.append(f"UserRegistered {stream_id} at {position} has no credentials row")
            if not any(k == "email" and owner == stream_id for (k, _), owner in claims.items()):
                problems.append(f"UserRegistered {stream_id} at {position} has no e-mail claim")
        elif kind == "SessionOpened" and stream_id not in families:
            problems.append(f"SessionOpened {stream_id} at {position} has no refresh token row")
    submitted = {data["proposal_id"] for _, _, kind, data in log if kind == "ProposalSubmitted"}
    for (claim_kind, claim_key), owner in claims.items():
        if claim_kind == "proposal" and owner not in submitted:
            problems.append(f"proposal claim {claim_key} -> {owner} without a ProposalSubmitted event")
    return problems


def read_store_inconsistencies(conn: Connection) -> list[str]:
    """Counts and states the read store must agree on, whatever the moment of the crash."""
    problems: list[str] = []
    head, at = store.head(conn), checkpoint(conn)
    if head != at:
        problems.append(f"projection checkpoint {at} != log head {head}")
    posted = conn.execute("SELECT COUNT(*) FROM events WHERE type = 'ProjectPosted'").fetchone()[0]
    projects = conn.execute("SELECT COUNT(*) FROM rm_projects").fetchone()[0]
    if posted != projects:
        problems.append(f"{posted} ProjectPosted events but {projects} projects")
    sent = conn.execute("SELECT COUNT(*) FROM events WHERE type = 'ProposalSubmitted'").fetchone()[0]
    proposals = conn.execute("SELECT COUNT(*) FROM rm_proposals").fetchone()[0]
    if sent != proposals:
        problems.append(f"{sent} ProposalSubmitted events but {proposals} proposals")
    wrong_counts = conn.execute(
        "SELECT p.id, p.proposals_count, COUNT(r.id) FROM rm_projects p "
        "LEFT JOIN rm_proposals r ON r.project_id = p.id AND r.status != 'withdrawn' "
        "GROUP BY p.id HAVING p.proposals_count != COUNT(r.id)"
    ).fetchall()
    problems += [f"project {r[0]}: proposals_count {r[1]}, proposals {r[2]}" for r in wrong_counts]
    awarded = conn.execute(
        "SELECT p.id, SUM(r.status = 'accepted'), SUM(r.status = 'submitted') FROM rm_projects p "
        "JOIN rm_proposals r ON r.project_id = p.id WHERE p.status = 'in_progress' GROUP BY p.id"
    ).fetchall()
    for project_id, accepted, still_submitted in awarded:
        if accepted != 1 or still_submitted:
            problems.append(f"in-progress project {project_id}: {accepted} accepted, {still_submitted} submitted")
    orphans = conn.execute(
        "SELECT r.id FROM rm_proposals r JOIN rm_projects p ON p.id = r.project_id "
        "WHERE r.status = 'accepted' AND p.status != 'in_progress'"
    ).fetchall()
    problems += [f"accepted proposal {r[0]} on a project that is not in progress" for r in orphans]
    return problems


def missing_acks(url: str, acks: list[Ack]) -> list[str]:
    """Read every acknowledged write back by id, at (at least) the position its answer named."""
    missing: list[str] = []
    with httpx.Client(base_url=url, timeout=10.0) as http:
        for ack in acks:
            headers = {"Authorization": f"Bearer {ack.token}", "X-Consistency-Token": str(ack.position)}
            path = {
                "user": "/api/auth/me",
                "project": f"/api/projects/{ack.id}",
                "proposal": f"/api/proposals/{ack.id}",
                "accept": f"/api/proposals/{ack.id}",
            }[ack.kind]
            response = http.get(path, headers=headers)
            if response.status_code != 200:
                missing.append(f"{ack.kind} {ack.id} (token {ack.position}): GET {path} -> {response.status_code}")
                continue
            got = response.json()
            if got["id"] != ack.id:
                missing.append(f"{ack.kind} {ack.id}: GET {path} answered id {got['id']}")
            elif ack.kind == "accept" and got["status"] != "accepted":
                missing.append(f"accepted proposal {ack.id} reads back as {got['status']}")
            elif ack.kind == "project" and got["title"] != ack.body["title"]:
                missing.append(f"project {ack.id} reads back with title {got['title']!r}")
            if ack.kind == "accept":
                project = http.get(f"/api/projects/{got['project_id']}", headers=headers)
                if project.status_code != 200 or project.json()["status"] != "in_progress":
                    missing.append(f"project of accepted proposal {ack.id}: {project.status_code} {project.text[:200]}")
    return missing


@pytest.fixture
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="megilance-crash-") as path:
        yield Path(path)


def test_primary_survives_kill_9_under_concurrent_writes(workdir: Path) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    data_dir, env, port = workdir / "data", {"REPLICATION_TOKEN": REPLICATION_TOKEN}, free_port()
    server = LiveServer.start(env, workdir=workdir, data_dir=data_dir, port=port)
    try:
        with httpx.Client(base_url=server.url, timeout=10.0) as http:
            actors = [register(http, f"client{i}@example.com", "client") for i in range(CLIENTS)]
            actors += [register(http, f"freelancer{i}@example.com", "freelancer") for i in range(FREELANCERS)]
        ledger = Ledger()
        with Load(server.url, actors, ledger, seed) as load:
            for kill in range(KILLS):
                target = ledger.count() + rng.randint(1, MAX_WRITES_BETWEEN_KILLS)
                assert ledger.wait_for(target, WAIT_S), (
                    f"seed {seed}, kill {kill}: only {ledger.count()} writes acknowledged, waited for {target}; "
                    f"unexpected: {ledger.unexpected[:5]}"
                )
                load.up.clear()
                assert server.kill() == -9
                server = LiveServer.start(env, workdir=workdir, data_dir=data_dir, port=port)
                load.up.set()
            final = ledger.count() + 5
            assert ledger.wait_for(final, WAIT_S), f"seed {seed}: no progress after the last restart"
        server.kill()  # once more, idle: verify reads the files exactly as a crash leaves them

        summary = (
            f"seed {seed}: {len(ledger.acks)} acknowledged writes "
            f"({dict(Counter(a.kind for a in ledger.acks))}), {ledger.transport_errors} transport errors"
        )
        assert not ledger.unexpected, f"{summary}; unexpected answers: {ledger.unexpected[:10]}"
        assert {a.kind for a in ledger.acks} >= {"user", "project", "proposal", "accept"}, summary

        verified = megilance("verify", data_dir=data_dir)
        assert verified.returncode == 0, f"{summary}\n{verified.stdout}\n{verified.stderr[-3000:]}"

        conn = connect(str(data_dir / "megilance.db"), synchronous="NORMAL")
        try:
            assert half_applied(conn) == [], summary
            assert read_store_inconsistencies(conn) == [], summary
            logged = {str(r[0]) for r in conn.execute("SELECT DISTINCT stream_id FROM events").fetchall()}
            head = store.head(conn)
        finally:
            conn.close()
        assert [a for a in ledger.acks if a.id not in logged] == [], f"{summary}: acknowledged, not in the log"
        assert max(a.position for a in ledger.acks) <= head

        server = LiveServer.start(env, workdir=workdir, data_dir=data_dir, port=port)
        assert missing_acks(server.url, ledger.acks) == [], summary
    finally:
        server.stop()


# -- the edge ---------------------------------------------------------------------------------------------------


def replay(primary_db: Path, upto: int, scratch: Path) -> Connection:
    """A fresh read store built from the primary's log up to `upto` (what `megilance verify` compares against)."""
    conn = connect(str(scratch), synchronous="NORMAL")
    run_migrations(conn, ("read",))
    live = connect(str(primary_db), synchronous="NORMAL")
    try:
        rebuild(conn, projection(), store.read_until(live, upto))
    finally:
        live.close()
    return conn


def edge_differences(edge_db: Path, primary_db: Path, scratch: Path) -> tuple[int, list[str]]:
    edge = connect(str(edge_db), synchronous="NORMAL")
    try:
        at = checkpoint(edge)
        replayed = replay(primary_db, at, scratch)
        try:
            return at, differences(edge, replayed, projection())
        finally:
            replayed.close()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{scratch}{suffix}").unlink(missing_ok=True)
    finally:
        edge.close()


def edge_position(http: httpx.Client, server: LiveServer) -> int:
    try:
        body = http.get(server.url + "/api/health/ready").json()
        return int(body["checks"]["position"]["position"])
    except (httpx.HTTPError, ValueError, KeyError):
        return -1


def wait_edge_at(http: httpx.Client, server: LiveServer, target: int) -> None:
    poll(lambda: edge_position(http, server) >= target, WAIT_S, f"edge at position {target}", server.process)


def test_edge_survives_kill_9_during_catch_up(workdir: Path) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    primary_dir, edge_dir = workdir / "primary", workdir / "edge"
    primary_dir.mkdir()
    seeded = megilance("seed-demo", "--users", "60", "--projects", "1500", "--proposals", "9000", data_dir=primary_dir)
    assert seeded.returncode == 0, seeded.stderr[-3000:]
    primary_db = primary_dir / "megilance.db"
    primary = LiveServer.start({"REPLICATION_TOKEN": REPLICATION_TOKEN}, workdir=workdir / "p", data_dir=primary_dir)
    edge_env = {
        "REGION": "edge",
        "PRIMARY_REGION": "primary",
        "PRIMARY_URL": primary.url,
        "REPLICATION_TOKEN": REPLICATION_TOKEN,
    }
    port = free_port()
    edge = LiveServer.start(edge_env, workdir=workdir / "e", data_dir=edge_dir, port=port, wait=False)
    try:
        with httpx.Client(timeout=2.0) as http:
            head = int(http.get(primary.url + "/api/health/ready").json()["checks"]["position"]["position"])
            assert head > 10_000, f"the seeded log is too short to kill the edge during catch-up ({head})"
            kills: list[int] = []
            last = 0
            while len(kills) < EDGE_KILLS:
                left = EDGE_KILLS - len(kills)
                step = max(1, (head - last) // (left + 1))
                target = last + rng.randint(max(1, step // 2), step)
                wait_edge_at(http, edge, target)
                assert edge.kill() == -9
                at, found = edge_differences(edge_dir / "read-edge.db", primary_db, workdir / "replay.db")
                assert found == [], f"seed {seed}: after kill {len(kills) + 1} at {at}: {found}"
                assert last <= at < head, f"seed {seed}: the kill at {at} was not during catch-up (head {head})"
                kills.append(at)
                last = at
                edge = LiveServer.start(edge_env, workdir=workdir / "e", data_dir=edge_dir, port=port, wait=False)
            wait_edge_at(http, edge, head)
        assert edge.kill() == -9
        at, found = edge_differences(edge_dir / "read-edge.db", primary_db, workdir / "replay.db")
        assert (at, found) == (head, []), f"seed {seed}, kills at {kills}"
        assert len(set(kills)) >= 2, f"seed {seed}: the edge made no progress between kills: {kills}"
    finally:
        edge.stop()
        primary.stop()
