"""Rebuild-by-replay equals the inline projection; `megilance verify` and `rebuild` on real files."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from commands.users import ChangeAccount, RegisterUser, Role, UpdateProfile
from core import store
from core.clock import FakeClock
from core.db import Connection, connect
from core.errors import DomainError
from migrations.runner import migrate
from node.runtime import prepare_primary, run_command_sync
from ops.cli import app as cli_app
from queries import rebuild as rebuild_module
from queries.projection import Projection, checkpoint
from queries.rebuild import differences, rebuild
from queries.registry import projection as make_projection

ROLES: tuple[Role, ...] = ("client", "freelancer", "admin")
META = {"actor": "test", "region": "local"}

texts = st.text(max_size=40)
emails = st.builds(
    "{}@{}.test".format,
    st.sampled_from(["ada", "Ada", "bob", "cy", "dee", "eve"]),
    st.sampled_from(["example", "mail"]),
)
money = st.one_of(st.none(), st.integers(1, 10**6).map(lambda cents: f"{cents // 100}.{cents % 100:02d}"))
profile_changes = st.fixed_dictionaries(
    {},
    optional={
        "name": texts.filter(str.strip),
        "bio": st.one_of(st.none(), texts),
        "skills": st.lists(st.sampled_from(["Python", "python", "Rust", "SQL", "Go", "design"]), max_size=4),
        "hourly_rate": money,
        "location": st.one_of(st.none(), texts),
        "profile_image_url": st.one_of(st.none(), st.just("https://img.example/a.png")),
    },
)


@dataclass(frozen=True)
class Register:
    email: str
    name: str
    role: Role


@dataclass(frozen=True)
class Update:
    who: int
    changes: dict[str, Any]


@dataclass(frozen=True)
class Change:
    who: int
    admin: int
    role: Role | None
    is_active: bool | None


Step = Register | Update | Change

steps = st.lists(
    st.one_of(
        st.builds(Register, emails, texts.filter(str.strip), st.sampled_from(ROLES)),
        st.builds(Update, st.integers(0, 20), profile_changes),
        st.builds(
            Change,
            st.integers(0, 20),
            st.integers(0, 20),
            st.one_of(st.none(), st.sampled_from(ROLES)),
            st.one_of(st.none(), st.booleans()),
        ),
    ),
    min_size=1,
    max_size=30,
)


def command_for(step: Step, users: list[str]) -> Any:
    if isinstance(step, Register):
        user_id = f"u{len(users):04d}"
        return RegisterUser(
            user_id=user_id,
            email=step.email,
            name=step.name,
            role=step.role,
            password_hash="not-a-real-hash",
        )
    if not users:
        return None
    if isinstance(step, Update):
        return UpdateProfile(user_id=users[step.who % len(users)], changes=step.changes)
    return ChangeAccount(
        user_id=users[step.who % len(users)],
        admin_id=users[step.admin % len(users)],
        role=step.role,
        is_active=step.is_active,
    )


def run_steps(conn: Connection, projection: Projection, plan: list[Step], clock: FakeClock) -> int:
    """Run the plan; refused commands change nothing. Returns how many commands were accepted."""
    users: list[str] = []
    accepted = 0
    for step in plan:
        command = command_for(step, users)
        if command is None:
            continue
        clock.advance(milliseconds=1500)
        try:
            run_command_sync(conn, projection, command, META, clock)
        except DomainError:
            continue
        accepted += 1
        if isinstance(command, RegisterUser):
            users.append(command.user_id)
    return accepted


def replay_differences(live: Connection, projection: Projection, scratch_dir: Path) -> list[str]:
    scratch = connect(str(scratch_dir / "scratch.db"), synchronous="NORMAL")
    try:
        migrate(scratch, ("read",))
        rebuild(scratch, projection, store.iter_all(live))
        return differences(live, scratch, projection)
    finally:
        scratch.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=steps)
def test_replaying_the_log_reproduces_the_inline_projection(plan: list[Step]) -> None:
    projection = make_projection()
    with tempfile.TemporaryDirectory() as tmp:
        live = connect(str(Path(tmp) / "primary.db"), synchronous="NORMAL")
        try:
            prepare_primary(live, projection)
            accepted = run_steps(live, projection, plan, FakeClock())

            assert checkpoint(live) == store.head(live)
            users = live.execute("SELECT COUNT(*) FROM rm_users").fetchone()[0]
            registered = live.execute("SELECT COUNT(*) FROM events WHERE type = 'UserRegistered'").fetchone()[0]
            assert users == registered
            assert accepted == 0 or store.head(live) > 0
            assert replay_differences(live, projection, Path(tmp)) == []
        finally:
            live.close()


def test_differences_sees_a_tampered_row(tmp_path: Path) -> None:
    projection = make_projection()
    live = connect(str(tmp_path / "primary.db"), synchronous="NORMAL")
    try:
        prepare_primary(live, projection)
        run_steps(live, projection, [Register("ada@example.test", "Ada", "client")], FakeClock())
        live.execute("UPDATE rm_users SET name = 'Mallory'")

        found = replay_differences(live, projection, tmp_path)
    finally:
        live.close()

    assert len(found) == 1 and found[0].startswith("rm_users:")


# -- the operator's CLI -------------------------------------------------------------------------

SEED_PLAN: list[Step] = [
    Register("ada@example.test", "Ada", "admin"),
    Register("bob@example.test", "Bob", "freelancer"),
    Register("cy@example.test", "Cy", "client"),
    Update(1, {"bio": "Builds APIs", "skills": ["Python", "SQL"], "hourly_rate": "45.00"}),
    Change(2, 0, "freelancer", None),
    Change(1, 0, None, False),
]


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    conn = connect(str(tmp_path / "megilance.db"), synchronous="NORMAL")
    try:
        prepare_primary(conn, make_projection())
        assert run_steps(conn, make_projection(), SEED_PLAN, FakeClock()) == len(SEED_PLAN)
    finally:
        conn.close()
    yield tmp_path


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
    }
    result = CliRunner().invoke(cli_app, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def tamper(data_dir: Path, sql: str) -> None:
    conn = connect(str(data_dir / "megilance.db"), synchronous="NORMAL")
    try:
        conn.execute(sql)
    finally:
        conn.close()


def user_rows(data_dir: Path) -> list[tuple[Any, ...]]:
    conn = connect(str(data_dir / "megilance.db"), synchronous="NORMAL")
    try:
        return [tuple(row) for row in conn.execute("SELECT * FROM rm_users ORDER BY id").fetchall()]
    finally:
        conn.close()


def test_verify_passes_on_a_consistent_store(data_dir: Path) -> None:
    code, output = cli(data_dir, "verify")

    assert code == 0, output
    assert "verified" in output


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE rm_users SET name = 'Mallory' WHERE id = 'u0001'",
        "UPDATE rm_users SET is_active = 1 WHERE id = 'u0001'",
        "DELETE FROM rm_users WHERE id = 'u0002'",
        "DELETE FROM rm_user_skills WHERE skill = 'sql'",
    ],
)
def test_verify_fails_after_tampering_and_rebuild_restores(data_dir: Path, sql: str) -> None:
    original = user_rows(data_dir)
    tamper(data_dir, sql)

    code, output = cli(data_dir, "verify")
    assert code == 1, output
    assert "DIFFERENT rm_" in output

    code, output = cli(data_dir, "rebuild")
    assert code == 0, output
    assert "rebuilt at position" in output

    assert user_rows(data_dir) == original
    code, output = cli(data_dir, "verify")
    assert code == 0, output


def test_rebuild_of_a_consistent_store_changes_nothing(data_dir: Path) -> None:
    original = user_rows(data_dir)

    code, output = cli(data_dir, "rebuild")

    assert code == 0, output
    assert user_rows(data_dir) == original
    assert cli(data_dir, "verify")[0] == 0


def test_rebuild_reports_progress_in_steps_that_add_up_to_the_log(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rebuild_module, "PROGRESS_EVERY", 3)
    conn = connect(str(data_dir / "megilance.db"), synchronous="NORMAL")
    try:
        events = store.head(conn)
        reported: list[int] = []
        rebuild(conn, make_projection(), store.iter_all(conn, meta=False), reported.append)
    finally:
        conn.close()

    assert events > 3 and sum(reported) == events
    assert reported[:-1] == [3] * (len(reported) - 1) and 1 <= reported[-1] <= 3
