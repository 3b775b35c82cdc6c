"""Edge regions with real processes: a primary and edges on 127.0.0.1, replication over the event feed.

Covers read-your-writes from any region, convergence without a token, an edge killed mid-stream, a primary
restart, the replication token, write forwarding (proxy and fly-replay), edge headers and metrics, and the
feed's absence from the public OpenAPI. Timings are printed (visible without `-s`).
"""

from __future__ import annotations

import re
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core import store
from core.db import Connection, connect
from migrations.runner import migrate
from queries.projection import checkpoint
from queries.rebuild import differences, rebuild
from queries.registry import projection
from tests.e2e.regions import (
    PRIMARY_REGION,
    REPLICATION_TOKEN,
    Account,
    Cluster,
    consistency_token,
    position,
    post_project,
    primary_env,
    project_body,
    readiness,
    register,
    start_edge,
    start_primary,
    wait_until,
)
from tests.e2e.server import LiveServer

EDGE_A, EDGE_B = "ams", "syd"
TRIALS = 1000
LAG_DEADLINE_S = 5.0  # half of MAX_REPLICATION_LAG_S's default (10 s)
LAG_SAMPLES = 20
BURST = 400


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A primary and two edges, shared by the tests that do not stop any of them."""
    with Cluster.run(EDGE_A, EDGE_B) as running:
        yield running


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str]) -> Iterator[list[str]]:
    lines: list[str] = []
    yield lines
    with capsys.disabled():
        for line in lines:
            print(f"\n[regions] {line}", end="")
        print()


def project_url(server: LiveServer, project_id: str) -> str:
    return f"{server.url}/api/projects/{project_id}"


def read_store_path(edge: LiveServer, region: str) -> Path:
    return edge.data_dir / f"read-{region}.db"


def primary_db_path(primary: LiveServer) -> Path:
    return primary.data_dir / "megilance.db"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def visible(client: httpx.Client, url: str, account: Account) -> httpx.Response | None:
    response = client.get(url, headers=account.auth)
    return response if response.status_code == 200 else None


# -- 1. read-your-writes across regions ------------------------------------------------------------------------------


def test_write_through_one_edge_is_read_through_another_with_the_token(cluster: Cluster, report: list[str]) -> None:
    a, b = cluster.edges[EDGE_A], cluster.edges[EDGE_B]
    misses: list[str] = []
    served_by = {EDGE_B: 0, PRIMARY_REGION: 0}
    with httpx.Client(timeout=10.0) as via_a, httpx.Client(timeout=10.0) as via_b:
        account, registered = register(via_a, a.url)  # the registration itself is proxied to the primary
        assert registered.headers["x-region"] == PRIMARY_REGION
        began = time.perf_counter()
        for trial in range(TRIALS):
            written = post_project(via_a, a.url, account, f"trial {trial}")
            assert written.status_code == 201, written.text
            project = written.json()
            read = via_b.get(
                project_url(b, project["id"]),
                headers={**account.auth, "X-Consistency-Token": written.headers["x-consistency-token"]},
            )
            if read.status_code != 200 or read.json() != project:
                misses.append(f"trial {trial}: {read.status_code} {read.text[:200]}")
            else:
                served_by[read.headers["x-region"]] += 1
        elapsed = time.perf_counter() - began
    report.append(
        f"read-your-writes: {TRIALS} trials (write via {EDGE_A}, read via {EDGE_B} with the token) in {elapsed:.1f} s "
        f"({ms(elapsed / TRIALS)}/trial); misses {len(misses)}; served by {EDGE_B}: {served_by[EDGE_B]}, "
        f"forwarded to the primary: {served_by[PRIMARY_REGION]}"
    )
    assert misses == []


def test_edge_read_reports_the_position_it_was_served_at(cluster: Cluster, report: list[str]) -> None:
    """docs/api.md: every read response carries `X-Consistency-Token` for the position it was served at.

    A read that waited for the client's token was served at a position >= that token; a client that keeps the
    newest token it has seen (the D1-session pattern) must never be handed an older one.
    """
    a, b = cluster.edges[EDGE_A], cluster.edges[EDGE_B]
    older: list[tuple[int, int]] = []
    trials = 200
    with httpx.Client(timeout=10.0) as via_a, httpx.Client(timeout=10.0) as via_b:
        for _ in range(trials):
            written = post_project(via_a, a.url, cluster.owner)
            assert written.status_code == 201, written.text
            token = consistency_token(written)
            read = via_b.get(
                project_url(b, written.json()["id"]),
                headers={**cluster.owner.auth, "X-Consistency-Token": str(token)},
            )
            assert read.status_code == 200, read.text
            if consistency_token(read) < token:
                older.append((token, consistency_token(read)))
    report.append(f"served-at token: {len(older)}/{trials} edge reads returned a token older than the one sent")
    assert older == [], f"(sent, returned) pairs, first 5: {older[:5]}"


def test_a_logout_through_one_edge_ends_that_sessions_access_token_on_another(cluster: Cluster) -> None:
    """The edge that reads with the logout's token refuses the session's access token; another session's works."""
    a, b = cluster.edges[EDGE_A], cluster.edges[EDGE_B]
    with httpx.Client(timeout=10.0) as via_a, httpx.Client(timeout=10.0) as via_b:
        for _ in range(20):
            account, registered = register(via_a, a.url)
            password = {"email": account.email, "password": "correct horse battery"}
            other = via_a.post(a.url + "/api/auth/login", json=password)
            assert other.status_code == 200, other.text
            ended = via_a.post(
                a.url + "/api/auth/logout",
                json={"refresh_token": registered.json()["refresh_token"]},
                headers=account.auth,
            )
            assert ended.status_code == 204, ended.text
            after = {"X-Consistency-Token": ended.headers["x-consistency-token"]}
            refused = via_b.get(b.url + "/api/auth/me", headers={**account.auth, **after})
            assert refused.status_code == 401, refused.text
            assert refused.json()["error_type"] == "token_invalid"
            still = {"Authorization": f"Bearer {other.json()['access_token']}", **after}
            assert via_b.get(b.url + "/api/auth/me", headers=still).status_code == 200


