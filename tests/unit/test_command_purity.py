"""The write side's handlers never hold a connection: no module in commands/ imports a database driver or
`core.db`, or reaches for a `.conn`; the write-side tables are reached through the unit of work."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

COMMANDS = Path(__file__).resolve().parents[2] / "commands"
DATABASE_MODULES = {"core.db", "sqlite3", "libsql"}


def imported(node: ast.AST) -> list[str]:
    """The modules an import statement names (`from core import db` names `core.db`)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module:
        return [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    return []


def reaches_the_database(source: str) -> list[str]:
    """What in `source` reaches past the unit of work: database imports and `.conn` attributes, with their lines."""
    found = []
    for node in ast.walk(ast.parse(source)):
        for module in imported(node):
            if module in DATABASE_MODULES or module.split(".")[0] in DATABASE_MODULES:
                found.append(f"line {node.lineno}: imports {module}")
        if isinstance(node, ast.Attribute) and node.attr == "conn":
            found.append(f"line {node.lineno}: uses .conn")
    return found


def test_the_check_finds_each_way_past_the_unit_of_work() -> None:
    source = "from core.db import Connection\nfrom core import db\nimport sqlite3\nx = uow.conn.execute('')\n"
    assert reaches_the_database(source) == [
        "line 1: imports core.db",
        "line 2: imports core.db",
        "line 3: imports sqlite3",
        "line 4: uses .conn",
    ]
    assert reaches_the_database("from core.store import UnitOfWork\nuow.refresh_tokens.find(jti)\n") == []


@pytest.mark.parametrize("module", sorted(COMMANDS.glob("*.py")), ids=lambda path: path.name)
def test_no_command_module_touches_the_connection(module: Path) -> None:
    assert reaches_the_database(module.read_text(encoding="utf-8")) == []
