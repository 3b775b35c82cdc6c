"""Every response body against docs/api.md's field lists, fetched every way the API offers.

One world is built through the API (with a real in-process chain for the payment's confirmation); each
response is recorded under a label. The table `FETCHES` says, from docs/api.md, which shape and status each
label must have; `SAME` says which of them show one resource in one state and must be identical (body
and `ETag`): a write's own answer, its idempotent replay, the single GET and the list item.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.testclient import TestClient

from api.app import create_app
from core.chain import UsdcVerifier
from core.clock import FakeClock
from tests import chainkit as ck
from tests.conftest import make_settings
from tests.support.accounts import PASSWORD, User, make_admin, register
from tests.support.files import PNG
from tests.support.market import PROJECT
from tests.support.wallet import link, nonce_for, sign

Json = dict[str, Any]
Check = Callable[[Any], bool]

# -- docs/api.md's value formats ----------------------------------------------------------------------

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")  # `2026-11-23T10:00:00Z`: seconds, UTC, no offset
DATE = re.compile(r"\d{4}-\d\d-\d\d")
MONEY = re.compile(r"[0-9]+\.[0-9]{2,6}")  # a decimal string; the currency's decimals are checked per resource
PLACES = {"USD": (2, 2), "USDC": (2, 6)}  # at least two decimals, at most the currency's


def text(value: Any) -> bool:
    return isinstance(value, str)


def ident(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def boolean(value: Any) -> bool:
    return isinstance(value, bool)


def timestamp(value: Any) -> bool:
    if not (isinstance(value, str) and TIMESTAMP.fullmatch(value)):
        return False
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").year > 2000


def date(value: Any) -> bool:
    return isinstance(value, str) and DATE.fullmatch(value) is not None


def money(value: Any) -> bool:
    return isinstance(value, str) and MONEY.fullmatch(value) is not None


def cents(value: Any) -> bool:
    """Amounts without a currency of their own (budgets, rates) are kept in cents."""
    return money(value) and len(value.partition(".")[2]) == 2


def strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def address(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"0x[0-9a-fA-F]{40}", value) is not None


def tx_hash(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"0x[0-9a-f]{64}", value) is not None


def optional(check: Check) -> Check:
    return lambda value: value is None or check(value)


def one_of(*names: str) -> Check:
    return lambda value: value in names


def positive(value: Any) -> bool:
    return integer(value) and value > 0


# -- docs/api.md's shapes: every field named there, and nothing else ----------------------------------

Shape = dict[str, Any]  # field -> a Check, a nested Shape, or [Shape] for a list of objects

USER_PUBLIC: Shape = {
    "id": ident,
    "name": text,
    "role": one_of("client", "freelancer", "admin"),
    "bio": optional(text),
    "skills": strings,
    "hourly_rate": optional(cents),
    "location": optional(text),
    "profile_image_url": optional(text),
    "wallet_address": optional(address),
    "joined_at": timestamp,
}
NOTIFICATIONS: Shape = {
    "proposal_received": boolean,
    "proposal_decided": boolean,
    "contract_created": boolean,
    "payment_confirmed": boolean,
}
USER_PRIVATE: Shape = {**USER_PUBLIC, "email": text, "is_active": boolean, "notifications": NOTIFICATIONS}
TOKEN_PAIR: Shape = {
    "user": USER_PRIVATE,
    "access_token": ident,
    "refresh_token": ident,
    "token_type": one_of("bearer"),
    "expires_in": positive,
}
PARTY: Shape = {"id": ident, "name": text}
PROJECT_SHAPE: Shape = {
    "id": ident,
    "client_id": ident,
    "client": PARTY,
    "title": text,
    "description": text,
    "category": text,
    "budget_type": one_of("fixed", "hourly"),
    "budget_min": cents,
    "budget_max": cents,
    "experience_level": one_of("entry", "intermediate", "expert"),
    "estimated_duration": text,
    "skills": strings,
    "status": one_of("open", "in_progress", "completed", "cancelled", "closed"),
    "proposals_count": integer,
    "created_at": timestamp,
    "updated_at": timestamp,
}
PROPOSAL_SHAPE: Shape = {
    "id": ident,
    "project_id": ident,
    "freelancer_id": ident,
    "freelancer": PARTY,
    "cover_letter": text,
    "estimated_hours": positive,
    "hourly_rate": cents,
    "availability": one_of("immediate", "1-2_weeks", "1_month", "flexible"),
    "attachments": strings,
    "status": one_of("submitted", "accepted", "rejected", "withdrawn"),
    "created_at": timestamp,
    "updated_at": timestamp,
}
MILESTONE: Shape = {"title": text, "amount": money, "due_date": optional(date)}
CONTRACT_SHAPE: Shape = {
    "id": ident,
    "project_id": ident,
    "client_id": ident,
    "freelancer_id": ident,
    "client": PARTY,
    "freelancer": PARTY,
    "amount": money,
    "currency": one_of("USDC", "USD"),
    "platform_fee": money,
    "description": optional(text),
    "start_date": optional(date),
    "end_date": optional(date),
    "milestones": [MILESTONE],
    "terms": optional(text),
    "status": one_of("active", "completed", "cancelled", "disputed"),
    "amount_paid": money,
    "created_at": timestamp,
    "updated_at": timestamp,
}
PORTFOLIO_SHAPE: Shape = {
    "id": ident,
    "freelancer_id": ident,
    "title": text,
    "description": text,
    "image_url": text,
    "project_url": optional(text),
    "tags": strings,
    "created_at": timestamp,
    "updated_at": timestamp,
}
PAYMENT_SHAPE: Shape = {
    "id": ident,
    "contract_id": optional(ident),
    "from_user_id": ident,
    "to_user_id": ident,
    "amount": money,
    "currency": one_of("USDC", "USD"),
    "status": one_of("pending", "completed", "failed", "refunded"),
    "transaction_hash": optional(tx_hash),
    "description": optional(text),
    "created_at": timestamp,
    "updated_at": timestamp,
}
TOTALS: Shape = {
    "total_paid": money,
    "total_pending": money,
    "total_refunded": money,
    "currency": one_of("USDC", "USD"),
}
UPLOAD: Shape = {"id": ident, "url": text, "content_type": text, "size": positive, "sha256": re.compile("[0-9a-f]{64}")}
UPLOAD_META: Shape = {**UPLOAD, "created_at": timestamp}
PRESIGN: Shape = {
    "file_id": ident,
    "upload_url": text,
    "method": one_of("PUT", "POST"),
    "headers": lambda value: isinstance(value, dict) and all(map(text, value.values())),
    "expires_in": positive,
}
NONCE: Shape = {"message": text, "nonce": text, "expires_at": timestamp}
ROOT: Shape = {"name": text, "version": text, "docs": one_of("/api/docs")}
API_INFO: Shape = {"name": text, "version": text, "region": text, "role": one_of("primary", "edge")}
LIVE: Shape = {"status": one_of("ok")}
READY: Shape = {"status": one_of("ready"), "checks": lambda value: isinstance(value, dict)}
ERROR: Shape = {"detail": lambda value: isinstance(value, str) and bool(value), "error_type": text}
LOCATED: Shape = {"loc": lambda value: isinstance(value, list) and bool(value), "msg": text}
VALIDATION_ERROR: Shape = {**ERROR, "errors": lambda value: isinstance(value, list) and bool(value)}
NO_BODY = "no body"
# Money that belongs to a currency has at most its decimals: (shape, fields, nested lists whose `amount` counts).
CURRENCY_MONEY = {
    id(CONTRACT_SHAPE): ("amount", "platform_fee", "amount_paid", "milestones"),
    id(PAYMENT_SHAPE): ("amount",),
    id(TOTALS): ("total_paid", "total_pending", "total_refunded"),
}


def listing(item: Shape) -> Shape:
    """docs/api.md's list envelope."""
    return {"items": [item], "next_cursor": optional(ident)}


