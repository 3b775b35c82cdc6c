"""Read model `portfolio`: each freelancer's portfolio items, for anyone signed in to browse."""

from __future__ import annotations

from typing import Any

import orjson

from core.db import Connection, positions
from core.errors import NotFound
from core.events.base import StoredEvent
from queries.pagination import decode_cursor, page
from queries.projection import Statement, recorded_at, update_changed

NAME = "portfolio"
VERSION = 1
TABLES = ("rm_portfolio_items",)
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS rm_portfolio_items (
        id TEXT PRIMARY KEY, freelancer_id TEXT NOT NULL, title TEXT NOT NULL, description TEXT NOT NULL,
        image_url TEXT NOT NULL, project_url TEXT, tags TEXT NOT NULL, created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL, version INTEGER NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS rm_portfolio_items_freelancer ON rm_portfolio_items (freelancer_id, id)",
)
COLUMNS = "id, freelancer_id, title, description, image_url, project_url, tags, created_at, updated_at, version"
AT = positions(COLUMNS)
INSERT = (
    "INSERT INTO rm_portfolio_items (id, freelancer_id, title, description, image_url, project_url, tags, "
    "created_at, updated_at, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SELECT_ONE = f"SELECT {COLUMNS} FROM rm_portfolio_items WHERE id = ?"
SELECT_FIRST_PAGE = f"SELECT {COLUMNS} FROM rm_portfolio_items WHERE freelancer_id = ? ORDER BY id DESC LIMIT ?"
SELECT_NEXT_PAGE = (
    f"SELECT {COLUMNS} FROM rm_portfolio_items WHERE freelancer_id = ? AND id < ? ORDER BY id DESC LIMIT ?"
)
DELETE = "DELETE FROM rm_portfolio_items WHERE id = ?"
REVISABLE = ("title", "description", "image_url", "project_url")

CURSOR_LIST = "portfolio"  # cursors of this list are refused by the others


def on_added(event: StoredEvent) -> list[Statement]:
    d = event.data
    at = recorded_at(event)
    return [
        (
            INSERT,
            (
                d["item_id"],
                d["freelancer_id"],
                d["title"],
                d["description"],
                d["image_url"],
                d["project_url"],
                orjson.dumps(d["tags"]).decode(),
                at,
                at,
                event.version,
            ),
        )
    ]


def on_revised(event: StoredEvent) -> list[Statement]:
    changes = event.data["changes"]
    return [update_changed("rm_portfolio_items", event.data["item_id"], changes, event, REVISABLE, ("tags",))]


def on_removed(event: StoredEvent) -> list[Statement]:
    return [(DELETE, (event.data["item_id"],))]


# No summed deltas, index-only statements or reindex steps (queries/readmodel.py).
ADDITIVE: tuple[str, ...] = ()
INDEXING: tuple[str, ...] = ()
REINDEX: tuple[str, ...] = ()

PROJECTORS = {
    "PortfolioItemAdded": on_added,
    "PortfolioItemRevised": on_revised,
    "PortfolioItemRemoved": on_removed,
}


def _row(row: tuple[Any, ...]) -> dict[str, Any]:
    """The API's view of a row (COLUMNS order); unpacking names every column, at less cost than indexing."""
    (
        item_id,
        freelancer_id,
        title,
        description,
        image_url,
        project_url,
        tags,
        created_at,
        updated_at,
        _version,
    ) = row
    return {
        "id": item_id,
        "freelancer_id": freelancer_id,
        "title": title,
        "description": description,
        "image_url": image_url,
        "project_url": project_url,
        "tags": orjson.loads(tags),
        "created_at": created_at,
        "updated_at": updated_at,
    }


def get_portfolio_item(conn: Connection, item_id: str) -> tuple[dict[str, Any], int]:
    """What does this portfolio item look like now? (view, version for the ETag)"""
    row = conn.execute(SELECT_ONE, (item_id,)).fetchone()
    if row is None:
        raise NotFound("No portfolio item with that id")
    return _row(row), int(row[AT["version"]])


def list_portfolio_items(
    conn: Connection,
    *,
    freelancer_id: str,
    limit: int,
    cursor: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Which items does this freelancer's portfolio show, newest first?"""
    if cursor:
        after = decode_cursor(cursor, CURSOR_LIST, 1)[0]
        found = conn.execute(SELECT_NEXT_PAGE, (freelancer_id, after, limit + 1)).fetchall()
    else:
        found = conn.execute(SELECT_FIRST_PAGE, (freelancer_id, limit + 1)).fetchall()
    rows, next_cursor = page(found, limit, (0,), CURSOR_LIST)
    return [_row(row) for row in rows], next_cursor
