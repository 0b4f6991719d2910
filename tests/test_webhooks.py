"""The webhook receiver of `spmirror run`, end to end: a real daemon subprocess, a real simulator.

A simulator is served from the test process; `python -m mirror run` runs against it with the
receiver on a free 127.0.0.1 port (`[webhooks] token`/`listen` from the environment, a sync
interval of 10 minutes so no pull runs after the first) into a mirror database of each backend,
subscribed through the real
`spmirror webhooks subscribe` CLI, and the simulator delivers its events over HTTP. Tests that
leave the mirror equal to Solar Proof share one daemon (starting one costs seconds); tests that
subscribe, unsubscribe or leave the two differing (the known bugs) get their own. Bursts are sent
by the test itself, from many threads on fresh connections, as many senders would. Waits poll with a
bounded deadline; nothing sleeps to let time pass. The last section checks the queue (with a fake
clock) and the HTTP side without a daemon.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from backends import MirrorDatabase, open_mirror_database
from conftest import API_KEY
from polling import free_port, wait_until
from mirror.config import load_settings
from mirror.commands.sync import sync_once
from mirror.customer import Customer
from mirror.simulator.render import STATUS_WORDS
from mirror.simulator.server import SimulatorServer
from mirror.store import Store, backend_for
from mirror.webhook_queue import HintQueue, merge_hints
from mirror.webhook_receiver import ReceiverServer, WebhookApp
from mirror.wire import parse_customer

CUSTOMERS = 20
EVENTS = ("customer_created", "customer_status_change")
CLEARED_ENV = ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY", "CONFIGURATION_DIRECTORY", "NOTIFY_SOCKET",
               "WATCHDOG_USEC", "WATCHDOG_PID", "SPMIRROR_CONFIG")
SITE = {"streetnum": "12", "street": "Example Street", "suburb": "Brisbane", "state": "QLD", "postcode": "4000"}
ABN = "51 824 753 556"


# -- helpers -------------------------------------------------------------------------------


def raw_status(port: int, request: bytes) -> int:
    """Send `request` bytes as they are on a fresh connection; the HTTP status of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b" ", 2)[1])


def post_all(port: int, path: str, bodies: list[bytes], senders: int) -> list[tuple[int, float]]:
    """POST each body from `senders` threads at once, each request on a fresh connection as separate
    systems would send them: (HTTP status, or 0 when the connection was refused or reset; seconds from
    connecting to the whole answer) per body, in order."""
    def send(body: bytes) -> tuple[int, float]:
        started = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            answer = connection.getresponse()
            answer.read()
            return answer.status, time.perf_counter() - started
        except OSError:
            return 0, time.perf_counter() - started
        finally:
            connection.close()
    with ThreadPoolExecutor(max_workers=senders) as pool:
        return list(pool.map(send, bodies))


def status_event(account, remote_id: int, version: str) -> bytes:
    """A customer_status_change body for the customer's current status, in payload version A or B."""
    record = account.get(remote_id)
    name = f"{record['first_name']} {record['last_name']}"
    if version == "A":
        body = {"pkcustomerid": remote_id, "fkuserid": 1, "customer_email": record["email"], "customer_name": name,
                "old_status": 1, "new_status": record["status"]}
    else:
        body = [{"customer_id": remote_id, "customer_email": record["email"], "customer_name": name, "old_status": 1,
                 "new_status": record["status"], "customer_status_id": record["status"]}]
    return json.dumps(body).encode()


