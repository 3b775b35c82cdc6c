"""The demo seed (scaled down) on a real primary file: replaying the log equals the inline projections."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core import store
from core.db import Connection, connect
from migrations.runner import migrate
from node.runtime import prepare_primary
from ops.cli import app as cli_app
from ops.seed import Demo, seed
from queries.projection import checkpoint
from queries.rebuild import differences, rebuild
from queries.registry import projection as make_projection

USERS, PROJECTS, PROPOSALS = 60, 200, 800
FEE_BPS = 500
# A real argon2 hash is not needed to seed: the demo never logs in here.
PASSWORD_HASH = "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"


def open_db(data_dir: Path) -> Connection:
    return connect(str(data_dir / "megilance.db"), synchronous="NORMAL")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Demo]]:
    data_dir = tmp_path_factory.mktemp("seeded")
    conn = open_db(data_dir)
    try:
        prepare_primary(conn, make_projection())
        demo = seed(
            conn,
            make_projection(),
            PASSWORD_HASH,
            users_n=USERS,
            projects_n=PROJECTS,
            proposals_n=PROPOSALS,
            batch=250,
            fee_bps=FEE_BPS,
        )
    finally:
        conn.close()
    yield data_dir, demo


def cli(data_dir: Path, *args: str) -> tuple[int, str]:
    env: dict[str, str | None] = {
        "DATA_DIR": str(data_dir),
        "SECRET_KEY": "s" * 48,
        "ENVIRONMENT": "test",
        "DATABASE_URL": None,
        "REGION": None,
        "FLY_REGION": None,
        "PRIMARY_REGION": None,
        "DB_SYNCHRONOUS": "NORMAL",
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_KIB": "1024",
        "PLATFORM_FEE_BPS": str(FEE_BPS),
    }
    result = CliRunner().invoke(cli_app, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def scratch_differences(live: Connection, scratch_path: Path) -> list[str]:
    """Replay the live log into a fresh read store and compare the two."""
    scratch = connect(str(scratch_path), synchronous="NORMAL")
    try:
        migrate(scratch, ("read",))
        proj = make_projection()
        rebuild(scratch, proj, store.iter_all(live))
        return differences(live, scratch, proj)
    finally:
        scratch.close()


def count(conn: Connection, sql: str, *params: object) -> int:
    return int(conn.execute(sql, params).fetchone()[0])


def test_the_seed_writes_every_kind_of_fact(seeded: tuple[Path, Demo]) -> None:
    data_dir, demo = seeded
    conn = open_db(data_dir)
    try:
        assert (len(demo.clients), len(demo.freelancers)) == (20, 40)
        assert count(conn, "SELECT COUNT(*) FROM rm_users") == USERS
        assert count(conn, "SELECT COUNT(*) FROM rm_projects") == PROJECTS == len(demo.projects)
        assert count(conn, "SELECT COUNT(*) FROM rm_proposals") == PROPOSALS == demo.proposal_count
        hires = len(demo.hired)
        assert hires == PROJECTS // 5
        assert count(conn, "SELECT COUNT(*) FROM rm_proposals WHERE status = 'accepted'") == hires
        assert count(conn, "SELECT COUNT(*) FROM rm_contracts") == len(demo.contracts) == round(hires * 0.75)
        assert count(conn, "SELECT COUNT(*) FROM rm_portfolio_items") == len(demo.portfolio_items)
        assert len(demo.freelancers) <= len(demo.portfolio_items) <= 3 * len(demo.freelancers)
        # At most one accepted proposal per project, and every hire moved its project on.
        assert (
            count(
                conn,
                "SELECT COUNT(*) FROM (SELECT project_id FROM rm_proposals WHERE status = 'accepted' "
                "GROUP BY project_id HAVING COUNT(*) > 1)",
            )
            == 0
        )
        for project_id in demo.hired:
            status = conn.execute("SELECT status FROM rm_projects WHERE id = ?", (project_id,)).fetchone()[0]
            assert status in ("in_progress", "completed")
        # Contracts: USDC minor units, the configured fee, milestones adding up, the hired freelancer.
        rows = conn.execute(
            "SELECT project_id, freelancer_id, amount_minor, currency, platform_fee_minor, milestones, status "
            "FROM rm_contracts"
        ).fetchall()
        statuses = set()
        for project_id, freelancer_id, amount, currency, fee, milestones, status in rows:
            assert currency == "USDC"
            assert freelancer_id == demo.hired[project_id][1]
            assert amount % 10**4 == 0 and amount > 0  # whole cents, expressed in USDC's 6 decimals
            assert fee == amount * FEE_BPS // 10000
            assert milestones.count("amount_minor") == 2
            statuses.add(status)
        assert "active" in statuses and "completed" in statuses
        # The board's proposal counts agree with the log.
        mismatched = conn.execute(
            "SELECT p.id FROM rm_projects p WHERE p.proposals_count != "
            "(SELECT COUNT(*) FROM events e WHERE e.type = 'ProposalSubmitted' "
            "AND json_extract(e.data, '$.project_id') = p.id)"
        ).fetchall()
        assert mismatched == []
    finally:
        conn.close()


def test_rebuild_from_the_log_equals_the_inline_projections(seeded: tuple[Path, Demo], tmp_path: Path) -> None:
    data_dir, _ = seeded
    live = open_db(data_dir)
    try:
        head = store.head(live)
        assert checkpoint(live) == head > USERS + PROJECTS + PROPOSALS
        assert scratch_differences(live, tmp_path / "scratch.db") == []
    finally:
        live.close()


def test_megilance_verify_and_rebuild_on_the_seeded_store(seeded: tuple[Path, Demo], tmp_path: Path) -> None:
    data_dir, _ = seeded
    code, output = cli(data_dir, "verify")
    assert code == 0, output
    assert "verified" in output

    code, output = cli(data_dir, "rebuild")
    assert code == 0, output
    assert "rebuilt at position" in output

    live = open_db(data_dir)
    try:
        assert scratch_differences(live, tmp_path / "scratch-after-rebuild.db") == []
    finally:
        live.close()
    code, output = cli(data_dir, "verify")
    assert code == 0, output


def test_seed_demo_command_reports_every_count(tmp_path: Path) -> None:
    code, output = cli(tmp_path, "seed-demo", "--users", "30", "--projects", "50", "--proposals", "150")
    assert code == 0, output
    assert "seeded 10 clients, 20 freelancers, 50 projects, 150 proposals (10 accepted)" in output
    assert "contracts" in output and "portfolio items" in output

    code, output = cli(tmp_path, "verify")
    assert code == 0, output
