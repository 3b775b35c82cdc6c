"""`/api/openapi.json` is a valid OpenAPI 3.1 document that declares the contract's headers where the code honours
them; the docs pages load only our own vendored assets."""

from __future__ import annotations

import re
from typing import Any

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from starlette.testclient import TestClient

from api.app import operations as app_operations
from api.forwarding import is_regional
from api.middleware import DOCS_CSP
from api.routing import MAX_KEY_LENGTH, Operation
from tests.support.accounts import register

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
REFERENCE = re.compile(r"""\b(?:src|href|spec-url)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
ABSOLUTE_URL = re.compile(r"(?:https?:)?//[^\s\"'<>]+")
CONTENT_TYPES = {".js": ("text/javascript", "application/javascript"), ".css": ("text/css",)}
PUBLIC = [op for op in app_operations() if op.public]


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
    """docs/api.md: everything needs a bearer token except these (a presigned upload's URL is its own credential)."""
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
        ("post", "/api/auth/password-reset"),
        ("post", "/api/auth/password-reset/confirm"),
        ("put", "/api/uploads/direct/{key}"),
    }
    for method, path, op in operations(spec):
        if "security" in op:
            assert "401" in op["responses"], f"{method.upper()} {path}"


def test_the_presign_body_is_declared_so_swagger_can_send_it(spec: dict[str, Any]) -> None:
    body = spec["paths"]["/api/uploads/presign"]["post"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert body["required"] is True
    assert set(schema["required"]) == {"filename", "content_type", "size"}


def json_schema_keywords(node: Any, found: set[str]) -> set[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key != "properties":  # property names are not keywords
                found.add(key)
            json_schema_keywords(value if key != "properties" else list(value.values()), found)
    elif isinstance(node, list):
        for item in node:
            json_schema_keywords(item, found)
    return found


def test_bounds_use_json_schema_keywords_not_pydantic_ones(spec: dict[str, Any]) -> None:
    keywords = json_schema_keywords(spec["components"]["schemas"], set())
    assert not keywords & {"gt", "ge", "lt", "le"}, keywords & {"gt", "ge", "lt", "le"}
    hours = spec["components"]["schemas"]["ProposalBody"]["properties"]["estimated_hours"]
    assert (hours["exclusiveMinimum"], hours["maximum"]) == (0, 100000)


def test_the_description_says_how_to_get_a_token_and_use_authorize(spec: dict[str, Any]) -> None:
    description = spec["info"]["description"]
    for step in ("/api/auth/register", "/api/auth/login", "access_token", "Authorize", "/api/auth/refresh"):
        assert step in description, step


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


def declared(spec: dict[str, Any], op: Operation) -> dict[str, Any]:
    document: dict[str, Any] = spec["paths"][op.path][op.method.lower()]
    return document


def resolved(spec: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """A parameter or header object, following its `$ref` into components."""
    if "$ref" not in item:
        return item
    _, section, kind, name = item["$ref"].split("/")
    assert section == "components", item
    found: dict[str, Any] = spec["components"][kind][name]
    return found


def header_parameters(spec: dict[str, Any], op: Operation) -> dict[str, dict[str, Any]]:
    params = [resolved(spec, p) for p in declared(spec, op).get("parameters", [])]
    return {p["name"]: p for p in params if p["in"] == "header"}


def response_headers(spec: dict[str, Any], op: Operation, status: int) -> set[str]:
    response = declared(spec, op)["responses"].get(str(status))
    return set(response.get("headers", {})) if response else set()


def statuses(spec: dict[str, Any], op: Operation) -> set[int]:
    return {int(status) for status in declared(spec, op)["responses"]}


def test_idempotency_key_is_declared_on_the_posts_that_take_one(spec: dict[str, Any]) -> None:
    """The router replays a key on a signed-in POST with a buffered body; docs/api.md names the POSTs without one."""
    for op in PUBLIC:
        takes_key = op.method == "POST" and op.auth and op.idempotent
        where = f"{op.method} {op.path}"
        assert ("Idempotency-Key" in header_parameters(spec, op)) == takes_key, where
        if takes_key:
            assert {409, 422} <= statuses(spec, op), where  # idempotency_in_progress, idempotency_key_reused
    keyless = {op.path for op in PUBLIC if op.method == "POST" and "Idempotency-Key" not in header_parameters(spec, op)}
    assert keyless == {
        "/api/auth/register",
        "/api/auth/login",
        "/api/auth/refresh",
        "/api/auth/password-reset",
        "/api/auth/password-reset/confirm",
        "/api/uploads",
        "/api/uploads/presign",
        "/api/uploads/{upload_id}/complete",
    }


def test_if_match_is_declared_where_honoured(spec: dict[str, Any]) -> None:
    honouring = [op for op in PUBLIC if op.if_match]
    assert {op.method for op in honouring} == {"PUT", "PATCH", "DELETE"}
    for op in PUBLIC:
        where = f"{op.method} {op.path}"
        assert ("If-Match" in header_parameters(spec, op)) == op.if_match, where
        assert (412 in statuses(spec, op)) == op.if_match, where


def test_consistency_token_is_declared_on_the_reads_that_honour_it(spec: dict[str, Any]) -> None:
    reads = [op for op in PUBLIC if op.method == "GET"]
    assert {op.path for op in reads if not is_regional(op.path)} >= {"/", "/api", "/api/health/live"}
    for op in PUBLIC:
        honours = op.method == "GET" and is_regional(op.path)
        where = f"{op.method} {op.path}"
        assert ("X-Consistency-Token" in header_parameters(spec, op)) == honours, where
        if honours:
            assert 400 in statuses(spec, op), where


def test_response_headers_are_declared_where_sent(spec: dict[str, Any]) -> None:
    """Every response carries X-Consistency-Token; single resources an ETag; 429, and an edge's 503/504, Retry-After."""
    for op in PUBLIC:
        where = f"{op.method} {op.path}"
        success = response_headers(spec, op, op.status)
        assert "X-Consistency-Token" in success, where
        assert ("ETag" in success) == op.etag, where
        for status in statuses(spec, op) - {op.status}:
            assert "ETag" not in response_headers(spec, op, status), (where, status)
        if 429 in statuses(spec, op):
            assert "Retry-After" in response_headers(spec, op, 429), where
        forwarded = is_regional(op.path)  # an edge sends writes, and reads it is behind on, to the primary
        assert (504 in statuses(spec, op)) == forwarded, where
        other = {status for status, _, _ in op.answers}
        assert (503 in statuses(spec, op)) == (forwarded or 503 in op.errors or 503 in other), where
        for status in (503, 504):
            assert ("Retry-After" in response_headers(spec, op, status)) == forwarded, (where, status)
    assert not [op for op in PUBLIC if 405 in statuses(spec, op)]  # so no Allow header to declare


def test_answers_that_are_not_errors_are_documented_as_sent(spec: dict[str, Any]) -> None:
    """Not ready is the readiness body with its failing checks, not the error shape; S3 content is a redirect."""
    ready = spec["paths"]["/api/health/ready"]["get"]["responses"]
    assert ready["503"]["content"] == ready["200"]["content"]
    redirect = spec["paths"]["/api/uploads/{upload_id}/content"]["get"]["responses"]["307"]
    assert redirect["headers"] == {"Location": {"$ref": "#/components/headers/Location"}}
    assert "content" not in redirect


def test_header_definitions_are_shared_components(spec: dict[str, Any]) -> None:
    parameters, headers = spec["components"]["parameters"], spec["components"]["headers"]
    assert {p["name"] for p in parameters.values()} == {"Idempotency-Key", "If-Match", "X-Consistency-Token"}
    assert set(headers) == {"ETag", "Retry-After", "X-Consistency-Token"}
    for item in [*parameters.values(), *headers.values()]:
        assert item["description"].strip() and item["schema"]
    for op in PUBLIC:
        for param in declared(spec, op).get("parameters", []):
            assert ("$ref" in param) == (param.get("in") not in ("path", "query")), (op.path, param)
        for response in declared(spec, op)["responses"].values():
            assert all("$ref" in header for header in response.get("headers", {}).values()), op.path
    assert parameters["Idempotency-Key"]["schema"]["maxLength"] == MAX_KEY_LENGTH


@pytest.mark.parametrize("token", ["0", "1", "007", "999999999999999999", "", "abc", "-1", "1.0", "1" * 19, "²"])
def test_consistency_token_schema_matches_what_a_read_accepts(
    spec: dict[str, Any], client: TestClient, token: str
) -> None:
    """A token the schema allows is served (if not ahead of the log); any other gets 400."""
    schema = spec["components"]["parameters"]["X-Consistency-Token"]["schema"]
    user = register(client, "client", "Ann")
    position = int(client.get("/api/auth/me", headers=user.headers).headers["x-consistency-token"])
    headers = {**user.headers, "X-Consistency-Token": token}
    response = client.get("/api/auth/me", headers=[(k.encode(), v.encode("latin-1")) for k, v in headers.items()])
    allowed = re.fullmatch(schema["pattern"], token) is not None
    assert allowed == (token.isascii() and token.isdigit() and len(token) <= 18)
    if allowed and int(token) <= position:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 400, response.text


@pytest.mark.parametrize("length", [1, MAX_KEY_LENGTH, MAX_KEY_LENGTH + 1])
def test_idempotency_key_schema_matches_what_a_post_accepts(
    spec: dict[str, Any], client: TestClient, length: int
) -> None:
    schema = spec["components"]["parameters"]["Idempotency-Key"]["schema"]
    """A key the schema allows reaches the handler (which refuses this refresh token); any other gets 422."""
    user = register(client, "client", "Ann")
    response = client.post(
        "/api/auth/logout", json={"refresh_token": "x"}, headers={**user.headers, "Idempotency-Key": "k" * length}
    )
    allowed = schema["minLength"] <= length <= schema["maxLength"]
    assert response.status_code == (401 if allowed else 422), response.text


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
