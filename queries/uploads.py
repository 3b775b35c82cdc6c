"""Read model `uploads`: each upload's metadata, which public profile or portfolio item shows it, and which
proposal attaches it.

Who may see an upload: its owner, always; anyone signed in, once a profile or portfolio item uses it as its
image (those are public to signed-in users, so their pictures must be too); the owner of a project whose
proposal attaches it (`rm_upload_grants`), while the proposal still does. Everyone else gets a 404.
`rm_upload_refs` follows the portfolio and profile events to know which uploads are in such use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.db import Connection
from core.errors import NotFound
from core.events.base import StoredEvent
from core.ids import is_id
from queries.projection import Statement, recorded_at

NAME = "uploads"
VERSION = 2
TABLES = ("rm_uploads", "rm_upload_refs", "rm_upload_proposals", "rm_upload_grants")
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS rm_uploads (
        id TEXT PRIMARY KEY, owner_id TEXT NOT NULL, status TEXT NOT NULL, content_type TEXT NOT NULL,
        size INTEGER NOT NULL, sha256 TEXT, backend TEXT NOT NULL, storage_key TEXT, original_name TEXT NOT NULL,
        expires_at TEXT, created_at TEXT NOT NULL, version INTEGER NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS rm_upload_refs (
        ref_kind TEXT NOT NULL, ref_id TEXT NOT NULL, upload_id TEXT NOT NULL, PRIMARY KEY (ref_kind, ref_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS rm_upload_refs_upload ON rm_upload_refs (upload_id)",
    # Each proposal's two parties, for revisions (whose events name neither).
    """CREATE TABLE IF NOT EXISTS rm_upload_proposals (
        proposal_id TEXT PRIMARY KEY, freelancer_id TEXT NOT NULL, client_id TEXT NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS rm_upload_grants (
        proposal_id TEXT NOT NULL, upload_id TEXT NOT NULL, viewer_id TEXT NOT NULL,
        PRIMARY KEY (proposal_id, upload_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS rm_upload_grants_upload ON rm_upload_grants (upload_id, viewer_id)",
    "CREATE INDEX IF NOT EXISTS rm_uploads_owner ON rm_uploads (owner_id)",
)
COLUMNS = (
    "id, owner_id, status, content_type, size, sha256, backend, storage_key, original_name, expires_at, "
    "created_at, version"
)
INSERT_PENDING = (
    "INSERT INTO rm_uploads (id, owner_id, status, content_type, size, backend, original_name, expires_at, "
    "created_at, version) VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?)"
)
UPSERT_STORED = (
    "INSERT INTO rm_uploads (id, owner_id, status, content_type, size, sha256, backend, storage_key, original_name, "
    "created_at, version) VALUES (?, ?, 'stored', ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET status = 'stored', content_type = excluded.content_type, size = excluded.size, "
    "sha256 = excluded.sha256, storage_key = excluded.storage_key, created_at = excluded.created_at, "
    "version = excluded.version"
)
SELECT_ONE = f"SELECT {COLUMNS} FROM rm_uploads WHERE id = ?"
SELECT_REFERENCED = "SELECT 1 FROM rm_upload_refs WHERE upload_id = ? LIMIT 1"
SET_REF = "INSERT OR REPLACE INTO rm_upload_refs (ref_kind, ref_id, upload_id) VALUES (?, ?, ?)"
DROP_REF = "DELETE FROM rm_upload_refs WHERE ref_kind = ? AND ref_id = ?"
INSERT_PROPOSAL = "INSERT OR REPLACE INTO rm_upload_proposals (proposal_id, freelancer_id, client_id) VALUES (?, ?, ?)"
# Only the freelancer's own uploads are granted: attachments recorded before they were checked cannot open
# another user's file.
GRANT = (
    "INSERT OR IGNORE INTO rm_upload_grants (proposal_id, upload_id, viewer_id) "
    "SELECT p.proposal_id, u.id, p.client_id FROM rm_upload_proposals p JOIN rm_uploads u "
    "ON u.id = ? AND u.owner_id = p.freelancer_id WHERE p.proposal_id = ?"
)
DROP_GRANTS = "DELETE FROM rm_upload_grants WHERE proposal_id = ?"
SELECT_GRANTED = "SELECT 1 FROM rm_upload_grants WHERE upload_id = ? AND viewer_id = ? LIMIT 1"
DELETE_UPLOAD = "DELETE FROM rm_uploads WHERE id = ?"
DELETE_UPLOAD_REFS = "DELETE FROM rm_upload_refs WHERE upload_id = ?"
DELETE_UPLOAD_GRANTS = "DELETE FROM rm_upload_grants WHERE upload_id = ?"
# Stored uploads, and presigned ones whose URL may still be used: what an account holds against its quota.
SELECT_USAGE = (
    "SELECT COALESCE(SUM(size), 0) FROM rm_uploads WHERE owner_id = ? AND (status = 'stored' OR expires_at >= ?)"
)
SELECT_NEVER_COMPLETED = (
    "SELECT id, storage_key FROM rm_uploads WHERE status = 'pending' AND expires_at < ? ORDER BY expires_at LIMIT ?"
)
SELECT_NEVER_REFERENCED = (
    "SELECT u.id, u.storage_key FROM rm_uploads u WHERE u.status = 'stored' AND u.created_at < ? "
    "AND NOT EXISTS (SELECT 1 FROM rm_upload_refs r WHERE r.upload_id = u.id) "
    "AND NOT EXISTS (SELECT 1 FROM rm_upload_grants g WHERE g.upload_id = u.id) "
    "ORDER BY u.created_at LIMIT ?"
)
SELECT_IN_USE = (
    "SELECT EXISTS (SELECT 1 FROM rm_upload_refs WHERE upload_id = ?) "
    "OR EXISTS (SELECT 1 FROM rm_upload_grants WHERE upload_id = ?)"
)
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})


