"""Backup to S3 with the real Litestream, end to end: a primary loses its disk and comes back from S3;
S3 goes away and comes back while the service keeps serving."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.backupkit import S3Link, backup_env, children, gone, megilance, poll, wait_replicated
from tests.e2e.regions import (
    Account,
    consistency_token,
    edge_env,
    position,
    post_project,
    primary_env,
    readiness,
    register,
)
from tests.e2e.server import LiveServer
from tests.s3server import s3_endpoint  # noqa: F401 (fixture)

WRITES = 1000


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=15.0, limits=httpx.Limits(max_connections=16)) as c:
        yield c


def post_projects(client: httpx.Client, base_url: str, owner: Account, n: int) -> list[tuple[str, int]]:
    """`n` project creations over 8 connections; (id, consistency token) of each acknowledged one."""

    def one(i: int) -> tuple[str, int]:
        response = post_project(client, base_url, owner, f"b{i}")
        assert response.status_code == 201, response.text
        return response.json()["id"], consistency_token(response)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, range(n)))


def project_ids(db: Path) -> set[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {row[0] for row in conn.execute("SELECT id FROM rm_projects")}
    finally:
        conn.close()


def test_a_primary_that_lost_its_disk_comes_back_from_s3_with_every_acknowledged_write(
    s3_endpoint: str,  # noqa: F811
    client: httpx.Client,
) -> None:
    env = {**primary_env(), **backup_env(s3_endpoint)}
    primary = LiveServer.start(env)
    edge: LiveServer | None = None
    fresh: LiveServer | None = None
    try:
        owner, _ = register(client, primary.url)
        edge = LiveServer.start(edge_env("fra", primary.url))
        written = post_projects(client, primary.url, owner, WRITES)
        head = max(token for _, token in written)
        status = wait_replicated(primary.data_dir, env)
        poll(lambda: True if position(client, edge.url) >= head else None, 20, "edge caught up")

        (litestream,) = children(primary.pid)
        primary.kill()  # kill -9: no final sync; only what Litestream already copied survives
        # Litestream goes with it: an orphan would keep copying beside the next primary's own.
        poll(lambda: True if gone(litestream) else None, 10, "litestream ended with the killed server")
        shutil.rmtree(primary.data_dir)
        assert not primary.data_dir.exists()
        fresh = LiveServer.start(env, port=primary.port)  # a new machine: same settings, an empty disk

        assert "database_restored" in fresh.stdout_path.read_text() + fresh.stderr_path.read_text()
        assert {pid for pid, _ in written} <= project_ids(fresh.data_dir / "megilance.db")
        assert position(client, fresh.url) == head
        verified = megilance(fresh.data_dir, env, "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "verified" in verified.stdout

        # The edge held everything the backup held: it resumes from its own checkpoint, no rebuild.
        after = post_project(client, fresh.url, owner, "after the restore")
        assert after.status_code == 201, after.text
        token = consistency_token(after)
        assert token == head + 1
        poll(lambda: True if position(client, edge.url) == token else None, 20, "edge follows the restored primary")
        seen = client.get(f"{edge.url}/api/projects/{after.json()['id']}", headers=owner.auth)
        assert seen.status_code == 200, seen.text
        edge_log = edge.stdout_path.read_text() + edge.stderr_path.read_text()
        assert "primary_restored_edge_resumes" in edge_log
        assert "rebuilding" not in edge_log
        assert status["replica_txid"] >= 1
    finally:
        for server in (edge, fresh, primary):
            if server is not None:
                server.kill()
                server.cleanup()


def test_with_s3_unreachable_the_primary_keeps_serving_reports_the_lag_and_loses_nothing(
    s3_endpoint: str,  # noqa: F811
    client: httpx.Client,
    tmp_path: Path,
) -> None:
    link = S3Link(s3_endpoint)
    link.restore()
    env = {**primary_env(), **backup_env(s3_endpoint), "S3_ENDPOINT_URL": link.url, "MAX_BACKUP_LAG_S": "1"}
    primary = LiveServer.start(env)
    try:
        owner, _ = register(client, primary.url)
        before = post_projects(client, primary.url, owner, 20)
        wait_replicated(primary.data_dir, env)

        link.cut()
        during = post_projects(client, primary.url, owner, 20)  # acknowledged while S3 is away

        def refused() -> dict[str, object] | None:
            code, body = readiness(client, primary.url)
            return body if code == 503 else None

        body = poll(refused, 30, "readiness fails on the backup lag")
        backup = body["checks"]["backup"]  # type: ignore[index]
        assert backup["ok"] is False
        assert backup["lag_seconds"] > backup["max_lag_seconds"] == 1
        assert body["checks"]["database"]["ok"] is True  # type: ignore[index]
        metrics = client.get(primary.url + "/api/health/metrics").text
        lag_line = next(line for line in metrics.splitlines() if line.startswith("backup_lag_seconds "))
        assert float(lag_line.split()[1]) > 1
        assert post_project(client, primary.url, owner, "still serving").status_code == 201

        link.restore()
        poll(lambda: True if readiness(client, primary.url)[0] == 200 else None, 60, "ready again once S3 is back")
        wait_replicated(primary.data_dir, env, timeout=60)
        metrics = client.get(primary.url + "/api/health/metrics").text
        success = next(line for line in metrics.splitlines() if line.startswith("backup_last_success_timestamp "))
        assert float(success.split()[1]) > 0

        copy = tmp_path / "copy.db"
        restored = megilance(primary.data_dir, env, "restore", "--to", str(copy))
        assert restored.returncode == 0, restored.stderr
        assert {pid for pid, _ in before + during} <= project_ids(copy)
    finally:
        primary.kill()
        primary.cleanup()
        link.cut()


def test_an_edge_that_applied_writes_the_backup_never_got_says_so_and_rebuilds(
    s3_endpoint: str,  # noqa: F811
    client: httpx.Client,
) -> None:
    link = S3Link(s3_endpoint)
    link.restore()
    env = {**primary_env(), **backup_env(s3_endpoint), "S3_ENDPOINT_URL": link.url}
    primary = LiveServer.start(env)
    edge: LiveServer | None = None
    fresh: LiveServer | None = None
    try:
        owner, _ = register(client, primary.url)
        edge = LiveServer.start(edge_env("fra", primary.url))
        kept = post_projects(client, primary.url, owner, 5)
        wait_replicated(primary.data_dir, env)
        link.cut()  # from here on, acknowledged writes reach the edge but not S3: the recovery point
        lost = post_projects(client, primary.url, owner, 5)
        lost_head = max(token for _, token in lost)
        poll(lambda: True if position(client, edge.url) == lost_head else None, 20, "edge applied the lost writes")

        primary.kill()
        shutil.rmtree(primary.data_dir)
        link.restore()
        fresh = LiveServer.start(env, port=primary.port)
        restored_head = position(client, fresh.url)
        assert restored_head == max(token for _, token in kept) < lost_head

        poll(lambda: True if position(client, edge.url) == restored_head else None, 30, "edge rebuilt")
        edge_log = edge.stdout_path.read_text() + edge.stderr_path.read_text()
        assert "primary_restored_behind_this_edge_rebuilding" in edge_log
        for project_id, _ in lost:
            assert client.get(f"{edge.url}/api/projects/{project_id}", headers=owner.auth).status_code == 404
        for project_id, _ in kept:
            assert client.get(f"{edge.url}/api/projects/{project_id}", headers=owner.auth).status_code == 200
        after = post_project(client, fresh.url, owner, "after the rebuild")
        assert after.status_code == 201, after.text
        token = consistency_token(after)
        poll(lambda: True if position(client, edge.url) == token else None, 20, "edge follows the new log")
        seen = client.get(f"{edge.url}/api/projects/{after.json()['id']}", headers=owner.auth)
        assert seen.status_code == 200, seen.text
    finally:
        for server in (edge, fresh, primary):
            if server is not None:
                server.kill()
                server.cleanup()
        link.cut()
