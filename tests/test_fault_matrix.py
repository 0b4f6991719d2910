"""Every simulator fault, pulling and pushing, transient and persistent, checked by `World.check` after each run."""

from __future__ import annotations

import bisect
import random
import sqlite3
import uuid
from pathlib import Path

import httpx
import pytest

from conftest import API_KEY, FakeClock
from mirror.api import SolarProofClient, Timeouts
from mirror.commands.sync import sync_once
from mirror.config import load_settings
from mirror.exit_codes import EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE, EXIT_USAGE
from mirror.retry import RetryPolicy
from mirror.simulator.server import SimulatorServer
from sqlite_edit import edit, query, row_of, scalar, sql_text

CUSTOMERS = 120  # three listing pages: 50, 50, 20
SEED = 31
TRANSIENT, PERSISTENT = 2, 1000
RESULT_OF = {EXIT_UNAVAILABLE: "incomplete", EXIT_USAGE: "failed", EXIT_REFUSED: "refused"}

TRANSPORT_FAULTS = [
    pytest.param("429", 1, id="429-retry-after"),
    pytest.param("429", "omit", id="429-no-retry-after"),
    pytest.param("500", None, id="500"),
    pytest.param("502", None, id="502"),
    pytest.param("503", None, id="503"),
    pytest.param("drop", None, id="drop"),
    pytest.param("truncate", None, id="truncate"),
    pytest.param("html", None, id="html"),
]
VARIANTS = [pytest.param(TRANSIENT, id="transient"), pytest.param(PERSISTENT, id="persistent")]
PUSH_ACTIONS = ["getcustomer", "updatecustomer", "createcustomer"]


# -- reading the mirror and the simulator ---------------------------------------------------


def mirror_ids(db: Path) -> set[int]:
    return {r["pkcustomerid"] for r in query(db, "SELECT pkcustomerid FROM customers WHERE pkcustomerid IS NOT NULL")}


def deleted_ids(db: Path) -> set[int]:
    return {r["pkcustomerid"] for r in query(db, "SELECT pkcustomerid FROM deleted_customers")}


def candidates(db: Path) -> dict[int, str]:
    return {r["pkcustomerid"]: r["missing_since_run"] for r in
            query(db, "SELECT pkcustomerid, missing_since_run FROM customer_base WHERE missing_since_run IS NOT NULL")}


def last_run(db: Path) -> dict:
    return query(db, "SELECT * FROM sync_runs ORDER BY rowid DESC LIMIT 1")[0]


def applied(sim: SimulatorServer, action: str, **data) -> list[dict]:
    """Applied writes of `action` whose body data holds every given key/value."""
    return [e for e in sim.account.write_log() if e["action"] == action and e["applied"]
            and all(e["body"]["data"].get(k) == v for k, v in data.items())]


def sim_ids_with_email(sim: SimulatorServer, email: str) -> list[int]:
    return [r["id"] for r in sim.account.snapshot()["customers"] if r["email"] == email]


def restore(account, records: list[dict]) -> None:
    """Put deleted customers back under their old ids (test-only: the control surface has no undelete)."""
    with account._lock:
        for record in records:
            account._records[record["id"]] = record
            bisect.insort(account._ids, record["id"])
            account._index(record)
            account._read_cache.forget(record["id"])


# -- clients --------------------------------------------------------------------------------


class FaultFromPage(SolarProofClient):
    """Scripts `count` faults on getallcustomers when page `page` is first requested (a walk failing mid-way)."""

    def __init__(self, *args, sim, kind, count, retry_after=None, page=2, **kwargs):
        super().__init__(*args, **kwargs)
        self.sim, self.fault, self.page = sim, (kind, count, retry_after), page

    def fetch_customer_page(self, page):
        if page == self.page and self.fault:
            kind, count, retry_after = self.fault
            self.sim.faults.script(kind, count=count, action="getallcustomers", retry_after=retry_after)
            self.fault = None
        return super().fetch_customer_page(page)


class HidingClient(SolarProofClient):
    """A client whose listing never shows the given customers."""

    def __init__(self, *args, hidden: set[int], **kwargs):
        super().__init__(*args, **kwargs)
        self.hidden = {str(i) for i in hidden}

    def fetch_customer_page(self, page):
        records = super().fetch_customer_page(page)
        return [r for r in records if str(r.value.get("customer_id")) not in self.hidden]


