"""Registration under arbitrary input: never a 500, only 201/409/422/400, and the store stays consistent."""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given
from hypothesis import settings as fuzz_settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from api.text import INVISIBLE, visible_length
from core.clock import FakeClock
from core.settings import Settings
from node.runtime import open_primary
from tests.support.accounts import make_admin

FIELDS = ("email", "password", "name", "role")
ALLOWED = {201, 400, 409, 422}
ADMIN_PASSWORD = "admin-horse-battery"
HOSTILE = [
    "' OR '1'='1",
    "'); DROP TABLE rm_users; --",
    '" OR ""="',
    "1; SELECT * FROM credentials",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "{{7*7}}",
    "${jndi:ldap://x/a}",
    "../../etc/passwd",
    "%s%s%n",
    "\u202eevil",
    "\ufeff",
    "\u0000",
    "null",
    "admin",
    "\\",
    "%_%",
    "\u03a9\u2248\u00e7\u221a\u222b\u02dc\u00b5\u2264",
    "\U0001d57f\U0001d58d\U0001d58a \U0001d596\U0001d59a\U0001d58e\U0001d588\U0001d590",
    "👩‍💻🏳️‍🌈",
    "\uff46\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48",
    "\u0301\u0301\u0301",
]
# Every one of these is a valid address; several collide once case-folded (or, in fullwidth letters, after NFKC).
LOCALS = [
    "ann",
    "Ann",
    "ANN",
    "o'brien",
    "O'Brien",
    "<script>",
    "x'or'1'='1",
    "drop;table",
    "a+tag",
    "A+TAG",
    "\uff41\uff4e\uff4e",  # "ann" in fullwidth letters
]
# Addresses must be ASCII after NFKC: these look like (or are) other letters and are refused.
NOT_ASCII = ["ünï", "straße", "🦄", "\u1d00nn", "a\u200bnn", "ann\u202e"]
DOMAINS = ["example.com", "EXAMPLE.COM", "ex-ample.io"]
Json = dict[str, Any]
MISSING = object()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=8,
)
huge = st.sampled_from([129, 255, 1000, 40_000]).flatmap(
    lambda n: st.sampled_from(["A", "é", "'", "<", "密"]).map(lambda c: c * n)
)
hostile = st.sampled_from(HOSTILE) | st.tuples(st.sampled_from(HOSTILE), st.sampled_from(HOSTILE)).map("".join)
any_text = st.text() | hostile | huge


def nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def stays_a_name(name: str) -> bool:
    """Drawn from letters, digits, punctuation and symbols, and still visible, with nothing invisible, after NFKC
    (a few symbols decompose to a space and a lone combining mark)."""
    normal = nfkc(name).strip()
    return visible_length(normal) > 0 and not any(unicodedata.category(c) in INVISIBLE for c in normal)


