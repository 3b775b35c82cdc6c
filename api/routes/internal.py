"""`/internal/events`: the primary's event feed for edges (long-poll; not in the public OpenAPI)."""

from __future__ import annotations

import hmac

import orjson
from pydantic import Field
from starlette.responses import Response

from api.routing import Call, Operation
from api.schemas import Strict
from core import keyring, store
from core.errors import NotFound, Unauthenticated

MAX_WAIT_MS = 10_000


class FeedQuery(Strict):
    after: int = Field(0, ge=0)
    limit: int = Field(500, ge=1, le=5000)
    wait_ms: int = Field(0, ge=0, le=MAX_WAIT_MS)


def check_replication_token(call: Call) -> None:
    expected = call.runtime.settings.replication_token
    if not call.runtime.settings.is_primary:
        raise NotFound("The event feed is served by the primary region only")
    scheme, _, token = call.request.headers.get("authorization", "").partition(" ")
    if not expected or scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
        raise Unauthenticated("A valid replication token is required", "token_invalid")


async def events(call: Call) -> Response:
    check_replication_token(call)
    q: FeedQuery = call.query
    runtime = call.runtime
    if runtime.tracker.position <= q.after and q.wait_ms:
        await runtime.tracker.wait_for(q.after + 1, q.wait_ms / 1000)
    head = runtime.tracker.position
    rows = await runtime.read(lambda conn: store.read_feed(conn, q.after, q.limit)) if head > q.after else []
    body = {
        "events": [
            {
                "position": position,
                "stream_id": stream_id,
                "stream_type": stream_type,
                "version": version,
                "type": event_type,
                "schema_version": schema_version,
                "data": orjson.Fragment(data),
                "recorded_at": recorded_at,
            }
            for position, stream_id, stream_type, version, event_type, schema_version, data, recorded_at in rows
        ],
        "head": max(head, rows[-1][0] if rows else 0),
    }
    epoch, restored_head = runtime.log_epoch
    if epoch:  # the log came back from a backup: edges past `restored_head` hold events it lost
        body |= {"epoch": epoch, "restored_head": restored_head}
    headers = {keyring.HEADER: runtime.key_ring}
    return Response(orjson.dumps(body), media_type="application/json", headers=headers)


OPERATIONS = [
    Operation(
        "GET",
        "/internal/events",
        events,
        "Event feed for edge replicas",
        "internal",
        query=FeedQuery,
        auth=False,
        public=False,
    ),
]
