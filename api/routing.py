"""Operations: one declaration per endpoint gives the route, its input parsing and its OpenAPI entry."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
import structlog
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route, Router
from starlette.types import Receive, Scope, Send

from api.auth import authenticate
from api.calls import HandedHandler, WriterLink
from api.errors import error_for
from api.responses import error_response
from api.scope import RESPONDED_KEY
from core import idempotency
from core.errors import BadRequest, Conflict, DomainError, Forbidden, UnsupportedMediaType, ValidationFailed
from core.idempotency import Claim
from core.tokens import Claims
from node.runtime import Runtime

log = structlog.get_logger("idempotency")

MAX_JSON_DEPTH = 32
# Items and members in one body; the widest valid body (50 milestones) holds about 200. Validation costs about
# 1 µs a value and a 422 lists every unknown field: 1 MB of them took 300 ms and answered 4.8 MB.
MAX_JSON_VALUES = 1000
MAX_REMEMBERED_QUERIES = 1024  # per operation
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(slots=True)
class Call:
    """One parsed request, as handlers see it."""

    request: Request
    runtime: Runtime
    principal: Claims | None
    body: Any = None
    query: Any = None
    path: dict[str, str] = field(default_factory=dict)
    idempotency: Claim | None = None

    @property
    def user(self) -> Claims:
        if self.principal is None:  # only reachable on a mis-declared operation
            raise RuntimeError("operation declared without auth")
        return self.principal


Handler = Callable[[Call], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    auth: bool = True
    roles: frozenset[str] | None = None
    errors: tuple[int, ...] = ()
    public: bool = True
    ip_limited: bool = False  # counted against RATE_LIMIT_AUTH_PER_MINUTE per client IP, before any parsing
    # Streaming bodies (uploads) are not buffered for an Idempotency-Key fingerprint, nor held to the empty
    # body of other writes without a body model; their handlers read the body and stay safe to retry on
    # their own. `multipart` documents a `file` form field in the OpenAPI document.
    idempotent: bool = True
    multipart: bool = False
    reads_body: type[BaseModel] | None = None  # a JSON body such a handler reads itself: documented, not parsed here
    if_match: bool = False  # the handler passes If-Match to its command: 412 when stale
    etag: bool = False  # the success response carries the resource's ETag
    # Answers that are neither the success nor an error: (status, description, body model or None).
    answers: tuple[tuple[int, str, type[BaseModel] | None], ...] = ()

    @property
    def takes_idempotency_key(self) -> bool:
        """A signed-in POST with a buffered body: a repeated Idempotency-Key replays the first response."""
        return self.idempotent and self.auth and self.method == "POST"

    @property
    def takes_no_body(self) -> bool:
        """A write without a body model (and no streamed body): only no bytes or `{}` are accepted."""
        return self.body is None and self.idempotent and self.method in WRITE_METHODS


def validation_errors(exc: ValidationError, where: str) -> list[dict[str, Any]]:
    return [{"loc": [where, *err["loc"]], "msg": err["msg"]} for err in exc.errors(include_url=False)]


def too_big(value: Any) -> str | None:
    """Why a parsed body is refused before validation (deeper than `MAX_JSON_DEPTH`, or more than
    `MAX_JSON_VALUES` array items and object members), if it is; the walk stops at the first excess."""
    stack = [(value, 1)]
    count = 0
    while stack:
        item, level = stack.pop()
        if level > MAX_JSON_DEPTH:
            return f"The body nests deeper than {MAX_JSON_DEPTH} levels"
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        count += len(children)
        if count > MAX_JSON_VALUES:
            return f"The body holds more than {MAX_JSON_VALUES} values (array items and object members)"
        stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return None


# C0 controls but tab, newline and carriage return, and DEL: no text field takes them (a NUL cuts strings short
# in C-based consumers, an ESC sequence repaints a terminal). Raw ones are already invalid JSON, so a body can
# only carry them as escapes (or a raw DEL): the byte test below is a cheap filter before a full scan.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
CONTROL_HINTS = (b"\\u00", b"\\b", b"\\f", b"\x7f")


# Passwords are secrets compared as given: any character an account was made with must still sign it in.
SECRET_FIELDS = frozenset({"password", "current_password", "new_password"})


def control_character_at(value: Any, path: tuple[str | int, ...] = ()) -> tuple[str | int, ...] | None:
    """Where in a parsed body a string (not a password) holds a control character (`CONTROL`), if anywhere."""
    if isinstance(value, str):
        return path if CONTROL.search(value) else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        if key in SECRET_FIELDS:
            continue
        found = control_character_at(child, (*path, key))
        if found is not None:
            return found
    return None


def require_json(request: Request) -> None:
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise UnsupportedMediaType("Send the body as application/json")


M = TypeVar("M", bound=BaseModel)


def validate_json(model: type[M], raw: bytes | bytearray) -> M:
    """A JSON object body into `model`: invalid JSON 400, not an object or invalid fields 422, too deep or wide 400."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"The body is not valid JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise ValidationFailed(
            "The body must be a JSON object", errors=[{"loc": ["body"], "msg": "expected an object"}]
        )
    if (why := too_big(data)) is not None:
        raise BadRequest(why)
    if any(hint in raw for hint in CONTROL_HINTS) and (where := control_character_at(data)) is not None:
        raise ValidationFailed(
            "Text must not contain control characters (tab, newline and carriage return are allowed)",
            errors=[{"loc": ["body", *where], "msg": "contains a control character"}],
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed("The request body is invalid", errors=validation_errors(exc, "body")) from exc


async def parse_body(model: type[BaseModel], request: Request) -> BaseModel:
    require_json(request)
    return validate_json(model, await request.body())


class NoBody(BaseModel):
    """The body a write without a body model accepts, if any: the empty object."""

    model_config = ConfigDict(extra="forbid", frozen=True)


async def require_no_body(request: Request) -> None:
    """No bytes, whatever the content type; else the JSON object `{}` (415, 400 and 422 as for other bodies)."""
    raw = await request.body()
    if raw:
        require_json(request)
        validate_json(NoBody, raw)


def parse_query(model: type[BaseModel], request: Request) -> BaseModel:
    """The query as the model's fields; a parameter given twice is refused (one of its values would be dropped)."""
    items = request.query_params.multi_items()
    params = dict(items)
    if len(params) != len(items):
        names = [name for name, seen in Counter(key for key, _ in items).items() if seen > 1]
        errors = [{"loc": ["query", name], "msg": "given more than once"} for name in names]
        raise ValidationFailed("The query parameters are invalid", errors=errors)
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise ValidationFailed("The query parameters are invalid", errors=validation_errors(exc, "query")) from exc


def endpoint(
    op: Operation, runtime: Runtime, link: WriterLink | None = None
) -> Callable[[Request], Awaitable[Response]]:
    """The operation's request → response function: limits, authentication, role check, parsing, handler.

    With `link` (a reader worker), a write runs its handler in worker 0: handed there once parsed and
    validated here, or relayed as it came when its body streams or its address limit counts before parsing.
    """
    # Frozen query models are shared between requests with the same query string: a board or search polled
    # by many clients is parsed and validated once (bounded; invalid strings raise before they are kept).
    remembered: dict[bytes, BaseModel] = {}
    shareable = op.query is not None and bool(op.query.model_config.get("frozen"))
    no_body = op.takes_no_body
    keyed = op.takes_idempotency_key
    handed = link is not None and op.method in WRITE_METHODS
    relayed = handed and (op.ip_limited or not op.idempotent)
    key = (op.method, op.path)

    def parse(request: Request) -> BaseModel:
        assert op.query is not None
        query = parse_query(op.query, request)
        cursor = getattr(query, "cursor", None)
        if isinstance(cursor, str):  # lists take only the cursors they sealed (node.cursors)
            query = query.model_copy(update={"cursor": runtime.cursors.open(cursor)})
        return query

    def parsed_query(request: Request) -> BaseModel:
        if not shareable:
            return parse(request)
        raw: bytes = request.scope["query_string"]
        query = remembered.get(raw)
        if query is None:
            query = parse(request)
            if len(remembered) >= MAX_REMEMBERED_QUERIES:
                remembered.clear()
            remembered[raw] = query
        return query

    async def run(request: Request) -> Response:
        if relayed:
            assert link is not None
            return link.relay()
        if op.ip_limited:
            limits = request.app.state.limits
            limits.hit(limits.auth, "auth-ip", limits.client_ip(request))
        principal = await authenticate(request, runtime) if op.auth else None
        if op.roles is not None and (principal is None or principal.role not in op.roles):
            raise Forbidden(f"This action needs the role {' or '.join(sorted(op.roles))}")
        query = parsed_query(request) if op.query else None
        body = await parse_body(op.body, request) if op.body else None
        if no_body:
            await require_no_body(request)
        if handed:
            assert link is not None
            return await link.hand(key, request, principal, body, query)
        call = Call(request, runtime, principal, body, query, request.path_params)
        if keyed and "idempotency-key" in request.headers:
            return await idempotent(call, op)
        return await op.handler(call)

    run.__name__ = op.handler.__name__
    return run


def handed_endpoint(op: Operation, runtime: Runtime) -> HandedHandler:
    """Worker 0's half of a write a reader worker validated (`endpoint` with a link): the handler, as for its own."""
    keyed = op.takes_idempotency_key

    async def run(request: Request, principal: Claims | None, body: Any, query: Any) -> Response:
        if principal is not None:  # a session ended since the reader let the request in is refused here too
            runtime.sessions.check(principal)
        call = Call(request, runtime, principal, body, query, request.path_params)
        if keyed and "idempotency-key" in request.headers:
            return await idempotent(call, op)
        return await op.handler(call)

    return run


MAX_KEY_LENGTH = 255


def fingerprint(call: Call, op: Operation) -> str:
    """Method, path and the validated body as canonical JSON: the same request however its JSON was written."""
    body = b"" if call.body is None else orjson.dumps(call.body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(b"%s %s\n%s" % (op.method.encode(), call.request.url.path.encode(), body)).hexdigest()


async def idempotent(call: Call, op: Operation) -> Response:
    """Replay the first response for a repeated key; refuse the key with a different request."""
    key = call.request.headers["idempotency-key"].strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValidationFailed(
            "Idempotency-Key must be 1 to 255 characters",
            errors=[{"loc": ["header", "Idempotency-Key"], "msg": "invalid length"}],
        )
    digest = fingerprint(call, op)
    runtime, user = call.runtime, call.user.sub
    stored = await runtime.read(lambda conn: idempotency.lookup(conn, user, key, runtime.clock.now()))
    if stored is not None:
        if stored.fingerprint != digest:
            raise ValidationFailed("This Idempotency-Key was used for a different request", "idempotency_key_reused")
        if stored.status is None and stored.boot is not None and stored.boot != runtime.boot:
            return answer_lost(stored)
        if stored.lost:
            raise Conflict(
                "The request with this Idempotency-Key was applied, but its answer was not kept: "
                "read the resource back instead of retrying"
            )
        if stored.status is None or stored.body is None:
            raise Conflict("A request with this Idempotency-Key is still being processed", "idempotency_in_progress")
        headers = {"X-Consistency-Token": str(stored.position), "Idempotent-Replayed": "true"}
        if stored.etag is not None:
            headers["ETag"] = stored.etag
        return Response(stored.body, status_code=stored.status, media_type="application/json", headers=headers)
    claim = call.idempotency = idempotency.Claim(user, key, digest)
    response = await op.handler(call)
    if call.idempotency is None and 200 <= response.status_code < 300:  # the claim was taken by a command
        position = int(response.headers.get("x-consistency-token", "0"))
        body, etag = bytes(response.body), response.headers.get("etag")
        try:
            await runtime.write(
                lambda conn: idempotency.complete(conn, claim, response.status_code, body, position, etag)
            )
        except Exception as exc:  # noqa: BLE001 - the command committed: its answer stands, only the replay is lost
            # A retry with this key is refused (409), never applied twice: `idempotency.lookup` tells how.
            log.error("idempotency_completion_failed", key=key, user_id=user, error=str(exc))
    return response


# Where each stream's resource is read back (the commands that take an Idempotency-Key and start a stream).
RESOURCE_PATHS = {
    "project": "/api/projects/",
    "proposal": "/api/proposals/",
    "contract": "/api/contracts/",
    "payment": "/api/payments/",
    "portfolio_item": "/api/portfolio/",
    "user": "/api/users/",
}


def answer_lost(stored: idempotency.Stored) -> Response:
    """A request applied by a process that stopped before storing its answer: say so at once, and where to look.

    The command's outcome was committed with its claim: the position (sent as X-Consistency-Token, so a read
    with it sees the write) and the resource its first event belongs to (as Location, when it has a URL)."""
    headers = {"X-Consistency-Token": str(stored.position or 0)}
    where = "the resource"
    if stored.resource is not None and stored.resource[0] in RESOURCE_PATHS:
        headers["Location"] = RESOURCE_PATHS[stored.resource[0]] + stored.resource[1]
        where = headers["Location"]
    detail = (
        "The request with this Idempotency-Key was applied, but the server restarted before its answer was kept: "
        f"read {where} back (with this X-Consistency-Token) instead of retrying"
    )
    return error_response(409, detail, "idempotency_answer_lost", headers=headers)


def group_key(path: str) -> str:
    """The first two segments of a path (`/api/projects/{id}/accept` → `/api/projects`): a route's group."""
    second = path.find("/", 1)
    end = -1 if second < 0 else path.find("/", second + 1)
    return path if end < 0 else path[:end]


class Endpoint:
    """A route's ASGI app: the request goes to `run`, its response goes out; errors go up to the router."""

    __slots__ = ("run",)

    def __init__(self, run: Callable[[Request], Awaitable[Response]]) -> None:
        self.run = run

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.run(Request(scope, receive, send))
        await response(scope, receive, send)


class IndexedRouter(Router):
    """Starlette's router with two shortcuts, and the one place domain and HTTP errors become responses.

    Starlette tries routes one by one with a regex each; with sixty routes a request for a late one
    paid for every miss before it. A path without parameters is looked up in a dict (path, method);
    any other is matched only against the routes of its group (the first two path segments), each
    group an ordinary Router, so 404, 405 and trailing-slash redirects behave as before. Anything
    else (the static files mount, unknown prefixes) falls back to the full list. A 405's Allow names
    every method of the path (with one route per method, Starlette's names only the first route's).
    """

    def __init__(self, routes: list[BaseRoute], **kwargs: Any) -> None:
        super().__init__(routes=routes, **kwargs)
        buckets: dict[str, list[Route]] = {}
        self.exact: dict[tuple[str, str], Route] = {}
        for route in routes:
            if isinstance(route, Route):
                buckets.setdefault(group_key(route.path), []).append(route)
                if not route.param_convertors:
                    for method in route.methods or ():
                        self.exact[(route.path, method)] = route
        self.groups = {key: Router(routes=list(group)) for key, group in buckets.items()}
        # Per group, the routes with parameters, tried in order before the group's Router (which answers
        # the rest: 405 for a known path with another method, 404, trailing-slash redirects).
        self.patterns = {key: [r for r in group if r.param_convertors] for key, group in buckets.items()}
        # `/static/prefix/{name}` routes (the resource reads) by (prefix, method), when no other route with
        # parameters could match the same path: a dict lookup instead of regexes.
        self.tails: dict[tuple[str, str], tuple[Route, str]] = {}
        for group in self.patterns.values():
            for route in group:
                prefix, _, last = route.path.rpartition("/")
                name = last[1:-1]
                if "{" in prefix or last != "{" + name + "}" or not name.isidentifier():
                    continue
                probe = {"type": "http", "path": prefix + "/probe", "root_path": ""}
                for method in route.methods or ():
                    rivals = [
                        other
                        for other in group
                        if other is not route and other.matches({**probe, "method": method})[0] is Match.FULL
                    ]
                    if not rivals:
                        self.tails[(prefix, method)] = (route, name)

    def resolve(self, scope: Scope) -> tuple[Route, Scope] | None:
        """The route (and its scope additions) that fully matches, by the shortcuts; None: ask Starlette."""
        if scope.get("root_path"):  # behind a root path (uvicorn --root-path) the full matching strips it
            return None
        path: str = scope["path"]
        method: str = scope["method"]
        route = self.exact.get((path, method))
        if route is not None:
            return route, {"endpoint": route.endpoint, "path_params": {}}
        head, _, tail = path.rpartition("/")
        hit = self.tails.get((head, method)) if tail else None
        if hit is not None:
            return hit[0], {"endpoint": hit[0].endpoint, "path_params": {hit[1]: tail}}
        for route in self.patterns.get(group_key(path), ()):
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                return route, child_scope
        return None

    def allowed(self, scope: Scope) -> str:
        """Every method some route takes at this path, for a 405's Allow (each route knows only its own)."""
        methods: set[str] = set()
        for route in self.routes:
            if isinstance(route, Route) and route.methods and route.matches(scope)[0] is not Match.NONE:
                methods |= route.methods
        return ", ".join(sorted(methods))

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().app(scope, receive, send)
            return
        try:
            found = self.resolve(scope)
            if found is not None:
                route, child_scope = found
                scope.update(child_scope, router=self, route=route)
                await route.app(scope, receive, send)
                return
            group = self.groups.get(group_key(scope["path"]))
            await (super().app if group is None else group.app)(scope, receive, send)
        except (DomainError, HTTPException) as exc:
            if scope.get(RESPONDED_KEY):  # a response already under way cannot be replaced
                raise
            if isinstance(exc, HTTPException) and exc.status_code == 405:
                exc = HTTPException(405, headers={"Allow": self.allowed(scope)})
            response = error_for(exc)
            assert response is not None
            await response(scope, receive, send)


def routes(operations: list[Operation], runtime: Runtime, link: WriterLink | None = None) -> list[Route]:
    return [
        Route(op.path, Endpoint(endpoint(op, runtime, link)), methods=[op.method], name=op.handler.__name__)
        for op in operations
    ]


def handed_endpoints(operations: list[Operation], runtime: Runtime) -> dict[tuple[str, str], HandedHandler]:
    """Worker 0's handlers for the writes reader workers hand it, by (method, path template)."""
    return {
        (op.method, op.path): handed_endpoint(op, runtime)
        for op in operations
        if op.method in WRITE_METHODS and op.idempotent and not op.ip_limited
    }