class Mirror:
    """A simulator, a daemon subprocess with the receiver on, and the CLI, sharing one environment."""

    def __init__(self, tmp: Path, sim: SimulatorServer, db: MirrorDatabase):
        self.tmp = tmp
        self.sim = sim
        self.db = db
        self.token = "wh" + secrets.token_hex(16)
        self.port = free_port()
        self.hook_base = f"http://127.0.0.1:{self.port}/webhooks/{self.token}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SPMIRROR_") and k not in CLEARED_ENV}
        self.env.update(
            XDG_CONFIG_HOME=str(tmp / "xdg"),  # no user config file is picked up
            PYTHONUNBUFFERED="1",
            SPMIRROR_API_URL=sim.url,
            SPMIRROR_API_KEY=sim.api_key,
            SPMIRROR_DB=self.db.url,
            SPMIRROR_SYNC_INTERVAL="10m",  # the first sync only
            SPMIRROR_LOGGING_FORMAT="json",
            SPMIRROR_WEBHOOKS_TOKEN=self.token,
            SPMIRROR_WEBHOOKS_LISTEN=f"127.0.0.1:{self.port}",
        )
        self.stdout_path = tmp / "daemon.stdout"
        self.stderr_path = tmp / "daemon.stderr"
        self.proc: subprocess.Popen | None = None

    # the daemon

    def start(self, subscribe: bool = True) -> None:
        """Start the daemon (and subscribe, while its first sync runs); return once the receiver
        listens, the first sync is done and the subscription is made."""
        # An empty mirror made here, so that the daemon and the CLI (started together, to save
        # their start-up time) never both create the schema.
        with Store.open(self.db.url):
            pass
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "mirror", "run"], env=self.env, cwd=self.tmp,
                                         stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        subscribing = self.spmirror_background("webhooks", "subscribe", "--url", self.hook_base) if subscribe else None

        def ready() -> bool:
            if not self.running():
                pytest.fail(f"daemon exited with {self.proc.returncode}\n{self.describe()}")
            return bool(self.events("webhooks_listening")) and any(r["result"] == "ok" for r in self.runs())
        wait_until(ready, 20, "the receiver to listen and the first sync to finish")
        if subscribing is not None:
            self.check_subscribed(subscribing)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def events(self, name: str | None = None) -> list[dict]:
        """The daemon's JSON log lines so far (a half-written last line is skipped), optionally by event."""
        found = []
        for line in self.stdout_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if name is None or event.get("event") == name:
                    found.append(event)
        return found

    def describe(self) -> str:
        return (f"--- stdout ---\n{self.stdout_path.read_text(errors='replace')[-4000:]}\n"
                f"--- stderr ---\n{self.stderr_path.read_text(errors='replace')[-4000:]}")

    def reads(self) -> int:
        """API reads of one customer so far: getcustomer, or on a server without it the email lookup."""
        action = "getcustomer" if self.sim.quirks.getcustomer else "getcustomerByemail"
        return self.sim.account.call_counts().get(action, 0)

    def applied(self, remote_id: int) -> list[dict]:
        return [e for e in self.events("webhook_applied") if e.get("remote_id") == remote_id]

    # the CLI

    def spmirror(self, *args: str, timeout: float = 30,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "mirror", *args], env=self.env | (env or {}), cwd=self.tmp,
                              capture_output=True, text=True, timeout=timeout)

    def spmirror_background(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "mirror", *args], env=self.env, cwd=self.tmp,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)

    def subscribe(self) -> None:
        self.check_subscribed(self.spmirror_background("webhooks", "subscribe", "--url", self.hook_base))

    def check_subscribed(self, process: subprocess.Popen) -> None:
        stdout, stderr = process.communicate(timeout=30)
        done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        assert done.returncode == 0, done.stderr
        assert [line.split()[1] for line in done.stdout.splitlines()] == list(EVENTS)
        assert "Warning" in done.stderr and "http://" in done.stderr  # http proceeds, with a warning
        assert self.token not in done.stdout + done.stderr
        assert sorted(w["hookUrl"] for w in self.sim.account.webhooks()) == sorted(
            f"{self.hook_base}/{event}" for event in EVENTS)

    # the mirror

    def row(self, remote_id: int) -> dict | None:
        return self.db.row_of(remote_id)

    def status(self, remote_id: int) -> int | None:
        row = self.row(remote_id)
        return None if row is None else row["fkcustomerstatusid"]

    def history(self, remote_id: int) -> list[dict]:
        return self.db.query("SELECT field, old_value, new_value, source, run_id FROM customer_changes "
                             "WHERE pkcustomerid = ? ORDER BY id", (remote_id,))

    def runs(self) -> list[dict]:
        try:
            return self.db.query(f"SELECT run_id, result FROM sync_runs ORDER BY {self.db.oldest_run_first}")
        except self.db.Error:  # the schema is still being created
            return []

    def ids(self) -> list[int]:
        return [r["pkcustomerid"] for r in self.db.query("SELECT pkcustomerid FROM customers ORDER BY pkcustomerid")]

    def assert_equals_simulator(self) -> None:
        """Every customer of the simulator is in the mirror with each field the API sends as the API sends it."""
        assert self.ids() == self.sim.account.ids()
        for remote_id in self.sim.account.ids():
            api = parse_customer(self.sim.account.read_shape(remote_id))
            row = self.row(remote_id)
            differing = {name: (row[name], api.fields[name]) for name in api.carried if row[name] != api.fields[name]}
            assert not differing, f"customer {remote_id}: mirror vs API {differing}"
            assert row["sync_state"] == "synced"

    def post(self, payload, path: str = "") -> int:
        """POST `payload` (JSON) to the receiver directly, as a forger (or a late redelivery) would."""
        return httpx.post(f"{self.hook_base}{path}", json=payload, timeout=5).status_code


def open_mirror(home: Path, db: MirrorDatabase, subscribe: bool = True, webhook_version: str = "B", seed: int = 5,
                reads_by_id: bool = True) -> Mirror:
    sim = SimulatorServer(customers=CUSTOMERS, seed=seed, api_key=API_KEY, webhook_version=webhook_version).start()
    sim.quirks.update(getcustomer=reads_by_id)
    mirror = Mirror(home, sim, db)
    try:
        mirror.start(subscribe)
    except BaseException:
        close_mirror(mirror)
        raise
    return mirror


def close_mirror(mirror: Mirror) -> None:
    try:
        mirror.stop()
    finally:
        mirror.sim.stop()


@pytest.fixture(scope="module", params=[True, False], ids=["getcustomer", "no-getcustomer"])
def reads_by_id(request) -> bool:
    """Every webhook test runs against a server with the undocumented getcustomer and one without it."""
    return request.param


@pytest.fixture(scope="module")
def shared_mirror(tmp_path_factory, reads_by_id, backend):
    """One subscribed daemon and simulator for the tests that leave the mirror equal to Solar Proof."""
    home = tmp_path_factory.mktemp("shared")
    with open_mirror_database(backend, home / "state") as db:
        mirror = open_mirror(home, db, reads_by_id=reads_by_id)
        yield mirror
        close_mirror(mirror)


