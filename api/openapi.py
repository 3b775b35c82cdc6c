"""OpenAPI 3.1 from the operation list and the pydantic models (apispec assembles the document)."""

from __future__ import annotations

import re
from typing import Any

from apispec import APISpec
from pydantic import BaseModel

from api.forwarding import is_regional
from api.routing import MAX_KEY_LENGTH, Operation
from api.schemas import ErrorBody
from api.version import app_version

REF = "#/components/schemas/{model}"
UPLOAD_FORM = {"type": "object", "required": ["file"], "properties": {"file": {"type": "string", "format": "binary"}}}
PATH_PARAM = re.compile(r"{([a-z_]+)}")
REASONS = {
    400: "Malformed request",
    401: "Not signed in or token invalid",
    403: "Wrong role",
    404: "Not found",
    409: "Conflict with current state",
    412: "If-Match does not match",
    413: "Too large",
    415: "Wrong content type",
    431: "Request headers too large",
    422: "Validation failed",
    429: "Rate limited",
    503: "Unavailable: a dependency, or (from an edge) the primary region, cannot be reached; nothing was done",
    504: "The primary region did not answer the edge; the request may have been applied",
}
TOKEN = {"type": "string", "pattern": "^[0-9]{1,18}$"}
DESCRIPTION = """MegiLance freelancing marketplace API (edge-replicated CQRS on libSQL).

**Signing in.** Create an account with `POST /api/auth/register` (or sign in with `POST /api/auth/login`): the
answer holds an `access_token` (valid 30 minutes) and a `refresh_token`. Press **Authorize** above, paste the
`access_token` alone (without `Bearer `) and confirm: every call made from this page then sends
`Authorization: Bearer <access_token>`. When it expires, trade the refresh token at `POST /api/auth/refresh`
for a new pair.

**Reading your writes.** Every answer carries `X-Consistency-Token`; send it back on a later read to see at least
everything up to that write, in any region."""
# Request headers (components/parameters) and response headers (components/headers), by name.
PARAMETERS: dict[str, dict[str, Any]] = {
    "Idempotency-Key": {
        "description": "1-255 characters; a retry with this key and body gets the first answer (24 h); other body: 422",
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": "\\S"},
    },
    "If-Match": {
        "description": 'Apply only to this version: an ETag, a list of them (`"2", "3"`) or `*`; else 412',
        "schema": {"type": "string"},
    },
    "X-Consistency-Token": {
        "description": "A position from an earlier response: the read sees all up to it (400 if malformed or ahead)",
        "schema": TOKEN,
    },
}
HEADERS: dict[str, dict[str, Any]] = {
    "ETag": {
        "description": 'The version of the resource (`"3"`; an upload\'s content: its SHA-256), for If-Match',
        "required": True,
        "schema": {"type": "string", "pattern": '^"[^"]*"$'},
    },
    "X-Consistency-Token": {
        "description": "The event-log position this answer is at (a write: its own); send it on later reads",
        "required": True,
        "schema": TOKEN,
    },
    "Retry-After": {
        "description": "Seconds to wait before retrying (on a 429; on a 503/504 from an edge)",
        "schema": {"type": "integer", "minimum": 0},
    },
}


def _register(spec: APISpec, model: type[BaseModel], mode: str = "validation") -> dict[str, str]:
    schema = model.model_json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
    for name, definition in schema.pop("$defs", {}).items():
        if name not in spec.components.schemas:
            spec.components.schema(name, definition)
    name = model.__name__
    if name not in spec.components.schemas:
        spec.components.schema(name, schema)
    return {"$ref": REF.format(model=name)}


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    params = []
    for name, raw in schema.get("properties", {}).items():
        prop = {k: v for k, v in raw.items() if k != "title"}
        params.append({"name": name, "in": "query", "required": name in schema.get("required", []), "schema": prop})
    return params


