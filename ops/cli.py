"""`megilance`: the operator's one command (serve, migrate, rebuild, verify, seed-demo, create-admin, audit, backup)."""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from api.workers import SOCKET_NAME
from core import backup, store
from core.db import Connection, DatabaseUnavailable, connect, is_remote, local_path
from core.errors import DomainError
from core.settings import InsecureSettings, Settings, SettingsError, load_settings, validation_summary
from httpserver import bounded as server
from httpserver.bounded import BoundedHttpToolsProtocol
from migrations.runner import SchemaTooNew, pending
from migrations.runner import migrate as run_migrations
from node.runtime import open_primary, prepare_edge, prepare_primary, run_command_sync, secure_database_files
from ops.workers import supervise
from queries import matching
from queries.projection import checkpoint
from queries.rebuild import differences, rebuild
from queries.registry import projection

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__, pretty_exceptions_enable=False)

P = ParamSpec("P")
R = TypeVar("R")
# An operator's mistake (a bad setting, a wrong or unwritable file, a refused command), not a bug in this code.
OPERATOR_ERRORS = (
    SettingsError,
    InsecureSettings,
    SchemaTooNew,
    DatabaseUnavailable,
    sqlite3.Error,
    OSError,
    backup.BackupError,
)


class Refused(Exception):
    """The command will not run against this database; the message says why and what to do."""


def reported(command: Callable[P, R]) -> Callable[P, R]:
    """Operator errors become one line on stderr and exit 1, instead of a traceback."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except DomainError as exc:
            message = f"refused: {exc.detail} ({exc.code})"
        except sqlite3.Error as exc:
            message = f"database error: {exc}"
        except (Refused, *OPERATOR_ERRORS) as exc:
            message = str(exc)
        typer.echo(f"megilance {command.__name__.removesuffix('_command').replace('_', '-')}: {message}", err=True)
        raise typer.Exit(1)

    return run


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=not sys.stderr.isatty(),
    )


def primary_connection(*, existing: bool = False) -> Connection:
    """The primary's database; with `existing`, refuse (rather than create) a file that is not there."""
    settings = load_settings()
    url = settings.resolved_database_url()
    if not existing:
        backup.restore_if_missing(settings)  # a fresh machine starts from the backup, not from an empty file
    if existing and not is_remote(url) and not Path(local_path(url)).exists():
        raise Refused(f"no database at {local_path(url)}: check DATA_DIR / DATABASE_URL, or run `megilance migrate`")
    secure_database_files(settings)
    conn = open_primary(settings, projection())
    if backup.backup_config(settings) is not None:
        backup.hand_checkpoints_to_litestream(conn)
    return conn