# -- 2. convergence without a token ----------------------------------------------------------------------------------


def test_edge_converges_without_the_token_within_the_lag_target(cluster: Cluster, report: list[str]) -> None:
    primary, b = cluster.primary, cluster.edges[EDGE_B]
    samples: list[float] = []
    with httpx.Client(timeout=10.0) as to_primary, httpx.Client(timeout=10.0) as via_b:
        for _ in range(LAG_SAMPLES):
            written = post_project(to_primary, primary.url, cluster.owner)
            assert written.status_code == 201, written.text
            done = time.perf_counter()
            url = project_url(b, written.json()["id"])
            read = wait_until(
                partial(visible, via_b, url, cluster.owner),
                LAG_DEADLINE_S,
                f"write {consistency_token(written)} visible on {EDGE_B}",
                interval=0.001,
            )
            samples.append(time.perf_counter() - done)
            assert read.headers["x-region"] == EDGE_B  # no token: always served locally
            assert read.json() == written.json()
    report.append(
        f"time to visibility on {EDGE_B} without the token ({LAG_SAMPLES} writes on the primary, polled every ~1 ms):"
        f" median {ms(statistics.median(samples))}, max {ms(max(samples))} (deadline {LAG_DEADLINE_S:.0f} s)"
    )
    assert max(samples) < LAG_DEADLINE_S


# -- 3. kill -9 an edge mid-stream -----------------------------------------------------------------------------------


def rebuilt_from_log(primary_conn: Connection, scratch_path: Path, last: int | None = None) -> Connection:
    scratch = connect(str(scratch_path), synchronous="NORMAL")
    migrate(scratch, ("read",))
    events = store.iter_all(primary_conn) if last is None else store.read_until(primary_conn, last)
    rebuild(scratch, projection(), events)
    return scratch


