"""Forward-only migrations: numbered SQL files, applied once each, recorded in `schema_migrations`."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

Kind = Literal["log", "read"]
HERE = Path(__file__).parent
NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "kind TEXT NOT NULL, version INTEGER NOT NULL, name TEXT NOT NULL, applied_at TEXT NOT NULL, "
    "PRIMARY KEY (kind, version))"
)
SELECT_APPLIED = "SELECT version FROM schema_migrations WHERE kind = ?"
INSERT_APPLIED = "INSERT INTO schema_migrations (kind, version, name, applied_at) VALUES (?, ?, ?, ?)"


class SchemaTooNew(RuntimeError):
    """The database was migrated by newer code than this; refuse to run against it."""


@dataclass(frozen=True)
class Migration:
    kind: Kind
    version: int
    name: str
    sql: str


def available(kind: Kind) -> list[Migration]:
    found = []
    for path in sorted((HERE / kind).glob("*.sql")):
        match = NAME.match(path.name)
        if match is None:
            raise ValueError(f"migration file name not of the form 0001_name.sql: {path.name}")
        found.append(Migration(kind, int(match.group(1)), path.stem, path.read_text()))
    return found


def applied(conn: Any, kind: Kind) -> set[int]:
    conn.execute(CREATE_TABLE)
    return {int(row[0]) for row in conn.execute(SELECT_APPLIED, (kind,)).fetchall()}


def pending(conn: Any, kinds: tuple[Kind, ...] = ("log", "read")) -> list[str]:
    """The migrations not yet applied, found without writing (a read-only check for `verify` and `audit`)."""
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").fetchone()
    missing: list[str] = []
    for kind in kinds:
        have = {int(row[0]) for row in conn.execute(SELECT_APPLIED, (kind,)).fetchall()} if found else set()
        missing += [f"{kind}/{m.name}" for m in available(kind) if m.version not in have]
    return missing


def migrate(conn: Any, kinds: tuple[Kind, ...] = ("log", "read")) -> list[str]:
    """Apply what is missing, each file in its own transaction; return the names applied."""
    done: list[str] = []
    for kind in kinds:
        known = available(kind)
        have = applied(conn, kind)
        newest_known = max((m.version for m in known), default=0)
        if have and max(have) > newest_known:
            raise SchemaTooNew(
                f"the {kind} schema is at version {max(have)} but this code knows only up to {newest_known}"
            )
        for migration in known:
            if migration.version in have:
                continue
            now = datetime.now(UTC).isoformat()
            # One file, one transaction: a failing statement leaves nothing behind. (libsql's
            # executescript stops silently at an error, so statements are executed one by one.)
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in split_statements(migration.sql):
                    conn.execute(statement)
                conn.execute(INSERT_APPLIED, (kind, migration.version, migration.name, now))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            done.append(f"{kind}/{migration.name}")
    return done


def split_statements(script: str) -> list[str]:
    """Complete SQL statements of a script, as SQLite's own tokenizer judges them (trigger bodies stay whole)."""
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            text = pending.strip()
            if text and not all(part.strip().startswith("--") for part in text.splitlines() if part.strip()):
                statements.append(text)
            pending = ""
    if pending.strip() and not all(p.strip().startswith("--") for p in pending.splitlines() if p.strip()):
        raise ValueError(f"incomplete SQL statement at the end of a migration: {pending.strip()[:80]}")
    return statements


CREATE_TABLE_NAME = re.compile(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([A-Za-z_][A-Za-z0-9_]*)", re.I)


def log_tables() -> frozenset[str]:
    """The tables the log migrations create: what a libSQL server holds, and what a primary's copy ships to it."""
    return frozenset(
        name.lower() for migration in available("log") for name in CREATE_TABLE_NAME.findall(migration.sql)
    )


class Server(Protocol):
    """What migrating a libSQL server needs: a read, and a transaction sent whole (core.hrana.HranaClient)."""

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]: ...
    def transaction(self, statements: list[tuple[str, tuple[Any, ...]]]) -> Any: ...


def migrate_server(server: Server) -> list[str]:
    """Apply the log migrations a libSQL server lacks, each file as one transaction sent in one request."""
    server.transaction([(CREATE_TABLE, ())])
    have = {int(row[0]) for row in server.query(SELECT_APPLIED, ("log",))}
    known = available("log")
    newest_known = max((m.version for m in known), default=0)
    if have and max(have) > newest_known:
        raise SchemaTooNew(f"the log schema is at version {max(have)} but this code knows only up to {newest_known}")
    done: list[str] = []
    for migration in known:
        if migration.version in have:
            continue
        now = datetime.now(UTC).isoformat()
        statements: list[tuple[str, tuple[Any, ...]]] = [(sql, ()) for sql in split_statements(migration.sql)]
        server.transaction([*statements, (INSERT_APPLIED, ("log", migration.version, migration.name, now))])
        done.append(f"log/{migration.name}")
    return done