@dataclass(frozen=True, slots=True)
class UploadRow:
    id: str
    owner_id: str
    status: str
    content_type: str
    size: int
    sha256: str | None
    backend: str
    storage_key: str | None
    original_name: str
    expires_at: str | None
    created_at: str
    version: int

    @property
    def stored(self) -> bool:
        return self.status == "stored"


def on_presigned(event: StoredEvent) -> list[Statement]:
    d = event.data
    params = (
        d["upload_id"],
        d["owner_id"],
        d["content_type"],
        d["size"],
        d["backend"],
        d["original_name"],
        d["expires_at"],
        recorded_at(event),
        event.version,
    )
    return [(INSERT_PENDING, params)]


def on_stored(event: StoredEvent) -> list[Statement]:
    """Stored is when an upload starts to exist for its readers: `created_at` is this moment."""
    d = event.data
    params = (
        d["upload_id"],
        d["owner_id"],
        d["content_type"],
        d["size"],
        d["sha256"],
        d["backend"],
        d["storage_key"],
        d["original_name"],
        recorded_at(event),
        event.version,
    )
    return [(UPSERT_STORED, params)]


def on_discarded(event: StoredEvent) -> list[Statement]:
    upload_id = event.data["upload_id"]
    return [(DELETE_UPLOAD_REFS, (upload_id,)), (DELETE_UPLOAD_GRANTS, (upload_id,)), (DELETE_UPLOAD, (upload_id,))]


def _point(kind: str, ref_id: str, value: Any) -> list[Statement]:
    """`kind/ref_id` now shows `value`: forget what it showed before; remember it if it is an upload id."""
    statements: list[Statement] = [(DROP_REF, (kind, ref_id))]
    if isinstance(value, str) and is_id(value):
        statements.append((SET_REF, (kind, ref_id, value)))
    return statements


def on_portfolio_added(event: StoredEvent) -> list[Statement]:
    return _point("portfolio", event.data["item_id"], event.data.get("image_url"))


def on_portfolio_revised(event: StoredEvent) -> list[Statement]:
    changes = event.data.get("changes", {})
    return _point("portfolio", event.data["item_id"], changes["image_url"]) if "image_url" in changes else []


def on_portfolio_removed(event: StoredEvent) -> list[Statement]:
    return [(DROP_REF, ("portfolio", event.data["item_id"]))]


def on_profile_updated(event: StoredEvent) -> list[Statement]:
    changes = event.data.get("changes", {})
    if "profile_image_url" not in changes:
        return []
    return _point("profile", event.data["user_id"], changes["profile_image_url"])


def _attach(proposal_id: str, attachments: Any) -> list[Statement]:
    statements: list[Statement] = [(DROP_GRANTS, (proposal_id,))]
    for value in attachments if isinstance(attachments, list) else ():
        if isinstance(value, str) and is_id(value):
            statements.append((GRANT, (value, proposal_id)))
    return statements


