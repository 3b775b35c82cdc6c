"""The in-memory part of read model `sessions`: ended sessions refuse their access tokens, and are forgotten
once every token they issued has expired (ENDED_KEPT after the end), both as events arrive and at a start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.clock import rfc3339_ms
from core.db import connect
from core.errors import Unauthenticated
from core.events.base import StoredEvent
from core.tokens import Claims
from queries.registry import projection
from queries.sessions import ENDED_KEPT, Sessions

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def revoked(position: int, family: str, at: datetime) -> StoredEvent:
    data = {"family_id": family, "user_id": "u1", "reason": "logout"}
    return StoredEvent(position, family, "session", 2, "SessionRevoked", 1, data, {}, rfc3339_ms(at))


def claims(family: str | None) -> Claims:
    return Claims("u1", "client", "access", "jti", 0, 1, family, 1)


def accepts(sessions: Sessions, family: str | None) -> bool:
    try:
        sessions.check(claims(family))
    except Unauthenticated as exc:
        assert exc.code == "token_invalid"
        return False
    return True


def test_an_ended_session_refuses_its_tokens_and_no_one_elses() -> None:
    sessions = Sessions()
    sessions.observe([revoked(1, "fam-a", T0)])
    assert not accepts(sessions, "fam-a")
    assert accepts(sessions, "fam-b")
    assert accepts(sessions, None)  # a token that names no session


def test_an_end_is_forgotten_once_a_later_end_is_past_its_horizon() -> None:
    sessions = Sessions()
    sessions.observe([revoked(1, "fam-a", T0), revoked(2, "fam-a", T0 + timedelta(hours=2))])  # ended once
    sessions.observe([revoked(3, "fam-b", T0 + ENDED_KEPT)])
    assert not accepts(sessions, "fam-a")  # exactly at the horizon: still remembered
    sessions.observe([revoked(4, "fam-c", T0 + ENDED_KEPT + timedelta(seconds=1))])
    assert accepts(sessions, "fam-a")
    assert not accepts(sessions, "fam-b") and not accepts(sessions, "fam-c")
    assert sessions.ended() == 2


def test_a_start_loads_only_the_ends_within_the_horizon(tmp_path: Path) -> None:
    conn = connect(str(tmp_path / "read.db"), synchronous="NORMAL")
    model = projection()
    model.create_tables(conn)
    now = T0 + timedelta(days=3)
    ages = {"fam-old": ENDED_KEPT + timedelta(minutes=1), "fam-recent": ENDED_KEPT - timedelta(minutes=1)}
    model.apply_events(
        conn, [revoked(i + 1, fam, now - age) for i, (fam, age) in enumerate(ages.items())], advance=False
    )
    sessions = Sessions()
    sessions.load(conn, now)
    conn.close()
    assert accepts(sessions, "fam-old")
    assert not accepts(sessions, "fam-recent")
    assert sessions.ended() == 1


@pytest.mark.parametrize("family", ["fam-a", None])
def test_a_session_that_never_ended_is_accepted(family: str | None) -> None:
    assert accepts(Sessions(), family)
