"""In production the service names its own address: the Host header chooses no link and no sign-in domain."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from api.app import create_app
from core.clock import FakeClock
from core.settings import InsecureSettings
from tests.conftest import make_settings

PUBLIC = "https://api.megilance.example"


def test_production_refuses_to_start_without_public_base_url(tmp_path: Path, clock: FakeClock) -> None:
    with pytest.raises(InsecureSettings, match="PUBLIC_BASE_URL"):
        create_app(make_settings(tmp_path, ENVIRONMENT="production"), clock)


def test_a_forged_host_header_chooses_neither_upload_urls_nor_the_sign_in_domain(
    tmp_path: Path, clock: FakeClock
) -> None:
    settings = make_settings(tmp_path, ENVIRONMENT="production", PUBLIC_BASE_URL=PUBLIC)
    with TestClient(create_app(settings, clock), base_url="https://evil.example.com") as client:
        body = {"email": "ann@example.com", "password": "correct-horse-battery", "name": "Ann", "role": "client"}
        token = client.post("/api/auth/register", json=body).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}", "Host": "evil.example.com"}
        ticket = client.post(
            "/api/uploads/presign",
            json={"filename": "a.png", "content_type": "image/png", "size": 1000},
            headers=headers,
        )
        nonce = client.post("/api/auth/wallet/nonce", json={"address": "0x" + "ab" * 20}, headers=headers)

    assert ticket.status_code == 200, ticket.text
    assert ticket.json()["upload_url"].startswith(PUBLIC + "/"), ticket.json()
    assert nonce.status_code == 200, nonce.text
    message = nonce.json()["message"]
    assert message.startswith("api.megilance.example wants you to sign in"), message
    assert "evil.example.com" not in message
