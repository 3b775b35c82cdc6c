"""Proposal attachments: https URLs or the sender's own uploads, and the project owner may open those uploads."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.support.accounts import User, register
from tests.support.errors import assert_error
from tests.support.market import post_project

PDF = b"%PDF-1.4\n" + b"0" * 2048
LETTER = "I have built many landing pages like this one, and I would love to build yours. " * 2


def upload(client: TestClient, user: User, data: bytes = PDF) -> str:
    response = client.post("/api/uploads", files={"file": ("cv.pdf", data, "application/pdf")}, headers=user.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def propose(client: TestClient, freelancer: User, project_id: str, attachments: list[str]) -> Any:
    body = {
        "project_id": project_id,
        "cover_letter": LETTER,
        "estimated_hours": 20,
        "hourly_rate": "40",
        "availability": "immediate",
        "attachments": attachments,
    }
    return client.post("/api/proposals", json=body, headers=freelancer.headers)


@pytest.mark.parametrize(
    "attachment",
    [
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "//evil.example.com/cv.pdf",
        "http://files.example.com/cv.pdf",
        'https://files.example.com/"><script>alert(1)</script>',
        "cv.pdf",
    ],
)
def test_an_attachment_that_is_not_an_https_url_or_an_upload_id_is_refused(client: TestClient, attachment: str) -> None:
    ann, fred = register(client, "client", "Ann"), register(client, "freelancer", "Fred")
    project_id = post_project(client, ann)

    error = assert_error(propose(client, fred, project_id, [attachment]), 422, "validation_failed")

    assert error["errors"][0]["loc"][:2] == ["body", "attachments"]
    assert client.get("/api/proposals", headers=fred.headers).json()["items"] == []


def test_another_users_upload_cannot_be_attached(client: TestClient) -> None:
    ann, fred = register(client, "client", "Ann"), register(client, "freelancer", "Fred")
    gina = register(client, "freelancer", "Gina")
    theirs = upload(client, gina)
    project_id = post_project(client, ann)

    error = assert_error(propose(client, fred, project_id, [theirs]), 422, "validation_failed")

    assert error["errors"][0]["loc"] == ["body", "attachments", 0]
    assert client.get(f"/api/uploads/{theirs}", headers=ann.headers).status_code == 404


def test_the_project_owner_opens_an_upload_attached_to_a_proposal(client: TestClient) -> None:
    ann, fred = register(client, "client", "Ann"), register(client, "freelancer", "Fred")
    bob = register(client, "client", "Bob")
    project_id = post_project(client, ann)
    cv = upload(client, fred)
    assert client.get(f"/api/uploads/{cv}", headers=ann.headers).status_code == 404  # not attached yet

    proposal = propose(client, fred, project_id, [cv, "https://files.example.com/portfolio.pdf"])

    assert proposal.status_code == 201, proposal.text
    assert proposal.json()["attachments"] == [cv, "https://files.example.com/portfolio.pdf"]
    meta = client.get(f"/api/uploads/{cv}", headers=ann.headers)
    assert meta.status_code == 200, meta.text
    assert client.get(meta.json()["url"], headers=ann.headers).content == PDF
    assert_error(client.get(f"/api/uploads/{cv}", headers=bob.headers), 404, "not_found")  # not bob's project

    # a revision that drops the attachment takes the owner's access away again
    revised = client.put(f"/api/proposals/{proposal.json()['id']}", json={"attachments": []}, headers=fred.headers)
    assert revised.status_code == 200, revised.text
    assert_error(client.get(f"/api/uploads/{cv}", headers=ann.headers), 404, "not_found")
