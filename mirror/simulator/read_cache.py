"""Each customer's read-shape JSON, rendered once and reused until it or the quirks change.

Serving a page is then a join of cached bytes, which keeps the simulator from ever being the
bottleneck of a benchmark. Not locked: the Account calls it under its own lock.
"""

from __future__ import annotations

from . import render
from .quirks import Quirks


class ReadShapeCache:
    def __init__(self, quirks: Quirks, users: list[dict]):
        self.quirks = quirks
        self.users = users
        self._bodies: dict[int, bytes] = {}
        self._owners: dict[str, dict] = {}
        self._quirks_key = None

    def refresh(self) -> None:
        """Drop every body if the quirks changed since they were rendered."""
        key = self.quirks.key()
        if key != self._quirks_key:
            self._bodies.clear()
            self._owners = {u["user_id"]: render.owner_info(u, self.quirks) for u in self.users}
            self._quirks_key = key

    def body(self, record: dict) -> bytes:
        """The record's read shape as JSON bytes (call refresh() first)."""
        body = self._bodies.get(record["id"])
        if body is None:
            body = render.read_bytes(record, self._owners[record["owner"]], self.quirks)
            self._bodies[record["id"]] = body
        return body

    def forget(self, customer_id: int) -> None:
        """The customer changed or left: render it again next time."""
        self._bodies.pop(customer_id, None)
