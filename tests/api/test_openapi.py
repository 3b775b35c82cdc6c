"""`/api/openapi.json` is a valid OpenAPI 3.1 document; the docs pages load only our own vendored assets."""

from __future__ import annotations

import re
from typing import Any

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from starlette.testclient import TestClient

from edge.middleware import DOCS_CSP

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
REFERENCE = re.compile(r"""\b(?:src|href|spec-url)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
ABSOLUTE_URL = re.compile(r"(?:https?:)?//[^\s\"'<>]+")
CONTENT_TYPES = {".js": ("text/javascript", "application/javascript"), ".css": ("text/css",)}


@pytest.fixture
def spec(client: TestClient) -> dict[str, Any]:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document: dict[str, Any] = response.json()
    return document


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op) for path, item in spec["paths"].items() for method, op in item.items() if method in METHODS
    ]


def test_spec_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    assert re.fullmatch(r"3\.1\.\d+", spec["openapi"]), spec["openapi"]
    validate(spec)  # picks the validator from the `openapi` field
    validate(spec, cls=OpenAPIV31SpecValidator)
    assert spec["info"]["title"]
    assert spec["info"]["version"]


def test_every_operation_is_documented(spec: dict[str, Any]) -> None:
    ops = operations(spec)
    assert len(ops) >= 10
    for method, path, op in ops:
        where = f"{method.upper()} {path}"
        assert op.get("summary", "").strip(), f"{where} has no summary"
        assert op.get("responses"), f"{where} has no responses"
        assert all(r.get("description") for r in op["responses"].values()), where
        assert op.get("operationId"), where
        assert op.get("tags"), where
    operation_ids = [op["operationId"] for _, _, op in ops]
    assert len(operation_ids) == len(set(operation_ids)), "operationIds must be unique"


def test_only_the_public_operations_are_documented_without_a_bearer_token(spec: dict[str, Any]) -> None:
    """API.md: everything needs a bearer token except these (a presigned upload's URL is its own credential)."""
    anonymous = {(method, path) for method, path, op in operations(spec) if "security" not in op}
    assert anonymous == {
        ("get", "/"),
        ("get", "/api"),
        ("get", "/api/health/live"),
        ("get", "/api/health/ready"),
        ("get", "/api/health/metrics"),
        ("post", "/api/auth/register"),
        ("post", "/api/auth/login"),
        ("post", "/api/auth/refresh"),
        ("put", "/api/uploads/direct/{key}"),
    }
    for method, path, op in operations(spec):
        if "security" in op:
            assert "401" in op["responses"], f"{method.upper()} {path}"


def test_spec_lists_the_real_endpoints_and_no_internal_ones(spec: dict[str, Any]) -> None:
    pairs = {(method, path) for method, path, _ in operations(spec)}
    assert {
        ("post", "/api/auth/register"),
        ("post", "/api/auth/login"),
        ("get", "/api/users"),
        ("get", "/api/health/ready"),
    } <= pairs
    assert not [p for p in spec["paths"] if p.startswith("/internal") or "/internal/" in p]
    assert not {"/api/docs", "/api/redoc", "/api/openapi.json"} & set(spec["paths"])


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        (
            "/api/docs",
            {
                "/api/static/swagger-ui/swagger-ui.css",
                "/api/static/swagger-ui/swagger-ui-bundle.js",
                "/api/static/swagger-init.js",
            },
        ),
        ("/api/redoc", {"/api/static/redoc/redoc.standalone.js"}),
    ],
)
def test_docs_page_loads_only_local_assets(client: TestClient, page: str, expected: set[str]) -> None:
    response = client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == DOCS_CSP.decode()
    html = response.text
    assert ABSOLUTE_URL.findall(html) == [], "docs pages must not reference outside URLs (no CDN)"

    references = set(REFERENCE.findall(html)) - {"/api/openapi.json"}
    assert references == expected
    for url in references:
        assert url.startswith("/api/static/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        suffix = url[url.rfind(".") :]
        content_type = asset.headers["content-type"].split(";")[0].strip()
        assert content_type in CONTENT_TYPES[suffix], (url, content_type)
        assert asset.headers["x-content-type-options"] == "nosniff"
        assert asset.headers["content-security-policy"] == DOCS_CSP.decode()
        assert len(asset.content) > 100, url


def test_swagger_init_points_at_our_spec(client: TestClient) -> None:
    script = client.get("/api/static/swagger-init.js").text
    assert '"/api/openapi.json"' in script
    assert ABSOLUTE_URL.findall(script) == []


def test_redoc_page_points_at_our_spec(client: TestClient) -> None:
    assert 'spec-url="/api/openapi.json"' in client.get("/api/redoc").text


def test_missing_static_asset_is_404(client: TestClient) -> None:
    assert client.get("/api/static/swagger-ui/nope.js").status_code == 404
    assert client.get("/api/static/../app.py").status_code == 404