def problems(body: Any, shape: Shape, where: str = "") -> list[str]:
    """What is wrong with `body` against `shape`: missing fields, undocumented fields, values of the wrong form."""
    if not isinstance(body, dict):
        return [f"{where or 'body'}: not an object: {body!r}"]
    found = [f"{where}{name}: missing" for name in shape if name not in body]
    found += [f"{where}{name}: not in docs/api.md ({body[name]!r})" for name in body if name not in shape]
    for name, check in shape.items():
        if name not in body:
            continue
        value, at = body[name], f"{where}{name}"
        if isinstance(check, dict):
            found += problems(value, check, at + ".")
        elif isinstance(check, list):
            if not isinstance(value, list):
                found.append(f"{at}: not a list: {value!r}")
            else:
                found += [p for i, item in enumerate(value) for p in problems(item, check[0], f"{at}[{i}].")]
        elif isinstance(check, re.Pattern):
            if not (isinstance(value, str) and check.fullmatch(value)):
                found.append(f"{at}: {value!r}")
        elif not check(value):
            found.append(f"{at}: {value!r}")
    return found + currency_problems(body, shape)


def currency_problems(body: Json, shape: Shape) -> list[str]:
    fields = CURRENCY_MONEY.get(id(shape), ())
    low, high = PLACES.get(body.get("currency", ""), (2, 6))
    amounts = [(f, body.get(f)) for f in fields if f != "milestones"]
    amounts += [(f"milestones[{i}].amount", m.get("amount")) for i, m in enumerate(body.get("milestones") or [])]
    return [
        f"{name}: {value!r} has the wrong number of decimals for {body.get('currency')}"
        for name, value in amounts
        if isinstance(value, str) and not low <= len(value.partition(".")[2]) <= high
    ]


# -- the table: every label, its shape and its status (docs/api.md) -----------------------------------


@dataclass(frozen=True)
class Fetch:
    status: int
    body: Any
    headers: dict[str, str]


