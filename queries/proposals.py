"""Read model `proposals`: proposals by project and by freelancer, with names, for the people who may see them."""

from __future__ import annotations

from typing import Any

import orjson

from core.db import Connection, positions
from core.errors import NotFound
from core.events.base import StoredEvent
from core.money import format_minor
from queries.pagination import decode_cursor, page
from queries.projection import Statement, recorded_at, update_changed

NAME = "proposals"
VERSION = 1
TABLES = ("rm_proposals",)
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS rm_proposals (
        id TEXT PRIMARY KEY, project_id TEXT NOT NULL, client_id TEXT NOT NULL, freelancer_id TEXT NOT NULL,
        freelancer_name TEXT NOT NULL, cover_letter TEXT NOT NULL, estimated_hours INTEGER NOT NULL,
        hourly_rate_minor INTEGER NOT NULL, availability TEXT NOT NULL, attachments TEXT NOT NULL,
        status TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, version INTEGER NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS rm_proposals_project ON rm_proposals (project_id, id)",
    "CREATE INDEX IF NOT EXISTS rm_proposals_freelancer ON rm_proposals (freelancer_id, id)",
    "CREATE INDEX IF NOT EXISTS rm_proposals_client ON rm_proposals (client_id, id)",
)
COLUMNS = (
    "id, project_id, client_id, freelancer_id, freelancer_name, cover_letter, estimated_hours, hourly_rate_minor, "
    "availability, attachments, status, created_at, updated_at, version"
)
AT = positions(COLUMNS)
INSERT = (
    "INSERT INTO rm_proposals (id, project_id, client_id, freelancer_id, freelancer_name, cover_letter, "
    "estimated_hours, hourly_rate_minor, availability, attachments, status, created_at, updated_at, version) "
    "VALUES (?, ?, ?, ?, COALESCE((SELECT name FROM rm_users WHERE id = ?), ''), ?, ?, ?, ?, ?, 'submitted', ?, ?, ?)"
)
SET_STATUS = "UPDATE rm_proposals SET status = ?, updated_at = ?, version = ? WHERE id = ?"
RENAME = "UPDATE rm_proposals SET freelancer_name = ? WHERE freelancer_id = ?"
REVISABLE = ("cover_letter", "estimated_hours", "hourly_rate_minor", "availability")
STATUS_OF = {"ProposalWithdrawn": "withdrawn", "ProposalAccepted": "accepted", "ProposalRejected": "rejected"}

CURSOR_LIST = "proposals"  # cursors of this list are refused by the others


def on_submitted(event: StoredEvent) -> list[Statement]:
    d = event.data
    at = recorded_at(event)
    return [
        (
            INSERT,
            (
                d["proposal_id"],
                d["project_id"],
                d["client_id"],
                d["freelancer_id"],
                d["freelancer_id"],
                d["cover_letter"],
                d["estimated_hours"],
                d["hourly_rate_minor"],
                d["availability"],
                orjson.dumps(d["attachments"]).decode(),
                at,
                at,
                event.version,
            ),
        )
    ]


def on_revised(event: StoredEvent) -> list[Statement]:
    changes = event.data["changes"]
    return [update_changed("rm_proposals", event.data["proposal_id"], changes, event, REVISABLE, ("attachments",))]


def on_status(event: StoredEvent) -> list[Statement]:
    return [(SET_STATUS, (STATUS_OF[event.type], recorded_at(event), event.version, event.data["proposal_id"]))]


def on_user_renamed(event: StoredEvent) -> list[Statement]:
    name = event.data["changes"].get("name")
    return [(RENAME, (name, event.data["user_id"]))] if name else []


# No summed deltas, index-only statements or reindex steps (queries/readmodel.py).
ADDITIVE: tuple[str, ...] = ()
INDEXING: tuple[str, ...] = ()
REINDEX: tuple[str, ...] = ()

PROJECTORS = {
    "ProposalSubmitted": on_submitted,
    "ProposalRevised": on_revised,
    "ProposalWithdrawn": on_status,
    "ProposalAccepted": on_status,
    "ProposalRejected": on_status,
    "UserProfileUpdated": on_user_renamed,
}


def _row(row: tuple[Any, ...]) -> dict[str, Any]:
    """The API's view of a row (COLUMNS order); unpacking names every column, at less cost than indexing."""
    (
        proposal_id,
        project_id,
        _client_id,
        freelancer_id,
        freelancer_name,
        cover_letter,
        estimated_hours,
        hourly_rate_minor,
        availability,
        attachments,
        status,
        created_at,
        updated_at,
        _version,
    ) = row
    return {
        "id": proposal_id,
        "project_id": project_id,
        "freelancer_id": freelancer_id,
        "freelancer": {"id": freelancer_id, "name": freelancer_name},
        "cover_letter": cover_letter,
        "estimated_hours": estimated_hours,
        "hourly_rate": format_minor(hourly_rate_minor, "USD"),
        "availability": availability,
        "attachments": orjson.loads(attachments),
        "status": status,
        "created_at": created_at,
        "updated_at": updated_at,
    }


def may_see(row: tuple[Any, ...], viewer_id: str, viewer_role: str) -> bool:
    """The author, the project's owner and admins see a proposal."""
    return viewer_role == "admin" or viewer_id in (row[AT["client_id"]], row[AT["freelancer_id"]])


def get_proposal(conn: Connection, proposal_id: str, viewer_id: str, viewer_role: str) -> tuple[dict[str, Any], int]:
    """This proposal, if the viewer is its author, the project's owner or an admin; else NotFound."""
    row = conn.execute(f"SELECT {COLUMNS} FROM rm_proposals WHERE id = ?", (proposal_id,)).fetchone()
    if row is None or not may_see(row, viewer_id, viewer_role):
        raise NotFound("No proposal with that id")
    return _row(row), int(row[AT["version"]])


def list_proposals(
    conn: Connection,
    *,
    viewer_id: str,
    viewer_role: str,
    limit: int,
    cursor: str | None = None,
    project_id: str | None = None,
    status: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """The proposals this viewer may see: their own and those on their projects (admin: all), newest first.

    Roles can change, so one user may have both; the list shows what get_proposal lets them read."""
    after = decode_cursor(cursor, CURSOR_LIST, 1)[0] if cursor else None
    if viewer_role == "admin":
        branches = [_branch((), after, project_id, status)]
    else:
        # Two index-ordered scans merged by id: (client_id, id) and (freelancer_id, id); nobody bids on their
        # own project, and the `client_id <> ?` keeps the branches disjoint regardless.
        branches = [
            _branch(("client_id = ?",), after, project_id, status, viewer_id),
            _branch(("freelancer_id = ?", "client_id <> ?"), after, project_id, status, viewer_id, viewer_id),
        ]
    sql = " UNION ALL ".join(b[0] for b in branches) + " ORDER BY id DESC LIMIT ?"
    params = [p for b in branches for p in b[1]]
    rows, next_cursor = page(conn.execute(sql, (*params, limit + 1)).fetchall(), limit, (0,), CURSOR_LIST)
    return [_row(row) for row in rows], next_cursor


def _branch(
    clauses: tuple[str, ...], after: str | None, project_id: str | None, status: str | None, *values: str
) -> tuple[str, list[Any]]:
    where, params = list(clauses), list(values)
    for clause, value in (("id < ?", after), ("project_id = ?", project_id), ("status = ?", status)):
        if value is not None:
            where.append(clause)
            params.append(value)
    sql = f"SELECT {COLUMNS} FROM rm_proposals"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql, params
