"""The pure limiting algorithms: exact counts, honest Retry-After, calendar periods."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from dijk.ratelimit.algorithms import (
    Algorithm,
    civil_from_days,
    days_from_civil,
    gcra,
    quota,
    quota_period,
    sliding_window,
    sliding_window_refund,
)

T0 = 1_700_000_000_000.0  # ms, an arbitrary instant


def test_sliding_window_admits_exactly_the_limit_inside_one_window() -> None:
    window = 60_000.0
    start = (T0 // window) * window  # the start of a window: no previous weight
    state = None
    admitted = 0
    for step in range(300):
        outcome, new = sliding_window(start + step, window, 100, 1, state)
        if outcome.allowed:
            state = new
            admitted += 1
    assert admitted == 100


def test_sliding_window_remaining_counts_down_and_refusal_has_retry_after() -> None:
    window = 10_000.0
    start = (T0 // window) * window
    state = None
    remaining = []
    for _ in range(3):
        outcome, state = sliding_window(start, window, 3, 1, state)
        remaining.append(outcome.remaining)
    assert remaining == [2, 1, 0]
    refused, _ = sliding_window(start, window, 3, 1, state)
    assert not refused.allowed
    assert refused.remaining == 0
    assert 0 < refused.retry_after_ms <= 2 * window


@given(
    limit=st.integers(1, 50),
    previous=st.integers(0, 60),
    current=st.integers(0, 60),
    offset=st.floats(0, 0.999),
)
def test_sliding_window_retry_after_is_honest(
    limit: int, previous: int, current: int, offset: float
) -> None:
    """Refused now, admitted at now + Retry-After, and not noticeably earlier."""
    window = 1000.0
    index = T0 // window
    now = index * window + offset * window
    state = (index, float(current), float(previous))
    outcome, _ = sliding_window(now, window, limit, 1, state)
    if outcome.allowed:
        return
    later, _ = sliding_window(now + outcome.retry_after_ms, window, limit, 1, state)
    assert later.allowed
    if outcome.retry_after_ms > 2:
        earlier, _ = sliding_window(now + outcome.retry_after_ms - 2, window, limit, 1, state)
        assert not earlier.allowed


def test_sliding_window_weights_the_previous_window() -> None:
    window = 1000.0
    index = T0 // window
    state = (index - 1, 100.0, 0.0)  # 100 requests in the previous window
    # A quarter into the new window, 75 % of the previous window still counts: 25 left.
    admitted = 0
    for _ in range(100):
        outcome, new = sliding_window(index * window + 250, window, 100, 1, state)
        if outcome.allowed:
            state, admitted = new, admitted + 1
    assert admitted == 25


def test_sliding_window_refund_gives_back_in_the_window_it_was_taken() -> None:
    state = (10.0, 5.0, 3.0)
    assert sliding_window_refund(state, 10, 1) == (10.0, 4.0, 3.0)
    assert sliding_window_refund(state, 9, 1) == (10.0, 5.0, 2.0)
    assert sliding_window_refund(state, 7, 1) == state


def test_gcra_allows_the_burst_then_one_per_interval() -> None:
    interval = 100.0  # 10 per second
    tat = None
    admitted = 0
    for _ in range(30):
        outcome, new = gcra(T0, interval, 5, 1, tat)
        if outcome.allowed:
            tat = new
            admitted += 1
    assert admitted == 5
    refused, _ = gcra(T0, interval, 5, 1, tat)
    assert not refused.allowed
    assert refused.retry_after_ms == 100
    again, _ = gcra(T0 + 100, interval, 5, 1, tat)
    assert again.allowed
    assert again.remaining == 0


def test_gcra_remaining_starts_at_burst_minus_one() -> None:
    outcome, _ = gcra(T0, 50.0, 20, 1, None)
    assert outcome.allowed
    assert outcome.remaining == 19


@given(st.integers(-1000, 200_000))
def test_civil_day_conversion_matches_datetime(days: int) -> None:
    date = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=days)
    assert civil_from_days(days) == (date.year, date.month, date.day)
    assert days_from_civil(date.year, date.month, date.day) == days


def test_month_quota_period_ends_at_the_next_month_utc() -> None:
    now = datetime(2024, 2, 29, 23, 59, tzinfo=UTC).timestamp() * 1000
    period, ends = quota_period(now, Algorithm.QUOTA_MONTH)
    assert ends == datetime(2024, 3, 1, tzinfo=UTC).timestamp() * 1000
    december = datetime(2025, 12, 31, 12, tzinfo=UTC).timestamp() * 1000
    _, ends = quota_period(december, Algorithm.QUOTA_MONTH)
    assert ends == datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000
    assert period == 2024 * 12 + 1


def test_day_quota_counts_then_refuses_until_midnight_utc() -> None:
    now = datetime(2025, 6, 1, 22, 0, tzinfo=UTC).timestamp() * 1000
    state = None
    for _ in range(3):
        outcome, state, _ = quota(now, Algorithm.QUOTA_DAY, 3, 1, state)
        assert outcome.allowed
    refused, _, _ = quota(now, Algorithm.QUOTA_DAY, 3, 1, state)
    assert not refused.allowed
    assert refused.retry_after_ms == 2 * 3600 * 1000
    tomorrow, _, _ = quota(now + 2 * 3600 * 1000, Algorithm.QUOTA_DAY, 3, 1, state)
    assert tomorrow.allowed
    assert tomorrow.remaining == 2