SINGLE = "single"  # a single resource: carries an ETag
FETCHES: dict[str, tuple[Any, int, str]] = {
    # auth
    "register": (TOKEN_PAIR, 201, ""),
    "login": (TOKEN_PAIR, 200, ""),
    "refresh": (TOKEN_PAIR, 200, ""),
    "logout": (NO_BODY, 204, ""),
    "me": (USER_PRIVATE, 200, SINGLE),
    "me: PUT": (USER_PRIVATE, 200, SINGLE),
    "me after PUT": (USER_PRIVATE, 200, SINGLE),
    "wallet: nonce": (NONCE, 200, ""),
    "wallet: link": (USER_PRIVATE, 200, SINGLE),
    "me after link": (USER_PRIVATE, 200, SINGLE),
    # users
    "users: admin POST": (USER_PRIVATE, 201, SINGLE),
    "users: admin POST replay": (USER_PRIVATE, 201, SINGLE),
    "users: GET as admin": (USER_PRIVATE, 200, SINGLE),
    "users: admin PATCH": (USER_PRIVATE, 200, SINGLE),
    "users: GET as admin after PATCH": (USER_PRIVATE, 200, SINGLE),
    "users: GET as another user": (USER_PUBLIC, 200, SINGLE),
    "users: list": (listing(USER_PUBLIC), 200, ""),
    "users: list item": (USER_PUBLIC, 200, ""),
    "users: list filtered": (listing(USER_PUBLIC), 200, ""),
    "users: list as admin": (listing(USER_PRIVATE), 200, ""),
    "users: list item as admin": (USER_PRIVATE, 200, ""),
    # projects
    "projects: POST": (PROJECT_SHAPE, 201, SINGLE),
    "projects: POST replay": (PROJECT_SHAPE, 201, SINGLE),
    "projects: GET": (PROJECT_SHAPE, 200, SINGLE),
    "projects: list": (listing(PROJECT_SHAPE), 200, ""),
    "projects: list item": (PROJECT_SHAPE, 200, ""),
    "projects: first page": (listing(PROJECT_SHAPE), 200, ""),
    "projects: next page": (listing(PROJECT_SHAPE), 200, ""),
    "projects: PUT": (PROJECT_SHAPE, 200, SINGLE),
    "projects: GET after PUT": (PROJECT_SHAPE, 200, SINGLE),
    "projects: search item after PUT": (PROJECT_SHAPE, 200, ""),
    "projects: GET in progress": (PROJECT_SHAPE, 200, SINGLE),
    "projects: list item in progress": (PROJECT_SHAPE, 200, ""),
    "projects: DELETE": (NO_BODY, 204, ""),
    # proposals
    "proposals: POST": (PROPOSAL_SHAPE, 201, SINGLE),
    "proposals: POST replay": (PROPOSAL_SHAPE, 201, SINGLE),
    "proposals: GET by author": (PROPOSAL_SHAPE, 200, SINGLE),
    "proposals: GET by project owner": (PROPOSAL_SHAPE, 200, SINGLE),
    "proposals: list item by author": (PROPOSAL_SHAPE, 200, ""),
    "proposals: list by project owner": (listing(PROPOSAL_SHAPE), 200, ""),
    "proposals: PUT": (PROPOSAL_SHAPE, 200, SINGLE),
    "proposals: GET after PUT": (PROPOSAL_SHAPE, 200, SINGLE),
    "proposals: accept": (PROPOSAL_SHAPE, 200, SINGLE),
    "proposals: accept replay": (PROPOSAL_SHAPE, 200, SINGLE),
    "proposals: GET accepted": (PROPOSAL_SHAPE, 200, SINGLE),
    "proposals: list item accepted": (PROPOSAL_SHAPE, 200, ""),
    "proposals: reject": (PROPOSAL_SHAPE, 200, SINGLE),
    "proposals: GET rejected": (PROPOSAL_SHAPE, 200, SINGLE),
    "proposals: DELETE": (NO_BODY, 204, ""),
    "proposals: GET withdrawn": (PROPOSAL_SHAPE, 200, SINGLE),
    # contracts
    "contracts: POST": (CONTRACT_SHAPE, 201, SINGLE),
    "contracts: POST replay": (CONTRACT_SHAPE, 201, SINGLE),
    "contracts: GET by client": (CONTRACT_SHAPE, 200, SINGLE),
    "contracts: GET by freelancer": (CONTRACT_SHAPE, 200, SINGLE),
    "contracts: list": (listing(CONTRACT_SHAPE), 200, ""),
    "contracts: list item": (CONTRACT_SHAPE, 200, ""),
    "contracts: PUT": (CONTRACT_SHAPE, 200, SINGLE),
    "contracts: GET after PUT": (CONTRACT_SHAPE, 200, SINGLE),
    "contracts: list item after PUT": (CONTRACT_SHAPE, 200, ""),
    "contracts: GET after payment": (CONTRACT_SHAPE, 200, SINGLE),
    "contracts: USD POST": (CONTRACT_SHAPE, 201, SINGLE),
    "contracts: DELETE": (NO_BODY, 204, ""),
    # portfolio
    "portfolio: POST": (PORTFOLIO_SHAPE, 201, SINGLE),
    "portfolio: POST replay": (PORTFOLIO_SHAPE, 201, SINGLE),
    "portfolio: GET": (PORTFOLIO_SHAPE, 200, SINGLE),
    "portfolio: list": (listing(PORTFOLIO_SHAPE), 200, ""),
    "portfolio: list item": (PORTFOLIO_SHAPE, 200, ""),
    "portfolio: PUT": (PORTFOLIO_SHAPE, 200, SINGLE),
    "portfolio: GET after PUT": (PORTFOLIO_SHAPE, 200, SINGLE),
    "portfolio: DELETE": (NO_BODY, 204, ""),
    # payments
    "payments: POST": (PAYMENT_SHAPE, 201, SINGLE),
    "payments: POST replay": (PAYMENT_SHAPE, 201, SINGLE),
    "payments: GET by payer": (PAYMENT_SHAPE, 200, SINGLE),
    "payments: GET by payee": (PAYMENT_SHAPE, 200, SINGLE),
    "payments: list item pending": (PAYMENT_SHAPE, 200, ""),
    "payments: confirm": (PAYMENT_SHAPE, 200, SINGLE),
    "payments: confirm replay": (PAYMENT_SHAPE, 200, SINGLE),
    "payments: GET completed": (PAYMENT_SHAPE, 200, SINGLE),
    "payments: list": (listing(PAYMENT_SHAPE), 200, ""),
    "payments: list item completed": (PAYMENT_SHAPE, 200, ""),
    "payments: totals": (TOTALS, 200, ""),
    "payments: refund": (PAYMENT_SHAPE, 200, SINGLE),
    "payments: GET refunded": (PAYMENT_SHAPE, 200, SINGLE),
    "payments: direct USD POST": (PAYMENT_SHAPE, 201, SINGLE),
    "payments: USD totals": (TOTALS, 200, ""),
    # uploads
    "uploads: POST": (UPLOAD, 201, SINGLE),
    "uploads: GET": (UPLOAD_META, 200, SINGLE),
    "uploads: presign": (PRESIGN, 200, ""),
    "uploads: direct PUT": (UPLOAD, 200, SINGLE),
    "uploads: GET after direct PUT": (UPLOAD_META, 200, SINGLE),
    # health and info
    "/": (ROOT, 200, ""),
    "/api": (API_INFO, 200, ""),
    "/api/health/live": (LIVE, 200, ""),
    "/api/health/ready": (READY, 200, ""),
    # errors
    "error 400 bad_request": (ERROR, 400, ""),
    "error 401 unauthenticated": (ERROR, 401, ""),
    "error 401 invalid_credentials": (ERROR, 401, ""),
    "error 403 forbidden": (ERROR, 403, ""),
    "error 404 not_found": (ERROR, 404, ""),
    "error 409 duplicate_proposal": (ERROR, 409, ""),
    "error 412 precondition_failed": (ERROR, 412, ""),
    "error 415 unsupported_media_type": (ERROR, 415, ""),
    "error 422 validation_failed": (VALIDATION_ERROR, 422, ""),
    "error 422 idempotency_key_reused": (VALIDATION_ERROR, 422, ""),
    "error 422 tx_not_found": (VALIDATION_ERROR, 422, ""),
}

