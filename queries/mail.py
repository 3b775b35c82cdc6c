"""What the mailer asks the primary's read store: who gets a message, and the names and titles it shows."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from core.db import Connection
from core.notifications import switches

SELECT_RECIPIENT = "SELECT id, email, name, is_active, notifications FROM rm_users WHERE id = ?"
SELECT_PROJECT_TITLE = "SELECT title FROM rm_projects WHERE id = ?"
SELECT_PROPOSAL = "SELECT freelancer_id, project_id FROM rm_proposals WHERE id = ?"
SELECT_PAYMENT = "SELECT from_user_id, to_user_id, amount_minor, currency FROM rm_payments WHERE id = ?"


@dataclass(frozen=True, slots=True)
class Recipient:
    """An account as mail sees it: where to write, how to greet, which notifications it wants."""

    id: str
    email: str
    name: str
    is_active: bool
    notifications: dict[str, bool]


@dataclass(frozen=True, slots=True)
class PaymentParties:
    payer_id: str
    payee_id: str
    amount_minor: int
    currency: str


def get_recipient(conn: Connection, user_id: str) -> Recipient | None:
    """Who is this account, for a message to it (None if unknown)?"""
    row = conn.execute(SELECT_RECIPIENT, (user_id,)).fetchone()
    if row is None:
        return None
    user_id, email, name, is_active, notifications = row
    return Recipient(user_id, email, name, bool(is_active), switches(orjson.loads(notifications)))


def get_project_title(conn: Connection, project_id: str) -> str:
    """What is this project called (empty if it was deleted since)?"""
    row = conn.execute(SELECT_PROJECT_TITLE, (project_id,)).fetchone()
    return str(row[0]) if row else ""


def get_proposal_author(conn: Connection, proposal_id: str) -> tuple[str, str] | None:
    """Who wrote this proposal, on which project?"""
    row = conn.execute(SELECT_PROPOSAL, (proposal_id,)).fetchone()
    if row is None:
        return None
    freelancer_id, project_id = row
    return str(freelancer_id), str(project_id)


def get_payment_parties(conn: Connection, payment_id: str) -> PaymentParties | None:
    """Who paid whom, how much?"""
    row = conn.execute(SELECT_PAYMENT, (payment_id,)).fetchone()
    if row is None:
        return None
    from_user_id, to_user_id, amount_minor, currency = row
    return PaymentParties(from_user_id, to_user_id, int(amount_minor), currency)
