"""Walking every page of `getallcustomers`, several pages in flight, yielded in page order.

The API has no total count, no next link and no stable order, so the walk ends on the first
empty or short page (or a body that is not an array), de-duplicates records that shifted
forward across a page boundary, and is `complete` only once that last page was reached.
Anything that stops it early raises (IncompleteWalkError for a page that kept failing), so a
partial walk can never pass for a complete one.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, NamedTuple, Protocol

import structlog

from mirror.errors import ApiUnavailableError, IncompleteWalkError, WireError
from mirror.id_set import IdSet
from mirror.window import InFlightWindow
from mirror.wire.fields import remote_id_of
from mirror.wire.page import RawRecord

log = structlog.get_logger()

PAGE_SIZE = 50


class PageSource(Protocol):
    """What the walk needs from the API client."""

    def fetch_customer_page(self, page: int) -> list[RawRecord] | None: ...


class ListedRecord(NamedTuple):
    """A record from the listing with its customer id; `text` is its JSON exactly as sent."""

    remote_id: int
    text: str
    value: Any


@dataclass(slots=True)
class Page:
    """One page as the walker sees it, after de-duplication against earlier pages."""

    number: int
    records: list[ListedRecord]
    duplicates: int  # records already seen on an earlier page of this walk
    rejected: list[tuple[RawRecord, WireError]]  # elements with no usable customer id
    is_last: bool


@dataclass
class CustomerWalk:
    """One pass over every page. Iterate it once; then read `complete` and the counters.

    `max_in_flight` caps the adaptive window; `max_pages` guards against a server that never
    ends the listing (reaching it raises IncompleteWalkError rather than returning). `page_size`
    is how many records a full page holds: the documented 50, or what `spmirror check` found
    this account's server to serve (a smaller true size would otherwise end the walk at page 1).
    """

    source: PageSource
    max_in_flight: int = 8
    max_pages: int = 100_000
    page_size: int = PAGE_SIZE
    clock: Callable[[], float] = time.monotonic
    complete: bool = False
    pages: int = 0
    records: int = 0
    duplicates: int = 0
    rejected: int = 0
    peak_in_flight: int = 0
    _seen: IdSet = field(default_factory=IdSet)

    def __iter__(self) -> Iterator[Page]:
        window = InFlightWindow(self.max_in_flight)
        throttled_before = _throttle_count(self.source)
        pending: dict[int, Future] = {}
        next_request = 1
        executor = ThreadPoolExecutor(max_workers=self.max_in_flight, thread_name_prefix="spmirror-page")
        try:
            number = 1
            while True:
                while len(pending) < window.limit and next_request <= self.max_pages:
                    pending[next_request] = executor.submit(self.source.fetch_customer_page, next_request)
                    next_request += 1
                self.peak_in_flight = max(self.peak_in_flight, len(pending))
                if number not in pending:
                    raise IncompleteWalkError(
                        "getallcustomers",
                        f"stopped at the page cap ({self.max_pages} pages) before an empty or short page",
                    )
                page = self._page(number, pending.pop(number))
                throttled_now = _throttle_count(self.source)
                if throttled_now > throttled_before:
                    window.record_throttle()
                    throttled_before = throttled_now
                window.record_page(self.clock())
                log.debug("page_fetched", page=number, records=len(page.records), in_flight=window.limit)
                yield page
                if page.is_last:
                    self.complete = True
                    return
                number += 1
        finally:
            for future in pending.values():
                future.cancel()
            executor.shutdown(wait=True, cancel_futures=True)

    def _page(self, number: int, future: Future) -> Page:
        try:
            raw = future.result()
        except ApiUnavailableError as exc:
            raise IncompleteWalkError(
                "getallcustomers", f"page {number} kept failing, so the walk is incomplete: {exc.detail}",
                status=exc.status, code=exc.code,
            ) from exc
        raw = raw or []
        records: list[ListedRecord] = []
        rejected: list[tuple[RawRecord, WireError]] = []
        duplicates = 0
        seen = self._seen
        for item in raw:
            value = item.value
            # The canonical shape (which the newer `/api/` base may serve) names the id pkcustomerid.
            id_key = "pkcustomerid" if isinstance(value, dict) and "customer_id" not in value and "pkcustomerid" in value else "customer_id"
            try:
                remote_id = remote_id_of(value, id_key)
            except WireError as exc:
                rejected.append((item, exc))
                continue
            if remote_id in seen:
                duplicates += 1
                continue
            seen.add(remote_id)
            records.append(ListedRecord(remote_id, item.text, item.value))
        self.pages += 1
        self.records += len(records)
        self.duplicates += duplicates
        self.rejected += len(rejected)
        return Page(number, records, duplicates, rejected, len(raw) < self.page_size)

    @property
    def remote_ids(self) -> IdSet:
        """Every customer id listed so far in this walk (the walk's own set: read, do not add)."""
        return self._seen


def _throttle_count(source: PageSource) -> int:
    stats = getattr(source, "stats", None)
    return stats.throttled if stats is not None else 0
