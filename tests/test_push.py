"""The push end to end: edits made with SQL from another process, `sync_once`, and what the simulator received.

Every local edit here is made the way people make them: a separate process (Python's sqlite3 or
psycopg, or the database's shell: sqlite3, psql) writing the mirror database, on each backend.
Every outcome is checked on both sides: the simulator's state and its write log, and the mirror's
rows, history and conflict tables.
"""

from __future__ import annotations

import io
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import structlog

from conftest import API_KEY, make_client
from mirror.commands.sync import sync_once
from mirror.config import load_settings
from mirror.exit_codes import EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE
from mirror.logs import configure_logging
from mirror.simulator.server import SimulatorServer
from backends import PSQL_SHELL, SQLITE3_SHELL, MirrorDatabase, as_mirror_database, sql_text

CUSTOMERS = 200
SEED = 23
WRITE_ACTIONS = {"createcustomer", "updatecustomer", "deletecustomer"}


# -- helpers ------------------------------------------------------------------------------


class Mirror:
    """A simulator and a mirror database synced from it, with the settings to sync them again.

    `db` is the test's MirrorDatabase, or a SQLite file path (tests of other modules that run on
    SQLite only and read it with sqlite_edit)."""

    def __init__(self, sim: SimulatorServer, db: MirrorDatabase | Path, **env: str):
        self.sim, self.db, self.env = sim, db, env
        self.url = as_mirror_database(db).url

    def settings(self, **env: str):
        return load_settings(env={"SPMIRROR_API_URL": self.sim.url, "SPMIRROR_API_KEY": self.sim.api_key,
                                  "SPMIRROR_DB": self.url, **self.env, **env})

    def sync(self, env: dict[str, str] | None = None, **options):
        """One `sync_once`; returns (exit code, SyncReport)."""
        return sync_once(self.settings(**(env or {})), **options)

    def mark(self) -> int:
        """A position in the simulator's write log, for `sent_since`."""
        return len(self.sim.account.write_log())

    def sent_since(self, mark: int) -> list[dict]:
        """Write requests the simulator received after `mark`."""
        return [e for e in self.sim.account.write_log()[mark:] if e["action"] in WRITE_ACTIONS]


def unique_email(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}@example.com.au"


def insert_sql(**values) -> str:
    """A plain INSERT INTO customers naming only customer columns (pkcustomerid left NULL)."""
    literals = [sql_text(v) if isinstance(v, str) else ("NULL" if v is None else str(v)) for v in values.values()]
    return f"INSERT INTO customers ({', '.join(values)}) VALUES ({', '.join(literals)})"


def new_customer(email: str) -> dict:
    return {"customerfirstname": "Wendy", "customersurname": "Wombat", "customeremail": email,
            "customerphone1": "0400 123 456", "fkcustomertypeid": 2}


def sim_ids_with_email(sim: SimulatorServer, email: str) -> list[int]:
    return [r["id"] for r in sim.account.snapshot()["customers"] if r["email"] == email]


def history(db: MirrorDatabase | Path, remote_id: int) -> list[dict]:
    return as_mirror_database(db).query("SELECT field, old_value, new_value, source FROM customer_changes "
                                        "WHERE pkcustomerid = ? ORDER BY id", (remote_id,))


@contextmanager
def captured_events():
    """structlog events at every level as dicts (the suite's default config drops info)."""
    configure_logging(level="debug", json=True, stream=io.StringIO())
    try:
        with structlog.testing.capture_logs() as events:
            yield events
    finally:
        configure_logging(level="warning", json=True, stream=io.StringIO())


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture(params=[True, False], ids=["getcustomer", "no-getcustomer"])
def server(request):
    """A fresh simulator for one test (tests here change it), with the undocumented getcustomer and without it."""
    with SimulatorServer(customers=CUSTOMERS, seed=SEED, api_key=API_KEY) as sim:
        sim.quirks.update(getcustomer=request.param)
        yield sim


@pytest.fixture
def mirror(server, mirror_db) -> Mirror:
    """`server` mirrored once into a fresh database, every row synced."""
    m = Mirror(server, mirror_db)
    code, _report = m.sync()
    assert code == EXIT_OK
    assert m.db.scalar("SELECT count(*) FROM customers WHERE sync_state = 'synced'") == CUSTOMERS
    return m


def make_mirror(sim: SimulatorServer, db: MirrorDatabase, **env: str) -> Mirror:
    m = Mirror(sim, db, **env)
    assert m.sync()[0] == EXIT_OK
    return m


# -- 1. updates ---------------------------------------------------------------------------


@pytest.mark.parametrize("editor", ["python", "shell"])
def test_update_is_marked_pending_and_pushed_once_with_only_the_changed_fields(mirror, editor):
    """An UPDATE of writable columns (from Python, or the database's shell: sqlite3, psql) marks the row pending and
    one sync sends one updatecustomer of just those fields."""
    shell = SQLITE3_SHELL if mirror.db.kind == "sqlite" else PSQL_SHELL
    if editor == "shell" and not shell:
        pytest.skip(f"the {mirror.db.kind} shell is not installed")
    sim, db = mirror.sim, mirror.db
    target = sim.account.ids()[10]
    before = sim.account.get(target)
    sql = (f"UPDATE customers SET customerphone2 = '0412 345 678', customercompanyname = 'Quokka Solar' "
           f"WHERE pkcustomerid = {target}")
    (db.edit if editor == "python" else db.edit_with_shell)(sql)
    row = db.row_of(target)
    assert row["sync_state"] == "pending" and row["sync_error"] is None
    assert db.scalar("SELECT count(*) FROM customers WHERE sync_state != 'synced'") == 1

    mark = mirror.mark()
    code, report = mirror.sync(pull=False)
    assert code == EXIT_OK and report.push.updated == 1 and report.push.errors == 0
    sent = mirror.sent_since(mark)
    assert len(sent) == 1
    assert sent[0]["action"] == "updatecustomer" and sent[0]["applied"] is True
    assert sent[0]["body"] == {"data": {"apikey": "***", "action": "updatecustomer", "pkcustomerid": target,
                                        "phone2": "0412 345 678", "companyname": "Quokka Solar"}}
    after = sim.account.get(target)
    assert after["phone2"] == "0412 345 678" and after["company_name"] == "Quokka Solar"
    assert {k: v for k, v in after.items() if k not in ("phone2", "company_name")} == \
        {k: v for k, v in before.items() if k not in ("phone2", "company_name")}
    row = db.row_of(target)
    assert row["sync_state"] == "synced" and row["sync_error"] is None
    assert row["customerphone2"] == "0412 345 678" and row["customercompanyname"] == "Quokka Solar"
    assert history(db, target) == [
        {"field": "customercompanyname", "old_value": before["company_name"] or None, "new_value": "Quokka Solar",
         "source": "local"},
        {"field": "customerphone2", "old_value": before["phone2"] or None, "new_value": "0412 345 678",
         "source": "local"},
    ]

    # Echo suppression: the pull that follows sees its own pushed values and writes no row.
    db.count_writes("customers")
    code, report = mirror.sync(push=False)
    assert code == EXIT_OK
    assert db.writes("customers") == 0
    assert db.row_of(target)["sync_state"] == "synced"

    mark = mirror.mark()
    code, report = mirror.sync()
    assert code == EXIT_OK and report.push.updated == 0
    assert mirror.sent_since(mark) == []
    assert db.writes("customers") == 0


