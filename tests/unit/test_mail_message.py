"""Messages are built with the stock e-mail policy's output, faster: each header class is made once."""

from __future__ import annotations

import email.policy
import re
from email.message import EmailMessage

import pytest

from core import mail
from core.mail import POLICY, Renderer, build_message

BOUNDARY = re.compile(rb"={15}\d+==")  # the multipart boundary: random in each message
CONTEXT = {
    "name": "Ann Ölund",
    "base_url": "http://localhost:8000",
    "project_id": "p1",
    "project_title": "Ein Projekt mit Umlauten: äöü",
    "freelancer_name": "Bob",
}


def built(monkeypatch: pytest.MonkeyPatch, policy: email.policy.EmailPolicy, recipient: str) -> bytes:
    monkeypatch.setattr(mail, "POLICY", policy)
    subject, text, html = Renderer().render("proposal_received", CONTEXT)
    message = build_message(
        message_id="<proposal_received.7.0@example.com>",
        sender="MegiLance <no-reply@example.com>",
        recipient=recipient,
        subject=subject,
        text=text,
        html=html,
        date=1_765_000_000.0,
    )
    return BOUNDARY.sub(b"=boundary=", message.as_bytes())


@pytest.mark.parametrize("recipient", ["ann@example.com", "Ann Ölund <ann@example.com>"])
def test_a_message_is_byte_for_byte_what_the_stock_policy_builds(
    monkeypatch: pytest.MonkeyPatch, recipient: str
) -> None:
    assert built(monkeypatch, POLICY, recipient) == built(monkeypatch, email.policy.default, recipient)


def test_each_header_class_is_made_once_and_is_the_stock_one() -> None:
    first, again = POLICY.header_factory["Subject"], POLICY.header_factory["subject"]
    assert first is again
    stock = email.policy.default.header_factory["Subject"]
    assert first.__mro__[1:] == stock.__mro__[1:]  # the same bases: UniqueUnstructuredHeader, BaseHeader, str
    message = EmailMessage(policy=POLICY)
    message["To"] = "ann@example.com, bob@example.com"
    assert [a.addr_spec for a in message["To"].addresses] == ["ann@example.com", "bob@example.com"]
