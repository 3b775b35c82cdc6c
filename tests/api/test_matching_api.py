"""Matching over HTTP: who may ask, what is listed, edits read with their token, and the flag."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from api.app import create_app
from core import store
from core.db import connect
from tests.conftest import FakeClock, make_settings
from tests.support.accounts import User, make_admin, register
from tests.support.errors import assert_error
from tests.support.network import closed_port

Json = dict[str, Any]


@pytest.fixture
def app_settings(tmp_path: Path) -> Any:
    return make_settings(tmp_path, FEATURE_FLAG_AI_MATCHING=True)


@pytest.fixture
def client(app_settings: Any, clock: FakeClock) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings, clock), raise_server_exceptions=False) as test_client:
        yield test_client


def profile(client: TestClient, user: User, **fields: Any) -> str:
    response = client.put("/api/auth/me", json=fields, headers=user.headers)
    assert response.status_code == 200, response.text
    return str(response.headers["x-consistency-token"])


def post_project(client: TestClient, owner: User, **fields: Any) -> Json:
    body = {
        "title": "Online shop for handmade soap",
        "description": "We need an e-commerce store for our soap brand with Stripe checkout and a product catalogue.",
        "category": "Web development",
        "budget_type": "hourly",
        "budget_min": "20",
        "budget_max": "60",
        "experience_level": "intermediate",
        "estimated_duration": "1 month",
        "skills": ["Shopify", "Stripe"],
    }
    response = client.post("/api/projects", json=body | fields, headers=owner.headers)
    assert response.status_code == 201, response.text
    return dict(response.json()) | {"token": response.headers["x-consistency-token"]}


def matches(client: TestClient, project_id: str, user: User, token: str | None = None, **params: Any) -> Any:
    headers = user.headers | ({"X-Consistency-Token": token} if token else {})
    return client.get(f"/api/projects/{project_id}/matches", params=params, headers=headers)


def test_the_owner_sees_freelancers_ranked_with_reasons(client: TestClient) -> None:
    owner = register(client, "client", "Olga")
    shop = register(client, "freelancer", "Sam")
    profile(client, shop, bio="I build web shops on Shopify and wire up Stripe payments.", skills=["shopify", "STRIPE"])
    other = register(client, "freelancer", "Ola")
    token = profile(client, other, bio="Wedding photographer with a love for natural light.", skills=["Photography"])
    project = post_project(client, owner)

    response = matches(client, project["id"], owner, project["token"])

    assert response.status_code == 200, response.text
    body = response.json()
    assert int(response.headers["x-consistency-token"]) >= int(token)
    first = body["items"][0]
    assert first["freelancer"]["id"] == shop.id and "email" not in first["freelancer"]
    assert first["matched_skills"] == ["Shopify", "Stripe"]  # case folded, in the project's spelling
    assert 0 < first["score"] <= 1
    assert any("2 of 2 requested skills" in reason for reason in first["reasons"])
    assert all(item["score"] <= first["score"] for item in body["items"])


def test_an_edited_bio_is_reflected_in_matches_read_with_its_token(client: TestClient) -> None:
    owner = register(client, "client", "Olga")
    project = post_project(client, owner, skills=[], title="Translate our app into German")
    writer = register(client, "freelancer", "Wen")
    profile(client, writer, bio="I restore antique furniture.")
    rival = register(client, "freelancer", "Rio")
    profile(client, rival, bio="Translator between English and German for apps and websites.")

    token = profile(client, writer, bio="I translate mobile apps from English into German, native speaker.")
    response = matches(client, project["id"], owner, token)

    assert response.status_code == 200, response.text
    ranked = {item["freelancer"]["id"]: item for item in response.json()["items"]}
    assert writer.id in ranked, "the edit was not reflected"
    assert int(response.headers["x-consistency-token"]) >= int(token)


def test_only_the_owner_and_admins_see_a_projects_matches(
    client: TestClient, app_settings: Any, clock: FakeClock
) -> None:
    owner = register(client, "client", "Olga")
    project = post_project(client, owner)
    stranger = register(client, "client", "Stan")
    freelancer = register(client, "freelancer", "Fay")
    admin = User(make_admin(client))

    assert_error(matches(client, project["id"], stranger), 403, "forbidden")
    assert_error(matches(client, project["id"], freelancer), 403, "forbidden")
    assert matches(client, project["id"], admin, project["token"]).status_code == 200
    assert_error(matches(client, "no-such-project", owner), 404, "not_found")
    assert client.get(f"/api/projects/{project['id']}/matches").status_code == 401


def test_recommendations_are_for_freelancers_and_list_open_projects_only(client: TestClient) -> None:
    owner = register(client, "client", "Olga")
    fay = register(client, "freelancer", "Fay")
    profile(client, fay, bio="Shopify developer: online stores and Stripe checkout.", skills=["Shopify"])
    open_one = post_project(client, owner)
    closed = post_project(client, owner, title="Another online shop, closed")
    shut = client.put(f"/api/projects/{closed['id']}", json={"status": "closed"}, headers=owner.headers)
    assert shut.status_code == 200, shut.text
    token = shut.headers["x-consistency-token"]

    response = client.get("/api/matches/projects", headers=fay.headers | {"X-Consistency-Token": token})

    assert response.status_code == 200, response.text
    listed = [item["project"]["id"] for item in response.json()["items"]]
    assert listed == [open_one["id"]]
    assert response.json()["items"][0]["project"]["status"] == "open"
    assert_error(client.get("/api/matches/projects", headers=owner.headers), 403, "forbidden")


def test_pages_follow_the_ranking(client: TestClient) -> None:
    owner = register(client, "client", "Olga")
    for n in range(3):
        profile(
            client, register(client, "freelancer", f"F{n}"), bio=f"Shopify store builder number {n}", skills=["Shopify"]
        )
    project = post_project(client, owner)

    first = matches(client, project["id"], owner, project["token"], limit=2).json()
    second = matches(client, project["id"], owner, project["token"], limit=2, cursor=first["next_cursor"]).json()

    ids = [i["freelancer"]["id"] for i in first["items"] + second["items"]]
    everything = [i["freelancer"]["id"] for i in matches(client, project["id"], owner, limit=10).json()["items"]]
    assert ids == everything and len(ids) == 3 and second["next_cursor"] is None


def test_relevance_search_finds_projects_by_meaning(client: TestClient) -> None:
    owner = register(client, "client", "Olga")
    shop = post_project(client, owner, skills=[])
    post_project(
        client,
        owner,
        title="Logo for a bakery",
        description="A friendly logo and business cards for our bakery.",
        skills=[],
    )

    response = client.get(
        "/api/projects",
        params={"q": "webshop", "sort": "relevance"},
        headers=owner.headers | {"X-Consistency-Token": shop["token"]},
    )
    plain = client.get("/api/projects", params={"q": "webshop"}, headers=owner.headers)

    assert response.status_code == 200, response.text
    assert [p["id"] for p in response.json()["items"]][:1] == [shop["id"]]
    assert plain.json()["items"] == []  # without sort=relevance, search stays lexical


def test_with_the_flag_off_the_endpoints_are_404_feature_disabled(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path)), raise_server_exceptions=False) as client:
        owner = register(client, "client", "Olga")
        freelancer = register(client, "freelancer", "Fay")
        project = post_project(client, owner)
        runtime = client.app.state.runtime  # type: ignore[attr-defined]

        assert_error(matches(client, project["id"], owner), 404, "feature_disabled")
        assert_error(client.get("/api/matches/projects", headers=freelancer.headers), 404, "feature_disabled")
        assert_error(
            client.get("/api/projects", params={"q": "shop", "sort": "relevance"}, headers=owner.headers),
            404,
            "feature_disabled",
        )
        assert runtime.matcher is None  # nothing encodes


def primary_events(settings: Any) -> list[Any]:
    conn = connect(settings.resolved_database_url(), synchronous="NORMAL")
    try:
        return list(store.read_after(conn, 0, 10_000))
    finally:
        conn.close()


def test_an_edit_is_reflected_in_matches_read_through_an_edge_with_its_token(tmp_path: Path) -> None:
    """The edge's own matcher follows its read store: a read with the edit's token waits for the edit's vector."""
    primary_settings = make_settings(tmp_path / "primary", FEATURE_FLAG_AI_MATCHING=True)
    with TestClient(create_app(primary_settings), raise_server_exceptions=False) as primary:
        owner = register(primary, "client", "Olga")
        project = post_project(primary, owner, skills=[], title="Translate our app into German")
        writer = register(primary, "freelancer", "Wen")
        profile(primary, writer, bio="I restore antique furniture.")
        before = primary_events(primary_settings)
        token = profile(primary, writer, bio="I translate mobile apps from English into German, native speaker.")
        after = [e for e in primary_events(primary_settings) if e.position > before[-1].position]

    edge_settings = make_settings(
        tmp_path / "edge",
        FEATURE_FLAG_AI_MATCHING=True,
        REGION="ams",
        PRIMARY_REGION="iad",
        PRIMARY_URL=f"http://127.0.0.1:{closed_port()}",  # cut off: only this test feeds it
        REPLICATION_TOKEN="r" * 40,
    )
    with TestClient(create_app(edge_settings), raise_server_exceptions=False) as edge:
        runtime = edge.app.state.runtime  # type: ignore[attr-defined]
        edge.portal.call(runtime.apply_feed, before)  # type: ignore[union-attr]
        old_token = str(before[-1].position)
        old = matches(edge, project["id"], owner, old_token)
        edge.portal.call(runtime.apply_feed, after)  # type: ignore[union-attr]
        new = matches(edge, project["id"], owner, token)

    assert old.status_code == 200 and new.status_code == 200, (old.text, new.text)
    assert writer.id not in [i["freelancer"]["id"] for i in old.json()["items"]]  # furniture: no reason to list
    listed = {i["freelancer"]["id"]: i for i in new.json()["items"]}
    assert writer.id in listed, "the edge answered before its matcher had the edit"
    assert listed[writer.id]["freelancer"]["bio"].startswith("I translate")
    assert int(new.headers["x-consistency-token"]) >= int(token)
    assert new.headers["x-region"] == "ams"


