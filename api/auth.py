"""Who is calling: the bearer token, verified against the key ring and the account's current state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request

from core.errors import Unauthenticated
from core.tokens import Claims

if TYPE_CHECKING:
    from node.runtime import Runtime


async def authenticate(request: Request, runtime: Runtime) -> Claims:
    header = ""
    for name, value in request.scope["headers"]:  # a direct scan: cheaper than building a Headers mapping
        if name == b"authorization":
            header = value.decode("latin-1")
            break
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Sign in and send Authorization: Bearer <access_token>")
    claims = runtime.tokens.verify_at(token.strip(), "access", runtime.clock.seconds())
    runtime.sessions.check(claims)
    return claims
