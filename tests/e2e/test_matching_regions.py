"""Matching across real processes: an edit made on the primary is in the matches an edge serves with its token."""

from __future__ import annotations

import httpx

from tests.e2e.regions import consistency_token, primary_env, register, start_edge
from tests.e2e.server import LiveServer

MATCHING = {"FEATURE_FLAG_AI_MATCHING": "true", "READ_YOUR_WRITES_TIMEOUT_MS": "30000"}
PROJECT = {
    "title": "Translate our mobile app into German",
    "description": "Our app has 400 strings in English; we need a native German translation with the right tone.",
    "category": "Translation",
    "budget_type": "hourly",
    "budget_min": "20",
    "budget_max": "60",
    "experience_level": "intermediate",
    "estimated_duration": "2 weeks",
    "skills": ["German"],
}


def test_an_edit_on_the_primary_is_in_the_edges_matches_read_with_its_token() -> None:
    with LiveServer.start({**primary_env(), **MATCHING}) as primary, httpx.Client(timeout=60) as client:
        owner, _ = register(client, primary.url, "client")
        writer, _ = register(client, primary.url, "freelancer")
        posted = client.post(primary.url + "/api/projects", json=PROJECT, headers=owner.auth)
        assert posted.status_code == 201, posted.text
        project_id = posted.json()["id"]
        with start_edge("ams", primary, env=MATCHING) as edge:
            edited = client.put(
                primary.url + "/api/auth/me",
                json={"bio": "Native German translator for mobile apps and websites.", "skills": ["german"]},
                headers=writer.auth,
            )
            token = consistency_token(edited)
            response = client.get(
                f"{edge.url}/api/projects/{project_id}/matches",
                headers={**owner.auth, "X-Consistency-Token": str(token)},
            )

    assert response.status_code == 200, response.text
    assert response.headers["x-region"] == "ams"
    assert consistency_token(response) >= token
    first = response.json()["items"][0]
    assert first["freelancer"]["id"] == writer.id
    assert first["freelancer"]["bio"].startswith("Native German translator")
    assert first["matched_skills"] == ["German"]