@pytest.fixture
def mirror(shared_mirror) -> Mirror:
    """The shared mirror with delivery faults, payload version and the delivery log reset; alive after."""
    sim = shared_mirror.sim
    sim.flush_webhooks()
    sim.webhook_faults.reset()
    sim.webhook_version = "B"
    sim.account.clear_deliveries()
    yield shared_mirror
    sim.webhook_faults.reset()
    sim.flush_webhooks()
    assert shared_mirror.running(), shared_mirror.describe()


@pytest.fixture
def make_mirror(tmp_path, reads_by_id, backend):
    """Builds a daemon and simulator of a test's own (for tests that leave them differing); stops both after."""
    opened: list[Mirror] = []
    with ExitStack() as databases:
        def make(subscribe: bool = True) -> Mirror:
            home = tmp_path / f"m{len(opened)}"
            home.mkdir()
            db = databases.enter_context(open_mirror_database(backend, home / "state"))
            opened.append(open_mirror(home, db, subscribe, reads_by_id=reads_by_id))
            return opened[-1]

        yield make
        for mirror in opened:
            close_mirror(mirror)


@pytest.fixture
def own_mirror(make_mirror) -> Mirror:
    return make_mirror()


def other_status(status: int) -> int:
    return 2 if status != 2 else 3


# -- 1. a status change ------------------------------------------------------------------------


def test_status_change_reaches_the_mirror_within_two_seconds_without_a_pull(mirror, record_property):
    """A status set in Solar Proof shows in the mirror within 2 s, through one getcustomer and no walk."""
    target = mirror.sim.account.ids()[4]
    new = other_status(mirror.sim.account.get(target)["status"])
    runs_before = len(mirror.runs())
    counts_before = mirror.sim.account.call_counts()

    changed = time.monotonic()
    mirror.sim.account.set_status(target, new)
    wait_until(lambda: mirror.status(target) == new, timeout=2, poll=0.01, message="the status in the mirror")
    latency = time.monotonic() - changed
    record_property("event_to_mirror_seconds", round(latency, 3))
    print(f"\nevent-to-mirror latency: {latency:.3f} s")

    counts = mirror.sim.account.call_counts()
    assert len(mirror.runs()) == runs_before  # no sync ran
    assert counts.get("getallcustomers") == counts_before.get("getallcustomers")  # no page was walked
    assert counts.get("getcustomer", 0) == counts_before.get("getcustomer", 0) + 1  # one confirming fetch
    delivered = mirror.sim.flush_webhooks()
    assert [(d["event"], d["status"]) for d in delivered] == [("customer_status_change", 200)]
    assert mirror.row(target)["sync_state"] == "synced"
    assert sorted((h["field"], h["new_value"], h["source"]) for h in mirror.history(target)
                  if h["run_id"] == "webhook") == [
        ("customer_status_text", STATUS_WORDS[new], "remote"), ("fkcustomerstatusid", new, "remote")]
    mirror.assert_equals_simulator()


# -- 2. a create ---------------------------------------------------------------------------------


def test_created_customer_arrives_with_its_payload_abn_and_site_address(mirror):
    """A version-B customer_created brings the customer (fetched) with the payload's ABN as 'webhook payload'; a version-A one invents no ABN."""
    account = mirror.sim.account
    created = account.create_customer(
        first_name="Ada", last_name="Webhook", email="ada.webhook@example.com", phone1="0400 000 001",
        type="Commercial", abn=ABN, projects=[{"site_address": SITE}])
    plain = account.create_customer(first_name="Bo", last_name="Plain", email="bo.plain@example.com",
                                    phone1="0400 000 002", type="Residential")
    wait_until(lambda: mirror.row(created) and mirror.row(plain), timeout=3, message="both customers")

    payloads = {d["payload"]["customer_id"]: d["payload"] for d in mirror.sim.flush_webhooks()}
    assert payloads[created]["abn"] == ABN
    assert payloads[created]["site_address"] == "12 Example Street, Brisbane, QLD, 4000"
    row = mirror.row(created)
    assert (row["customerfirstname"], row["customersurname"], row["customeremail"]) == (
        "Ada", "Webhook", "ada.webhook@example.com")
    assert row["customerabn"] == ABN
    assert row["customer_site_address"] == "12 Example Street, Brisbane QLD 4000"  # the API's, from the fetch
    assert [p["site_address"] for p in mirror.db.query("SELECT site_address FROM customer_projects "
                                                       "WHERE pkcustomerid = ?", (created,))] == [
        "12 Example Street, Brisbane QLD 4000"]
    assert [(h["field"], h["new_value"], h["source"]) for h in mirror.history(created)] == [
        ("(created)", "ada.webhook@example.com", "remote"), ("customerabn", ABN, "webhook payload")]

    # No ABN and no project: the payload's "" for both invents nothing.
    assert (payloads[plain]["abn"], payloads[plain]["site_address"]) == ("", "")
    row = mirror.row(plain)
    assert row["customerabn"] is None and row["customer_site_address"] is None
    assert [(h["field"], h["source"]) for h in mirror.history(plain)] == [("(created)", "remote")]

    # Version A carries no ABN: the customer still comes (fetched), without one.
    mirror.sim.webhook_version = "A"
    older = account.create_customer(
        first_name="Cy", last_name="Older", email="cy.older@example.com", phone1="0400 000 003",
        type="Commercial", abn=ABN, projects=[{"site_address": SITE}])
    wait_until(lambda: mirror.row(older), timeout=3, message="the version-A customer")
    delivery = mirror.sim.flush_webhooks()[-1]
    assert delivery["version"] == "A" and delivery["payload"]["pkcustomerid"] == older
    assert "abn" not in delivery["payload"] and "site_address" not in delivery["payload"]
    row = mirror.row(older)
    assert (row["customerfirstname"], row["customersurname"]) == ("Cy", "Older")  # the payload has a full name only
    assert row["customerabn"] is None  # neither the API's shape nor this payload has an ABN
    assert row["customer_site_address"] == "12 Example Street, Brisbane QLD 4000"
    assert [(h["field"], h["source"]) for h in mirror.history(older)] == [("(created)", "remote")]
    mirror.assert_equals_simulator()