def test_edge_killed_while_catching_up_restarts_into_a_store_equal_to_a_rebuild(
    cluster: Cluster, tmp_path: Path, report: list[str]
) -> None:
    region = "gru"
    primary, owner = cluster.primary, cluster.owner
    edge = start_edge(region, primary)
    restarted: LiveServer | None = None
    try:
        client = cluster.client
        start = position(client, primary.url)
        wait_until(
            lambda: True if position(client, edge.url) == start else None,
            30.0,
            f"{region} caught up to {start} before the burst",
            last=lambda: readiness(client, edge.url),
        )
        statuses: list[int] = []

        def burst() -> None:
            with httpx.Client(timeout=10.0) as writer:
                statuses.extend(post_project(writer, primary.url, owner, "burst").status_code for _ in range(BURST))

        writer = threading.Thread(target=burst, name="burst")
        writer.start()
        at_kill = wait_until(
            lambda: p if (p := position(client, edge.url)) >= start + BURST // 4 else None,
            30.0,
            f"{region} applying the burst",
            interval=0.002,
        )
        mid_stream = writer.is_alive()
        edge.kill()
        writer.join(timeout=60.0)
        assert not writer.is_alive()
        assert mid_stream, "the burst ended before the edge was killed: not a mid-stream kill"
        assert statuses == [201] * BURST
        head = position(client, primary.url)

        # The crashed store is at a batch boundary: exactly a rebuild of the log up to its own checkpoint.
        with (
            closing(connect(str(primary_db_path(primary)))) as log,
            closing(connect(str(read_store_path(edge, region)))) as crashed,
        ):
            crashed_at = checkpoint(crashed)
            with closing(rebuilt_from_log(log, tmp_path / "partial.db", crashed_at)) as partial:
                assert differences(crashed, partial, projection()) == []
        assert at_kill <= crashed_at < head

        began = time.perf_counter()
        restarted = back = start_edge(region, primary, data_dir=edge.data_dir)

        def caught_up() -> dict[str, Any] | None:
            status, body = readiness(client, back.url)
            replication = body["checks"]["replication"]
            done = status == 200 and body["checks"]["position"]["position"] == head and replication["lag_events"] == 0
            return body if done else None

        wait_until(caught_up, 30.0, f"{region} caught up to {head}", last=lambda: readiness(client, back.url))
        catch_up = time.perf_counter() - began
        back.stop()  # quiescent file for the comparison

        with (
            closing(connect(str(primary_db_path(primary)))) as log,
            closing(connect(str(read_store_path(edge, region)))) as live,
            closing(rebuilt_from_log(log, tmp_path / "scratch.db")) as scratch,
        ):
            assert checkpoint(live) == head
            assert differences(live, scratch, projection()) == []
        report.append(
            f"kill -9 mid-stream: {region} killed at position {at_kill} (burst {start}->{head}), store on disk at "
            f"{crashed_at} = rebuild; restarted and caught up in {catch_up:.2f} s; store == rebuild of the log"
        )
    finally:
        for server in (restarted, edge):
            if server is not None:
                server.stop()
                server.cleanup()


# -- 4. primary restart ----------------------------------------------------------------------------------------------


def test_edges_recover_from_a_primary_restart_without_operator_action(report: list[str]) -> None:
    regions = ("lhr", "nrt")
    with Cluster.run(*regions) as c:
        client = c.client
        before = post_project(client, c.primary.url, c.owner, "before restart")
        assert before.status_code == 201
        for region, edge in c.edges.items():
            url = project_url(edge, before.json()["id"])
            wait_until(partial(visible, client, url, c.owner), 5.0, f"{region} sees the first write")
        for how in ("SIGKILL", "SIGTERM"):
            old = c.primary
            began = time.perf_counter()
            if how == "SIGKILL":
                old.kill()
            else:
                old.stop(timeout=30.0)
            down = time.perf_counter() - began
            # With the primary gone, every edge still serves its reads locally.
            for region, edge in c.edges.items():
                read = client.get(project_url(edge, before.json()["id"]), headers=c.owner.auth)
                assert read.status_code == 200 and read.headers["x-region"] == region
            ready_while_down = {region: readiness(client, edge.url)[0] for region, edge in c.edges.items()}
            c.replace_primary(LiveServer.start(primary_env(), data_dir=old.data_dir, port=old.port))
            restarted = time.perf_counter()
            after = post_project(client, c.primary.url, c.owner, f"after {how}")
            assert after.status_code == 201, after.text
            seen: dict[str, float] = {}
            for region, edge in c.edges.items():
                url = project_url(edge, after.json()["id"])
                wait_until(partial(visible, client, url, c.owner), 15.0, f"{region} sees the write")
                seen[region] = time.perf_counter() - restarted
                wait_until(
                    partial(ready, client, edge.url),
                    15.0,
                    f"{region} ready again",
                    last=partial(readiness, client, edge.url),
                )
            report.append(
                f"primary {how}: stopped in {down:.2f} s; edges' ready while it was down: {ready_while_down}; "
                f"write after restart visible on "
                + ", ".join(f"{r} in {s:.2f} s" for r, s in seen.items())
                + " (from the restarted primary being ready); both ready again"
            )