def test_update_undone_before_a_sync_sends_nothing(mirror):
    """A row edited and then set back to its old value by hand is settled to synced with nothing sent."""
    sim, db = mirror.sim, mirror.db
    target = sim.account.ids()[3]
    old = db.row_of(target)["customerphone1"]
    db.edit(f"UPDATE customers SET customerphone1 = '0499 999 999' WHERE pkcustomerid = {target}",
         f"UPDATE customers SET customerphone1 = {sql_text(old)} WHERE pkcustomerid = {target}")
    assert db.row_of(target)["sync_state"] == "pending"
    mark = mirror.mark()
    assert mirror.sync()[0] == EXIT_OK
    assert mirror.sent_since(mark) == []
    assert db.row_of(target)["sync_state"] == "synced"


def test_emptied_optional_field_is_sent_as_empty_string(mirror):
    """Setting an optional writable field to NULL sends it as "" and clears it in Solar Proof."""
    sim, db = mirror.sim, mirror.db
    target = next(i for i in sim.account.ids() if sim.account.get(i)["company_name"])
    db.edit(f"UPDATE customers SET customercompanyname = NULL WHERE pkcustomerid = {target}")
    mark = mirror.mark()
    assert mirror.sync()[0] == EXIT_OK
    sent = mirror.sent_since(mark)
    assert len(sent) == 1 and sent[0]["body"]["data"]["companyname"] == ""
    assert sim.account.get(target)["company_name"] == ""
    assert db.row_of(target)["sync_state"] == "synced" and db.row_of(target)["customercompanyname"] is None


def test_edit_made_while_its_update_is_in_flight_is_kept_and_pushed_next(mirror):
    """A row edited again while its update waits for Solar Proof's answer keeps the new edit, pending, and the next sync sends it."""
    sim, db = mirror.sim, mirror.db
    target = sim.account.ids()[12]
    db.edit(f"UPDATE customers SET customerphone2 = '0400 000 111' WHERE pkcustomerid = {target}")
    sim.faults.script("stall", action="updatecustomer", stall_seconds=1)
    mark = mirror.mark()
    outcome: dict = {}
    push = threading.Thread(target=lambda: outcome.update(result=mirror.sync(pull=False)), daemon=True)
    push.start()
    deadline = time.monotonic() + 30
    while not mirror.sent_since(mark):
        assert time.monotonic() < deadline and push.is_alive(), "the update was never sent"
        time.sleep(0.005)
    db.edit(f"UPDATE customers SET customerphone2 = '0400 000 222' WHERE pkcustomerid = {target}")
    push.join(timeout=30)
    assert not push.is_alive() and outcome["result"][0] == EXIT_OK
    assert sim.account.get(target)["phone2"] == "0400 000 111"
    row = db.row_of(target)
    assert row["customerphone2"] == "0400 000 222" and row["sync_state"] == "pending"

    assert mirror.sync()[0] == EXIT_OK
    sent = mirror.sent_since(mark)
    assert [e["body"]["data"]["phone2"] for e in sent] == ["0400 000 111", "0400 000 222"]
    assert sim.account.get(target)["phone2"] == "0400 000 222"
    assert db.row_of(target)["sync_state"] == "synced"


def test_update_answered_503_is_retried_and_applied_once(mirror, clock):
    """An updatecustomer answered 503 is retried after a backoff and applied exactly once."""
    sim, db = mirror.sim, mirror.db
    target = sim.account.ids()[13]
    db.edit(f"UPDATE customers SET customerphone2 = '0400 000 333' WHERE pkcustomerid = {target}")
    sim.faults.script("503", action="updatecustomer")
    mark = mirror.mark()
    with make_client(sim, clock) as client:
        code, report = mirror.sync(client=client)
    assert code == EXIT_OK and report.push.updated == 1
    assert [(e["status"], e["applied"]) for e in mirror.sent_since(mark)] == [(503, False), (200, True)]
    assert len(clock.sleeps) == 1
    assert sim.account.get(target)["phone2"] == "0400 000 333"
    assert db.row_of(target)["sync_state"] == "synced"


def test_api_unavailable_during_a_push_exits_75_and_keeps_the_edit_pending(mirror, clock):
    """When updatecustomer keeps failing the sync exits 75, nothing is applied, and the edit is pushed once the API is back."""
    sim, db = mirror.sim, mirror.db
    target = sim.account.ids()[14]
    db.edit(f"UPDATE customers SET customerphone2 = '0400 000 444' WHERE pkcustomerid = {target}")
    sim.faults.script("503", count=50, action="updatecustomer")
    mark = mirror.mark()
    with make_client(sim, clock) as client:
        code, _report = mirror.sync(client=client)
    assert code == EXIT_UNAVAILABLE
    assert not any(e["applied"] for e in mirror.sent_since(mark))
    assert sim.account.get(target)["phone2"] != "0400 000 444"
    assert db.row_of(target)["sync_state"] == "pending"
    assert db.last_run()["result"] == "incomplete"
    sim.faults.reset()
    assert mirror.sync()[0] == EXIT_OK
    assert [e["applied"] for e in mirror.sent_since(mark)].count(True) == 1
    assert sim.account.get(target)["phone2"] == "0400 000 444"
    assert db.row_of(target)["sync_state"] == "synced"


