"""The account's webhook subscriptions (digest §5): stored and listed (delivery: `delivery.py`).

Contract: one subscription per (hookUrl, type); subscribing the same pair again is a no-op;
unsubscribing a URL removes every type it had (digest §5.2); `urls(type)` lists the URLs an
event of that type goes to. Thread-safe.
"""

from __future__ import annotations

import threading


class Subscriptions:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._types: dict[str, list[str]] = {}  # hookUrl -> types, in subscription order

    def subscribe(self, url: str, kind: str) -> None:
        with self._lock:
            kinds = self._types.setdefault(url, [])
            if kind not in kinds:
                kinds.append(kind)

    def unsubscribe(self, url: str) -> bool:
        """Remove every type for `url`; False if it had none."""
        with self._lock:
            return self._types.pop(url, None) is not None

    def urls(self, kind: str) -> list[str]:
        """The URLs subscribed to `kind`, in the order they were first subscribed."""
        with self._lock:
            return [url for url, kinds in self._types.items() if kind in kinds]

    def list(self) -> list[dict]:
        """[{"hookUrl", "type_request"}] in subscription order."""
        with self._lock:
            return [{"hookUrl": url, "type_request": kind}
                    for url, kinds in self._types.items() for kind in kinds]
