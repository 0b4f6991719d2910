"""When to try an API call again, and how long to wait first.

Pure arithmetic: the API client owns the loop, the clock and the sleeping, so tests drive it
with a fake clock and no real waits.
"""

from __future__ import annotations

import email.utils
import random
from dataclasses import dataclass
from datetime import datetime, timezone


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by attempts and by an overall deadline.

    attempts        tries in all, the first included
    base_delay      the backoff window before the second try; it doubles with each try
    max_delay       the largest backoff window
    max_retry_after the longest server-requested wait (Retry-After) honoured
    deadline        seconds from the first try after which no new try starts
    """

    attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 120.0
    deadline: float = 300.0

    def delay(self, failures: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait after the `failures`-th failed try (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        window = min(self.max_delay, self.base_delay * 2 ** (failures - 1))
        return rng.uniform(0.0, window)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None if absent/garbled."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())
