"""The webhook receiver inside `spmirror run`: Solar Proof's events as hints, never as facts.

Solar Proof POSTs `customer_created` and `customer_status_change` to URLs we subscribed, signs
nothing, documents no retries, and has sent two payload framings (an object, or an array of
objects). So the receiver:
  - takes events only at POST /webhooks/<token>[/<event>] (mirror.webhook_receiver: uvicorn, a
    wrong token is 404 as if the path did not exist) and answers as soon as the event is queued;
  - queues customers, not events (mirror.webhook_queue): a burst naming one customer fifty times
    costs one fetch, and the queue is bounded;
  - never writes what an event says: a worker takes the customers of a burst, fetches each from
    the API on a few threads WITHOUT the sync lock, and applies what the API confirms through
    the same planner and executor as a pull, under the lock only for the write, in chunks. An
    event for a customer the API does not know writes nothing;
  - never lets a fetch roll back a sync: each customer's base row is read before its fetch, and
    the write skips any customer whose base changed meanwhile (mirror.store.base_guard); that
    customer is fetched again;
  - keeps fields only a payload carries (ABN, site address in the newer customer_created) once
    the fetch confirmed the customer, marked "webhook payload" in history.
Duplicates and out-of-order events are harmless: the fetch always returns the current state.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Callable

import structlog

from mirror.changes import Pulled, RemoteChange
from mirror.clock import utc_now_text
from mirror.customer import Customer
from mirror.errors import ApiError, NotIdentifiedError
from mirror.fingerprint import content_hash, raw_hash
from mirror.store import Store, StoreBusy, to_json
from mirror.store.base_guard import BaseSnapshot, apply_where_base_unchanged, read_bases
from mirror.sync.planner import plan_remote_change
from mirror.webhook_queue import PAYLOAD_ONLY, Hint, HintQueue
from mirror.webhook_receiver import EVENTS, MAX_BODY, ReceiverServer, WebhookApp

__all__ = ["EVENTS", "MAX_BODY", "WebhookReceiver"]

log = structlog.get_logger()

Fetch = Callable[[int, "str | None"], "Customer | None"]


class WebhookReceiver:
    """The HTTP server, the queue, and one worker that confirms and applies events.

    `fetch(remote_id, email)` returns the customer as the API has it now (or None); it is called
    from up to `fetch_workers` threads at once. `apply(write)` runs `write` under the daemon's
    sync lock (or not at all, having said why): only the database write goes through it.
    """

    DEBOUNCE = 0.3  # seconds of quiet that end a burst of events
    LONGEST_WAIT = 1.0  # seconds an event waits at most for its burst to end
    APPLY_EVERY = 50  # fetched customers written per hold of the sync lock...
    APPLY_AFTER = 0.5  # ...or fewer, once the first of them has waited this long
    MAX_ATTEMPTS = 3  # fetches of one customer superseded by syncs before the walk is left to it

    def __init__(self, listen: str, token: str, fetch: Fetch, apply: Callable[[Callable[[], None]], None],
                 database, conflict_policy: str = "manual", *, fetch_workers: int = 4, capacity: int = 10_000):
        self.fetch = fetch
        self.apply = apply
        self.database = database
        self.conflict_policy = conflict_policy  # the daemon sets it again on SIGHUP
        self.queue = HintQueue(capacity, quiet=self.DEBOUNCE, longest=self.LONGEST_WAIT)
        self.server = ReceiverServer(listen, WebhookApp(token, self.queue.offer))
        self.port = self.server.port
        self._fetches = _FetchPool(fetch, fetch_workers)
        self._batches = 0
        self._worker = threading.Thread(target=self._work, name="spmirror-webhook-worker", daemon=True)

    def start(self) -> None:
        self._fetches.start()
        self._worker.start()
        self.server.start()
        log.info("webhooks_listening", port=self.port)

    def stop(self) -> None:
        """Stop taking events, then let a write in progress finish (queued events are dropped:
        the next full sync catches them up)."""
        self.server.stop()
        self.queue.close()
        self._fetches.close()
        if self._worker.is_alive():
            self._worker.join(timeout=5)

    # -- the worker ----------------------------------------------------------------------

    def _work(self) -> None:
        while (batch := self.queue.take()) is not None:
            try:
                self._confirm_and_apply(batch)
            except Exception as exc:  # a bad batch must not stop the worker
                log.error("webhook_processing_failed", error=repr(exc))
            finally:
                self.queue.done(h.remote_id for h in batch)

    def _confirm_and_apply(self, batch: list[Hint]) -> None:
        started = time.monotonic()
        self._batches += 1
        batch_number = self._batches  # results of an earlier batch cut short are not this one's
        with Store.open(self.database) as store:
            # Read before any fetch starts: a write later compares against it (base_guard).
            before = read_bases(store, [h.remote_id for h in batch])
            for hint in batch:
                # The email the mirror last saw beats the payload's (a payload is unsigned): it
                # only matters on a server without getcustomer, where a lookup by email counts
                # only if it returns this very id.
                known = before.get(hint.remote_id)
                email = (known.fields.get("customeremail") if known else None) or \
                    hint.customer.fields.get("customeremail")
                self._fetches.submit(hint, email, batch_number)
            ready: list[tuple[Hint, Customer]] = []
            first_ready = 0.0
            outstanding = len(batch)
            while outstanding:
                wait = None if not ready else max(0.0, first_ready + self.APPLY_AFTER - time.monotonic())
                result = self._fetches.result(wait)
                if result is _CLOSED:
                    return
                if result is not None and result[0] == batch_number:
                    outstanding -= 1
                    confirmed = _confirmed(*result[1:])
                    if confirmed is not None:
                        if not ready:
                            first_ready = time.monotonic()
                        ready.append(confirmed)
                if ready and (len(ready) >= self.APPLY_EVERY or not outstanding
                              or time.monotonic() >= first_ready + self.APPLY_AFTER):
                    try:
                        self._write(store, ready, before)
                    except StoreBusy as exc:  # a GUI holds the file: the next walk brings these
                        log.warning("webhook_dropped", customers=[h.remote_id for h, _c in ready], reason=str(exc))
                    except Exception as exc:  # the batch's other fetches still come in: keep counting
                        log.error("webhook_write_failed", customers=[h.remote_id for h, _c in ready], error=repr(exc))
                    ready = []
        log.info("webhook_batch_done", customers=len(batch), seconds=round(time.monotonic() - started, 3))

    def _write(self, store: Store, fetched: list[tuple[Hint, Customer]], before: dict[int, BaseSnapshot]) -> None:
        """Plan against the bases read before the fetches and write under the sync lock, where
        each base is still the same; fetch the others again."""
        changes: list[RemoteChange] = []
        payload_fields: dict[int, frozenset[str]] = {}
        hints = {hint.remote_id: hint for hint, _current in fetched}
        for hint, current in fetched:
            known = before.get(current.remote_id)
            customer, extra = _with_payload_fields(current, hint.customer, known.fields if known else {})
            if extra:
                payload_fields[customer.remote_id] = extra
            text = to_json(current.raw)
            pulled = Pulled(customer, text, raw_hash(text), content_hash(customer))
            changes.append(plan_remote_change(pulled, known.content_hash if known else None,
                                              known.fields if known else None))
        outcome: dict = {}
        log.info("webhook_fetched", customers=sorted(hints))  # the write waits for the sync lock now

        def write() -> None:
            outcome["applied"], outcome["stale"] = apply_where_base_unchanged(
                store, changes, before, run_id="webhook", now=utc_now_text(),
                conflict_policy=self.conflict_policy, payload_fields=payload_fields)

        self.apply(write)
        if not outcome:
            return  # not written, and the daemon said why (webhook_dropped)
        stale = set(outcome["stale"])
        held = {c.remote_id for c in outcome["applied"].held}
        for change in changes:
            if change.remote_id in held:
                log.info("webhook_held", remote_id=change.remote_id,
                         reason="a create with this email is not settled yet; the next complete walk decides")
            elif change.remote_id not in stale:
                log.info("webhook_applied", remote_id=change.remote_id, change=change.kind,
                         fields=sorted(change.changed))
        retry = [hints[i] for i in sorted(stale) if hints[i].attempts + 1 < self.MAX_ATTEMPTS]
        for remote_id in sorted(stale):
            again = any(h.remote_id == remote_id for h in retry)
            log.info("webhook_superseded", remote_id=remote_id, fetching_again=again,
                     reason="a sync wrote this customer while it was being fetched" +
                            ("" if again else "; the next walk brings its state"))
        self.queue.retry(retry)


_CLOSED = object()


class _FetchPool:
    """`workers` daemon threads running `fetch`, one customer at a time, results in a queue.

    Daemon threads, not a ThreadPoolExecutor: the interpreter joins an executor's threads at
    exit, so a fetch stuck on a slow API would hold up the daemon's SIGTERM exit.
    """

    def __init__(self, fetch: Fetch, workers: int):
        self._fetch = fetch
        self._jobs: queue.SimpleQueue[tuple[Hint, str | None, int] | None] = queue.SimpleQueue()
        self._results: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._run, name=f"spmirror-webhook-fetch-{n}", daemon=True)
                         for n in range(max(1, workers))]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, hint: Hint, email: str | None, batch: int) -> None:
        self._jobs.put((hint, email, batch))

    def result(self, timeout: float | None) -> tuple | object | None:
        """(batch, hint, customer or None, error or None) of the next finished fetch; None after
        `timeout` seconds without one; _CLOSED once closed."""
        try:
            return self._results.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        self._results.put(_CLOSED)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            hint, email, batch = job
            try:
                self._results.put((batch, hint, self._fetch(hint.remote_id, email), None))
            except Exception as exc:  # reported by the worker, which counts every result
                self._results.put((batch, hint, None, exc))


def _confirmed(hint: Hint, current: Customer | None, error: Exception | None) -> tuple[Hint, Customer] | None:
    """The fetched customer with its hint, or None (logged) when the API did not confirm it."""
    if isinstance(error, NotIdentifiedError):
        log.warning("webhook_unconfirmed", remote_id=hint.remote_id,
                    reason="the API cannot read this customer by id; the next walk picks it up")
    elif isinstance(error, ApiError):
        log.warning("webhook_fetch_failed", remote_id=hint.remote_id, error=str(error))
    elif error is not None:
        log.error("webhook_fetch_failed", remote_id=hint.remote_id, error=repr(error))
    elif current is None:
        log.warning("webhook_unconfirmed", remote_id=hint.remote_id,
                    reason="the API does not know this customer; nothing written")
    elif current.remote_id != hint.remote_id:
        log.warning("webhook_unconfirmed", remote_id=hint.remote_id,
                    reason=f"the API answered with customer {current.remote_id}; nothing written")
    else:
        return hint, current
    return None


def _with_payload_fields(current: Customer, hint: Customer, known: dict) -> tuple[Customer, frozenset[str]]:
    """The fetched customer, plus ABN/site address from the payload, only where neither the fetch
    nor the mirror has a value: a late or forged event must not replace what is known."""
    extra = frozenset(n for n in PAYLOAD_ONLY
                      if n in hint.carried and hint.fields.get(n) is not None
                      and current.fields.get(n) is None and known.get(n) is None)
    if not extra:
        return current, extra
    fields = dict(current.fields)
    fields.update({n: hint.fields[n] for n in extra})
    return Customer(current.remote_id, fields, current.carried | extra, current.shape, current.raw,
                    current.notes, current.projects, current.owner, current.problems), extra
