"""Multi-region clusters of real `megilance serve` processes on 127.0.0.1: one primary, edges that follow it.

A process is the primary when REGION == PRIMARY_REGION; an edge gets its own REGION plus PRIMARY_URL and
REPLICATION_TOKEN, and keeps its read store in its own DATA_DIR (`read-<region>.db`).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.e2e.server import LiveServer

T = TypeVar("T")

PRIMARY_REGION = "iad"
REPLICATION_TOKEN = "e2e-replication-" + "r" * 40
READY_PATH = "/api/health/ready"
_counter = itertools.count()


def primary_env(token: str = REPLICATION_TOKEN) -> dict[str, str]:
    return {"REGION": PRIMARY_REGION, "PRIMARY_REGION": PRIMARY_REGION, "REPLICATION_TOKEN": token}


def edge_env(region: str, primary_url: str, token: str = REPLICATION_TOKEN) -> dict[str, str]:
    return {
        "REGION": region,
        "PRIMARY_REGION": PRIMARY_REGION,
        "PRIMARY_URL": primary_url,
        "REPLICATION_TOKEN": token,
    }


def start_primary(*, data_dir: Path | None = None, port: int | None = None) -> LiveServer:
    return LiveServer.start(primary_env(), data_dir=data_dir, port=port)


def start_edge(
    region: str,
    primary: LiveServer,
    *,
    token: str = REPLICATION_TOKEN,
    env: dict[str, str] | None = None,
    data_dir: Path | None = None,
    port: int | None = None,
    wait: bool = True,
) -> LiveServer:
    return LiveServer.start(
        {**edge_env(region, primary.url, token), **(env or {})}, data_dir=data_dir, port=port, wait=wait
    )


def wait_until(
    probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.01, last: Callable[[], Any] = str
) -> T:
    """Call `probe` until it returns something other than None; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not reached within {timeout:.1f}s (last: {last()})")
        pause.wait(interval)


@dataclass
class Account:
    id: str
    email: str
    access_token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def register(client: httpx.Client, base_url: str, role: str = "client") -> tuple[Account, httpx.Response]:
    email = f"{role}-{uuid.uuid4().hex[:12]}@example.com"
    response = client.post(
        base_url + "/api/auth/register",
        json={"email": email, "password": "correct horse battery", "name": f"E2E {role}", "role": role},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return Account(body["user"]["id"], email, body["access_token"]), response


def project_body(label: str = "") -> dict[str, Any]:
    n = next(_counter)
    return {
        "title": f"Replicated project {n} {label}".strip(),
        "description": f"A project written in one region and read in another ({n}).",
        "category": "engineering",
        "budget_type": "fixed",
        "budget_min": "100.00",
        "budget_max": "250.50",
        "experience_level": "intermediate",
        "estimated_duration": "2 weeks",
        "skills": ["python", "sqlite"],
    }


def post_project(client: httpx.Client, base_url: str, account: Account, label: str = "") -> httpx.Response:
    return client.post(base_url + "/api/projects", json=project_body(label), headers=account.auth)


def consistency_token(response: httpx.Response) -> int:
    return int(response.headers["x-consistency-token"])


def readiness(client: httpx.Client, base_url: str) -> tuple[int, dict[str, Any]]:
    response = client.get(base_url + READY_PATH)
    return response.status_code, response.json()


def position(client: httpx.Client, base_url: str) -> int:
    """The read-store position a node reports (also when it is not ready)."""
    return int(readiness(client, base_url)[1]["checks"]["position"]["position"])


@dataclass
class Cluster:
    """A primary (with one account, `owner`) and named edges; `close()` stops every process, removes workdirs."""

    primary: LiveServer
    owner: Account
    client: httpx.Client
    edges: dict[str, LiveServer] = field(default_factory=dict)
    retired: list[LiveServer] = field(default_factory=list)

    @classmethod
    @contextlib.contextmanager
    def run(cls, *edge_regions: str) -> Iterator[Cluster]:
        """Start a primary, give it one write (the owner's account), then start the edges."""
        client = httpx.Client(timeout=10.0)
        primary = start_primary()
        try:
            # Edges start after the primary has an event: with an empty log an edge reports 503 until its first
            # long-poll returns (replication/replicator.py WAIT_MS = 20 s); a test of its own covers that case.
            owner, _ = register(client, primary.url)
        except BaseException:
            primary.stop()
            primary.cleanup()
            client.close()
            raise
        cluster = cls(primary, owner, client)
        try:
            for region in edge_regions:
                cluster.edges[region] = start_edge(region, primary)
            yield cluster
        finally:
            cluster.close()

    def replace_primary(self, server: LiveServer) -> None:
        """A restarted primary (same data_dir and port); the old one's workdir is removed at close."""
        self.retired.append(self.primary)
        self.primary = server

    def close(self) -> None:
        self.client.close()
        for edge in self.edges.values():
            with contextlib.suppress(Exception):
                edge.stop()
        # SIGKILL: a SIGTERMed primary waits out uvicorn's 10 s graceful timeout on feed long-polls that outlive
        # the edges that opened them (test_regions.py measures that shutdown on its own).
        for server in [self.primary, *self.retired]:
            server.kill()
        servers = [*self.edges.values(), self.primary, *self.retired]
        for server in servers:
            server.cleanup()
