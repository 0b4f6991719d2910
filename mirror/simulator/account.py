"""One Solar Proof account: customers, users, webhooks (subscriptions, delivery), API traffic.

Thread safety: every public method takes the one `threading.Lock`, because the ASGI app runs
on uvicorn's thread while tests and the demo change the account from theirs.

Two audiences use it:
* the app (`actions.py`), through the `api_*`, `page_bytes`, `customer_bytes`, lookup, webhook
  and journal methods, which behave as the documented API does;
* tests and the demo, through the control surface (`create_customer`, `edit_customer`,
  `delete_customer`, `set_status`, `add_note`, `add_project`, `get`, `read_shape`, `ids`,
  `snapshot`, `set_order`, `schedule_shift`, `shift_report`, `write_log`, `call_counts`,
  `webhooks`), which acts "as a user would in the web app" and
  may change what the API cannot (status, ABN, notes, projects, owner). Field names: `fields.py`.

Webhooks (see `delivery.py`): every creation (API, control surface or shift) queues a
`customer_created` event, and every change of a customer's status to a different value
(`set_status`, `edit_customer`) a `customer_status_change` event, for each URL subscribed to
that type; the payload is built under the lock, in `webhook_version` ("A" or "B"), and POSTed
later by a background thread, so no call here waits for a receiver. `webhook_faults` holds the
delivery faults; `deliveries`, `wait_for_deliveries`, `flush_webhooks`, `clear_deliveries`
and `close` observe and control delivery.

Listing order is `"id"` (ascending) or `"newest"` (descending id); pages hold 50 customers
(PAGE_SIZE, or the `page_size` quirk), served from `read_cache.py`.
"""

from __future__ import annotations

import bisect
import datetime as dt
import gc
import json
import threading
from collections.abc import Callable

from . import fields, render
from .journal import Journal
from .names import USERS
from .delivery import Delivery, WebhookFaults
from .events import DEFAULT_VERSION, created_payload, status_payload
from .people import People
from .quirks import Quirks
from .read_cache import ReadShapeCache
from .shift import Shift
from .subscriptions import Subscriptions

PAGE_SIZE = 50  # the documented size; Quirks.page_size is the one served
ORDERS = ("id", "newest")


