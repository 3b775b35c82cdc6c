"""`megilance serve` with WORKERS=2: worker 0 owns the writer, worker 1 reads the same file and hands writes on.

Every request below opens a new connection, so the kernel hands each to either worker; the access log (its
`worker` field) shows both served.
"""

from __future__ import annotations

import threading
import time

import httpx
import orjson

from tests.e2e.server import LiveServer

PASSWORD = "workers-password-1"
PROJECT = {
    "title": "A project posted through either worker",
    "description": "Posted to test that every worker shows every write at once.",
    "category": "web",
    "budget_type": "fixed",
    "budget_min": "300",
    "budget_max": "900",
    "experience_level": "entry",
    "estimated_duration": "1 week",
    "skills": ["python"],
}
ROUNDS = 12
READS_PER_ROUND = 4


def fresh(method: str, url: str, **kwargs: object) -> httpx.Response:
    """One request on a connection of its own (whichever worker accepts it answers)."""
    with httpx.Client(timeout=10) as client:
        return client.request(method, url, **kwargs)  # type: ignore[arg-type]


def access_lines(server: LiveServer) -> list[dict[str, object]]:
    lines = [orjson.loads(line) for line in server.stdout_path.read_bytes().splitlines() if line.startswith(b"{")]
    return [line for line in lines if line.get("event") == "request"]


def register_client(server: LiveServer, email: str, name: str) -> httpx.Response:
    account = {"email": email, "password": PASSWORD, "name": name, "role": "client"}
    registered = fresh("POST", server.url + "/api/auth/register", json=account)
    assert registered.status_code == 201, registered.text
    return registered


def test_every_worker_shows_every_write_at_once_and_follows_sessions() -> None:
    with LiveServer.start({"WORKERS": "2", "LOG_LEVEL": "info"}) as server:
        registered = register_client(server, "w@example.com", "Wanda")
        headers = {"Authorization": f"Bearer {registered.json()['access_token']}"}
        stale = []
        for n in range(ROUNDS):
            assert fresh("GET", server.url + "/api/projects?limit=100", headers=headers).status_code == 200
            posted = fresh(
                "POST", server.url + "/api/projects", json={**PROJECT, "title": f"Project {n}"}, headers=headers
            )
            assert posted.status_code == 201, posted.text
            for read in range(READS_PER_ROUND):
                # Half the reads carry the write's token, half none: neither may miss the write (nor be cached).
                token = {"X-Consistency-Token": posted.headers["x-consistency-token"]} if read % 2 else {}
                page = fresh("GET", server.url + "/api/projects?limit=100", headers={**headers, **token})
                assert page.status_code == 200, page.text
                if len(page.json()["items"]) != n + 1:
                    stale.append((n, read, len(page.json()["items"])))
        # A session ended through one worker is refused by both at once.
        ended = {"refresh_token": registered.json()["refresh_token"]}
        assert fresh("POST", server.url + "/api/auth/logout", json=ended, headers=headers).status_code == 204
        refused = [fresh("GET", server.url + "/api/auth/me", headers=headers).status_code for _ in range(8)]
        server.stop()
        lines = access_lines(server)
    assert stale == []
    assert refused == [401] * 8
    readers = {line["worker"] for line in lines if line["method"] == "GET" and line["route"] == "/api/projects"}
    assert readers == {0, 1}, lines[-10:]
    # Worker 0 runs every write; worker 1 validates those it takes and hands them on. One line each, from the
    # worker that took the connection.
    writes = [line["worker"] for line in lines if line["method"] == "POST" and line["route"] == "/api/projects"]
    assert len(writes) == ROUNDS and set(writes) <= {0, 1}


def test_rate_limits_count_requests_whichever_worker_takes_them() -> None:
    env = {"WORKERS": "2", "LOG_LEVEL": "info", "RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_AUTH_PER_MINUTE": "4"}
    with LiveServer.start(env) as server:
        wrong = {"email": "nobody@example.com", "password": "not-the-password-1"}
        codes: list[int] = []
        # Until worker 1 has taken (and forwarded) some: the kernel may hand a run of connections to one worker.
        while len(codes) < MAX_LOGINS and (len(codes) < 8 or not forwarded_by_worker_1(server)):
            codes.append(fresh("POST", server.url + "/api/auth/login", json=wrong).status_code)
        deadline = time.monotonic() + 2
        while not forwarded_by_worker_1(server) and time.monotonic() < deadline:  # lines leave within 50 ms
            threading.Event().wait(0.05)
        shared = forwarded_by_worker_1(server)
    assert shared, "worker 1 took none of the requests"
    assert codes.count(401) == 4 and codes.count(429) == len(codes) - 4, codes  # 4 in all, not 4 per worker


MAX_LOGINS = 60


def forwarded_by_worker_1(server: LiveServer) -> bool:
    return any(line.get("worker") == 1 and line["method"] == "POST" for line in access_lines(server))


TRIES = 24  # per kind of write, each on a connection of its own: either worker may take it


def test_writes_worker_1_validates_and_hands_on_are_answered_as_worker_0_answers_its_own() -> None:
    with LiveServer.start({"WORKERS": "2", "LOG_LEVEL": "info"}) as server:
        auth = {"Authorization": f"Bearer {register_client(server, 'h@example.com', 'Hana').json()['access_token']}"}
        keyed = {**auth, "Idempotency-Key": "one-project"}
        posted = [fresh("POST", server.url + "/api/projects", json=PROJECT, headers=keyed) for _ in range(TRIES)]
        project_id = posted[0].json()["id"]
        rename = {"title": "A project renamed through either worker"}
        stale = [
            fresh("PUT", f"{server.url}/api/projects/{project_id}", json=rename, headers={**auth, "If-Match": '"99"'})
            for _ in range(TRIES)
        ]
        missing = [
            fresh("PUT", server.url + "/api/projects/no-such-project", json=rename, headers=auth) for _ in range(TRIES)
        ]
        invalid = [
            fresh("POST", server.url + "/api/projects", json={**PROJECT, "surprise": 1}, headers=auth)
            for _ in range(TRIES)
        ]
        listed = fresh("GET", server.url + "/api/projects?limit=100", headers=auth).json()["items"]
        server.stop()
        lines = access_lines(server)
    worker_of = {line["request_id"]: line["worker"] for line in lines}
    answers = posted + stale + missing + invalid
    assert {worker_of[r.headers["x-request-id"]] for r in answers} == {0, 1}
    # One project, however many times the keyed request came and whichever worker took it.
    assert [p["id"] for p in listed] == [project_id]
    assert posted[0].status_code == 201 and "idempotent-replayed" not in posted[0].headers
    for replay in posted[1:]:
        assert (replay.status_code, replay.json()) == (201, posted[0].json())
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.headers["x-consistency-token"] == posted[0].headers["x-consistency-token"]
        assert replay.headers["etag"] == posted[0].headers["etag"]
    assert {(r.status_code, r.json()["error_type"]) for r in stale} == {(412, "precondition_failed")}
    assert {(r.status_code, r.json()["error_type"]) for r in missing} == {(404, "not_found")}
    assert {(r.status_code, r.json()["error_type"]) for r in invalid} == {(422, "validation_failed")}
    for answer in answers:  # what the middleware adds, whichever worker answered
        assert answer.headers["x-content-type-options"] == "nosniff" and answer.headers["x-region"]
