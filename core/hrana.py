"""A small Hrana-over-HTTP client for a libSQL server (sqld, Turso): statements and atomic batches.

Every call is one `POST /v2/pipeline` whose requests end with `close`, so no server-side stream outlives
the call: the server's expiry of idle streams (10 s on sqld) never meets this client. Calls are blocking
and release the GIL while they wait on the socket; the app makes them from its writer thread or a worker
thread, never on the event loop. `ws://` and `wss://` URLs name the same server as `http://` and
`https://` (sqld serves Hrana over HTTP and WebSocket on one port); `libsql://` is HTTPS, as on Turso,
unless the URL says `?tls=0`. No PRAGMA that sets a value is ever sent: sqld refuses them.
"""

from __future__ import annotations

import base64
import http.client
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

# A pooled connection idle longer than this is replaced before use: a server may have closed it, and a write
# sent on a dead connection would fail with an outcome nobody can know.
IDLE_REUSE_S = 2.0


class HranaError(Exception):
    """The server ran the request and refused a statement (SQLite's message and code)."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class HranaUnavailable(Exception):
    """The server could not be reached, or answered with something other than a Hrana response."""


class HranaAuthError(HranaUnavailable):
    """The server refused the auth token (HTTP 401 or 403)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a libSQL server listens, as the client speaks to it."""

    tls: bool
    host: str
    port: int

    @property
    def label(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"


def endpoint(url: str) -> Endpoint:
    """`libsql://`, `https://`, `wss://` → HTTPS; `http://`, `ws://` (or `libsql://…?tls=0`) → plain HTTP."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("libsql", "https", "http", "wss", "ws") or not parts.hostname:
        raise ValueError(f"not a libSQL server URL: {url!r}")
    tls = scheme in ("libsql", "https", "wss")
    if scheme == "libsql" and parse_qs(parts.query).get("tls") == ["0"]:
        tls = False
    return Endpoint(tls, parts.hostname, parts.port or (443 if tls else 80))


def encode_value(value: Any) -> dict[str, Any]:
    if value is None:
        return {"type": "null"}
    if isinstance(value, bool | int):
        return {"type": "integer", "value": str(int(value))}
    if isinstance(value, float):
        return {"type": "float", "value": value}
    if isinstance(value, str):
        return {"type": "text", "value": value}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"type": "blob", "base64": base64.b64encode(bytes(value)).decode()}
    raise TypeError(f"cannot send a {type(value).__name__} to the server")


def decode_value(value: dict[str, Any]) -> Any:
    kind = value["type"]
    if kind == "integer":
        return int(value["value"])
    if kind == "float":
        return float(value["value"])
    if kind == "text":
        return value["value"]
    if kind == "blob":
        data = value.get("base64", "")
        return base64.b64decode(data + "=" * (-len(data) % 4))
    return None


def statement(sql: str, args: Sequence[Any] = ()) -> dict[str, Any]:
    return {"sql": sql, "args": [encode_value(arg) for arg in args]}


@dataclass(frozen=True, slots=True)
class Result:
    """The rows of one statement, decoded to Python values, and the server's replication index."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    affected: int
    replication_index: int | None


def decode_result(result: dict[str, Any]) -> Result:
    index = result.get("replication_index")
    return Result(
        tuple(col.get("name") or "" for col in result.get("cols", ())),
        [tuple(decode_value(v) for v in row) for row in result.get("rows", ())],
        int(result.get("affected_row_count") or 0),
        int(index) if index is not None else None,
    )


class HranaClient:
    """Blocking calls to one server; each thread keeps its own keep-alive connection."""

    def __init__(self, url: str, auth_token: str = "", timeout: float = 10.0) -> None:
        self.endpoint = endpoint(url)
        self._headers = {"Content-Type": "application/json"}
        if auth_token:
            self._headers["Authorization"] = f"Bearer {auth_token}"
        self._timeout = timeout
        self._local = threading.local()
        self.requests = 0  # HTTP requests sent, for benchmarks and tests

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None and time.monotonic() - self._local.used > IDLE_REUSE_S:
            conn.close()
            conn = None
        if conn is None:
            e = self.endpoint
            if e.tls:
                conn = http.client.HTTPSConnection(
                    e.host, e.port, timeout=self._timeout, context=ssl.create_default_context()
                )
            else:
                conn = http.client.HTTPConnection(e.host, e.port, timeout=self._timeout)
            self._local.conn = conn
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def pipeline(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One HTTP round trip; the stream is closed at its end. Returns each request's `response`."""
        body = orjson.dumps({"baton": None, "requests": [*requests, {"type": "close"}]})
        conn = self._connection()
        self.requests += 1
        try:
            conn.request("POST", "/v2/pipeline", body, self._headers)
            response = conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._drop()
            raise HranaUnavailable(f"{self.endpoint.label}: {type(exc).__name__}: {exc}") from exc
        self._local.used = time.monotonic()
        if response.status != 200:
            self._drop()  # the server may close the connection after an error answer
        if response.status in (401, 403):
            raise HranaAuthError(f"{self.endpoint.label} refused the auth token (HTTP {response.status})")
        if response.status != 200:
            raise HranaUnavailable(f"{self.endpoint.label} answered HTTP {response.status}: {payload[:200]!r}")
        results: list[dict[str, Any]] = orjson.loads(payload)["results"]
        out = []
        for item in results[: len(requests)]:
            if item.get("type") == "error":
                error = item.get("error") or {}
                raise HranaError(error.get("message", "unknown error"), error.get("code", ""))
            out.append(item["response"])
        return out

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Result:
        """One statement in autocommit."""
        response = self.pipeline([{"type": "execute", "stmt": statement(sql, args)}])[0]
        return decode_result(response["result"])

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one read statement."""
        return self.execute(sql, args).rows

    def query_many(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[Result]:
        """Several read statements in one round trip (one snapshot each, not one between them)."""
        requests = [{"type": "execute", "stmt": statement(sql, args)} for sql, args in statements]
        return [decode_result(r["result"]) for r in self.pipeline(requests)]

    def transaction(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> int | None:
        """Run the statements as one transaction in one round trip; all or nothing.

        Raises HranaError with the first failing statement's message (and the server rolls back).
        Returns the server's replication index after the commit.
        """
        steps: list[dict[str, Any]] = [{"stmt": statement("BEGIN IMMEDIATE")}]
        for sql, args in statements:
            steps.append({"stmt": statement(sql, args), "condition": {"type": "ok", "step": len(steps) - 1}})
        commit = len(steps)
        steps.append({"stmt": statement("COMMIT"), "condition": {"type": "ok", "step": commit - 1}})
        steps.append(
            {"stmt": statement("ROLLBACK"), "condition": {"type": "not", "cond": {"type": "ok", "step": commit}}}
        )
        result = self.pipeline([{"type": "batch", "batch": {"steps": steps}}])[0]["result"]
        errors = result.get("step_errors") or []
        for error in errors:
            if error:
                raise HranaError(error.get("message", "unknown error"), error.get("code", ""))
        if result["step_results"][commit] is None:
            raise HranaUnavailable(f"{self.endpoint.label} did not run the commit")
        index = result.get("replication_index")
        return int(index) if index is not None else None

    def close(self) -> None:
        self._drop()
