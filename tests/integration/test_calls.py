"""The call socket between a reader worker and worker 0, over real Unix sockets: what comes back, and what a
reader answers when worker 0 cannot be reached or does not answer."""

from __future__ import annotations

import asyncio
import socket
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.requests import Request
from starlette.responses import Response

from api.calls import CallClient, CallServer, HandedHandler, hand
from api.responses import JSON
from api.scope import REQUEST_ID_KEY
from core.errors import NotFound
from core.tokens import Claims

OPERATION = ("POST", "/api/things/{thing_id}")
WORKER_0_APP = object()  # what worker 0's handlers find as `request.app`
CALLER = Claims(sub="u1", role="client", type="access", jti="j1", iat=1, exp=2)


def request(body: bytes = b'{"name": "thing"}') -> Request:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/things/t1",
        "raw_path": b"/api/things/t1",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"idempotency-key", b"k1")],
        "client": ("192.0.2.7", 5000),
        "server": ("127.0.0.1", 8000),
        "scheme": "http",
        "root_path": "",
        "path_params": {"thing_id": "t1"},
        REQUEST_ID_KEY: b"req-1",
        "app": object(),  # a reader's own app: never sent
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


def listener(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(16)
    return sock


@asynccontextmanager
async def worker_0(handler: HandedHandler) -> AsyncIterator[CallClient]:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "calls.sock"
        server = CallServer({OPERATION: handler})
        await server.start(WORKER_0_APP, listener(path))  # type: ignore[arg-type]
        client = CallClient(str(path))
        try:
            yield client
        finally:
            await client.close()
            await server.stop()


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


def test_worker_0_runs_the_handler_with_what_the_reader_parsed_and_its_answer_comes_back() -> None:
    seen: dict[str, Any] = {}

    async def handler(req: Request, principal: Claims | None, body: Any, query: Any) -> Response:
        seen.update(
            principal=principal,
            body=body,
            query=query,
            raw=await req.body(),
            path_params=req.path_params,
            client=req.client,
            key=req.headers["idempotency-key"],
            request_id=req.scope[REQUEST_ID_KEY],
            app=req.app,
        )
        return JSON({"id": "t1", "name": body["name"]}, status_code=201, headers={"ETag": '"3"'})

    async def test() -> None:
        async with worker_0(handler) as client:
            for _ in range(3):  # the connection is kept and used again
                answer = await hand(client, OPERATION, request(), CALLER, {"name": "thing"}, None)
                assert answer.status_code == 201
                assert orjson.loads(answer.body) == {"id": "t1", "name": "thing"}
                assert answer.headers["etag"] == '"3"'
                assert answer.headers["content-type"] == "application/json"
            assert len(client.connections) == 1

    run(test)
    assert seen["principal"] == CALLER and seen["body"] == {"name": "thing"} and seen["query"] is None
    assert seen["raw"] == b'{"name": "thing"}' and seen["path_params"] == {"thing_id": "t1"}
    assert tuple(seen["client"]) == ("192.0.2.7", 5000) and seen["key"] == "k1" and seen["request_id"] == b"req-1"
    assert seen["app"] is WORKER_0_APP  # worker 0's own app (its rate limits), not the reader's


def test_a_domain_error_in_worker_0_comes_back_in_the_error_shape() -> None:
    async def handler(req: Request, principal: Claims | None, body: Any, query: Any) -> Response:
        raise NotFound("No such thing")

    async def test() -> None:
        async with worker_0(handler) as client:
            answer = await hand(client, OPERATION, request(), CALLER, {"name": "thing"}, None)
            assert answer.status_code == 404
            assert orjson.loads(answer.body) == {"detail": "No such thing", "error_type": "not_found"}

    run(test)


def test_a_bug_in_worker_0_is_a_500_in_the_error_shape_and_the_connection_goes_on() -> None:
    calls = 0

    async def handler(req: Request, principal: Claims | None, body: Any, query: Any) -> Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug")
        return JSON({"ok": True})

    async def test() -> None:
        async with worker_0(handler) as client:
            first = await hand(client, OPERATION, request(), CALLER, {}, None)
            second = await hand(client, OPERATION, request(), CALLER, {}, None)
            assert first.status_code == 500
            assert orjson.loads(first.body)["error_type"] == "internal_error"
            assert second.status_code == 200

    run(test)


def test_nothing_listening_is_a_503_that_says_nothing_was_done() -> None:
    async def test() -> None:
        with tempfile.TemporaryDirectory() as directory:
            client = CallClient(str(Path(directory) / "calls.sock"))
            answer = await hand(client, OPERATION, request(), CALLER, {}, None)
            assert answer.status_code == 503
            assert answer.headers["retry-after"] == "1"
            body = orjson.loads(answer.body)
            assert body["error_type"] == "service_unavailable" and "nothing was done" in body["detail"]

    run(test)


def test_worker_0_gone_after_taking_the_call_is_a_504_that_says_it_may_have_been_applied() -> None:
    async def test() -> None:
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "calls.sock"
            taken = asyncio.Event()

            async def take_and_leave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                await reader.read(1)
                taken.set()
                writer.close()

            server = await asyncio.start_unix_server(take_and_leave, sock=listener(path))
            client = CallClient(str(path))
            answer = await hand(client, OPERATION, request(), CALLER, {}, None)
            server.close()
            assert taken.is_set()
            assert answer.status_code == 504
            assert answer.headers["retry-after"] == "1"
            body = orjson.loads(answer.body)
            assert body["error_type"] == "gateway_timeout" and "may have been applied" in body["detail"]
            assert len(client.connections) == 0  # a broken connection is not kept

    run(test)


def test_a_stopping_worker_0_answers_the_call_in_progress_and_closes_idle_connections(
    caplog: pytest.LogCaptureFixture,
) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def handler(req: Request, principal: Claims | None, body: Any, query: Any) -> Response:
        if body == {"slow": True}:
            entered.set()
            await release.wait()
        return JSON({"ok": body})

    async def test() -> None:
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "calls.sock"
            server = CallServer({OPERATION: handler})
            await server.start(WORKER_0_APP, listener(path))  # type: ignore[arg-type]
            idle, busy = CallClient(str(path)), CallClient(str(path))
            assert (await hand(idle, OPERATION, request(), CALLER, {"slow": False}, None)).status_code == 200
            slow = asyncio.create_task(hand(busy, OPERATION, request(), CALLER, {"slow": True}, None))
            await entered.wait()
            stopping = asyncio.create_task(server.stop())
            await asyncio.sleep(0)
            assert not stopping.done()  # the call in progress holds the stop
            release.set()
            answer = await slow
            await stopping
            assert (answer.status_code, orjson.loads(answer.body)) == (200, {"ok": {"slow": True}})
            reader, _ = idle.connections._idle[0]
            assert await reader.read() == b""  # worker 0 closed the idle connection
            refused = await hand(CallClient(str(path)), OPERATION, request(), CALLER, {}, None)
            assert refused.status_code == 503  # and takes no new ones
            await idle.close()
            await busy.close()

    with caplog.at_level("ERROR", logger="asyncio"):
        run(test)
    assert caplog.records == []
