"""`python -m bench.rows [--baseline DIR]`: the in-process cost of the read side's row shaping.

A 20-row board page, a 20-row search page, a project's detail and a 20-row contract list, each read
from an in-memory read store of 1,000 projects and 200 contracts, best of several timed loops. With
`--baseline DIR` (another checkout of this repository, e.g. `git worktree add /tmp/base main`), the same
loops run in a child process on that tree's `queries/` and the table prints each ratio (this tree / base).
Results go to bench/results/<date>-rows.json.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import timeit
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.run import host_info, save_results

PROJECTS, CONTRACTS, PAGE = 1000, 200, 20
LOOPS, REPEATS, ROUNDS = 1000, 5, 4
AT = "2026-11-23T10:00:00Z"
WORDS = ("python", "design", "data", "mobile", "search", "api", "react", "audit", "cloud", "shop")


def fill(conn: sqlite3.Connection) -> None:
    """Projects and contracts written with the read models' own INSERTs, so both trees hold the same rows."""
    from queries import contracts, projects, users
    from queries.projection import Projection

    Projection([users, projects, contracts]).create_tables(conn)
    for i in range(PROJECTS):
        word = WORDS[i % len(WORDS)]
        skills = json.dumps([word, WORDS[(i + 3) % len(WORDS)]])
        conn.execute(
            projects.INSERT,
            (
                f"p{i:05d}",
                "c1",
                "c1",
                f"A {word} project {i}",
                f"Build the {word} part, number {i}. " * 4,
                "web",
                "fixed",
                10_000,
                50_000,
                "intermediate",
                "1-3 months",
                skills,
                AT,
                AT,
                1,
            ),
        )
        conn.execute(projects.INSERT_FTS, (f"p{i:05d}",))
    milestones = json.dumps([{"title": "Design", "amount_minor": 400_000_000, "due_date": "2026-12-10"}])
    for i in range(CONTRACTS):
        conn.execute(
            contracts.INSERT,
            (
                f"k{i:05d}",
                f"p{i:05d}",
                "c1",
                "c1",
                "f1",
                "f1",
                1_000_000_000,
                "USDC",
                50_000_000,
                "Work",
                None,
                None,
                milestones,
                "Net 30",
                AT,
                AT,
                1,
            ),
        )


def measure() -> dict[str, float]:
    """Microseconds per call, best of REPEATS loops of LOOPS calls."""
    from queries.contracts import list_contracts
    from queries.projects import get_project, list_projects

    conn = sqlite3.connect(":memory:")
    fill(conn)
    cases: dict[str, Callable[[], Any]] = {
        "board page (20 rows)": lambda: list_projects(conn, limit=PAGE),
        "search page (20 rows)": lambda: list_projects(conn, limit=PAGE, q="python"),
        "project detail": lambda: get_project(conn, "p00500"),
        "contract list (20 rows)": lambda: list_contracts(conn, viewer_id="c1", viewer_role="client", limit=PAGE),
    }
    out = {}
    for name, case in cases.items():
        case()
        number = LOOPS // 4 if "search" in name else LOOPS
        # CPU time of this process: other processes on a shared machine do not count against a case.
        best = min(timeit.repeat(case, timer=time.process_time, number=number, repeat=REPEATS))
        out[name] = best / number * 1e6
    return out


def main() -> None:
    if "--child" in sys.argv:
        print(json.dumps(measure()))
        return
    here = Path(__file__).resolve().parent.parent
    base = sys.argv[sys.argv.index("--baseline") + 1] if "--baseline" in sys.argv else None
    # Alternate the trees and keep each case's best: the machine is shared, and a slow moment should not
    # land on one tree only.
    mine: dict[str, float] = {}
    theirs: dict[str, float] | None = {} if base else None
    for _ in range(ROUNDS):
        best(mine, run_in(here))
        if base and theirs is not None:
            best(theirs, run_in(Path(base)))
    print("| case | this tree (µs) | baseline (µs) | ratio |\n|---|---|---|---|")
    rows = []
    for name, us in mine.items():
        was = theirs[name] if theirs else None
        ratio = us / was if was else None
        rows.append(
            {"case": name, "us": round(us, 2), "baseline_us": was and round(was, 2), "ratio": ratio and round(ratio, 3)}
        )
        print(f"| {name} | {us:.1f} | {was and f'{was:.1f}'} | {ratio and f'{ratio:.3f}'} |")
    started = datetime.now(UTC)
    record = {
        "machine": host_info(),
        "baseline": base and revision(Path(base)),
        "command": "python -m bench.rows --baseline DIR",
        "rows": rows,
    }
    save_results("rows", started, record)


def revision(root: Path) -> str:
    """The baseline tree's commit (its path is a scratch directory of no use to a reader)."""
    command = ["git", "-C", str(root), "rev-parse", "--short", "HEAD"]
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    return done.stdout.strip() or str(root)


def best(into: dict[str, float], found: dict[str, float]) -> None:
    for name, us in found.items():
        into[name] = min(us, into.get(name, us))


def run_in(root: Path) -> dict[str, float]:
    """The loops in a fresh interpreter importing `queries` from `root` (this file runs there as a script)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    script = Path(__file__).resolve()
    done = subprocess.run(
        [sys.executable, str(script), "--child"], env=env, cwd=root, check=True, capture_output=True, text=True
    )
    return dict(json.loads(done.stdout))


if __name__ == "__main__":
    main()