def test_the_openapi_document_lists_the_matching_endpoints(client: TestClient) -> None:
    spec = client.get("/api/openapi.json").json()

    assert "get" in spec["paths"]["/api/projects/{project_id}/matches"]
    assert "get" in spec["paths"]["/api/matches/projects"]
    board = spec["paths"]["/api/projects"]["get"]
    sort = next(p for p in board["parameters"] if p["name"] == "sort")
    assert "relevance" in str(sort["schema"])


def test_a_cursor_from_another_list_is_422(client: TestClient) -> None:
    owner = register(client, "client", "Olga")
    project = post_project(client, owner)
    listed = client.get("/api/projects", params={"limit": 1}, headers=owner.headers)
    post_project(client, owner)
    other = client.get("/api/projects", params={"limit": 1}, headers=owner.headers).json()["next_cursor"]
    assert listed.status_code == 200 and other

    assert_error(matches(client, project["id"], owner, cursor=other), 422, "validation_failed")


def test_hard_filters_drop_inactive_accounts_and_rates_above_an_hourly_budget(
    client: TestClient, app_settings: Any, clock: FakeClock
) -> None:
    owner = register(client, "client", "Olga")
    admin = User(make_admin(client))
    bio = "I build Shopify web shops with Stripe checkout."
    cheap, dear, unknown, gone = (register(client, "freelancer", name) for name in ("Cy", "De", "Un", "Go"))
    profile(client, cheap, bio=bio, skills=["Shopify"], hourly_rate="40")
    profile(client, dear, bio=bio, skills=["Shopify"], hourly_rate="100")
    profile(client, unknown, bio=bio, skills=["Shopify"])
    profile(client, gone, bio=bio, skills=["Shopify"], hourly_rate="30")
    off = client.patch(f"/api/users/{gone.id}", json={"is_active": False}, headers=admin.headers)
    assert off.status_code == 200, off.text
    hourly = post_project(client, owner, budget_type="hourly", budget_max="60")
    fixed = post_project(client, owner, budget_type="fixed", budget_max="60")

    listed_hourly = [
        i["freelancer"]["id"] for i in matches(client, hourly["id"], owner, fixed["token"]).json()["items"]
    ]
    listed_fixed = [i["freelancer"]["id"] for i in matches(client, fixed["id"], owner, fixed["token"]).json()["items"]]

    assert sorted(listed_hourly) == sorted([cheap.id, unknown.id])
    assert sorted(listed_fixed) == sorted([cheap.id, dear.id, unknown.id])  # a fixed budget is no hourly cap


def test_readiness_reports_how_far_matching_has_come(client: TestClient) -> None:
    owner = register(client, "client", "Olga")
    project = post_project(client, owner)
    matches(client, project["id"], owner, project["token"])  # returns once matching reached the token

    checks = client.get("/api/health/ready").json()["checks"]

    assert checks["matching"]["ok"] is True
    assert checks["matching"]["position"] >= int(project["token"])
