"""A primary whose log lives on a real libSQL server (sqld on loopback): crashes, outages, idle streams,
a refused token and a second writer, with real `megilance serve` processes."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.hrana import HranaClient
from tests.e2e.regions import primary_env, start_edge
from tests.e2e.server import TEST_ENV, LiveServer
from tests.sqld import DelayProxy, JwtKeys, Sqld

PASSWORD = "correct-horse-1"


def megilance(*args: str, data_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("megilance")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "ops.cli"]
    full = {**os.environ, **TEST_ENV, "DATA_DIR": str(data_dir), **env}
    return subprocess.run([*command, *args], env=full, capture_output=True, text=True, timeout=120, check=False)


def wait_until(probe: object, timeout: float, what: str) -> None:
    deadline, pause = time.monotonic() + timeout, threading.Event()
    while not probe():  # type: ignore[operator]
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not reached within {timeout:.0f}s")
        pause.wait(0.02)


def client_headers(url: str, email: str) -> dict[str, str]:
    body = {"email": email, "password": PASSWORD, "name": "Cleo Client", "role": "client"}
    response = httpx.post(f"{url}/api/auth/register", json=body, timeout=10)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def project(n: int) -> dict[str, object]:
    return {
        "title": f"Project number {n}",
        "description": "A project posted by the remote-primary tests, long enough to pass.",
        "category": "web",
        "budget_type": "fixed",
        "budget_min": 100,
        "budget_max": 200,
        "experience_level": "entry",
        "estimated_duration": "1 week",
        "skills": ["python"],
    }


class Load:
    """Threads posting projects as fast as they can; records every acknowledged one and every status seen."""

    def __init__(self, url: str, headers: dict[str, str], threads: int = 4) -> None:
        self.url, self.headers = url, headers
        self.acked: list[str] = []
        self.statuses: dict[int, int] = {}
        self.retry_after: set[str] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._counter = itertools.count()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=15) as http:
            while not self._stop.is_set():
                try:
                    response = http.post("/api/projects", json=project(next(self._counter)))
                except httpx.HTTPError:
                    continue  # the server was killed mid-request: no acknowledgement
                with self._lock:
                    self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
                    if response.status_code == 201:
                        self.acked.append(response.json()["id"])
                    elif response.status_code == 503:
                        self.retry_after.add(response.headers.get("retry-after", ""))
                        assert response.json()["error_type"] == "service_unavailable"

    def count(self) -> int:
        with self._lock:
            return len(self.acked)


def server_streams(url: str, token: str = "") -> set[str]:
    return {row[0] for row in HranaClient(url, token).query("SELECT stream_id FROM events")}


def server_positions(url: str) -> list[int]:
    return [int(row[0]) for row in HranaClient(url).query("SELECT position FROM events ORDER BY position")]


@pytest.fixture
def sqld(tmp_path: Path) -> Iterator[Sqld]:
    with Sqld(tmp_path / "sqld") as server:
        yield server


def start_app(tmp_path: Path, name: str, env: dict[str, str], **kwargs: object) -> LiveServer:
    return LiveServer.start(env, workdir=tmp_path / name, **kwargs)  # type: ignore[arg-type]


def test_every_write_acknowledged_before_the_app_is_killed_is_on_the_server(sqld: Sqld, tmp_path: Path) -> None:
    env = {"DATABASE_URL": sqld.url}
    app = start_app(tmp_path, "app", env)
    try:
        headers = client_headers(app.url, "cleo@example.com")
        with Load(app.url, headers) as load:
            wait_until(lambda: load.count() >= 150, 60, "150 acknowledged projects")
            app.kill()
        acked = list(load.acked)
    finally:
        app.cleanup()
    assert not set(acked) - server_streams(sqld.url)
    assert server_positions(sqld.url) == list(range(1, len(server_positions(sqld.url)) + 1))

    # The killed node's copy, and a new node with no copy at all, both come level with the server.
    verified = megilance("verify", data_dir=app.data_dir, env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    fresh = start_app(tmp_path, "fresh", env)
    try:
        listed = httpx.get(f"{fresh.url}/api/projects?limit=100", headers=client_headers(fresh.url, "dan@example.com"))
        assert listed.status_code == 200
        total = int(HranaClient(sqld.url).query("SELECT COUNT(*) FROM events WHERE type = 'ProjectPosted'")[0][0])
        assert total >= len(acked)
    finally:
        fresh.cleanup()
    assert megilance("verify", data_dir=fresh.data_dir, env=env).returncode == 0


def test_writes_get_503_while_sqld_is_down_and_recover_by_themselves(sqld: Sqld, tmp_path: Path) -> None:
    app = start_app(tmp_path, "app", {"DATABASE_URL": sqld.url, "DATABASE_TIMEOUT_S": "2"})
    try:
        headers = client_headers(app.url, "cleo@example.com")
        with Load(app.url, headers) as load:
            wait_until(lambda: load.count() >= 50, 60, "50 acknowledged projects")
            sqld.kill()
            wait_until(lambda: load.statuses.get(503, 0) >= 5, 60, "writes refused while the server is down")
            ready = httpx.get(f"{app.url}/api/health/ready", timeout=10)
            assert ready.status_code == 503
            assert ready.json()["checks"]["log_server"]["ok"] is False
            assert httpx.get(f"{app.url}/api/projects", headers=headers).status_code == 200  # reads go on
            before = load.count()
            sqld.start()
            wait_until(lambda: load.count() >= before + 50, 60, "writes accepted again after the restart")
        acked = list(load.acked)
        assert load.retry_after == {"1"}
        assert httpx.get(f"{app.url}/api/health/ready", timeout=10).status_code == 200
    finally:
        app.cleanup()
    assert not set(acked) - server_streams(sqld.url)
    verified = megilance("verify", data_dir=app.data_dir, env={"DATABASE_URL": sqld.url})
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_write_succeeds_after_the_server_expired_its_idle_streams(sqld: Sqld, tmp_path: Path) -> None:
    app = start_app(tmp_path, "app", {"DATABASE_URL": sqld.url})
    try:
        headers = client_headers(app.url, "cleo@example.com")
        assert httpx.post(f"{app.url}/api/projects", json=project(1), headers=headers).status_code == 201
        # A stream held open by another client: sqld expires it once idle for its limit (10 s).
        opened = httpx.post(f"{sqld.url}/v2/pipeline", json={"baton": None, "requests": []}).json()
        baton = opened["baton"]

        def expired() -> bool:
            body = {"baton": baton, "requests": [{"type": "execute", "stmt": {"sql": "SELECT 1"}}]}
            answer = httpx.post(f"{sqld.url}/v2/pipeline", json=body)
            return answer.status_code != 200 or "expired" in answer.text.lower()

        wait_until(expired, 60, "sqld expiring an idle stream")
        response = httpx.post(f"{app.url}/api/projects", json=project(2), headers=headers)
        assert response.status_code == 201, response.text
        assert response.json()["id"] in server_streams(sqld.url)
    finally:
        app.cleanup()


def test_a_second_writer_on_the_same_server_is_detected_and_never_interleaved(sqld: Sqld, tmp_path: Path) -> None:
    env = {"DATABASE_URL": sqld.url}
    first, second = start_app(tmp_path, "first", env), start_app(tmp_path, "second", env)
    try:
        headers = client_headers(first.url, "cleo@example.com")
        ids = []
        for n in range(10):
            node = first if n % 2 == 0 else second
            response = httpx.post(f"{node.url}/api/projects", json=project(n), headers=headers, timeout=10)
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
            token = response.headers["x-consistency-token"]
            # Each node's answer already holds the other's writes: it came level before it wrote.
            seen = httpx.get(
                f"{node.url}/api/projects?limit=100", headers={**headers, "X-Consistency-Token": token}
            ).json()
            assert {item["id"] for item in seen["items"]} >= set(ids)
    finally:
        first.cleanup()
        second.cleanup()
    positions = server_positions(sqld.url)
    assert positions == list(range(1, len(positions) + 1))
    assert set(ids) <= server_streams(sqld.url)
    for node in (first, second):
        verified = megilance("verify", data_dir=node.data_dir, env=env)
        assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_refused_token_is_one_clear_line_and_the_node_is_not_ready(tmp_path: Path) -> None:
    keys = JwtKeys()
    with Sqld(tmp_path / "sqld", jwt_keys=keys) as server:
        refused = start_app(
            tmp_path, "refused", {"DATABASE_URL": server.url, "DATABASE_AUTH_TOKEN": "forged"}, wait=False
        )
        try:
            wait_until(lambda: _ready_status(refused) == 503, 30, "the node answering readiness")
            check = httpx.get(f"{refused.url}/api/health/ready").json()["checks"]["log_server"]
            assert check["ok"] is False and "DATABASE_AUTH_TOKEN" in check["error"]
            lines = [line for line in _output(refused).splitlines() if "refused DATABASE_AUTH_TOKEN" in line]
            assert len(lines) == 1
        finally:
            refused.cleanup()

        token = keys.token()
        app = start_app(tmp_path, "app", {"DATABASE_URL": server.url, "DATABASE_AUTH_TOKEN": token})
        try:
            headers = client_headers(app.url, "cleo@example.com")
            response = httpx.post(f"{app.url}/api/projects", json=project(1), headers=headers)
            assert response.status_code == 201
            assert response.json()["id"] in server_streams(server.url, token)
        finally:
            app.cleanup()


def _ready_status(server: LiveServer) -> int:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"{server.url}/api/health/ready", timeout=5).status_code
    return 0


def _output(server: LiveServer) -> str:
    return server.stdout_path.read_text(errors="replace") + server.stderr_path.read_text(errors="replace")


def test_an_edge_replicates_from_a_primary_whose_log_is_on_a_server(sqld: Sqld, tmp_path: Path) -> None:
    # ws:// names the same server as http://: Hrana over HTTP on sqld's one port.
    primary = start_app(tmp_path, "primary", {**primary_env(), "DATABASE_URL": f"ws://127.0.0.1:{sqld.port}"})
    edge = start_edge("fra", primary)
    try:
        headers = client_headers(edge.url, "cleo@example.com")  # forwarded to the primary
        posted = httpx.post(f"{edge.url}/api/projects", json=project(1), headers=headers, timeout=10)
        assert posted.status_code == 201, posted.text
        token = posted.headers["x-consistency-token"]
        read = httpx.get(
            f"{edge.url}/api/projects/{posted.json()['id']}", headers={**headers, "X-Consistency-Token": token}
        )
        assert read.status_code == 200
        assert read.headers["x-region"] == "fra"
        assert posted.json()["id"] in server_streams(sqld.url)
    finally:
        edge.cleanup()
        primary.cleanup()


def test_each_group_commit_is_one_request_to_the_server_and_no_pragma_is_sent(sqld: Sqld, tmp_path: Path) -> None:
    proxy = DelayProxy(sqld.port).start()
    app = start_app(tmp_path, "app", {"DATABASE_URL": proxy.url})
    try:
        headers = client_headers(app.url, "cleo@example.com")
        # A batch in flight now is counted by the server (read first) but not by the proxy: never the reverse.
        seq, requests = _seq(sqld.url), proxy.requests
        with Load(app.url, headers, threads=8) as load:
            wait_until(lambda: load.count() >= 200, 60, "200 acknowledged projects")
    finally:
        app.cleanup()  # counted once the app has stopped: no batch of its background work is still in flight
    batches, sent = _seq(sqld.url) - seq, proxy.requests - requests
    assert batches > 0
    assert sent <= batches  # one request per group commit, however many commands it held
    assert batches < load.count()  # and commands were grouped
    assert not re.search(rb"PRAGMA\s+\w+\s*=", bytes(proxy.sent), re.IGNORECASE)


def test_a_slow_server_never_stalls_the_event_loop(sqld: Sqld, tmp_path: Path) -> None:
    proxy = DelayProxy(sqld.port, delay=0.4).start()
    app = start_app(tmp_path, "app", {"DATABASE_URL": proxy.url})
    try:
        headers = client_headers(app.url, "cleo@example.com")
        done, before = threading.Event(), proxy.requests

        def write() -> None:
            httpx.post(f"{app.url}/api/projects", json=project(1), headers=headers, timeout=30)
            done.set()

        writer = threading.Thread(target=write)
        writer.start()
        wait_until(lambda: proxy.requests > before or done.is_set(), 10, "the write reaching the proxy")
        live = httpx.get(f"{app.url}/api/health/live", timeout=5)
        assert live.status_code == 200
        assert not done.is_set()  # answered while the write still waited on the server
        writer.join(30)
        assert done.is_set()
    finally:
        app.cleanup()


def _seq(url: str) -> int:
    return int(HranaClient(url).query("SELECT COALESCE(MAX(seq), 0) FROM log_commits")[0][0])
