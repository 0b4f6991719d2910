"""Identity: every row stays tied to the right customer of the right account, and no row claims what
Solar Proof does not hold.

Each test reproduces a situation real accounts produce, against the simulator over HTTP, with real
SQLite files edited from other processes, and the `spmirror` command where that is what people run.
Most run twice: with the undocumented `getcustomer` action, and on a server that lacks it.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import API_KEY
from mirror.api import SolarProofClient
from mirror.exit_codes import EXIT_OK
from mirror.simulator.server import SimulatorServer
from mirror.store import Store
from mirror.store import local_changes
from sqlite_edit import edit, query, row_of, scalar, sql_text
from test_push import Mirror, history, insert_sql, new_customer, sim_ids_with_email, unique_email

CUSTOMERS = 120
SEED = 41
BY_ID = pytest.mark.parametrize("reads_by_id", [True, False], ids=["getcustomer", "no-getcustomer"])


def make(tmp_path: Path, reads_by_id: bool = True, seed: int = SEED, key: str = API_KEY, **env: str):
    """A started simulator and a mirror synced from it (the caller stops the simulator)."""
    sim = SimulatorServer(customers=CUSTOMERS, seed=seed, api_key=key).start()
    sim.quirks.update(getcustomer=reads_by_id)
    m = Mirror(sim, tmp_path / "mirror.db", **env)
    assert m.sync()[0] == EXIT_OK
    return m


@pytest.fixture
def mirror(request, tmp_path):
    m = make(tmp_path, getattr(request, "param", True))
    yield m
    m.sim.stop()


def creates_of(m: Mirror, mark: int) -> list[dict]:
    return [e for e in m.sent_since(mark) if e["action"] == "createcustomer"]


def spmirror(env: dict[str, str], *args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SPMIRROR_")}
    return subprocess.run([sys.executable, "-m", "mirror", *args], env={**base, "SPMIRROR_LOGGING_LEVEL": "warning",
                          **env}, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def env_for(sim: SimulatorServer, db: Path, key: str | None = None) -> dict[str, str]:
    return {"SPMIRROR_API_URL": sim.url, "SPMIRROR_API_KEY": key or sim.api_key, "SPMIRROR_DB": str(db)}


def contents(db: Path) -> list[str]:
    """Everything the file holds, as SQL text (the same file, byte for byte in meaning)."""
    con = sqlite3.connect(db)
    try:
        return list(con.iterdump())
    finally:
        con.close()


# -- 1. another account -----------------------------------------------------------------------


def test_a_copy_pointed_at_another_account_sends_nothing_and_changes_nothing(tmp_path):
    """A copy of a mirror with a pending INSERT and edits, pointed at another account (URL and key), exits 2 from
    `spmirror sync`, `sync --dry-run` and `spmirror run`, naming both URLs; that account receives no call at all,
    and the file is unchanged."""
    m = make(tmp_path / "a")
    other = SimulatorServer(customers=CUSTOMERS, seed=SEED + 1, api_key="sk-OTHER-" + "9" * 28).start()
    try:
        ids = m.sim.account.ids()
        edit(m.db, insert_sql(**new_customer(unique_email("copy"))),
             *(f"UPDATE customers SET customerphone2 = '0499 000 00{i}' WHERE pkcustomerid = {ids[i]}"
               for i in range(5)))
        copy = tmp_path / "copy" / "mirror.db"
        copy.parent.mkdir()
        shutil.copy(m.db, copy)
        before = contents(copy)
        env = env_for(other, copy)
        for args in (("sync",), ("sync", "--dry-run"), ("run",)):
            result = spmirror(env, *args, cwd=tmp_path)
            assert result.returncode == 2, (args, result.stderr)
            assert m.sim.url in result.stderr and other.url in result.stderr, result.stderr
            assert "spmirror rekey" in result.stderr and "SPMIRROR_DB" in result.stderr
            assert "Traceback" not in result.stderr
        assert other.account.call_counts() == {} and other.account.write_log() == []
        assert contents(copy) == before
        # The same URL with another key is another account too, until `spmirror rekey` says otherwise.
        result = spmirror(env_for(m.sim, copy, key="sk-ROTATED-" + "1" * 26), "sync", cwd=tmp_path)
        assert result.returncode == 2 and "another key" in result.stderr, result.stderr
        assert contents(copy) == before
    finally:
        other.stop()
        m.sim.stop()


def test_rekey_takes_a_new_key_of_the_same_account_and_refuses_another(tmp_path):
    """The same account behind a new URL and key: sync refuses, `spmirror rekey` checks the listing and re-pins, and
    the pending edit then reaches it. Rekey towards a different account (same ids, other people) exits 2."""
    m = make(tmp_path)
    moved = SimulatorServer(customers=CUSTOMERS, seed=SEED, api_key="sk-NEWKEY-" + "2" * 27).start()
    stranger = SimulatorServer(customers=CUSTOMERS, seed=SEED + 7, api_key="sk-STRANGER-" + "3" * 25).start()
    try:
        target = m.sim.account.ids()[3]
        edit(m.db, f"UPDATE customers SET customerphone2 = '0488 777 666' WHERE pkcustomerid = {target}")
        assert spmirror(env_for(moved, m.db), "sync", cwd=tmp_path).returncode == 2

        refused = spmirror(env_for(stranger, m.db), "rekey", cwd=tmp_path)
        assert refused.returncode == 2 and f"0 of the {CUSTOMERS} customers" in refused.stderr, refused.stderr
        assert stranger.account.write_log() == []
        assert query(m.db, "SELECT api_url FROM mirror_account") == [{"api_url": m.sim.url}]

        accepted = spmirror(env_for(moved, m.db), "rekey", cwd=tmp_path)
        assert accepted.returncode == 0, accepted.stderr
        assert f"{CUSTOMERS} of {CUSTOMERS}" in accepted.stdout and moved.url in accepted.stdout
        assert moved.account.write_log() == []  # a rekey only reads
        synced = spmirror(env_for(moved, m.db), "sync", cwd=tmp_path)
        assert synced.returncode == 0, synced.stderr
        assert moved.account.get(target)["phone2"] == "0488 777 666"
        assert spmirror(env_for(m.sim, m.db), "sync", cwd=tmp_path).returncode == 2  # the old settings now refused
    finally:
        moved.stop()
        stranger.stop()
        m.sim.stop()


# -- 2. shared emails, both answers lost -----------------------------------------------------


@pytest.mark.parametrize("mirror", [True, False], ids=["getcustomer", "no-getcustomer"], indirect=True)
def test_two_new_rows_sharing_an_email_with_both_answers_lost_each_get_their_own_customer(mirror):
    """Two INSERTs with one email, both create answers lost: each row is tied to the customer made from it (by every
    field sent), no customer is created twice, and no extra row appears."""
    m = mirror
    email = unique_email("shared")
    edit(m.db, insert_sql(**{**new_customer(email), "customerfirstname": "Ann"}),
         insert_sql(**{**new_customer(email), "customerfirstname": "Bob"}))
    m.sim.faults.script("lost_create", count=2)
    mark = m.mark()
    code, report = m.sync()
    assert code == EXIT_OK and report.push.unknown == 2 and report.adopted == 2
    for _ in range(2):
        assert m.sync()[0] == EXIT_OK
    assert len(creates_of(m, mark)) == 2
    made = sorted(sim_ids_with_email(m.sim, email))
    assert len(made) == 2
    rows = query(m.db, "SELECT pkcustomerid, customerfirstname, sync_state FROM customers WHERE customeremail = ? "
                       "ORDER BY customerfirstname", (email,))
    assert [(r["customerfirstname"], r["sync_state"]) for r in rows] == [("Ann", "synced"), ("Bob", "synced")]
    for row in rows:
        assert m.sim.account.get(row["pkcustomerid"])["first_name"] == row["customerfirstname"]
    assert scalar(m.db, "SELECT count(*) FROM create_intents") == 0


def test_two_identical_creates_with_lost_answers_are_never_guessed(mirror, tmp_path):
    """Two rows typed alike (same person twice), both answers lost: two customers equal what each sent, so nothing is
    guessed. Both rows go to 'error' naming both candidates; `spmirror resolve ROW --adopt ID` settles each."""
    m = mirror
    email = unique_email("twins")
    edit(m.db, insert_sql(**new_customer(email)), insert_sql(**new_customer(email)))
    rows = [r["id"] for r in query(m.db, "SELECT id FROM customers WHERE customeremail = ? ORDER BY id", (email,))]
    m.sim.faults.script("lost_create", count=2)
    code, report = m.sync()
    assert code == EXIT_OK and report.adopted == 0 and report.unsettled_creates == 2
    made = sorted(sim_ids_with_email(m.sim, email))
    assert len(made) == 2
    for local_id in rows:
        row = query(m.db, "SELECT * FROM customers WHERE id = ?", (local_id,))[0]
        assert row["pkcustomerid"] is None and row["sync_state"] == "error"
        assert all(str(i) in row["sync_error"] for i in made)
    for local_id, remote_id in zip(rows, made):
        result = spmirror(env_for(m.sim, m.db), "resolve", str(local_id), "--adopt", str(remote_id), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    assert m.sync()[0] == EXIT_OK
    assert query(m.db, "SELECT id, pkcustomerid, sync_state FROM customers WHERE customeremail = ? ORDER BY id",
                 (email,)) == [{"id": rows[0], "pkcustomerid": made[0], "sync_state": "synced"},
                               {"id": rows[1], "pkcustomerid": made[1], "sync_state": "synced"}]
    assert sorted(sim_ids_with_email(m.sim, email)) == made


# -- 3. a create that never arrived ----------------------------------------------------------


@pytest.mark.parametrize("mirror", [True, False], ids=["getcustomer", "no-getcustomer"], indirect=True)
def test_a_create_that_never_arrived_is_not_matched_to_a_colleagues_customer(mirror, tmp_path):
    """A create dropped before Solar Proof got it; a colleague then adds another person with the same email. The
    row is never tied to the colleague's customer: it goes to 'error' naming it as a candidate, the colleague's
    customer arrives as its own row, and `spmirror resolve ROW --create-again` creates the row's customer once."""
    m = mirror
    email = unique_email("neverarrived")
    edit(m.db, insert_sql(**{**new_customer(email), "customerfirstname": "Mine"}))
    local_id = scalar(m.db, "SELECT id FROM customers WHERE customeremail = ?", (email,))
    m.sim.faults.script("drop", action="createcustomer")
    mark = m.mark()
    assert m.sync(pull=False)[0] == EXIT_OK
    assert sim_ids_with_email(m.sim, email) == []  # it never arrived
    colleague = m.sim.account.create_customer(first_name="Theirs", last_name="Other", email=email)
    code, report = m.sync()
    assert code == EXIT_OK and report.unsettled_creates == 1 and report.adopted == 0
    mine = query(m.db, "SELECT * FROM customers WHERE id = ?", (local_id,))[0]
    assert mine["pkcustomerid"] is None and mine["sync_state"] == "error"
    assert str(colleague) in mine["sync_error"] and "--create-again" in mine["sync_error"]
    assert row_of(m.db, colleague)["customerfirstname"] == "Theirs"  # their customer, their row
    assert m.sync()[0] == EXIT_OK and len(creates_of(m, mark)) == 1  # nothing is guessed or re-sent meanwhile

    result = spmirror(env_for(m.sim, m.db), "resolve", str(local_id), "--create-again", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert m.sync()[0] == EXIT_OK
    made = [i for i in sim_ids_with_email(m.sim, email) if i != colleague]
    assert len(made) == 1 and m.sim.account.get(made[0])["first_name"] == "Mine"
    assert query(m.db, "SELECT pkcustomerid, sync_state FROM customers WHERE id = ?", (local_id,)) == [
        {"pkcustomerid": made[0], "sync_state": "synced"}]
    assert m.sim.account.get(colleague)["first_name"] == "Theirs"


def test_a_create_that_never_arrived_is_sent_again_after_two_walks(mirror):
    """With nothing in Solar Proof that could be it, a create whose answer was lost is sent again after two complete
    walks, and exactly one customer exists."""
    m = mirror
    email = unique_email("resend")
    edit(m.db, insert_sql(**new_customer(email)))
    m.sim.faults.script("drop", action="createcustomer")
    mark = m.mark()
    for _ in range(3):
        assert m.sync()[0] == EXIT_OK
    assert [e["applied"] for e in creates_of(m, mark)] == [False, True]
    [made] = sim_ids_with_email(m.sim, email)
    assert query(m.db, "SELECT pkcustomerid, sync_state FROM customers WHERE customeremail = ?", (email,)) == [
        {"pkcustomerid": made, "sync_state": "synced"}]


def test_a_near_miss_is_settled_by_hand_with_adopt(mirror, tmp_path):
    """A lost answer, then a colleague edits the new customer before the walk: it no longer equals what was sent, so
    the row waits in 'error'; `spmirror resolve ROW --adopt ID` ties them, and the colleague's change is pulled."""
    m = mirror
    email = unique_email("nearmiss")
    edit(m.db, insert_sql(**new_customer(email)))
    local_id = scalar(m.db, "SELECT id FROM customers WHERE customeremail = ?", (email,))
    m.sim.faults.script("lost_create")
    mark = m.mark()
    assert m.sync(pull=False)[0] == EXIT_OK
    [made] = sim_ids_with_email(m.sim, email)
    m.sim.account.edit_customer(made, phone1="0400 999 888")
    assert m.sync()[0] == EXIT_OK
    row = query(m.db, "SELECT * FROM customers WHERE id = ?", (local_id,))[0]
    assert row["sync_state"] == "error" and str(made) in row["sync_error"]

    bad = spmirror(env_for(m.sim, m.db), "resolve", str(local_id), "--adopt", "99999999", cwd=tmp_path)
    assert bad.returncode == 2 and "not in the mirror" in bad.stderr and "Traceback" not in bad.stderr
    result = spmirror(env_for(m.sim, m.db), "resolve", str(local_id), "--adopt", str(made), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert m.sync()[0] == EXIT_OK
    assert query(m.db, "SELECT id, customerphone1, sync_state FROM customers WHERE pkcustomerid = ?", (made,)) == [
        {"id": local_id, "customerphone1": "0400 999 888", "sync_state": "synced"}]
    assert scalar(m.db, "SELECT count(*) FROM customers WHERE customeremail = ?", (email,)) == 1
    assert len(creates_of(m, mark)) == 1 and sim_ids_with_email(m.sim, email) == [made]


# -- 4. a correction after a lost answer -----------------------------------------------------


@pytest.mark.parametrize("mirror", [True, False], ids=["getcustomer", "no-getcustomer"], indirect=True)
def test_a_correction_typed_after_a_lost_answer_is_pushed_not_reverted(mirror):
    """A create's answer is lost, then the phone is corrected: the adopted customer's base is what was sent, so the
    correction goes to Solar Proof as an update and the row ends synced with it."""
    m = mirror
    email = unique_email("correction")
    edit(m.db, insert_sql(**new_customer(email)))
    m.sim.faults.script("lost_create")
    assert m.sync(pull=False)[0] == EXIT_OK
    [made] = sim_ids_with_email(m.sim, email)
    edit(m.db, f"UPDATE customers SET customerphone1 = '0400 222 333' WHERE customeremail = {sql_text(email)}")
    code, report = m.sync()
    assert code == EXIT_OK and report.adopted == 1
    assert row_of(m.db, made)["customerphone1"] == "0400 222 333"  # kept, never reverted by the adoption
    assert m.sync()[0] == EXIT_OK
    assert m.sim.account.get(made)["phone1"] == "0400 222 333"
    assert row_of(m.db, made)["sync_state"] == "synced"
    assert {"field": "customerphone1", "old_value": "0400 123 456", "new_value": "0400 222 333",
            "source": "local"} in history(m.db, made)


# -- 5. a server that ignores a field --------------------------------------------------------


@pytest.mark.parametrize("mirror", [True, False], ids=["getcustomer", "no-getcustomer"], indirect=True)
def test_a_field_solar_proof_ignores_leaves_the_row_in_error_with_both_values(mirror, tmp_path):
    """The server answers success but keeps its old phone2: the row becomes 'error' naming the field and both values,
    keeps the local value, records it in history, sends nothing more on later syncs, and is sent again by
    `spmirror retry` once the server takes it."""
    m = mirror
    target = next(i for i in m.sim.account.ids() if m.sim.account.get(i)["phone2"])
    held = m.sim.account.get(target)["phone2"]
    m.sim.quirks.update(ignored_fields=("phone2",))
    edit(m.db, f"UPDATE customers SET customerphone2 = '0411 000 111' WHERE pkcustomerid = {target}")
    mark = m.mark()
    code, report = m.sync()
    assert code == EXIT_OK and report.not_taken == 1
    row = row_of(m.db, target)
    assert row["sync_state"] == "error" and row["customerphone2"] == "0411 000 111"
    assert "customerphone2" in row["sync_error"] and "0411 000 111" in row["sync_error"]
    assert repr(held) in row["sync_error"]
    assert {"field": "customerphone2", "old_value": "0411 000 111", "new_value": held,
            "source": "local (not taken by Solar Proof)"} in history(m.db, target)
    assert m.sync()[0] == EXIT_OK and len(m.sent_since(mark)) == 1  # reported once, never looped
    assert row_of(m.db, target)["sync_state"] == "error"

    m.sim.quirks.update(ignored_fields=())
    result = spmirror(env_for(m.sim, m.db), "retry", str(target), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert m.sync()[0] == EXIT_OK
    assert m.sim.account.get(target)["phone2"] == "0411 000 111"
    assert row_of(m.db, target)["sync_state"] == "synced"


def test_an_empty_value_the_server_does_not_clear_is_not_called_synced(mirror):
    """Clearing a company name, on a server where "" does not clear a field, ends in 'error', not 'synced'."""
    m = mirror
    target = next(i for i in m.sim.account.ids() if m.sim.account.get(i)["company_name"])
    m.sim.quirks.update(empty_clears=False)
    edit(m.db, f"UPDATE customers SET customercompanyname = NULL WHERE pkcustomerid = {target}")
    assert m.sync()[0] == EXIT_OK
    row = row_of(m.db, target)
    assert row["sync_state"] == "error" and "customercompanyname" in row["sync_error"]
    assert row["customercompanyname"] is None


def test_a_create_whose_field_is_ignored_is_not_called_synced(mirror):
    """A create answered with an id whose phone2 Solar Proof did not store is 'error' after the sync, not 'synced'."""
    m = mirror
    m.sim.quirks.update(ignored_fields=("phone2",))
    email = unique_email("ignoredcreate")
    edit(m.db, insert_sql(**new_customer(email), customerphone2="0433 444 555"))
    code, report = m.sync()
    assert code == EXIT_OK and report.push.created == 1
    [made] = sim_ids_with_email(m.sim, email)
    row = row_of(m.db, made)
    assert row["sync_state"] == "error" and "customerphone2" in row["sync_error"]
    assert row["customerphone2"] == "0433 444 555"


# -- 6. no getcustomer, and an email two customers share -------------------------------------


def test_without_getcustomer_an_edit_of_a_customer_sharing_an_email_is_sent_after_the_walk(mirror):
    """No getcustomer; two customers share an email and the lookup answers the other one. The edit is not called a
    delete: it waits for the sync's complete walk, then goes out merged with a change Solar Proof made meanwhile,
    and one more walk confirms Solar Proof took it."""
    m = mirror
    m.sim.quirks.update(getcustomer=False)
    first = m.sim.account.ids()[2]
    email = m.sim.account.get(first)["email"]
    second = m.sim.account.create_customer(first_name="Second", last_name="Sharer", email=email, phone2="0422 000 000")
    assert m.sync()[0] == EXIT_OK and row_of(m.db, second) is not None
    edit(m.db, f"UPDATE customers SET customerphone1 = '0400 606 606' WHERE pkcustomerid = {second}")
    m.sim.account.edit_customer(second, phone2="0422 111 222")  # a colleague, meanwhile
    mark = m.mark()
    code, report = m.sync()
    assert code == EXIT_OK and report.push.updated == 1 and report.push.errors == 0
    record = m.sim.account.get(second)
    assert (record["phone1"], record["phone2"]) == ("0400 606 606", "0422 111 222")
    row = row_of(m.db, second)
    # Sent after the walk, it is confirmed by one more walk in the same sync: synced on evidence.
    assert (row["customerphone1"], row["customerphone2"], row["sync_state"]) == (
        "0400 606 606", "0422 111 222", "synced")
    assert scalar(m.db, "SELECT count(*) FROM unconfirmed_writes") == 0
    assert [e["body"]["data"]["pkcustomerid"] for e in m.sent_since(mark)] == [second]
    assert m.sim.account.get(first)["phone1"] != "0400 606 606"


# -- 7. an edit typed while a push re-reads the customer -------------------------------------


class TypingClient(SolarProofClient):
    """A client during whose re-read a person commits another edit to the row (from another process)."""

    def __init__(self, *args, db: Path, statement: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.db, self.statement = db, statement

    def fetch_customer(self, remote_id, email=None):
        found = super().fetch_customer(remote_id, email=email)
        if self.statement:
            edit(self.db, self.statement)
            self.statement = ""
        return found


@pytest.mark.parametrize("policy", ["manual", "remote_wins", "local_wins"])
def test_an_edit_typed_during_a_push_is_never_lost(tmp_path, policy):
    """phone1 changed here and in Solar Proof; while the push re-reads the customer, the person types a newer value.
    Under every policy the newer value stays in the row and reaches Solar Proof (or stays a conflict), never
    silently replaced by the remote value."""
    m = make(tmp_path, SPMIRROR_SYNC_CONFLICT_POLICY=policy)
    try:
        target = m.sim.account.ids()[5]
        edit(m.db, f"UPDATE customers SET customerphone1 = '0400 000 001' WHERE pkcustomerid = {target}")
        m.sim.account.edit_customer(target, phone1="0400 000 002")
        newest = f"UPDATE customers SET customerphone1 = '0400 000 003' WHERE pkcustomerid = {target}"
        with TypingClient(m.sim.url, m.sim.api_key, db=m.db, statement=newest) as client:
            assert m.sync(client=client, pull=False)[0] == EXIT_OK
        row = row_of(m.db, target)
        assert row["customerphone1"] == "0400 000 003"
        if policy == "manual":
            assert row["sync_state"] == "conflict"
            assert query(m.db, "SELECT local_value, remote_value FROM customer_conflicts WHERE pkcustomerid = ?",
                         (target,)) == [{"local_value": "0400 000 003", "remote_value": "0400 000 002"}]
            edit(m.db, f"UPDATE customers SET sync_state = 'pending' WHERE pkcustomerid = {target}")  # take mine
        else:
            assert row["sync_state"] == "pending"
        assert m.sync()[0] == EXIT_OK
        assert m.sim.account.get(target)["phone1"] == "0400 000 003"
        assert row_of(m.db, target)["sync_state"] == "synced"
    finally:
        m.sim.stop()


# -- a first start killed half-way, and reads inside write transactions ------------------------


_KILLED_FIRST_START = r"""
import os, signal, sys
import mirror.store as store
real = store.Store.table_statements
def statements(self):
    for number, statement in enumerate(real(self)):
        if number == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)  # the first start dies with the schema half-made
        yield statement
store.Store.table_statements = statements
store.Store.open(sys.argv[1])
"""


def test_a_first_start_killed_half_way_leaves_a_file_the_next_run_uses(tmp_path):
    """SIGKILL in the middle of creating the schema leaves no half-made schema: the next open creates it whole."""
    path = tmp_path / "mirror.db"
    killed = subprocess.run([sys.executable, "-c", _KILLED_FIRST_START, str(path), "6"], capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    with Store.open(path) as store:
        assert store.count_customers() == 0
        assert store.schema_version >= 2


def test_restoring_a_local_delete_rereads_inside_its_transaction(tmp_path):
    """A row deleted locally and put back by a person before the restore runs is not restored twice (no crash on
    the unique id, nothing duplicated)."""
    m = make(tmp_path)
    try:
        target = m.sim.account.ids()[9]
        edit(m.db, f"DELETE FROM customers WHERE pkcustomerid = {target}")
        with Store.open(m.db) as store:
            [row] = local_changes.iter_deleted_rows(store)
            edit(m.db, f"INSERT INTO customers (pkcustomerid, customerfirstname) VALUES ({target}, 'Back')")
            assert local_changes.restore_deleted(store, row, "run", "now") is False
        assert query(m.db, "SELECT customerfirstname FROM customers WHERE pkcustomerid = ?", (target,)) == [
            {"customerfirstname": "Back"}]
    finally:
        m.sim.stop()