def all_users(client: TestClient, token: str) -> list[Json]:
    users: list[Json] = []
    cursor: str | None = None
    while True:
        params = {"limit": "100"} | ({"cursor": cursor} if cursor else {})
        response = client.get("/api/users", params=params, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        page = response.json()
        users.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return users


FUZZ = fuzz_settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


valid_email = st.builds(
    lambda local, suffix, domain, pad: f"{pad}{local}{suffix}@{domain}{pad}",
    st.sampled_from(LOCALS),
    st.sampled_from(["", "1", ".x", "_Y", "_y"]) | st.integers(0, 10**6).map(str),
    st.sampled_from(DOMAINS),
    st.sampled_from(["", " "]),
)
valid_password = st.text(min_size=8, max_size=128)
valid_name = st.text(st.characters(categories=["L", "N", "P", "S"]), min_size=1, max_size=100).filter(stays_a_name)
valid_role = st.sampled_from(["client", "freelancer"])
VALID = {"email": valid_email, "password": valid_password, "name": valid_name, "role": valid_role}
INVALIDISH = {
    "email": any_text
    | json_values
    | st.sampled_from(["a@b", "@example.com", "ann@", "ann example@example.com"])
    | st.sampled_from(NOT_ASCII).map(lambda local: f"{local}@example.com"),
    "password": any_text | json_values,
    "name": any_text | json_values | st.sampled_from(["", "   ", "tab\tname", "bell\x07"]),
    "role": any_text | json_values | st.sampled_from(["admin", "ADMIN", "Client", " client", "", "superuser"]),
}


KINDS = ["valid"] * 6 + ["invalid"] * 3 + ["missing"]


@st.composite
def field_value(draw: st.DrawFn, name: str) -> tuple[object, bool]:
    """(value, whether it is certainly valid); mostly valid so the interesting paths (201/409) are reached."""
    kind = draw(st.sampled_from(KINDS))
    if kind == "valid":
        return draw(VALID[name]), True
    if kind == "invalid":
        return draw(INVALIDISH[name]), False
    return MISSING, False


@st.composite
def bodies(draw: st.DrawFn) -> tuple[object, bool]:
    if draw(st.integers(0, 19)) == 0:  # now and then, not an object at all
        return draw(json_values.filter(lambda v: not isinstance(v, dict))), False
    body: Json = {}
    all_valid = True
    for name in FIELDS:
        value, valid = draw(field_value(name))
        all_valid &= valid
        if value is not MISSING:
            body[name] = value
    extra: Json = {}
    if draw(st.integers(0, 4)) == 0:
        extra = draw(
            st.dictionaries(st.text(max_size=20).filter(lambda k: k not in FIELDS), json_values, min_size=1, max_size=3)
        )
    body.update(extra)
    return body, all_valid and not extra


@dataclass
class Ledger:
    """What the test saw succeed: normalised e-mail -> (user id, e-mail as sent, password)."""

    accounts: dict[str, tuple[str, str, str]] = field(default_factory=dict)


def email_key(email: str) -> str:
    return nfkc(email).strip().casefold()


def test_register_fuzz_never_fails_and_keeps_the_store_consistent(
    client: TestClient, settings: Settings, clock: FakeClock
) -> None:
    admin = make_admin(client, email="root@admin.test", password=ADMIN_PASSWORD)
    admin_id, admin_token = admin["user"]["id"], admin["access_token"]
    ledger = Ledger()
    seen: dict[int, int] = {}

    @FUZZ
    @given(drawn=bodies(), ascii_only=st.booleans())
    def register_once(drawn: tuple[object, bool], ascii_only: bool) -> None:
        body, certainly_valid = drawn
        email = body.get("email") if isinstance(body, dict) else None
        known = isinstance(email, str) and email_key(email) in ledger.accounts
        raw = json.dumps(body, ensure_ascii=ascii_only).encode()
        response = client.post("/api/auth/register", content=raw, headers={"Content-Type": "application/json"})
        assert response.status_code in ALLOWED, (response.status_code, response.text[:500])
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        payload = response.json()
        if certainly_valid:
            assert response.status_code == (409 if known else 201), response.text[:500]
        if response.status_code == 201:
            assert isinstance(body, dict) and isinstance(email, str)
            assert not known, f"{email!r} registered twice"
            user = payload["user"]
            assert "password" not in user and "password_hash" not in user
            assert user["email"] == nfkc(email).strip()  # stored as given, in NFKC
            assert user["role"] == body["role"]
            assert user["role"] in ("client", "freelancer")
            assert user["name"] == nfkc(body["name"]).strip()
            ledger.accounts[email_key(email)] = (user["id"], email, body["password"])
            return
        assert set(payload) <= {"detail", "error_type", "errors"}
        assert "Traceback" not in response.text
        if response.status_code == 409:
            assert payload["error_type"] == "email_taken"
            assert known
        password = body.get("password") if isinstance(body, dict) else None
        if isinstance(password, str) and len(password) >= 12:
            assert password not in response.text

    register_once()
    assert seen.get(201, 0) >= 5 and seen.get(409, 0) >= 3 and seen.get(422, 0) >= 20, (
        seen
    )  # the run reached the interesting paths

    users = all_users(client, admin_token)
    registered = {user_id for user_id, _, _ in ledger.accounts.values()}
    assert len(users) == len(ledger.accounts) + 1
    assert {u["id"] for u in users} == registered | {admin_id}
    assert {email_key(u["email"]) for u in users} == set(ledger.accounts) | {"root@admin.test"}

    conn = open_primary(settings)
    try:
        counts = [
            conn.execute(sql).fetchone()[0]
            for sql in (
                "SELECT COUNT(*) FROM events WHERE type = 'UserRegistered'",
                "SELECT COUNT(*) FROM claims WHERE kind = 'email'",
                "SELECT COUNT(*) FROM credentials",
                "SELECT COUNT(*) FROM rm_users",
            )
        ]
    finally:
        conn.close()
    assert counts == [len(ledger.accounts) + 1] * 4

    # what was stored is usable: a few accounts sign in, their e-mail in another case
    for _, email, password in list(ledger.accounts.values())[:5]:
        response = client.post("/api/auth/login", json={"email": email.upper(), "password": password})
        assert response.status_code == 200, (email, response.text)


def test_register_arbitrary_bytes_never_fails(client: TestClient) -> None:
    @fuzz_settings(max_examples=200, deadline=None, database=None)
    @given(raw=st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
    def post(raw: bytes) -> None:
        response = client.post("/api/auth/register", content=raw, headers={"Content-Type": "application/json"})
        assert response.status_code in (400, 422), (raw, response.status_code, response.text)
        assert response.json()["error_type"] in ("bad_request", "validation_failed")

    post()
