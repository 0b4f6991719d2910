"""How many customer pages to keep in flight: as many as make the walk faster, and no more.

Pages are fixed at 50 records, so a large account is thousands of requests. Whether more
requests in flight help depends on where the time goes, which the client cannot see directly:
over a real network (measured: 50 ms per page) 8 in flight ran 7x faster than 1, while on
loopback with 2 cores extra requests only added contention (0.3-0.8x). Per-request timings
mislead here (a request waiting for the GIL looks like network latency), so the window measures
what matters, pages per second, and climbs: it doubles the limit while each step is clearly
faster, steps back when one is not, and probes again now and then. A 429 halves the ceiling.
"""

from __future__ import annotations


class InFlightWindow:
    """The adaptive limit on pages in flight. Not thread-safe: the walk's own thread owns it."""

    SAMPLE_PAGES = 12  # pages per throughput sample
    GAIN = 1.15  # a larger limit is kept only if it is at least this much faster
    HOLD_SAMPLES = 8  # samples to stay on a settled limit before probing upwards again
    RECOVERY_PAGES = 40  # good pages after a 429 before the ceiling may grow by one

    def __init__(self, maximum: int, initial: int = 1):
        if maximum < 1:
            raise ValueError("maximum must be at least 1")
        self.maximum = maximum
        self.ceiling = maximum
        self.limit = max(1, min(initial, maximum))
        self._sample_start: float | None = None
        self._sample_pages = 0
        self._settled: tuple[int, float] | None = None  # (limit, pages/s) last kept
        self._probing = False
        self._hold = 0
        self._pages_since_throttle = 0

    def record_page(self, now: float) -> int:
        """Account for one page consumed at monotonic time `now`; returns the limit to use."""
        self._pages_since_throttle += 1
        if self.ceiling < self.maximum and self._pages_since_throttle >= self.RECOVERY_PAGES:
            self.ceiling += 1
            self._pages_since_throttle = 0
        if self._sample_start is None:
            self._sample_start = now
            return self.limit
        self._sample_pages += 1
        if self._sample_pages >= self.SAMPLE_PAGES:
            elapsed = max(now - self._sample_start, 1e-9)
            self._judge(self._sample_pages / elapsed)
            self._sample_start = now
            self._sample_pages = 0
        return self.limit

    def _judge(self, rate: float) -> None:
        if self._settled is None or (self._probing and rate >= self._settled[1] * self.GAIN):
            self._settled = (self.limit, rate)
            self._step_up()
        elif self._probing:
            self.limit = self._settled[0]
            self._probing = False
            self._hold = self.HOLD_SAMPLES
        else:
            self._hold -= 1
            if self._hold <= 0:
                # Conditions change (another process, the server's load): re-measure, then probe.
                self._settled = (self.limit, rate)
                self._step_up()
                self._hold = self.HOLD_SAMPLES

    def _step_up(self) -> None:
        bigger = min(self.ceiling, self.limit * 2)
        self._probing = bigger > self.limit
        self.limit = bigger

    def record_throttle(self) -> int:
        """The API answered 429: halve the ceiling (never below one). Returns the new limit."""
        self.ceiling = max(1, min(self.ceiling, self.limit) // 2)
        self.limit = min(self.limit, self.ceiling)
        self._settled = None
        self._probing = False
        self._pages_since_throttle = 0
        return self.limit
