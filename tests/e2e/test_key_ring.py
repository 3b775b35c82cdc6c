"""Edges compare their signing keys with the primary's (fingerprints on the feed, never the keys): an edge whose
keys differ logs the cause once and reports not ready naming it; an edge with the same keys reports them matching."""

from __future__ import annotations

import httpx

from tests.e2e.regions import READY_PATH, start_edge, start_primary, wait_until


def ready_body(http: httpx.Client, url: str) -> dict[str, object] | None:
    try:
        body: dict[str, object] = http.get(url + READY_PATH).json()
    except httpx.HTTPError:
        return None
    return body


def key_ring_refused(http: httpx.Client, url: str) -> dict[str, object] | None:
    body = ready_body(http, url)
    checks = body.get("checks") if body is not None else None
    key_ring = checks.get("key_ring") if isinstance(checks, dict) else None
    if body is not None and body["status"] == "not_ready" and isinstance(key_ring, dict) and key_ring["ok"] is False:
        return key_ring
    return None


def position(http: httpx.Client, url: str) -> int:
    return int(http.get(url + READY_PATH).json()["checks"]["position"]["position"])


def test_edges_compare_signing_keys_with_the_primary() -> None:
    with start_primary() as primary, httpx.Client(timeout=5) as http:
        with start_edge("fra", primary) as same:
            body = ready_body(http, same.url)
            assert body is not None and body["status"] == "ready", body
            assert body["checks"]["key_ring"] == {"ok": True, "error": None}  # type: ignore[index]

        with start_edge("ams", primary, env={"SECRET_KEY": "another-" + "x" * 60}, wait=False) as other:
            key_ring = wait_until(lambda: key_ring_refused(http, other.url), 20, "the edge reporting its key ring")
            assert "differs between the primary and this node" in str(key_ring["error"])
            # more feed answers (each write wakes the long poll): the cause is logged once, not once per answer
            for n in range(3):
                account = {"email": f"u{n}@example.com", "password": "p" * 12, "name": "U", "role": "client"}
                assert http.post(primary.url + "/api/auth/register", json=account).status_code == 201
            head = position(http, primary.url)
            wait_until(lambda: True if position(http, other.url) >= head else None, 10, "the edge catching up")
            assert key_ring_refused(http, other.url) is not None
            other.stop()
            log = other.stdout_path.read_text() + other.stderr_path.read_text()
    assert log.count("key_ring_mismatch") == 1, log[-3000:]
    assert "same JWT_KEYS" in log
