"""What a person's SQL does to the mirror: an UPDATE that changes nothing stays synced, and history
keeps each value as its column held it (the integer 2, not the text '2').

Edits go through a separate process (tests/sqlite_edit.py), as a person's would; syncs are the
real `sync_once` against the simulator served on 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import API_KEY
from mirror.commands.sync import sync_once
from mirror.config import load_settings
from mirror.exit_codes import EXIT_OK
from mirror.simulator.server import SimulatorServer
from sqlite_edit import edit, query, scalar

WRITES = {"createcustomer", "updatecustomer", "deletecustomer"}


@pytest.fixture(scope="module")
def server():
    with SimulatorServer(customers=30, seed=13, api_key=API_KEY) as sim:
        yield sim


@pytest.fixture
def mirror(server, tmp_path):
    """A mirror of the module's simulator (its account seeded afresh), synced once."""
    server.reset_account(customers=30, seed=13)
    db = tmp_path / "mirror.db"
    settings = load_settings(env={"SPMIRROR_API_URL": server.url, "SPMIRROR_API_KEY": API_KEY,
                                  "SPMIRROR_DB": str(db)})
    assert sync_once(settings)[0] == EXIT_OK
    return Mirror(server, db, settings)


class Mirror:
    def __init__(self, sim: SimulatorServer, db: Path, settings):
        self.sim, self.db, self.settings = sim, db, settings

    def sync(self, **options) -> int:
        return sync_once(self.settings, **options)[0]

    def writes(self) -> list[dict]:
        return [e for e in self.sim.account.write_log() if e["action"] in WRITES]

    def states(self) -> dict[int, str]:
        return {r["id"]: r["sync_state"] for r in query(self.db, "SELECT id, sync_state FROM customers")}


# -- an UPDATE that changes nothing ---------------------------------------------------------


def test_an_update_that_changes_no_value_leaves_every_row_synced(mirror):
    """`SET x = x` on every row, a number written as text, NULL over NULL and a whole row written back
    unchanged (as a GUI that saves every column does) mark nothing pending, and the next sync sends nothing."""
    assert set(mirror.states().values()) == {"synced"}
    row = query(mirror.db, "SELECT * FROM customers WHERE customerphone2 IS NULL ORDER BY id LIMIT 1")[0]
    edit(mirror.db,
         "UPDATE customers SET customerfirstname = customerfirstname, customersurname = customersurname",
         "UPDATE customers SET fkcustomertypeid = '1' WHERE fkcustomertypeid = 1",  # INTEGER affinity: 1
         "UPDATE customers SET customergstregistered = customergstregistered + 0",
         f"UPDATE customers SET customerphone2 = NULL WHERE id = {row['id']}",
         "UPDATE customers SET " + ", ".join(f"{name} = {name}" for name in row if name not in ("id",))
         + f" WHERE id = {row['id']}")
    assert set(mirror.states().values()) == {"synced"}
    before = len(mirror.writes())
    assert mirror.sync() == EXIT_OK
    assert len(mirror.writes()) == before


def test_an_update_that_changes_a_value_marks_only_that_row_pending(mirror):
    """A real change (NULL to a value, a change of case, a number) marks exactly the changed rows pending, even in
    the same statement as rows it leaves as they were."""
    ids = sorted(mirror.states())
    no_phone2 = scalar(mirror.db, "SELECT id FROM customers WHERE customerphone2 IS NULL ORDER BY id LIMIT 1")
    edit(mirror.db,
         f"UPDATE customers SET customerphone2 = '0400 111 222' WHERE id = {no_phone2}",
         f"UPDATE customers SET customersurname = upper(customersurname) WHERE id = {ids[1]}",
         f"UPDATE customers SET fkcustomertypeid = CASE id WHEN {ids[2]} THEN 3 - fkcustomertypeid % 2 "
         f"ELSE fkcustomertypeid END")
    pending = {i for i, state in mirror.states().items() if state == "pending"}
    assert pending == {no_phone2, ids[1], ids[2]}