class Account:
    """The simulated account; see the module docstring for the contract."""

    def __init__(self, customers: int = 0, seed: int = 0, order: str = "id",
                 quirks: Quirks | None = None,
                 today: Callable[[], dt.date] = dt.date.today,
                 webhook_version: str = DEFAULT_VERSION,
                 webhook_faults: WebhookFaults | None = None) -> None:
        self._check_order(order)
        self._lock = threading.Lock()
        self.order = order
        self.quirks = quirks if quirks is not None else Quirks()
        self.today = today
        self.people = People(seed)
        self.users = [dict(u) for u in USERS]
        self._read_cache = ReadShapeCache(self.quirks, self.users)
        self.journal = Journal()
        self._shift: Shift | None = None
        self.subscriptions = Subscriptions()
        self.delivery = Delivery(webhook_version,
                                 webhook_faults if webhook_faults is not None else WebhookFaults(seed))
        self.webhook_faults = self.delivery.faults
        was_enabled = gc.isenabled()
        gc.disable()  # as in People.customers: 100k young dicts would be rescanned repeatedly
        try:
            records = self.people.customers(customers)
            self._records = {r["id"]: r for r in records}
            self._ids = [r["id"] for r in records]  # ascending, always
            self._emails: dict[str, list[int]] = {}
            self._projects: dict[int, int] = {}
            for r in records:
                self._index(r)
        finally:
            if was_enabled:
                gc.enable()
        self._next_id = (self._ids[-1] + 1) if self._ids else 70001

    # -- control surface -------------------------------------------------------------------

    def create_customer(self, **values) -> int:
        """Create a customer as the web app would; returns its id.

        Unnamed person fields (name, email, phone1) are generated; the rest default to a new
        customer's: type 1, status 1 "New Contacts", created today, no notes or projects.
        """
        with self._lock:
            return self._create(fields.clean(values, self.users))

    def edit_customer(self, customer_id: int, **values) -> None:
        """Change any fields of a customer (KeyError if it does not exist)."""
        with self._lock:
            record = self._records[customer_id]
            clean = fields.clean(values, self.users)
            old_status = record["status"]
            self._unindex(record)  # first, so the record's own project ids count as free
            try:
                if "projects" in clean:
                    clean["projects"] = [self._with_project_id(p) for p in clean["projects"]]
            except ValueError:
                self._index(record)
                raise
            record.update(clean)
            self._index(record)
            self._read_cache.forget(customer_id)
            self._status_changed(record, old_status)

    def delete_customer(self, customer_id: int) -> None:
        """Delete a customer and its projects (KeyError if it does not exist)."""
        with self._lock:
            self._delete(customer_id)

    def set_status(self, customer_id: int, status: int) -> None:
        """Set a customer's status 0..3 (the API cannot)."""
        self.edit_customer(customer_id, status=status)

    def add_note(self, customer_id: int, note: str, when: str | dt.datetime | None = None) -> None:
        """Append a note, dated now (or `when`)."""
        when = when or dt.datetime.now().replace(microsecond=0)
        with self._lock:
            record = self._records[customer_id]
            notes = fields.clean({"notes": [{"datetime": when, "note": note}]}, self.users)["notes"]
            record["notes"] = sorted(record["notes"] + notes, key=lambda n: n["datetime"])
            self._read_cache.forget(customer_id)

    def add_project(self, customer_id: int, **project) -> int:
        """Add a project (fields as in `fields.project`); returns its project id."""
        with self._lock:
            record = self._records[customer_id]
            new = self._with_project_id(fields.project(project))
            record["projects"].append(new)
            self._projects[new["project_id"]] = customer_id
            self._read_cache.forget(customer_id)
            return new["project_id"]

    def get(self, customer_id: int) -> dict | None:
        """A copy of the internal record (see `render.py`), or None."""
        with self._lock:
            record = self._records.get(customer_id)
            return _copy(record) if record else None

    def read_shape(self, customer_id: int) -> dict | None:
        """The customer exactly as the API would send it now (decoded), or None."""
        body = self.customer_bytes(customer_id)
        return json.loads(body) if body else None

    def ids(self) -> list[int]:
        """Every customer id, ascending."""
        with self._lock:
            return list(self._ids)

    def snapshot(self) -> dict:
        """The whole state as plain data: customers (id order), users, webhooks, order, quirks."""
        with self._lock:
            return {
                "order": self.order,
                "quirks": self.quirks.as_dict(),
                "customers": [_copy(self._records[i]) for i in self._ids],
                "users": [dict(u) for u in self.users],
                "webhooks": self.subscriptions.list(),
                "shift": self._shift.report() if self._shift else None,
                "webhook_version": self.delivery.version,
            }

    def set_order(self, order: str) -> None:
        """Switch the listing order ("id" or "newest")."""
        self._check_order(order)
        with self._lock:
            self.order = order

    def schedule_shift(self, after_page: int, delete_served: int = 0, create: int = 0) -> None:
        """One-shot: once page `after_page` of getallcustomers is served, delete
        `delete_served` customers from pages 1..after_page and create `create` new ones.
        Replaces any shift not yet run; `shift_report()` tells what it did."""
        with self._lock:
            self._shift = Shift(after_page, delete_served, create)

    def shift_report(self) -> dict | None:
        """What the scheduled shift did (see `shift.Shift.report`), or None if none scheduled."""
        with self._lock:
            return self._shift.report() if self._shift else None

    def write_log(self) -> list[dict]:
        """Every write request received over the API, in order (see `journal.py`)."""
        return self.journal.writes()

    def call_counts(self) -> dict[str, int]:
        """API requests received, by action (faulted ones included)."""
        return self.journal.counts()

    def webhooks(self) -> list[dict]:
        """Current subscriptions: [{"hookUrl", "type_request"}], in subscription order."""
        return self.subscriptions.list()

    @property
    def webhook_version(self) -> str:
        """The payload version of events from now on: "A" or "B" (ValueError otherwise)."""
        return self.delivery.version

    @webhook_version.setter
    def webhook_version(self, version: str) -> None:
        self.delivery.version = version

    def deliveries(self) -> list[dict]:
        """Every webhook delivery attempt so far, in order: {seq, event_id, event, url, version,
        payload, status, error, fault, delivered_at} (see `delivery.py`)."""
        return self.delivery.deliveries()

    def wait_for_deliveries(self, count: int, timeout: float = 5.0) -> list[dict]:
        """Block until `deliveries()` holds at least `count` attempts and return them
        (TimeoutError after `timeout` seconds)."""
        return self.delivery.wait_for(count, timeout)

    def flush_webhooks(self, timeout: float = 5.0, release_held: bool = True) -> list[dict]:
        """Send everything queued (and, unless `release_held` is False, anything a `reorder`
        fault holds back), wait until it is sent and return `deliveries()` (TimeoutError after
        `timeout` seconds)."""
        return self.delivery.flush(timeout, release_held)

    def clear_deliveries(self) -> None:
        """Empty the delivery log (seq restarts at 1)."""
        self.delivery.clear()

    def close(self) -> None:
        """Stop the delivery thread, discarding deliveries not yet sent (a later event restarts it)."""
        self.delivery.close()

    # -- the API's side ----------------------------------------------------------------------

    def prerender(self) -> None:
        """Render every customer's read shape now, so the first walk is as fast as later ones
        (about 15 us per customer; serve_forever does this before it announces itself)."""
        with self._lock:
            self._read_cache.refresh()
            was_enabled = gc.isenabled()
            gc.disable()
            try:
                for customer_id in self._ids:
                    self._read_cache.body(self._records[customer_id])
            finally:
                if was_enabled:
                    gc.enable()

    def page_bytes(self, page: int, serve: bool = True) -> bytes:
        """Page `page` (1-based) of the listing as a JSON array; b"[]" past the end.

        `serve=False` renders without counting the page as served (no shift triggers)."""
        with self._lock:
            self._read_cache.refresh()
            ids = self._page_ids(page, self._ids)
            body = b"[" + b",".join([self._read_cache.body(self._records[i]) for i in ids]) + b"]"
            if serve and self._shift and self._shift.due(page):
                self._shift.run(self, page)
            return body

    def past_the_end(self, page: int) -> bool:
        """Whether listing page `page` (1-based) lies past the last one that holds customers."""
        with self._lock:
            return page > 1 and (page - 1) * self.quirks.page_size >= len(self._ids)

    def customer_bytes(self, customer_id: int) -> bytes | None:
        """One customer in the read shape, or None."""
        with self._lock:
            self._read_cache.refresh()
            return self._read_cache.body(self._records[customer_id]) if customer_id in self._records else None

    def find_by_email(self, email: str) -> int | None:
        """The lowest id among customers with this email (case-insensitive), or None."""
        with self._lock:
            ids = self._emails.get(email.strip().lower())
            return ids[0] if ids else None

    def project_customer(self, project_id: int) -> dict | None:
        """The `getcustomerofproject` body for a project, or None if no such project."""
        with self._lock:
            customer_id = self._projects.get(project_id)
            if customer_id is None:
                return None
            record = self._records[customer_id]
            project = next(p for p in record["projects"] if p["project_id"] == project_id)
            return render.project_customer(record, project)

    def api_create(self, values: dict) -> int:
        """Create from already-validated internal values (see `actions.py`); returns the id."""
        with self._lock:
            return self._create(values)

    def api_update(self, customer_id: int, values: dict) -> bool:
        """Apply already-validated internal values; False if there is no such customer."""
        with self._lock:
            record = self._records.get(customer_id)
            if record is None:
                return False
            old_status = record["status"]
            self._unindex(record)
            record.update(values)
            self._index(record)
            self._read_cache.forget(customer_id)
            self._status_changed(record, old_status)  # the API cannot write status; kept general
            return True

    def api_delete(self, customer_id: int) -> bool:
        """Delete; False if there is no such customer."""
        with self._lock:
            if customer_id not in self._records:
                return False
            self._delete(customer_id)
            return True

    def user_id_by_email(self, email: str) -> str | None:
        """The user_id of the account user with this email (case-insensitive), or None."""
        return fields.owner_id(email, self.users) if email.strip() else None

    # -- internals (caller holds the lock) -------------------------------------------------

    def _create(self, values: dict) -> int:
        # Project ids first: a clash raises before the customer takes an id.
        projects = [self._with_project_id(p) for p in values.pop("projects", [])]
        customer_id = self._next_id
        self._next_id += 1
        record = {**self.people.person(1), "id": customer_id, "gst": 0, "abn": None, "status": 1,
                  "created": self.people.stamp_on(self.today()), "owner": self.users[0]["user_id"],
                  "notes": [], "projects": [], "contact_time": None, "uid": None}
        record.update(values, projects=projects)
        self._records[customer_id] = record
        self._ids.append(customer_id)  # ids only grow, so the list stays sorted
        self._index(record)
        urls = self.subscriptions.urls("customer_created")
        if urls:
            version = self.delivery.version
            payload = created_payload(record, self._user(record["owner"]), version)
            self.delivery.send("customer_created", payload, urls, version)
        return customer_id

    def _status_changed(self, record: dict, old_status: int) -> None:
        if record["status"] == old_status:
            return
        urls = self.subscriptions.urls("customer_status_change")
        if urls:
            version = self.delivery.version
            payload = status_payload(record, self._user(record["owner"]), old_status,
                                     record["status"], version)
            self.delivery.send("customer_status_change", payload, urls, version)

    def _user(self, user_id: str) -> dict:
        return next(u for u in self.users if u["user_id"] == user_id)

    def _delete(self, customer_id: int) -> None:
        record = self._records.pop(customer_id)
        self._unindex(record)
        del self._ids[bisect.bisect_left(self._ids, customer_id)]
        self._read_cache.forget(customer_id)

    def _index(self, record: dict) -> None:
        bisect.insort(self._emails.setdefault(record["email"].strip().lower(), []), record["id"])
        for project in record["projects"]:
            self._projects[project["project_id"]] = record["id"]

    def _unindex(self, record: dict) -> None:
        key = record["email"].strip().lower()
        ids = self._emails.get(key, [])
        if record["id"] in ids:
            ids.remove(record["id"])
        if not ids:
            self._emails.pop(key, None)
        for project in record["projects"]:
            self._projects.pop(project["project_id"], None)

    def _with_project_id(self, project: dict) -> dict:
        if "project_id" not in project:
            project = {"project_id": self.people.next_project_id, **project}
        elif project["project_id"] in self._projects:
            raise ValueError(f"project_id {project['project_id']} is already in use")
        self.people.next_project_id = max(self.people.next_project_id, project["project_id"]) + 1
        return project

    def _listing(self) -> list[int]:
        return list(self._ids) if self.order == "id" else self._ids[::-1]

    def _page_ids(self, page: int, ids: list[int]) -> list[int]:
        size = self.quirks.page_size
        if self.quirks.past_end == "last" and ids and (page - 1) * size >= len(ids):
            page = (len(ids) - 1) // size + 1  # a server that clamps the page number
        start = (page - 1) * size
        if self.order == "id":
            return ids[start:start + size]
        high = len(ids) - start
        return ids[max(0, high - size):high][::-1] if high > 0 else []

    @staticmethod
    def _check_order(order: str) -> None:
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, not {order!r}")


def _copy(record: dict) -> dict:
    """A deep copy of a record, far cheaper than copy.deepcopy for this fixed layout."""
    return {**record, "notes": [dict(n) for n in record["notes"]],
            "projects": [{**p, "site_address": dict(p["site_address"])} for p in record["projects"]]}

