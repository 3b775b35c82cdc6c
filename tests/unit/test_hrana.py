"""The Hrana client's pure parts: which transport a URL means, values on the wire, and what a copy ships."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.hrana import decode_value, encode_value, endpoint
from core.mirror import statement_kind
from core.store import INSERT_EVENT
from migrations.runner import log_tables


@pytest.mark.parametrize(
    ("url", "tls", "port"),
    [
        ("libsql://db-org.turso.io", True, 443),
        ("libsql://127.0.0.1:8080?tls=0", False, 8080),
        ("https://db.example.com", True, 443),
        ("wss://db.example.com:9443", True, 9443),
        ("http://127.0.0.1:8080", False, 8080),
        ("ws://127.0.0.1:8080", False, 8080),
    ],
)
def test_each_scheme_maps_to_hrana_over_http_or_https(url: str, tls: bool, port: int) -> None:
    target = endpoint(url)
    assert (target.tls, target.port) == (tls, port)


@pytest.mark.parametrize("url", ["postgres://db", "file:data.db", "http://", "libsql:///path"])
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="not a libSQL server URL"):
        endpoint(url)


@given(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False), st.text(), st.binary()))
def test_values_survive_the_wire_format(value: object) -> None:
    assert decode_value(encode_value(value)) == value


def test_only_writes_to_the_logs_tables_are_shipped() -> None:
    tables = log_tables()
    assert statement_kind(INSERT_EVENT, tables) == "log"
    assert statement_kind("UPDATE refresh_tokens SET revoked_at = ? WHERE jti = ?", tables) == "log"
    assert statement_kind("DELETE FROM claims WHERE kind = ?", tables) == "log"
    assert statement_kind("INSERT OR REPLACE INTO idempotency_keys (user_id) VALUES (?)", tables) == "log"
    assert statement_kind("INSERT INTO rm_projects (id) VALUES (?)", tables) == ""
    assert statement_kind("UPDATE projection_checkpoint SET position = ?", tables) == ""
    assert statement_kind("SELECT * FROM events", tables) == ""
    assert statement_kind("ROLLBACK TO job", tables) == "rollback_to"
    assert statement_kind("BEGIN IMMEDIATE", tables) == "begin"
    assert statement_kind("RELEASE job", tables) == "release"
