"""Property-based contract test: schemathesis generates requests from /api/openapi.json for every public operation.

Each operation runs as a client, a freelancer and an admin (tokens sent as `Authorization`), over the ASGI
transport (no sockets). Checks: no 5xx, every status code is documented, every documented body matches its schema,
every declared response header is sent and matches its schema, and the ETag and Retry-After sent are declared.
Header parameters (Idempotency-Key, If-Match, X-Consistency-Token) are generated from their declarations.
Path parameters are sometimes real ids from a small seeded marketplace, so handlers get past 404.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.applications import Starlette
from starlette.testclient import TestClient

from api.app import create_app
from commands.users import RegisterUser
from core.ids import new_id
from core.passwords import Passwords
from node.runtime import open_primary, run_command_sync
from queries.registry import projection
from tests.conftest import make_settings

MAX_EXAMPLES = 25  # per operation and role, fuzzing phase (the examples and coverage phases add their own cases)
ROLES = ("client", "freelancer", "admin")
PASSWORD = "correct-horse-battery"
Json = dict[str, Any]
UNDECLARED_WATCH = ("etag", "retry-after")  # sent only by some responses: each one sent must be declared


def sent_headers_are_declared(ctx: Any, response: Any, case: schemathesis.Case[Any]) -> bool | None:
    """The reverse of response_headers_conformance: an ETag or Retry-After sent is declared on that response."""
    definition = case.operation.responses.find_by_status_code(response.status_code)
    declared = {name.lower() for name, _ in definition.headers.items()} if definition is not None else set()
    undeclared = [name for name in UNDECLARED_WATCH if name in response.headers and name not in declared]
    if undeclared:
        raise AssertionError(f"{case.operation.label} {response.status_code} sends undeclared {undeclared}")
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    response_headers_conformance,
    sent_headers_are_declared,
]


@dataclass(frozen=True)
class World:
    app: Starlette
    tokens: dict[str, str]  # role -> access token
    ids: dict[str, list[str]]  # path parameter name -> real ids to try


def _ok(response: Any, status: int = 200) -> Json:
    assert response.status_code == status, f"{response.status_code} {response.text[:500]}"
    body: Json = response.json() if response.content else {}
    return body


def seed(app: Starlette, data_dir: Path) -> World:
    """Users of every role and one marketplace path through the API: projects, proposals, a contract, a payment,
    a portfolio item, an upload."""
    settings = app.state.runtime.settings
    with asgi.get_client(cast(Any, app)) as http:  # starts the app's lifespan; schemathesis reuses it for every case
        auth: dict[str, str] = {}
        for role in ("client", "freelancer"):
            body = _ok(
                http.post(
                    "/api/auth/register",
                    json={"email": f"{role}@example.com", "password": PASSWORD, "name": role.title(), "role": role},
                ),
                201,
            )
            auth[role] = body["access_token"]
        bystander = _ok(
            http.post(
                "/api/auth/register",
                json={"email": "bystander@example.com", "password": PASSWORD, "name": "By", "role": "freelancer"},
            ),
            201,
        )
        hashed = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism).hash(
            PASSWORD
        )
        conn = open_primary(settings)
        try:
            command = RegisterUser(
                user_id=new_id(), email="admin@example.com", name="Admin", role="admin", password_hash=hashed
            )
            run_command_sync(conn, projection(), command, {"actor": "test"})
        finally:
            conn.close()
        auth["admin"] = _ok(http.post("/api/auth/login", json={"email": "admin@example.com", "password": PASSWORD}))[
            "access_token"
        ]

        def as_(role: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {auth[role]}"}

        def project(title: str) -> str:
            body = {
                "title": title,
                "description": "A project description that is long enough to pass.",
                "category": "web",
                "budget_type": "fixed",
                "budget_min": "100.00",
                "budget_max": "500.00",
                "experience_level": "expert",
                "estimated_duration": "1 month",
                "skills": ["python"],
            }
            return str(_ok(http.post("/api/projects", json=body, headers=as_("client")), 201)["id"])

        def propose(project_id: str, token: str) -> str:
            body = {
                "project_id": project_id,
                "cover_letter": "I have done this kind of work many times before, happily. " * 2,
                "estimated_hours": 10,
                "hourly_rate": "40.00",
                "availability": "immediate",
            }
            headers = {"Authorization": f"Bearer {token}"}
            return str(_ok(http.post("/api/proposals", json=body, headers=headers), 201)["id"])

        awarded, still_open = project("An awarded project"), project("A project still open")
        accepted = propose(awarded, auth["freelancer"])
        _ok(http.post(f"/api/proposals/{accepted}/accept", headers=as_("client")))
        submitted = propose(still_open, auth["freelancer"])
        other = propose(still_open, bystander["access_token"])
        freelancer_id = _ok(http.get("/api/auth/me", headers=as_("freelancer")))["id"]
        contract = _ok(
            http.post(
                "/api/contracts",
                json={"project_id": awarded, "freelancer_id": freelancer_id, "amount": "300.00"},
                headers=as_("client"),
            ),
            201,
        )["id"]
        item = _ok(
            http.post(
                "/api/portfolio",
                json={"title": "A site", "image_url": "https://example.com/a.png"},
                headers=as_("freelancer"),
            ),
            201,
        )["id"]
        payment = _ok(
            http.post("/api/payments", json={"contract_id": contract, "amount": "10.00"}, headers=as_("client")),
            201,
        )["id"]
        png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 300
        upload = _ok(
            http.post("/api/uploads", files={"file": ("a.png", png, "image/png")}, headers=as_("freelancer")), 201
        )["id"]
    ids = {
        "project_id": [awarded, still_open],
        "proposal_id": [accepted, submitted, other],
        "contract_id": [contract],
        "item_id": [item],
        "payment_id": [payment],
        "upload_id": [upload],
        "user_id": [bystander["user"]["id"]],  # never a caller: an admin PATCH may deactivate it
    }
    return World(app, auth, ids)


def served_spec() -> Json:
    """The document the app serves at /api/openapi.json (no lifespan needed: nothing is opened or written)."""
    app = create_app(make_settings(Path(tempfile.gettempdir()) / "megilance-openapi-unused"))
    response = TestClient(app).get("/api/openapi.json")
    assert response.status_code == 200, response.text
    spec: Json = response.json()
    return spec


SPEC = served_spec()
SEEDED_KINDS = ("project_id", "proposal_id", "contract_id", "item_id", "payment_id", "upload_id", "user_id")
schema = schemathesis.openapi.from_dict(SPEC)


REAL = "real-id-"  # a generated placeholder, replaced by a seeded id when the case is sent


@schema.hook
def before_generate_path_parameters(context: schemathesis.HookContext, strategy: st.SearchStrategy[Any]) -> Any:
    """Half the time a placeholder for a real id (cases are drawn at collection, before anything is seeded)."""
    operation = context.operation
    names = [p.name for p in operation.path_parameters] if operation is not None else []
    if not names or not all(name in SEEDED_KINDS for name in names):
        return strategy
    real = st.fixed_dictionaries({name: st.integers(0, 2).map(lambda i: f"{REAL}{i}") for name in names})
    return st.one_of(real, strategy)


def resolve_real_ids(case: schemathesis.Case[Any], ids: dict[str, list[str]]) -> None:
    for name, value in (case.path_parameters or {}).items():
        if isinstance(value, str) and value.startswith(REAL) and name in ids:
            choices = ids[name]
            case.path_parameters[name] = choices[int(value.removeprefix(REAL)) % len(choices)]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir = tmp_path_factory.mktemp("schemathesis")
    app = create_app(make_settings(data_dir))
    try:
        built = seed(app, data_dir)
        served = asgi.get_client(cast(Any, app)).get("/api/openapi.json")
        assert served.json() == SPEC  # the schema under test is exactly the one this app serves
        yield built
    finally:
        asgi.shutdown_lifespans()  # the writer and readers stop before the directory goes


@pytest.mark.parametrize("role", ROLES)
@schema.parametrize()
@hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
    database=None,
)
def test_openapi_contract(case: schemathesis.Case[Any], role: str, world: World) -> None:
    resolve_real_ids(case, world.ids)
    headers = {"Authorization": f"Bearer {world.tokens[role]}"}
    case.call_and_validate(app=world.app, headers=headers, checks=CHECKS)
