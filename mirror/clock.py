"""Wall-clock time as the mirror stores it: UTC, ISO 8601, to the second, with a Z."""

from __future__ import annotations

from datetime import datetime, timezone


def utc_now_text() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