def test_edit_of_a_customer_deleted_in_solar_proof_is_not_sent_and_the_row_leaves(mirror):
    """A local edit of a customer Solar Proof deleted is not sent, is kept in history, and the row leaves within two
    syncs. With getcustomer the re-read says so at once (the row is flagged); without it the email lookup proves
    nothing, so the edit waits for the walks, which confirm the delete and keep the edit with the last record."""
    sim, db = mirror.sim, mirror.db
    target = sim.account.ids()[15]
    db.edit(f"UPDATE customers SET customerphone2 = '0400 000 555' WHERE pkcustomerid = {target}")
    sim.account.delete_customer(target)
    mark = mirror.mark()
    code, report = mirror.sync()
    row = db.row_of(target)
    if sim.quirks.getcustomer:
        assert code == EXIT_OK and report.push.errors == 1
        assert row["sync_state"] == "error" and "no longer exists" in row["sync_error"]
        source = "local (not pushed)"
    else:
        assert code == EXIT_OK and report.push.errors == 0 and report.push.deferred == [target]
        assert row["sync_state"] == "pending" and "complete walk" in row["sync_error"]
        source = "local (not pushed: deleted in Solar Proof)"
    assert mirror.sent_since(mark) == []
    assert mirror.sync()[0] == EXIT_OK
    assert db.row_of(target) is None
    assert {"field": "customerphone2", "old_value": None, "new_value": "0400 000 555", "source": source} in \
        history(db, target)
    [record] = db.query("SELECT last_record_json FROM deleted_customers WHERE pkcustomerid = ?", (target,))
    assert sim.quirks.getcustomer or '"local_edits":{"customerphone2":"0400 000 555"}' in record["last_record_json"]
    assert mirror.sent_since(mark) == []


# -- 2. creates ---------------------------------------------------------------------------


def test_insert_creates_the_customer_once_and_stores_its_id(mirror):
    """A plain INSERT with pkcustomerid NULL is sent as one createcustomer and the row gets the new id."""
    sim, db = mirror.sim, mirror.db
    email = unique_email("wendy")
    db.edit(insert_sql(**new_customer(email), customerphone2="0411 222 333"))
    local = db.query("SELECT * FROM customers WHERE customeremail = ?", (email,))
    assert len(local) == 1 and local[0]["pkcustomerid"] is None and local[0]["sync_state"] == "pending"

    mark = mirror.mark()
    code, report = mirror.sync()
    assert code == EXIT_OK and report.push.created == 1
    sent = mirror.sent_since(mark)
    assert [e["action"] for e in sent] == ["createcustomer"]
    data = sent[0]["body"]["data"]
    assert {k: data[k] for k in ("firstname", "surname", "email", "phone1", "phone2", "type")} == {
        "firstname": "Wendy", "surname": "Wombat", "email": email, "phone1": "0400 123 456",
        "phone2": "0411 222 333", "type": "COMMERCIAL"}
    [new_id] = sim_ids_with_email(sim, email)
    assert sent[0]["response"] and sent[0]["applied"]
    record = sim.account.get(new_id)
    assert (record["first_name"], record["last_name"], record["phone1"], record["type"]) == \
        ("Wendy", "Wombat", "0400 123 456", 2)
    rows = db.query("SELECT * FROM customers WHERE customeremail = ?", (email,))
    assert len(rows) == 1
    row = rows[0]
    assert row["pkcustomerid"] == new_id and row["sync_state"] == "synced" and row["sync_error"] is None
    # The pull after the push filled in what Solar Proof added (status, creation date).
    assert row["fkcustomerstatusid"] == 1 and row["created_at"] == record["created"][:10]
    assert db.scalar("SELECT count(*) FROM create_intents") == 0
    assert {"field": "(created)", "old_value": None, "new_value": email, "source": "local"} in history(db, new_id)

    mark = mirror.mark()
    db.count_writes("customers")
    assert mirror.sync()[0] == EXIT_OK
    assert mirror.sent_since(mark) == [] and db.writes("customers") == 0


def test_create_without_id_in_the_response_is_adopted_by_email(mirror):
    """When the create response carries no id (old docs), the same sync's walk finds the one new customer equal to
    what was sent and adopts it."""
    sim, db = mirror.sim, mirror.db
    sim.quirks.update(create_without_id=True)
    email = unique_email("noid")
    db.edit(insert_sql(**new_customer(email)))
    mark = mirror.mark()
    code, report = mirror.sync()
    assert code == EXIT_OK and report.push.unknown == 1 and report.adopted == 1
    sent = mirror.sent_since(mark)
    assert [e["action"] for e in sent] == ["createcustomer"] and "id" not in sent[0]["response"]
    [new_id] = sim_ids_with_email(sim, email)
    rows = db.query("SELECT pkcustomerid, sync_state FROM customers WHERE customeremail = ?", (email,))
    assert rows == [{"pkcustomerid": new_id, "sync_state": "synced"}]
    assert db.scalar("SELECT count(*) FROM create_intents") == 0


def test_create_whose_response_is_lost_is_adopted_not_sent_again(mirror):
    """A create applied but whose response was lost is adopted by the next sync: one customer, one row, one create."""
    sim, db = mirror.sim, mirror.db
    email = unique_email("lost")
    db.edit(insert_sql(**new_customer(email)))
    sim.faults.script("lost_create")
    mark = mirror.mark()
    code, report = mirror.sync(pull=False)
    assert code == EXIT_OK and report.push.unknown == 1 and report.push.created == 0
    assert db.scalar("SELECT count(*) FROM create_intents") == 1
    [new_id] = sim_ids_with_email(sim, email)  # the create was applied

    code, report = mirror.sync()
    assert code == EXIT_OK and report.adopted == 1
    creates = [e for e in mirror.sent_since(mark) if e["action"] == "createcustomer"]
    assert len(creates) == 1 and creates[0]["fault"] == "lost_create"
    assert sim_ids_with_email(sim, email) == [new_id]
    rows = db.query("SELECT pkcustomerid, sync_state FROM customers WHERE customeremail = ?", (email,))
    assert rows == [{"pkcustomerid": new_id, "sync_state": "synced"}]
    assert db.scalar("SELECT count(*) FROM create_intents") == 0
    assert {"field": "(created)", "old_value": None, "new_value": email, "source": "local (adopted)"} in \
        history(db, new_id)


def test_create_whose_response_is_lost_during_a_full_sync_is_not_duplicated(mirror):
    """A lost create during a full sync (push then pull) is adopted later: one customer with that email, one row."""
    sim, db = mirror.sim, mirror.db
    email = unique_email("lostfull")
    db.edit(insert_sql(**new_customer(email)))
    sim.faults.script("lost_create")
    mark = mirror.mark()
    code, report = mirror.sync()
    assert code == EXIT_OK and report.push.unknown == 1
    [new_id] = sim_ids_with_email(sim, email)
    assert mirror.sync()[0] == EXIT_OK
    assert mirror.sync()[0] == EXIT_OK
    creates = [e for e in mirror.sent_since(mark) if e["action"] == "createcustomer"]
    assert sim_ids_with_email(sim, email) == [new_id]
    assert len(creates) == 1
    rows = db.query("SELECT pkcustomerid, sync_state FROM customers WHERE customeremail = ?", (email,))
    assert rows == [{"pkcustomerid": new_id, "sync_state": "synced"}]
    assert db.scalar("SELECT count(*) FROM create_intents") == 0


