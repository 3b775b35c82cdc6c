"""Ranking over the matching documents: dense + BM25 + skill overlap, fused, filtered and re-ranked.

Weighted reciprocal rank fusion (docs/matching.md): each signal ranks the candidates and a candidate
earns weight / (K + rank) from each signal that ranks it. Dense similarity weighs 1, FTS5 BM25 0.5 and
skill overlap 0.5; K = 60. The vectors are searched in memory by brute force over one float32 matrix per
kind, built once per generation of the documents (the asynchronous step bumps it when documents change).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from core.db import Connection, positions
from queries.matching import FTS, SELECT_STATE, VOCAB, skills_of

SELECT_STATE_AT = positions(SELECT_STATE)

K = 60
W_DENSE, W_BM25, W_SKILLS = 1.0, 0.5, 0.5
MAX_SCORE = (W_DENSE + W_BM25 + W_SKILLS) / (K + 1)
BM25_DEPTH = 200  # BM25 ranks the best this many; beyond that its reciprocal rank adds next to nothing
MAX_QUERY_TERMS = 32
BM25_TERMS = 12  # the rarest words of a subject that BM25 is asked about
MAX_DOC_SHARE = 0.05  # a word in more documents than this share is left to the dense signal ...
BM25_SMALL_CORPUS = 200  # ... unless the corpus is this small (then every word is cheap)
MAX_DOC_FREQ_WORDS = 100_000  # word counts kept across generations; beyond, counted afresh
# A candidate with no shared word and no shared skill is kept only this close in meaning (cosine): below it,
# "similar" would not be an honest reason. Measured on tests/data/matching_eval.json (docs/matching.md).
MIN_SIMILARITY = 0.25
WORD = re.compile(r"\w+", re.UNICODE)
STOPWORDS = frozenset(
    (
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "i",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "our",
        "that",
        "the",
        "this",
        "to",
        "we",
        "with",
        "you",
        "your",
        "will",
        "can",
        "my",
        "me",
        "need",
        "looking",
        "who",
        "skills",
        "category",
        "completed",
    )
)

Floats = npt.NDArray[np.float32]


def fold(text: str) -> str:
    """Unicode case folding after NFKC, so full-width, upper and lower case spellings of a skill are one skill."""
    return unicodedata.normalize("NFKC", text).casefold().strip()


@dataclass
class Index:
    """One kind's documents in memory: ids, the vector matrix, and the facts filters and the re-rank use."""

    generation: int
    ids: list[str]
    rowids: dict[int, int]
    matrix: Floats
    active: npt.NDArray[np.bool_]
    rate: npt.NDArray[np.float64]
    hourly_budget: npt.NDArray[np.float64]
    completed: npt.NDArray[np.int64]
    completeness: npt.NDArray[np.float64]
    skills: list[list[str]]
    by_skill: dict[str, list[int]] = field(default_factory=dict)
    by_id: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # positions, id order
    boost: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))  # `rerank`, computed once
    doc_freq: dict[str, int] = field(default_factory=dict)  # documents holding a word (selective)


SELECT_INDEX = (
    "SELECT rowid, id, vector, skills, active, rate_minor, budget_type, budget_max_minor, completed, completeness "
    "FROM rm_matching_docs WHERE kind = ? ORDER BY rowid"
)


def build_index(conn: Connection, kind: str, generation: int) -> Index:
    index = read_index(conn, kind, generation)
    index.boost = rerank(index)
    return index


def read_index(conn: Connection, kind: str, generation: int) -> Index:
    rows = conn.execute(SELECT_INDEX, (kind,)).fetchall()
    n = len(rows)
    # One tuple per SELECT_INDEX column, in its order.
    rowids, ids, vectors, skill_lists, active, rates, budget_types, budget_maxes, completed, completeness = (
        zip(*rows, strict=True) if n else ((),) * 10
    )
    matrix = np.frombuffer(b"".join(bytes(v) for v in vectors), dtype=np.float32).reshape(n, -1) if n else None
    nan = float("nan")
    skills = [skills_of(s) for s in skill_lists]
    by_skill: dict[str, list[int]] = {}
    for i, names in enumerate(skills):
        for name in {fold(s) for s in names}:
            by_skill.setdefault(name, []).append(i)
    return Index(
        generation=generation,
        ids=list(ids),
        rowids={int(rowid): i for i, rowid in enumerate(rowids)},
        matrix=matrix if matrix is not None else np.zeros((0, 512), dtype=np.float32),
        active=np.array([bool(a) for a in active], dtype=bool),
        rate=np.array([r if r is not None else nan for r in rates], dtype=np.float64),
        hourly_budget=np.array(
            [m if t == "hourly" else nan for t, m in zip(budget_types, budget_maxes, strict=True)], dtype=np.float64
        ),
        completed=np.array(completed, dtype=np.int64),
        completeness=np.array(completeness, dtype=np.float64),
        skills=skills,
        by_skill=by_skill,
        by_id=np.argsort(np.array(ids, dtype=str)) if n else np.zeros(0, np.int64),
    )