def test_edge_is_ready_soon_after_connecting_to_an_idle_primary(report: list[str]) -> None:
    """An edge that reached the feed and has nothing to apply (lag 0) is ready; it does not wait for news."""
    primary = start_primary()  # an empty log: nothing for the edge's first long-poll to return
    edge = start_edge("scl", primary, wait=False)
    try:
        with httpx.Client(timeout=10.0) as client:
            began = time.perf_counter()
            wait_until(
                partial(ready, client, edge.url),
                5.0,
                "edge ready on an idle primary",
                interval=0.05,
                last=lambda: readiness(client, edge.url),
            )
            report.append(f"edge on an idle primary: ready after {time.perf_counter() - began:.2f} s")
    finally:
        edge.stop()
        primary.kill()  # SIGTERM would wait out the edge's feed long-poll (uvicorn's 10 s graceful timeout)
        for server in (edge, primary):
            server.cleanup()


def test_an_edge_cut_off_from_its_primary_is_not_ready_once_its_lag_passes_the_limit(report: list[str]) -> None:
    """Readiness fails on lag, not on the loss alone: the edge was ready, then its lag grew past the limit."""
    limit_s = 1.0
    primary = start_primary()
    edge = start_edge("gru", primary, env={"MAX_REPLICATION_LAG_S": str(limit_s)}, wait=False)
    try:
        with httpx.Client(timeout=10.0) as client:
            wait_until(partial(ready, client, edge.url), 10.0, "edge ready", last=partial(readiness, client, edge.url))
            primary.kill()

            def not_ready() -> dict[str, Any] | None:
                status, body = readiness(client, edge.url)
                return body if status == 503 else None

            last = partial(readiness, client, edge.url)
            body = wait_until(not_ready, 15.0, "edge not ready", interval=0.05, last=last)
            replication = body["checks"]["replication"]
            assert body["status"] == "not_ready" and body["checks"]["database"]["ok"] is True
            assert replication["ok"] is False and replication["connected"] is False
            assert replication["lag_seconds"] > limit_s == replication["max_lag_seconds"]
            report.append(f"primary lost: edge not ready at lag {replication['lag_seconds']} s (limit {limit_s} s)")
    finally:
        edge.stop()
        primary.kill()
        for server in (edge, primary):
            server.cleanup()


def ready(client: httpx.Client, url: str) -> bool | None:
    """True once the node answers /api/health/ready with 200 (None while not, or not listening yet)."""
    try:
        return True if readiness(client, url)[0] == 200 else None
    except httpx.HTTPError:
        return None


# -- 5. the replication token ----------------------------------------------------------------------------------------


