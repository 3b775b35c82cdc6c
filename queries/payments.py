"""Read model `payments`: each payment for its payer and payee, and running totals per contract."""

from __future__ import annotations

from typing import Any

from core.db import Connection
from core.events.base import StoredEvent
from core.money import format_minor
from queries.contracts import get_contract
from queries.parties import PartyTable, Row
from queries.projection import Statement, recorded_at

NAME = "payments"
VERSION = 1
TABLES = ("rm_payments", "rm_payment_totals")
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS rm_payments (
        id TEXT PRIMARY KEY, contract_id TEXT, from_user_id TEXT NOT NULL, to_user_id TEXT NOT NULL,
        amount_minor INTEGER NOT NULL, currency TEXT NOT NULL, status TEXT NOT NULL, transaction_hash TEXT,
        description TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, version INTEGER NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS rm_payments_from ON rm_payments (from_user_id, id)",
    "CREATE INDEX IF NOT EXISTS rm_payments_to ON rm_payments (to_user_id, id)",
    "CREATE INDEX IF NOT EXISTS rm_payments_contract ON rm_payments (contract_id, id)",
    "CREATE INDEX IF NOT EXISTS rm_payments_status ON rm_payments (status, id)",
    "CREATE INDEX IF NOT EXISTS rm_payments_from_status ON rm_payments (from_user_id, status, id)",
    "CREATE INDEX IF NOT EXISTS rm_payments_to_status ON rm_payments (to_user_id, status, id)",
    # One row per contract with payments: the totals endpoint is a point read, however many payments there are.
    """CREATE TABLE IF NOT EXISTS rm_payment_totals (
        contract_id TEXT PRIMARY KEY, paid_minor INTEGER NOT NULL DEFAULT 0,
        pending_minor INTEGER NOT NULL DEFAULT 0, refunded_minor INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID""",
)
INSERT = (
    "INSERT INTO rm_payments (id, contract_id, from_user_id, to_user_id, amount_minor, currency, status, "
    "transaction_hash, description, created_at, updated_at, version) "
    "VALUES (?, ?, ?, ?, ?, ?, 'pending', NULL, ?, ?, ?, ?)"
)
SET_STATUS = "UPDATE rm_payments SET status = ?, updated_at = ?, version = ? WHERE id = ?"
SET_COMPLETED = (
    "UPDATE rm_payments SET status = 'completed', transaction_hash = ?, updated_at = ?, version = ? WHERE id = ?"
)
ADD_TOTALS = (
    "INSERT INTO rm_payment_totals (contract_id, paid_minor, pending_minor, refunded_minor) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (contract_id) DO UPDATE SET paid_minor = paid_minor + excluded.paid_minor, "
    "pending_minor = pending_minor + excluded.pending_minor, refunded_minor = refunded_minor + excluded.refunded_minor"
)
SELECT_TOTALS = "SELECT paid_minor, pending_minor, refunded_minor FROM rm_payment_totals WHERE contract_id = ?"

CURSOR_LIST = "payments"  # cursors of this list are refused by the others


def _totals(event: StoredEvent, paid: int, pending: int, refunded: int) -> list[Statement]:
    """Move the contract's totals by these multiples of the payment's amount (nothing for a direct payment)."""
    contract_id, amount = event.data["contract_id"], event.data["amount_minor"]
    if contract_id is None:
        return []
    return [(ADD_TOTALS, (contract_id, paid * amount, pending * amount, refunded * amount))]


def on_created(event: StoredEvent) -> list[Statement]:
    d = event.data
    at = recorded_at(event)
    row = (
        d["payment_id"],
        d["contract_id"],
        d["from_user_id"],
        d["to_user_id"],
        d["amount_minor"],
        d["currency"],
        d["description"],
        at,
        at,
        event.version,
    )
    return [(INSERT, row), *_totals(event, 0, 1, 0)]


def on_completed(event: StoredEvent) -> list[Statement]:
    d = event.data
    return [
        (SET_COMPLETED, (d["transaction_hash"], recorded_at(event), event.version, d["payment_id"])),
        *_totals(event, 1, -1, 0),
    ]


