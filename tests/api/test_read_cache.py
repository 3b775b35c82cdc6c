"""The read cache: answers stay right, and what it holds stays within its byte budget."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from api.app import create_app
from api.cache import ResponseCache
from core.clock import FakeClock
from tests.conftest import make_settings
from tests.support.market import PROJECT as BASE_PROJECT

PASSWORD = "correct-horse-battery"
PROJECT = {
    **BASE_PROJECT,
    "description": BASE_PROJECT["description"] + " " + "A responsive landing page for our product launch. " * 199,
}


def test_distinct_queries_cannot_grow_the_cache_past_its_byte_budget(client: TestClient) -> None:
    body = {"email": "ann@example.com", "password": PASSWORD, "name": "Ann", "role": "client"}
    headers = {"Authorization": f"Bearer {client.post('/api/auth/register', json=body).json()['access_token']}"}
    for _ in range(10):
        assert client.post("/api/projects", json=PROJECT, headers=headers).status_code == 201
    cache = ResponseCache(max_bytes=300_000)
    client.app.state.cache = cache  # type: ignore[attr-defined]
    for budget in range(1000, 1100):  # every budget_max is a new key for the same 100 KB page
        response = client.get(f"/api/projects?limit=100&budget_max={budget}", headers=headers)
        assert response.status_code == 200, response.text
        assert len(response.json()["items"]) == 10
        assert cache.size_bytes <= 300_000
    assert cache.hits + cache.misses == 100


def test_an_answer_larger_than_the_budget_is_served_but_not_kept() -> None:
    cache = ResponseCache(max_bytes=10)
    cache.put(("k",), 1, b"x" * 11, [])
    assert cache.get(("k",), 1) is None
    assert cache.size_bytes == 0


def test_replacing_an_entry_counts_its_bytes_once() -> None:
    cache = ResponseCache(max_bytes=100)
    for position in range(1, 50):
        cache.put(("k",), position, b"x" * 60, [])
        assert cache.get(("k",), position) is not None
    assert cache.size_bytes == 60


def test_the_cache_keeps_only_entries_at_the_newest_position() -> None:
    """An entry at an older position can never be served again: it is dropped, not kept until the cache is full."""
    cache = ResponseCache(max_entries=100, max_bytes=1 << 20)
    for n in range(10):
        cache.put(("page", n), 1, b"x" * 100, [])
    cache.put(("page", 0), 2, b"y" * 100, [])
    assert len(cache) == 1
    assert cache.size_bytes == 100
    assert cache.get(("page", 0), 2) == (b"y" * 100, [])
    cache.put(("late", 0), 1, b"z" * 100, [])  # computed at a position already passed: never served, not kept
    assert len(cache) == 1
    assert cache.get(("late", 0), 1) is None


def test_the_cache_never_holds_more_than_its_bounds() -> None:
    cache = ResponseCache(max_entries=50, max_bytes=10_000)
    for n in range(1_000):
        cache.put(("page", n), 7, b"x" * (n % 300), [])
        assert len(cache) <= 50
        assert cache.size_bytes <= 10_000
    cache.put(("huge",), 7, b"x" * 10_001, [])
    assert cache.get(("huge",), 7) is None


class LookupSignal(ResponseCache):
    """A cache that tells the test when a read has looked it up (its position is taken by then)."""

    def __init__(self) -> None:
        super().__init__()
        self.looked_up = threading.Event()

    def get(self, key: tuple[Any, ...], position: int) -> tuple[bytes, Any] | None:
        self.looked_up.set()
        return super().get(key, position)


def test_a_read_names_a_position_that_covers_what_it_shows(tmp_path: Path) -> None:
    """A read queued while a write commits shows the write: its token must cover it (monotonic reads elsewhere)."""
    # Every read on the one reader thread: the board read waits there while the write commits.
    settings = make_settings(tmp_path, READ_THREADS=1, LOOP_READ_BUDGET_MS=0)
    with TestClient(create_app(settings, FakeClock()), raise_server_exceptions=False) as client:
        body = {"email": "ann@example.com", "password": PASSWORD, "name": "Ann", "role": "client"}
        token = client.post("/api/auth/register", json=body).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        cache = LookupSignal()
        client.app.state.cache = cache  # type: ignore[attr-defined]
        started, release = threading.Event(), threading.Event()

        def hold_the_reader(conn: object) -> None:
            started.set()
            release.wait()

        holder = threading.Thread(target=runtime.reads.run_sync, args=(hold_the_reader,))
        holder.start()
        started.wait()
        answers: list[Any] = []
        reader = threading.Thread(target=lambda: answers.append(client.get("/api/projects", headers=headers)))
        reader.start()
        cache.looked_up.wait()  # the board read has its position and waits for the reader thread
        written = client.post("/api/projects", json=PROJECT, headers=headers)
        assert written.status_code == 201, written.text
        release.set()
        holder.join()
        reader.join()
        board = answers[0]
        assert board.status_code == 200, board.text
        assert [p["id"] for p in board.json()["items"]] == [written.json()["id"]]
        assert int(board.headers["x-consistency-token"]) >= int(written.headers["x-consistency-token"])


def test_with_no_cache_entries_every_read_runs_its_query_and_answers_the_same(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, RESPONSE_CACHE_ENTRIES="0")
    with TestClient(create_app(settings, FakeClock()), raise_server_exceptions=False) as client:
        body = {"email": "ann@example.com", "password": PASSWORD, "name": "Ann", "role": "client"}
        headers = {"Authorization": f"Bearer {client.post('/api/auth/register', json=body).json()['access_token']}"}
        assert client.post("/api/projects", json=PROJECT, headers=headers).status_code == 201
        cache = client.app.state.cache  # type: ignore[attr-defined]
        answers = [client.get("/api/projects", headers=headers) for _ in range(3)]
        assert {(a.status_code, a.content) for a in answers} == {(200, answers[0].content)}
        assert len(answers[0].json()["items"]) == 1
        assert len(cache) == 0 and cache.hits == 0 and cache.misses == 3


def test_the_cache_keeps_answers_by_default(client: TestClient) -> None:
    body = {"email": "ann@example.com", "password": PASSWORD, "name": "Ann", "role": "client"}
    headers = {"Authorization": f"Bearer {client.post('/api/auth/register', json=body).json()['access_token']}"}
    cache = client.app.state.cache  # type: ignore[attr-defined]
    for _ in range(3):
        assert client.get("/api/projects", headers=headers).status_code == 200
    assert cache.hits == 2