def test_create_answered_503_waits_for_two_walks_then_is_created_once(mirror, clock):
    """A create answered 503 (outcome unknown) is not retried blindly, nor looked up by email: it is sent again only
    after two complete walks found no customer that could be it (a shifted page can hide a record from one walk)."""
    sim, db = mirror.sim, mirror.db
    email = unique_email("503")
    db.edit(insert_sql(**new_customer(email)))
    sim.faults.script("503", action="createcustomer")
    mark = mirror.mark()
    with make_client(sim, clock) as client:
        code, report = mirror.sync(client=client)
    assert code == EXIT_OK and report.push.unknown == 1 and report.push.created == 0
    assert [(e["action"], e["applied"]) for e in mirror.sent_since(mark)] == [("createcustomer", False)]
    assert sim_ids_with_email(sim, email) == []
    assert db.scalar("SELECT count(*) FROM create_intents") == 1
    lookups = sim.account.call_counts().get("getcustomerByemail", 0)
    code, report = mirror.sync()  # one complete walk so far did not list it: still waiting
    assert code == EXIT_OK and report.push.created == 0 and report.push.unknown == 1
    code, report = mirror.sync()  # the second did not either: it was never created, so send it
    assert code == EXIT_OK and report.push.created == 1
    assert sim.account.call_counts().get("getcustomerByemail", 0) == lookups  # an email is never evidence
    creates = mirror.sent_since(mark)
    assert [(e["action"], e["applied"]) for e in creates] == [("createcustomer", False), ("createcustomer", True)]
    [new_id] = sim_ids_with_email(sim, email)
    assert db.query("SELECT pkcustomerid, sync_state FROM customers WHERE customeremail = ?", (email,)) == [
        {"pkcustomerid": new_id, "sync_state": "synced"}]
    assert db.scalar("SELECT count(*) FROM create_intents") == 0


def test_lost_create_with_an_email_already_in_the_mirror_is_not_sent_twice(mirror):
    """A lost create reusing an existing customer's email is never sent again; the next complete walk adopts it."""
    sim, db = mirror.sim, mirror.db
    existing = sim.account.get(sim.account.ids()[6])
    db.edit(insert_sql(**new_customer(existing["email"])))
    sim.faults.script("lost_create")
    mark = mirror.mark()
    assert mirror.sync(pull=False)[0] == EXIT_OK
    [new_id] = [i for i in sim_ids_with_email(sim, existing["email"]) if i != existing["id"]]
    # The email lookup answers the older customer only, so push-only syncs wait rather than create again...
    assert mirror.sync(pull=False)[0] == EXIT_OK
    assert mirror.sync(pull=False)[0] == EXIT_OK
    # ...and the next complete walk lists the new customer and adopts it.
    assert mirror.sync()[0] == EXIT_OK
    assert sorted(sim_ids_with_email(sim, existing["email"])) == sorted([existing["id"], new_id])
    assert len([e for e in mirror.sent_since(mark) if e["action"] == "createcustomer"]) == 1
    assert db.scalar("SELECT count(*) FROM customers WHERE pkcustomerid = ?", (new_id,)) == 1
    assert db.scalar("SELECT count(*) FROM customers WHERE pkcustomerid IS NULL") == 0


def test_insert_with_a_read_only_column_creates_the_customer_and_flags_the_column(mirror):
    """An INSERT that sets customerabn creates the customer from its writable fields and leaves the row 'error' naming customerabn."""
    sim, db = mirror.sim, mirror.db
    email = unique_email("abn")
    db.edit(insert_sql(**new_customer(email), customerabn="12 345 678 901"))
    mark = mirror.mark()
    code, report = mirror.sync()
    assert code == EXIT_OK and report.push.created == 1
    sent = mirror.sent_since(mark)
    assert [e["action"] for e in sent] == ["createcustomer"]
    assert not any("abn" in key.lower() for key in sent[0]["body"]["data"])
    [new_id] = sim_ids_with_email(sim, email)
    row = db.row_of(new_id)
    assert row["customerabn"] == "12 345 678 901"
    assert row["sync_state"] == "error" and "customerabn" in row["sync_error"]
    assert db.scalar("SELECT count(*) FROM create_intents") == 0
    assert mirror.sync()[0] == EXIT_OK
    assert len(mirror.sent_since(mark)) == 1 and db.row_of(new_id)["sync_state"] == "error"


def test_create_with_a_duplicate_email_is_created_not_adopted(mirror):
    """A first create never looks the email up: an INSERT reusing an existing customer's email creates a new one."""
    sim, db = mirror.sim, mirror.db
    existing = sim.account.get(sim.account.ids()[5])
    db.edit(insert_sql(**new_customer(existing["email"])))
    code, report = mirror.sync()
    assert code == EXIT_OK and report.push.created == 1 and report.push.adopted == 0
    ids = sim_ids_with_email(sim, existing["email"])
    assert len(ids) == 2 and existing["id"] in ids
    rows = db.query("SELECT pkcustomerid FROM customers WHERE customeremail = ? ORDER BY pkcustomerid",
                 (existing["email"],))
    assert [r["pkcustomerid"] for r in rows] == sorted(ids)


# -- 4. conflicts -------------------------------------------------------------------------


def make_conflict(m: Mirror, target: int, local: str, remote: str) -> str:
    """The same field (phone2) edited here (another process) and in Solar Proof; returns the base value."""
    base = m.db.row_of(target)["customerphone2"]
    m.db.edit(f"UPDATE customers SET customerphone2 = {sql_text(local)} WHERE pkcustomerid = {target}")
    m.sim.account.edit_customer(target, phone2=remote)
    return base


def test_manual_policy_leaves_a_conflict_with_both_values_and_sends_nothing(mirror):
    """Under the default policy the same field changed on both sides becomes a 'conflict' row; nothing is sent."""
    sim, db = mirror.sim, mirror.db
    target = sim.account.ids()[20]
    base = make_conflict(mirror, target, "0411 111 111", "0422 222 222")
    mark = mirror.mark()
    code, report = mirror.sync()
    assert code == EXIT_OK and report.counts()["conflicts"] >= 1
    assert mirror.sent_since(mark) == []
    assert sim.account.get(target)["phone2"] == "0422 222 222"
    row = db.row_of(target)
    assert row["sync_state"] == "conflict" and "customerphone2" in row["sync_error"]
    assert row["customerphone2"] == "0411 111 111"
    conflicts = db.query("SELECT field, base_value, local_value, remote_value FROM customer_conflicts "
                          "WHERE pkcustomerid = ?", (target,))
    assert conflicts == [{"field": "customerphone2", "base_value": base, "local_value": "0411 111 111",
                          "remote_value": "0422 222 222"}]
    # A second sync keeps the conflict as it is and still sends nothing.
    assert mirror.sync()[0] == EXIT_OK
    assert mirror.sent_since(mark) == []
    assert db.row_of(target)["sync_state"] == "conflict"
    assert len(db.query("SELECT * FROM customer_conflicts WHERE pkcustomerid = ?", (target,))) == 1


