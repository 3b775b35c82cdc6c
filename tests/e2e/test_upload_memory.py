"""A 5 MB upload to a real `megilance serve` must not cost the server 5 MB of memory: it streams.

The server's peak resident set (VmHWM in /proc/<pid>/status) is read after 2 MiB warm-up uploads (every code
path, the pipeline at its steady state, until the allocator's heap stops growing) and again after a 5 MiB
upload. A server that buffered the file would reach a new peak about 3 MiB higher (a variant that collected
the file's pieces before storing them grew by 2816 KiB here); a streaming one stays within a couple of chunks
of where the warm-up left it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx

from api.uploads.intake import CHUNK_SIZE
from tests.e2e.server import LiveServer

MIB = 1024 * 1024
BOUNDARY = "memory-test-boundary"
WARM_UP_SIZE = 2 * MIB  # long enough to fill the pipeline to its steady state, well under the measured 5 MiB
MIN_WARM_UPS, QUIET_WARM_UPS, MAX_WARM_UPS = 5, 3, 16


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def pieces(size: int, seed: bytes) -> Iterator[bytes]:
    """A PNG of `size` bytes in CHUNK_SIZE pieces, made on the fly from `seed` (the same every time)."""
    sent, block = 0, 0
    while sent < size:
        piece = (hashlib.sha256(seed + block.to_bytes(8, "big")).digest() * 2048)[: min(CHUNK_SIZE, size - sent)]
        if sent == 0:
            piece = b"\x89PNG\r\n\x1a\n" + piece[8:]
        yield piece
        sent += len(piece)
        block += 1


def multipart(size: int, seed: bytes) -> Iterator[bytes]:
    """The request body, generated lazily: neither side ever holds the whole file."""
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    yield from pieces(size, seed)
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def upload(client: httpx.Client, url: str, headers: dict[str, str], size: int, seed: bytes) -> dict[str, object]:
    expected_sha = hashlib.sha256()
    for piece in pieces(size, seed):
        expected_sha.update(piece)
    response = client.post(
        url + "/api/uploads",
        content=multipart(size, seed),
        headers={**headers, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    assert (body["size"], body["sha256"]) == (size, expected_sha.hexdigest())
    return body


def warm_up(client: httpx.Client, url: str, headers: dict[str, str], pid: int) -> int:
    """2 MiB uploads until three in a row leave the peak where it was (allocator and caches settled)."""
    quiet = done = 0
    while (quiet < QUIET_WARM_UPS or done < MIN_WARM_UPS) and done < MAX_WARM_UPS:
        peak = status_kib(pid, "VmHWM")
        upload(client, url, headers, WARM_UP_SIZE, os.urandom(8))
        done += 1
        quiet = quiet + 1 if status_kib(pid, "VmHWM") == peak else 0
    return done


def test_a_5_mb_upload_grows_the_server_by_less_than_two_chunks(tmp_path: Path) -> None:
    with (
        LiveServer.start({"MAX_UPLOAD_MB": "8"}, workdir=tmp_path / "server") as server,
        httpx.Client(timeout=60) as client,
    ):
        registered = client.post(
            server.url + "/api/auth/register",
            json={"email": "mem@example.com", "password": "correct-horse-battery", "name": "Mem", "role": "client"},
        )
        assert registered.status_code == 201, registered.text
        headers = {"Authorization": f"Bearer {registered.json()['access_token']}"}

        warm_ups = warm_up(client, server.url, headers, server.pid)
        rss_before, peak_before = status_kib(server.pid, "VmRSS"), status_kib(server.pid, "VmHWM")
        upload(client, server.url, headers, 5 * MIB, os.urandom(8))
        rss_after, peak_after = status_kib(server.pid, "VmRSS"), status_kib(server.pid, "VmHWM")

        growth_kib = peak_after - peak_before
        limit_kib = 2 * CHUNK_SIZE // 1024
        print(
            f"\nupload memory: chunk {CHUNK_SIZE // 1024} KiB; {warm_ups} x {WARM_UP_SIZE // MIB} MiB warm-up, "
            "then 5 MiB: "
            f"server VmHWM {peak_before} -> {peak_after} KiB (growth {growth_kib} KiB, limit {limit_kib} KiB); "
            f"VmRSS {rss_before} -> {rss_after} KiB"
        )
        assert growth_kib < limit_kib, f"peak RSS grew by {growth_kib} KiB during a 5 MiB upload"
