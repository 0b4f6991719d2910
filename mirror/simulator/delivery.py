"""Webhook delivery (digest §5.3, payloads §6.4): the account POSTs customer events to subscribers.

Events. The account calls `Delivery.send(event, payload, urls)` (under its own lock) when:
* a customer is created (the API's createcustomer, `Account.create_customer`, or a shift's
  creates): `customer_created`;
* a customer's status changes to a different value (`Account.set_status`, or `edit_customer`
  with a new `status`): `customer_status_change`.
No other event types are generated. Nothing is built or sent when no URL is subscribed.

Payloads (`created_payload`, `status_payload`), in the webhook version in force when the event
happens (`Delivery.version`, "A" or "B", default "B"):
* A: single flat objects exactly as digest §6.4 shows (`CREATED_A_KEYS`, `STATUS_A_KEYS`).
* B: `customer_created` is a single object with the §6.4 fields (`CREATED_B_KEYS`);
  `customer_status_change` is an ARRAY of one object (`STATUS_B_KEYS`; the docs do not show
  this payload, so its fields are the simulator's choice). Choices made where the docs are
  silent: `customer_uid` is null for a customer without one (as shape P's `uid`); `abn` is ""
  when unset; `site_address` is the one-line address of the customer's lowest project id, or
  ""; `customer_created_at` is the record's creation time with `T` and `Z` appended (the
  simulator keeps no time zones); `changed_at` is the UTC time of the change.
Bodies are compact JSON (as every response), sent with `Content-Type: application/json` and
no signature or event-type header (the real API documents none).

Transport. `send` only queues: one daemon worker thread per account (started on first use)
POSTs the queued deliveries one at a time, in order, with urllib (no proxies) and a socket
timeout of `timeout` seconds (5, the docs' "answer within 5 seconds"). So an API call never
waits for a receiver; a slow receiver delays only later deliveries. A failure (connection
error, timeout) is recorded with its error; any HTTP answer is recorded with its status,
whatever it is. Nothing is ever retried (the docs document no retries). `close()` stops the
worker and discards deliveries not yet sent; a later event starts a new worker.

The log (`deliveries()`): one entry per attempt, in the order attempts were made:
    {seq, event_id, event, url, version, payload, status, error, fault, delivered_at}
`status` is the HTTP status (None when no answer came), `error` a message when none came
(None otherwise), `fault` the delivery fault applied (None, "duplicate", "reorder", "drop"),
`delivered_at` the UTC time of the attempt (ISO 8601 with Z), `event_id` numbers the events
(one event fans out to one delivery per subscribed URL; duplicates share theirs).

Faults (`WebhookFaults`, a plan of its own so that delivery faults never shift the seeded
sequence of `FaultPlan`'s transport faults). One decision per delivery (event x URL), made
when the event is queued, from the script first, else one draw of the plan's
`random.Random(seed)` when any rate is set, so a seed and a sequence of deliveries always
give the same faults:
* `duplicate`: the same body is POSTed twice in a row (two log entries, same event_id).
* `reorder`: the delivery is held back and POSTed right after the next delivery to the same
  URL (several held ones go out after it, oldest first). `flush(release_held=True)` sends
  whatever is still held.
* `drop`: nothing is sent; the log records it with error "dropped" (never retried). A drop
  counts as "the next delivery" for a held reorder.

Waiting without sleeping: `wait_for(count, timeout)` blocks until the log holds `count`
entries; `flush(timeout)` until nothing is queued or being sent (held deliveries are released
first unless `release_held=False`). Both raise TimeoutError when the time runs out.
Thread-safe.
"""

from __future__ import annotations

import collections
import copy
import datetime as dt
import random
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass

from .events import DEFAULT_VERSION, check_version
from .render import dumps

