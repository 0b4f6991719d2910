"""The simulator's webhook delivery: payload versions, subscriptions, faults, and timing."""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from mirror.simulator import Account, SimulatorServer
from mirror.simulator.events import CREATED_A_KEYS, CREATED_B_KEYS, STATUS_A_KEYS, STATUS_B_KEYS

KEY = "webhook-test-key"
TODAY = dt.date(2026, 4, 9)
ISO_Z = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
NEW = {"firstname": "Hussain", "surname": "Shahab", "email": "s.hussainshahab@example.com",
       "phone1": "0412345678", "type": "RESIDENTIAL"}
# What urllib sends by itself; anything beyond these would be a signature or event header.
PLAIN_HEADERS = {"host", "content-type", "content-length", "user-agent", "accept-encoding", "connection"}


class Receiver:
    """A tiny HTTP receiver on 127.0.0.1 recording each POST (path, headers, JSON body) on arrival."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.delay: dict[str, float] = {}  # path -> seconds to wait before answering
        self.status: dict[str, int] = {}  # path -> HTTP status to answer (default 200)
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._cond:
                    receiver.calls.append({"path": self.path, "headers": dict(self.headers),
                                           "body": json.loads(body)})
                    receiver._cond.notify_all()
                time.sleep(receiver.delay.get(self.path, 0))
                self.send_response(receiver.status.get(self.path, 200))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def bodies(self, path: str) -> list:
        with self._cond:
            return [c["body"] for c in self.calls if c["path"] == path]

    def wait(self, count: int, timeout: float = 5.0) -> list[dict]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.calls) >= count, timeout), self.calls
            return list(self.calls)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def sim():
    with SimulatorServer(customers=10, seed=4, api_key=KEY, today=lambda: TODAY) as server:
        yield server


@pytest.fixture
def client():
    with httpx.Client(timeout=5) as c:
        yield c


def subscribe(sim, client, url, kind):
    response = client.post(sim.url, params={"action": "subscribe_customer", "api_key": KEY},
                           json={"hookUrl": url, "type_request": kind})
    assert response.json()["success"] is True


def api_create(sim, client, **data):
    response = client.post(sim.url, params={"action": "createcustomer", "api_key": KEY},
                           json={"data": {"apikey": KEY, "action": "createcustomer", **NEW, **data}})
    assert response.status_code == 200, response.text
    return int(response.json()["id"])


def admin(sim, client, method, path, body=None):
    return client.request(method, f"{sim.base_url}/_admin/{path}", params={"api_key": KEY}, json=body)


# -- payloads ----------------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["A", "B"])
@pytest.mark.parametrize("path", ["api", "control", "admin"])
def test_every_create_path_delivers_the_version_shape(sim, client, receiver, path, version):
    """A create through the API, the Python control surface or /_admin/ posts customer_created
    as one object with exactly the chosen version's fields."""
    sim.webhook_version = version
    subscribe(sim, client, receiver.url("/created"), "customer_created")
    if path == "api":
        customer_id = api_create(sim, client)
    elif path == "control":
        customer_id = sim.account.create_customer()
    else:
        customer_id = admin(sim, client, "POST", "customers", {}).json()["id"]
    [call] = receiver.wait(1)
    body = call["body"]
    assert isinstance(body, dict)
    assert list(body) == list(CREATED_A_KEYS if version == "A" else CREATED_B_KEYS)
    assert body["pkcustomerid" if version == "A" else "customer_id"] == customer_id
    assert call["headers"]["Content-Type"] == "application/json"
    assert {name.lower() for name in call["headers"]} <= PLAIN_HEADERS  # nothing signed
    [entry] = sim.flush_webhooks()
    assert (entry["event"], entry["version"], entry["status"], entry["payload"]) == (
        "customer_created", version, 200, body)


