"""Read model `matching`: what each freelancer and project is about, as text, a vector and ranking facts.

Two halves (docs/matching.md):
- Inline, like every model: `rm_matching_changes` records, in the command's transaction, which
  freelancer or project an event touched and at which position (a small upsert, no encoding).
- Asynchronous, after commit, from its own checkpoint (`rm_matching_state`): `catch_up_step` reads the
  touched documents from the read store, encodes the texts whose hash it has no vector for, and writes
  `rm_matching_docs` (+ full-text tables) and its position in one transaction. The same step runs on the
  primary (whose read store follows the log) and on an edge (whose store follows the primary's feed).

The document tables are not in TABLES: a rebuild keeps them, so a replay re-derives every text and finds
its vector by hash instead of encoding it again.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from core.db import Connection
from core.encoder import Encoder
from core.events.base import StoredEvent
from queries.projection import Statement, checkpoint

NAME = "matching"
VERSION = 1
DOC_VERSION = 1  # how documents are written from the read store: a change re-derives (not re-encodes) them all
TABLES = ("rm_matching_changes",)
KINDS = ("freelancer", "project")
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS rm_matching_changes (
        kind TEXT NOT NULL, id TEXT NOT NULL, position INTEGER NOT NULL, PRIMARY KEY (kind, id)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS rm_matching_changes_position ON rm_matching_changes (position)",
    # Derived by the asynchronous step, kept across rebuilds (module docstring).
    """CREATE TABLE IF NOT EXISTS rm_matching_docs (
        kind TEXT NOT NULL, id TEXT NOT NULL, text TEXT NOT NULL, text_hash TEXT NOT NULL, vector BLOB NOT NULL,
        skills TEXT NOT NULL, active INTEGER NOT NULL, rate_minor INTEGER, budget_type TEXT,
        budget_max_minor INTEGER, completed INTEGER NOT NULL, completeness REAL NOT NULL, UNIQUE (kind, id)
    )""",
    "CREATE INDEX IF NOT EXISTS rm_matching_docs_hash ON rm_matching_docs (text_hash)",
    """CREATE TABLE IF NOT EXISTS rm_matching_state (
        id INTEGER PRIMARY KEY CHECK (id = 1), position INTEGER NOT NULL, generation INTEGER NOT NULL,
        doc_version INTEGER NOT NULL, encoder TEXT NOT NULL
    )""",
    "CREATE VIRTUAL TABLE IF NOT EXISTS rm_matching_fts_freelancer USING fts5(text, "
    "tokenize = 'unicode61 remove_diacritics 2')",
    "CREATE VIRTUAL TABLE IF NOT EXISTS rm_matching_fts_project USING fts5(text, "
    "tokenize = 'unicode61 remove_diacritics 2')",
    # How many documents hold each word: BM25 queries keep the selective words (queries/ranking.py).
    "CREATE VIRTUAL TABLE IF NOT EXISTS rm_matching_vocab_freelancer USING fts5vocab(rm_matching_fts_freelancer, row)",
    "CREATE VIRTUAL TABLE IF NOT EXISTS rm_matching_vocab_project USING fts5vocab(rm_matching_fts_project, row)",
)
FTS = {"freelancer": "rm_matching_fts_freelancer", "project": "rm_matching_fts_project"}
VOCAB = {"freelancer": "rm_matching_vocab_freelancer", "project": "rm_matching_vocab_project"}

# -- inline: which documents an event touched ----------------------------------------------------------

UPSERT = " ON CONFLICT (kind, id) DO UPDATE SET position = excluded.position"
MARK = "INSERT INTO rm_matching_changes (kind, id, position) VALUES (?, ?, ?)" + UPSERT
MARK_ITEM_OWNER = (
    "INSERT INTO rm_matching_changes (kind, id, position) "
    "SELECT 'user', freelancer_id, ? FROM rm_portfolio_items WHERE id = ?" + UPSERT
)
MARK_CONTRACT_FREELANCER = (
    "INSERT INTO rm_matching_changes (kind, id, position) "
    "SELECT 'user', freelancer_id, ? FROM rm_contracts WHERE id = ?" + UPSERT
)


def on_user(event: StoredEvent) -> list[Statement]:
    return [(MARK, ("user", event.data["user_id"], event.position))]


def on_project(event: StoredEvent) -> list[Statement]:
    return [(MARK, ("project", event.data["project_id"], event.position))]


def on_item(event: StoredEvent) -> list[Statement]:
    return [(MARK, ("user", event.data["freelancer_id"], event.position))]


def on_item_revised(event: StoredEvent) -> list[Statement]:
    return [(MARK_ITEM_OWNER, (event.position, event.data["item_id"]))]


def on_contract_status(event: StoredEvent) -> list[Statement]:
    """A completed contract's project title joins the freelancer's document."""
    if event.data["status"] != "completed":
        return []
    return [(MARK_CONTRACT_FREELANCER, (event.position, event.data["contract_id"]))]


# No summed deltas, index-only statements or reindex steps (queries/readmodel.py).
ADDITIVE: tuple[str, ...] = ()
INDEXING: tuple[str, ...] = ()
REINDEX: tuple[str, ...] = ()

PROJECTORS = {
    "UserRegistered": on_user,
    "UserProfileUpdated": on_user,
    "UserRoleChanged": on_user,
    "UserDeactivated": on_user,
    "UserReactivated": on_user,
    "PortfolioItemAdded": on_item,
    "PortfolioItemRevised": on_item_revised,
    "PortfolioItemRemoved": on_item,
    "ContractStatusChanged": on_contract_status,
    "ProjectPosted": on_project,
    "ProjectRevised": on_project,
    "ProjectStatusChanged": on_project,
    "ProjectAwarded": on_project,
    "ProjectDeleted": on_project,
}

# -- asynchronous: documents from the read store --------------------------------------------------------

SELECT_STATE = "SELECT position, generation, doc_version, encoder FROM rm_matching_state WHERE id = 1"
UPSERT_STATE = (
    "INSERT INTO rm_matching_state (id, position, generation, doc_version, encoder) VALUES (1, ?, ?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET position = excluded.position, generation = excluded.generation, "
    "doc_version = excluded.doc_version, encoder = excluded.encoder"
)
SELECT_PENDING = (
    "SELECT kind, id, position FROM rm_matching_changes WHERE position > ? AND position <= ? ORDER BY position LIMIT ?"
)
SELECT_FREELANCER = "SELECT bio, skills, hourly_rate, location, profile_image_url, is_active FROM rm_users WHERE id = ?"
SELECT_IS_FREELANCER = "SELECT role = 'freelancer' FROM rm_users WHERE id = ?"
SELECT_PORTFOLIO = "SELECT title, description FROM rm_portfolio_items WHERE freelancer_id = ? ORDER BY id"
SELECT_COMPLETED = (
    "SELECT p.title FROM rm_contracts c JOIN rm_projects p ON p.id = c.project_id "
    "WHERE c.freelancer_id = ? AND c.status = 'completed' ORDER BY c.id"
)
SELECT_PROJECT = (
    "SELECT title, description, skills, category, status, budget_type, budget_max_minor FROM rm_projects WHERE id = ?"
)
SELECT_VECTOR_BY_HASH = "SELECT vector FROM rm_matching_docs WHERE text_hash = ? LIMIT 1"
SELECT_DOC_ROW = (
    "SELECT rowid, text_hash, skills, active, rate_minor, budget_type, budget_max_minor, completed, completeness "
    "FROM rm_matching_docs WHERE kind = ? AND id = ?"
)
UPSERT_DOC = (
    "INSERT INTO rm_matching_docs (kind, id, text, text_hash, vector, skills, active, rate_minor, budget_type, "
    "budget_max_minor, completed, completeness) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (kind, id) DO UPDATE SET text = excluded.text, text_hash = excluded.text_hash, "
    "vector = excluded.vector, skills = excluded.skills, active = excluded.active, rate_minor = excluded.rate_minor, "
    "budget_type = excluded.budget_type, budget_max_minor = excluded.budget_max_minor, "
    "completed = excluded.completed, completeness = excluded.completeness"
)
DELETE_DOC = "DELETE FROM rm_matching_docs WHERE kind = ? AND id = ?"
COUNT_PENDING = "SELECT COUNT(*) FROM rm_matching_changes WHERE position > ?"
SELECT_DOC_HASHES = "SELECT kind, id, text_hash FROM rm_matching_docs"
SELECT_ALL_USERS = "SELECT id FROM rm_users WHERE role = 'freelancer'"
SELECT_ALL_PROJECTS = "SELECT id FROM rm_projects"

BATCH = 256  # documents per step: one encoder call and one short write transaction
MAX_ENCODED_CHARS = 2000  # the encoder's cost grows with length; the start of a text says what it is about


@dataclass(frozen=True, slots=True)
class Doc:
    """One freelancer's or project's document: its text and the facts ranking filters and re-ranks on."""

    kind: str
    id: str
    text: str
    skills: list[str]
    active: bool
    rate_minor: int | None = None
    budget_type: str | None = None
    budget_max_minor: int | None = None
    completed: int = 0
    completeness: float = 0.0

    def text_hash(self, encoder: str) -> str:
        return hashlib.sha256(f"{encoder}\0{self.text}".encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class State:
    """Where the asynchronous half stands."""

    position: int
    generation: int
    doc_version: int
    encoder: str


def state(conn: Connection, encoder: str) -> State:
    """The asynchronous checkpoint; from 0 when documents were made differently (or by another encoder)."""
    row = conn.execute(SELECT_STATE).fetchone()
    if row is None:
        return State(0, 0, DOC_VERSION, encoder)
    position, generation, doc_version, made_by = row
    current = State(int(position), int(generation), int(doc_version), str(made_by))
    if current.doc_version != DOC_VERSION or current.encoder != encoder:
        return State(0, current.generation, DOC_VERSION, encoder)
    return current


def cents(rate: str | None) -> int | None:
    """An hourly rate's decimal string in cents (None when unset or unreadable)."""
    if not rate:
        return None
    try:
        return int((Decimal(rate) * 100).to_integral_value())
    except InvalidOperation:
        return None