def test_conflict_settled_by_setting_sync_state_pending_pushes_the_local_value(mirror):
    """An SQL UPDATE setting sync_state='pending' on a conflict row settles it for the local value."""
    sim, db = mirror.sim, mirror.db
    target = sim.account.ids()[21]
    make_conflict(mirror, target, "0411 111 112", "0422 222 223")
    assert mirror.sync()[0] == EXIT_OK and db.row_of(target)["sync_state"] == "conflict"
    db.edit(f"UPDATE customers SET sync_state = 'pending' WHERE pkcustomerid = {target}")
    mark = mirror.mark()
    assert mirror.sync()[0] == EXIT_OK
    sent = mirror.sent_since(mark)
    assert len(sent) == 1 and sent[0]["body"]["data"]["phone2"] == "0411 111 112"
    assert sim.account.get(target)["phone2"] == "0411 111 112"
    assert db.row_of(target)["sync_state"] == "synced"
    assert db.scalar("SELECT count(*) FROM customer_conflicts") == 0


def test_conflict_settled_by_setting_the_remote_value_with_sql(mirror):
    """Setting the conflicting field to the remote value with SQL settles the conflict with nothing sent."""
    sim, db = mirror.sim, mirror.db
    target = sim.account.ids()[22]
    make_conflict(mirror, target, "0411 111 113", "0422 222 224")
    assert mirror.sync()[0] == EXIT_OK and db.row_of(target)["sync_state"] == "conflict"
    db.edit(f"UPDATE customers SET customerphone2 = '0422 222 224' WHERE pkcustomerid = {target}")
    mark = mirror.mark()
    assert mirror.sync()[0] == EXIT_OK
    assert mirror.sent_since(mark) == []
    assert db.row_of(target)["sync_state"] == "synced" and db.row_of(target)["customerphone2"] == "0422 222 224"
    assert db.scalar("SELECT count(*) FROM customer_conflicts") == 0


def test_conflicting_and_clean_edits_in_one_row_push_the_clean_field(mirror):
    """With one conflicting and one clean field edited, only the clean field is sent and the row stays in conflict."""
    sim, db = mirror.sim, mirror.db
    target = sim.account.ids()[23]
    db.edit(f"UPDATE customers SET customercompanyname = 'Clean Edit Pty Ltd' WHERE pkcustomerid = {target}")
    make_conflict(mirror, target, "0411 111 114", "0422 222 225")
    mark = mirror.mark()
    assert mirror.sync()[0] == EXIT_OK
    sent = mirror.sent_since(mark)
    assert len(sent) == 1
    assert {k: v for k, v in sent[0]["body"]["data"].items() if k not in ("apikey", "action", "pkcustomerid")} == \
        {"companyname": "Clean Edit Pty Ltd"}
    record = sim.account.get(target)
    assert record["company_name"] == "Clean Edit Pty Ltd" and record["phone2"] == "0422 222 225"
    row = db.row_of(target)
    assert row["sync_state"] == "conflict" and row["customerphone2"] == "0411 111 114"
    assert [r["field"] for r in db.query("SELECT field FROM customer_conflicts")] == ["customerphone2"]
    # Settled for the remote value, nothing more is sent.
    db.edit(f"UPDATE customers SET customerphone2 = '0422 222 225' WHERE pkcustomerid = {target}")
    assert mirror.sync()[0] == EXIT_OK
    assert len(mirror.sent_since(mark)) == 1
    row = db.row_of(target)
    assert row["sync_state"] == "synced" and row["customercompanyname"] == "Clean Edit Pty Ltd"


def test_clean_field_pushed_beside_a_conflict_is_recorded_as_a_local_change(mirror):
    """A clean field pushed from a row that also has a conflict is history source 'local', never echoed back as 'remote'."""
    sim, db = mirror.sim, mirror.db
    target = sim.account.ids()[24]
    old = db.row_of(target)["customercompanyname"]
    db.edit(f"UPDATE customers SET customercompanyname = 'Clean Edit Two Pty Ltd' WHERE pkcustomerid = {target}")
    make_conflict(mirror, target, "0411 111 115", "0422 222 226")
    assert mirror.sync()[0] == EXIT_OK
    assert sim.account.get(target)["company_name"] == "Clean Edit Two Pty Ltd"
    assert [h for h in history(db, target) if h["field"] == "customercompanyname"] == [
        {"field": "customercompanyname", "old_value": old, "new_value": "Clean Edit Two Pty Ltd", "source": "local"}]


def test_remote_wins_policy_takes_the_remote_value_and_keeps_the_local_one_in_history(server, mirror_db):
    """Under remote_wins the row gets the remote value, synced, and history keeps the overridden local edit."""
    m = make_mirror(server, mirror_db, SPMIRROR_SYNC_CONFLICT_POLICY="remote_wins")
    target = server.account.ids()[30]
    make_conflict(m, target, "0411 333 333", "0422 444 444")
    mark = m.mark()
    code, _report = m.sync()
    assert code == EXIT_OK
    assert m.sent_since(mark) == []
    assert server.account.get(target)["phone2"] == "0422 444 444"
    row = m.db.row_of(target)
    assert row["customerphone2"] == "0422 444 444" and row["sync_state"] == "synced"
    assert m.db.scalar("SELECT count(*) FROM customer_conflicts") == 0
    overridden = [h for h in history(m.db, target) if h["source"] == "local overridden (remote_wins)"]
    assert overridden == [{"field": "customerphone2", "old_value": "0411 333 333", "new_value": "0422 444 444",
                           "source": "local overridden (remote_wins)"}]


def test_remote_wins_during_a_pull_records_the_overridden_edit(server, mirror_db):
    """Under remote_wins, a pull meeting a local edit of a field changed remotely overrides it and records it."""
    m = make_mirror(server, mirror_db, SPMIRROR_SYNC_CONFLICT_POLICY="remote_wins")
    target = server.account.ids()[31]
    make_conflict(m, target, "0411 333 334", "0422 444 445")
    mark = m.mark()
    assert m.sync(push=False)[0] == EXIT_OK
    assert m.sent_since(mark) == []
    row = m.db.row_of(target)
    assert row["customerphone2"] == "0422 444 445"
    assert [h for h in history(m.db, target) if h["source"] == "local overridden (remote_wins)"] == [
        {"field": "customerphone2", "old_value": "0411 333 334", "new_value": "0422 444 445",
         "source": "local overridden (remote_wins)"}]
    assert m.sync()[0] == EXIT_OK
    assert m.sent_since(mark) == [] and m.db.row_of(target)["sync_state"] == "synced"