# -- 3. duplicates and disorder ------------------------------------------------------------------


def test_duplicate_and_reordered_events_leave_the_mirror_equal_to_the_simulator(mirror):
    """Duplicated and reordered deliveries, and a late replay of all of them, leave the mirror equal to the API with one '(created)' row each."""
    faults = mirror.sim.webhook_faults
    faults.script("duplicate", count=1, event="customer_created")
    faults.script("reorder", count=1, event="customer_created")
    faults.script("reorder", count=1, event="customer_status_change")
    faults.script("duplicate", count=1, event="customer_status_change")
    account = mirror.sim.account
    first = account.create_customer(first_name="Dup", last_name="Licate", email="dup@example.com", abn=ABN)
    second = account.create_customer(first_name="Re", last_name="Ordered", email="re@example.com")  # held back
    third = account.create_customer(first_name="Th", last_name="Ird", email="third@example.com")  # then both go
    target = account.ids()[2]
    older, newer = [s for s in (1, 2, 3) if s != account.get(target)["status"]][:2]
    account.set_status(target, older)  # held back...
    account.set_status(target, newer)  # ...sent twice, then the stale `older` goes out after it
    delivered = mirror.sim.flush_webhooks()
    assert sorted(d["fault"] or "-" for d in delivered) == sorted(
        ["duplicate", "duplicate", "reorder", "-", "reorder", "duplicate", "duplicate"])
    stale = [d for d in delivered if d["event"] == "customer_status_change"][-1]
    assert stale["payload"][0]["new_status"] == older  # the last word the receiver heard is the stale one
    assert all(d["status"] == 200 for d in delivered)

    wait_until(lambda: all(mirror.row(i) for i in (first, second, third)) and mirror.status(target) == newer,
               timeout=3, message="the creates and the status")
    # Everything applied; now every payload again, newest first, long after the fact.
    seen = {i: len(mirror.applied(i)) for i in (first, second, third, target)}
    history_before = mirror.db.query("SELECT * FROM customer_changes ORDER BY id")
    for d in reversed(delivered):
        assert mirror.post(d["payload"], "/" + d["event"]) == 200
    wait_until(lambda: all(len(mirror.applied(i)) > n for i, n in seen.items()), timeout=3,
               message="the replayed events to be processed")

    mirror.assert_equals_simulator()
    assert mirror.status(target) == newer
    assert mirror.row(first)["customerabn"] == ABN
    for remote_id in (first, second, third):
        created_rows = [h for h in mirror.history(remote_id) if h["field"] == "(created)"]
        assert len(created_rows) == 1, mirror.history(remote_id)
    # The replay wrote no history.
    assert mirror.db.query("SELECT * FROM customer_changes ORDER BY id") == history_before
    status_rows = [h for h in mirror.history(target) if h["field"] == "fkcustomerstatusid"]
    assert status_rows and status_rows[-1]["new_value"] == newer


def test_a_fetch_made_before_a_pull_does_not_overwrite_what_the_pull_wrote(own_mirror):
    """A fetch that finished before a pull, and whose write waited for the lock until after the pull wrote a newer
    state, writes nothing: the customer is fetched again and the pull's state stays."""
    mirror = own_mirror
    target = mirror.sim.account.ids()[6]
    first, last = [s for s in (1, 2, 3) if s != mirror.sim.account.get(target)["status"]][:2]
    reads_before = mirror.reads()
    lock = backend_for(mirror.db.url).sync_lock("test")
    lock.acquire(wait_seconds=10)  # as a long sync would (once a push of the daemon's own, if one runs, is done)
    try:
        fetched = len(mirror.events("webhook_fetched"))
        mirror.sim.account.set_status(target, first)  # the receiver fetches `first`, then waits for the lock
        wait_until(lambda: [e for e in mirror.events("webhook_fetched")[fetched:] if target in e["customers"]],
                   timeout=3, message="the receiver to fetch the customer (the sync lock is not needed for that)")
        mirror.sim.webhook_faults.script("drop", event="customer_status_change")
        mirror.sim.account.set_status(target, last)  # its event is lost; only a pull can bring it
        mirror.sim.flush_webhooks()
        settings = load_settings(env={k: v for k, v in mirror.env.items() if k.startswith("SPMIRROR_")})
        code, _report = sync_once(settings)  # the pull, under the lock this test holds
        assert code == 0 and mirror.status(target) == last
        applied_before = len(mirror.applied(target))
    finally:
        lock.release()
    applied = wait_until(lambda: mirror.applied(target)[applied_before:], timeout=5, message="the webhook's write")
    assert mirror.status(target) == mirror.sim.account.get(target)["status"] == last
    assert [h["new_value"] for h in mirror.history(target) if h["field"] == "fkcustomerstatusid"] == [last]
    superseded = [e for e in mirror.events("webhook_superseded") if e["remote_id"] == target]
    assert [e["fetching_again"] for e in superseded] == [True]  # the stale fetch was dropped, not written...
    assert mirror.reads() == reads_before + 2  # ...and the customer fetched again, after the pull
    assert [a["change"] for a in applied] == ["refresh"]  # which found what the pull had stored


