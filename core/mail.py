"""Outgoing mail: rendering (Jinja2, HTML autoescaped) and the two transports, SMTP and `.eml` files."""

from __future__ import annotations

import email.policy
import os
import re
from dataclasses import dataclass
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

SUBJECTS = {
    "password_reset": "Reset your MegiLance password",
    "proposal_received": "New proposal on your project",
    "proposal_decided": "A decision on your proposal",
    "contract_created": "A contract was created",
    "payment_confirmed": "A payment was confirmed",
}
SAFE_FILE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    """Where SMTP_URL points: `smtp://user:pass@host:port`, `smtps://` (implicit TLS), `?starttls=true`."""

    host: str
    port: int
    username: str | None
    password: str | None
    implicit_tls: bool
    starttls: bool

    @classmethod
    def parse(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("must be smtp://[user:pass@]host[:port] or smtps://…")
        try:
            port = parts.port
        except ValueError:
            raise ValueError("has an invalid port") from None
        implicit = parts.scheme == "smtps"
        flag = parse_qs(parts.query).get("starttls", ["false"])[-1].lower()
        if flag not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError("starttls must be true or false")
        starttls = flag in ("true", "1", "yes")
        if implicit and starttls:
            raise ValueError("smtps:// is already TLS; starttls applies to smtp:// only")
        return cls(
            host=parts.hostname,
            port=port or (465 if implicit else 587 if starttls else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            implicit_tls=implicit,
            starttls=starttls,
        )


def mail_domain(sender: str) -> str:
    """The domain Message-IDs are made in: the sender's, or a fixed local one."""
    _, address = parseaddr(sender)
    _, at, domain = address.rpartition("@")
    return domain if at and domain and SAFE_FILE.sub("", domain) == domain else "megilance.local"


class Renderer:
    """`<kind>.txt` and `<kind>.html` templates of this package; only the HTML ones are autoescaped."""

    def __init__(self) -> None:
        self._env = Environment(
            loader=PackageLoader("core", "templates/mail"),
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )

    def render(self, kind: str, context: dict[str, Any]) -> tuple[str, str, str]:
        """(subject, plain text, HTML) for a message of `kind`."""
        context = {**context, "subject": SUBJECTS[kind]}
        text = self._env.get_template(f"{kind}.txt").render(context)
        html = self._env.get_template(f"{kind}.html").render(context)
        return SUBJECTS[kind], text, html


class HeaderClasses(HeaderRegistry):
    """The standard header classes, each made once: the stock registry builds a new class for every header it
    parses (`type()` on each lookup), which took about half of the time to build a message."""

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(name)
        return made


POLICY = email.policy.default.clone(header_factory=HeaderClasses())  # the stock policy, its headers made faster


def build_message(
    *, message_id: str, sender: str, recipient: str, subject: str, text: str, html: str, date: float
) -> EmailMessage:
    """A multipart/alternative message: the plain-text part first, the HTML part preferred by clients."""
    message = EmailMessage(policy=POLICY)
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = subject
    message["Message-ID"] = message_id
    message["Date"] = formatdate(date, usegmt=True)
    # ASCII bodies go as they are (7bit, lines well under 998): a link stays whole in an .eml opened as text,
    # where quoted-printable would break it across lines. Other text is quoted-printable, as the library picks.
    if text.isascii() and html.isascii():
        message.set_content(text, cte="7bit")
        message.add_alternative(html, subtype="html", cte="7bit")
    else:
        message.set_content(text)
        message.add_alternative(html, subtype="html")
    return message


class Transport(Protocol):
    async def send(self, message: EmailMessage) -> str:
        """Deliver the message (raises on failure); returns where it went, for the log (never its content)."""


class SmtpTransport:
    """aiosmtplib, one connection per message: mail is rare here, and a fresh connection never goes stale."""

    def __init__(self, target: SmtpTarget, timeout_s: float, ca_file: str = "") -> None:
        self.target = target
        self.timeout_s = timeout_s
        self.ca_file = ca_file or None  # None: the system's certificate authorities

    async def send(self, message: EmailMessage) -> str:
        t = self.target
        await aiosmtplib.send(
            message,
            hostname=t.host,
            port=t.port,
            username=t.username,
            password=t.password,
            use_tls=t.implicit_tls,
            start_tls=t.starttls,
            cert_bundle=self.ca_file,
            timeout=self.timeout_s,
        )
        return f"smtp://{t.host}:{t.port}"


class FileTransport:
    """Development: each message becomes `<DATA_DIR>/outbox/<Message-ID>.eml`; a resend overwrites the same file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def send(self, message: EmailMessage) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = SAFE_FILE.sub("_", str(message["Message-ID"]).strip("<>")) + ".eml"
        path = self.directory / name
        partial = path.with_suffix(".eml.partial")
        partial.write_bytes(message.as_bytes())
        os.replace(partial, path)  # a reader never sees half a message
        return str(path)
