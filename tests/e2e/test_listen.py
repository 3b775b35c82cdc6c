"""Where `megilance serve` listens: one line says so, and `::` answers on IPv6 and IPv4 alike."""

from __future__ import annotations

import httpx

from tests.e2e.server import LiveServer


def test_the_server_prints_one_line_with_its_url_and_docs() -> None:
    with LiveServer.start() as server:
        lines = [line for line in server.stdout_path.read_text().splitlines() if "listening" in line]
    assert lines == [f"MegiLance API listening on {server.url} (docs: {server.url}/api/docs)"]


def test_a_server_bound_to_the_ipv6_wildcard_answers_on_ipv6_and_ipv4_loopback() -> None:
    """Fly's private network is IPv6 only, its proxy may come over IPv4: `::` must take both (IPv4 mapped)."""
    with LiveServer.start(host="::") as server:  # ready on http://[::1]:port
        ipv4 = httpx.get(f"http://127.0.0.1:{server.port}/api/health/live", timeout=5)
        ipv6 = httpx.get(f"http://[::1]:{server.port}/api/health/live", timeout=5)
        lines = [line for line in server.stdout_path.read_text().splitlines() if "listening" in line]
    assert ipv6.status_code == 200
    assert ipv4.status_code == 200
    url = f"http://localhost:{server.port}"
    assert lines == [f"MegiLance API listening on {url} on every interface, IPv6 and IPv4 (docs: {url}/api/docs)"]
