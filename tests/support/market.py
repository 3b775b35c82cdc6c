"""Marketplace steps over HTTP: post a project, bid on it, hire, and create a contract."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from tests.support.accounts import Json, User

PROJECT = {
    "title": "Build a landing page",
    "description": "A responsive landing page for our product launch.",
    "category": "web",
    "budget_type": "fixed",
    "budget_min": "500",
    "budget_max": "1500",
    "experience_level": "intermediate",
    "estimated_duration": "2 weeks",
    "skills": ["html"],
}


def post_project(client: TestClient, owner: User) -> str:
    response = client.post("/api/projects", json=PROJECT, headers=owner.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def bid(client: TestClient, freelancer: User, project_id: str) -> str:
    body = {
        "project_id": project_id,
        "cover_letter": "I have built many landing pages like this one. " * 3,
        "estimated_hours": 20,
        "hourly_rate": "40",
        "availability": "immediate",
    }
    response = client.post("/api/proposals", json=body, headers=freelancer.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def hire(client: TestClient, owner: User, freelancer: User) -> str:
    """A project of `owner` on which `freelancer`'s proposal was accepted."""
    project_id = post_project(client, owner)
    proposal_id = bid(client, freelancer, project_id)
    response = client.post(f"/api/proposals/{proposal_id}/accept", headers=owner.headers)
    assert response.status_code == 200, response.text
    return project_id


def create(client: TestClient, owner: User, project_id: str, freelancer: User, **fields: Any) -> Any:
    body = {"project_id": project_id, "freelancer_id": freelancer.id, "amount": "1250", **fields}
    return client.post("/api/contracts", json=body, headers=owner.headers)


def created(client: TestClient, owner: User, freelancer: User, **fields: Any) -> Json:
    response = create(client, owner, hire(client, owner, freelancer), freelancer, **fields)
    assert response.status_code == 201, response.text
    body: Json = response.json()
    return body
