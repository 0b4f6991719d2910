"""The pure parts of talking to the API: the in-flight window and the retry arithmetic."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

from mirror.retry import RetryPolicy, parse_retry_after
from mirror.window import InFlightWindow


def drive(window: InFlightWindow, pages: int, seconds_per_page) -> list[int]:
    """Feed `pages` pages whose cost depends on the current limit; return the limits seen."""
    now, limits = 0.0, []
    for _ in range(pages):
        now += seconds_per_page(window.limit)
        limits.append(window.record_page(now))
    return limits


def test_window_opens_when_the_walk_is_latency_bound():
    """When pages/s grows with the limit (network latency), the window climbs to its maximum."""
    window = InFlightWindow(maximum=8)
    limits = drive(window, 100, lambda limit: 0.05 / limit)
    assert limits[-1] == 8 and limits.index(8) < 60


def test_window_stays_shut_when_more_in_flight_is_no_faster():
    """When throughput is flat (CPU-bound on loopback), the window returns to one."""
    window = InFlightWindow(maximum=8)
    limits = drive(window, 60, lambda limit: 0.002)
    assert limits[-1] == 1
    assert max(limits) == 2  # it probed once, found no gain, and stepped back


def test_window_settles_where_the_gain_stops():
    """Throughput that saturates at 4 in flight settles the window at 4."""
    window = InFlightWindow(maximum=16)
    limits = drive(window, 100, lambda limit: 0.05 / min(limit, 4))
    assert limits[-1] == 4


def test_throttle_halves_the_ceiling_and_it_recovers_slowly():
    """A 429 halves the window; the ceiling grows back by one only after a run of good pages."""
    window = InFlightWindow(maximum=8)
    drive(window, 100, lambda limit: 0.05 / limit)
    assert window.record_throttle() == 4
    assert window.ceiling == 4
    drive(window, InFlightWindow.RECOVERY_PAGES - 1, lambda limit: 0.05 / limit)
    assert window.ceiling == 4
    drive(window, 1, lambda limit: 0.05 / limit)
    assert window.ceiling == 5
    for _ in range(8):
        window.record_throttle()
    assert window.limit == 1 and window.ceiling == 1


def test_backoff_is_jittered_exponential_and_capped():
    """Waits are drawn from a doubling window, never above max_delay."""
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0)
    rng = random.Random(1)
    for failures, window in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:
        delays = [policy.delay(failures, None, rng) for _ in range(200)]
        assert 0 <= min(delays) and max(delays) <= window
        assert max(delays) > window * 0.8  # jitter spreads over the whole window


def test_retry_after_is_honoured_with_a_cap():
    """A server-requested wait is used as is, up to max_retry_after."""
    policy = RetryPolicy(max_retry_after=10)
    assert policy.delay(1, 3.0, random.Random()) == 3.0
    assert policy.delay(1, 3600.0, random.Random()) == 10


def test_retry_after_header_forms():
    """Retry-After may be seconds or an HTTP date; garbage is ignored."""
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
