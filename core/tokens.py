"""JWT access and refresh tokens (pyjwt, HS256) signed with a key ring, so keys rotate without logouts."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import jwt

from core.errors import Unauthenticated
from core.ids import new_id

ALGORITHM = "HS256"
VERIFIED_CACHE_SIZE = 50_000
TokenType = Literal["access", "refresh"]
ARTICLES: dict[TokenType, str] = {"access": "An", "refresh": "A"}


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says."""

    sub: str
    role: str
    type: str
    jti: str
    iat: int
    exp: int
    fam: str | None = None
    pos: int = 0  # the log position the issuer had reached: tokens older than a role change are refused


def parse_key_ring(jwt_keys: str, secret_key: str) -> list[tuple[str, bytes]]:
    """`JWT_KEYS=kid:secret,kid2:secret2` (first signs, all verify); else one key derived from SECRET_KEY."""
    ring = []
    for item in filter(None, (part.strip() for part in jwt_keys.split(","))):
        kid, sep, secret = item.partition(":")
        if not sep or not kid or len(secret) < 32:
            raise ValueError("JWT_KEYS entries must be kid:secret with a secret of at least 32 characters")
        ring.append((kid, secret.encode()))
    if not ring:
        derived = hmac.new(secret_key.encode(), b"megilance-jwt-v1", hashlib.sha256).digest()
        ring.append(("k1", derived))
    return ring


class TokenService:
    """Issue and verify tokens; `alg` is pinned on decode and `kid` picks the key."""

    def __init__(self, key_ring: list[tuple[str, bytes]], access_ttl: timedelta, refresh_ttl: timedelta) -> None:
        self._signing_kid, self._signing_key = key_ring[0]
        self._keys = dict(key_ring)
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self._verified: dict[str, Claims] = {}

    def issue(
        self,
        sub: str,
        role: str,
        token_type: TokenType,
        now: datetime,
        family: str | None = None,
        jti: str | None = None,
        position: int = 0,
    ) -> tuple[str, Claims]:
        ttl = self.access_ttl if token_type == "access" else self.refresh_ttl
        iat = int(now.timestamp())
        claims = Claims(sub, role, token_type, jti or new_id(), iat, iat + int(ttl.total_seconds()), family, position)
        payload: dict[str, Any] = {
            "sub": sub,
            "role": role,
            "type": token_type,
            "jti": claims.jti,
            "iat": iat,
            "exp": claims.exp,
        }
        if position:
            payload["pos"] = position
        if family:
            payload["fam"] = family
        token = jwt.encode(payload, self._signing_key, algorithm=ALGORITHM, headers={"kid": self._signing_kid})
        return token, claims

    def verify(self, token: str, expected_type: TokenType, now: datetime) -> Claims:
        """Signature checked once per token; a verified token is remembered, its expiry checked every time."""
        return self.verify_at(token, expected_type, int(now.timestamp()))

    def verify_at(self, token: str, expected_type: TokenType, now_s: int) -> Claims:
        """`verify` at a time in whole seconds since the epoch (what every request's bearer check has at hand)."""
        claims = self._verified.get(token)
        if claims is None:
            claims = self._verify_signature(token)
            if len(self._verified) >= VERIFIED_CACHE_SIZE:
                self._verified.clear()
            self._verified[token] = claims
        if claims.type != expected_type:
            raise Unauthenticated(f"{ARTICLES[expected_type]} {expected_type} token is required here", "token_invalid")
        if claims.exp <= now_s:
            raise Unauthenticated("The token has expired", "token_expired")
        return claims

    def _verify_signature(self, token: str) -> Claims:
        try:
            header = jwt.get_unverified_header(token)
            key = self._keys.get(str(header.get("kid")))
            if key is None or header.get("alg") != ALGORITHM:
                raise Unauthenticated("The token was not issued by this service", "token_invalid")
            payload = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                # Times are checked by `verify` against the service's clock, not this machine's: PyJWT would refuse
                # an `iat` ahead of the wall clock, so an edge whose clock trails the primary's refused fresh tokens.
                options={"require": ["sub", "type", "jti", "iat", "exp"], "verify_exp": False, "verify_iat": False},
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated("The token is malformed or its signature is wrong", "token_invalid") from exc
        if payload.get("type") not in ("access", "refresh") or not all(
            isinstance(payload[time], int) for time in ("iat", "exp")
        ):
            raise Unauthenticated("The token's claims are not ones this service issues", "token_invalid")
        return Claims(
            str(payload["sub"]),
            str(payload.get("role", "")),
            str(payload["type"]),
            str(payload["jti"]),
            int(payload["iat"]),
            int(payload["exp"]),
            payload.get("fam"),
            payload["pos"] if isinstance(payload.get("pos"), int) else 0,
        )