def freelancer_text(
    bio: str | None, skills: Sequence[str], items: Iterable[tuple[str, str]], completed: Iterable[str]
) -> str:
    """What a freelancer's document says: bio, skills, portfolio items and completed work, one per line."""
    lines = [bio or "", "Skills: " + ", ".join(skills) if skills else ""]
    lines += [f"{title}: {description}" for title, description in items]
    lines += [f"Completed: {title}" for title in completed]
    return "\n".join(line for line in lines if line).strip()


def project_text(title: str, description: str, skills: Sequence[str], category: str) -> str:
    """What a project's document says (its budget stays out: numbers mislead the encoder)."""
    lines = [title, description, "Skills: " + ", ".join(skills) if skills else "", f"Category: {category}"]
    return "\n".join(line for line in lines if line)


def freelancer_doc(conn: Connection, user_id: str) -> Doc | None:
    """Bio, skills, portfolio and completed work of a freelancer; None for anyone else."""
    row = conn.execute(SELECT_FREELANCER, (user_id,)).fetchone()
    is_freelancer = conn.execute(SELECT_IS_FREELANCER, (user_id,)).fetchone()
    if row is None or not is_freelancer or not is_freelancer[0]:
        return None
    bio, skills_json, rate, location, image, is_active = row
    skills: list[str] = orjson.loads(skills_json)
    items = conn.execute(SELECT_PORTFOLIO, (user_id,)).fetchall()
    done = [title for (title,) in conn.execute(SELECT_COMPLETED, (user_id,)).fetchall()]
    filled = (bool(bio), bool(skills), rate is not None, bool(location), bool(image), bool(items))
    return Doc(
        "freelancer",
        user_id,
        freelancer_text(bio, skills, items, done),
        skills,
        bool(is_active),
        rate_minor=cents(rate),
        completed=len(done),
        completeness=sum(filled) / len(filled),
    )


