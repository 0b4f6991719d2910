"""The customers webhook events named, waiting to be fetched: one entry per customer, bounded.

An event is only a hint that a customer changed, and a fetch returns the customer as it is
now, so fifty events for one customer need one fetch, not fifty: a new event for a customer
already waiting merges into its entry. An event for a customer whose fetch is in flight waits
beside it and becomes due once that fetch is done (it may describe a state the fetch missed).

A batch is due once events have been quiet for `quiet` seconds, or the oldest waiting entry has
waited `longest` seconds (a steady stream must not starve the fetches). Time comes from `clock`,
so the rules can be checked without sleeping (`take_due`); `take` is the blocking form.

The queue holds at most `capacity` customers; `offer` refuses an event that would go beyond
(nothing of it is queued), and the receiver answers it 503.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from mirror.customer import Customer

# Fields an event payload may carry that the list shape lacks; kept once the API confirms the customer.
PAYLOAD_ONLY = ("customerabn", "customer_site_address")


@dataclass(slots=True)
class Hint:
    """A customer to fetch: the newest event's view of it, and how often a fetch was superseded."""

    customer: Customer
    since: float  # when it started waiting
    attempts: int = 0

    @property
    def remote_id(self) -> int:
        return self.customer.remote_id


def merge_hints(older: Customer, newer: Customer) -> Customer:
    """The newer event's customer, plus payload-only fields (ABN, site address) that only the
    older one carried: a status change after a customer_created must not lose the created
    event's ABN. A field the newer event carries, even empty, is the newer event's word."""
    kept = {n: older.fields[n] for n in PAYLOAD_ONLY
            if n in older.carried and n not in newer.carried and older.fields.get(n) is not None}
    if not kept:
        return newer
    return Customer(newer.remote_id, {**newer.fields, **kept}, newer.carried | frozenset(kept), newer.shape,
                    newer.raw, newer.notes, newer.projects, newer.owner, newer.problems)


class HintQueue:
    """See the module docstring. Thread-safe."""

    def __init__(self, capacity: int = 10_000, quiet: float = 0.3, longest: float = 1.0, max_batch: int = 500,
                 clock: Callable[[], float] = time.monotonic):
        self.capacity = capacity
        self.quiet = quiet
        self.longest = longest
        self.max_batch = max_batch
        self._clock = clock
        self._ready = threading.Condition()
        self._waiting: dict[int, Hint] = {}  # insertion order: the first entry waited longest
        self._beside_flight: dict[int, Hint] = {}  # events for customers being fetched right now
        self._in_flight: set[int] = set()
        self._last_offer = 0.0
        self._closed = False

    def __len__(self) -> int:
        with self._ready:
            return len(self._waiting) + len(self._beside_flight)

    def offer(self, customers: Iterable[Customer]) -> bool:
        """Queue the customers one event names; False (and nothing queued) when that would put
        more than `capacity` customers in the queue."""
        customers = list(customers)
        with self._ready:
            new = {c.remote_id for c in customers} - self._waiting.keys() - self._beside_flight.keys()
            if len(self._waiting) + len(self._beside_flight) + len(new) > self.capacity:
                return False
            now = self._clock()
            for customer in customers:
                self._put(customer, now, attempts=0, newest=True)
            self._last_offer = now
            self._ready.notify_all()
            return True

    def retry(self, hints: Iterable[Hint]) -> None:
        """Queue again customers whose fetch was superseded (capacity does not apply: they were
        accepted once). Each keeps its count of attempts."""
        with self._ready:
            now = self._clock()
            for hint in hints:
                self._put(hint.customer, now, attempts=hint.attempts + 1, newest=False)
            self._ready.notify_all()

    def _put(self, customer: Customer, now: float, attempts: int, newest: bool) -> None:
        """`newest`: `customer` comes from a later event than an entry already held (a retry's
        comes from an earlier one)."""
        place = self._beside_flight if customer.remote_id in self._in_flight else self._waiting
        held = place.get(customer.remote_id)
        if held is None:
            place[customer.remote_id] = Hint(customer, now, attempts)
        else:
            held.customer = merge_hints(held.customer, customer) if newest else merge_hints(customer, held.customer)
            held.attempts = min(held.attempts, attempts)  # a new event earns a fresh start

    def take_due(self) -> list[Hint]:
        """The batch due now (marked in flight), or [] when none is."""
        with self._ready:
            return self._take_due(self._clock())

    def take(self, timeout: float | None = None) -> list[Hint] | None:
        """Wait for a due batch and return it (marked in flight): [] after `timeout` seconds
        without one, None once the queue is closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._ready:
            while not self._closed:
                batch = self._take_due(self._clock())
                if batch:
                    return batch
                wait = self._until_due(self._clock())
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return []
                    wait = left if wait is None else min(wait, left)
                self._ready.wait(wait)
            return None

    def done(self, remote_ids: Iterable[int]) -> None:
        """These fetches are over: events that came for them meanwhile wait as new entries."""
        with self._ready:
            now = self._clock()
            for remote_id in remote_ids:
                self._in_flight.discard(remote_id)
                hint = self._beside_flight.pop(remote_id, None)
                if hint is not None:
                    hint.since = now
                    self._waiting[remote_id] = hint
                    self._last_offer = max(self._last_offer, now)
            self._ready.notify_all()

    def close(self) -> None:
        """Wake `take` for good (it returns None); what is queued is dropped."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    def _until_due(self, now: float) -> float | None:
        if not self._waiting:
            return None
        oldest = next(iter(self._waiting.values())).since
        return max(0.0, min(self._last_offer + self.quiet, oldest + self.longest) - now)

    def _take_due(self, now: float) -> list[Hint]:
        if not self._waiting or self._until_due(now) > 0:
            return []
        batch = []
        for remote_id in list(self._waiting)[:self.max_batch]:
            batch.append(self._waiting.pop(remote_id))
            self._in_flight.add(remote_id)
        return batch
