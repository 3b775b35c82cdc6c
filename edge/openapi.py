"""OpenAPI 3.1 from the operation list and the pydantic models (apispec assembles the document)."""

from __future__ import annotations

import re
from typing import Any

from apispec import APISpec
from pydantic import BaseModel

from edge.routes.health import app_version
from edge.routing import Operation
from edge.schemas import ErrorBody

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
    503: "Unavailable",
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
    return implied


def _operation(spec: APISpec, op: Operation) -> dict[str, Any]:
    doc: dict[str, Any] = {"summary": op.summary, "tags": [op.tag], "operationId": op.handler.__name__ + "_" + op.tag}
    params = [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in PATH_PARAM.findall(op.path)
    ]
    if op.query is not None:
        params += _query_parameters(op.query)
    if params:
        doc["parameters"] = params
    if op.multipart:
        doc["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": UPLOAD_FORM}}}
    if op.body is not None:
        doc["requestBody"] = {"required": True, "content": {"application/json": {"schema": _register(spec, op.body)}}}
    ok: dict[str, Any] = {"description": "Success"}
    if op.response is not None:
        ok["content"] = {"application/json": {"schema": _register(spec, op.response, "serialization")}}
    responses: dict[str, Any] = {str(op.status): ok}
    error_ref = _register(spec, ErrorBody, "serialization")
    for status in sorted(set(op.errors) | implied_errors(op)):
        responses[str(status)] = {
            "description": REASONS.get(status, "Error"),
            "content": {"application/json": {"schema": error_ref}},
        }
    doc["responses"] = responses
    if op.auth:
        doc["security"] = [{"bearer": []}]
    return doc


def build_spec(operations: list[Operation], title: str) -> dict[str, Any]:
    spec = APISpec(
        title=title,
        version=app_version(),
        openapi_version="3.1.0",
        info={"description": "MegiLance freelancing marketplace API (edge-replicated CQRS on libSQL)."},
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    by_path: dict[str, dict[str, Any]] = {}
    for op in operations:
        if op.public:
            by_path.setdefault(op.path, {})[op.method.lower()] = _operation(spec, op)
    for path, ops in by_path.items():
        spec.path(path=path, operations=ops)
    return spec.to_dict()