def project_doc(conn: Connection, project_id: str) -> Doc | None:
    """Title, description, skills and category of a project (budget stays out of the text: numbers mislead)."""
    row = conn.execute(SELECT_PROJECT, (project_id,)).fetchone()
    if row is None:
        return None
    title, description, skills_json, category, status, budget_type, budget_max = row
    skills: list[str] = orjson.loads(skills_json)
    text = project_text(title, description, skills, category)
    return Doc(
        "project", project_id, text, skills, status == "open", budget_type=budget_type, budget_max_minor=budget_max
    )


def document(conn: Connection, kind: str, entity_id: str) -> tuple[str, str, Doc | None]:
    """(doc kind, id, the document or None when there is none any more) for a change row."""
    if kind == "project":
        return "project", entity_id, project_doc(conn, entity_id)
    return "freelancer", entity_id, freelancer_doc(conn, entity_id)


@dataclass(frozen=True, slots=True)
class Work:
    """What one step read: the documents touched up to `upto`, and those whose text has no vector yet."""

    upto: int
    docs: list[tuple[str, str, Doc | None]]
    to_encode: list[str]
    cached: dict[str, bytes]


def read_work(conn: Connection, after: int, encoder: str, limit: int = BATCH) -> Work:
    """The documents touched after `after`, read in one snapshot with the store's checkpoint."""
    conn.execute("BEGIN")
    try:
        head = checkpoint(conn)
        rows = conn.execute(SELECT_PENDING, (after, head, limit)).fetchall()
        upto = head if len(rows) < limit else int(rows[-1][2]) - 1
        if upto <= after:  # one position touched more than `limit` documents: take them all
            upto = int(rows[-1][2])
            rows = conn.execute(SELECT_PENDING, (after, upto, 1 << 30)).fetchall()
        docs = [document(conn, kind, entity_id) for kind, entity_id, position in rows if position <= upto]
        cached: dict[str, bytes] = {}
        to_encode: dict[str, str] = {}
        for _, _, doc in docs:
            if doc is None:
                continue
            digest = doc.text_hash(encoder)
            if digest in cached or digest in to_encode:
                continue
            found = conn.execute(SELECT_VECTOR_BY_HASH, (digest,)).fetchone()
            if found is not None:
                cached[digest] = bytes(found[0])
            else:
                to_encode[digest] = doc.text[:MAX_ENCODED_CHARS]
    finally:
        conn.execute("COMMIT")
    return Work(upto, docs, list(to_encode.values()), cached)