class IndexCache:
    """The latest index of each kind; replaced when the documents' generation moves (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._indexes: dict[str, Index] = {}

    def get(self, conn: Connection, kind: str) -> Index:
        row = conn.execute(SELECT_STATE).fetchone()
        generation = int(row[SELECT_STATE_AT["generation"]]) if row else 0
        with self._lock:
            index = self._indexes.get(kind)
            if index is None or index.generation != generation:
                previous = index
                index = build_index(conn, kind, generation)
                if previous is not None and len(previous.doc_freq) < MAX_DOC_FREQ_WORDS:
                    index.doc_freq = previous.doc_freq  # word counts move slowly: kept, not read again
                self._indexes[kind] = index
            return index


def query_terms(text: str) -> list[str]:
    """The distinct meaningful words of a text, in order (at most MAX_QUERY_TERMS)."""
    seen: dict[str, None] = {}
    for word in WORD.findall(fold(text)):
        if word not in STOPWORDS and len(word) > 1 and not word.isdigit():
            seen.setdefault(word, None)
    return list(seen)[:MAX_QUERY_TERMS]


def selective(conn: Connection, kind: str, terms: Sequence[str], index: Index) -> list[str]:
    """The BM25_TERMS rarest of `terms` held by at most MAX_DOC_SHARE of the documents (or BM25_SMALL_CORPUS).

    A word most documents hold adds little to BM25 (its IDF nears zero) but makes FTS5 score every one of
    them: with such words, a query over 10,000 profiles took ~250 ms instead of a few.
    """
    if not terms:
        return []
    # fts5vocab counts a word's documents by reading its whole posting list (~1 ms for a common word at 10k):
    # counts are kept per index, approximate across generations, which is all choosing rare words needs.
    sql = f"SELECT doc FROM {VOCAB[kind]} WHERE term = ?"  # `term = ?` is indexed, `term IN (...)` scans
    counts = index.doc_freq
    for term in terms:
        if term not in counts:
            row = conn.execute(sql, (term,)).fetchone()
            counts[term] = int(row[0]) if row else 0
    limit = max(BM25_SMALL_CORPUS, MAX_DOC_SHARE * len(index.ids))
    found = sorted((counts[t], t) for t in terms if 0 < counts[t] <= limit)
    return [term for _, term in found[:BM25_TERMS]]


def bm25_ranking(conn: Connection, kind: str, terms: Sequence[str], index: Index) -> list[int]:
    """Index positions of the best BM25 matches for any of `terms`, best first."""
    terms = selective(conn, kind, terms, index)
    if not terms:
        return []
    expression = " OR ".join(f'"{t}"' for t in terms)
    sql = f"SELECT rowid FROM {FTS[kind]} WHERE {FTS[kind]} MATCH ? ORDER BY rank LIMIT ?"
    rows = conn.execute(sql, (expression, BM25_DEPTH)).fetchall()
    return [index.rowids[r[0]] for r in rows if r[0] in index.rowids]


def reciprocal(ranks: npt.NDArray[np.float64], weight: float) -> npt.NDArray[np.float64]:
    return np.where(np.isfinite(ranks), weight / (K + ranks), 0.0)


@dataclass(frozen=True, slots=True)
class Signals:
    """Each candidate's dense similarity, BM25 rank and skill overlap (NaN / 0 where a signal misses it)."""

    similarity: Floats
    bm25_rank: npt.NDArray[np.float64]
    overlap: npt.NDArray[np.int64]


def signals(conn: Connection, kind: str, index: Index, vector: Floats, text: str, skills: Sequence[str]) -> Signals:
    n = len(index.ids)
    similarity = index.matrix @ vector if n else np.zeros(0, dtype=np.float32)
    bm25_rank = np.full(n, np.inf)
    for rank, pos in enumerate(bm25_ranking(conn, kind, query_terms(text), index), start=1):
        bm25_rank[pos] = rank
    overlap = np.zeros(n, dtype=np.int64)
    for name in {fold(s) for s in skills}:
        for pos in index.by_skill.get(name, ()):
            overlap[pos] += 1
    return Signals(similarity, bm25_rank, overlap)


def competition_ranks(values: npt.NDArray[np.float64], keep: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    """1 for the highest value, equal values share a rank; inf where `keep` is False."""
    ranks = np.full(len(values), np.inf)
    if keep.any():
        ordered = np.sort(values[keep])[::-1]
        ranks[keep] = 1 + np.searchsorted(-ordered, -values[keep], side="left")
    return ranks


def dense_ranks(similarity: Floats) -> npt.NDArray[np.float64]:
    """1 for the most similar; one argsort (a tie between two float32 cosines is broken by position)."""
    ranks = np.empty(len(similarity))
    ranks[np.argsort(-similarity)] = np.arange(1, len(similarity) + 1)
    return ranks


def fuse(s: Signals, *, dense: bool = True, bm25: bool = True, skills: bool = True) -> npt.NDArray[np.float64]:
    """Weighted reciprocal rank fusion of the signals, scaled to 0-1 (1: first by every signal)."""
    n = len(s.similarity)
    total = np.zeros(n)
    if dense:
        total += W_DENSE / (K + dense_ranks(s.similarity))
    if bm25:
        total += reciprocal(s.bm25_rank, W_BM25)
    if skills:
        total += reciprocal(competition_ranks(s.overlap.astype(np.float64), s.overlap > 0), W_SKILLS)
    return total / MAX_SCORE


def relevant(s: Signals) -> npt.NDArray[np.bool_]:
    """Candidates with a reason to be listed: a shared word, a shared skill, or close enough in meaning."""
    return np.isfinite(s.bm25_rank) | (s.overlap > 0) | (s.similarity >= MIN_SIMILARITY)


def rerank(index: Index) -> npt.NDArray[np.float64]:
    """Up to 5% for completed contracts (full at 5) and up to 5% for a complete profile; at most 1."""
    return 0.9 + 0.05 * np.minimum(index.completed, 5) / 5 + 0.05 * index.completeness


def order(scores: npt.NDArray[np.float64], keep: npt.NDArray[np.bool_], by_id: npt.NDArray[np.int64]) -> list[int]:
    """Positions of kept candidates, best score first, ties by id (a stable sort of candidates in id order)."""
    candidates = by_id[keep[by_id]]
    return candidates[np.argsort(-scores[candidates], kind="stable")].tolist()  # type: ignore[no-any-return]
