"""Read model `users`: public and private profiles, one row per account."""

from __future__ import annotations

from typing import Any

import orjson

from core.db import Connection, positions
from core.errors import NotFound
from core.events.base import StoredEvent
from core.notifications import switches
from queries.pagination import decode_cursor, page
from queries.projection import Statement, recorded_at, update_changed

NAME = "users"
VERSION = 5
TABLES = ("rm_users", "rm_user_skills")
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS rm_users (
        id TEXT PRIMARY KEY, email TEXT NOT NULL, name TEXT NOT NULL, role TEXT NOT NULL,
        is_active INTEGER NOT NULL DEFAULT 1, bio TEXT, skills TEXT NOT NULL DEFAULT '[]',
        hourly_rate TEXT, location TEXT, profile_image_url TEXT, wallet_address TEXT,
        joined_at TEXT NOT NULL, updated_at TEXT NOT NULL, version INTEGER NOT NULL,
        security_position INTEGER NOT NULL DEFAULT 0, notifications TEXT NOT NULL DEFAULT '{}'
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS rm_users_role ON rm_users (role, id)",
    """CREATE TABLE IF NOT EXISTS rm_user_skills (
        skill TEXT NOT NULL, user_id TEXT NOT NULL, PRIMARY KEY (skill, user_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS rm_user_skills_user ON rm_user_skills (user_id)",
)

COLUMNS = (
    "id, email, name, role, is_active, bio, skills, hourly_rate, location, profile_image_url, "
    "wallet_address, joined_at, version, notifications"
)
AT = positions(COLUMNS)
INSERT_USER = (
    "INSERT INTO rm_users (id, email, name, role, is_active, skills, joined_at, updated_at, version) "
    "VALUES (?, ?, ?, ?, 1, '[]', ?, ?, ?)"
)
SELECT_USER = f"SELECT {COLUMNS} FROM rm_users WHERE id = ?"
PROFILE_FIELDS = ("name", "bio", "hourly_rate", "location", "profile_image_url", "wallet_address")
DELETE_SKILLS = "DELETE FROM rm_user_skills WHERE user_id = ?"
INSERT_SKILL = "INSERT OR IGNORE INTO rm_user_skills (skill, user_id) VALUES (?, ?)"
# Only the switches an event names change; the others keep their value (`json_patch` merges objects).
PATCH_NOTIFICATIONS = "UPDATE rm_users SET notifications = json_patch(notifications, ?) WHERE id = ?"

CURSOR_LIST = "users"  # cursors of this list are refused by the others


def on_registered(event: StoredEvent) -> list[Statement]:
    d = event.data
    return [
        (INSERT_USER, (d["user_id"], d["email"], d["name"], d["role"], d["joined_at"], d["joined_at"], event.version))
    ]


def on_profile_updated(event: StoredEvent) -> list[Statement]:
    """Only the changed columns are written; skills also refresh the skill index."""
    user_id = event.data["user_id"]
    changes: dict[str, Any] = event.data["changes"]
    statements = [update_changed("rm_users", user_id, changes, event, PROFILE_FIELDS, ("skills",))]
    if "skills" in changes:
        statements.append((DELETE_SKILLS, (user_id,)))
        statements.extend((INSERT_SKILL, (skill.lower(), user_id)) for skill in changes["skills"])
    if "notifications" in changes:
        statements.append((PATCH_NOTIFICATIONS, (orjson.dumps(changes["notifications"]).decode(), user_id)))
    return statements


SET_ROLE = "UPDATE rm_users SET role = ?, security_position = ?, updated_at = ?, version = ? WHERE id = ?"
SET_ACTIVE = "UPDATE rm_users SET is_active = ?, updated_at = ?, version = ? WHERE id = ?"
DEACTIVATE = "UPDATE rm_users SET is_active = 0, security_position = ?, updated_at = ?, version = ? WHERE id = ?"
TOUCH = "UPDATE rm_users SET updated_at = ?, version = ? WHERE id = ?"


def on_role_changed(event: StoredEvent) -> list[Statement]:
    return [(SET_ROLE, (event.data["role"], event.position, recorded_at(event), event.version, event.data["user_id"]))]


def on_deactivated(event: StoredEvent) -> list[Statement]:
    return [(DEACTIVATE, (event.position, recorded_at(event), event.version, event.data["user_id"]))]


def on_reactivated(event: StoredEvent) -> list[Statement]:
    return [(SET_ACTIVE, (1, recorded_at(event), event.version, event.data["user_id"]))]


def on_password_changed(event: StoredEvent) -> list[Statement]:
    return [(TOUCH, (recorded_at(event), event.version, event.data["user_id"]))]


SET_WALLET = "UPDATE rm_users SET wallet_address = ?, updated_at = ?, version = ? WHERE id = ?"


def on_wallet_linked(event: StoredEvent) -> list[Statement]:
    return [(SET_WALLET, (event.data["address"], recorded_at(event), event.version, event.data["user_id"]))]


# No summed deltas, index-only statements or reindex steps (queries/readmodel.py).
ADDITIVE: tuple[str, ...] = ()
INDEXING: tuple[str, ...] = ()
REINDEX: tuple[str, ...] = ()

PROJECTORS = {
    "UserRegistered": on_registered,
    "UserProfileUpdated": on_profile_updated,
    "UserRoleChanged": on_role_changed,
    "UserDeactivated": on_deactivated,
    "UserReactivated": on_reactivated,
    "UserPasswordChanged": on_password_changed,
    "WalletLinked": on_wallet_linked,
}


def _row(row: tuple[Any, ...], private: bool) -> dict[str, Any]:
    """The API's view of a row (COLUMNS order); unpacking names every column, at less cost than indexing."""
    (
        user_id,
        email,
        name,
        role,
        is_active,
        bio,
        skills,
        hourly_rate,
        location,
        profile_image_url,
        wallet_address,
        joined_at,
        _version,
        notifications,
    ) = row
    user: dict[str, Any] = {
        "id": user_id,
        "name": name,
        "role": role,
        "bio": bio,
        "skills": orjson.loads(skills),
        "hourly_rate": hourly_rate,
        "location": location,
        "profile_image_url": profile_image_url,
        "wallet_address": wallet_address,
        "joined_at": joined_at,
    }
    if private:
        user["email"] = email
        user["is_active"] = bool(is_active)
        user["notifications"] = switches(orjson.loads(notifications))
    return user


def get_user(conn: Connection, user_id: str, *, private: bool = False) -> tuple[dict[str, Any], int]:
    """Who is this user? Returns the view and its stream version (the ETag)."""
    row = conn.execute(SELECT_USER, (user_id,)).fetchone()
    if row is None:
        raise NotFound("No user with that id")
    return _row(row, private), int(row[AT["version"]])


def list_users(
    conn: Connection,
    *,
    limit: int,
    cursor: str | None = None,
    role: str | None = None,
    skill: str | None = None,
    q: str | None = None,
    private: bool = False,
) -> tuple[list[dict[str, Any]], str | None]:
    """Which users match these filters, newest first?"""
    where, params = [], []
    if cursor:
        where.append("u.id < ?")
        params.append(decode_cursor(cursor, CURSOR_LIST, 1)[0])
    if role:
        where.append("u.role = ?")
        params.append(role)
    if skill:
        where.append("u.id IN (SELECT user_id FROM rm_user_skills WHERE skill = ?)")
        params.append(skill.lower())
    if q:
        where.append("u.name LIKE ? ESCAPE '\\'")
        params.append("%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    if not private:
        where.append("u.is_active = 1")
    sql = f"SELECT {COLUMNS} FROM rm_users u"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY u.id DESC LIMIT ?"
    rows = conn.execute(sql, (*params, limit + 1)).fetchall()
    rows, next_cursor = page(rows, limit, (0,), CURSOR_LIST)
    return [_row(row, private) for row in rows], next_cursor
