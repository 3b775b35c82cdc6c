"""Timestamps: docs/api.md's seconds in UTC with `Z`, and the log's milliseconds, whatever the input's zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from core.clock import rfc3339, rfc3339_ms

MOMENTS = st.datetimes(
    min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.timezones(no_cache=True)
)


def test_an_offset_moment_is_written_in_utc_with_z() -> None:
    moment = datetime(2026, 11, 23, 12, 0, 5, 999_999, tzinfo=timezone(timedelta(hours=2)))
    assert rfc3339(moment) == "2026-11-23T10:00:05Z"
    assert rfc3339_ms(moment) == "2026-11-23T10:00:05.999Z"


def test_milliseconds_are_truncated_and_always_three_digits() -> None:
    assert rfc3339_ms(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05.000Z"
    assert rfc3339_ms(datetime(2026, 1, 2, 3, 4, 5, 7_999, tzinfo=UTC)) == "2026-01-02T03:04:05.007Z"


@given(MOMENTS)
def test_both_forms_parse_back_to_the_same_instant_and_sort_as_time_does(moment: datetime) -> None:
    utc = moment.astimezone(UTC)
    assert datetime.fromisoformat(rfc3339(moment)) == utc.replace(microsecond=0)
    assert datetime.fromisoformat(rfc3339_ms(moment)) == utc.replace(microsecond=utc.microsecond // 1000 * 1000)
    assert len(rfc3339_ms(moment)) == 24
    later = utc + timedelta(milliseconds=1)  # in UTC: a zone's wall clock may step back at a DST change
    assert rfc3339_ms(later) > rfc3339_ms(moment)