def test_a_late_customer_created_does_not_roll_back_a_newer_abn(own_mirror):
    """A customer_created delivered late, after the ABN changed and a pull learned the new one, leaves the new ABN."""
    mirror = own_mirror
    account = mirror.sim.account
    mirror.sim.webhook_faults.script("reorder", count=1, event="customer_created")
    created = account.create_customer(first_name="Late", last_name="Event", email="late@example.com",
                                      type="Commercial", abn=ABN, projects=[{"site_address": SITE}])  # held back
    newer = "83 914 571 673"
    account.edit_customer(created, abn=newer)
    done = mirror.spmirror("sync", "--wait", "20", env={"SPMIRROR_SYNC_ENRICH": "true"})
    assert done.returncode == 0, done.stderr
    assert mirror.row(created)["customerabn"] == newer  # the enriched pull brought the current ABN
    seen = len(mirror.applied(created))
    account.create_customer(first_name="Next", last_name="One", email="next@example.com")  # releases the held one
    delivered = mirror.sim.flush_webhooks()
    assert [d["payload"]["customer_id"] for d in delivered] == [created + 1, created]
    wait_until(lambda: mirror.applied(created)[seen:], timeout=3, message="the late event processed")
    assert mirror.row(created)["customerabn"] == account.get(created)["abn"] == newer


# -- 4. forged events ----------------------------------------------------------------------------


def test_forged_event_for_an_unknown_customer_writes_nothing(mirror):
    """A customer_created POSTed for an id Solar Proof does not have adds no row and no history."""
    ghost = 99_000_001
    before = mirror.db.query("SELECT count(*) AS n FROM customer_changes")[0]["n"]
    customers = len(mirror.ids())
    forged = {"customer_id": ghost, "customer_uid": None, "first_name": "Eve", "surname": "Forger",
              "customer_name": "Eve Forger", "phone_primary": "0400 666 666", "customer_email": "eve@example.com",
              "abn": ABN, "customer_type_id": 1, "customer_status_id": 2,
              "site_address": "1 Fake St, Nowhere, QLD, 4000"}
    assert mirror.post(forged, "/customer_created") == 200  # accepted as a hint...
    assert mirror.post({"pkcustomerid": ghost + 1, "customer_email": "eve2@example.com", "new_status": 3}) == 200
    wait_until(lambda: {e["remote_id"] for e in mirror.events("webhook_unconfirmed")} >= {ghost, ghost + 1},
               timeout=3, message="webhook_unconfirmed for both")
    for remote_id in (ghost, ghost + 1):  # ...and nothing is written
        assert mirror.row(remote_id) is None and mirror.history(remote_id) == []
        assert mirror.db.query("SELECT * FROM customer_base WHERE pkcustomerid = ?", (remote_id,)) == []
    assert mirror.db.query("SELECT count(*) AS n FROM customer_changes")[0]["n"] == before
    assert len(mirror.ids()) == customers
    mirror.assert_equals_simulator()


def test_forged_status_for_an_existing_customer_keeps_the_api_status(mirror):
    """A status change POSTed for a real customer but never made in Solar Proof leaves the API's status and no history."""
    target = mirror.sim.account.ids()[3]
    real = mirror.sim.account.get(target)["status"]
    history_before = mirror.history(target)
    seen = len(mirror.applied(target))
    assert mirror.post({"pkcustomerid": target, "fkuserid": 1, "customer_email": "x@example.com",
                        "customer_name": "X", "old_status": real, "new_status": other_status(real)},
                       "/customer_status_change") == 200
    assert mirror.post([{"customer_id": target, "customer_email": "x@example.com", "old_status": real,
                         "new_status": other_status(real), "customer_status_id": other_status(real)}]) == 200
    applied = wait_until(lambda: mirror.applied(target)[seen:], timeout=3, message="the forged event processed")
    assert {a["change"] for a in applied} == {"refresh"}  # the API confirmed nothing new
    assert mirror.status(target) == real
    assert mirror.history(target) == history_before
    assert mirror.row(target)["customeremail"] != "x@example.com"
    mirror.assert_equals_simulator()


# -- 5. bad requests -----------------------------------------------------------------------------