def test_created_version_b_from_the_api(sim, client, receiver):
    """Version B's customer_created carries the §6.4 fields, with the owner named by useremail."""
    subscribe(sim, client, receiver.url("/created"), "customer_created")
    customer_id = api_create(sim, client, phone2="0499 000 111", companyname="Shahab Solar",
                             companyphone="07 4000 0000", gststatus=1,
                             useremail="chris@bigsolarcity.com.au")
    [body] = [c["body"] for c in receiver.wait(1)]
    created_at = body.pop("customer_created_at")
    assert ISO_Z.fullmatch(created_at) and created_at.startswith(TODAY.isoformat())
    assert body == {
        "customer_id": customer_id, "customer_uid": None, "first_name": "Hussain",
        "surname": "Shahab", "customer_name": "Hussain Shahab", "phone_primary": "0412345678",
        "phone_secondary": "0499 000 111", "customer_email": "s.hussainshahab@example.com",
        "company_name": "Shahab Solar", "company_phone": "07 4000 0000", "abn": "",
        "gst_registered": 1, "customer_type_id": 1, "customer_status_id": 1, "site_address": "",
        "customer_notes": "", "assigned_user_id": 16, "assigned_user_name": "Chris Taeni",
        "assigned_user_email": "chris@bigsolarcity.com.au", "company_name_full": "Solar Proof",
    }


def test_created_version_b_from_the_control_surface(sim, client, receiver):
    """A web-app create sends its ABN, uid, creation time and the lowest project's address."""
    subscribe(sim, client, receiver.url("/created"), "customer_created")
    far = {"streetnum": "9", "street": "Other Rd", "suburb": "Cairns", "state": "QLD", "postcode": "4870"}
    near = {"streetnum": "45", "street": "Thuringowa Dr", "suburb": "Kirwan", "state": "QLD",
            "postcode": "4817"}
    customer_id = sim.account.create_customer(
        first_name="Mia", last_name="Rossi", email="mia@rossi.example", phone1="0400 111 222",
        type=3, company_name="Kirwan Solar Farm", abn="51824753556", uid="a1b2c3d4", status=2,
        created="2025-10-16 12:00:00", owner="305",
        projects=[{"project_id": 99001, "site_address": far}, {"project_id": 99000, "site_address": near}])
    [body] = [c["body"] for c in receiver.wait(1)]
    assert body == {
        "customer_id": customer_id, "customer_uid": "a1b2c3d4", "first_name": "Mia", "surname": "Rossi",
        "customer_name": "Mia Rossi", "phone_primary": "0400 111 222", "phone_secondary": "",
        "customer_email": "mia@rossi.example", "company_name": "Kirwan Solar Farm", "company_phone": "",
        "abn": "51824753556", "gst_registered": 0, "customer_type_id": 3, "customer_status_id": 2,
        "site_address": "45 Thuringowa Dr, Kirwan, QLD, 4817",
        "customer_created_at": "2025-10-16T12:00:00Z", "customer_notes": "",
        "assigned_user_id": 305, "assigned_user_name": "Priya Raman",
        "assigned_user_email": "priya.raman@bigsolarcity.com.au", "company_name_full": "Solar Proof",
    }


def test_created_version_a_values(sim, client, receiver):
    """Version A's customer_created is the flat §6.4 object with the upper-case type and int status."""
    admin(sim, client, "POST", "webhooks", {"version": "A"})
    subscribe(sim, client, receiver.url("/created"), "customer_created")
    first = sim.account.create_customer(first_name="Ava", last_name="Nguyen", email="ava@example.com",
                                        type=2, status=0, owner="305")
    second = api_create(sim, client, type="LARGE-SCALE")
    bodies = [c["body"] for c in receiver.wait(2)]
    assert bodies == [
        {"pkcustomerid": first, "fkuserid": 305, "customer_email": "ava@example.com",
         "customer_name": "Ava Nguyen", "customer_type": "COMMERCIAL", "customer_status": 0},
        {"pkcustomerid": second, "fkuserid": 221, "customer_email": "s.hussainshahab@example.com",
         "customer_name": "Hussain Shahab", "customer_type": "LARGE-SCALE", "customer_status": 1},
    ]