TIMEOUT = 5.0
EVENTS = ("customer_created", "customer_status_change")
KINDS = ("duplicate", "reorder", "drop")
RATE_FIELDS = ("rate_duplicate", "rate_reorder", "rate_drop")
class WebhookFaults:
    """Seeded, scriptable delivery faults (see the module docstring); safe from any thread."""

    def __init__(self, seed: int = 0, **rates: float) -> None:
        self._lock = threading.Lock()
        self._script: list[dict] = []
        self._log: list[dict] = []
        self._deliveries = 0
        self.seed = seed
        for name in RATE_FIELDS:
            setattr(self, name, 0.0)
        self._rng = random.Random(seed)
        self.configure(**rates)

    def configure(self, **settings) -> dict:
        """Set any of `seed` and the `rate_*` fields (0..1; their sum is the chance of a fault).
        Setting `seed` restarts the random sequence. ValueError on an unknown name or a bad value."""
        unknown = set(settings) - {"seed", *RATE_FIELDS}
        if unknown:
            raise ValueError(f"unknown webhook fault setting(s): {', '.join(sorted(unknown))}")
        for name in RATE_FIELDS:
            if name in settings and not 0.0 <= float(settings[name]) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        merged = {name: float(settings.get(name, getattr(self, name))) for name in RATE_FIELDS}
        if sum(merged.values()) > 1.0:
            raise ValueError("the webhook fault rates must add up to at most 1")
        with self._lock:
            for name, value in merged.items():
                setattr(self, name, value)
            if "seed" in settings:
                self.seed = settings["seed"]
                self._rng = random.Random(self.seed)
        return self.settings()

    def settings(self) -> dict:
        """Seed, rates and the queued script, as plain data."""
        with self._lock:
            out = {name: getattr(self, name) for name in ("seed", *RATE_FIELDS)}
            out["script"] = [dict(entry) for entry in self._script]
            return out

    def reset(self) -> None:
        """Rates to zero, the script emptied, the random sequence restarted (the log is kept)."""
        with self._lock:
            self._script.clear()
        self.configure(seed=self.seed, **{name: 0.0 for name in RATE_FIELDS})

    def script(self, kind: str, count: int = 1, event: str | None = None,
               url: str | None = None) -> None:
        """Give the next `count` deliveries matching `event` and `url` (None: any) fault `kind`.
        Scripted faults take precedence over rates."""
        if kind not in KINDS:
            raise ValueError(f"unknown webhook fault kind {kind!r}; expected one of {KINDS}")
        if not isinstance(count, int) or count < 1:
            raise ValueError("count must be an integer of at least 1")
        if event is not None and event not in EVENTS:
            raise ValueError(f"event must be one of {EVENTS} or None")
        with self._lock:
            self._script.append({"kind": kind, "count": count, "event": event, "url": url})

    def clear_script(self) -> None:
        with self._lock:
            self._script.clear()

    def injected(self) -> list[dict]:
        """Every fault decided so far, in order: {delivery, event, url, kind}."""
        with self._lock:
            return copy.deepcopy(self._log)

    def decide(self, event: str, url: str) -> str | None:
        """The fault kind for the next delivery of `event` to `url`, or None (recorded)."""
        with self._lock:
            self._deliveries += 1
            kind = self._from_script(event, url)
            if kind is None and any(getattr(self, name) for name in RATE_FIELDS):
                draw, edge = self._rng.random(), 0.0
                for name, candidate in zip(RATE_FIELDS, KINDS):
                    edge += getattr(self, name)
                    if draw < edge:
                        kind = candidate
                        break
            if kind is not None:
                self._log.append({"delivery": self._deliveries, "event": event, "url": url,
                                  "kind": kind})
            return kind

    def _from_script(self, event: str, url: str) -> str | None:
        for i, entry in enumerate(self._script):
            if entry["event"] in (None, event) and entry["url"] in (None, url):
                entry["count"] -= 1
                if entry["count"] == 0:
                    del self._script[i]
                return entry["kind"]
        return None


# -- delivery ------------------------------------------------------------------------------------

@dataclass
class _Item:
    event_id: int
    event: str
    url: str
    version: str
    payload: object
    body: bytes
    fault: str | None
    released: bool = False  # a held reorder let go: send it now


_STOP = object()
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # straight to the receiver


