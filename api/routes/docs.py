"""`/api/docs` (Swagger UI), `/api/redoc` (ReDoc), `/api/openapi.json`; assets served from api/static."""

from __future__ import annotations

from pathlib import Path

from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from api.responses import JSON
from api.routing import Call, Operation

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

SWAGGER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MegiLance API - Swagger UI</title>
<link rel="stylesheet" href="/api/static/swagger-ui/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/api/static/swagger-ui/swagger-ui-bundle.js"></script>
<script src="/api/static/swagger-init.js"></script></body></html>"""

REDOC_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MegiLance API - ReDoc</title></head>
<body><redoc spec-url="/api/openapi.json"></redoc>
<script src="/api/static/redoc/redoc.standalone.js"></script></body></html>"""


async def swagger(call: Call) -> Response:
    return HTMLResponse(SWAGGER_PAGE)


async def redoc(call: Call) -> Response:
    return HTMLResponse(REDOC_PAGE)


async def openapi(call: Call) -> Response:
    return JSON(call.request.app.state.openapi)


OPERATIONS = [
    Operation("GET", "/api/docs", swagger, "Swagger UI", "docs", auth=False, public=False),
    Operation("GET", "/api/redoc", redoc, "ReDoc", "docs", auth=False, public=False),
    Operation("GET", "/api/openapi.json", openapi, "This OpenAPI document", "docs", auth=False, public=False),
]


def static_mount() -> Mount:
    return Mount("/api/static", app=StaticFiles(directory=STATIC_DIR), name="static")