# One resource in one state, however it was fetched: identical bodies, and identical ETags where sent.
SAME: list[tuple[str, ...]] = [
    ("me: PUT", "me after PUT"),
    ("wallet: link", "me after link"),
    ("users: admin POST", "users: admin POST replay", "users: GET as admin"),
    ("users: admin PATCH", "users: GET as admin after PATCH"),
    ("users: GET as another user", "users: list item"),
    ("projects: POST", "projects: POST replay", "projects: GET", "projects: list item"),
    ("projects: PUT", "projects: GET after PUT", "projects: search item after PUT"),
    ("projects: GET in progress", "projects: list item in progress"),
    (
        "proposals: POST",
        "proposals: POST replay",
        "proposals: GET by author",
        "proposals: GET by project owner",
        "proposals: list item by author",
    ),
    ("proposals: PUT", "proposals: GET after PUT"),
    ("proposals: accept", "proposals: accept replay", "proposals: GET accepted", "proposals: list item accepted"),
    ("proposals: reject", "proposals: GET rejected"),
    (
        "contracts: POST",
        "contracts: POST replay",
        "contracts: GET by client",
        "contracts: GET by freelancer",
        "contracts: list item",
    ),
    ("contracts: PUT", "contracts: GET after PUT", "contracts: list item after PUT"),
    ("portfolio: POST", "portfolio: POST replay", "portfolio: GET", "portfolio: list item"),
    ("portfolio: PUT", "portfolio: GET after PUT"),
    (
        "payments: POST",
        "payments: POST replay",
        "payments: GET by payer",
        "payments: GET by payee",
        "payments: list item pending",
    ),
    ("payments: confirm", "payments: confirm replay", "payments: GET completed", "payments: list item completed"),
    ("payments: refund", "payments: GET refunded"),
]
# Fields each view shows from another resource: (label, field, label of the resource, its field).
CROSS: list[tuple[str, str, str, str]] = [
    ("projects: GET", "client", "me", "id"),
    ("projects: GET", "client_id", "me", "id"),
    ("proposals: GET by author", "project_id", "projects: GET", "id"),
    ("contracts: GET by client", "project_id", "projects: GET", "id"),
    ("payments: GET by payer", "contract_id", "contracts: GET by client", "id"),
]


# -- the world ----------------------------------------------------------------------------------


class Recorder:
    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.fetches: dict[str, Fetch] = {}

    def __call__(self, label: str, method: str, path: str, user: User | None = None, **kwargs: Any) -> Fetch:
        headers = {**(user.headers if user else {}), **kwargs.pop("headers", {})}
        response = self.client.request(method, path, headers=headers, **kwargs)
        body = response.json() if response.content else NO_BODY
        fetch = Fetch(response.status_code, body, dict(response.headers))
        self.fetches[label] = fetch
        return fetch

    def item(self, label: str, listed: str, item_id: str) -> None:
        """The item of a recorded list with this id, recorded as `label`."""
        source = self.fetches[listed]
        items = [item for item in source.body["items"] if item.get("id") == item_id]
        assert len(items) == 1, (listed, item_id, source.body)
        self.fetches[label] = Fetch(source.status, items[0], {})


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