def test_status_change_in_both_versions(sim, client, receiver):
    """customer_status_change is an array of one object in B and a flat object in A; a status
    set to its current value sends nothing."""
    subscribe(sim, client, receiver.url("/status"), "customer_status_change")
    record = sim.account.get(70003)
    name = f"{record['first_name']} {record['last_name']}"
    old = record["status"]
    new = (old + 1) % 4
    sim.account.set_status(70003, new)
    [b_body] = [c["body"] for c in receiver.wait(1)]
    assert isinstance(b_body, list) and len(b_body) == 1
    assert list(b_body[0]) == list(STATUS_B_KEYS)
    changed_at = b_body[0].pop("changed_at")
    assert ISO_Z.fullmatch(changed_at)
    assert b_body[0] == {"customer_id": 70003, "customer_email": record["email"],
                         "customer_name": name, "old_status": old, "new_status": new,
                         "customer_status_id": new}

    sim.webhook_version = "A"
    sim.account.edit_customer(70003, status=old, first_name=record["first_name"])
    admin(sim, client, "POST", "customers/70003/status", {"status": old})  # unchanged: no event
    sim.account.edit_customer(70003, phone2="0400 000 000")  # no status change: no event
    sim.flush_webhooks()
    assert [c["body"] for c in receiver.calls][1:] == [
        {"pkcustomerid": 70003, "fkuserid": int(record["owner"]), "customer_email": record["email"],
         "customer_name": name, "old_status": new, "new_status": old}]
    assert list(receiver.calls[1]["body"]) == list(STATUS_A_KEYS)


# -- subscriptions -------------------------------------------------------------------------------

def test_only_subscribed_types_reach_their_own_urls(sim, client, receiver):
    """Each event goes to every URL subscribed to its type and nowhere else."""
    subscribe(sim, client, receiver.url("/created"), "customer_created")
    subscribe(sim, client, receiver.url("/status"), "customer_status_change")
    subscribe(sim, client, receiver.url("/both"), "customer_created")
    subscribe(sim, client, receiver.url("/both"), "customer_status_change")
    subscribe(sim, client, receiver.url("/email"), "project_email_sent")
    customer_id = api_create(sim, client)
    sim.account.set_status(customer_id, 2)
    log = sim.flush_webhooks()
    assert [(e["event"], e["url"].rsplit("/", 1)[1]) for e in log] == [
        ("customer_created", "created"), ("customer_created", "both"),
        ("customer_status_change", "status"), ("customer_status_change", "both")]
    assert [e["event_id"] for e in log] == [1, 1, 2, 2]
    assert len(receiver.bodies("/created")) == 1 and isinstance(receiver.bodies("/created")[0], dict)
    assert len(receiver.bodies("/status")) == 1 and isinstance(receiver.bodies("/status")[0], list)
    assert len(receiver.bodies("/both")) == 2
    assert receiver.bodies("/email") == []


def test_unsubscribe_stops_delivery(sim, client, receiver):
    """After unsubscribe_customer a URL receives nothing more, while other URLs still do."""
    subscribe(sim, client, receiver.url("/a"), "customer_created")
    subscribe(sim, client, receiver.url("/b"), "customer_created")
    sim.account.create_customer()
    receiver.wait(2)
    response = client.post(sim.url, params={"action": "unsubscribe_customer", "api_key": KEY},
                           json={"hookUrl": receiver.url("/a")})
    assert response.json()["success"] is True
    sim.account.create_customer()
    log = sim.flush_webhooks()
    assert [e["url"].rsplit("/", 1)[1] for e in log] == ["a", "b", "b"]
    assert len(receiver.bodies("/a")) == 1 and len(receiver.bodies("/b")) == 2


# -- faults --------------------------------------------------------------------------------------

