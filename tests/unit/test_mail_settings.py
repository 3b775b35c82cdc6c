"""SMTP_URL, MAIL_FROM and the other mail settings; the retry backoff; Message-ID domains."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.mail import SmtpTarget, mail_domain
from core.settings import SettingsError, load_settings
from node.mailer import backoff


def settings(tmp_path: Path, **env: object) -> object:
    return load_settings(DATA_DIR=tmp_path, ENVIRONMENT="test", SECRET_KEY="k" * 40, **env)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com", SmtpTarget("mail.example.com", 25, None, None, False, False)),
        ("smtp://u:p@mail.example.com:2525", SmtpTarget("mail.example.com", 2525, "u", "p", False, False)),
        ("smtps://u:p@mail.example.com", SmtpTarget("mail.example.com", 465, "u", "p", True, False)),
        ("smtp://mail.example.com?starttls=true", SmtpTarget("mail.example.com", 587, None, None, False, True)),
        ("smtp://a%40b:p%3Aw@h:26?starttls=false", SmtpTarget("h", 26, "a@b", "p:w", False, False)),
    ],
)
def test_smtp_urls_name_host_port_credentials_and_tls(url: str, expected: SmtpTarget) -> None:
    assert SmtpTarget.parse(url) == expected


@pytest.mark.parametrize(
    "url",
    ["http://mail.example.com", "smtp://", "smtp://h:99999", "smtps://h?starttls=true", "smtp://h?starttls=maybe"],
)
def test_a_bad_smtp_url_is_refused_at_start_without_echoing_it(tmp_path: Path, url: str) -> None:
    with pytest.raises(SettingsError) as refused:
        settings(tmp_path, SMTP_URL=url.replace("//", "//user:hunter2@", 1) if "@" not in url else url)
    assert "SMTP_URL" in str(refused.value) and "hunter2" not in str(refused.value)


def test_mail_defaults(tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert s.smtp_url == "" and s.password_reset_ttl_minutes == 30  # type: ignore[attr-defined]
    assert s.mail_base_url == "http://127.0.0.1:8000"  # type: ignore[attr-defined]
    public = settings(tmp_path, PUBLIC_BASE_URL="https://megilance.example/", HOST="0.0.0.0")
    assert public.mail_base_url == "https://megilance.example"  # type: ignore[attr-defined]
    assert settings(tmp_path, HOST="0.0.0.0").mail_base_url == "http://localhost:8000"  # type: ignore[attr-defined]


@pytest.mark.parametrize("sender", ["no-address", "A <a@b.example>\r\nBcc: x@y.example"])
def test_mail_from_must_be_one_address(tmp_path: Path, sender: str) -> None:
    with pytest.raises(SettingsError, match="MAIL_FROM"):
        settings(tmp_path, MAIL_FROM=sender)


def test_reset_ttl_is_bounded(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="PASSWORD_RESET_TTL_MINUTES"):
        settings(tmp_path, PASSWORD_RESET_TTL_MINUTES=0)


def test_backoff_doubles_from_the_least_to_the_most() -> None:
    assert [backoff(n, 1.0, 300.0) for n in (1, 2, 3, 9, 10, 1000)] == [1.0, 2.0, 4.0, 256.0, 300.0, 300.0]


def test_message_ids_use_the_senders_domain() -> None:
    assert mail_domain("Market <hello@market.example>") == "market.example"
    assert mail_domain("nobody") == "megilance.local"