def build(rec: Recorder, client: TestClient, chain: tuple[Any, Any, Any], clock: FakeClock) -> None:
    _, token, (payer, payee) = chain
    r = rec
    body = {"email": "Shape.Ann@Example.com", "password": PASSWORD, "name": "Ann Shape", "role": "client"}
    ann = User(r("register", "POST", "/api/auth/register", json=body).body)
    fred, vera = register(client, "freelancer", "Fred Shape"), register(client, "freelancer", "Vera Shape")
    admin = User(make_admin(client))
    login = r("login", "POST", "/api/auth/login", json={"email": body["email"], "password": PASSWORD}).body
    session = r("refresh", "POST", "/api/auth/refresh", json={"refresh_token": login["refresh_token"]}).body
    r("me", "GET", "/api/auth/me", ann)
    clock.advance(seconds=61)
    profile = {"bio": "Builds shops", "skills": ["python", "sql"], "hourly_rate": 45.5, "location": "Lisbon"}
    r("me: PUT", "PUT", "/api/auth/me", fred, json=profile)
    r("me after PUT", "GET", "/api/auth/me", fred)
    r("wallet: nonce", "POST", "/api/auth/wallet/nonce", ann, json={"address": payer.address})
    link(client, ann, payer)
    message = nonce_for(client, fred, payee.address)["message"]
    r("wallet: link", "POST", "/api/auth/wallet", fred, json={"message": message, "signature": sign(message, payee)})
    r("me after link", "GET", "/api/auth/me", fred)

    # users
    new_user = {"email": "made@example.com", "password": PASSWORD, "name": "Made By Admin", "role": "freelancer"}
    made = r("users: admin POST", "POST", "/api/users", admin, json=new_user, headers=keyed("u")).body
    r("users: admin POST replay", "POST", "/api/users", admin, json=new_user, headers=keyed("u"))
    r("users: GET as admin", "GET", f"/api/users/{made['id']}", admin)
    r("users: admin PATCH", "PATCH", f"/api/users/{made['id']}", admin, json={"role": "client"})
    r("users: GET as admin after PATCH", "GET", f"/api/users/{made['id']}", admin)
    r("users: GET as another user", "GET", f"/api/users/{fred.id}", ann)
    r("users: list", "GET", "/api/users?limit=100", ann)
    rec.item("users: list item", "users: list", fred.id)
    r("users: list filtered", "GET", "/api/users?role=freelancer&skill=python&q=Fred&limit=1", ann)
    r("users: list as admin", "GET", "/api/users?limit=100", admin)
    rec.item("users: list item as admin", "users: list as admin", fred.id)

    # projects
    project = r("projects: POST", "POST", "/api/projects", ann, json=PROJECT, headers=keyed("p")).body
    pid = project["id"]
    r("projects: POST replay", "POST", "/api/projects", ann, json=PROJECT, headers=keyed("p"))
    r("projects: GET", "GET", f"/api/projects/{pid}", fred)
    r("projects: list", "GET", "/api/projects?limit=100", fred)
    rec.item("projects: list item", "projects: list", pid)
    clock.advance(seconds=61)
    revised = {"title": "Build a landing page, revised", "skills": ["html", "css"], "budget_max": "1999.99"}
    r("projects: PUT", "PUT", f"/api/projects/{pid}", ann, json=revised)
    r("projects: GET after PUT", "GET", f"/api/projects/{pid}", ann)
    r("_search", "GET", "/api/projects?q=revised&status=open&skill=css", fred)
    rec.item("projects: search item after PUT", "_search", pid)

    # proposals
    clock.advance(seconds=61)
    bid = {
        "project_id": pid,
        "cover_letter": "I have built many landing pages like this one. " * 3,
        "estimated_hours": 20,
        "hourly_rate": "40.5",
        "availability": "1-2_weeks",
        "attachments": ["https://files.example.com/cv.pdf"],
    }
    proposal = r("proposals: POST", "POST", "/api/proposals", fred, json=bid, headers=keyed("b")).body
    prid = proposal["id"]
    r("proposals: POST replay", "POST", "/api/proposals", fred, json=bid, headers=keyed("b"))
    r("proposals: GET by author", "GET", f"/api/proposals/{prid}", fred)
    r("proposals: GET by project owner", "GET", f"/api/proposals/{prid}", ann)
    r("_proposals by author", "GET", f"/api/proposals?project_id={pid}", fred)
    rec.item("proposals: list item by author", "_proposals by author", prid)
    r("proposals: list by project owner", "GET", "/api/proposals?status=submitted", ann)
    other = r("_other bid", "POST", "/api/proposals", vera, json=bid).body
    clock.advance(seconds=61)
    r("proposals: PUT", "PUT", f"/api/proposals/{prid}", fred, json={"estimated_hours": 25})
    r("proposals: GET after PUT", "GET", f"/api/proposals/{prid}", fred)
    clock.advance(seconds=61)
    r("proposals: accept", "POST", f"/api/proposals/{prid}/accept", ann, headers=keyed("a"))
    r("proposals: accept replay", "POST", f"/api/proposals/{prid}/accept", ann, headers=keyed("a"))
    r("proposals: GET accepted", "GET", f"/api/proposals/{prid}", ann)
    r("_proposals accepted", "GET", "/api/proposals?status=accepted", ann)
    rec.item("proposals: list item accepted", "_proposals accepted", prid)
    assert r("_other rejected", "GET", f"/api/proposals/{other['id']}", vera).body["status"] == "rejected"
    r("projects: GET in progress", "GET", f"/api/projects/{pid}", vera)
    r("_projects in progress", "GET", f"/api/projects?status=in_progress&client_id={ann.id}", vera)
    rec.item("projects: list item in progress", "_projects in progress", pid)
    spare = r("_spare project", "POST", "/api/projects", ann, json=PROJECT).body["id"]
    for label, who in (("reject", vera), ("withdraw", fred)):
        r(f"_{label} bid", "POST", "/api/proposals", who, json={**bid, "project_id": spare})
    to_reject = rec.fetches["_reject bid"].body["id"]
    to_withdraw = rec.fetches["_withdraw bid"].body["id"]
    r("proposals: reject", "POST", f"/api/proposals/{to_reject}/reject", ann)
    r("proposals: GET rejected", "GET", f"/api/proposals/{to_reject}", vera)
    r("proposals: DELETE", "DELETE", f"/api/proposals/{to_withdraw}", fred)
    r("proposals: GET withdrawn", "GET", f"/api/proposals/{to_withdraw}", fred)
    r("projects: DELETE", "DELETE", f"/api/projects/{spare}", ann)

    # contracts
    clock.advance(seconds=61)
    deal = {
        "project_id": pid,
        "freelancer_id": fred.id,
        "amount": "1250.123457",
        "currency": "USDC",
        "description": "Landing page",
        "start_date": "2026-12-01",
        "end_date": "2026-12-31",
        "milestones": [
            {"title": "Design", "amount": "250.5", "due_date": "2026-12-10"},
            {"title": "Build", "amount": 1},
        ],
    }
    contract = r("contracts: POST", "POST", "/api/contracts", ann, json=deal, headers=keyed("c")).body
    cid = contract["id"]
    r("contracts: POST replay", "POST", "/api/contracts", ann, json=deal, headers=keyed("c"))
    r("contracts: GET by client", "GET", f"/api/contracts/{cid}", ann)
    r("contracts: GET by freelancer", "GET", f"/api/contracts/{cid}", fred)
    r("contracts: list", "GET", "/api/contracts?status=active", fred)
    rec.item("contracts: list item", "contracts: list", cid)
    clock.advance(seconds=61)
    r("contracts: PUT", "PUT", f"/api/contracts/{cid}", ann, json={"terms": "Net 30", "end_date": None})
    r("contracts: GET after PUT", "GET", f"/api/contracts/{cid}", fred)
    r("_contracts after PUT", "GET", "/api/contracts", ann)
    rec.item("contracts: list item after PUT", "_contracts after PUT", cid)

    # payments
    clock.advance(seconds=61)
    pay = {"contract_id": cid, "amount": "12.345678", "description": "Design milestone"}
    payment = r("payments: POST", "POST", "/api/payments", ann, json=pay, headers=keyed("pay")).body
    pay_id = payment["id"]
    r("payments: POST replay", "POST", "/api/payments", ann, json=pay, headers=keyed("pay"))
    r("payments: GET by payer", "GET", f"/api/payments/{pay_id}", ann)
    r("payments: GET by payee", "GET", f"/api/payments/{pay_id}", fred)
    r("_payments pending", "GET", f"/api/payments?contract_id={cid}&status=pending", fred)
    rec.item("payments: list item pending", "_payments pending", pay_id)
    clock.advance(seconds=61)
    tx = ck.send_transfer(token, payer.address, payee.address, ck.units("12.345678"))
    proof = {"transaction_hash": tx}
    r("payments: confirm", "POST", f"/api/payments/{pay_id}/confirm", ann, json=proof, headers=keyed("ok"))
    r("payments: confirm replay", "POST", f"/api/payments/{pay_id}/confirm", ann, json=proof, headers=keyed("ok"))
    r("payments: GET completed", "GET", f"/api/payments/{pay_id}", fred)
    r("payments: list", "GET", "/api/payments?status=completed", fred)
    rec.item("payments: list item completed", "payments: list", pay_id)
    r("payments: totals", "GET", f"/api/payments/contract/{cid}/total", fred)
    r("contracts: GET after payment", "GET", f"/api/contracts/{cid}", ann)
    clock.advance(seconds=61)
    r("payments: refund", "POST", f"/api/payments/{pay_id}/refund", admin)
    r("payments: GET refunded", "GET", f"/api/payments/{pay_id}", ann)
    direct = {"to_user_id": fred.id, "amount": 7, "currency": "USD"}
    r("payments: direct USD POST", "POST", "/api/payments", ann, json=direct)

    # a USD contract, cancelled
    usd_project = r("_usd project", "POST", "/api/projects", ann, json=PROJECT).body["id"]
    usd_bid = r("_usd bid", "POST", "/api/proposals", vera, json={**bid, "project_id": usd_project}).body["id"]
    r("_usd accept", "POST", f"/api/proposals/{usd_bid}/accept", ann)
    usd = {"project_id": usd_project, "freelancer_id": vera.id, "amount": 99.9, "currency": "USD"}
    usd_id = r("contracts: USD POST", "POST", "/api/contracts", ann, json=usd).body["id"]
    r("payments: USD totals", "GET", f"/api/payments/contract/{usd_id}/total", ann)
    r("contracts: DELETE", "DELETE", f"/api/contracts/{usd_id}", ann)

    # uploads and portfolio
    upload = r("uploads: POST", "POST", "/api/uploads", fred, files={"file": ("shop.png", PNG, "image/png")}).body
    r("uploads: GET", "GET", f"/api/uploads/{upload['id']}", fred)
    presign = {"filename": "shop.png", "content_type": "image/png", "size": len(PNG)}
    slot = r("uploads: presign", "POST", "/api/uploads/presign", fred, json=presign).body
    r("uploads: direct PUT", "PUT", slot["upload_url"], content=PNG, headers=slot["headers"])
    r("uploads: GET after direct PUT", "GET", f"/api/uploads/{slot['file_id']}", fred)
    work = {"title": "Shop", "description": "A shop", "image_url": upload["id"], "tags": ["shop"]}
    item = r("portfolio: POST", "POST", "/api/portfolio", fred, json=work, headers=keyed("f")).body
    r("portfolio: POST replay", "POST", "/api/portfolio", fred, json=work, headers=keyed("f"))
    r("portfolio: GET", "GET", f"/api/portfolio/{item['id']}", ann)
    r("portfolio: list", "GET", f"/api/portfolio?freelancer_id={fred.id}", ann)
    rec.item("portfolio: list item", "portfolio: list", item["id"])
    clock.advance(seconds=61)
    change = {"project_url": "https://shop.example.com", "image_url": "https://img.example.com/a.png"}
    r("portfolio: PUT", "PUT", f"/api/portfolio/{item['id']}", fred, json=change)
    r("portfolio: GET after PUT", "GET", f"/api/portfolio/{item['id']}", fred)
    r("portfolio: DELETE", "DELETE", f"/api/portfolio/{item['id']}", fred)

    cursor = r("projects: first page", "GET", "/api/projects?limit=1", fred).body["next_cursor"]
    r("projects: next page", "GET", "/api/projects", fred, params={"limit": 1, "cursor": cursor})

    # health and info
    for path in ("/", "/api", "/api/health/live", "/api/health/ready"):
        r(path, "GET", path)

    # errors
    raw = {"content": b"{", "headers": {"Content-Type": "application/json"}}
    r("error 400 bad_request", "POST", "/api/projects", ann, **raw)
    r("error 401 unauthenticated", "GET", "/api/auth/me")
    r("error 401 invalid_credentials", "POST", "/api/auth/login", json={"email": body["email"], "password": "x" * 8})
    r("error 403 forbidden", "POST", "/api/projects", fred, json=PROJECT)
    r("error 404 not_found", "GET", "/api/projects/" + "0" * 32, ann)
    dup = {**bid, "project_id": r("_dup project", "POST", "/api/projects", ann, json=PROJECT).body["id"]}
    r("_first bid", "POST", "/api/proposals", vera, json=dup)
    r("error 409 duplicate_proposal", "POST", "/api/proposals", vera, json=dup)
    r("error 412 precondition_failed", "PUT", f"/api/projects/{pid}", ann, json={}, headers={"If-Match": '"1"'})
    r("error 415 unsupported_media_type", "POST", "/api/projects", ann, content=b"x=1", headers={"Content-Type": "a/b"})
    r("error 422 validation_failed", "POST", "/api/projects", ann, json={**PROJECT, "title": "x", "extra": 1})
    other_project = {**PROJECT, "title": "Another landing page"}
    r("error 422 idempotency_key_reused", "POST", "/api/projects", ann, json=other_project, headers=keyed("p"))
    zero = "0x" + "0" * 64
    unpaid = r("_unpaid", "POST", "/api/payments", ann, json={"to_user_id": fred.id, "amount": 1}).body["id"]
    r("error 422 tx_not_found", "POST", f"/api/payments/{unpaid}/confirm", ann, json={"transaction_hash": zero})
    bearer = {"Authorization": f"Bearer {session['access_token']}"}
    r("logout", "POST", "/api/auth/logout", json={"refresh_token": session["refresh_token"]}, headers=bearer)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Fetch]]:
    w3 = ck.make_chain()
    token = ck.deploy_token(w3, w3.eth.accounts[0])
    payer, payee = ck.funded_account(w3), ck.funded_account(w3)
    ck.mint(token, payer.address, ck.units("10000"))
    # Half a second past the minute: timestamps must still come out in whole seconds.
    clock = FakeClock(datetime(2026, 11, 23, 10, 0, 0, 500_000, tzinfo=UTC))
    settings = make_settings(tmp_path_factory.mktemp("shapes"))
    with TestClient(create_app(settings, clock), raise_server_exceptions=False) as client:
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        runtime.verifier = UsdcVerifier(w3, token.address, runtime.settings.min_confirmations)
        rec = Recorder(client)
        build(rec, client, (w3, token, (payer, payee)), clock)
        yield rec.fetches


