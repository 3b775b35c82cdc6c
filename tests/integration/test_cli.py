"""`megilance` on an operator's mistakes: one line on stderr, a non-zero exit, no traceback, nothing changed."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from core import store
from core.db import connect
from core.hrana import HranaClient
from migrations.runner import migrate
from ops.cli import app as cli_app
from tests.sqld import Sqld
from tests.support.cli import cli_env

NOT_SQLITE = b"this is a text file, not a database; " * 40


def cli(data_dir: Path, *args: str, **env: str | None) -> Result:
    base = {
        **cli_env(data_dir),
        "PRIMARY_URL": None,
        "REPLICATION_TOKEN": "r" * 40,
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_KIB": "1024",
        "MEGILANCE_ADMIN_PASSWORD": None,
    }
    return CliRunner().invoke(cli_app, list(args), env={**base, **env})


def assert_refused(result: Result, *fragments: str) -> None:
    """Exit 1 through typer (not an escaped exception), and one line on stderr that says why."""
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def head(db: Path) -> int:
    conn = connect(str(db), synchronous="NORMAL")
    try:
        return store.head(conn)
    finally:
        conn.close()


@pytest.mark.parametrize("command", [["migrate"], ["rebuild"], ["verify"], ["seed-demo"], ["audit", "--user", "x"]])
def test_a_bad_setting_names_the_variable(tmp_path: Path, command: list[str]) -> None:
    result = cli(tmp_path, *command, GROUP_COMMIT_MAX="0")

    assert_refused(result, "GROUP_COMMIT_MAX")
    assert not (tmp_path / "megilance.db").exists()


@pytest.mark.parametrize("command", [["rebuild"], ["verify"], ["audit", "--user", "x"]])
def test_commands_that_need_a_database_refuse_a_missing_one_and_create_none(tmp_path: Path, command: list[str]) -> None:
    result = cli(tmp_path, *command)

    assert_refused(result, str(tmp_path / "megilance.db"), "megilance migrate")
    assert not (tmp_path / "megilance.db").exists()


@pytest.mark.parametrize(
    "command", [["migrate"], ["rebuild"], ["verify"], ["seed-demo"], ["audit", "--user", "x"], ["serve"]]
)
def test_a_file_that_is_not_a_database_is_named_and_left_alone(tmp_path: Path, command: list[str]) -> None:
    db = tmp_path / "megilance.db"
    db.write_bytes(NOT_SQLITE)

    result = cli(tmp_path, *command)

    assert_refused(result, str(db), "not a database")
    assert db.read_bytes() == NOT_SQLITE


@pytest.mark.parametrize("command", [["verify"], ["audit", "--user", "x"]])
def test_an_empty_file_is_not_a_migrated_database(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "megilance.db").touch()

    result = cli(tmp_path, *command)

    assert_refused(result, "megilance migrate")


def test_verify_refuses_a_store_whose_read_models_were_never_built(tmp_path: Path) -> None:
    conn = connect(str(tmp_path / "megilance.db"), synchronous="NORMAL")
    migrate(conn)  # the schema only: no read model tables yet, as after an older release
    conn.close()

    result = cli(tmp_path, "verify")

    assert_refused(result, "megilance migrate")


def test_verify_refuses_a_stale_read_model(tmp_path: Path) -> None:
    assert cli(tmp_path, "migrate").exit_code == 0
    conn = connect(str(tmp_path / "megilance.db"), synchronous="NORMAL")
    conn.execute(
        "UPDATE projection_versions SET version = 'older' WHERE name = (SELECT MIN(name) FROM projection_versions)"
    )
    conn.close()

    result = cli(tmp_path, "verify")

    assert_refused(result, "stale", "megilance migrate")
    migrated = cli(tmp_path, "migrate")
    assert migrated.exit_code == 0
    assert "rebuilt stale read models: " in migrated.stdout
    assert cli(tmp_path, "verify").exit_code == 0
    assert "rebuilt" not in cli(tmp_path, "migrate").stdout


def test_migrate_refuses_a_newer_schema_in_one_line(tmp_path: Path) -> None:
    conn = connect(str(tmp_path / "megilance.db"), synchronous="NORMAL")
    migrate(conn)
    conn.execute("INSERT INTO schema_migrations VALUES ('log', 9999, '9999_from_the_future', '2099-01-01')")
    conn.close()

    assert_refused(cli(tmp_path, "migrate"), "9999")


def test_seed_demo_twice_refuses_the_second_run_and_writes_nothing(tmp_path: Path) -> None:
    first = cli(tmp_path, "seed-demo", "--users", "6", "--projects", "4", "--proposals", "6")
    assert first.exit_code == 0, first.output
    before = head(tmp_path / "megilance.db")

    second = cli(tmp_path, "seed-demo", "--users", "6", "--projects", "4", "--proposals", "6")

    assert_refused(second, "already", "demo")
    assert head(tmp_path / "megilance.db") == before


@pytest.mark.parametrize(
    ("email", "name", "password", "field"),
    [
        ("not-an-email", "Admin", "long-enough-password", "email"),
        ("admin@example.com", "", "long-enough-password", "name"),
        ("admin@example.com", "Admin", "short", "password"),
    ],
)
def test_create_admin_refuses_bad_input_in_one_line(
    tmp_path: Path, email: str, name: str, password: str, field: str
) -> None:
    result = cli(tmp_path, "create-admin", "--email", email, "--name", name, MEGILANCE_ADMIN_PASSWORD=password)

    assert isinstance(result.exception, SystemExit)
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0], result.stderr
    assert "errors.pydantic.dev" not in result.output


def test_create_admin_help_marks_nothing_required_and_asks_for_what_is_left_out(tmp_path: Path) -> None:
    help_text = cli(tmp_path, "create-admin", "--help", COLUMNS="120").output
    assert "--email" in help_text
    assert "required" not in help_text.lower(), help_text

    answers = "root@example.com\nRoot\nlong-enough-password\nlong-enough-password\n"
    result = CliRunner().invoke(
        cli_app,
        ["create-admin"],
        input=answers,
        env={
            **cli_env(tmp_path),
            "ARGON2_TIME_COST": "1",
            "ARGON2_MEMORY_KIB": "1024",
            "MEGILANCE_ADMIN_PASSWORD": None,
        },
    )
    assert result.exit_code == 0, result.output
    assert "admin created:" in result.output


def test_create_admin_with_a_taken_email_exits_non_zero(tmp_path: Path) -> None:
    args = ("create-admin", "--email", "admin@example.com", "--name", "Admin")
    assert cli(tmp_path, *args, MEGILANCE_ADMIN_PASSWORD="long-enough-password").exit_code == 0
    before = head(tmp_path / "megilance.db")

    result = cli(tmp_path, *args, MEGILANCE_ADMIN_PASSWORD="long-enough-password")

    assert_refused(result, "email_taken")
    assert head(tmp_path / "megilance.db") == before


def test_serve_refuses_an_unknown_role(tmp_path: Path) -> None:
    result = cli(tmp_path, "serve", "--role", "secondary")

    assert result.exit_code == 2
    assert "secondary" in result.output
    assert not (tmp_path / "megilance.db").exists()


def test_serve_as_an_edge_without_primary_url_refuses_before_listening(tmp_path: Path) -> None:
    result = cli(tmp_path, "serve", "--role", "edge")

    assert_refused(result, "PRIMARY_URL")


def test_serve_as_an_edge_without_replication_token_refuses_before_listening(tmp_path: Path) -> None:
    result = cli(tmp_path, "serve", "--role", "edge", PRIMARY_URL="http://127.0.0.1:9", REPLICATION_TOKEN=None)

    assert_refused(result, "REPLICATION_TOKEN")
    assert not list(tmp_path.glob("read-*.db"))


@pytest.mark.parametrize(("variable", "value"), [("PORT", "-1"), ("PORT", "http"), ("LOG_LEVEL", "loud")])
def test_serve_refuses_a_bad_setting_before_listening(tmp_path: Path, variable: str, value: str) -> None:
    result = cli(tmp_path, "serve", **{variable: value})

    assert_refused(result, variable)


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run([sys.executable, "-m", "ops.cli", "--help"], capture_output=True, text=True, check=False)

    assert result.returncode == 0, result.stderr
    assert "seed-demo" in result.stdout


def test_serve_as_an_edge_names_a_read_store_that_is_not_a_database(tmp_path: Path) -> None:
    store_path = tmp_path / "read-fra.db"
    store_path.write_bytes(NOT_SQLITE)

    result = cli(tmp_path, "serve", REGION="fra", PRIMARY_REGION="iad", PRIMARY_URL="http://127.0.0.1:9")

    assert_refused(result, str(store_path), "not a database")
    assert store_path.read_bytes() == NOT_SQLITE


@pytest.mark.parametrize("option", ["--users", "--projects", "--proposals"])
def test_seed_demo_refuses_a_negative_count(tmp_path: Path, option: str) -> None:
    result = cli(tmp_path, "seed-demo", option, "-5")

    assert result.exit_code == 2
    assert option in result.output
    assert not (tmp_path / "megilance.db").exists()


def test_audit_of_an_unknown_user_says_so(tmp_path: Path) -> None:
    assert cli(tmp_path, "migrate").exit_code == 0

    unknown = "01a0000000000000000000000000dead"

    assert_refused(cli(tmp_path, "audit", "--user", unknown), unknown)


def test_an_unreachable_remote_primary_is_named_in_one_line(tmp_path: Path) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()

    result = cli(tmp_path, "migrate", DATABASE_URL=url)

    assert_refused(result, url)


def test_every_verb_works_with_the_log_on_a_libsql_server(tmp_path: Path) -> None:
    with Sqld(tmp_path / "sqld") as server:
        remote = {"DATABASE_URL": server.url}
        assert cli(tmp_path / "a", "migrate", **remote).exit_code == 0
        seeded = cli(tmp_path / "a", "seed-demo", "--users", "6", "--projects", "8", "--proposals", "12", **remote)
        assert seeded.exit_code == 0, seeded.output
        admin = cli(
            tmp_path / "a",
            "create-admin",
            "--email",
            "root@example.com",
            "--name",
            "Root",
            MEGILANCE_ADMIN_PASSWORD="correct-horse-1",
            **remote,
        )
        assert admin.exit_code == 0, admin.output
        admin_id = admin.stdout.split("admin created: ")[1].split()[0]
        on_server = HranaClient(server.url).query("SELECT COUNT(*) FROM events WHERE stream_id = ?", (admin_id,))
        assert on_server[0][0] == 1
        # Another machine, with no copy of its own: every verb brings one level with the server first.
        for verb in (["rebuild"], ["verify"], ["audit", "--user", admin_id]):
            result = cli(tmp_path / "b", *verb, **remote)
            assert result.exit_code == 0, result.output
        assert "UserRegistered" in cli(tmp_path / "b", "audit", "--user", admin_id, **remote).stdout


def test_a_libsql_server_that_cannot_be_reached_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = cli(tmp_path, "migrate", DATABASE_URL=f"http://127.0.0.1:{port}")
    assert_refused(result, f"127.0.0.1:{port}", "cannot be reached")