def test_local_wins_policy_pushes_the_local_value(server, mirror_db):
    """Under local_wins the local value is sent and Solar Proof ends with it; the row is synced."""
    m = make_mirror(server, mirror_db, SPMIRROR_SYNC_CONFLICT_POLICY="local_wins")
    target = server.account.ids()[40]
    make_conflict(m, target, "0411 555 555", "0422 666 666")
    mark = m.mark()
    assert m.sync()[0] == EXIT_OK
    sent = m.sent_since(mark)
    assert len(sent) == 1 and sent[0]["action"] == "updatecustomer"
    assert sent[0]["body"]["data"]["phone2"] == "0411 555 555"
    assert server.account.get(target)["phone2"] == "0411 555 555"
    row = m.db.row_of(target)
    assert row["customerphone2"] == "0411 555 555" and row["sync_state"] == "synced"
    assert m.db.scalar("SELECT count(*) FROM customer_conflicts") == 0
    mark = m.mark()
    m.db.count_writes("customers")
    assert m.sync()[0] == EXIT_OK
    assert m.sent_since(mark) == [] and m.db.writes("customers") == 0


@pytest.mark.parametrize("policy", ["manual", "remote_wins", "local_wins"])
def test_different_fields_edited_on_each_side_merge_without_conflict(server, mirror_db, policy):
    """A local edit of one field and a remote edit of another both end up on both sides, under every policy."""
    m = make_mirror(server, mirror_db, SPMIRROR_SYNC_CONFLICT_POLICY=policy)
    target = server.account.ids()[50]
    m.db.edit(f"UPDATE customers SET customerphone2 = '0433 777 777' WHERE pkcustomerid = {target}")
    server.account.edit_customer(target, first_name="Matilda")
    mark = m.mark()
    assert m.sync()[0] == EXIT_OK
    sent = m.sent_since(mark)
    assert len(sent) == 1
    assert {k: v for k, v in sent[0]["body"]["data"].items() if k not in ("apikey", "action", "pkcustomerid")} == \
        {"phone2": "0433 777 777"}
    record = server.account.get(target)
    assert record["phone2"] == "0433 777 777" and record["first_name"] == "Matilda"
    row = m.db.row_of(target)
    assert row["customerphone2"] == "0433 777 777" and row["customerfirstname"] == "Matilda"
    assert row["sync_state"] == "synced"
    assert m.db.scalar("SELECT count(*) FROM customer_conflicts") == 0


def test_same_edit_on_both_sides_is_not_a_conflict(mirror):
    """Both sides changing a field to the same value is no conflict, sends nothing, and the row ends synced."""
    sim, db = mirror.sim, mirror.db
    target = sim.account.ids()[60]
    make_conflict(mirror, target, "0499 123 123", "0499 123 123")
    mark = mirror.mark()
    assert mirror.sync()[0] == EXIT_OK
    assert mirror.sync()[0] == EXIT_OK
    assert mirror.sent_since(mark) == []
    assert db.scalar("SELECT count(*) FROM customer_conflicts") == 0
    row = db.row_of(target)
    assert row["customerphone2"] == "0499 123 123" and row["sync_state"] == "synced"


def test_same_edit_on_both_sides_is_settled_in_the_same_sync(mirror):
    """Both sides changing a field to the same value leaves the row synced after that one sync."""
    sim, db = mirror.sim, mirror.db
    target = sim.account.ids()[61]
    make_conflict(mirror, target, "0499 123 124", "0499 123 124")
    assert mirror.sync()[0] == EXIT_OK
    assert db.row_of(target)["sync_state"] == "synced"


# -- 5. read-only columns -----------------------------------------------------------------


READ_ONLY_EDITS = {
    "customerabn": "'12 345 678 901'",
    "fkcustomerstatusid": "3",
    "customer_site_address": "'1 Test Street, Hobart TAS 7000'",
}


@pytest.mark.parametrize("column", sorted(READ_ONLY_EDITS))
def test_read_only_column_edit_is_flagged_once_kept_and_still_merges_remote_changes(mirror, column):
    """A read-only column edit makes the row 'error' naming the column, is kept, reported once, and remote changes still merge."""
    sim, db = mirror.sim, mirror.db
    target = sim.account.ids()[70]
    db.edit(f"UPDATE customers SET {column} = {READ_ONLY_EDITS[column]} WHERE pkcustomerid = {target}")
    assert db.row_of(target)["sync_state"] == "pending"
    kept = db.row_of(target)[column]
    mark = mirror.mark()
    with captured_events() as events:
        code, report = mirror.sync()
    assert code == EXIT_OK and report.push.errors == 1
    assert mirror.sent_since(mark) == []
    row = db.row_of(target)
    assert row["sync_state"] == "error" and column in row["sync_error"] and "read-only" in row["sync_error"]
    assert row[column] == kept
    assert [e["remote_id"] for e in events if e["event"] == "row_not_pushed"] == [target]

    # Reported once: the next sync leaves the row alone.
    with captured_events() as events:
        assert mirror.sync()[0] == EXIT_OK
    assert [e for e in events if e["event"] == "row_not_pushed"] == []
    assert mirror.sent_since(mark) == []

    # A remote change to another field of that row still merges into it.
    sim.account.edit_customer(target, last_name="Bilbyson")
    assert mirror.sync()[0] == EXIT_OK
    row = db.row_of(target)
    assert row["customersurname"] == "Bilbyson" and row[column] == kept
    assert row["sync_state"] == "error" and column in row["sync_error"]
    assert mirror.sent_since(mark) == []


def test_read_only_and_writable_edits_in_one_row_send_the_writable_part(mirror):
    """A row with a read-only and a writable edit sends only the writable field and stays 'error' for the other."""
    sim, db = mirror.sim, mirror.db
    target = sim.account.ids()[71]
    db.edit(f"UPDATE customers SET customerabn = '98 765 432 109', customerphone2 = '0455 000 111' "
             f"WHERE pkcustomerid = {target}")
    mark = mirror.mark()
    assert mirror.sync()[0] == EXIT_OK
    sent = mirror.sent_since(mark)
    assert len(sent) == 1
    assert {k: v for k, v in sent[0]["body"]["data"].items() if k not in ("apikey", "action", "pkcustomerid")} == \
        {"phone2": "0455 000 111"}
    assert sim.account.get(target)["phone2"] == "0455 000 111"
    row = db.row_of(target)
    assert row["sync_state"] == "error" and "customerabn" in row["sync_error"]
    assert row["customerabn"] == "98 765 432 109"
    assert mirror.sync()[0] == EXIT_OK
    assert len(mirror.sent_since(mark)) == 1