def encode_work(work: Work, encoder: Encoder) -> dict[str, bytes]:
    """Vectors (float32 bytes) by text hash: the cached ones and the newly encoded."""
    vectors = dict(work.cached)
    if work.to_encode:
        texts = {t: None for t in work.to_encode}
        encoded = encoder.encode(list(texts))
        by_text = {text: encoded[i].tobytes() for i, text in enumerate(texts)}
        for _, _, doc in work.docs:
            if doc is not None:
                digest = doc.text_hash(encoder.name)
                if digest not in vectors:
                    vectors[digest] = by_text[doc.text[:MAX_ENCODED_CHARS]]
    return vectors


def write_work(conn: Connection, work: Work, vectors: dict[str, bytes], encoder: str, previous: State) -> State:
    """Documents, full-text rows and the asynchronous checkpoint, in the caller's transaction."""
    changed = False
    for kind, entity_id, doc in work.docs:
        changed |= write_doc(conn, kind, entity_id, doc, vectors, encoder)
    # A clock reading, not a counter: a state row lost or reset can never bring back a generation a cache holds.
    generation = max(previous.generation + 1, time.time_ns()) if changed else previous.generation
    conn.execute(UPSERT_STATE, (work.upto, generation, DOC_VERSION, encoder))
    return State(work.upto, generation, DOC_VERSION, encoder)


