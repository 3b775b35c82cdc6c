"""A port nobody listens on, and an edge app (region "ams") whose primary is at a given port."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

from starlette.testclient import TestClient

from api.app import create_app
from tests.conftest import make_settings


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextlib.contextmanager
def edge(tmp_path: Path, primary_port: int) -> Iterator[TestClient]:
    settings = make_settings(
        tmp_path,
        REGION="ams",
        PRIMARY_REGION="iad",
        PRIMARY_URL=f"http://127.0.0.1:{primary_port}",
        REPLICATION_TOKEN="r" * 40,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client
