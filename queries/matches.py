"""Queries over the matching documents: freelancers for a project, projects for a freelancer, relevance search."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from core.db import Connection, positions
from core.errors import NotFound
from core.money import format_minor
from queries.matching import skills_of
from queries.pagination import decode_cursor, encode_cursor
from queries.projects import board_query, get_project
from queries.ranking import (
    MIN_SIMILARITY,
    WORD,
    Floats,
    Index,
    IndexCache,
    Signals,
    fold,
    fuse,
    order,
    query_terms,
    relevant,
    signals,
)
from queries.users import get_user

SELECT_DOC = "SELECT rowid, text, skills, vector, rate_minor FROM rm_matching_docs WHERE kind = ? AND id = ?"
SELECT_DOC_AT = positions(SELECT_DOC)
MAX_REASONS = 4
MAX_WORDS = 5


@dataclass(frozen=True, slots=True)
class Subject:
    """What is matched against: a project's or a freelancer's document."""

    text: str
    skills: list[str]
    vector: Floats
    rate_minor: int | None


def subject(conn: Connection, kind: str, entity_id: str) -> Subject | None:
    row = conn.execute(SELECT_DOC, (kind, entity_id)).fetchone()
    if row is None:
        return None
    _rowid, text, skills, vector, rate_minor = row
    return Subject(text, skills_of(skills), np.frombuffer(bytes(vector), dtype=np.float32), rate_minor)


def offset_of(cursor: str | None, name: str) -> int:
    if cursor is None:
        return 0
    (text,) = decode_cursor(cursor, name, 1)
    return int(text) if text.isdigit() else 0


def page_of(ranked: list[int], limit: int, cursor: str | None, name: str) -> tuple[list[int], str | None]:
    start = offset_of(cursor, name)
    chosen = ranked[start : start + limit]
    more = start + limit < len(ranked)
    return chosen, encode_cursor(name, str(start + limit)) if more else None


def matched_skills(wanted: Sequence[str], offered: Sequence[str]) -> list[str]:
    """The wanted skills the other side lists, in the wanted spelling (compared after case folding)."""
    have = {fold(s) for s in offered}
    seen: dict[str, None] = {}
    for skill in wanted:
        if fold(skill) in have:
            seen.setdefault(skill, None)
    return list(seen)


def reasons(s: Signals, pos: int, shared_words: list[str], skills: list[str], wanted: int, n: int) -> list[str]:
    """Why this candidate ranks here, from the signals that ranked it (nothing else is claimed)."""
    found = []
    similarity = float(s.similarity[pos])
    dense_rank = int((s.similarity > s.similarity[pos]).sum()) + 1
    if similarity >= MIN_SIMILARITY:
        found.append(f"Close in meaning (similarity {similarity:.2f}, #{dense_rank} of {n})")
    if skills:
        found.append(f"Has {len(skills)} of {wanted} requested skills: {', '.join(skills)}")
    if np.isfinite(s.bm25_rank[pos]) and shared_words:
        found.append("Shares key words: " + ", ".join(shared_words[:MAX_WORDS]))
    return found[:MAX_REASONS]


def shared_words(terms: list[str], text: str) -> list[str]:
    words = set(WORD.findall(fold(text)))
    return [t for t in terms if t in words]


@dataclass(frozen=True, slots=True)
class Ranked:
    """One ranked page: the positions in the index, their scores and the signals behind them."""

    index: Index
    positions: list[int]
    scores: npt.NDArray[np.float64]
    signals: Signals
    next_cursor: str | None


def rank(
    conn: Connection,
    index: Index,
    kind: str,
    subject_: Subject,
    *,
    keep: npt.NDArray[np.bool_] | None,
    boost: bool,
    limit: int,
    cursor: str | None,
    name: str,
) -> Ranked:
    s = signals(conn, kind, index, subject_.vector, subject_.text, subject_.skills)
    scores = fuse(s) * (index.boost if boost else 1.0)
    mask = relevant(s) if keep is None else relevant(s) & keep
    positions, next_cursor = page_of(order(scores, mask, index.by_id), limit, cursor, name)
    return Ranked(index, positions, scores, s, next_cursor)


def rate_fits(index: Index, rate_minor: int | None, budget_minor: float | None) -> npt.NDArray[np.bool_]:
    """Hourly rate within an hourly budget where both are known (unknown on either side: kept)."""
    if budget_minor is not None:  # freelancers for one hourly project
        return ~(index.rate > budget_minor)  # NaN compares False: an unknown rate is kept
    if rate_minor is not None:  # projects for one freelancer
        return ~(index.hourly_budget < rate_minor)
    return np.ones(len(index.ids), dtype=bool)


def list_project_matches(
    conn: Connection, cache: IndexCache, project_id: str, *, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Which active freelancers fit this project best?"""
    project, _ = get_project(conn, project_id)
    offset_of(cursor, "matches")  # a bad cursor is refused even before the project is embedded
    subject_ = subject(conn, "project", project_id)
    if subject_ is None:
        return [], None
    index = cache.get(conn, "freelancer")
    budget = to_minor(project["budget_max"]) if project["budget_type"] == "hourly" else None
    keep = index.active & rate_fits(index, None, budget)
    ranked = rank(
        conn, index, "freelancer", subject_, keep=keep, boost=True, limit=limit, cursor=cursor, name="matches"
    )
    items = []
    terms = query_terms(subject_.text)
    for pos in ranked.positions:
        user, _ = get_user(conn, ranked.index.ids[pos])
        skills = matched_skills(project["skills"], ranked.index.skills[pos])
        why = reasons(
            ranked.signals,
            pos,
            words_in(conn, ranked, pos, terms, "freelancer"),
            skills,
            len(project["skills"]),
            len(ranked.index.ids),
        )
        why += facts(ranked.index, pos, budget)
        items.append(
            {
                "freelancer": user,
                "score": round(float(min(1.0, ranked.scores[pos])), 4),
                "matched_skills": skills,
                "reasons": why[:MAX_REASONS],
            }
        )
    return items, ranked.next_cursor