# -- the tests ----------------------------------------------------------------------------------


def world_only(label: str) -> bool:
    """Items cut out of a recorded list: they have no response of their own."""
    return "list item" in label or "search item" in label


@pytest.mark.parametrize("label", list(FETCHES))
def test_each_response_has_exactly_the_fields_and_formats_of_api_md(world: dict[str, Fetch], label: str) -> None:
    shape, status, _ = FETCHES[label]
    fetch = world[label]

    assert fetch.status == status, (label, fetch.body)
    if shape == NO_BODY:
        assert fetch.body == NO_BODY
    else:
        assert problems(fetch.body, shape) == [], fetch.body


@pytest.mark.parametrize("label", [label for label, (shape, _, _) in FETCHES.items() if shape is VALIDATION_ERROR])
def test_every_422_names_what_failed_in_errors(world: dict[str, Fetch], label: str) -> None:
    errors = world[label].body["errors"]

    assert all(problems(error, LOCATED) == [] for error in errors), errors


@pytest.mark.parametrize("label", [label for label in FETCHES if "error" in label])
def test_each_error_has_the_code_api_md_names(world: dict[str, Fetch], label: str) -> None:
    assert world[label].body["error_type"] == label.rsplit(maxsplit=1)[-1]


@pytest.mark.parametrize("label", [label for label, (_, _, kind) in FETCHES.items() if kind == SINGLE])
def test_a_single_resource_carries_its_etag(world: dict[str, Fetch], label: str) -> None:
    assert re.fullmatch(r'"[0-9]+"', world[label].headers.get("etag", "")), world[label].headers


