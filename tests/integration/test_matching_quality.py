"""The ranking's quality on a labelled set (tests/data/matching_eval.json), with the real model.

Each project of the set names the freelancer(s) a careful client would hire. The hybrid ranking must
put one of them first for at least 70% of the projects and beat BM25 alone on P@1 and on MRR.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.db import Connection, connect
from core.encoder import UseEncoder
from queries.matching import SCHEMA, Doc, freelancer_text, project_text, write_doc
from queries.ranking import IndexCache, fuse, order, relevant, rerank, signals

EVAL = Path(__file__).parent.parent / "data" / "matching_eval.json"


def freelancer(item: dict[str, Any]) -> Doc:
    items = [(p["title"], p["description"]) for p in item["portfolio"]]
    text = freelancer_text(item["bio"], item["skills"], items, item["completed"])
    return Doc("freelancer", item["id"], text, item["skills"], True, completed=len(item["completed"]), completeness=0.5)


def project(item: dict[str, Any]) -> Doc:
    text = project_text(item["title"], item["description"], item["skills"], item["category"])
    return Doc("project", item["id"], text, item["skills"], True)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Connection, dict[str, Any], IndexCache]]:
    data = json.loads(EVAL.read_text())
    conn = connect(str(tmp_path_factory.mktemp("eval") / "read.db"), synchronous="NORMAL")
    for ddl in SCHEMA:
        conn.execute(ddl)
    encoder = UseEncoder()
    docs = [freelancer(f) for f in data["freelancers"]] + [project(p) for p in data["projects"]]
    vectors = encoder.encode([d.text for d in docs])
    by_hash = {d.text_hash(encoder.name): vectors[i].tobytes() for i, d in enumerate(docs)}
    for d in docs:
        write_doc(conn, d.kind, d.id, d, by_hash, encoder.name)
    yield conn, data, IndexCache()
    conn.close()


def rankings(conn: Connection, cache: IndexCache, item: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(hybrid ranking, BM25-alone ranking) of freelancer ids for one project of the set."""
    index = cache.get(conn, "freelancer")
    doc = project(item)
    row = conn.execute(
        "SELECT vector FROM rm_matching_docs WHERE kind = 'project' AND id = ?", (item["id"],)
    ).fetchone()
    s = signals(conn, "freelancer", index, np.frombuffer(row[0], dtype=np.float32), doc.text, doc.skills)
    hybrid = order(fuse(s) * rerank(index), relevant(s), index.by_id)
    bm25 = sorted(np.flatnonzero(np.isfinite(s.bm25_rank)).tolist(), key=lambda p: s.bm25_rank[p])
    return [index.ids[p] for p in hybrid], [index.ids[p] for p in bm25]


def measures(ranked: list[list[str]], relevant_ids: list[set[str]]) -> tuple[float, float]:
    """P@1 and MRR (a query whose relevant results are all missing counts 0)."""
    p1 = sum(1 for r, want in zip(ranked, relevant_ids, strict=True) if r[:1] and r[0] in want) / len(ranked)
    reciprocal = []
    for r, want in zip(ranked, relevant_ids, strict=True):
        ranks = [i for i, fid in enumerate(r, start=1) if fid in want]
        reciprocal.append(1 / ranks[0] if ranks else 0.0)
    return p1, sum(reciprocal) / len(reciprocal)


def test_the_set_is_large_enough_and_labelled() -> None:
    data = json.loads(EVAL.read_text())
    ids = {f["id"] for f in data["freelancers"]}
    assert len(data["freelancers"]) >= 40 and len(data["projects"]) >= 40
    assert all(p["relevant"] and set(p["relevant"]) <= ids for p in data["projects"])


def test_hybrid_beats_bm25_alone_and_puts_a_right_freelancer_first(
    store: tuple[Connection, dict[str, Any], IndexCache],
) -> None:
    conn, data, cache = store
    hybrid, bm25, want = [], [], []
    for item in data["projects"]:
        h, b = rankings(conn, cache, item)
        hybrid.append(h)
        bm25.append(b)
        want.append(set(item["relevant"]))
    hybrid_p1, hybrid_mrr = measures(hybrid, want)
    bm25_p1, bm25_mrr = measures(bm25, want)
    print(f"\nhybrid: P@1 {hybrid_p1:.3f} MRR {hybrid_mrr:.3f}; BM25 alone: P@1 {bm25_p1:.3f} MRR {bm25_mrr:.3f}")
    misses = [
        (item["id"], h[:3])
        for item, h, w in zip(data["projects"], hybrid, want, strict=True)
        if h[:1] != [] and h[0] not in w
    ]
    print("hybrid misses (project, top 3):", misses)

    assert hybrid_p1 > bm25_p1
    assert hybrid_mrr > bm25_mrr
    assert hybrid_p1 >= 0.7