def on_failed(event: StoredEvent) -> list[Statement]:
    return [
        (SET_STATUS, ("failed", recorded_at(event), event.version, event.data["payment_id"])),
        *_totals(event, 0, -1, 0),
    ]


def on_refunded(event: StoredEvent) -> list[Statement]:
    return [
        (SET_STATUS, ("refunded", recorded_at(event), event.version, event.data["payment_id"])),
        *_totals(event, -1, 0, 1),
    ]


# No summed deltas, index-only statements or reindex steps (queries/readmodel.py).
ADDITIVE: tuple[str, ...] = ()
INDEXING: tuple[str, ...] = ()
REINDEX: tuple[str, ...] = ()

PROJECTORS = {
    "PaymentCreated": on_created,
    "PaymentCompleted": on_completed,
    "PaymentFailed": on_failed,
    "PaymentRefunded": on_refunded,
}


# The columns a payment is read with, in the order `_row` unpacks them.
FIELDS = (
    "id",
    "contract_id",
    "from_user_id",
    "to_user_id",
    "amount_minor",
    "currency",
    "status",
    "transaction_hash",
    "description",
    "created_at",
    "updated_at",
    "version",
)
PAYMENTS = PartyTable(
    "rm_payments",
    FIELDS,
    ("from_user_id", "to_user_id"),
    "No payment with that id",
    CURSOR_LIST,
)


def _row(row: Row) -> dict[str, Any]:
    """The API's view of a payment row; unpacking names every column (and costs less than indexing)."""
    (
        payment_id,
        contract_id,
        from_user_id,
        to_user_id,
        amount_minor,
        currency,
        status,
        transaction_hash,
        description,
        created_at,
        updated_at,
        _version,
    ) = row
    return {
        "id": payment_id,
        "contract_id": contract_id,
        "from_user_id": from_user_id,
        "to_user_id": to_user_id,
        "amount": format_minor(amount_minor, currency),
        "currency": currency,
        "status": status,
        "transaction_hash": transaction_hash,
        "description": description,
        "created_at": created_at,
        "updated_at": updated_at,
    }


def get_payment(conn: Connection, payment_id: str, viewer_id: str, viewer_role: str) -> tuple[dict[str, Any], int]:
    """This payment, if the viewer paid it, receives it or is an admin; else NotFound."""
    row = PAYMENTS.get(conn, payment_id, viewer_id, viewer_role)
    return _row(row), int(row[-1])  # version: the last column


def list_payments(
    conn: Connection,
    *,
    viewer_id: str,
    viewer_role: str,
    limit: int,
    cursor: str | None = None,
    status: str | None = None,
    contract_id: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """The payments this viewer may see, newest first: those they pay or receive (admin: all)."""
    filters = (("status = ?", status), ("contract_id = ?", contract_id))
    rows, next_cursor = PAYMENTS.list_page(conn, viewer_id, viewer_role, limit, cursor, filters)
    return [_row(row) for row in rows], next_cursor


def contract_totals(conn: Connection, contract_id: str, viewer_id: str, viewer_role: str) -> dict[str, str]:
    """Completed (net of refunds), pending and refunded amounts on a contract its parties and admins may see."""
    contract, _ = get_contract(conn, contract_id, viewer_id, viewer_role)
    currency = str(contract["currency"])
    paid, pending, refunded = conn.execute(SELECT_TOTALS, (contract_id,)).fetchone() or (0, 0, 0)
    return {
        "total_paid": format_minor(paid, currency),
        "total_pending": format_minor(pending, currency),
        "total_refunded": format_minor(refunded, currency),
        "currency": currency,
    }


def linked_wallet(conn: Connection, user_id: str) -> str | None:
    """The wallet address a user linked (None if none, or no such user)."""
    row = conn.execute("SELECT wallet_address FROM rm_users WHERE id = ?", (user_id,)).fetchone()
    return str(row[0]) if row and row[0] else None
