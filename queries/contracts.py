"""Read model `contracts`: contracts with both parties' names, listed for each party (client or freelancer)."""

from __future__ import annotations

from typing import Any

import orjson

from core.db import Connection
from core.events.base import StoredEvent
from core.money import format_minor
from queries.parties import PartyTable, Row
from queries.projection import Statement, recorded_at, update_changed

NAME = "contracts"
VERSION = 2
TABLES = ("rm_contracts",)
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS rm_contracts (
        id TEXT PRIMARY KEY, project_id TEXT NOT NULL, client_id TEXT NOT NULL, client_name TEXT NOT NULL,
        freelancer_id TEXT NOT NULL, freelancer_name TEXT NOT NULL, amount_minor INTEGER NOT NULL,
        currency TEXT NOT NULL, platform_fee_minor INTEGER NOT NULL, description TEXT, start_date TEXT,
        end_date TEXT, milestones TEXT NOT NULL, terms TEXT, status TEXT NOT NULL,
        amount_paid_minor INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        version INTEGER NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS rm_contracts_client ON rm_contracts (client_id, id)",
    "CREATE INDEX IF NOT EXISTS rm_contracts_freelancer ON rm_contracts (freelancer_id, id)",
    "CREATE INDEX IF NOT EXISTS rm_contracts_status ON rm_contracts (status, id)",
    # `?status=` for a party: without these the planner would walk every contract with that status.
    "CREATE INDEX IF NOT EXISTS rm_contracts_client_status ON rm_contracts (client_id, status, id)",
    "CREATE INDEX IF NOT EXISTS rm_contracts_freelancer_status ON rm_contracts (freelancer_id, status, id)",
)
INSERT = (
    "INSERT INTO rm_contracts (id, project_id, client_id, client_name, freelancer_id, freelancer_name, amount_minor, "
    "currency, platform_fee_minor, description, start_date, end_date, milestones, terms, status, created_at, "
    "updated_at, version) VALUES (?, ?, ?, COALESCE((SELECT name FROM rm_users WHERE id = ?), ''), ?, "
    "COALESCE((SELECT name FROM rm_users WHERE id = ?), ''), ?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, ?)"
)
SET_STATUS = "UPDATE rm_contracts SET status = ?, updated_at = ?, version = ? WHERE id = ?"
SET_VERSION = "UPDATE rm_contracts SET version = ? WHERE id = ?"
ADD_PAID = "UPDATE rm_contracts SET amount_paid_minor = amount_paid_minor + ?, updated_at = ?, version = ? WHERE id = ?"
RENAME_CLIENT = "UPDATE rm_contracts SET client_name = ? WHERE client_id = ?"
RENAME_FREELANCER = "UPDATE rm_contracts SET freelancer_name = ? WHERE freelancer_id = ?"
REVISABLE = ("description", "terms", "end_date")

CURSOR_LIST = "contracts"  # cursors of this list are refused by the others


def on_created(event: StoredEvent) -> list[Statement]:
    d = event.data
    at = recorded_at(event)
    return [
        (
            INSERT,
            (
                d["contract_id"],
                d["project_id"],
                d["client_id"],
                d["client_id"],
                d["freelancer_id"],
                d["freelancer_id"],
                d["amount_minor"],
                d["currency"],
                d["platform_fee_minor"],
                d["description"],
                d["start_date"],
                d["end_date"],
                orjson.dumps(d["milestones"]).decode(),
                d["terms"],
                at,
                at,
                event.version,
            ),
        )
    ]


def on_revised(event: StoredEvent) -> list[Statement]:
    changes = event.data["changes"]
    return [update_changed("rm_contracts", event.data["contract_id"], changes, event, REVISABLE, ("milestones",))]


def on_status(event: StoredEvent) -> list[Statement]:
    return [(SET_STATUS, (event.data["status"], recorded_at(event), event.version, event.data["contract_id"]))]


def on_payment_completed(event: StoredEvent) -> list[Statement]:
    return [(ADD_PAID, (event.data["amount_minor"], recorded_at(event), event.version, event.data["contract_id"]))]


