"""Bad local input written from another process is flagged, refused or guarded; nothing is lost, other rows sync."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from conftest import API_KEY, FakeClock
from mirror.api import SolarProofClient, Timeouts
from mirror.commands.sync import sync_once
from mirror.config import load_settings
from mirror.exit_codes import EXIT_OK, EXIT_REFUSED
from mirror.retry import RetryPolicy
from mirror.simulator.server import SimulatorServer
from mirror.validation import REQUIRED_FOR_CREATE
from sqlite_edit import edit, query, row_of, scalar, sql_text

CUSTOMERS = 120
SEED = 37
WRITE_ACTIONS = {"createcustomer", "updatecustomer", "deletecustomer"}
GOOD_PHONE2 = "0466 000 222"


class Mirror:
    """A simulator with a fresh account, a mirror file in sync with it, and a checked `sync()`."""

    def __init__(self, sim: SimulatorServer, db: Path):
        self.sim, self.db = sim, db
        self.ids = sim.account.ids()
        self.clock = FakeClock()

    def sync(self, **env: str):
        """One sync_once on a fake clock, checking integrity and the search index; returns (code, report)."""
        settings = load_settings(env={"SPMIRROR_API_URL": self.sim.url, "SPMIRROR_API_KEY": self.sim.api_key,
                                      "SPMIRROR_DB": str(self.db), **env})
        with SolarProofClient(self.sim.url, self.sim.api_key, rng=random.Random(3), sleep=self.clock.sleep,
                              clock=self.clock, retry=RetryPolicy(attempts=4, base_delay=0.5, max_delay=4, deadline=60),
                              timeouts=Timeouts(connect=2, read=5, write=5, pool=5),
                              transport=httpx.HTTPTransport(verify=False)) as client:
            code, report = sync_once(settings, client=client)
        assert scalar(self.db, "PRAGMA integrity_check") == "ok"
        con = sqlite3.connect(self.db)
        try:  # raises if the search index no longer matches the rows
            con.execute("INSERT INTO customers_fts(customers_fts) VALUES ('integrity-check')")
        finally:
            con.close()
        return code, report

    def mark(self) -> int:
        return len(self.sim.account.write_log())

    def sent_since(self, mark: int) -> list[dict]:
        """Write requests the simulator received after `mark`."""
        return [e for e in self.sim.account.write_log()[mark:] if e["action"] in WRITE_ACTIONS]

    def good_edit(self) -> str:
        """SQL for a valid edit of another row, which must still be pushed."""
        return f"UPDATE customers SET customerphone2 = '{GOOD_PHONE2}' WHERE pkcustomerid = {self.ids[100]}"

    def assert_good_edit_pushed(self, mark: int) -> None:
        good = self.ids[100]
        sent = [e for e in self.sent_since(mark) if e["body"]["data"].get("pkcustomerid") == good]
        assert [(e["action"], e["applied"]) for e in sent] == [("updatecustomer", True)]
        assert self.sim.account.get(good)["phone2"] == GOOD_PHONE2
        assert row_of(self.db, good)["sync_state"] == "synced"


@pytest.fixture(scope="module")
def server():
    """One simulator for the module; each test gives it a fresh account."""
    with SimulatorServer(customers=0, seed=SEED, api_key=API_KEY) as sim:
        yield sim


@pytest.fixture(scope="module")
def template(server, tmp_path_factory) -> Path:
    """A mirror of the account, imported once and copied for each test."""
    server.reset_account(customers=CUSTOMERS, seed=SEED)
    m = Mirror(server, tmp_path_factory.mktemp("template") / "mirror.db")
    assert m.sync()[0] == EXIT_OK
    return m.db


@pytest.fixture
def mirror(server, template, tmp_path):
    """A fresh account and a copy of its mirror, every row synced."""
    server.reset_account(customers=CUSTOMERS, seed=SEED)
    db = tmp_path / "mirror.db"
    source, target = sqlite3.connect(template), sqlite3.connect(db)
    try:
        source.backup(target)
    finally:
        source.close()
    try:  # held open (idle) so each short-lived reader's close does not checkpoint and delete the WAL
        yield Mirror(server, db)
    finally:
        target.close()


def insert_sql(**values) -> str:
    """A plain INSERT INTO customers naming only the given columns (values are SQL literals)."""
    return f"INSERT INTO customers ({', '.join(values)}) VALUES ({', '.join(values.values())})"


def new_row(tag: str, **overrides: str) -> dict[str, str]:
    """SQL literals for a valid new customer, identified by customercompanyname = tag."""
    values = {"customerfirstname": "'Wendy'", "customersurname": "'Wombat'",
              "customeremail": sql_text(f"{tag}-{uuid.uuid4().hex[:8]}@example.com.au"),
              "customerphone1": "'0400 123 456'", "fkcustomertypeid": "2", "customercompanyname": sql_text(tag)}
    values.update(overrides)
    return values


def by_tag(db: Path, tag: str) -> dict:
    [row] = query(db, "SELECT * FROM customers WHERE customercompanyname = ?", (tag,))
    return row


def rows_by_id(db: Path) -> dict:
    """Every customers row without its local id, by pkcustomerid."""
    return {r["pkcustomerid"]: {k: v for k, v in r.items() if k != "id"} for r in query(db, "SELECT * FROM customers")}


def not_pushed(db: Path, remote_id: int | None, field: str) -> list[dict]:
    """customer_changes rows keeping a value that was not pushed."""
    return query(db, "SELECT new_value FROM customer_changes WHERE pkcustomerid IS ? AND field = ? "
                     "AND source = 'local (not pushed)'", (remote_id, field))


# -- NULLs, over-long text and wrong types --------------------------------------------------


def test_null_in_a_required_column_of_an_edited_row_is_flagged_once_and_kept(mirror):
    """Each required column set to NULL flags its row naming the column, sends nothing for it, and never loops."""
    sim, db = mirror.sim, mirror.db
    bad = {column: mirror.ids[10 + i] for i, column in enumerate(REQUIRED_FOR_CREATE)}
    before = {remote_id: sim.account.get(remote_id) for remote_id in bad.values()}
    edit(db, *(f"UPDATE customers SET {column} = NULL WHERE pkcustomerid = {remote_id}"
               for column, remote_id in bad.items()), mirror.good_edit())
    mark = mirror.mark()
    code, report = mirror.sync()
    assert code == EXIT_OK and report.push.errors == len(bad) and report.push.updated == 1
    mirror.assert_good_edit_pushed(mark)
    assert {e["body"]["data"]["pkcustomerid"] for e in mirror.sent_since(mark)} == {mirror.ids[100]}
    for column, remote_id in bad.items():
        row = row_of(db, remote_id)
        assert row["sync_state"] == "error" and f"{column} is required" in row["sync_error"], row["sync_error"]
        assert row[column] is None
        assert not_pushed(db, remote_id, column) == [{"new_value": None}]
        assert sim.account.get(remote_id) == before[remote_id]
    # Flagged once: the next sync sends and reports nothing; a remote change to another field still merges.
    target = bad["customersurname"]
    sim.account.edit_customer(target, phone2="0411 111 111")
    mark = mirror.mark()
    code, report = mirror.sync()
    assert code == EXIT_OK and report.push.errors == 0 and mirror.sent_since(mark) == []
    row = row_of(db, target)
    assert row["customerphone2"] == "0411 111 111" and row["customersurname"] is None and row["sync_state"] == "error"


def test_null_in_a_required_column_of_an_inserted_row_is_flagged_not_created(mirror):
    """An INSERT with NULL in a required column is flagged naming it and never created; a good INSERT beside it is."""
    sim, db = mirror.sim, mirror.db
    inserts = {column: new_row(f"null-{column}", **{column: "NULL"}) for column in REQUIRED_FOR_CREATE}
    edit(db, *(insert_sql(**values) for values in inserts.values()), insert_sql(**new_row("good-insert")),
         mirror.good_edit())
    mark = mirror.mark()
    code, report = mirror.sync()
    assert code == EXIT_OK and report.push.errors == len(inserts) and report.push.created == 1
    mirror.assert_good_edit_pushed(mark)
    creates = [e for e in mirror.sent_since(mark) if e["action"] == "createcustomer"]
    assert [e["body"]["data"]["companyname"] for e in creates] == ["good-insert"]
    assert by_tag(db, "good-insert")["sync_state"] == "synced" and by_tag(db, "good-insert")["pkcustomerid"]
    for column in inserts:
        row = by_tag(db, f"null-{column}")
        assert row["pkcustomerid"] is None and row[column] is None
        assert row["sync_state"] == "error" and f"{column} is required" in row["sync_error"], row["sync_error"]
        assert row["customerfirstname"] == ("Wendy" if column != "customerfirstname" else None)
    assert scalar(db, "SELECT count(*) FROM create_intents") == 0
    mark = mirror.mark()
    assert mirror.sync()[0] == EXIT_OK and mirror.sent_since(mark) == []


def test_over_long_text_is_flagged_naming_the_column(mirror):
    """300-character values are flagged naming the column and kept whole, while 255 characters are sent."""
    sim, db = mirror.sim, mirror.db
    company, surname, abn, boundary = mirror.ids[20], mirror.ids[21], mirror.ids[22], mirror.ids[23]
    long_text, limit_text = "x" * 300, "y" * 255
    edit(db, f"UPDATE customers SET customercompanyname = '{long_text}' WHERE pkcustomerid = {company}",
         f"UPDATE customers SET customersurname = '{long_text}' WHERE pkcustomerid = {surname}",
         f"UPDATE customers SET customerabn = '{long_text}' WHERE pkcustomerid = {abn}",
         f"UPDATE customers SET customercompanyphone = '{limit_text}' WHERE pkcustomerid = {boundary}",
         insert_sql(**new_row("long-insert", customerfirstname=f"'{long_text}'")), mirror.good_edit())
    mark = mirror.mark()
    code, report = mirror.sync()
    assert code == EXIT_OK and report.push.errors == 4 and report.push.updated == 2
    mirror.assert_good_edit_pushed(mark)
    sent = {e["body"]["data"].get("pkcustomerid") for e in mirror.sent_since(mark)}
    assert sent == {boundary, mirror.ids[100]}
    assert sim.account.get(boundary)["company_phone"] == limit_text
    for remote_id, column in ((company, "customercompanyname"), (surname, "customersurname")):
        row = row_of(db, remote_id)
        assert row["sync_state"] == "error" and f"{column} is 300 characters" in row["sync_error"]
        assert row[column] == long_text
    row = row_of(db, abn)
    assert row["sync_state"] == "error" and "customerabn" in row["sync_error"] and "read-only" in row["sync_error"]
    assert row["customerabn"] == long_text and not_pushed(db, abn, "customerabn") == [{"new_value": long_text}]
    row = by_tag(db, "long-insert")
    assert row["pkcustomerid"] is None and row["customerfirstname"] == long_text
    assert row["sync_state"] == "error" and "customerfirstname is 300 characters" in row["sync_error"]
    assert not [e for e in mirror.sent_since(mark) if e["action"] == "createcustomer"]


def test_wrong_types_in_loose_columns_are_flagged_and_kept(mirror):
    """Text in fkcustomertypeid, a float in customergstregistered or a blob in customeremail is flagged and kept."""
    sim, db = mirror.sim, mirror.db
    text_type, float_gst, blob_email, text_digit = mirror.ids[30], mirror.ids[31], mirror.ids[32], mirror.ids[33]
    before = {i: sim.account.get(i) for i in (text_type, float_gst, blob_email)}
    edit(db, f"UPDATE customers SET fkcustomertypeid = 'abc' WHERE pkcustomerid = {text_type}",
         f"UPDATE customers SET customergstregistered = 0.5 WHERE pkcustomerid = {float_gst}",
         f"UPDATE customers SET customeremail = X'DEADBEEF' WHERE pkcustomerid = {blob_email}",
         f"UPDATE customers SET fkcustomertypeid = '3' WHERE pkcustomerid = {text_digit}",  # INTEGER affinity: 3
         insert_sql(**new_row("text-type-insert", fkcustomertypeid="'abc'")),
         insert_sql(**new_row("blob-email-insert", customeremail="X'CAFE'")), mirror.good_edit())
    mark = mirror.mark()
    code, report = mirror.sync()
    assert code == EXIT_OK and report.push.errors == 5 and report.push.updated == 2
    mirror.assert_good_edit_pushed(mark)
    assert {e["body"]["data"].get("pkcustomerid") for e in mirror.sent_since(mark)} == {text_digit, mirror.ids[100]}
    assert sim.account.get(text_digit)["type"] == 3 and row_of(db, text_digit)["sync_state"] == "synced"
    expected = {text_type: ("fkcustomertypeid", "must be 1, 2 or 3", "text", "abc"),
                float_gst: ("customergstregistered", "must be 0 or 1; got 0.5", "real", 0.5),
                blob_email: ("customeremail", "must be text", "blob", b"\xde\xad\xbe\xef")}
    for remote_id, (column, words, kind, kept) in expected.items():
        row = query(db, f"SELECT sync_state, sync_error, typeof({column}) AS kind FROM customers "
                        f"WHERE pkcustomerid = ?", (remote_id,))[0]
        assert row["sync_state"] == "error" and f"{column} {words}" in row["sync_error"], row["sync_error"]
        assert row["kind"] == kind
        assert not_pushed(db, remote_id, column) == [{"new_value": kept}]
        assert sim.account.get(remote_id) == before[remote_id]
    for tag, column, kind in (("text-type-insert", "fkcustomertypeid", "text"),
                              ("blob-email-insert", "customeremail", "blob")):
        row = by_tag(db, tag)
        assert row["pkcustomerid"] is None and row["sync_state"] == "error" and column in row["sync_error"]
        assert scalar(db, f"SELECT typeof({column}) FROM customers WHERE id = ?", (row["id"],)) == kind
    assert not [e for e in mirror.sent_since(mark) if e["action"] == "createcustomer"]
    # Remote changes to other fields of the flagged rows still merge, and the stored values stay.
    for remote_id in expected:
        sim.account.edit_customer(remote_id, phone2="0499 555 000")
    code, report = mirror.sync()
    assert code == EXIT_OK
    for remote_id, (column, _words, kind, _kept) in expected.items():
        row = query(db, f"SELECT customerphone2, sync_state, typeof({column}) AS kind FROM customers "
                        f"WHERE pkcustomerid = ?", (remote_id,))[0]
        assert row == {"customerphone2": "0499 555 000", "sync_state": "error", "kind": kind}


# -- ids: a deleted row re-inserted, an edited pkcustomerid ---------------------------------

_KEEP = "CREATE TEMP TABLE keep AS SELECT * FROM customers WHERE pkcustomerid = {id}"


def test_deleted_row_reinserted_whole_with_the_same_id_is_merged(mirror):
    """A row deleted and re-inserted whole with an edit stays the same customer: one update, no create or delete."""
    sim, db = mirror.sim, mirror.db
    target = mirror.ids[40]
    columns = ", ".join(c for c in row_of(db, target) if c != "id")
    edit(db, _KEEP.format(id=target), f"DELETE FROM customers WHERE pkcustomerid = {target}",
         f"INSERT INTO customers ({columns}) SELECT {columns} FROM keep",
         f"UPDATE customers SET customerphone2 = '0455 444 333' WHERE pkcustomerid = {target}", mirror.good_edit())
    mark = mirror.mark()
    code, report = mirror.sync(SPMIRROR_SYNC_PUSH_DELETES="true")
    assert code == EXIT_OK and report.push.deleted == 0 and report.push.created == 0 and report.push.restored == 0
    mirror.assert_good_edit_pushed(mark)
    sent = [e for e in mirror.sent_since(mark) if e["body"]["data"].get("pkcustomerid") == target]
    assert [(e["action"], e["body"]["data"].get("phone2")) for e in sent] == [("updatecustomer", "0455 444 333")]
    assert target in sim.account.ids() and sim.account.get(target)["phone2"] == "0455 444 333"
    assert scalar(db, "SELECT count(*) FROM customers WHERE pkcustomerid = ?", (target,)) == 1
    assert row_of(db, target)["sync_state"] == "synced"
    mark = mirror.mark()
    assert mirror.sync(SPMIRROR_SYNC_PUSH_DELETES="true")[0] == EXIT_OK and mirror.sent_since(mark) == []


def test_deleted_row_reinserted_partly_with_the_same_id_is_flagged_not_created(mirror):
    """A row re-inserted with only writable columns has its edit pushed to its id and its blanked columns flagged."""
    sim, db = mirror.sim, mirror.db
    target = mirror.ids[41]
    old = row_of(db, target)
    writable = ("customerfirstname", "customersurname", "customeremail", "customerphone1", "customercompanyname",
                "customercompanyphone", "fkcustomertypeid", "customergstregistered")
    edit(db, _KEEP.format(id=target), f"DELETE FROM customers WHERE pkcustomerid = {target}",
         f"INSERT INTO customers (pkcustomerid, customerphone2, {', '.join(writable)}) "
         f"SELECT pkcustomerid, '0455 444 111', {', '.join(writable)} FROM keep", mirror.good_edit())
    mark = mirror.mark()
    code, report = mirror.sync()
    assert code == EXIT_OK and report.push.created == 0 and report.push.restored == 0
    mirror.assert_good_edit_pushed(mark)
    sent = [e for e in mirror.sent_since(mark) if e["body"]["data"].get("pkcustomerid") == target]
    assert [(e["action"], e["body"]["data"].get("phone2")) for e in sent] == [("updatecustomer", "0455 444 111")]
    assert not [e for e in mirror.sent_since(mark) if e["action"] != "updatecustomer"]
    [row] = query(db, "SELECT * FROM customers WHERE pkcustomerid = ?", (target,))
    assert row["sync_state"] == "error" and "created_at" in row["sync_error"] and "read-only" in row["sync_error"]
    assert row["customerphone2"] == "0455 444 111" and row["created_at"] is None
    base = query(db, "SELECT created_at, fkcustomerstatusid FROM customer_base WHERE pkcustomerid = ?", (target,))
    assert base == [{"created_at": old["created_at"], "fkcustomerstatusid": old["fkcustomerstatusid"]}]


@pytest.mark.parametrize("new_id", ["999999", "another", "NULL"])
def test_editing_pkcustomerid_is_refused_at_the_source(mirror, new_id):
    """Changing a synced row's pkcustomerid (to an unused id, another's, or NULL) is refused by SQLite."""
    sim, db = mirror.sim, mirror.db
    target, other = mirror.ids[50], mirror.ids[51]
    value = str(other) if new_id == "another" else new_id
    before = row_of(db, target)
    with pytest.raises(subprocess.CalledProcessError) as refused:
        edit(db, f"UPDATE customers SET pkcustomerid = {value}, customerphone2 = '0400 000 050' "
                 f"WHERE pkcustomerid = {target}")
    assert "pkcustomerid" in refused.value.stderr and "cannot be changed" in refused.value.stderr
    assert row_of(db, target) == before
    edit(db, mirror.good_edit())
    mark = mirror.mark()
    code, report = mirror.sync(SPMIRROR_SYNC_PUSH_DELETES="true")
    assert code == EXIT_OK and report.push.deleted == 0 and report.push.errors == 0
    assert [e["action"] for e in mirror.sent_since(mark)] == ["updatecustomer"]
    mirror.assert_good_edit_pushed(mark)
    assert {target, other} <= set(sim.account.ids())
    assert row_of(db, target) == before


def test_new_row_given_an_id_the_mirror_has_not_seen_is_flagged(mirror):
    """A new row given a pkcustomerid the mirror has never seen is flagged naming pkcustomerid and sends nothing."""
    sim, db = mirror.sim, mirror.db
    edit(db, insert_sql(**new_row("unknown-id"), pkcustomerid="999999"),
         insert_sql(**new_row("claimed-later")), "UPDATE customers SET pkcustomerid = 888888 "
                                                 "WHERE customercompanyname = 'claimed-later'", mirror.good_edit())
    with pytest.raises(subprocess.CalledProcessError) as refused:  # an id already in the mirror: the unique index
        edit(db, insert_sql(**new_row("taken-id"), pkcustomerid=str(mirror.ids[52])))
    assert "UNIQUE" in refused.value.stderr
    mark = mirror.mark()
    code, report = mirror.sync(SPMIRROR_SYNC_PUSH_DELETES="true")
    assert code == EXIT_OK and report.push.errors == 2
    assert [e["action"] for e in mirror.sent_since(mark)] == ["updatecustomer"]
    mirror.assert_good_edit_pushed(mark)
    for tag, remote_id in (("unknown-id", 999999), ("claimed-later", 888888)):
        row = by_tag(db, tag)
        assert row["pkcustomerid"] == remote_id and row["customerfirstname"] == "Wendy"
        assert row["sync_state"] == "error" and f"pkcustomerid {remote_id}" in row["sync_error"]
    mark = mirror.mark()
    assert mirror.sync()[0] == EXIT_OK and mirror.sent_since(mark) == []
    assert by_tag(db, "unknown-id")["sync_state"] == "error"


def test_new_row_given_the_id_of_a_customer_not_yet_pulled_keeps_its_values(mirror):
    """A row inserted with the id of a customer not yet pulled keeps every typed value in the row, is flagged
    naming pkcustomerid and how to settle it, and sends nothing, on every sync."""
    sim, db = mirror.sim, mirror.db
    remote_id = sim.account.create_customer(first_name="Zed", last_name="Zulu", email="zed@example.com.au",
                                            phone1="0400 000 009", type="Commercial")
    remote_before = sim.account.get(remote_id)
    edit(db, insert_sql(**new_row("typed-here", customerfirstname="'Typed'"), pkcustomerid=str(remote_id)))
    typed = {k: v for k, v in by_tag(db, "typed-here").items() if k not in ("sync_state", "sync_error")}
    assert typed["customerfirstname"] == "Typed" and typed["pkcustomerid"] == remote_id
    mark = mirror.mark()
    for _ in range(2):  # flagged once and left alone: not pushed, not overwritten by the pull
        assert mirror.sync()[0] == EXIT_OK
        assert mirror.sent_since(mark) == []
        assert sim.account.get(remote_id) == remote_before
        row = row_of(db, remote_id)
        assert {k: v for k, v in row.items() if k not in ("sync_state", "sync_error")} == typed
        assert row["sync_state"] == "error"
        assert f"pkcustomerid {remote_id}" in row["sync_error"]
        assert f"spmirror resolve {remote_id} --take remote" in row["sync_error"]


# -- a TRUNCATE-style delete of every row ----------------------------------------------------


def test_delete_of_every_row_is_restored_when_push_deletes_is_off(mirror):
    """DELETE FROM customers is undone row for row with nothing sent, and a row inserted afterwards is still created."""
    sim, db = mirror.sim, mirror.db
    before = rows_by_id(db)
    edit(db, "DELETE FROM customers", insert_sql(**new_row("after-truncate")))
    assert scalar(db, "SELECT count(*) FROM customers") == 1
    mark = mirror.mark()
    code, report = mirror.sync()
    assert code == EXIT_OK and report.push.restored == CUSTOMERS and report.push.deleted == 0
    assert [e["action"] for e in mirror.sent_since(mark)] == ["createcustomer"]
    after = rows_by_id(db)
    new_id = by_tag(db, "after-truncate")["pkcustomerid"]
    assert new_id in sim.account.ids() and after.pop(new_id)["sync_state"] == "synced"
    assert after == before
    assert len(sim.account.ids()) == CUSTOMERS + 1
    assert scalar(db, "SELECT count(*) FROM customer_changes WHERE field = '(restored)'") == CUSTOMERS


def test_delete_of_every_row_is_refused_by_the_guard_when_push_deletes_is_on(mirror):
    """DELETE FROM customers with push_deletes on exits 4 on every run, sends nothing, and loses nothing."""
    sim, db = mirror.sim, mirror.db
    before = rows_by_id(db)
    edit(db, "DELETE FROM customers")
    mark = mirror.mark()
    for _ in range(2):
        code, report = mirror.sync(SPMIRROR_SYNC_PUSH_DELETES="true")
        assert code == EXIT_REFUSED
        assert mirror.sent_since(mark) == []
        run = query(db, "SELECT result, error FROM sync_runs ORDER BY rowid DESC LIMIT 1")[0]
        assert run["result"] == "refused" and f"refusing to delete {CUSTOMERS} customers" in run["error"]
    assert len(sim.account.ids()) == CUSTOMERS
    assert scalar(db, "SELECT count(*) FROM customer_base") == CUSTOMERS
    assert scalar(db, "SELECT count(*) FROM deleted_customers") == 0
    # Nothing was lost: with push_deletes off the rows come back exactly.
    code, report = mirror.sync()
    assert code == EXIT_OK and report.push.restored == CUSTOMERS and mirror.sent_since(mark) == []
    after = rows_by_id(db)
    assert after == before
