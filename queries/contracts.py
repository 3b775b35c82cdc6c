"""Read model `contracts`: contracts with both parties' names, listed for each party (client or freelancer)."""

from __future__ import annotations

from typing import Any

import orjson

from core.db import Connection
from core.errors import NotFound
from core.events.base import StoredEvent
from core.money import format_minor
from queries.pagination import decode_cursor, page
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
COLUMNS = (
    "id, project_id, client_id, client_name, freelancer_id, freelancer_name, amount_minor, currency, "
    "platform_fee_minor, description, start_date, end_date, milestones, terms, status, amount_paid_minor, "
    "created_at, updated_at, version"
)
INSERT = (
    "INSERT INTO rm_contracts (id, project_id, client_id, client_name, freelancer_id, freelancer_name, amount_minor, "
    "currency, platform_fee_minor, description, start_date, end_date, milestones, terms, status, created_at, "
    "updated_at, version) VALUES (?, ?, ?, COALESCE((SELECT name FROM rm_users WHERE id = ?), ''), ?, "
    "COALESCE((SELECT name FROM rm_users WHERE id = ?), ''), ?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, ?)"
)
SELECT_ONE = f"SELECT {COLUMNS} FROM rm_contracts WHERE id = ?"
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


def _row(row: tuple[Any, ...]) -> dict[str, Any]:
    currency = row[7]
    milestones = [
        {"title": m["title"], "amount": format_minor(m["amount_minor"], currency), "due_date": m["due_date"]}
        for m in orjson.loads(row[12])
    ]
    return {
        "id": row[0],
        "project_id": row[1],
        "client_id": row[2],
        "freelancer_id": row[4],
        "client": {"id": row[2], "name": row[3]},
        "freelancer": {"id": row[4], "name": row[5]},
        "amount": format_minor(row[6], currency),
        "currency": currency,
        "platform_fee": format_minor(row[8], currency),
        "description": row[9],
        "start_date": row[10],
        "end_date": row[11],
        "milestones": milestones,
        "terms": row[13],
        "status": row[14],
        "amount_paid": format_minor(row[15], currency),
        "created_at": row[16],
        "updated_at": row[17],
    }


def may_see(row: tuple[Any, ...], viewer_id: str, viewer_role: str) -> bool:
    return viewer_role == "admin" or viewer_id in (row[2], row[4])


def get_contract(conn: Connection, contract_id: str, viewer_id: str, viewer_role: str) -> tuple[dict[str, Any], int]:
    """This contract, if the viewer is its client, its freelancer or an admin; else NotFound."""
    row = conn.execute(SELECT_ONE, (contract_id,)).fetchone()
    if row is None or not may_see(row, viewer_id, viewer_role):
        raise NotFound("No contract with that id")
    return _row(row), int(row[18])


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
    after = decode_cursor(cursor, CURSOR_LIST, 1)[0] if cursor else None
    if viewer_role == "admin":
        branches = [_branch(None, after, status)]
    else:
        # Two index-ordered scans merged by id: (client_id, id) and (freelancer_id, id). A user is never
        # both parties of one contract, and the `client_id <> ?` keeps the branches disjoint regardless.
        branches = [
            _branch(("client_id = ?",), after, status, viewer_id),
            _branch(("freelancer_id = ?", "client_id <> ?"), after, status, viewer_id, viewer_id),
        ]
    sql = " UNION ALL ".join(b[0] for b in branches) + " ORDER BY id DESC LIMIT ?"
    params = [p for b in branches for p in b[1]]
    rows, next_cursor = page(conn.execute(sql, (*params, limit + 1)).fetchall(), limit, (0,), CURSOR_LIST)
    return [_row(row) for row in rows], next_cursor


def _branch(
    clauses: tuple[str, ...] | None,
    after: str | None,
    status: str | None,
    *values: str,
) -> tuple[str, list[Any]]:
    where, params = list(clauses or ()), list(values)
    for clause, value in (("id < ?", after), ("status = ?", status)):
        if value is not None:
            where.append(clause)
            params.append(value)
    sql = f"SELECT {COLUMNS} FROM rm_contracts"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql, params
