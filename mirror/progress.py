"""A one-line progress display for a walk on a terminal: pages, customers, rate and ETA.

Only used when stderr is a terminal; otherwise the JSON log lines say what happened.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from mirror.walk import PAGE_SIZE


class WalkProgress:
    """Redraws at most ten times a second. `expected` is the customer count of the last run."""

    def __init__(self, expected: int, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.expected_pages = max(1, expected // PAGE_SIZE + 1)
        self.started = time.monotonic()
        self._drawn = 0.0

    def __call__(self, page, report) -> None:
        now = time.monotonic()
        if now - self._drawn < 0.1 and not page.is_last:
            return
        self._drawn = now
        elapsed = max(now - self.started, 1e-6)
        rate = report.listed / elapsed
        remaining = max(self.expected_pages - report.pages, 0) * PAGE_SIZE
        eta = f"{remaining / rate:4.0f}s" if rate and not page.is_last else "   -"
        self.stream.write(
            f"\r  page {report.pages:>6}  customers {report.listed:>8}  {rate:>7.0f}/s  "
            f"changed {report.created + report.updated:>6}  eta {eta}"
        )
        if page.is_last:
            self.stream.write("\n")
        self.stream.flush()
