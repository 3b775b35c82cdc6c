"""A real SMTP server for tests (aiosmtpd on 127.0.0.1), and helpers to read the messages it received.

`smtp_server` is one server per test session (tests keep apart by writing to addresses of their own);
`SmtpServer(port)` starts another on a chosen port, for tests where the server is down at first.
"""

from __future__ import annotations

import email
import email.policy
import ipaddress
import itertools
import re
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Self

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

LINK = re.compile(r"(\S+)/reset-password\?token=([A-Za-z0-9_-]+)")
_serial = itertools.count()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def unique_email(name: str) -> str:
    return f"{name.lower()}-{next(_serial)}-{threading.get_ident()}@example.com"


@dataclass(frozen=True)
class Received:
    """One message as the server got it: the envelope's recipients and the parsed message."""

    recipients: tuple[str, ...]
    message: EmailMessage
    raw: bytes

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None, f"no text/{subtype} part"
        return str(body.get_content())

    def reset_token(self) -> str:
        found = LINK.search(self.part("plain"))
        assert found is not None, self.part("plain")
        return found.group(2)


class Inbox:
    """What the server received, waited on with a deadline (a condition variable, no sleeping)."""

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self._changed = threading.Condition()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        with self._changed:
            self.messages.append(Received(tuple(envelope.rcpt_tos), parsed, content))
            self._changed.notify_all()
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Received]:
        with self._changed:
            return [m for m in self.messages if address in m.recipients]

    def wait_for(self, address: str, count: int = 1, timeout: float = 15.0) -> list[Received]:
        """The messages to `address` once there are at least `count`; AssertionError after `timeout` seconds."""
        with self._changed:
            done = self._changed.wait_for(lambda: sum(address in m.recipients for m in self.messages) >= count, timeout)
            found = [m for m in self.messages if address in m.recipients]
        assert done, f"{len(found)} of {count} messages to {address} within {timeout}s"
        return found


class Credentials:
    """Accepts exactly one user name and password (AUTH PLAIN/LOGIN)."""

    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username, password
        self.accepted = 0

    def __call__(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == self.username
            and data.password.decode() == self.password
        )
        self.accepted += ok
        return AuthResult(success=ok, handled=False)


class SmtpServer:
    """aiosmtpd in a thread on 127.0.0.1:`port`; a context manager (stopped on exit)."""

    def __init__(
        self,
        port: int | None = None,
        credentials: tuple[str, str] | None = None,
        *,
        implicit_tls: ssl.SSLContext | None = None,
        starttls: ssl.SSLContext | None = None,
    ) -> None:
        self.port = port or free_port()
        self.inbox = Inbox()
        self.scheme = "smtps" if implicit_tls is not None else "smtp"
        extra: dict[str, Any] = {}
        if implicit_tls is not None:
            extra["ssl_context"] = implicit_tls
        if starttls is not None:  # clients must upgrade before MAIL FROM
            extra.update(tls_context=starttls, require_starttls=True)
        if credentials is not None:
            # AUTH over plain text on loopback; not `auth_required` (aiosmtpd warns of that without TLS): a client
            # that logs in is checked, and `Credentials.accepted` tells the test it did.
            self.credentials = Credentials(*credentials)
            extra.update(authenticator=self.credentials, auth_require_tls=False)
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port, **extra)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpServer]:
    """One real SMTP server for the test session."""
    with SmtpServer() as server:
        yield server


def self_signed(directory: Path) -> tuple[Path, ssl.SSLContext]:
    """A certificate for 127.0.0.1 signed by its own key: (its PEM file to trust, a server context using it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return cert_path, context