@pytest.mark.parametrize("label", [label for label in FETCHES if not world_only(label)])
def test_every_response_carries_the_edge_headers(world: dict[str, Fetch], label: str) -> None:
    headers = world[label].headers

    assert headers["x-request-id"] and headers["x-region"], headers
    assert headers["x-consistency-token"].isdigit(), headers
    if FETCHES[label][0] == NO_BODY:
        assert "content-type" not in headers
    else:
        assert headers["content-type"] == "application/json", headers


@pytest.mark.parametrize("labels", SAME, ids=lambda labels: labels[0])
def test_one_resource_in_one_state_looks_the_same_however_it_is_fetched(
    world: dict[str, Fetch], labels: tuple[str, ...]
) -> None:
    first = world[labels[0]]
    for label in labels[1:]:
        assert world[label].body == first.body, (labels[0], label)
    tags = {world[label].headers["etag"] for label in labels if not world_only(label)}
    assert len(tags) == 1, (labels, tags)


def test_the_user_in_a_token_pair_is_the_same_user_as_me(world: dict[str, Fetch]) -> None:
    users = [world[label].body["user"] for label in ("register", "login", "refresh")]

    assert users[0] == users[1] == users[2] == world["me"].body


def test_an_upload_is_the_same_upload_when_written_and_when_read(world: dict[str, Fetch]) -> None:
    for write, read in [("uploads: POST", "uploads: GET"), ("uploads: direct PUT", "uploads: GET after direct PUT")]:
        written, got = world[write], world[read]
        assert written.body == {k: v for k, v in got.body.items() if k != "created_at"}
        assert written.headers["etag"] == got.headers["etag"]


