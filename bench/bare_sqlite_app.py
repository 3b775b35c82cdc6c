"""The floor for an uncached read: the least code doing the app's work (one page query, rows to JSON).

A plain Starlette app that opens the app's database file (BARE_SQLITE_DB) with stdlib sqlite3, runs the
same SQL as the board, search, detail and user-list reads on the event loop, and serialises the rows with orjson:
no auth, no cache, no middleware, no cursor. Query parameters other than `q` are ignored.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from queries.fts import match_expression
from queries.projects import COLUMNS, board_query
from queries.users import COLUMNS as USER_COLUMNS

PAGE = 20
DETAIL = f"SELECT {COLUMNS} FROM rm_projects p WHERE p.id = ?"
USERS = f"SELECT {USER_COLUMNS} FROM rm_users u WHERE u.is_active = 1 ORDER BY u.id DESC LIMIT ?"  # a public page
_conn: sqlite3.Connection | None = None


def conn() -> sqlite3.Connection:
    global _conn  # opened on the first request, in the server's process
    if _conn is None:
        _conn = sqlite3.connect(os.environ["BARE_SQLITE_DB"], isolation_level=None, check_same_thread=False)
    return _conn


def rows_json(cursor: sqlite3.Cursor) -> bytes:
    names = [d[0] for d in cursor.description]
    return orjson.dumps({"items": [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]})


async def board(request: Request) -> Response:
    q = request.query_params.get("q")
    match = match_expression(q) if q else None
    sql, params = board_query(limit=PAGE, match=match)
    return Response(rows_json(conn().execute(sql, params)), media_type="application/json")


async def detail(request: Request) -> Response:
    cursor = conn().execute(DETAIL, (request.path_params["project_id"],))
    row: Any = cursor.fetchone()
    names = [d[0] for d in cursor.description]
    return Response(orjson.dumps(dict(zip(names, row, strict=True))), media_type="application/json")


async def users(request: Request) -> Response:
    return Response(rows_json(conn().execute(USERS, (PAGE + 1,))), media_type="application/json")


app = Starlette(routes=[Route("/board", board), Route("/detail/{project_id}", detail), Route("/users", users)])