@app.command()
@reported
def serve(
    role: Annotated[
        Literal["primary", "edge"] | None,
        typer.Option(help="primary or edge (default: from REGION/PRIMARY_REGION)", show_default=False),
    ] = None,
    host: Annotated[str | None, typer.Option(help="default: HOST", show_default=False)] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="default: PORT", show_default=False)] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="processes (default: WORKERS); one owns the writer", show_default=False),
    ] = None,
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
    settings.require_edge_settings()
    settings.require_public_url()
    server.HEAD_TIMEOUT_S, server.MIN_BODY_RATE = settings.header_timeout_s, settings.min_body_rate
    # Migrate here, so that a database the server cannot use stops it with one line (not a traceback in the lifespan).
    # A libSQL server that cannot be reached is not such a database: the node starts, says so, and is not ready.
    if not (settings.is_primary and is_remote(settings.resolved_database_url())):
        if settings.is_primary:
            conn = primary_connection()
        else:
            secure_database_files(settings)
            conn = connect(
                settings.resolved_read_path(), synchronous=settings.synchronous, driver=settings.local_driver
            )
        try:
            (prepare_primary if settings.is_primary else prepare_edge)(conn, projection())
        finally:
            conn.close()
    host = host or settings.host
    count = worker_count(settings, workers)
    sock = server.listening_socket(host, settings.port if port is None else port)
    server.raise_open_file_limit()  # each connection holds a file: the default soft limit (often 1024) is too few
    options = uvicorn_options(settings)
    if count > 1:
        # A private directory of its own: a Unix socket path is at most 107 bytes, DATA_DIR may be longer.
        writer_socket = Path(tempfile.mkdtemp(prefix="megilance-")) / SOCKET_NAME
        limits = {"head_timeout_s": server.HEAD_TIMEOUT_S, "min_body_rate": server.MIN_BODY_RATE}
        with sock:
            code = supervise(count, sock, writer_socket, {**options, **limits, "host": host})
        if code:
            raise typer.Exit(code)
        return
    server.fix_malloc_thresholds()  # before any thread hashes a password
    config = uvicorn.Config("api.app:create_app", factory=True, **options)
    with sock:
        serving = server.Server(config, host)
        serving.run(sockets=[sock])
    if not serving.started:  # the app's startup failed (uvicorn has logged why)
        raise typer.Exit(3)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How every worker runs uvicorn (uvloop, httptools with this server's limits)."""
    return {
        "loop": "uvloop",
        "http": BoundedHttpToolsProtocol,
        "log_level": "warning",
        "access_log": False,
        "timeout_keep_alive": 5,
        "limit_concurrency": settings.max_connections,  # beyond it, requests get 503 rather than pile up
        "timeout_graceful_shutdown": 10,
        "proxy_headers": False,
        "server_header": False,  # no `server: uvicorn`: nothing to gain from naming the software, a header per response
    }


def worker_count(settings: Settings, asked: int | None) -> int:
    """Processes to start: `--workers`, else WORKERS; one where only one can serve (said on stderr)."""
    count = asked if asked is not None else settings.workers
    single = None
    if not settings.is_primary:
        single = "an edge applies its primary's feed in one process"
    elif is_remote(settings.resolved_database_url()):
        single = "a primary whose log is on a libSQL server runs one process"
    if count > 1 and single is not None:
        typer.echo(f"megilance serve: one worker, not {count}: {single}", err=True)
        return 1
    return count


@app.command()
@reported
def migrate() -> None:
    """Apply pending migrations to the primary database (and rebuild stale read models)."""
    proj = projection()
    conn = primary_connection()
    try:
        applied = run_migrations(conn)
        stale = proj.stale_models(conn)
        prepare_primary(conn, proj)
    finally:
        conn.close()
    typer.echo("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    if stale:
        typer.echo("rebuilt stale read models: " + ", ".join(stale))


@app.command("rebuild")
@reported
def rebuild_command() -> None:
    """Replay the whole log into fresh read-model tables and swap them in."""
    conn = primary_connection(existing=True)
    try:
        run_migrations(conn)
        total = store.head(conn)
        with progress_bar() as bar:
            task = bar.add_task("rebuilding read models", total=total)
            position = rebuild(conn, projection(), store.iter_all(conn, meta=False), lambda n: bar.advance(task, n))
        embed(conn)
    finally:
        conn.close()
    typer.echo(f"rebuilt at position {position}")


def embed(conn: Connection) -> None:
    """Bring the matching documents up to the read store (FEATURE_FLAG_AI_MATCHING), with a progress bar.

    Texts whose hash already has a vector are not encoded again: after a rebuild, only new or changed ones are.
    """
    from core.encoder import make_encoder

    settings = load_settings()
    if not settings.feature_flag_ai_matching:
        return
    encoder = make_encoder(settings.matching_encoder)
    started = time.perf_counter()
    with progress_bar() as bar:
        task = bar.add_task("embedding matching documents", total=None)
        done = matching.catch_up(conn, encoder, lambda n: bar.advance(task, n))
    typer.echo(f"matching ready at position {done.position} in {time.perf_counter() - started:.1f} s")


def require_migrated(conn: Connection) -> None:
    """Refuse a database that `migrate` has not brought up to this code (without writing to it)."""
    missing = pending(conn)
    if missing:
        raise Refused(f"the database is not migrated ({', '.join(missing)} pending): run `megilance migrate`")


@app.command()
@reported
def verify() -> None:
    """Replay the log into a scratch store and compare it with the live read store; exit 1 on any difference."""
    live = primary_connection(existing=True)
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = connect(str(Path(scratch_dir) / "replay.db"), synchronous="NORMAL")
        try:
            proj = projection()
            require_migrated(live)
            stale = proj.stale_models(live)
            if stale:
                raise Refused(f"read models are stale ({', '.join(stale)}): run `megilance migrate` to rebuild them")
            run_migrations(scratch, ("read",))
            live.execute("BEGIN")  # one snapshot of the live store for the whole comparison
            rebuild(scratch, proj, store.read_until(live, checkpoint(live), meta=False))
            found = differences(live, scratch, proj) + matching.differences(live, scratch)
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
@reported
def create_admin(
    # Each option is asked for when left out, so none is marked required in --help.
    email: Annotated[str, typer.Option(prompt=True, help="asked for when left out", show_default=False)] = "",
    name: Annotated[str, typer.Option(prompt=True, help="asked for when left out")] = "Administrator",
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            envvar="MEGILANCE_ADMIN_PASSWORD",
            help="asked for (twice, hidden) when left out",
            show_default=False,
        ),
    ] = "",
) -> None:
    """Create an admin account (the only way besides another admin)."""
    from api.routes.auth import RegisterBody
    from commands.users import RegisterUser
    from core.ids import new_id
    from core.passwords import Passwords

    settings = load_settings()
    try:
        body = RegisterBody(email=email, password=password, name=name, role="client")
    except ValidationError as exc:
        typer.echo(f"megilance create-admin: invalid input: {validation_summary(exc)}", err=True)
        raise typer.Exit(2) from None
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
    finally:
        conn.close()
    typer.echo(f"admin created: {user_id}")
    typer.echo(f"X-Consistency-Token: {position}")