def test_duplicate_fault(sim, client, receiver):
    """A duplicate fault POSTs the same body twice, logged as two attempts of one event."""
    subscribe(sim, client, receiver.url("/created"), "customer_created")
    sim.webhook_faults.script("duplicate")
    sim.account.create_customer()
    sim.account.create_customer()
    log = sim.flush_webhooks()
    bodies = receiver.bodies("/created")
    assert len(bodies) == 3 and bodies[0] == bodies[1] != bodies[2]
    assert [(e["event_id"], e["fault"]) for e in log] == [(1, "duplicate"), (1, "duplicate"), (2, None)]


def test_reorder_fault(sim, client, receiver):
    """A reordered delivery is held and sent right after the next one to its URL; a flush
    releases one still held."""
    subscribe(sim, client, receiver.url("/created"), "customer_created")
    sim.webhook_faults.script("reorder")
    first = sim.account.create_customer()
    second = sim.account.create_customer()
    log = sim.account.wait_for_deliveries(2)  # no flush: the held one goes out by itself
    assert [b["customer_id"] for b in receiver.bodies("/created")] == [second, first]
    assert [(e["payload"]["customer_id"], e["fault"]) for e in log] == [(second, None), (first, "reorder")]

    sim.webhook_faults.script("reorder")
    third = sim.account.create_customer()
    sim.flush_webhooks(release_held=False)
    assert len(receiver.bodies("/created")) == 2
    assert admin(sim, client, "GET", "webhooks").json()["held"] == 1
    sim.flush_webhooks()
    assert receiver.bodies("/created")[-1]["customer_id"] == third


def test_drop_fault(sim, client, receiver):
    """A dropped delivery is never sent, is logged as dropped, and is not retried."""
    subscribe(sim, client, receiver.url("/created"), "customer_created")
    subscribe(sim, client, receiver.url("/status"), "customer_status_change")
    sim.webhook_faults.script("drop", count=1, event="customer_created")
    dropped = sim.account.create_customer()
    kept = sim.account.create_customer()
    sim.account.set_status(kept, 3)
    log = sim.flush_webhooks()
    assert [b["customer_id"] for b in receiver.bodies("/created")] == [kept]
    assert len(receiver.bodies("/status")) == 1
    assert log[0]["payload"]["customer_id"] == dropped
    assert (log[0]["status"], log[0]["error"], log[0]["fault"]) == (None, "dropped", "drop")
    assert [e["status"] for e in log[1:]] == [200, 200]
    assert sim.webhook_faults.injected() == [
        {"delivery": 1, "event": "customer_created", "url": receiver.url("/created"), "kind": "drop"}]
    assert len(sim.flush_webhooks()) == 3 and len(receiver.calls) == 2


def test_seeded_fault_rates_are_deterministic(receiver):
    """The same seed and deliveries give the same faults; another seed gives others."""

    def kinds(seed):
        account = Account(customers=0, seed=seed)
        account.subscriptions.subscribe(receiver.url(f"/seed{seed}"), "customer_created")
        account.webhook_faults.configure(rate_duplicate=0.25, rate_reorder=0.25, rate_drop=0.25)
        for _ in range(24):
            account.create_customer()
        log = account.flush_webhooks()
        account.close()
        assert len({e["event_id"] for e in log}) == 24  # every event accounted for, none lost
        return [f["kind"] for f in account.webhook_faults.injected()]

    first = kinds(8)
    assert first == kinds(8)
    assert set(first) == {"duplicate", "reorder", "drop"}
    assert first != kinds(9)


# -- transport -----------------------------------------------------------------------------------