def honours_token(op: Operation) -> bool:
    """A read that waits for the position an X-Consistency-Token names (400 when it is not one)."""
    return op.method == "GET" and is_regional(op.path)


def implied_errors(op: Operation) -> set[int]:
    """Statuses every operation of a kind can answer, whatever its own list says."""
    implied = {431}
    if op.auth:
        implied |= {401}
    if op.roles is not None:
        implied |= {403}
    if op.multipart:
        implied |= {400, 413, 415, 422}
    if op.body is not None or op.takes_no_body:
        implied |= {400, 413, 415, 422}
    if op.query is not None:
        implied |= {422}
    if op.ip_limited or (op.auth and op.method != "GET"):
        implied |= {429}
    if is_regional(op.path):  # an edge sends it to the primary (writes; reads it is behind on)
        implied |= {503, 504}
    if honours_token(op):
        implied |= {400}
    if op.takes_idempotency_key:
        implied |= {409, 422}  # idempotency_in_progress, idempotency_key_reused
    if op.if_match:
        implied |= {412}
    return implied


def _operation(spec: APISpec, op: Operation) -> dict[str, Any]:
    doc: dict[str, Any] = {"summary": op.summary, "tags": [op.tag], "operationId": op.handler.__name__ + "_" + op.tag}
    params: list[dict[str, Any] | str] = [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in PATH_PARAM.findall(op.path)
    ]
    if op.query is not None:
        params += _query_parameters(op.query)
    honoured = {
        "Idempotency-Key": op.takes_idempotency_key,
        "If-Match": op.if_match,
        "X-Consistency-Token": honours_token(op),
    }
    params += [name for name, yes in honoured.items() if yes]  # apispec makes component names into $refs
    if params:
        doc["parameters"] = params
    if op.multipart:
        doc["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": UPLOAD_FORM}}}
    body = op.body or op.reads_body
    if body is not None:
        doc["requestBody"] = {"required": True, "content": {"application/json": {"schema": _register(spec, body)}}}
    carried = ["X-Consistency-Token", "ETag"] if op.etag else ["X-Consistency-Token"]
    ok: dict[str, Any] = {"description": "Success", "headers": _headers(*carried)}
    if op.response is not None:
        ok["content"] = {"application/json": {"schema": _register(spec, op.response, "serialization")}}
    responses: dict[str, Any] = {str(op.status): ok}
    for status, description, model in op.answers:
        other: dict[str, Any] = {"description": description}
        if 300 <= status < 400:
            other["headers"] = _headers("Location")
        if model is not None:
            other["content"] = {"application/json": {"schema": _register(spec, model, "serialization")}}
        responses[str(status)] = other
    error_ref = _register(spec, ErrorBody, "serialization")
    for status in sorted(set(op.errors) | implied_errors(op)):
        responses[str(status)] = {
            "description": REASONS.get(status, "Error"),
            "content": {"application/json": {"schema": error_ref}},
        }
        if status == 429 or (status in (503, 504) and is_regional(op.path)):
            responses[str(status)]["headers"] = _headers("Retry-After")
    doc["responses"] = responses
    if op.auth:
        doc["security"] = [{"bearer": []}]
    return doc


def _headers(*names: str) -> dict[str, str]:
    """Response headers by component name (apispec makes names into $refs)."""
    return {name: name for name in names}


def build_spec(operations: list[Operation], title: str) -> dict[str, Any]:
    spec = APISpec(
        title=title,
        version=app_version(),
        openapi_version="3.1.0",
        info={"description": DESCRIPTION},
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    for name, parameter in PARAMETERS.items():
        spec.components.parameter(name, "header", {"name": name, **parameter})
    for name, header in HEADERS.items():
        spec.components.header(name, header)
    by_path: dict[str, dict[str, Any]] = {}
    for op in operations:
        if op.public:
            by_path.setdefault(op.path, {})[op.method.lower()] = _operation(spec, op)
    for path, ops in by_path.items():
        spec.path(path=path, operations=ops)
    return spec.to_dict()
