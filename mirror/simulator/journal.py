"""What the simulated API received: request counts by action and the log of write calls.

Contract: `count(action)` is called once per `/apidata.php` request (faulted ones included);
`log_write(...)` once per write request (create, update, delete, subscribe, unsubscribe) with
the outcome the client was sent. Bodies are stored with every `apikey`/`api_key` value replaced
by "***", so a test can print the log without leaking the key. Thread-safe.
"""

from __future__ import annotations

import threading
from collections import Counter

REDACTED = "***"
WRITE_ACTIONS = frozenset({"createcustomer", "updatecustomer", "deletecustomer",
                           "subscribe_customer", "unsubscribe_customer"})


def redact(value):
    """A copy of a parsed JSON value with every apikey/api_key value replaced by "***"."""
    if isinstance(value, dict):
        return {k: REDACTED if k.lower() in ("apikey", "api_key") else redact(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


class Journal:
    """Counts and the write log; see the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._writes: list[dict] = []

    def count(self, action: str) -> None:
        with self._lock:
            self._counts[action] += 1

    def log_write(self, *, action: str, method: str, body, status: int, response,
                  applied: bool, fault: str | None = None) -> None:
        """Record one write request: `body` is the parsed JSON (None if it did not parse),
        `response` the decoded body sent (text when it was not JSON), `applied` whether the
        account changed, `fault` the injected fault kind if any."""
        entry = {"seq": 0, "action": action, "method": method, "body": redact(body), "status": status,
                 "response": response, "applied": applied, "fault": fault}
        with self._lock:
            entry["seq"] = len(self._writes) + 1
            self._writes.append(entry)

    def writes(self) -> list[dict]:
        with self._lock:
            return [dict(e) for e in self._writes]

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)