def test_failures_are_recorded_and_not_retried(sim, client, receiver):
    """A refused connection and an HTTP 500 are each logged once and never retried."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/gone"
    receiver.status["/fail"] = 500
    subscribe(sim, client, dead, "customer_created")
    subscribe(sim, client, receiver.url("/fail"), "customer_created")
    sim.account.create_customer()
    log = sim.flush_webhooks()
    assert len(log) == 2
    assert log[0]["status"] is None and "refused" in log[0]["error"].lower()
    assert (log[1]["status"], log[1]["error"]) == (500, None)
    assert len(sim.flush_webhooks()) == 2 and len(receiver.bodies("/fail")) == 1


def test_slow_receiver_times_out(sim, client, receiver):
    """A receiver slower than the delivery timeout is logged as a timeout error."""
    sim.account.delivery.timeout = 0.3  # the default is the documented 5 s
    receiver.delay["/slow"] = 1.0
    subscribe(sim, client, receiver.url("/slow"), "customer_created")
    sim.account.create_customer()
    [entry] = sim.flush_webhooks()
    assert entry["status"] is None and "timed out" in entry["error"]


def test_delivery_does_not_delay_the_api(sim, client, receiver):
    """createcustomer answers at once while its webhook receiver takes 2 s to answer."""
    receiver.delay["/slow"] = 2.0
    subscribe(sim, client, receiver.url("/slow"), "customer_created")
    started = time.monotonic()
    customer_id = api_create(sim, client)
    assert time.monotonic() - started < 1.0
    receiver.wait(1)  # the POST has arrived; its answer is still 2 s away
    started = time.monotonic()
    read = client.get(sim.url, params={"action": "getcustomer", "api_key": KEY, "customer_id": customer_id})
    assert read.status_code == 200 and time.monotonic() - started < 1.0
    assert sim.account.deliveries() == []  # still waiting for the receiver
    [entry] = sim.account.wait_for_deliveries(1, timeout=10)
    assert (entry["payload"]["customer_id"], entry["status"]) == (customer_id, 200)


def test_shift_creates_deliver(sim, client, receiver):
    """Customers created by a scheduled shift announce themselves like any other create."""
    subscribe(sim, client, receiver.url("/created"), "customer_created")
    sim.account.schedule_shift(after_page=1, create=2)
    client.get(sim.url, params={"action": "getallcustomers", "api_key": KEY, "page": 1})
    log = sim.flush_webhooks()
    assert [e["payload"]["customer_id"] for e in log] == sim.account.shift_report()["created"]


# -- /_admin/webhooks ----------------------------------------------------------------------------

def test_admin_webhooks_route(sim, client, receiver):
    """GET/POST /_admin/webhooks show and set the version, faults and log; flush waits for delivery."""
    subscribe(sim, client, receiver.url("/created"), "customer_created")
    state = admin(sim, client, "GET", "webhooks").json()
    assert state["version"] == "B" and state["deliveries"] == [] and state["pending"] == 0
    assert state["subscriptions"] == [{"hookUrl": receiver.url("/created"), "type_request": "customer_created"}]
    bad = admin(sim, client, "POST", "webhooks", {"version": "C"})
    assert bad.status_code == 400 and sim.webhook_version == "B"
    assert admin(sim, client, "POST", "webhooks", {"rate_drop": 1}).status_code == 400
    state = admin(sim, client, "POST", "webhooks", {
        "version": "A", "faults": {"seed": 5, "script": [{"kind": "drop", "event": "customer_created"}]}}).json()
    assert state["version"] == "A" and state["faults"]["seed"] == 5
    assert [s["kind"] for s in state["faults"]["script"]] == ["drop"]

    sim.account.create_customer()
    sim.account.create_customer()
    state = admin(sim, client, "POST", "webhooks/flush", {"timeout": 5}).json()
    assert [(e["fault"], e["version"]) for e in state["deliveries"]] == [("drop", "A"), (None, "A")]
    assert state["faults"]["injected"][0]["kind"] == "drop" and state["pending"] == 0
    assert len(receiver.calls) == 1

    state = admin(sim, client, "POST", "webhooks", {"clear_log": True, "faults": {"reset": True}}).json()
    assert state["deliveries"] == [] and state["faults"]["script"] == []
    assert admin(sim, client, "POST", "webhooks/flush", {"timeout": 99}).status_code == 400
