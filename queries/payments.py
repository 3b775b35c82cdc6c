"""Read model `payments`: each payment for its payer and payee, and running totals per contract."""

from __future__ import annotations

from typing import Any

from core.db import Connection
from core.errors import NotFound
from core.events.base import StoredEvent
from core.money import format_minor
from queries.contracts import get_contract
from queries.pagination import decode_cursor, page
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
COLUMNS = (
    "id, contract_id, from_user_id, to_user_id, amount_minor, currency, status, transaction_hash, description, "
    "created_at, updated_at, version"
)
INSERT = (
    "INSERT INTO rm_payments (id, contract_id, from_user_id, to_user_id, amount_minor, currency, status, "
    "transaction_hash, description, created_at, updated_at, version) "
    "VALUES (?, ?, ?, ?, ?, ?, 'pending', NULL, ?, ?, ?, ?)"
)
SELECT_ONE = f"SELECT {COLUMNS} FROM rm_payments WHERE id = ?"
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


PROJECTORS = {
    "PaymentCreated": on_created,
    "PaymentCompleted": on_completed,
    "PaymentFailed": on_failed,
    "PaymentRefunded": on_refunded,
}


def _row(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "id": row[0],
        "contract_id": row[1],
        "from_user_id": row[2],
        "to_user_id": row[3],
        "amount": format_minor(row[4], row[5]),
        "currency": row[5],
        "status": row[6],
        "transaction_hash": row[7],
        "description": row[8],
        "created_at": row[9],
        "updated_at": row[10],
    }


def may_see(row: tuple[Any, ...], viewer_id: str, viewer_role: str) -> bool:
    return viewer_role == "admin" or viewer_id in (row[2], row[3])


def get_payment(conn: Connection, payment_id: str, viewer_id: str, viewer_role: str) -> tuple[dict[str, Any], int]:
    """This payment, if the viewer paid it, receives it or is an admin; else NotFound."""
    row = conn.execute(SELECT_ONE, (payment_id,)).fetchone()
    if row is None or not may_see(row, viewer_id, viewer_role):
        raise NotFound("No payment with that id")
    return _row(row), int(row[11])


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
    after = decode_cursor(cursor, CURSOR_LIST, 1)[0] if cursor else None
    filters = (("id < ?", after), ("status = ?", status), ("contract_id = ?", contract_id))
    if viewer_role == "admin":
        branches = [_branch((), filters)]
    else:
        # Two index-ordered scans merged by id; `from_user_id <> ?` keeps them disjoint.
        branches = [
            _branch((("from_user_id = ?", viewer_id),), filters),
            _branch((("to_user_id = ?", viewer_id), ("from_user_id <> ?", viewer_id)), filters),
        ]
    sql = " UNION ALL ".join(b[0] for b in branches) + " ORDER BY id DESC LIMIT ?"
    params = [p for b in branches for p in b[1]]
    rows, next_cursor = page(conn.execute(sql, (*params, limit + 1)).fetchall(), limit, (0,), CURSOR_LIST)
    return [_row(row) for row in rows], next_cursor


def _branch(fixed: tuple[tuple[str, str], ...], filters: tuple[tuple[str, str | None], ...]) -> tuple[str, list[Any]]:
    pairs = [*fixed, *((clause, value) for clause, value in filters if value is not None)]
    sql = f"SELECT {COLUMNS} FROM rm_payments"
    if pairs:
        sql += " WHERE " + " AND ".join(clause for clause, _ in pairs)
    return sql, [value for _, value in pairs]


def contract_totals(conn: Connection, contract_id: str, viewer_id: str, viewer_role: str) -> dict[str, str]:
    """Completed (net of refunds), pending and refunded amounts on a contract its parties and admins may see."""
    contract, _ = get_contract(conn, contract_id, viewer_id, viewer_role)
    currency = str(contract["currency"])
    row = conn.execute(SELECT_TOTALS, (contract_id,)).fetchone() or (0, 0, 0)
    return {
        "total_paid": format_minor(row[0], currency),
        "total_pending": format_minor(row[1], currency),
        "total_refunded": format_minor(row[2], currency),
        "currency": currency,
    }


def linked_wallet(conn: Connection, user_id: str) -> str | None:
    """The wallet address a user linked (None if none, or no such user)."""
    row = conn.execute("SELECT wallet_address FROM rm_users WHERE id = ?", (user_id,)).fetchone()
    return str(row[0]) if row and row[0] else None


def tx_hash_used(conn: Connection, tx_hash: str) -> bool:
    """Primary only (claims are write-side): has this hash already settled a payment? The command decides for sure."""
    row = conn.execute("SELECT 1 FROM claims WHERE kind = 'tx_hash' AND key = ?", (tx_hash.lower(),)).fetchone()
    return row is not None
