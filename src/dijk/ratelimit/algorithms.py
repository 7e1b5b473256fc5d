"""The limiting algorithms as pure functions of (state, now): no I/O, no clock of their own.

The in-process backend calls these directly; the Redis backend runs the same arithmetic in
one Lua script (:mod:`dijk.ratelimit.scripts`), in the same order of floating-point
operations, and the contract suite checks that both answer alike. Times are milliseconds
since the Unix epoch as floats.

- **Sliding-window counter** (the default): two fixed windows, the previous one weighted by
  how much of it still overlaps the rolling window. Constant memory per key. It is exact for
  a burst inside one window; across a window boundary it assumes the previous window's
  requests were spread evenly, so a burst at the very end of one window followed by one at
  the start of the next can admit up to ``limit * elapsed / window`` more in a rolling
  window (never more than ``limit`` in any fixed window).
- **GCRA** (generic cell rate algorithm, a token bucket kept as one timestamp): ``burst``
  requests at once, then one every ``per_s / limit`` seconds.
- **Calendar quota**: a counter per UTC day or month, reset at the period's start.
"""

from __future__ import annotations

import math
from enum import IntEnum
from typing import NamedTuple

DAY_MS = 86_400_000.0


class Algorithm(IntEnum):
    """Codes shared with the Lua script (keep in step with ``scripts.py``)."""

    SLIDING_WINDOW = 1
    GCRA = 2
    QUOTA_DAY = 3
    QUOTA_MONTH = 4


class Outcome(NamedTuple):
    """One rule's answer. ``token`` identifies the window counted in (for a refund).

    A named tuple, not a dataclass: one is made per rule per request.
    """

    allowed: bool
    remaining: int
    reset_ms: int
    retry_after_ms: int
    token: int = 0


# ---- sliding-window counter ---------------------------------------------------------------

SlidingState = tuple[float, float, float]  # (window index, current count, previous count)


def sliding_window(
    now: float, window_ms: float, limit: int, cost: int, state: SlidingState | None
) -> tuple[Outcome, SlidingState]:
    """Decide one request; returns the outcome and the state to store if it is admitted."""
    index = math.floor(now / window_ms)
    stored, current, previous = state if state is not None else (-1.0, 0.0, 0.0)
    if stored != index:
        previous = current if stored == index - 1 else 0.0
        current = 0.0
    elapsed = (now - index * window_ms) / window_ms
    used = previous * (1 - elapsed) + current
    reset = (index + 1) * window_ms - now
    if used + cost <= limit:
        current = current + cost
        used = used + cost
        remaining = max(0, math.floor(limit - used))
        return Outcome(True, remaining, math.ceil(reset), 0, index), (index, current, previous)
    if current + cost > limit:
        # Not before the next window, and then only once the weight of this one has decayed.
        retry = reset + max(0.0, 1 - (limit - cost) / current) * window_ms
    else:
        retry = (1 - (limit - cost - current) / previous - elapsed) * window_ms
    remaining = max(0, math.floor(limit - used))
    return Outcome(False, remaining, math.ceil(reset), max(1, math.ceil(retry)), index), (
        index,
        current,
        previous,
    )


def sliding_window_refund(state: SlidingState, token: int, cost: int) -> SlidingState:
    """Give back ``cost`` counted in window ``token`` (if that window is still remembered)."""
    stored, current, previous = state
    if stored == token:
        return stored, max(0.0, current - cost), previous
    if stored == token + 1:
        return stored, current, max(0.0, previous - cost)
    return state


# ---- GCRA --------------------------------------------------------------------------------


def gcra(
    now: float, interval_ms: float, burst: int, cost: int, tat: float | None
) -> tuple[Outcome, float]:
    """``tat`` is the theoretical arrival time; returns the outcome and the new ``tat``."""
    current = now if tat is None or tat < now else tat
    new_tat = current + interval_ms * cost
    allow_at = new_tat - interval_ms * burst
    if now >= allow_at:
        remaining = math.floor((now - allow_at) / interval_ms)
        return Outcome(True, remaining, math.ceil(new_tat - now), 0), new_tat
    return Outcome(False, 0, math.ceil(current - now), max(1, math.ceil(allow_at - now))), current


# ---- calendar quotas ---------------------------------------------------------------------


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 (H. Hinnant's algorithm; mirrored in the Lua script)."""
    year -= 1 if month <= 2 else 0
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month - 3 if month > 2 else month + 9) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def civil_from_days(days: int) -> tuple[int, int, int]:
    days += 719468
    era = days // 146097
    day_of_era = days - era * 146097
    year_of_era = (
        day_of_era - day_of_era // 1460 + day_of_era // 36524 - day_of_era // 146096
    ) // 365
    year = year_of_era + era * 400
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    shifted_month = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * shifted_month + 2) // 5 + 1
    month = shifted_month + 3 if shifted_month < 10 else shifted_month - 9
    return year + (1 if month <= 2 else 0), month, day


def quota_period(now: float, algorithm: Algorithm) -> tuple[int, float]:
    """(period id, end of the period in ms) for the UTC day or month containing ``now``."""
    day = math.floor(now / DAY_MS)
    if algorithm is Algorithm.QUOTA_DAY:
        return day, (day + 1) * DAY_MS
    year, month, _ = civil_from_days(day)
    next_year, next_month = (year + 1, 1) if month == 12 else (year, month + 1)
    return year * 12 + month - 1, days_from_civil(next_year, next_month, 1) * DAY_MS


QuotaState = tuple[int, float]  # (period id, count)


def quota(
    now: float, algorithm: Algorithm, limit: int, cost: int, state: QuotaState | None
) -> tuple[Outcome, QuotaState, float]:
    """Returns the outcome, the state to store, and when that state may expire (ms)."""
    period, ends = quota_period(now, algorithm)
    count = state[1] if state is not None and state[0] == period else 0.0
    reset = math.ceil(ends - now)
    if count + cost <= limit:
        count += cost
        return Outcome(True, int(limit - count), reset, 0, period), (period, count), ends
    return (
        Outcome(False, max(0, int(limit - count)), reset, max(1, reset), period),
        (
            period,
            count,
        ),
        ends,
    )