class GoneBeforeUpdate(SolarProofClient):
    """Deletes customer `victim` in the simulator between the push's re-read and its updatecustomer."""

    def __init__(self, *args, sim, victim: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.sim, self.victim = sim, victim

    def update_customer(self, remote_id, fields):
        if remote_id == self.victim and remote_id in self.sim.account.ids():
            self.sim.account.delete_customer(remote_id)
        return super().update_customer(remote_id, fields)


# -- one simulator and one mirror per test ---------------------------------------------------


class World:
    """A simulator, a mirror synced from it, and `sync()`, which checks the invariants after every run."""

    def __init__(self, sim: SimulatorServer, db: Path):
        self.sim, self.db = sim, db
        self.clock = FakeClock()
        self.edits: list[tuple[int, str, str]] = []  # (pkcustomerid, write-body key, value)
        self.emails: list[str] = []
        self.ids = sim.account.ids()

    def settings(self, **env: str):
        return load_settings(env={"SPMIRROR_API_URL": self.sim.url, "SPMIRROR_API_KEY": self.sim.api_key,
                                  "SPMIRROR_DB": str(self.db), "SPMIRROR_API_MAX_IN_FLIGHT": "1", **env})

    def client(self, cls=SolarProofClient, key: str | None = None, **extra) -> SolarProofClient:
        """A client on the fake clock (as conftest.make_client), of class `cls`."""
        return cls(self.sim.url, key or self.sim.api_key, rng=random.Random(3), sleep=self.clock.sleep,
                   clock=self.clock, retry=RetryPolicy(attempts=4, base_delay=0.5, max_delay=4, deadline=60),
                   timeouts=Timeouts(connect=2, read=5, write=5, pool=5),
                   transport=httpx.HTTPTransport(verify=False),  # plain http; skips loading CA certificates
                   **extra)

    def sync(self, client: SolarProofClient | None = None, **options):
        """One sync_once (fake-clock client unless given); asserts the invariants; returns (code, report)."""
        before = {"deleted": deleted_ids(self.db), "candidates": candidates(self.db), "ids": mirror_ids(self.db)}
        with client or self.client() as c:
            code, report = sync_once(self.settings(), client=c, **options)
        self.check(code, before)
        return code, report

    def first_sync(self) -> None:
        """The initial import (no invariants to compare against yet)."""
        with self.client() as c:
            assert sync_once(self.settings(), client=c)[0] == EXIT_OK
        assert scalar(self.db, "PRAGMA integrity_check") == "ok"

    def check(self, code: int, before: dict) -> None:
        """Integrity holds, no live customer is deleted, nothing is written twice, a failed run deletes nothing."""
        db, sim = self.db, self.sim
        assert scalar(db, "PRAGMA integrity_check") == "ok"
        live = set(sim.account.ids())
        assert not deleted_ids(db) & live, "a customer that exists in Solar Proof was deleted"
        assert before["ids"] & live <= mirror_ids(db), "a live customer left the mirror"
        for remote_id, key, value in self.edits:
            assert len(applied(sim, "updatecustomer", pkcustomerid=remote_id, **{key: value})) <= 1, (remote_id, key)
        for email in self.emails:
            assert len(applied(sim, "createcustomer", email=email)) <= 1, email
            assert scalar(db, "SELECT count(*) FROM customers WHERE customeremail = ?", (email,)) == 1
        run = last_run(db)
        if code == EXIT_OK:
            assert run["result"] == "ok", run
        else:
            assert run["result"] == RESULT_OF[code] and run["error"], run
            assert deleted_ids(db) == before["deleted"] and run["deleted"] == 0
            if code != EXIT_REFUSED:
                assert candidates(db) == before["candidates"]

    def settle(self, runs: int = 4) -> None:
        """Sync (no faults expected) until no row is pending and no create is in doubt; every run exits 0."""
        for _ in range(runs):
            code, _report = self.sync()
            assert code == EXIT_OK, last_run(self.db)
            if not scalar(self.db, "SELECT count(*) FROM customers WHERE sync_state = 'pending'") and \
                    not scalar(self.db, "SELECT count(*) FROM create_intents"):
                return
        raise AssertionError(f"not settled after {runs} runs")

    def make_candidates(self, count: int = 2) -> list[int]:
        """Delete `count` customers in Solar Proof and sync once: they are delete candidates now."""
        victims = self.ids[60:60 + count]
        for remote_id in victims:
            self.sim.account.delete_customer(remote_id)
        code, report = self.sync()
        assert code == EXIT_OK and report.delete_candidates == count
        return victims

    def local_edit(self, remote_id: int, value: str) -> str:
        """SQL setting customerphone2 of one row (an edit expected to be applied exactly once)."""
        self.edits.append((remote_id, "phone2", value))
        return f"UPDATE customers SET customerphone2 = {sql_text(value)} WHERE pkcustomerid = {remote_id}"

    def local_insert(self) -> tuple[str, str]:
        """(SQL inserting a new customer row with pkcustomerid NULL, its unique email)."""
        email = f"new-{uuid.uuid4().hex[:10]}@example.com.au"
        self.emails.append(email)
        return ("INSERT INTO customers (customerfirstname, customersurname, customeremail, customerphone1, "
                f"fkcustomertypeid) VALUES ('Wendy', 'Wombat', {sql_text(email)}, '0400 123 456', 2)"), email

    def assert_converged(self) -> None:
        """The mirror holds exactly the simulator's customers, each edit applied once, each new email created once."""
        assert mirror_ids(self.db) == set(self.sim.account.ids())
        for remote_id, key, value in self.edits:
            assert len(applied(self.sim, "updatecustomer", pkcustomerid=remote_id, **{key: value})) == 1
            assert self.sim.account.get(remote_id)["phone2"] == value
            assert row_of(self.db, remote_id)["sync_state"] == "synced"
        for email in self.emails:
            assert len(applied(self.sim, "createcustomer", email=email)) == 1
            [new_id] = sim_ids_with_email(self.sim, email)
            assert query(self.db, "SELECT pkcustomerid, sync_state FROM customers WHERE customeremail = ?",
                         (email,)) == [{"pkcustomerid": new_id, "sync_state": "synced"}]
        assert scalar(self.db, "SELECT count(*) FROM create_intents") == 0


@pytest.fixture(scope="module")
def server():
    """One simulator for the module; each test gives it a fresh account."""
    with SimulatorServer(customers=0, seed=SEED, api_key=API_KEY) as sim:
        yield sim


@pytest.fixture(scope="module")
def template(server, tmp_path_factory) -> Path:
    """A mirror of the 120-customer account, imported once and copied for each test."""
    server.reset_account(customers=CUSTOMERS, seed=SEED)
    w = World(server, tmp_path_factory.mktemp("template") / "mirror.db")
    w.first_sync()
    return w.db


@pytest.fixture(params=[True, False], ids=["getcustomer", "no-getcustomer"])
def world(server, template, tmp_path, request):
    """A fresh 120-customer account and a copy of its mirror, in sync; the server has the undocumented getcustomer,
    or lacks it."""
    server.reset_account(customers=CUSTOMERS, seed=SEED)
    server.quirks.update(getcustomer=request.param)
    db = tmp_path / "mirror.db"
    source, target = sqlite3.connect(template), sqlite3.connect(db)
    try:
        source.backup(target)
    finally:
        source.close()
    try:  # held open (idle) so each short-lived reader's close does not checkpoint and delete the WAL
        yield World(server, db)
    finally:
        target.close()


def injected(sim: SimulatorServer, action: str) -> int:
    return sum(1 for f in sim.faults.injected() if f["action"] == action)


# -- transport faults ------------------------------------------------------------------------


@pytest.mark.parametrize("count", VARIANTS)
@pytest.mark.parametrize("kind, retry_after", TRANSPORT_FAULTS)
def test_pull_under_transport_fault(world, kind, retry_after, count):
    """A page faulted mid-walk is retried (transient, exit 0) or the run exits 75 applying no delete (persistent)."""
    w, sim, db = world, world.sim, world.db
    victims = w.make_candidates()
    remote = w.ids[30]
    sim.account.edit_customer(remote, phone1="0499 000 111")
    edit(db, w.local_edit(w.ids[40], "0400 555 000"))
    code, report = w.sync(w.client(FaultFromPage, sim=sim, kind=kind, count=count, retry_after=retry_after))
    if retry_after == 1:
        assert 1.0 in w.clock.sleeps  # Retry-After honoured, on the fake clock
    if count == TRANSIENT:
        assert code == EXIT_OK and report.complete
        assert injected(sim, "getallcustomers") == 2
        assert sorted(report.deleted_ids) == sorted(victims)
        assert row_of(db, remote)["customerphone1"] == "0499 000 111"
        assert last_run(db)["result"] == "ok"
    else:
        assert code == EXIT_UNAVAILABLE and not report.complete and report.deleted == 0
        assert "getallcustomers" in last_run(db)["error"]
        assert set(victims) <= mirror_ids(db) and set(victims) <= set(candidates(db))
        sim.faults.reset()
        code, report = w.sync()
        assert code == EXIT_OK and sorted(report.deleted_ids) == sorted(victims)
    assert row_of(db, remote)["customerphone1"] == "0499 000 111"
    w.assert_converged()


@pytest.mark.parametrize("count", VARIANTS)
@pytest.mark.parametrize("action", PUSH_ACTIONS)
@pytest.mark.parametrize("kind, retry_after", TRANSPORT_FAULTS)
def test_push_under_transport_fault(world, kind, retry_after, action, count):
    """Faults on the push's re-read, update or create are retried or left for a later run, and nothing is sent twice."""
    w, sim, db = world, world.sim, world.db
    victims = w.make_candidates()
    target = w.ids[10]
    insert, email = w.local_insert()
    edit(db, w.local_edit(target, "0400 777 000"), insert)
    sim.faults.script(kind, count=count, action=action, retry_after=retry_after)
    code, report = w.sync()
    if kind == "429" and retry_after == 1:
        assert 1.0 in w.clock.sleeps  # Retry-After honoured, on the fake clock
    retried_in_call = action != "createcustomer" or kind == "429"  # a create is re-sent only after a 429
    if count == TRANSIENT:
        assert code == EXIT_OK
        assert injected(sim, action) == (2 if retried_in_call else 1)
        assert len(applied(sim, "updatecustomer", pkcustomerid=target)) == 1
        if retried_in_call:
            assert report.push.created == 1
        else:  # outcome unknown: looked up and re-sent on a later run, never blindly in this one
            assert report.push.unknown == 1 and report.push.created == 0
            assert scalar(db, "SELECT count(*) FROM create_intents") == 1
        w.settle()
    else:
        if retried_in_call:
            assert code == EXIT_UNAVAILABLE and action in last_run(db)["error"]
            assert applied(sim, "updatecustomer") == []
            assert row_of(db, target)["sync_state"] == "pending"
            assert row_of(db, target)["customerphone2"] == "0400 777 000"
            assert set(victims) <= mirror_ids(db)
            if action == "createcustomer":
                assert applied(sim, "createcustomer") == [] and sim_ids_with_email(sim, email) == []
            else:
                assert len(applied(sim, "createcustomer", email=email)) == 1
        else:
            # One create per run, never repeated within a run; see test_create_failing_every_run_is_visible.
            codes = [code] + [w.sync()[0] for _ in range(2)]
            assert codes == [EXIT_OK] * 3, codes  # an unknown outcome is this row's state, not an outage
            [row] = query(db, "SELECT sync_state, sync_error FROM customers WHERE customeremail = ?", (email,))
            assert row["sync_state"] == "pending" and "answer was lost" in row["sync_error"], row
            assert applied(sim, "createcustomer") == [] and sim_ids_with_email(sim, email) == []
            assert len(applied(sim, "updatecustomer", pkcustomerid=target)) == 1
        [local] = query(db, "SELECT pkcustomerid, customerfirstname FROM customers WHERE customeremail = ?", (email,))
        assert local["customerfirstname"] == "Wendy"  # the inserted row is never lost
        sim.faults.reset()
        w.settle()
    w.assert_converged()
    assert not set(victims) & mirror_ids(db)


def test_create_failing_every_run_is_visible(world):
    """A create answered 503 on every run is surfaced: every run counts it as unknown, and the row stays pending
    with a sync_error naming the 503; it is re-sent only after two complete walks lack it, never applied twice."""
    w, sim, db = world, world.sim, world.db
    insert, email = w.local_insert()
    edit(db, insert)
    sim.faults.script("503", count=PERSISTENT, action="createcustomer")
    for _ in range(3):
        code, report = w.sync()
        assert code == EXIT_OK and report.push.unknown == 1 and report.push.created == 0, (code, report.push)
        [row] = query(db, "SELECT sync_state, sync_error FROM customers WHERE customeremail = ?", (email,))
        assert row["sync_state"] == "pending", row
        assert "HTTP 503" in row["sync_error"] and "answer was lost" in row["sync_error"], row
        assert query(db, "SELECT email FROM create_intents") == [{"email": email}]
    # Sent on the first run, and again on the third, once two complete walks had not listed it.
    assert [(e["action"], e["status"], e["applied"]) for e in sim.account.write_log()] == [
        ("createcustomer", 503, False)] * 2
    assert sim_ids_with_email(sim, email) == []


# -- errors inside HTTP 200 ------------------------------------------------------------------


@pytest.mark.parametrize("count", VARIANTS)
@pytest.mark.parametrize("direction", ["pull", "push"])
def test_wrong_key_answered_in_200_exits_2(world, direction, count):
    """A key refused inside HTTP 200 exits 2 on every run with it, applies nothing, and a fixed key recovers."""
    w, sim, db = world, world.sim, world.db
    victims = w.make_candidates()
    sim.quirks.update(errors_in_200=True)
    target = w.ids[10]
    if direction == "push":
        edit(db, w.local_edit(target, "0400 222 000"))
    runs = 1 if count == TRANSIENT else 2
    for _ in range(runs):
        code, report = w.sync(w.client(key="wrong-key-0000000000"), push=direction == "push")
        assert code == EXIT_USAGE and not report.complete
        assert "SPMIRROR_API_KEY" in last_run(db)["error"] and "INVALID_API_KEY" in last_run(db)["error"]
        assert [e for e in sim.account.write_log() if e["applied"]] == []
        assert set(victims) <= mirror_ids(db)
    if direction == "push":
        assert row_of(db, target)["customerphone2"] == "0400 222 000"
        assert row_of(db, target)["sync_state"] == "pending"
    code, report = w.sync()
    assert code == EXIT_OK and sorted(report.deleted_ids) == sorted(victims)
    w.assert_converged()


def test_insert_made_while_the_key_is_wrong_is_created_once_the_key_is_fixed(world):
    """A new row pushed with a refused key (exit 2) is created by the first sync with the right key."""
    w, sim, db = world, world.sim, world.db
    sim.quirks.update(errors_in_200=True)
    insert, email = w.local_insert()
    edit(db, insert)
    code, _report = w.sync(w.client(key="wrong-key-0000000000"))
    assert code == EXIT_USAGE
    assert applied(sim, "createcustomer") == []
    [row] = query(db, "SELECT sync_state, sync_error FROM customers WHERE customeremail = ?", (email,))
    assert row["sync_state"] == "pending", row  # a key problem is not this row's problem
    code, _report = w.sync()
    assert code == EXIT_OK
    w.assert_converged()


@pytest.mark.parametrize("where", ["getcustomer", "updatecustomer"])
def test_customer_not_found_in_200_during_push_flags_the_row(world, where):
    """CUSTOMER_NOT_FOUND inside HTTP 200, on the re-read or the update, flags the row and keeps the edit."""
    w, sim, db = world, world.sim, world.db
    sim.quirks.update(errors_in_200=True)
    gone, other = w.ids[10], w.ids[11]
    edit(db, f"UPDATE customers SET customerphone2 = '0400 333 000' WHERE pkcustomerid = {gone}",
         w.local_edit(other, "0400 333 111"))
    if where == "getcustomer":
        sim.account.delete_customer(gone)
        client = w.client()
    else:
        client = w.client(GoneBeforeUpdate, sim=sim, victim=gone)
    code, report = w.sync(client)
    if where == "getcustomer" and not sim.quirks.getcustomer:
        # No read by id: the email lookup proves nothing, so the edit waits for the walks, which confirm the
        # delete and keep the edit beside the last record.
        assert code == EXIT_OK and report.push.errors == 0 and report.push.deferred == [gone]
        assert report.push.updated == 1 and applied(sim, "updatecustomer", pkcustomerid=gone) == []
        assert row_of(db, gone)["sync_state"] == "pending" and row_of(db, gone)["customerphone2"] == "0400 333 000"
        for _ in range(2):
            assert w.sync()[0] == EXIT_OK
        assert gone in deleted_ids(db) and row_of(db, gone) is None
        assert query(db, "SELECT new_value, source FROM customer_changes WHERE pkcustomerid = ? AND field = "
                         "'customerphone2'", (gone,)) == [{"new_value": "0400 333 000",
                                                          "source": "local (not pushed: deleted in Solar Proof)"}]
        w.assert_converged()
        return
    assert code == EXIT_OK and report.push.errors == 1 and report.push.updated == 1
    assert applied(sim, "updatecustomer", pkcustomerid=gone) == []
    if where == "updatecustomer":
        [sent] = [e for e in sim.account.write_log() if e["body"]["data"].get("pkcustomerid") == gone]
        assert sent["status"] == 200 and sent["response"]["code"] == "CUSTOMER_NOT_FOUND"
    row = row_of(db, gone)
    assert row["sync_state"] == "error" and "no longer exists" in row["sync_error"]
    assert row["customerphone2"] == "0400 333 000"
    assert query(db, "SELECT new_value, source FROM customer_changes WHERE pkcustomerid = ? AND field = "
                     "'customerphone2'", (gone,)) == [{"new_value": "0400 333 000", "source": "local (not pushed)"}]
    for _ in range(2):  # really gone: it leaves the mirror within two syncs, its record kept
        assert w.sync()[0] == EXIT_OK
    assert gone in deleted_ids(db) and row_of(db, gone) is None
    w.assert_converged()


def test_customer_not_found_in_200_during_pull_confirms_only_real_deletes(world):
    """With errors in HTTP 200, delete confirmation removes customers the read by id misses and keeps a hidden live
    one."""
    w, sim, db = world, world.sim, world.db
    sim.quirks.update(errors_in_200=True)
    victims = w.make_candidates()
    hidden = w.ids[-1]  # last page: hiding it keeps the walk complete
    for _ in range(2):
        code, _report = w.sync(w.client(HidingClient, hidden={hidden}))
        assert code == EXIT_OK
    assert deleted_ids(db) == set(victims)
    assert hidden in mirror_ids(db)
    reads = "getcustomer" if sim.quirks.getcustomer else "getcustomerByemail"  # the read by id, either way
    assert sim.account.call_counts().get(reads, 0) >= len(victims) + 1
    w.assert_converged()


# -- page drift and an empty listing -----------------------------------------------------------


@pytest.mark.parametrize("count", VARIANTS)
@pytest.mark.parametrize("direction", ["pull", "push"])
def test_page_drift_mid_walk(world, direction, count):
    """Records shifting between pages mid-walk, once or on every walk, delete no live customer and duplicate nothing."""
    w, sim, db = world, world.sim, world.db
    if direction == "push":
        sim.account.set_order("newest")  # new customers land on page 1 and push the others forward
        edit(db, w.local_edit(w.ids[70], "0400 888 000"), w.local_insert()[0])
    walks = 1 if count == TRANSIENT else 3
    for _ in range(walks):
        sim.account.schedule_shift(after_page=1, delete_served=2, create=5)
        code, report = w.sync()
        assert code == EXIT_OK
        shift = sim.account.shift_report()
        assert shift["done"]
        if direction == "pull":  # id order: two served records deleted, so two later ones move back unseen
            assert len(shift["missed"]) == 2 and shift["duplicated"] == [], shift
            missed = set(shift["missed"])
            assert missed <= set(sim.account.ids()) and missed <= mirror_ids(db)  # live, and kept
            assert missed <= set(candidates(db))  # only candidates: one walk proves no delete
        else:  # newest first: five created on page 1, two served deleted: three records seen twice
            assert shift["missed"] == [] and len(shift["duplicated"]) == 3, shift
            assert report.duplicates == 3
    assert w.sync()[0] == EXIT_OK  # one quiet walk more confirms the real deletes
    assert w.sync()[0] == EXIT_OK
    w.assert_converged()


def test_lost_create_is_not_resent_after_a_drifted_walk(server, tmp_path):
    """A lost create with a reused email, then a walk that misses it through page drift, is still created once."""
    server.reset_account(customers=100, seed=SEED)
    sim = server
    w = World(sim, tmp_path / "mirror.db")
    w.first_sync()
    existing = sim.account.get(w.ids[20])  # (the seeded shift below deletes another customer)
    edit(w.db, "INSERT INTO customers (customerfirstname, customersurname, customeremail, customerphone1, "
               f"fkcustomertypeid) VALUES ('Wendy', 'Wombat', {sql_text(existing['email'])}, '0400 123 456', 2)")
    sim.faults.script("lost_create")
    assert w.sync(pull=False)[0] == EXIT_OK
    [created] = applied(sim, "createcustomer")  # applied; the answer was lost
    new_id = int(created["response"]["id"])
    sim.account.schedule_shift(after_page=2, delete_served=1)  # moves the new customer onto a served page
    assert w.sync()[0] == EXIT_OK
    assert sim.account.shift_report()["missed"] == [new_id]
    for _ in range(2):
        assert w.sync()[0] == EXIT_OK
    assert len(applied(sim, "createcustomer")) == 1
    assert sorted(sim_ids_with_email(sim, existing["email"])) == [existing["id"], new_id]


@pytest.mark.parametrize("count", VARIANTS)
@pytest.mark.parametrize("direction", ["pull", "push"])
def test_empty_listing(world, direction, count):
    """An empty listing deletes no row, and when it lasts the mass-delete guard refuses the run with exit 4."""
    w, sim, db = world, world.sim, world.db
    records = [sim.account.get(i) for i in w.ids]
    target = w.ids[10]
    if direction == "push":
        insert, email = w.local_insert()
        edit(db, f"UPDATE customers SET customerphone2 = '0400 999 000' WHERE pkcustomerid = {target}", insert)
    for remote_id in w.ids:
        sim.account.delete_customer(remote_id)
    code, report = w.sync()
    assert code == EXIT_OK and report.deleted == 0 and report.delete_candidates == CUSTOMERS
    assert mirror_ids(db) >= set(w.ids)
    if direction == "push":  # the edit cannot land; it is kept (flagged, or waiting for a walk that lists the
        # customer when no read by id exists), and the insert is created once
        assert applied(sim, "updatecustomer") == []
        if sim.quirks.getcustomer:
            assert report.push.errors == 1 and row_of(db, target)["sync_state"] == "error"
        else:
            assert report.push.errors == 0 and report.push.deferred == [target]
            assert row_of(db, target)["sync_state"] == "pending"
        assert row_of(db, target)["customerphone2"] == "0400 999 000"
        assert sim_ids_with_email(sim, email) and len(applied(sim, "createcustomer", email=email)) == 1
    if count == TRANSIENT:
        restore(sim.account, records)
        code, report = w.sync()
        assert code == EXIT_OK and report.deleted == 0 and candidates(db) == {}
        assert mirror_ids(db) == set(sim.account.ids())
    else:
        for _ in range(2):
            code, report = w.sync()
            assert code == EXIT_REFUSED and report.deleted == 0
            assert "refusing to delete" in last_run(db)["error"]
            assert mirror_ids(db) >= set(w.ids) and deleted_ids(db) == set()
    if direction == "push":
        assert row_of(db, target)["customerphone2"] == "0400 999 000"
        writes = [(e["action"], e["applied"]) for e in sim.account.write_log()]
        if count == TRANSIENT and not sim.quirks.getcustomer:
            # The waiting edit goes out once the listing shows the customer again.
            assert writes == [("createcustomer", True), ("updatecustomer", True)]
            assert sim.account.get(target)["phone2"] == "0400 999 000"
        else:
            assert writes == [("createcustomer", True)]  # the one create, nothing else