def test_a_public_profile_is_the_private_view_without_email_is_active_and_notifications(
    world: dict[str, Fetch],
) -> None:
    public, private = world["users: GET as another user"].body, world["me after link"].body

    assert public == {k: v for k, v in private.items() if k not in ("email", "is_active", "notifications")}
    assert world["users: list item as admin"].body == private


@pytest.mark.parametrize(("label", "field", "other", "other_field"), CROSS, ids=str)
def test_a_resource_names_the_resources_it_belongs_to(
    world: dict[str, Fetch], label: str, field: str, other: str, other_field: str
) -> None:
    value = world[label].body[field]
    expected = world[other].body[other_field]

    assert (value["id"] if isinstance(value, dict) else value) == expected


def test_nested_parties_carry_the_names_of_the_users(world: dict[str, Fetch]) -> None:
    contract, project = world["contracts: GET by client"].body, world["projects: GET"].body
    proposal = world["proposals: GET by author"].body

    assert contract["client"] == project["client"] == {"id": contract["client_id"], "name": "Ann Shape"}
    assert contract["freelancer"] == proposal["freelancer"] == {"id": contract["freelancer_id"], "name": "Fred Shape"}


def test_money_keeps_the_currencys_decimals(world: dict[str, Fetch]) -> None:
    contract, usd = world["contracts: GET by client"].body, world["contracts: USD POST"].body

    assert (contract["amount"], contract["platform_fee"], contract["amount_paid"]) == (
        "1250.123457",
        "62.506173",
        "0.00",
    )
    assert [m["amount"] for m in contract["milestones"]] == ["250.50", "1.00"]
    assert world["contracts: GET after payment"].body["amount_paid"] == "12.345678"
    assert (usd["amount"], usd["platform_fee"], usd["currency"]) == ("99.90", "5.00", "USD")
    assert world["payments: totals"].body == {
        "total_paid": "12.345678",
        "total_pending": "0.00",
        "total_refunded": "0.00",
        "currency": "USDC",
    }
    assert world["payments: direct USD POST"].body["amount"] == "7.00"
    assert world["me after PUT"].body["hourly_rate"] == "45.50"


def test_updated_at_moves_with_a_change_and_created_at_does_not(world: dict[str, Fetch]) -> None:
    for before, after in [
        ("projects: GET", "projects: GET after PUT"),
        ("proposals: GET by author", "proposals: GET after PUT"),
        ("contracts: GET by client", "contracts: GET after PUT"),
        ("portfolio: GET", "portfolio: GET after PUT"),
        ("payments: GET by payer", "payments: GET completed"),
    ]:
        old, new = world[before].body, world[after].body
        assert new["created_at"] == old["created_at"] == old["updated_at"], before
        assert new["updated_at"] > old["updated_at"], before


def test_a_list_says_when_there_is_more(world: dict[str, Fetch]) -> None:
    first, after = world["projects: first page"].body, world["projects: next page"].body
    filtered = world["users: list filtered"].body

    assert len(first["items"]) == len(after["items"]) == 1 and first["items"] != after["items"]
    assert isinstance(first["next_cursor"], str) and first["next_cursor"]
    assert len(filtered["items"]) == 1 and filtered["items"][0]["name"] == "Fred Shape"
    assert world["projects: list"].body["next_cursor"] is None


# Every enum docs/api.md spells, as the OpenAPI document (which clients are generated from) must spell it.
ENUMS: list[tuple[str, str, set[str]]] = [
    ("ApiInfo", "role", {"primary", "edge"}),
    ("Live", "status", {"ok"}),
    ("Ready", "status", {"ready", "not_ready"}),
    ("TokenPair", "token_type", {"bearer"}),
    ("UserPrivate", "role", {"client", "freelancer", "admin"}),
    ("ProjectOut", "budget_type", {"fixed", "hourly"}),
    ("ProjectOut", "experience_level", {"entry", "intermediate", "expert"}),
    ("ProjectOut", "status", {"open", "in_progress", "completed", "cancelled", "closed"}),
    ("ProposalOut", "availability", {"immediate", "1-2_weeks", "1_month", "flexible"}),
    ("ProposalOut", "status", {"submitted", "accepted", "rejected", "withdrawn"}),
    ("ContractOut", "currency", {"USDC", "USD"}),
    ("ContractOut", "status", {"active", "completed", "cancelled", "disputed"}),
    ("PaymentOut", "status", {"pending", "completed", "failed", "refunded"}),
    ("PaymentTotals", "currency", {"USDC", "USD"}),
]


@pytest.fixture(scope="module")
def schemas(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    settings = make_settings(tmp_path_factory.mktemp("openapi"))
    with TestClient(create_app(settings, FakeClock())) as client:
        found: dict[str, Any] = client.get("/api/openapi.json").json()["components"]["schemas"]
    return found


@pytest.mark.parametrize(("schema", "field", "values"), ENUMS, ids=[f"{schema}.{field}" for schema, field, _ in ENUMS])
def test_the_openapi_document_spells_each_enum_as_api_md(
    schemas: dict[str, Any], schema: str, field: str, values: set[str]
) -> None:
    prop = schemas[schema]["properties"][field]

    assert set(prop.get("enum", [prop.get("const")])) == values, prop
    assert field in schemas[schema]["required"]