@app.command()
@reported
def audit(user: Annotated[str, typer.Option("--user", help="user id")]) -> None:
    """Print the security-relevant events of one account (logins, reuse, role and status changes, password resets)."""
    from core.audit import audit_trail

    conn = primary_connection(existing=True)
    try:
        require_migrated(conn)
        lines = list(audit_trail(conn, user))
        if not lines:  # every account's trail starts with UserRegistered
            raise Refused(f"no user with id {user}")
        for line in lines:
            typer.echo(line)
    finally:
        conn.close()


@app.command("seed-demo")
@reported
def seed_demo(
    users: Annotated[int, typer.Option(min=0, help="accounts (a third are clients)")] = 200,
    projects: Annotated[int, typer.Option(min=0)] = 1000,
    proposals: Annotated[int, typer.Option(min=0)] = 5000,
) -> None:
    """Fill the primary with a realistic demo marketplace (password of every demo account: demo-password-1)."""
    from core.passwords import Passwords
    from ops.seed import DEMO_PASSWORD, seed

    settings = load_settings()
    hashed = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism).hash(
        DEMO_PASSWORD
    )
    conn = primary_connection()
    try:
        prepare_primary(conn, projection())
        with progress_bar() as bar:
            task = bar.add_task("seeding demo marketplace", total=None)
            try:
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
            except DomainError as exc:
                if exc.code != "email_taken":
                    raise
                raise Refused(
                    "this database already holds the demo accounts (demo0@megilance.test, …): "
                    "seed-demo fills a database once; use a fresh DATA_DIR for another demo"
                ) from exc
        head = store.head(conn)
        embed(conn)
    finally:
        conn.close()
    typer.echo(
        f"seeded {len(demo.clients)} clients, {len(demo.freelancers)} freelancers, {len(demo.projects)} "
        f"projects, {demo.proposal_count} proposals ({len(demo.hired)} accepted), {len(demo.contracts)} contracts, "
        f"{len(demo.portfolio_items)} portfolio items; log head {head}"
    )


backup_app = typer.Typer(no_args_is_help=True, help="Continuous backup to S3 with Litestream (BACKUP_URL).")
app.add_typer(backup_app, name="backup")


def backup_settings() -> backup.BackupConfig:
    cfg = backup.backup_config(load_settings())
    if cfg is None:
        raise Refused("no backup here: set BACKUP_URL (s3://bucket/path) on a primary with an embedded database")
    return cfg


@backup_app.command("status")
@reported
def backup_status(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """The last replicated position and its age: from the running Litestream, else from the copy in S3."""
    cfg = backup_settings()
    now = time.time()
    report: dict[str, object] = {"backup_url": load_settings().backup_url, "database": str(cfg.db_path)}
    try:
        report |= {"litestream": "running", **backup.snapshot(cfg).as_dict(now)}
    except backup.BackupError as exc:
        report |= {"litestream": "not running", "error": str(exc)}
    head = backup.replica_head(cfg)
    report["replica_txid"] = head["txid"] if head else None
    report["replica_written_at"] = head["created_at"] if head else None
    if head:
        report["replica_age_seconds"] = round(max(0.0, now - backup.parse_time(head["created_at"])), 3)
    if as_json:
        typer.echo(json.dumps(report))
        return
    for key, value in report.items():
        typer.echo(f"{key}: {value}")


@app.command("restore")
@reported
def restore_command(
    to: Annotated[Path, typer.Option("--to", help="the new database file to write (must not exist)")],
    timestamp: Annotated[
        str, typer.Option(help="restore the state as of this RFC 3339 time, e.g. 2026-12-07T18:00:00Z")
    ] = "",
) -> None:
    """Restore the backup (latest, or as of --timestamp) into a new file; point DATABASE_URL at it to verify."""
    cfg = backup_settings()
    started = time.monotonic()
    if not backup.restore(cfg, to, timestamp=timestamp):
        raise Refused(f"nothing to restore: {load_settings().backup_url} holds no backup")
    typer.echo(f"restored {to} in {time.monotonic() - started:.2f}s")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