def on_proposal_submitted(event: StoredEvent) -> list[Statement]:
    d = event.data
    parties = (INSERT_PROPOSAL, (d["proposal_id"], d["freelancer_id"], d["client_id"]))
    return [parties, *_attach(d["proposal_id"], d.get("attachments"))]


def on_proposal_revised(event: StoredEvent) -> list[Statement]:
    changes = event.data.get("changes", {})
    return _attach(event.data["proposal_id"], changes["attachments"]) if "attachments" in changes else []


# No summed deltas, index-only statements or reindex steps (queries/readmodel.py).
ADDITIVE: tuple[str, ...] = ()
INDEXING: tuple[str, ...] = ()
REINDEX: tuple[str, ...] = ()

PROJECTORS = {
    "UploadPresigned": on_presigned,
    "UploadStored": on_stored,
    "UploadDiscarded": on_discarded,
    "PortfolioItemAdded": on_portfolio_added,
    "PortfolioItemRevised": on_portfolio_revised,
    "PortfolioItemRemoved": on_portfolio_removed,
    "UserProfileUpdated": on_profile_updated,
    "ProposalSubmitted": on_proposal_submitted,
    "ProposalRevised": on_proposal_revised,
}


def find_upload(conn: Connection, upload_id: str) -> UploadRow | None:
    row = conn.execute(SELECT_ONE, (upload_id,)).fetchone()
    if row is None:
        return None
    return UploadRow(*row)  # COLUMNS are UploadRow's fields, in order


def get_upload(conn: Connection, upload_id: str, viewer_id: str) -> UploadRow:
    """A stored upload this viewer may see (owner, in public use as an image, or attached to a proposal on the
    viewer's project); NotFound otherwise."""
    upload = find_upload(conn, upload_id)
    if upload is None or not upload.stored:
        raise NotFound("No upload with that id")
    if (
        upload.owner_id != viewer_id
        and conn.execute(SELECT_REFERENCED, (upload_id,)).fetchone() is None
        and conn.execute(SELECT_GRANTED, (upload_id, viewer_id)).fetchone() is None
    ):
        raise NotFound("No upload with that id")
    return upload


def get_own_upload(conn: Connection, upload_id: str, owner_id: str) -> UploadRow:
    """An upload (pending or stored) of this owner; NotFound for anyone else's."""
    upload = find_upload(conn, upload_id)
    if upload is None or upload.owner_id != owner_id:
        raise NotFound("No upload with that id")
    return upload


def is_own_image(conn: Connection, upload_id: str, owner_id: str) -> bool:
    """May this user show this upload as a profile or portfolio image? (stored, theirs, an image type)"""
    upload = find_upload(conn, upload_id)
    return upload is not None and upload.stored and upload.owner_id == owner_id and upload.content_type in IMAGE_TYPES


def is_own_stored(conn: Connection, upload_id: str, owner_id: str) -> bool:
    """May this user attach this upload to a proposal? (stored and theirs)"""
    upload = find_upload(conn, upload_id)
    return upload is not None and upload.stored and upload.owner_id == owner_id


def get_usage(conn: Connection, owner_id: str, now: str) -> int:
    """Bytes this user holds against the upload quota: stored uploads and presigned ones not yet expired."""
    return int(conn.execute(SELECT_USAGE, (owner_id, now)).fetchone()[0])


def list_collectable(
    conn: Connection, pending_expired_before: str, stored_before: str, limit: int
) -> list[tuple[str, str | None, str]]:
    """Uploads housekeeping may delete, oldest first: (id, storage key, reason)."""
    never_completed = conn.execute(SELECT_NEVER_COMPLETED, (pending_expired_before, limit)).fetchall()
    never_referenced = conn.execute(SELECT_NEVER_REFERENCED, (stored_before, limit)).fetchall()
    return [(upload_id, key, "never_completed") for upload_id, key in never_completed] + [
        (upload_id, key, "never_referenced") for upload_id, key in never_referenced
    ]


def is_in_use(conn: Connection, upload_id: str) -> bool:
    """Does a profile, portfolio item or proposal show this upload now?"""
    return bool(conn.execute(SELECT_IN_USE, (upload_id, upload_id)).fetchone()[0])
