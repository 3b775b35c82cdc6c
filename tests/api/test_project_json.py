"""The board, search and detail pages are JSON built by SQLite: the same documents as the Python rendering."""

from __future__ import annotations

from contextlib import closing

from starlette.testclient import TestClient

from node.runtime import open_primary
from queries.projects import get_project, list_projects
from tests.support.accounts import register
from tests.support.market import PROJECT, bid, post_project

AWKWARD = {
    **PROJECT,
    "title": 'Ünïcode "quoted" \\ backslash — 漢字 😀',
    "description": "Line one\nline two\u2028with a separator, </script> and a carriage\rreturn.",
    "budget_min": "300.05",
    "budget_max": "1000000.50",
    "skills": ["python", "C++", "naïve-bayes"],
}


def test_pages_and_the_detail_match_the_python_rendering(client: TestClient) -> None:
    owner = register(client, "client", "Zoë O'Brien")
    ids = []
    for body in (PROJECT, AWKWARD):
        response = client.post("/api/projects", json=body, headers=owner.headers)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    with closing(open_primary(runtime.settings)) as conn:
        expected = list_projects(conn, limit=20)[0]
        searched = list_projects(conn, limit=20, q="unicode")[0]
        details = [get_project(conn, project_id)[0] for project_id in ids]

    assert client.get("/api/projects?limit=20", headers=owner.headers).json()["items"] == expected
    assert client.get("/api/projects?q=unicode", headers=owner.headers).json()["items"] == searched
    assert [p["title"] for p in searched] == [AWKWARD["title"]]
    for project_id, detail in zip(ids, details, strict=True):
        assert client.get(f"/api/projects/{project_id}", headers=owner.headers).json() == detail
    assert details[1]["budget_min"] == "300.05" and details[1]["budget_max"] == "1000000.50"
    assert details[1]["description"] == AWKWARD["description"]


def test_a_rename_a_proposal_and_a_revision_reach_the_stored_pages(client: TestClient) -> None:
    """Each page row is JSON kept with the row: every change that shows on a project changes it too."""
    owner = register(client, "client", "First Name")
    freelancer = register(client, "freelancer")
    project_id = post_project(client, owner)
    bid(client, freelancer, project_id)
    renamed = client.put("/api/auth/me", json={"name": "Second Name"}, headers=owner.headers)
    assert renamed.status_code == 200, renamed.text
    revised = client.put(f"/api/projects/{project_id}", json={"title": "A new title"}, headers=owner.headers)
    assert revised.status_code == 200, revised.text
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    with closing(open_primary(runtime.settings)) as conn:
        expected = get_project(conn, project_id)[0]
    shown = client.get(f"/api/projects/{project_id}", headers=owner.headers).json()
    assert shown == expected
    assert (shown["client"]["name"], shown["proposals_count"], shown["title"]) == ("Second Name", 1, "A new title")
    listed = client.get(f"/api/projects?client_id={owner.id}", headers=owner.headers).json()["items"]
    assert listed == [expected]
