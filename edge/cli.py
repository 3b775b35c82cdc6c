"""`megilance`: the operator's one command (serve, migrate, rebuild, verify, seed-demo, create-admin, audit)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from core import store
from core.db import Connection, connect
from core.settings import load_settings
from edge import server
from edge.runtime import prepare_primary, run_command_sync
from edge.server import BoundedHttpToolsProtocol
from migrations.runner import migrate as run_migrations
from queries.projection import checkpoint
from queries.rebuild import differences, rebuild
from queries.registry import projection

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=not sys.stderr.isatty(),
    )


def primary_connection() -> Connection:
    settings = load_settings()
    return connect(
        settings.resolved_database_url(),
        auth_token=settings.database_auth_token,
        synchronous=settings.synchronous,
        replica_path=str(settings.data_dir / "primary-replica.db"),
        driver=settings.local_driver,
    )


@app.command()
def serve(
    role: Annotated[str, typer.Option(help="primary or edge (default: from REGION/PRIMARY_REGION)")] = "",
    host: Annotated[str, typer.Option(envvar="HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="PORT")] = 8000,
    workers: Annotated[int, typer.Option(help="keep 1: one process owns the writer")] = 1,
) -> None:
    """Serve the API with uvicorn (uvloop, httptools)."""
    import uvicorn

    if role == "edge":
        os.environ.setdefault("PRIMARY_REGION", "primary")
        os.environ.setdefault("REGION", os.environ.get("FLY_REGION", "edge"))
    elif role == "primary":
        os.environ.pop("PRIMARY_REGION", None)
        os.environ.pop("REGION", None)
    settings = load_settings()
    server.HEAD_TIMEOUT_S = settings.header_timeout_s
    if settings.is_primary:
        conn = primary_connection()
        try:
            prepare_primary(conn, projection())
        finally:
            conn.close()
    uvicorn.run(
        "edge.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http=BoundedHttpToolsProtocol,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=5,
        limit_concurrency=2048,  # beyond this, new connections get 503 instead of piling up (slow clients)
        timeout_graceful_shutdown=10,
        proxy_headers=False,
        server_header=False,  # no `server: uvicorn`: nothing to gain from naming the software, a header per response
    )


@app.command()
def migrate() -> None:
    """Apply pending migrations to the primary database (and rebuild stale read models)."""
    conn = primary_connection()
    try:
        applied = prepare_primary(conn, projection())
    finally:
        conn.close()
    typer.echo("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))


@app.command("rebuild")
def rebuild_command() -> None:
    """Replay the whole log into fresh read-model tables and swap them in."""
    conn = primary_connection()
    try:
        run_migrations(conn)
        total = store.head(conn)
        with progress_bar() as bar:
            task = bar.add_task("rebuilding read models", total=total)
            position = rebuild(conn, projection(), store.iter_all(conn, meta=False), lambda n: bar.advance(task, n))
    finally:
        conn.close()
    typer.echo(f"rebuilt at position {position}")


@app.command()
def verify() -> None:
    """Replay the log into a scratch store and compare it with the live read store; exit 1 on any difference."""
    live = primary_connection()
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = connect(str(Path(scratch_dir) / "replay.db"), synchronous="NORMAL")
        try:
            run_migrations(scratch, ("read",))
            proj = projection()
            live.execute("BEGIN")  # one snapshot of the live store for the whole comparison
            rebuild(scratch, proj, store.read_until(live, checkpoint(live), meta=False))
            found = differences(live, scratch, proj)
            live.execute("COMMIT")
        finally:
            scratch.close()
            live.close()
    if found:
        for line in found:
            typer.echo(f"DIFFERENT {line}")
        raise typer.Exit(1)
    typer.echo("verified: the read store equals a replay of the log")


@app.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Option(prompt=True)],
    name: Annotated[str, typer.Option(prompt=True)] = "Administrator",
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, envvar="MEGILANCE_ADMIN_PASSWORD")
    ] = "",
) -> None:
    """Create an admin account (the only way besides another admin)."""
    from commands.users import RegisterUser
    from core.errors import DomainError
    from core.ids import new_id
    from core.passwords import Passwords
    from edge.routes.auth import RegisterBody

    settings = load_settings()
    try:
        body = RegisterBody(email=email, password=password, name=name, role="client")
    except ValueError as exc:
        typer.echo(f"invalid input: {exc}", err=True)
        raise typer.Exit(2) from exc
    hashed = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism).hash(
        body.password
    )
    conn = primary_connection()
    try:
        prepare_primary(conn, projection())
        user_id = new_id()
        command = RegisterUser(
            user_id=user_id, email=body.email, name=body.name, role="admin", password_hash=hashed, created_by="cli"
        )
        run_command_sync(conn, projection(), command, {"actor": "cli", "region": settings.region_name})
        position = store.head(conn)
    except DomainError as exc:
        typer.echo(f"refused: {exc.detail} ({exc.code})", err=True)
        raise typer.Exit(1) from exc
    finally:
        conn.close()
    typer.echo(f"admin created: {user_id}")
    typer.echo(f"X-Consistency-Token: {position}")


@app.command()
def audit(user: Annotated[str, typer.Option("--user", help="user id")]) -> None:
    """Print the security-relevant events of one account (logins, reuse, role and status changes)."""
    from queries.audit import audit_trail

    conn = primary_connection()
    try:
        for line in audit_trail(conn, user):
            typer.echo(line)
    finally:
        conn.close()


@app.command("seed-demo")
def seed_demo(
    users: Annotated[int, typer.Option(help="accounts (a third are clients)")] = 200,
    projects: Annotated[int, typer.Option()] = 1000,
    proposals: Annotated[int, typer.Option()] = 5000,
) -> None:
    """Fill the primary with a realistic demo marketplace (password of every demo account: demo-password-1)."""
    from core.passwords import Passwords
    from edge.seed import DEMO_PASSWORD, seed

    settings = load_settings()
    hashed = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism).hash(
        DEMO_PASSWORD
    )
    conn = primary_connection()
    try:
        prepare_primary(conn, projection())
        with progress_bar() as bar:
            task = bar.add_task("seeding demo marketplace", total=None)
            demo = seed(
                conn,
                projection(),
                hashed,
                users_n=users,
                projects_n=projects,
                proposals_n=proposals,
                progress=lambda n: bar.advance(task, n),
                fee_bps=settings.platform_fee_bps,
            )
        head = store.head(conn)
    finally:
        conn.close()
    typer.echo(
        f"seeded {len(demo.clients)} clients, {len(demo.freelancers)} freelancers, {len(demo.projects)} "
        f"projects, {demo.proposal_count} proposals ({len(demo.hired)} accepted), {len(demo.contracts)} contracts, "
        f"{len(demo.portfolio_items)} portfolio items; log head {head}"
    )


def main() -> None:
    app()