def test_feed_refuses_a_wrong_or_missing_replication_token(cluster: Cluster) -> None:
    feed = cluster.primary.url + "/internal/events?after=0&limit=5"
    client = cluster.client
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {REPLICATION_TOKEN[:-1]}"},
        {"Authorization": f"Bearer {REPLICATION_TOKEN}x"},
        {"Authorization": f"Basic {REPLICATION_TOKEN}"},
        {"Authorization": f"Bearer {cluster.owner.access_token}"},  # a user's token is not the replication token
    ):
        response = client.get(feed, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.json()["error_type"] == "token_invalid"
        assert "events" not in response.json()
    good = client.get(feed, headers={"Authorization": f"Bearer {REPLICATION_TOKEN}"})
    assert good.status_code == 200
    assert [e["position"] for e in good.json()["events"]] == list(range(1, len(good.json()["events"]) + 1))
    # An edge does not serve the feed at all.
    on_edge = client.get(cluster.edges[EDGE_A].url + "/internal/events", headers={"Authorization": "Bearer x"})
    assert on_edge.status_code == 404


def test_edge_with_a_wrong_replication_token_reports_not_ready(cluster: Cluster, report: list[str]) -> None:
    edge = start_edge("bog", cluster.primary, token="not-the-replication-token", wait=False)
    try:
        with httpx.Client(timeout=10.0) as client:

            def refused() -> dict[str, Any] | None:
                try:
                    status, body = readiness(client, edge.url)
                except httpx.HTTPError:
                    return None  # still starting
                error = body["checks"].get("replication", {}).get("last_error") or ""
                return body if status == 503 and "401" in error else None

            body = wait_until(refused, 15.0, "edge with a wrong token refused", interval=0.05)
            assert body["status"] == "not_ready"
            assert body["checks"]["replication"]["connected"] is False
            assert body["checks"]["position"]["position"] == 0  # it applied nothing
            report.append(
                f"wrong REPLICATION_TOKEN: edge 503, last_error={body['checks']['replication']['last_error']!r}"
            )
    finally:
        edge.stop()
        edge.cleanup()


# -- 6. writes on an edge, headers, metrics --------------------------------------------------------------------------


def test_edge_proxies_writes_and_relays_the_primarys_answer(cluster: Cluster) -> None:
    primary, a = cluster.primary, cluster.edges[EDGE_A]
    client, owner = cluster.client, cluster.owner

    written = post_project(client, a.url, owner, "proxied")
    assert written.status_code == 201, written.text
    assert written.headers["x-region"] == PRIMARY_REGION  # answered by the primary, relayed unchanged
    token = consistency_token(written)
    on_primary = client.get(project_url(primary, written.json()["id"]), headers=owner.auth)
    assert on_primary.json() == written.json()
    assert on_primary.headers["etag"] == written.headers["etag"]
    feed = client.get(
        primary.url + f"/internal/events?after={token - 1}&limit=1",
        headers={"Authorization": f"Bearer {REPLICATION_TOKEN}"},
    ).json()
    assert [(e["position"], e["stream_id"]) for e in feed["events"]] == [(token, written.json()["id"])]

    # Refusals are relayed as the primary gave them.
    for body, headers in (({"title": "x"}, owner.auth), ({"title": "no auth"}, {})):
        via_edge = client.post(a.url + "/api/projects", json=body, headers=headers)
        direct = client.post(primary.url + "/api/projects", json=body, headers=headers)
        assert (via_edge.status_code, via_edge.json()) == (direct.status_code, direct.json())
        assert via_edge.status_code in (401, 422)


def test_a_write_through_an_edge_is_logged_under_the_request_id_its_client_got(cluster: Cluster) -> None:
    """One name per request across regions: the edge names it (the client's safe id, or its own), the edge's
    access log and the primary's event record that name, and the client gets it back."""
    primary, client, owner = cluster.primary, cluster.client, cluster.owner
    answered: dict[str | None, str] = {}
    with start_edge("fra", primary, env={"LOG_LEVEL": "info"}) as edge:
        for sent in (None, "has space", "trace-7.edge:a"):
            headers = {**owner.auth, **({} if sent is None else {"X-Request-ID": sent})}
            written = client.post(edge.url + "/api/projects", json=project_body("named"), headers=headers)
            assert written.status_code == 201, written.text
            answered[sent] = written.headers["x-request-id"]
            with closing(connect(str(primary_db_path(primary)), synchronous="NORMAL")) as conn:
                (meta,) = conn.execute(
                    "SELECT meta FROM events WHERE position = ?", (consistency_token(written),)
                ).fetchone()
            assert orjson.loads(meta)["request_id"] == answered[sent]
        edge.stop()
        access = [line for line in map(orjson.loads, edge.stdout_path.read_bytes().splitlines()) if "route" in line]
    assert answered["trace-7.edge:a"] == "trace-7.edge:a"
    assert re.fullmatch(r"[0-9a-f]{32}", answered[None]) and re.fullmatch(r"[0-9a-f]{32}", answered["has space"])
    # Forwarded before routing, so logged as "<unmatched>"; these three are the edge's only POSTs.
    logged = [line["request_id"] for line in access if line["method"] == "POST"]
    assert logged == list(answered.values()), access


def test_a_client_cannot_name_its_own_address_through_an_edge() -> None:
    """A primary that trusts its edges believes the Fly-Client-IP they send: an edge must not pass on the client's."""
    limits = {"RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_AUTH_PER_MINUTE": "3", "TRUSTED_PROXIES": "127.0.0.1/32"}
    primary = LiveServer.start({**primary_env(), **limits})
    edge = start_edge("gru", primary)
    try:
        with httpx.Client(timeout=10.0) as client:
            statuses = []
            for n in range(4):
                login = client.post(
                    edge.url + "/api/auth/login",
                    json={"email": f"nobody{n}@example.com", "password": "correct horse battery"},
                    headers={"Fly-Client-IP": f"203.0.113.{n}"},
                )
                statuses.append(login.status_code)
            assert statuses == [401, 401, 401, 429], statuses
            assert login.json()["error_type"] == "rate_limited"
            assert int(login.headers["retry-after"]) >= 1
    finally:
        edge.stop()
        primary.kill()
        for server in (edge, primary):
            server.cleanup()


def test_edge_on_fly_answers_writes_with_fly_replay(cluster: Cluster) -> None:
    primary, client, owner = cluster.primary, cluster.client, cluster.owner
    env = {
        "FLY_REGION": "fra",
        "PRIMARY_REGION": PRIMARY_REGION,
        "PRIMARY_URL": primary.url,
        "REPLICATION_TOKEN": REPLICATION_TOKEN,
    }
    fly = LiveServer.start(env)
    try:
        assert client.get(fly.url + "/api").json()["region"] == "fra"
        assert client.get(fly.url + "/api").json()["role"] == "edge"
        head = position(client, primary.url)
        existing = post_project(client, primary.url, owner).json()["id"]
        for method, path in (
            ("POST", "/api/projects"),
            ("PUT", f"/api/projects/{existing}"),
            ("DELETE", f"/api/projects/{existing}"),
        ):
            response = client.request(method, fly.url + path, json={"title": "Replayed"}, headers=owner.auth)
            assert response.headers.get("fly-replay") == f"region={PRIMARY_REGION}", (method, response.headers)
        assert position(client, primary.url) == head + 1  # only the direct write above reached the log
        url = project_url(fly, existing)
        read = wait_until(lambda: visible(client, url, owner), 5.0, "fra sees the project")
        assert read.headers["x-region"] == "fra"
    finally:
        fly.stop()
        fly.cleanup()


def test_edge_read_carries_its_region_and_metrics_expose_lag_and_forwarding(cluster: Cluster) -> None:
    b, client, owner = cluster.edges[EDGE_B], cluster.client, cluster.owner
    written = post_project(client, b.url, owner, "metrics")  # forwarded: reason="write"
    assert written.status_code == 201
    read = client.get(
        project_url(b, written.json()["id"]),
        headers={**owner.auth, "X-Consistency-Token": written.headers["x-consistency-token"]},
    )
    assert read.status_code == 200
    assert read.headers["x-region"] == EDGE_B

    text = client.get(b.url + "/api/health/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("replication_lag_events", ())] >= 0
    assert samples[("replication_lag_seconds", ())] >= 0
    assert samples[("forwarded_requests_total", (("reason", "write"),))] >= 1
    assert client.get(b.url + "/api").json() == {**client.get(b.url + "/api").json(), "role": "edge"}


# -- 7. the feed is not public ---------------------------------------------------------------------------------------


def test_internal_feed_is_absent_from_the_public_openapi(cluster: Cluster) -> None:
    for server in (cluster.primary, cluster.edges[EDGE_A]):
        response = cluster.client.get(server.url + "/api/openapi.json")
        assert response.status_code == 200
        assert not [p for p in response.json()["paths"] if p.startswith("/internal")]
        assert "/internal/events" not in response.text