def test_bad_requests_get_their_status_codes_and_the_daemon_survives(mirror):
    """Wrong token 404, bad JSON, a non-customer or a malformed length 400, over 64 KiB 413, GET 405, no length 411; the receiver still works after."""
    base = f"http://127.0.0.1:{mirror.port}"
    path = f"/webhooks/{mirror.token}"
    some = mirror.sim.account.ids()[1]
    seen = len(mirror.applied(some))

    def post(url: str, body: bytes) -> int:
        return httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=5).status_code

    valid = json.dumps({"pkcustomerid": some, "customer_email": "a@example.com", "new_status": 1}).encode()
    assert post(f"{base}/webhooks/{'x' * len(mirror.token)}", valid) == 404
    assert post(f"{base}/webhooks/{mirror.token[:-1]}", valid) == 404
    assert post(f"{base}{path}/customer_deleted", valid) == 404  # not an event we subscribe
    assert post(f"{base}/webhooks", valid) == 404
    assert post(f"{base}{path}", b'{"customer_id": 7000') == 400
    assert post(f"{base}{path}", b"\xff\xfe not utf-8") == 400
    assert post(f"{base}{path}", b"") == 400
    assert post(f"{base}{path}/customer_created", b'{"event": "ping", "hello": "world"}') == 400
    assert post(f"{base}{path}", b'["not", "customers"]') == 400
    assert post(f"{base}{path}", b'{"customer_id": "abc", "customer_status_id": 1}') == 400
    # Exactly 64 KiB is accepted (padding is JSON whitespace); one byte more is refused unread.
    assert post(f"{base}{path}", valid + b" " * (64 * 1024 - len(valid))) == 200
    assert post(f"{base}{path}", valid + b" " * (64 * 1024 + 1 - len(valid))) == 413
    assert raw_status(mirror.port, f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                   f"Content-Length: 10000000\r\n\r\n".encode()) == 413
    assert httpx.get(f"{base}{path}", timeout=5).status_code == 405
    assert httpx.put(f"{base}{path}", content=valid, timeout=5).status_code == 405
    assert httpx.get(f"{base}/webhooks/wrong", timeout=5).status_code == 404
    assert raw_status(mirror.port, f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                   f"\r\n".encode()) == 411
    assert raw_status(mirror.port, f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                   f"{len(valid):x}\r\n".encode() + valid + b"\r\n0\r\n\r\n") == 411
    # A malformed Content-Length is a bad request (RFC 9112 6.3); the HTTP parser refuses it before the app.
    assert raw_status(mirror.port, f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n".encode()) == 400

    assert mirror.running()
    wait_until(lambda: len(mirror.applied(some)) > seen, timeout=3, message="the one valid (64 KiB) event processed")
    target = mirror.sim.account.ids()[8]
    new = other_status(mirror.sim.account.get(target)["status"])
    mirror.sim.account.set_status(target, new)
    wait_until(lambda: mirror.status(target) == new, timeout=3, message="a real event after the bad ones")
    assert mirror.running()
    assert mirror.token not in mirror.stdout_path.read_text() + mirror.stderr_path.read_text()
    mirror.assert_equals_simulator()


# -- 6. a missed delivery ------------------------------------------------------------------------


def test_missed_delivery_is_caught_by_the_next_full_sync(mirror):
    """A dropped status event leaves the mirror behind until `spmirror sync` runs, which catches it up and keeps payload ABNs."""
    created = mirror.sim.account.create_customer(first_name="Kept", last_name="Abn", email="kept@example.com",
                                                 abn=ABN)
    wait_until(lambda: mirror.row(created), timeout=3, message="the created customer")
    target = mirror.sim.account.ids()[5]
    old = mirror.sim.account.get(target)["status"]
    new = other_status(old)
    mirror.sim.webhook_faults.script("drop", event="customer_status_change")
    mirror.sim.account.set_status(target, new)
    dropped = mirror.sim.flush_webhooks()[-1]
    assert dropped["fault"] == "drop" and dropped["error"] == "dropped" and dropped["status"] is None
    assert mirror.status(target) == old  # nothing reached the receiver, so nothing can have changed
    runs_before = len(mirror.runs())

    done = mirror.spmirror("sync", "--wait", "20")
    assert done.returncode == 0, done.stderr
    assert mirror.status(target) == new
    assert len(mirror.runs()) == runs_before + 1 and mirror.runs()[-1]["result"] == "ok"
    assert mirror.row(created)["customerabn"] == ABN  # the walk's shape has no ABN; the payload's stays
    mirror.assert_equals_simulator()
    assert mirror.running()


# -- 7. list and unsubscribe ---------------------------------------------------------------------


def test_list_masks_the_token_and_unsubscribe_stops_deliveries(make_mirror):
    """`webhooks list` shows both subscriptions with the token as ***; `unsubscribe` removes them in Solar Proof and locally."""
    mirror = make_mirror(subscribe=False)
    mirror.subscribe()

    listed = mirror.spmirror("webhooks", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 2
    for line, event in zip(lines, EVENTS):
        assert line.split()[0] == event
        assert f"http://127.0.0.1:{mirror.port}/webhooks/***/{event}" in line
    assert mirror.token not in listed.stdout + listed.stderr
    rows = mirror.db.query("SELECT event, hook_url, base_url FROM webhook_subscriptions ORDER BY event")
    assert [(r["event"], r["hook_url"], r["base_url"]) for r in rows] == [
        (event, f"{mirror.hook_base}/{event}", mirror.hook_base) for event in EVENTS]

    target = mirror.sim.account.ids()[7]
    mirror.sim.account.set_status(target, other_status(mirror.sim.account.get(target)["status"]))
    wait_until(lambda: mirror.status(target) == mirror.sim.account.get(target)["status"], timeout=3,
               message="a delivery while subscribed")

    gone = mirror.spmirror("webhooks", "unsubscribe", "--url", mirror.hook_base)
    assert gone.returncode == 0, gone.stderr
    assert mirror.token not in gone.stdout + gone.stderr
    assert mirror.sim.account.webhooks() == []
    assert mirror.db.query("SELECT * FROM webhook_subscriptions") == []
    after = mirror.spmirror("webhooks", "list")
    assert after.returncode == 0 and "no webhooks subscribed" in after.stdout

    deliveries = len(mirror.sim.flush_webhooks())
    previous = mirror.sim.account.get(target)["status"]
    mirror.sim.account.set_status(target, other_status(previous))
    mirror.sim.account.create_customer(first_name="No", last_name="Hook", email="nohook@example.com")
    assert len(mirror.sim.flush_webhooks()) == deliveries  # nothing sent
    assert mirror.status(target) == previous
    assert "nohook@example.com" not in {r["customeremail"]
                                        for r in mirror.db.query("SELECT customeremail FROM customers")}


# -- 8. bursts -----------------------------------------------------------------------------------


def test_a_burst_of_500_events_from_32_senders_is_answered_within_a_second_each(mirror, record_property):
    """500 events from 32 concurrent senders are all answered 200, each within 1 s, and bring every change
    they name, at no more than two reads per customer."""
    account = mirror.sim.account
    ids = account.ids()[:CUSTOMERS]
    changed = ids[::2]
    mirror.sim.webhook_faults.script("drop", count=len(changed), event="customer_status_change")
    for remote_id in changed:  # changed in Solar Proof; only the burst below tells the receiver
        account.set_status(remote_id, other_status(account.get(remote_id)["status"]))
    mirror.sim.flush_webhooks()
    bodies = [status_event(account, ids[n % len(ids)], "AB"[n % 2]) for n in range(500)]
    random.Random(11).shuffle(bodies)
    seen = {remote_id: len(mirror.applied(remote_id)) for remote_id in ids}
    reads_before = mirror.reads()

    answers = post_all(mirror.port, f"/webhooks/{mirror.token}/customer_status_change", bodies, senders=32)
    seconds = sorted(s for _status, s in answers)
    p95 = statistics.quantiles(seconds, n=100, method="inclusive")[94]
    record_property("burst_answer_p95_s", round(p95, 4))
    print(f"\nburst of 500 from 32 senders: p95 {p95 * 1000:.1f} ms, slowest {seconds[-1] * 1000:.1f} ms")
    assert [status for status, _s in answers] == [200] * 500  # none refused, reset or failed
    assert seconds[-1] < 1.0  # the promise: each answer within a second (Solar Proof wants 5 s)

    wait_until(lambda: all(len(mirror.applied(i)) > seen[i] for i in ids), timeout=15,
               message="every customer named by the burst to be fetched and applied")
    mirror.assert_equals_simulator()
    reads = mirror.reads() - reads_before
    print(f"reads: {reads} for {len(ids)} customers named 25 times each")
    # One per customer, plus at most one more for a customer named again while its fetch was in flight.
    assert len(ids) <= reads <= 2 * len(ids)


def test_fifty_events_for_one_customer_cost_one_fetch(mirror):
    """A burst naming one customer 50 times is fetched once and written once."""
    account = mirror.sim.account
    target, marker = account.ids()[9], account.ids()[10]
    mirror.sim.webhook_faults.script("drop", event="customer_status_change")
    account.set_status(target, other_status(account.get(target)["status"]))
    mirror.sim.flush_webhooks()
    seen, reads_before, logged = len(mirror.applied(target)), mirror.reads(), len(mirror.events())
    path = f"/webhooks/{mirror.token}"

    answers = post_all(mirror.port, path, [status_event(account, target, "AB"[n % 2]) for n in range(50)], senders=32)
    assert [status for status, _s in answers] == [200] * 50
    # A marker queued after all fifty: once the batch that wrote it is done, no fetch of the target is left.
    assert post_all(mirror.port, path, [status_event(account, marker, "A")], senders=1)[0][0] == 200
    wait_until(lambda: _marker_batch_done(mirror.events()[logged:], marker), timeout=5,
               message="the batch holding the marker to finish")
    assert len(mirror.applied(target)) == seen + 1
    assert mirror.reads() == reads_before + 2  # the target once, the marker once
    assert mirror.status(target) == account.get(target)["status"]
    mirror.assert_equals_simulator()


def _marker_batch_done(events: list[dict], marker: int) -> bool:
    """A webhook_batch_done line follows the marker's webhook_applied line in these log lines."""
    applied = [n for n, e in enumerate(events) if e.get("event") == "webhook_applied" and e.get("remote_id") == marker]
    return bool(applied) and any(e.get("event") == "webhook_batch_done" for e in events[applied[-1]:])


def test_a_local_edit_is_pushed_while_a_large_batch_is_being_fetched(make_mirror, record_property):
    """While one fetch of a batch hangs on a slow API, the rest of the batch is written and a local edit made then
    reaches Solar Proof within seconds: the sync lock is held for writes, never across fetches."""
    mirror = make_mirror(subscribe=False)
    account = mirror.sim.account
    ids = account.ids()
    stall = 12.0
    mirror.sim.faults.script("stall", action="getcustomer" if mirror.sim.quirks.getcustomer else "getcustomerByemail",
                             stall_seconds=stall)
    answers = post_all(mirror.port, f"/webhooks/{mirror.token}",
                       [status_event(account, remote_id, "A") for remote_id in ids], senders=8)
    assert [status for status, _s in answers] == [200] * len(ids)
    wait_until(lambda: [f for f in mirror.sim.faults.injected() if f["kind"] == "stall"], timeout=5,
               message="one fetch of the batch to hang")
    stalled_at = time.monotonic()
    # Everything but the hanging fetch is written meanwhile (each write holds the lock briefly).
    wait_until(lambda: sum(bool(mirror.applied(i)) for i in ids) == len(ids) - 1, timeout=5,
               message="the rest of the batch to be written")

    target, phone = ids[-1], "0400 777 123"
    edited = time.monotonic()
    mirror.db.edit(f"UPDATE customers SET customerphone2 = '{phone}' WHERE pkcustomerid = {target}")
    wait_until(lambda: account.get(target)["phone2"] == phone, timeout=stall - 4,
               message="the local edit in Solar Proof while the batch is still being fetched")
    delay = time.monotonic() - edited
    record_property("edit_during_batch_s", round(delay, 3))
    print(f"\nlocal edit pushed {delay:.2f} s after its commit, during a batch fetch")
    assert time.monotonic() - stalled_at < stall  # the hanging fetch has not come back yet
    assert not mirror.events("webhook_batch_done")  # so its batch is still in progress
    # The push records its outcome just after Solar Proof answered: the row settles a moment later.
    wait_until(lambda: mirror.row(target)["sync_state"] == "synced", timeout=3, message="the pushed row to settle")
    mirror.stop()  # SIGTERM with the fetch still hanging: a clean exit, not a kill after 5 s
    assert mirror.proc.returncode == 0, mirror.describe()


# -- 9. the queue and the HTTP side, without a daemon --------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def hint(remote_id: int) -> Customer:
    return parse_customer({"pkcustomerid": remote_id, "new_status": 1})


def test_the_queue_coalesces_per_customer_and_batches_after_quiet_or_a_longest_wait():
    """Events for one customer merge into one entry; a batch is due after 0.3 s of quiet, or once the oldest
    entry waited 1 s in a steady stream; an event for a customer in flight waits until its fetch is done."""
    clock = FakeClock()
    queue = HintQueue(capacity=100, quiet=0.3, longest=1.0, clock=clock)
    for _ in range(50):
        assert queue.offer([hint(1)])
    assert queue.offer([hint(2), hint(1)])
    assert len(queue) == 2
    clock.now += 0.29
    assert queue.take_due() == []  # not quiet long enough
    clock.now += 0.01
    batch = queue.take_due()
    assert [h.remote_id for h in batch] == [1, 2] and len(queue) == 0

    queue.offer([hint(1)])  # customer 1 is in flight: this waits beside it
    clock.now += 5
    assert queue.take_due() == []
    queue.done([1, 2])
    clock.now += 0.3
    assert [h.remote_id for h in queue.take_due()] == [1]
    queue.done([1])

    start = clock.now
    for _ in range(20):  # a steady stream, one event every 0.25 s: never 0.3 s of quiet
        queue.offer([hint(3)])
        if queue.take_due():
            break
        clock.now += 0.25
    assert clock.now - start == 1.0  # due by the longest wait, not starved


def test_the_queue_is_bounded_and_keeps_payload_fields_of_earlier_events():
    """A full queue refuses a whole event (a known customer still merges); a later status change keeps the ABN an
    earlier customer_created carried; a superseded fetch is queued again with its attempts counted."""
    clock = FakeClock()
    queue = HintQueue(capacity=2, clock=clock)
    def created_event(abn: str) -> Customer:
        return parse_customer({"customer_id": 5, "first_name": "A", "surname": "B", "customer_email": "a@b.c",
                               "abn": abn, "customer_type_id": 1, "customer_status_id": 1})
    created = created_event(ABN)
    assert queue.offer([created]) and queue.offer([hint(6)])
    assert not queue.offer([hint(7)]) and not queue.offer([hint(5), hint(7)])
    assert queue.offer([hint(5)])  # already queued: no room needed
    clock.now += 1
    batch = {h.remote_id: h for h in queue.take_due()}
    assert batch[5].customer.fields["customerabn"] == ABN and "customerabn" in batch[5].customer.carried
    assert merge_hints(created, created_event("")).fields["customerabn"] is None  # the newer event's empty word

    queue.retry([batch[5]])
    queue.done([5, 6])
    clock.now += 1
    (again,) = queue.take_due()
    assert (again.remote_id, again.attempts) == (5, 1)


def test_a_full_queue_answers_503_and_the_token_must_match_exactly():
    """Over HTTP without a daemon: 503 with Retry-After when the queue refuses, 404 for the token with a byte
    more or less, 200 once there is room."""
    accept = {"room": False}
    offered: list[list[int]] = []

    def offer(customers) -> bool:
        if accept["room"]:
            offered.append([c.remote_id for c in customers])
        return accept["room"]

    server = ReceiverServer("127.0.0.1:0", WebhookApp("s3cret-token", offer))
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}/webhooks"
        full = httpx.post(f"{base}/s3cret-token", json={"pkcustomerid": 7, "new_status": 1}, timeout=5)
        assert full.status_code == 503 and full.headers["retry-after"] == "60"
        for wrong in ("s3cret-toke", "s3cret-tokenn", "S3cret-token", ""):
            assert httpx.post(f"{base}/{wrong}", json={"pkcustomerid": 7}, timeout=5).status_code == 404
        accept["room"] = True
        assert httpx.post(f"{base}/s3cret-token/", json={"pkcustomerid": 7, "new_status": 1},
                          timeout=5).status_code == 200
        assert offered == [[7]]
    finally:
        server.stop()