class Delivery:
    """The queue, worker, log and settings of one account's webhook delivery."""

    def __init__(self, version: str = DEFAULT_VERSION, faults: WebhookFaults | None = None,
                 timeout: float = TIMEOUT) -> None:
        self._version = check_version(version)
        self.faults = faults if faults is not None else WebhookFaults()
        self.timeout = timeout
        self._cond = threading.Condition()
        self._queue: collections.deque = collections.deque()
        self._held: dict[str, list[_Item]] = {}
        self._busy = 0  # deliveries being sent (a worker replaced after close() may overlap)
        self._log: list[dict] = []
        self._seq = 0
        self._events = 0
        self._thread: threading.Thread | None = None

    @property
    def version(self) -> str:
        return self._version

    @version.setter
    def version(self, value: str) -> None:
        self._version = check_version(value)

    def send(self, event: str, payload, urls: list[str], version: str | None = None) -> None:
        """Queue one delivery of `payload` (built in `version`, default the current one) per URL;
        never blocks on the network."""
        if not urls:
            return
        body = dumps(payload)
        version = version or self._version
        with self._cond:
            self._events += 1
            for url in urls:
                fault = self.faults.decide(event, url)
                self._queue.append(_Item(self._events, event, url, version, payload, body, fault))
            self._ensure_worker()
            self._cond.notify_all()

    def deliveries(self) -> list[dict]:
        """The log of attempts (see the module docstring), oldest first; copies."""
        with self._cond:
            return copy.deepcopy(self._log)

    def status(self) -> dict:
        """{"pending": queued or being sent, "held": held back by reorder faults}."""
        with self._cond:
            return {"pending": len(self._queue) + self._busy,
                    "held": sum(len(items) for items in self._held.values())}

    def clear(self) -> None:
        """Empty the log (seq numbering restarts at 1); queued and held deliveries stay."""
        with self._cond:
            self._log.clear()
            self._seq = 0

    def wait_for(self, count: int, timeout: float = 5.0) -> list[dict]:
        """Block until the log holds at least `count` entries; returns the log.
        TimeoutError if it does not within `timeout` seconds."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._log) >= count, timeout):
                raise TimeoutError(f"{len(self._log)} webhook deliveries logged after {timeout}s, "
                                   f"wanted {count}")
            return copy.deepcopy(self._log)

    def flush(self, timeout: float = 5.0, release_held: bool = True) -> list[dict]:
        """Block until nothing is queued or being sent (after releasing held deliveries, unless
        `release_held` is False); returns the log. TimeoutError when `timeout` runs out."""
        with self._cond:
            if release_held and self._held:
                for items in self._held.values():
                    for item in items:
                        item.released = True
                        self._queue.append(item)
                self._held.clear()
                self._ensure_worker()
                self._cond.notify_all()
            if not self._cond.wait_for(lambda: not self._queue and not self._busy, timeout):
                raise TimeoutError(f"webhook deliveries still pending after {timeout}s")
            return copy.deepcopy(self._log)

    def close(self, timeout: float = 1.0) -> None:
        """Stop the worker; deliveries not yet sent (queued or held) are discarded."""
        with self._cond:
            thread, self._thread = self._thread, None
            self._queue.clear()
            self._held.clear()
            if thread is not None:
                self._queue.append(_STOP)
                self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # -- the worker (no account lock is ever taken here) --------------------------------------

    def _ensure_worker(self) -> None:  # caller holds self._cond
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="simulator:webhooks", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue))
                item = self._queue.popleft()
                if item is _STOP:
                    return
                self._busy += 1
            try:
                self._process(item)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    def _process(self, item: _Item) -> None:
        if item.fault == "reorder" and not item.released:
            with self._cond:
                self._held.setdefault(item.url, []).append(item)
            return
        if item.fault == "drop":
            self._record(item, None, "dropped")
        else:
            for _ in range(2 if item.fault == "duplicate" else 1):
                self._record(item, *self._post(item))
        if not item.released:
            with self._cond:
                held = self._held.pop(item.url, [])
            for late in held:
                self._record(late, *self._post(late))

    def _post(self, item: _Item) -> tuple[int | None, str | None]:
        request = urllib.request.Request(item.url, data=item.body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                response.read(65536)
                return response.status, None
        except urllib.error.HTTPError as err:
            err.close()
            return err.code, None
        except urllib.error.URLError as err:
            return None, f"{type(err.reason).__name__}: {err.reason}"
        except Exception as exc:  # noqa: BLE001 - timeouts, resets, bad URLs: all are recorded
            return None, f"{type(exc).__name__}: {exc}"

    def _record(self, item: _Item, status: int | None, error: str | None) -> None:
        stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
        with self._cond:
            self._seq += 1
            self._log.append({"seq": self._seq, "event_id": item.event_id, "event": item.event,
                              "url": item.url, "version": item.version, "payload": item.payload,
                              "status": status, "error": error, "fault": item.fault,
                              "delivered_at": stamp.replace("+00:00", "Z")})
            self._cond.notify_all()