def doc_facts(doc: Doc) -> tuple[object, ...]:
    """The stored columns beside text and vector, in UPSERT_DOC's order."""
    skills = orjson.dumps(doc.skills).decode()
    return (
        skills,
        int(doc.active),
        doc.rate_minor,
        doc.budget_type,
        doc.budget_max_minor,
        doc.completed,
        doc.completeness,
    )


def write_doc(
    conn: Connection, kind: str, entity_id: str, doc: Doc | None, vectors: dict[str, bytes], encoder: str
) -> bool:
    """Write one document (None: remove it); False when it was already exactly so (a replay, a no-op edit)."""
    fts = FTS[kind]
    old = conn.execute(SELECT_DOC_ROW, (kind, entity_id)).fetchone()
    digest = doc.text_hash(encoder) if doc is not None else ""
    facts = doc_facts(doc) if doc is not None else ()
    if old is not None and doc is not None and old[1] == digest and tuple(old[2:]) == facts:
        return False
    if old is not None:
        conn.execute(f"DELETE FROM {fts} WHERE rowid = ?", (old[0],))
    if doc is None:
        conn.execute(DELETE_DOC, (kind, entity_id))
        return old is not None
    conn.execute(UPSERT_DOC, (kind, entity_id, doc.text, digest, vectors[digest], *facts))
    rowid = conn.execute(SELECT_DOC_ROW, (kind, entity_id)).fetchone()[0]
    conn.execute(f"INSERT INTO {fts} (rowid, text) VALUES (?, ?)", (rowid, doc.text))
    return True


def catch_up(conn: Connection, encoder: Encoder, progress: Callable[[int], None] | None = None) -> State:
    """Run steps until the documents reach the store's checkpoint (CLI: rebuild, seed-demo; tests; bench)."""
    current = state(conn, encoder.name)
    while current.position < checkpoint(conn):
        work = read_work(conn, current.position, encoder.name)
        vectors = encode_work(work, encoder)
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = write_work(conn, work, vectors, encoder.name, current)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if progress is not None:
            progress(len(work.docs))
    return current


# -- verify: the documents a replay derives, by text hash -------------------------------------------------


def expected_hashes(conn: Connection, encoder: str) -> dict[tuple[str, str], str]:
    keys: Iterable[tuple[str, str]] = [("user", i) for (i,) in conn.execute(SELECT_ALL_USERS).fetchall()]
    keys = [*keys, *(("project", i) for (i,) in conn.execute(SELECT_ALL_PROJECTS).fetchall())]
    found = {}
    for kind, entity_id in keys:
        doc_kind, doc_id, doc = document(conn, kind, entity_id)
        if doc is not None:
            found[(doc_kind, doc_id)] = doc.text_hash(encoder)
    return found


def differences(live: Connection, scratch: Connection) -> list[str]:
    """Documents the live store lacks, holds in excess or holds for another text than a replay derives."""
    row = live.execute(SELECT_STATE).fetchone()
    if row is None:
        return []  # never embedded (the flag is off, or nothing ran yet): nothing derived to compare
    position, _generation, _doc_version, encoder = row
    behind = live.execute(COUNT_PENDING, (int(position),)).fetchone()[0]
    if behind:
        return [f"rm_matching_docs: {behind} document(s) changed since position {position} are not embedded yet"]
    want = expected_hashes(scratch, encoder)
    have = {(k, i): h for k, i, h in live.execute(SELECT_DOC_HASHES).fetchall()}
    wrong = [key for key in want.keys() & have.keys() if want[key] != have[key]]
    missing, extra = len(want.keys() - have.keys()), len(have.keys() - want.keys())
    if not (wrong or missing or extra):
        return []
    return [f"rm_matching_docs: {missing} missing, {extra} extra, {len(wrong)} with another text than a replay"]


def skills_of(raw: str) -> list[str]:
    value: Any = orjson.loads(raw)
    return [str(s) for s in value] if isinstance(value, list) else []
