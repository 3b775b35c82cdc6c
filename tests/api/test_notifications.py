"""Marketplace notifications through the outbox, read back from a real SMTP server; per-user switches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from api.app import create_app
from core import store
from core.clock import FakeClock
from core.events.payments import PaymentCompleted
from queries.registry import projection
from tests.conftest import make_settings
from tests.mailkit import SmtpServer, smtp_server, unique_email  # noqa: F401
from tests.support.market import bid

PASSWORD = "first-password-1"
Json = dict[str, Any]
EVIL_TITLE = "<script>alert('x')</script> & a landing page"


@pytest.fixture
def client(tmp_path: Path, smtp_server: SmtpServer, clock: FakeClock) -> Iterator[TestClient]:  # noqa: F811
    settings = make_settings(tmp_path, SMTP_URL=smtp_server.url, PUBLIC_BASE_URL="https://app.example.test")
    with TestClient(create_app(settings, clock), raise_server_exceptions=False) as c:
        yield c


class User:
    def __init__(self, client: TestClient, name: str, role: str) -> None:
        self.email = unique_email(name)
        body = {"email": self.email, "password": PASSWORD, "name": name, "role": role}
        response = client.post("/api/auth/register", json=body)
        assert response.status_code == 201, response.text
        self.id: str = response.json()["user"]["id"]
        self.headers = {"Authorization": f"Bearer {response.json()['access_token']}"}


def post_project(client: TestClient, owner: User, title: str = EVIL_TITLE) -> str:
    body = {
        "title": title,
        "description": "A responsive landing page for our product launch.",
        "category": "web",
        "budget_type": "fixed",
        "budget_min": "500",
        "budget_max": "1500",
        "experience_level": "intermediate",
        "estimated_duration": "2 weeks",
        "skills": ["html"],
    }
    response = client.post("/api/projects", json=body, headers=owner.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def kinds(smtp: SmtpServer, user: User) -> list[str]:
    return [m.message_id.strip("<").split(".")[0] for m in smtp.inbox.to(user.email)]


def marker(client: TestClient, smtp: SmtpServer) -> None:
    """A reset mail to a fresh account: once it is in, every message queued before it has been sent."""
    someone = User(client, "Marker", "client")
    assert client.post("/api/auth/password-reset", json={"email": someone.email}).status_code == 202
    smtp.inbox.wait_for(someone.email)


def test_a_new_proposal_reaches_the_client_with_the_title_escaped_in_html(
    client: TestClient,
    smtp_server: SmtpServer,  # noqa: F811
) -> None:
    ann, fred = User(client, "Ann", "client"), User(client, "Fred", "freelancer")
    project_id = post_project(client, ann)
    bid(client, fred, project_id)

    (mail,) = smtp_server.inbox.wait_for(ann.email)
    assert mail.message_id.startswith("<proposal_received.")
    html, text = mail.part("html"), mail.part("plain")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; a landing page" in html
    assert EVIL_TITLE in text  # plain text is not HTML: shown as written
    assert "Fred" in text and f"https://app.example.test/projects/{project_id}" in text


def test_decisions_contracts_and_payments_reach_the_parties(
    client: TestClient,
    smtp_server: SmtpServer,  # noqa: F811
) -> None:
    ann, fred, gina = (
        User(client, "Ann", "client"),
        User(client, "Fred", "freelancer"),
        User(client, "Gina", "freelancer"),
    )
    project_id = post_project(client, ann, "A plain landing page")
    fred_bid, gina_bid = bid(client, fred, project_id), bid(client, gina, project_id)
    assert client.post(f"/api/proposals/{fred_bid}/accept", headers=ann.headers).status_code == 200
    fred_mail = smtp_server.inbox.wait_for(fred.email)[0]
    gina_mail = smtp_server.inbox.wait_for(gina.email)[0]
    assert "was accepted" in fred_mail.part("plain") and "was rejected" in gina_mail.part("plain")
    assert gina_bid

    contract = {"project_id": project_id, "freelancer_id": fred.id, "amount": "1250"}
    created = client.post("/api/contracts", json=contract, headers=ann.headers)
    assert created.status_code == 201, created.text
    payment = client.post(
        "/api/payments", json={"contract_id": created.json()["id"], "amount": "100"}, headers=ann.headers
    )
    assert payment.status_code == 201, payment.text
    complete_payment(client, payment.json()["id"], created.json()["id"])

    smtp_server.inbox.wait_for(ann.email, 4)  # 2 proposals, the contract, the payment
    smtp_server.inbox.wait_for(fred.email, 3)  # the decision, the contract, the payment
    assert kinds(smtp_server, ann) == ["proposal_received"] * 2 + ["contract_created", "payment_confirmed"]
    assert kinds(smtp_server, fred) == ["proposal_decided", "contract_created", "payment_confirmed"]
    assert kinds(smtp_server, gina) == ["proposal_decided"]
    paid = smtp_server.inbox.to(fred.email)[2].part("plain")
    assert "100.00 USDC from Ann to Fred" in paid


def complete_payment(client: TestClient, payment_id: str, contract_id: str) -> None:
    """The fact a verified on-chain transfer records (chain verification has its own tests), appended and
    projected as the confirm command would, through the app's writer so the mailer hears the commit."""
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    event = PaymentCompleted(
        payment_id=payment_id,
        contract_id=contract_id,
        amount_minor=100_000_000,
        transaction_hash="0x" + "ab" * 32,
        sender_address="0x" + "11" * 20,
        recipient_address="0x" + "22" * 20,
        block_number=1,
        confirmations=1,
    )

    def job(conn: Any) -> None:
        uow = store.UnitOfWork(conn, {"actor": "test"}, runtime.clock)
        uow.append(payment_id, "payment", uow.version_of(payment_id), [event])
        projection().apply_events(conn, uow.new_events, advance=False)

    runtime.writer.run_sync(job)


def test_each_notification_can_be_switched_off_and_the_private_view_shows_it(
    client: TestClient,
    smtp_server: SmtpServer,  # noqa: F811
) -> None:
    ann, fred = User(client, "Ann", "client"), User(client, "Fred", "freelancer")
    me = client.get("/api/auth/me", headers=ann.headers).json()
    assert me["notifications"] == dict.fromkeys(
        ("proposal_received", "proposal_decided", "contract_created", "payment_confirmed"), True
    )
    changed = client.put("/api/auth/me", json={"notifications": {"proposal_received": False}}, headers=ann.headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["notifications"] == {
        "proposal_received": False,
        "proposal_decided": True,
        "contract_created": True,
        "payment_confirmed": True,
    }
    again = client.put("/api/auth/me", json={"notifications": {"contract_created": False}}, headers=ann.headers)
    assert again.json()["notifications"]["proposal_received"] is False  # switches not sent keep their value
    assert again.json()["notifications"]["contract_created"] is False
    public = client.get(f"/api/users/{ann.id}", headers=fred.headers).json()
    assert "notifications" not in public

    bid(client, fred, post_project(client, ann))
    marker(client, smtp_server)
    assert smtp_server.inbox.to(ann.email) == []
    bad = client.put("/api/auth/me", json={"notifications": {"newsletter": True}}, headers=ann.headers)
    assert bad.status_code == 422
    null = client.put("/api/auth/me", json={"notifications": {"proposal_received": None}}, headers=ann.headers)
    assert null.status_code == 422
