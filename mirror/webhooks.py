"""The webhook receiver inside `spmirror run`: Solar Proof's events as hints, never as facts.

Solar Proof POSTs `customer_created` and `customer_status_change` to URLs we subscribed, signs
nothing, documents no retries, and has sent two payload framings (an object, or an array of
objects). So the receiver:
  - takes events only at POST /webhooks/<token>[/<event>] (a wrong token is 404, as if the path
    did not exist), answers at once (the API wants 200 within 5 s), and queues the event;
  - never writes what an event says: a worker collects the customers named in a burst, waits a
    moment for the burst to end, fetches each from the API, and applies what the API confirms
    through the same planner and executor as a pull; an event for a customer the API does not
    know writes nothing;
  - keeps fields only a payload carries (ABN, site address in the newer customer_created) once
    the fetch confirmed the customer, marked "webhook payload" in history.
Duplicates and out-of-order events are harmless: the fetch always returns the current state.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import structlog

from mirror.changes import Pulled
from mirror.clock import utc_now_text
from mirror.customer import Customer
from mirror.errors import ApiError, NotIdentifiedError, WireError
from mirror.fingerprint import content_hash, raw_hash
from mirror.store import Store, to_json
from mirror.store.remote_writes import apply_remote_changes
from mirror.sync.planner import plan_remote_change
from mirror.wire import customers_from_webhook

log = structlog.get_logger()

MAX_BODY = 64 * 1024
EVENTS = ("customer_created", "customer_status_change")
# Fields an event payload may carry that the list shape lacks; kept once the API confirms the customer.
PAYLOAD_ONLY = ("customerabn", "customer_site_address")


class WebhookReceiver:
    """An HTTP server on its own threads, and one worker that confirms and applies events.

    `fetch(remote_id, email)` returns the customer as the API has it now (or None);
    `apply(callable)` runs a callable under the daemon's sync lock (the fetch and the write).
    """

    DEBOUNCE = 0.3  # seconds of quiet that end a burst of events

    def __init__(self, listen: str, token: str, fetch: Callable[[int, str | None], Customer | None],
                 apply: Callable[[Callable[[], None]], None], database, conflict_policy: str = "manual"):
        host, _, port = listen.rpartition(":")
        self.token = token
        self.fetch = fetch
        self.apply = apply
        self.database = database
        self.conflict_policy = conflict_policy
        self.events: queue.Queue[list[Customer] | None] = queue.Queue()
        self.server = ThreadingHTTPServer((host.strip("[]"), int(port)), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._threads = [
            threading.Thread(target=self.server.serve_forever, name="spmirror-webhooks", daemon=True),
            threading.Thread(target=self._work, name="spmirror-webhook-worker", daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()
        log.info("webhooks_listening", port=self.port)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.events.put(None)
        self._threads[1].join(timeout=30)

    # -- HTTP ----------------------------------------------------------------------------

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "spmirror"
            sys_version = ""
            timeout = 10  # seconds: a client that stalls mid-body frees its thread

            def log_message(self, *_args: Any) -> None:  # the URL holds the token: never log it
                pass

            def _answer(self, status: int, message: str) -> None:
                body = json.dumps({"message": message}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _ours(self) -> bool:
                parts = self.path.split("?", 1)[0].strip("/").split("/")
                return (len(parts) in (2, 3) and parts[0] == "webhooks" and bool(receiver.token)
                        and parts[1] == receiver.token and (len(parts) == 2 or parts[2] in EVENTS))

            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                if not self._ours():
                    return self._answer(404, "not found")
                length = self.headers.get("Content-Length")
                if length is None or not length.isdigit():
                    return self._answer(411, "Content-Length required")
                if int(length) > MAX_BODY:
                    return self._answer(413, f"body over {MAX_BODY} bytes")
                try:
                    body = json.loads(self.rfile.read(int(length)) or b"null")
                    customers = customers_from_webhook(body)
                except (ValueError, RecursionError, WireError) as exc:
                    log.warning("webhook_rejected", reason=str(exc)[:200])
                    return self._answer(400, "not a customer event")
                self._answer(200, "ok")
                receiver.events.put(customers)
                log.info("webhook_received", customers=[c.remote_id for c in customers])

            def _wrong_method(self) -> None:
                self._answer(405 if self._ours() else 404, "use POST" if self._ours() else "not found")

            do_GET = do_PUT = do_DELETE = do_PATCH = _wrong_method

        return Handler

    # -- the worker ----------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            first = self.events.get()
            if first is None:
                return
            hints: dict[int, Customer] = {c.remote_id: c for c in first}
            deadline = time.monotonic() + self.DEBOUNCE
            while (left := deadline - time.monotonic()) > 0:
                try:
                    more = self.events.get(timeout=left)
                except queue.Empty:
                    break
                if more is None:
                    self.events.put(None)
                    break
                hints.update({c.remote_id: c for c in more})
            try:
                self._confirm_and_apply(list(hints.values()))
            except Exception as exc:  # a bad batch must not stop the worker
                log.error("webhook_processing_failed", error=repr(exc))

    def _confirm_and_apply(self, hints: list[Customer]) -> None:
        # Fetch and write under one hold of the sync lock: a state fetched before a sync ran
        # could otherwise be written after it, rolling back what the sync had just stored.
        self.apply(lambda: self._fetch_and_write(hints))

    def _fetch_and_write(self, hints: list[Customer]) -> None:
        with Store.open(self.database) as store:
            base = store.base_entries()
            known = store.base_fields([h.remote_id for h in hints if h.remote_id in base])
            pulled: list[Pulled] = []
            payload_fields: dict[int, frozenset[str]] = {}
            for hint in hints:
                # The email the mirror last saw beats the payload's (a payload is unsigned): it
                # only matters on a server without getcustomer, where a lookup by email counts
                # only if it returns this very id.
                email = known.get(hint.remote_id, {}).get("customeremail") or hint.fields.get("customeremail")
                try:
                    current = self.fetch(hint.remote_id, email)
                except NotIdentifiedError:
                    log.warning("webhook_unconfirmed", remote_id=hint.remote_id,
                                reason="the API cannot read this customer by id; the next walk picks it up")
                    continue
                except ApiError as exc:
                    log.warning("webhook_fetch_failed", remote_id=hint.remote_id, error=str(exc))
                    continue
                if current is None:
                    log.warning("webhook_unconfirmed", remote_id=hint.remote_id,
                                reason="the API does not know this customer; nothing written")
                    continue
                customer, extra = _with_payload_fields(current, hint, known.get(current.remote_id, {}))
                if extra:
                    payload_fields[customer.remote_id] = extra
                text = to_json(current.raw)
                pulled.append(Pulled(customer, text, raw_hash(text), content_hash(customer)))
            changes = [plan_remote_change(p, base[p.customer.remote_id].content_hash if p.customer.remote_id in base
                                          else None, known.get(p.customer.remote_id)) for p in pulled]
            apply_remote_changes(store, changes, run_id="webhook", now=utc_now_text(),
                                 conflict_policy=self.conflict_policy, payload_fields=payload_fields)
        for change in changes:
            log.info("webhook_applied", remote_id=change.remote_id, change=change.kind, fields=sorted(change.changed))


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
