"""The asynchronous matching projector on a seeded primary: catch-up, the text-hash cache, rebuild and verify."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import orjson

from core import store
from core.db import Connection, connect
from core.encoder import HashingEncoder, Vectors
from migrations.runner import migrate
from node.runtime import prepare_primary
from ops.seed import seed
from queries import matching
from queries.projection import checkpoint
from queries.rebuild import rebuild
from queries.registry import projection as make_projection

PASSWORD_HASH = "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"


class CountingEncoder(HashingEncoder):
    """The deterministic fallback, counting the texts it is asked to encode."""

    def __init__(self) -> None:
        self.texts = 0

    def encode(self, texts: Sequence[str]) -> Vectors:
        self.texts += len(texts)
        return super().encode(texts)


def seeded(tmp_path: Path) -> Connection:
    conn = connect(str(tmp_path / "megilance.db"), synchronous="NORMAL")
    prepare_primary(conn, make_projection())
    seed(conn, make_projection(), PASSWORD_HASH, users_n=30, projects_n=40, proposals_n=80, batch=50, fee_bps=500)
    return conn


def count(conn: Connection, sql: str) -> int:
    return int(conn.execute(sql).fetchone()[0])


def replay_differences(live: Connection, tmp_path: Path) -> list[str]:
    scratch = connect(str(tmp_path / "scratch.db"), synchronous="NORMAL")
    try:
        migrate(scratch, ("read",))
        rebuild(scratch, make_projection(), store.iter_all(live, meta=False))
        return matching.differences(live, scratch)
    finally:
        scratch.close()


def test_catch_up_embeds_every_freelancer_and_project_once(tmp_path: Path) -> None:
    conn = seeded(tmp_path)
    encoder = CountingEncoder()

    state = matching.catch_up(conn, encoder)

    freelancers = count(conn, "SELECT COUNT(*) FROM rm_users WHERE role = 'freelancer'")
    projects = count(conn, "SELECT COUNT(*) FROM rm_projects")
    assert count(conn, "SELECT COUNT(*) FROM rm_matching_docs WHERE kind = 'freelancer'") == freelancers
    assert count(conn, "SELECT COUNT(*) FROM rm_matching_docs WHERE kind = 'project'") == projects
    assert count(conn, "SELECT COUNT(*) FROM rm_matching_fts_project") == projects
    distinct = count(conn, "SELECT COUNT(DISTINCT text_hash) FROM rm_matching_docs")
    assert encoder.texts == distinct  # one encoding per distinct text
    assert state.position == checkpoint(conn) and state.generation > 0
    conn.close()


def test_a_rebuild_replays_without_encoding_unchanged_text_and_verify_agrees(tmp_path: Path) -> None:
    conn = seeded(tmp_path)
    first = matching.catch_up(conn, CountingEncoder())
    before = conn.execute("SELECT kind, id, text_hash, vector FROM rm_matching_docs ORDER BY kind, id").fetchall()

    rebuild(conn, make_projection(), store.iter_all(conn, meta=False))
    conn.execute("UPDATE rm_matching_state SET doc_version = 0")  # documents written by older code: start over
    again = CountingEncoder()
    replayed = matching.catch_up(conn, again)

    after = conn.execute("SELECT kind, id, text_hash, vector FROM rm_matching_docs ORDER BY kind, id").fetchall()
    assert again.texts == 0
    assert after == before
    assert replayed.generation == first.generation  # nothing changed: the in-memory matrices stay valid
    assert replay_differences(conn, tmp_path) == []
    conn.close()


def test_verify_notices_a_document_whose_text_is_not_the_replays(tmp_path: Path) -> None:
    conn = seeded(tmp_path)
    matching.catch_up(conn, CountingEncoder())
    conn.execute("UPDATE rm_matching_docs SET text_hash = 'x' WHERE rowid = (SELECT MIN(rowid) FROM rm_matching_docs)")

    found = replay_differences(conn, tmp_path)

    assert found == ["rm_matching_docs: 0 missing, 0 extra, 1 with another text than a replay"]
    conn.close()


def test_an_edit_reaches_only_its_own_document(tmp_path: Path) -> None:
    """A profile edit marks one document; the next step re-encodes that text alone and bumps the generation."""
    conn = seeded(tmp_path)
    first = matching.catch_up(conn, CountingEncoder())
    user_id = conn.execute("SELECT id FROM rm_users WHERE role = 'freelancer' ORDER BY id LIMIT 1").fetchone()[0]
    position = checkpoint(conn) + 1
    conn.execute(
        "INSERT INTO events (position, stream_id, stream_type, version, type, schema_version, data, meta, recorded_at) "
        "VALUES (?, ?, 'user', 999, 'UserProfileUpdated', 1, ?, '{}', '2026-12-07T10:00:00.000000Z')",
        (position, user_id, orjson.dumps({"user_id": user_id, "changes": {"bio": "Rust firmware for sensors"}})),
    )
    make_projection().apply_events(conn, store.read_after(conn, position - 1, 10))
    encoder = CountingEncoder()

    state = matching.catch_up(conn, encoder)

    text = conn.execute("SELECT text FROM rm_matching_docs WHERE kind = 'freelancer' AND id = ?", (user_id,))
    assert text.fetchone()[0].startswith("Rust firmware for sensors")
    assert encoder.texts == 1
    assert state.generation > first.generation and state.position == position
    conn.close()
