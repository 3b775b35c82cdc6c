"""docs/api.md and the OpenAPI document name the same operations, so neither can drift from the other.

An operation is a table row of docs/api.md that starts with `` `METHOD /path` ``; the OpenAPI document is the one
the app serves at /api/openapi.json.
"""

from __future__ import annotations

import re
from pathlib import Path

from starlette.testclient import TestClient

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
ROW = re.compile(r"^\| `(GET|POST|PUT|PATCH|DELETE) (/[^`\s]*)` \|", re.MULTILINE)
METHODS = ("get", "put", "post", "delete", "patch")
# The contract's operations whose code is not on this branch yet. When one is served, the test below says so:
# take it out of this set.
Operation = tuple[str, str]


def documented() -> list[Operation]:
    return [(method, path) for method, path in ROW.findall(API_DOC.read_text(encoding="utf-8"))]


def served(client: TestClient) -> set[Operation]:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    return {(method.upper(), path) for path, item in paths.items() for method in item if method in METHODS}


def test_the_page_lists_each_operation_once() -> None:
    rows = documented()
    assert len(rows) >= 50
    repeated = sorted({row for row in rows if rows.count(row) > 1})
    assert not repeated, f"listed more than once in docs/api.md: {repeated}"


def test_every_served_operation_is_documented(client: TestClient) -> None:
    missing = sorted(served(client) - set(documented()))
    assert not missing, f"in /api/openapi.json but not in a table of docs/api.md: {missing}"


def test_every_documented_operation_is_served(client: TestClient) -> None:
    unknown = sorted(set(documented()) - served(client))
    assert not unknown, f"in docs/api.md but not in /api/openapi.json: {unknown}"


def test_the_parser_reads_table_rows_only() -> None:
    text = "| `GET /api/x/{id}` | who | what |\nsee `POST /api/y` in prose\n| `PATCH /api/z` | a | b |\n"
    assert ROW.findall(text) == [("GET", "/api/x/{id}"), ("PATCH", "/api/z")]