def facts(index: Index, pos: int, budget: float | None) -> list[str]:
    """The re-rank's inputs and the budget filter, as they applied to this freelancer."""
    found = []
    done = int(index.completed[pos])
    if done:
        found.append(f"{done} completed contract{'s' if done != 1 else ''}")
    if budget is not None and np.isfinite(index.rate[pos]):
        found.append(f"Hourly rate {format_minor(int(index.rate[pos]), 'USD')} within the budget")
    return found


def list_project_recommendations(
    conn: Connection, cache: IndexCache, freelancer_id: str, *, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Which open projects fit this freelancer's profile best?"""
    offset_of(cursor, "recs")
    subject_ = subject(conn, "freelancer", freelancer_id)
    if subject_ is None:
        return [], None
    index = cache.get(conn, "project")
    keep = index.active & rate_fits(index, subject_.rate_minor, None)
    ranked = rank(conn, index, "project", subject_, keep=keep, boost=False, limit=limit, cursor=cursor, name="recs")
    items = []
    terms = query_terms(subject_.text)
    for pos in ranked.positions:
        project, _ = get_project(conn, ranked.index.ids[pos])
        skills = matched_skills(project["skills"], subject_.skills)
        why = reasons(
            ranked.signals,
            pos,
            words_in(conn, ranked, pos, terms, "project"),
            skills,
            len(project["skills"]),
            len(ranked.index.ids),
        )
        items.append(
            {
                "project": project,
                "score": round(float(min(1.0, ranked.scores[pos])), 4),
                "matched_skills": skills,
                "reasons": why,
            }
        )
    return items, ranked.next_cursor


def words_in(conn: Connection, ranked: Ranked, pos: int, terms: list[str], kind: str) -> list[str]:
    """The subject's words this candidate's text holds, read only when BM25 ranked it (the only use)."""
    if not np.isfinite(ranked.signals.bm25_rank[pos]):
        return []
    return shared_words(terms, doc_text(conn, kind, ranked.index.ids[pos]))


def doc_text(conn: Connection, kind: str, entity_id: str) -> str:
    row = conn.execute(SELECT_DOC, (kind, entity_id)).fetchone()
    return str(row[SELECT_DOC_AT["text"]]) if row else ""


def to_minor(amount: str) -> float:
    return float(round(float(amount) * 100))


def search_projects(
    conn: Connection,
    cache: IndexCache,
    q: str,
    vector: Floats,
    filters: dict[str, Any],
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Which projects match `q` in words or in meaning, best first (the board's filters apply)?"""
    index = cache.get(conn, "project")
    keep = None
    if any(v is not None for v in filters.values()):
        sql, params = board_query(limit=1 << 30, **filters)
        allowed = {row[0] for row in conn.execute(sql, params).fetchall()}
        keep = np.array([i in allowed for i in index.ids], dtype=bool)
    words = [w for w in q.split() if w.strip()]
    ranked = rank(
        conn,
        index,
        "project",
        Subject(q, words, vector, None),
        keep=keep,
        boost=False,
        limit=limit,
        cursor=cursor,
        name="relevance",
    )
    return [get_project(conn, ranked.index.ids[pos])[0] for pos in ranked.positions], ranked.next_cursor


def require_project(conn: Connection, project_id: str) -> dict[str, Any]:
    try:
        return get_project(conn, project_id)[0]
    except NotFound:
        raise NotFound("No project with that id") from None