def on_payment_refunded(event: StoredEvent) -> list[Statement]:
    return [(ADD_PAID, (-event.data["amount_minor"], recorded_at(event), event.version, event.data["contract_id"]))]


def on_payment_held(event: StoredEvent) -> list[Statement]:
    """A pending payment reserved or released part of the amount: only the stream version (the ETag) moves."""
    return [(SET_VERSION, (event.version, event.data["contract_id"]))]


def on_user_renamed(event: StoredEvent) -> list[Statement]:
    name = event.data["changes"].get("name")
    user_id = event.data["user_id"]
    return [(RENAME_CLIENT, (name, user_id)), (RENAME_FREELANCER, (name, user_id))] if name else []


# No summed deltas, index-only statements or reindex steps (queries/readmodel.py).
ADDITIVE: tuple[str, ...] = ()
INDEXING: tuple[str, ...] = ()
REINDEX: tuple[str, ...] = ()

PROJECTORS = {
    "ContractCreated": on_created,
    "ContractRevised": on_revised,
    "ContractStatusChanged": on_status,
    "ContractPaymentCompleted": on_payment_completed,
    "ContractPaymentRefunded": on_payment_refunded,
    "ContractPaymentReserved": on_payment_held,
    "ContractPaymentReleased": on_payment_held,
    "UserProfileUpdated": on_user_renamed,
}


# The columns a contract is read with, in the order `_row` unpacks them.
FIELDS = (
    "id",
    "project_id",
    "client_id",
    "client_name",
    "freelancer_id",
    "freelancer_name",
    "amount_minor",
    "currency",
    "platform_fee_minor",
    "description",
    "start_date",
    "end_date",
    "milestones",
    "terms",
    "status",
    "amount_paid_minor",
    "created_at",
    "updated_at",
    "version",
)
CONTRACTS = PartyTable(
    "rm_contracts",
    FIELDS,
    ("client_id", "freelancer_id"),
    "No contract with that id",
    CURSOR_LIST,
)


def _row(row: Row) -> dict[str, Any]:
    """The API's view of a contract row; unpacking names every column (and costs less than indexing)."""
    (
        contract_id,
        project_id,
        client_id,
        client_name,
        freelancer_id,
        freelancer_name,
        amount_minor,
        currency,
        platform_fee_minor,
        description,
        start_date,
        end_date,
        milestones,
        terms,
        status,
        amount_paid_minor,
        created_at,
        updated_at,
        _version,
    ) = row
    return {
        "id": contract_id,
        "project_id": project_id,
        "client_id": client_id,
        "freelancer_id": freelancer_id,
        "client": {"id": client_id, "name": client_name},
        "freelancer": {"id": freelancer_id, "name": freelancer_name},
        "amount": format_minor(amount_minor, currency),
        "currency": currency,
        "platform_fee": format_minor(platform_fee_minor, currency),
        "description": description,
        "start_date": start_date,
        "end_date": end_date,
        "milestones": [
            {"title": m["title"], "amount": format_minor(m["amount_minor"], currency), "due_date": m["due_date"]}
            for m in orjson.loads(milestones)
        ],
        "terms": terms,
        "status": status,
        "amount_paid": format_minor(amount_paid_minor, currency),
        "created_at": created_at,
        "updated_at": updated_at,
    }


def get_contract(conn: Connection, contract_id: str, viewer_id: str, viewer_role: str) -> tuple[dict[str, Any], int]:
    """This contract, if the viewer is its client, its freelancer or an admin; else NotFound."""
    row = CONTRACTS.get(conn, contract_id, viewer_id, viewer_role)
    return _row(row), int(row[-1])  # version: the last column


def list_contracts(
    conn: Connection,
    *,
    viewer_id: str,
    viewer_role: str,
    limit: int,
    cursor: str | None = None,
    status: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """The contracts this viewer may see, newest first: where they are client or freelancer (admin: all)."""
    rows, next_cursor = CONTRACTS.list_page(conn, viewer_id, viewer_role, limit, cursor, (("status = ?", status),))
    return [_row(row) for row in rows], next_cursor