# -- 6. invalid values --------------------------------------------------------------------


INVALID_EDITS = [
    ("customeremail", "'not-an-email'", "not-an-email"),
    ("fkcustomertypeid", "7", "7"),
    ("customergstregistered", "5", "5"),
    ("customerfirstname", "''", "required"),
    ("customerphone1", "NULL", "required"),
]


def test_invalid_edits_are_flagged_not_sent_and_do_not_block_other_rows(mirror):
    """Bad email, type 7, GST 5 and an emptied required field each give 'error' naming field and value; other rows still push."""
    sim, db = mirror.sim, mirror.db
    ids = sim.account.ids()
    bad = {column: ids[80 + i] for i, (column, _v, _m) in enumerate(INVALID_EDITS)}
    good = ids[90]
    before = {i: sim.account.get(i) for i in bad.values()}
    db.edit(*(f"UPDATE customers SET {column} = {value} WHERE pkcustomerid = {bad[column]}"
               for column, value, _m in INVALID_EDITS),
         f"UPDATE customers SET customerphone2 = '0466 000 222' WHERE pkcustomerid = {good}")
    mark = mirror.mark()
    code, report = mirror.sync()
    assert code == EXIT_OK and report.push.errors == len(INVALID_EDITS) and report.push.updated == 1
    sent = mirror.sent_since(mark)
    assert [e["body"]["data"]["pkcustomerid"] for e in sent] == [good]
    assert sim.account.get(good)["phone2"] == "0466 000 222"
    assert db.row_of(good)["sync_state"] == "synced"
    for column, value, words in INVALID_EDITS:
        row = db.row_of(bad[column])
        assert row["sync_state"] == "error", column
        assert column in row["sync_error"] and words in row["sync_error"], row["sync_error"]
        assert sim.account.get(bad[column]) == before[bad[column]]
    assert db.row_of(bad["fkcustomertypeid"])["fkcustomertypeid"] == 7  # kept as written
    assert db.row_of(bad["customeremail"])["customeremail"] == "not-an-email"

    # Fixing a row with SQL makes it pending (the trigger) and the next sync pushes it.
    db.edit(f"UPDATE customers SET customeremail = 'fixed@example.com.au' WHERE pkcustomerid = {bad['customeremail']}",
         f"UPDATE customers SET fkcustomertypeid = 3 WHERE pkcustomerid = {bad['fkcustomertypeid']}")
    for column in ("customeremail", "fkcustomertypeid"):
        row = db.row_of(bad[column])
        assert row["sync_state"] == "pending" and row["sync_error"] is None
    mark = mirror.mark()
    code, report = mirror.sync()
    assert code == EXIT_OK and report.push.updated == 2 and report.push.errors == 0
    sent = {e["body"]["data"]["pkcustomerid"]: e["body"]["data"] for e in mirror.sent_since(mark)}
    assert set(sent) == {bad["customeremail"], bad["fkcustomertypeid"]}
    assert sent[bad["customeremail"]]["email"] == "fixed@example.com.au"
    assert sent[bad["fkcustomertypeid"]]["type"] == "LARGE-SCALE"
    assert sim.account.get(bad["customeremail"])["email"] == "fixed@example.com.au"
    assert sim.account.get(bad["fkcustomertypeid"])["type"] == 3
    assert db.row_of(bad["customeremail"])["sync_state"] == "synced"
    assert db.row_of(bad["fkcustomertypeid"])["sync_state"] == "synced"
    # The others are still in error, and were not reported again.
    assert db.scalar("SELECT count(*) FROM customers WHERE sync_state = 'error'") == len(INVALID_EDITS) - 2


def test_invalid_insert_is_flagged_and_not_created(mirror):
    """An INSERT missing a required field or with a bad type is 'error' naming the field, and nothing is created."""
    sim, db = mirror.sim, mirror.db
    email = unique_email("bad")
    values = new_customer(email)
    del values["customerphone1"]
    values["fkcustomertypeid"] = 9
    db.edit(insert_sql(**values))
    mark = mirror.mark()
    code, report = mirror.sync()
    assert code == EXIT_OK and report.push.errors == 1
    assert mirror.sent_since(mark) == []
    assert sim_ids_with_email(sim, email) == []
    [row] = db.query("SELECT * FROM customers WHERE customeremail = ?", (email,))
    assert row["pkcustomerid"] is None and row["sync_state"] == "error"
    assert "customerphone1" in row["sync_error"] and "fkcustomertypeid" in row["sync_error"]
    assert "9" in row["sync_error"]
    assert db.scalar("SELECT count(*) FROM create_intents") == 0
    # Fixed with SQL, it is created by the next sync.
    db.edit(f"UPDATE customers SET customerphone1 = '0400 000 001', fkcustomertypeid = 1 WHERE id = {row['id']}")
    assert mirror.sync()[0] == EXIT_OK
    [new_id] = sim_ids_with_email(sim, email)
    assert db.row_of(new_id)["sync_state"] == "synced"


# -- 7. deletes ---------------------------------------------------------------------------


def test_local_delete_is_restored_when_push_deletes_is_off(mirror):
    """With push_deletes off a locally deleted row comes back on the next sync and nothing is sent."""
    sim, db = mirror.sim, mirror.db
    target = sim.account.ids()[100]
    before = db.row_of(target)
    db.edit(f"DELETE FROM customers WHERE pkcustomerid = {target}")
    assert db.row_of(target) is None
    mark = mirror.mark()
    with captured_events() as events:
        code, report = mirror.sync()
    assert code == EXIT_OK and report.push.restored == 1 and report.push.deleted == 0
    assert mirror.sent_since(mark) == []
    assert target in sim.account.ids()
    row = db.row_of(target)
    assert row is not None and row["sync_state"] == "synced"
    assert {k: v for k, v in row.items() if k != "id"} == {k: v for k, v in before.items() if k != "id"}
    assert [h["field"] for h in history(db, target)] == ["(restored)"]
    assert [e["remote_id"] for e in events if e["event"] == "local_delete_restored"] == [target]
    assert db.scalar("SELECT count(*) FROM deleted_customers") == 0


