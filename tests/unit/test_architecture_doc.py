"""docs/architecture.md's package table is the import graph of the code as it is: a package split or a new arrow
between packages fails here until the page says so."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "architecture.md"
ROW = re.compile(r"^\| `([a-z_]+)` \| ((?:`[a-z_]+`(?:, )?)+|none) \|$", re.MULTILINE)
NOT_PACKAGES = {"tests", "bench", "docs"}


def packages() -> set[str]:
    """The repository's top-level Python packages (the ones the service is built from)."""
    return {
        path.parent.name
        for path in ROOT.glob("*/__init__.py")
        if path.parent.name not in NOT_PACKAGES and not path.parent.name.startswith(".")
    }


def imported_packages(package: str, known: set[str]) -> set[str]:
    """Other top-level packages that any module of `package` imports (absolute imports, at any depth)."""
    found: set[str] = set()
    for module in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            found |= {name.split(".")[0] for name in names} & known
    return found - {package}


def documented() -> dict[str, set[str]]:
    graph = {}
    for package, targets in ROW.findall(PAGE.read_text(encoding="utf-8")):
        graph[package] = set() if targets == "none" else set(re.findall(r"`([a-z_]+)`", targets))
    return graph


def test_the_page_draws_the_imports_between_packages_as_they_are() -> None:
    known = packages()
    actual = {package: imported_packages(package, known) for package in known}
    assert {"core", "commands", "queries"} <= known
    assert documented() == actual, "update the package table in docs/architecture.md"


def test_the_table_parser_reads_rows_of_packages_only() -> None:
    text = "| `edge` | `core`, `queries` |\n| `core` | none |\n| `x` | prose here |\n"
    assert ROW.findall(text) == [("edge", "`core`, `queries`"), ("core", "none")]
