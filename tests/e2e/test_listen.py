"""Where `megilance serve` listens: one line says so, and `::` answers on IPv6 and IPv4 alike."""

from __future__ import annotations

import resource
import socket
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import LiveServer


@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_server_prints_one_line_with_its_url_and_docs(workers: str) -> None:
    with LiveServer.start({"WORKERS": workers}) as server:
        lines = [line for line in server.stderr_path.read_text().splitlines() if "listening" in line]
    assert lines == [f"MegiLance API listening on {server.url} (docs: {server.url}/api/docs)"]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_server_bound_to_the_ipv6_wildcard_answers_on_ipv6_and_ipv4_loopback(workers: str) -> None:
    """Fly's private network is IPv6 only, its proxy may come over IPv4: `::` must take both (IPv4 mapped)."""
    with LiveServer.start({"WORKERS": workers}, host="::") as server:  # ready on http://[::1]:port
        ipv4 = httpx.get(f"http://127.0.0.1:{server.port}/api/health/live", timeout=5)
        ipv6 = httpx.get(f"http://[::1]:{server.port}/api/health/live", timeout=5)
        lines = [line for line in server.stderr_path.read_text().splitlines() if "listening" in line]
    assert ipv6.status_code == 200
    assert ipv4.status_code == 200
    url = f"http://localhost:{server.port}"
    assert lines == [f"MegiLance API listening on {url} on every interface, IPv6 and IPv4 (docs: {url}/api/docs)"]


def test_a_port_already_taken_stops_the_server_with_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = LiveServer.start(port=taken.getsockname()[1], wait=False)
        try:
            code = server.process.wait(timeout=30)
            server.stop()  # closes its log files
            errors = server.stderr_path.read_text()
        finally:
            server.cleanup()
    assert code == 1
    assert errors.startswith("megilance serve: "), errors
    assert "Address already in use" in errors
    assert len(errors.strip().splitlines()) == 1, errors


def test_the_server_raises_its_open_file_limit() -> None:
    """Each connection is an open file: a soft limit of 1,024 would refuse connections below MAX_CONNECTIONS."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard > 1024  # else there is nothing to raise it to
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))  # the server process inherits it
    try:
        server = LiveServer.start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    with server:
        limits = Path(f"/proc/{server.pid}/limits").read_text()
    line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
    assert line.split()[3:5] == [str(hard), str(hard)], line