# -- history typed as its column ------------------------------------------------------------


def typed_history(db: Path, remote_id: int, field: str) -> list[tuple]:
    return [(r["old_value"], r["old_type"], r["new_value"], r["new_type"], r["source"]) for r in query(
        db, "SELECT old_value, typeof(old_value) AS old_type, new_value, typeof(new_value) AS new_type, source "
            "FROM customer_changes WHERE pkcustomerid = ? AND field = ? ORDER BY id", (remote_id, field))]


def test_remote_changes_are_kept_in_history_as_their_column_holds_them(mirror):
    """A status change pulled from Solar Proof reads back from history as integers; a phone as text."""
    sim = mirror.sim
    target = sim.account.ids()[3]
    old = sim.account.get(target)
    new_status = 3 if old["status"] != 3 else 2
    sim.account.set_status(target, new_status)
    sim.account.edit_customer(target, phone2="0400 765 432")
    assert mirror.sync() == EXIT_OK
    assert typed_history(mirror.db, target, "fkcustomerstatusid") == [
        (old["status"], "integer", new_status, "integer", "remote")]
    assert typed_history(mirror.db, target, "customerphone2") == [
        (old["phone2"] or None, "text" if old["phone2"] else "null", "0400 765 432", "text", "remote")]


def test_a_pushed_edit_is_kept_in_history_and_in_unconfirmed_writes_as_integers(mirror):
    """An edit of type pushed from SQL is history 1 -> 2 as integers, and waits in unconfirmed_writes as an
    integer until a read confirms it."""
    target = mirror.sim.account.ids()[5]
    old_type = scalar(mirror.db, "SELECT fkcustomertypeid FROM customers WHERE pkcustomerid = ?", (target,))
    new_type = 2 if old_type != 2 else 3
    edit(mirror.db, f"UPDATE customers SET fkcustomertypeid = {new_type} WHERE pkcustomerid = {target}")
    assert mirror.sync(pull=False) == EXIT_OK
    assert typed_history(mirror.db, target, "fkcustomertypeid") == [
        (old_type, "integer", new_type, "integer", "local")]
    assert query(mirror.db, "SELECT sent_value, typeof(sent_value) AS kind FROM unconfirmed_writes "
                            "WHERE pkcustomerid = ?", (target,)) == [{"sent_value": new_type, "kind": "integer"}]
    assert mirror.sync() == EXIT_OK  # the pull confirms it
    assert scalar(mirror.db, "SELECT count(*) FROM unconfirmed_writes") == 0


def test_a_value_solar_proof_did_not_take_is_named_as_a_number(mirror):
    """When Solar Proof ignores a type change, the row's error names the numbers (sent 2, it holds 1, not '2'),
    and history keeps them as integers."""
    target = mirror.sim.account.ids()[7]
    old_type = scalar(mirror.db, "SELECT fkcustomertypeid FROM customers WHERE pkcustomerid = ?", (target,))
    new_type = 2 if old_type != 2 else 3
    mirror.sim.quirks.update(ignored_fields=("type",))
    edit(mirror.db, f"UPDATE customers SET fkcustomertypeid = {new_type} WHERE pkcustomerid = {target}")
    assert mirror.sync() == EXIT_OK
    row = query(mirror.db, "SELECT sync_state, sync_error FROM customers WHERE pkcustomerid = ?", (target,))[0]
    assert row["sync_state"] == "error"
    assert f"fkcustomertypeid: sent {new_type}, it holds {old_type}" in row["sync_error"], row["sync_error"]
    history = typed_history(mirror.db, target, "fkcustomertypeid")
    assert history[0] == (old_type, "integer", new_type, "integer", "local")
    assert (new_type, "integer", old_type, "integer", "local (not taken by Solar Proof)") in history
