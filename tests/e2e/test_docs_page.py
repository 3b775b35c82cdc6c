"""The docs pages really render in a browser: headless Chromium against a real `megilance serve`."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from api.middleware import DOCS_CSP
from tests.e2e.browser import headless_command
from tests.e2e.server import LiveServer

RENDER_FLAGS = ("--virtual-time-budget=15000", "--run-all-compositor-stages-before-draw")
BROWSER_TIMEOUT = 120.0
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# ReDoc 2.5.4 always renders <img src="https://cdn.redoc.ly/redoc/logo-mini.svg"> next to its "API docs by Redocly"
# link; our CSP (img-src 'self' data:) blocks it and ReDoc drops the image on error. Nothing else may be refused.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
RESOURCE_ATTRS = ("src", "href", "srcset", "data", "poster", "action", "formaction", "xlink:href", "background")
CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")\s]+)")
ABSOLUTE_URL = re.compile(r"https?://[^\s\"'<>)]+")
XML_NAMESPACES = ("http://www.w3.org/",)


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""

    @property
    def classes(self) -> list[str]:
        return self.attrs.get("class", "").split()


class Dom(HTMLParser):
    """Every element of a page in document order, with the text directly inside it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self._open: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.elements.append(element)
        if tag not in {"img", "br", "hr", "input", "meta", "link", "source", "col", "area", "base", "wbr", "path"}:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i].tag == tag:
                del self._open[i:]
                return

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1].text += data

    def with_class(self, name: str) -> list[Element]:
        return [e for e in self.elements if name in e.classes]


@dataclass
class Rendered:
    html: str
    dom: Dom
    console: list[str]
    seconds: float


def render(url: str, profile: Path) -> Rendered:
    """The DOM after the page's scripts ran (virtual time lets them finish), plus the console messages."""
    started = time.monotonic()
    result = subprocess.run(
        headless_command(profile, "--enable-logging=stderr", "--v=0", "--dump-dom", *RENDER_FLAGS, url),
        capture_output=True,
        text=True,
        timeout=BROWSER_TIMEOUT,
        check=False,
    )
    seconds = time.monotonic() - started
    assert result.returncode == 0, f"chromium exited {result.returncode}:\n{result.stderr[-3000:]}"
    assert "<html" in result.stdout, f"chromium dumped no DOM:\n{result.stderr[-3000:]}"
    dom = Dom()
    dom.feed(result.stdout)
    dom.close()
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return Rendered(result.stdout, dom, console, seconds)


def external_loads(dom: Dom, origin: str) -> list[str]:
    """Absolute http(s) resource URLs (src, stylesheets, CSS url()) pointing anywhere but the server itself."""
    found = []
    for element in dom.elements:
        values = [element.attrs.get(a, "") for a in RESOURCE_ATTRS if element.tag != "a"]
        values += CSS_URL.findall(element.attrs.get("style", ""))
        if element.tag == "style":
            values += CSS_URL.findall(element.text)
        for value in values:
            for url in ABSOLUTE_URL.findall(value):
                parts = urlsplit(url)
                if f"{parts.scheme}://{parts.netloc}" != origin:
                    found.append(f"<{element.tag}> {url}")
    return found


def spec_operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op) for path, item in spec["paths"].items() for method, op in item.items() if method in METHODS
    ]


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with LiveServer.start() as live:
        yield live


@pytest.fixture(scope="module")
def spec(server: LiveServer) -> dict[str, Any]:
    response = httpx.get(server.url + "/api/openapi.json", timeout=10)
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    assert len(spec_operations(document)) >= 10
    return document


def csp_violations(console: list[str]) -> list[str]:
    return [line for line in console if "Content Security Policy" in line or "Refused to" in line]


def test_swagger_ui_renders_every_operation(server: LiveServer, spec: dict[str, Any], tmp_path: Path) -> None:
    response = httpx.get(server.url + "/api/docs", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == DOCS_CSP.decode()

    page = render(server.url + "/api/docs", tmp_path / "profile")
    operations = spec_operations(spec)

    blocks = [e for e in page.dom.with_class("opblock") if e.tag == "div"]
    paths = [e.attrs["data-path"] for e in page.dom.with_class("opblock-summary-path")]
    methods = [e.text.strip().lower() for e in page.dom.with_class("opblock-summary-method")]
    summaries = [e.text.strip() for e in page.dom.with_class("opblock-summary-description")]
    assert len(blocks) == len(paths) == len(operations), (len(blocks), len(paths), len(operations))
    assert Counter(zip(methods, paths, strict=True)) == Counter((m, p) for m, p, _ in operations)
    assert sorted(summaries) == sorted(op["summary"] for _, _, op in operations)
    assert {e.attrs["id"] for e in blocks} == {
        f"operations-{op['tags'][0]}-{op['operationId']}" for _, _, op in operations
    }
    assert ("post", "/api/auth/register") in zip(methods, paths, strict=True)
    assert "/api/users" in paths
    assert all(f"opblock-{method}" in block.classes for block, method in zip(blocks, methods, strict=True))

    assert external_loads(page.dom, server.url) == []
    external = [
        u for u in ABSOLUTE_URL.findall(page.html) if not u.startswith(server.url) and not u.startswith(XML_NAMESPACES)
    ]
    assert external == [], "Swagger UI page mentions outside URLs"
    assert csp_violations(page.console) == []
    assert not [line for line in page.console if "Uncaught" in line], page.console
    assert page.seconds < 60


def test_redoc_renders_every_operation(server: LiveServer, spec: dict[str, Any], tmp_path: Path) -> None:
    response = httpx.get(server.url + "/api/redoc", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == DOCS_CSP.decode()

    page = render(server.url + "/api/redoc", tmp_path / "profile")
    operations = spec_operations(spec)

    # the middle panel: <span class="... http-verb post">post</span><span>/api/auth/register</span> per operation
    endpoints = []
    for i, element in enumerate(page.dom.elements):
        if "http-verb" in element.classes:
            endpoints.append((element.text.strip(), page.dom.elements[i + 1].text.strip()))
    assert Counter(endpoints) == Counter((m, p) for m, p, _ in operations)
    assert ("post", "/api/auth/register") in endpoints
    assert ("get", "/api/users") in endpoints

    sections = {e.attrs["id"] for e in page.dom.elements if "/operation/" in e.attrs.get("id", "")}
    assert sections == {f"tag/{op['tags'][0]}/operation/{op['operationId']}" for _, _, op in operations}
    headings = {e.text.strip() for e in page.dom.elements if e.tag == "h2"}
    assert {op["summary"] for _, _, op in operations} <= headings

    assert external_loads(page.dom, server.url) == []
    violations = csp_violations(page.console)
    assert all(REDOC_LOGO in line for line in violations), violations
    assert not [line for line in page.console if "Uncaught" in line], page.console
    assert page.seconds < 60


def test_swagger_ui_screenshot(server: LiveServer, spec: dict[str, Any], tmp_path: Path) -> None:
    shot = tmp_path / "docs.png"
    result = subprocess.run(
        headless_command(
            tmp_path / "profile",
            f"--screenshot={shot}",
            "--window-size=1280,2000",
            *RENDER_FLAGS,
            server.url + "/api/docs",
        ),
        capture_output=True,
        text=True,
        timeout=BROWSER_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert shot.exists(), result.stderr[-3000:]
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 10_000, f"screenshot only {len(data)} bytes: blank page?"
    shutil.copyfile(shot, "/tmp/docs.png")
