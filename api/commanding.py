"""The write path as handlers use it: rate limit, metadata, run the command, answer with the token."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

from api.responses import JSON
from api.routing import Call
from api.scope import REQUEST_ID_KEY
from core import idempotency
from core.db import Connection
from core.ids import new_id

ENTITY_TAG = re.compile(r'(W/)?"([^"]*)"')
ENTITY_TAGS = re.compile(r'\s*(?:(?:W/)?"[^"]*"\s*)?(?:,\s*(?:(?:W/)?"[^"]*"\s*)?)*')  # `#entity-tag`
MAX_IP_HASHES = 4096
IP_HASHES: dict[tuple[str, str], str] = {}  # (secret, address) -> hash


def client_ip(call: Call) -> str:
    limits = call.request.app.state.limits
    return str(limits.client_ip(call.request))


def ip_hash(call: Call) -> str:
    """The client address as audit events keep it: a keyed hash (no address is stored), remembered per address."""
    key = (call.runtime.settings.secret_key, client_ip(call))
    hashed = IP_HASHES.get(key)
    if hashed is None:
        hashed = hashlib.blake2b(key[1].encode(), key=key[0].encode()[:64], digest_size=12).hexdigest()
        if len(IP_HASHES) >= MAX_IP_HASHES:
            IP_HASHES.clear()
        IP_HASHES[key] = hashed
    return hashed


def request_id(call: Call) -> str:
    """EdgeMiddleware's id for this request (the one in its X-Request-ID and its access-log line)."""
    given: bytes | None = call.request.scope.get(REQUEST_ID_KEY)
    return given.decode() if given is not None else new_id()


def command_meta(call: Call, claim: idempotency.Claim | None = None) -> dict[str, Any]:
    """The event metadata of a command. Client text reaches it only validated: the request id the response
    carries (the client's own if it was safe) and the Idempotency-Key this command claimed, if any."""
    return {
        "actor": call.principal.sub if call.principal else None,
        "request_id": request_id(call),
        "idempotency_key": claim.key if claim is not None else None,
        "region": call.runtime.settings.region_name,
        "ip_hash": ip_hash(call),
    }


async def execute(call: Call, command: Any, read_back: Callable[[Connection], Any] | None = None) -> tuple[Any, int]:
    """Run one command for this request; the request's Idempotency-Key is claimed by its first command.

    `read_back` (optional) reads the written view inside the command's transaction (see Runtime.execute).
    """
    if call.principal is not None:
        limits = call.request.app.state.limits
        limits.hit(limits.writes, "writes", call.principal.sub)
    claim, call.idempotency = call.idempotency, None
    return await call.runtime.execute(command, command_meta(call, claim), claim, read_back)


def written(body: Any, position: int, status: int = 200, etag: int | None = None) -> JSON:
    headers = {"X-Consistency-Token": str(position)}
    if etag is not None:
        headers["ETag"] = f'"{etag}"'
    return JSON(body, status_code=status, headers=headers)


def if_match(call: Call) -> frozenset[int] | None:
    """The versions a PUT/DELETE may apply to (`If-Match: "3"` or `"2", "3"`); None when not sent or `*`.

    Strong comparison (RFC 9110 13.1.1): weak tags match nothing, and neither does a malformed header (an
    empty set: 412). A bare version number alone (`If-Match: 3`) is taken as "3", as it always was.
    """
    raw = call.request.headers.get("if-match")
    if raw is None or raw.strip() == "*":
        return None
    if ENTITY_TAGS.fullmatch(raw):
        return frozenset(int(tag) for weak, tag in ENTITY_TAG.findall(raw) if not weak and is_version(tag))
    text = raw.strip()
    return frozenset({int(text)}) if is_version(text) else frozenset()


def is_version(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) < 19
