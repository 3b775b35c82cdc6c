"""Reads on an edge that has not yet applied what the caller's own token says happened."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from api.app import create_app
from core import store
from node.runtime import open_primary
from tests.conftest import make_settings
from tests.support.accounts import register
from tests.support.network import closed_port, edge


def test_an_edge_behind_a_fresh_token_waits_for_the_callers_own_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that registers through the primary and asks the nearest edge for `/api/auth/me` at once sends no
    consistency token, but its access token names the position of its registration: the edge waits for that as
    it would for the header, instead of answering 404 for the caller's own account."""
    primary_settings = make_settings(tmp_path / "primary")
    with TestClient(create_app(primary_settings)) as primary:
        ann = register(primary, "client", "Ann")
    conn = open_primary(primary_settings)
    try:
        events = store.read_after(conn, 0, 100)
    finally:
        conn.close()

    with edge(tmp_path / "edge", closed_port()) as client:  # cut off from the primary: only this test feeds it
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        waiting, wait_for = threading.Event(), runtime.tracker.wait_for

        async def signalling_wait_for(target: int, timeout_s: float) -> bool:
            waiting.set()
            return bool(await wait_for(target, timeout_s))

        monkeypatch.setattr(runtime.tracker, "wait_for", signalling_wait_for)
        answers: list[httpx.Response] = []
        reader = threading.Thread(target=lambda: answers.append(client.get("/api/auth/me", headers=ann.headers)))
        reader.start()
        try:
            assert waiting.wait(timeout=10), "the edge answered without waiting for the token's position"
            client.portal.call(runtime.apply_feed, events)  # type: ignore[union-attr]
        finally:
            reader.join(timeout=10)

    assert answers[0].status_code == 200, answers[0].text
    assert answers[0].json()["id"] == ann.id
    assert int(answers[0].headers["x-consistency-token"]) >= events[-1].position


@pytest.mark.parametrize(
    ("headers", "error_type"),
    [({}, "unauthenticated"), ({"Authorization": "Bearer made.up.token"}, "token_invalid")],
)
def test_a_stranger_with_a_far_ahead_token_is_refused_at_once(
    tmp_path: Path, headers: dict[str, str], error_type: str
) -> None:
    """The edge checks who is asking before it waits for (or forwards to the primary) the position they name."""
    with edge(tmp_path / "edge", closed_port()) as client:
        began = time.monotonic()
        response = client.get("/api/projects", headers={**headers, "X-Consistency-Token": "999999"})
        elapsed = time.monotonic() - began

    assert response.status_code == 401, response.text
    assert response.json()["error_type"] == error_type
    assert elapsed < 1.0, elapsed  # READ_YOUR_WRITES_TIMEOUT_MS is 2 s: it did not wait
