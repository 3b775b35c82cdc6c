"""The test suite's own rules: shared helpers live in tests/support, and each test carries its tier's marker."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
TIERS = ("unit", "api", "integration", "e2e")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def is_test_module(name: str) -> bool:
    return name.startswith("tests.") and name.rsplit(".", 1)[-1].startswith("test_")


def test_no_test_module_imports_another() -> None:
    offenders = {
        str(path.relative_to(TESTS)): sorted(name for name in imported_modules(path) if is_test_module(name))
        for path in TESTS.rglob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_rule_sees_both_import_forms(tmp_path: Path) -> None:
    sample = tmp_path / "test_sample.py"
    sample.write_text("from tests.api.test_contracts_api import register\nfrom tests.api import test_wallet_api\n")
    assert {name for name in imported_modules(sample) if is_test_module(name)} == {
        "tests.api.test_contracts_api",
        "tests.api.test_wallet_api",
    }


def test_a_unit_test_is_marked_unit_only(request: pytest.FixtureRequest) -> None:
    marks = {mark.name for mark in request.node.iter_markers()}
    assert "unit" in marks
    assert marks.isdisjoint(set(TIERS) - {"unit"})


def test_every_tier_marker_is_registered(pytestconfig: pytest.Config) -> None:
    registered = {line.split(":", 1)[0].strip() for line in pytestconfig.getini("markers")}
    assert set(TIERS) <= registered