def test_local_delete_is_pushed_when_push_deletes_is_on(server, mirror_db):
    """With push_deletes on, one deletecustomer is sent, the customer is gone, and its record is in deleted_customers."""
    m = make_mirror(server, mirror_db, SPMIRROR_SYNC_PUSH_DELETES="true")
    target = server.account.ids()[101]
    email = server.account.get(target)["email"]
    m.db.edit(f"DELETE FROM customers WHERE pkcustomerid = {target}")
    mark = m.mark()
    code, report = m.sync()
    assert code == EXIT_OK and report.push.deleted == 1
    sent = m.sent_since(mark)
    assert len(sent) == 1 and sent[0]["action"] == "deletecustomer"
    assert sent[0]["body"]["data"]["pkcustomerid"] == target and sent[0]["applied"]
    assert target not in server.account.ids()
    assert m.db.row_of(target) is None
    deleted = m.db.query("SELECT pkcustomerid, customeremail FROM deleted_customers")
    assert deleted == [{"pkcustomerid": target, "customeremail": email}]
    assert m.db.scalar("SELECT count(*) FROM customer_base WHERE pkcustomerid = ?", (target,)) == 0
    mark = m.mark()
    assert m.sync()[0] == EXIT_OK and m.sent_since(mark) == []
    assert m.db.scalar("SELECT count(*) FROM customers") == CUSTOMERS - 1


def test_deleting_every_row_is_refused_by_the_guard(server, mirror_db):
    """A local DELETE of every row with push_deletes on is refused (exit 4) and nothing is sent."""
    m = make_mirror(server, mirror_db, SPMIRROR_SYNC_PUSH_DELETES="true")
    m.db.edit("DELETE FROM customers")
    mark = m.mark()
    code, _report = m.sync()
    assert code == EXIT_REFUSED
    assert m.sent_since(mark) == []
    assert len(server.account.ids()) == CUSTOMERS
    assert m.db.last_run()["result"] == "refused"
    assert m.db.scalar("SELECT count(*) FROM deleted_customers") == 0
    # Refused again on the next run: nothing was half-applied.
    assert m.sync()[0] == EXIT_REFUSED and m.sent_since(mark) == []


# -- 8. edits during a running pull ---------------------------------------------------------


def test_edits_made_during_a_pull_are_never_overwritten(mirror_db):
    """Rows edited from another process while a pull runs keep their edits, merge remote changes, and are pushed next."""
    with SimulatorServer(customers=1500, seed=SEED, api_key=API_KEY) as sim:
        m = make_mirror(sim, mirror_db, SPMIRROR_API_MAX_IN_FLIGHT="1")
        ids = sim.account.ids()
        edited = ids[5:1500:75]  # 20 rows spread over every page
        both = edited[::2]  # also edited in Solar Proof, in another field, before the pull
        clashing = ids[40:1500:300]  # phone2 edited on both sides: a conflict, never an overwrite
        for i in both:
            sim.account.edit_customer(i, last_name=f"Remote{i}")
        for i in clashing:
            sim.account.edit_customer(i, phone2=f"06{i:08d}")
        sim.faults.configure(latency_ms=20)
        pages = (len(ids) + 49) // 50 + 1  # the walk ends on an empty page
        served = sim.account.call_counts().get("getallcustomers", 0)
        outcome: dict = {}
        pull = threading.Thread(target=lambda: outcome.update(result=m.sync(push=False)), daemon=True)
        pull.start()
        deadline = time.monotonic() + 30
        while sim.account.call_counts().get("getallcustomers", 0) < served + 3:
            assert time.monotonic() < deadline and pull.is_alive(), "the pull did not start walking"
            time.sleep(0.005)
        m.db.edit(*(f"UPDATE customers SET customerphone2 = '05{i:08d}' WHERE pkcustomerid = {i}"
                     for i in [*edited, *clashing]))
        walked = sim.account.call_counts().get("getallcustomers", 0) - served
        pull.join(timeout=60)
        assert not pull.is_alive()
        assert walked < pages, "the edits must land while the walk is still running"
        code, report = outcome["result"]
        assert code == EXIT_OK and report.updated == len(both) + len(clashing)
        for i in edited:
            row = m.db.row_of(i)
            assert row["customerphone2"] == f"05{i:08d}", i
            assert row["sync_state"] == "pending", i
        for i in both:
            assert m.db.row_of(i)["customersurname"] == f"Remote{i}"
        for i in clashing:
            row = m.db.row_of(i)
            assert row["customerphone2"] == f"05{i:08d}" and row["sync_state"] == "conflict", i
        assert sorted((r["pkcustomerid"], r["local_value"], r["remote_value"]) for r in m.db.query(
            "SELECT pkcustomerid, local_value, remote_value FROM customer_conflicts")) == \
            [(i, f"05{i:08d}", f"06{i:08d}") for i in sorted(clashing)]

        sim.faults.reset()
        mark = m.mark()
        code, report = m.sync()
        assert code == EXIT_OK and report.push.updated == len(edited)
        sent = m.sent_since(mark)
        assert sorted(e["body"]["data"]["pkcustomerid"] for e in sent) == sorted(edited)
        assert all(set(e["body"]["data"]) == {"apikey", "action", "pkcustomerid", "phone2"} for e in sent)
        for i in edited:
            record = sim.account.get(i)
            assert record["phone2"] == f"05{i:08d}"
            row = m.db.row_of(i)
            assert row["sync_state"] == "synced"
            if i in both:
                assert record["last_name"] == row["customersurname"] == f"Remote{i}"
        for i in clashing:
            assert sim.account.get(i)["phone2"] == f"06{i:08d}"
            assert m.db.row_of(i)["sync_state"] == "conflict"


# -- 9. a big push ------------------------------------------------------------------------


def test_a_thousand_edits_in_one_statement_are_all_pushed(mirror_db):
    """1,000 rows updated by one SQL statement are sent as 1,000 updatecustomer calls in one sync, all landing."""
    with SimulatorServer(customers=1100, seed=SEED, api_key=API_KEY) as sim:
        m = make_mirror(sim, mirror_db)
        padded = "printf('%08d', id)" if m.db.kind == "sqlite" else "lpad(id::text, 8, '0')"
        m.db.edit(f"UPDATE customers SET customerphone2 = '04' || {padded} WHERE id <= 1000")
        assert m.db.scalar("SELECT count(*) FROM customers WHERE sync_state = 'pending'") == 1000
        expected = {r["pkcustomerid"]: r["customerphone2"]
                    for r in m.db.query("SELECT pkcustomerid, customerphone2 FROM customers WHERE id <= 1000")}
        mark = m.mark()
        code, report = m.sync()
        assert code == EXIT_OK and report.push.updated == 1000 and report.push.errors == 0
        sent = m.sent_since(mark)
        assert len(sent) == 1000 and {e["action"] for e in sent} == {"updatecustomer"}
        assert sorted(e["body"]["data"]["pkcustomerid"] for e in sent) == sorted(expected)
        assert all(e["applied"] for e in sent)
        for remote_id, phone in expected.items():
            assert sim.account.get(remote_id)["phone2"] == phone
        assert m.db.scalar("SELECT count(*) FROM customers WHERE sync_state != 'synced'") == 0
        assert m.db.scalar("SELECT count(*) FROM customer_changes WHERE source = 'local'") == 1000
