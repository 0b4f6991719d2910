"""The push through the real `spmirror` command: resolve, retry, dry runs, one-sided syncs, status, and a SIGKILL.

Edits are made from separate processes (tests/backends.py); setup syncs run in-process to keep the
suite fast, and every command under test runs as `python -m mirror` in a subprocess. Every test
runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import API_KEY
from mirror.commands.sync import sync_once
from mirror.config import load_settings
from mirror.simulator.server import SimulatorServer
from backends import MirrorDatabase, sql_text

CUSTOMERS = 120
SEED = 31
WRITE_ACTIONS = {"createcustomer", "updatecustomer", "deletecustomer"}


class CliMirror:
    """A simulator, a mirror synced from it, and the environment for `spmirror` subprocesses."""

    def __init__(self, sim: SimulatorServer, home: Path, db: MirrorDatabase, **env: str):
        self.sim, self.home = sim, home
        self.db = db
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("SPMIRROR_") and k not in ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY",
                                                                   "CONFIGURATION_DIRECTORY")}
        self.env.update(XDG_CONFIG_HOME=str(home / "xdg"), SPMIRROR_API_URL=sim.url,
                        SPMIRROR_API_KEY=sim.api_key, SPMIRROR_DB=db.url, SPMIRROR_LOGGING_LEVEL="warning",
                        **env)

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """`spmirror ARGS` in a subprocess."""
        return subprocess.run([sys.executable, "-m", "mirror", *args], env=self.env, cwd=self.home,
                              capture_output=True, text=True, timeout=timeout)

    def sync_in_process(self) -> int:
        settings = load_settings(env={k: v for k, v in self.env.items() if k.startswith("SPMIRROR_")})
        return sync_once(settings)[0]

    def mark(self) -> int:
        return len(self.sim.account.write_log())

    def sent_since(self, mark: int) -> list[dict]:
        return [e for e in self.sim.account.write_log()[mark:] if e["action"] in WRITE_ACTIONS]


@pytest.fixture
def server():
    with SimulatorServer(customers=CUSTOMERS, seed=SEED, api_key=API_KEY) as sim:
        yield sim


@pytest.fixture
def cli(server, tmp_path, mirror_db) -> CliMirror:
    """`server` mirrored once (in-process) into a fresh database of the test's backend."""
    m = CliMirror(server, tmp_path, mirror_db)
    assert m.sync_in_process() == 0
    return m


# A person's edits and the test's reads go through the database's own client (tests/backends.py).
def edit(db: MirrorDatabase, *statements: str) -> None:
    db.edit(*statements)


def query(db: MirrorDatabase, sql: str, params: tuple = ()) -> list[dict]:
    return db.query(sql, params)


def scalar(db: MirrorDatabase, sql: str, params: tuple = ()):
    return db.scalar(sql, params)


def row_of(db: MirrorDatabase, remote_id: int) -> dict | None:
    return db.row_of(remote_id)


def unique_email(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}@example.com.au"


def insert_new(db: MirrorDatabase, email: str) -> None:
    edit(db, "INSERT INTO customers (customerfirstname, customersurname, customeremail, customerphone1, "
             f"fkcustomertypeid) VALUES ('Kevin', 'Koala', {sql_text(email)}, '0400 555 666', 1)")


def conflict(m: CliMirror, target: int, local: str, remote: str) -> None:
    """phone2 changed here (another process) and in Solar Proof, then synced into a conflict."""
    edit(m.db, f"UPDATE customers SET customerphone2 = {sql_text(local)} WHERE pkcustomerid = {target}")
    m.sim.account.edit_customer(target, phone2=remote)
    assert m.sync_in_process() == 0
    assert row_of(m.db, target)["sync_state"] == "conflict"


# -- 3. a create interrupted by SIGKILL ----------------------------------------------------


def test_sigkill_during_a_create_is_adopted_not_duplicated(cli):
    """A sync killed while its createcustomer is in flight leaves the create to be adopted by the next sync, never re-sent."""
    sim, db = cli.sim, cli.db
    email = unique_email("killed")
    insert_new(db, email)
    sim.faults.script("stall", action="createcustomer", stall_seconds=60)
    mark = cli.mark()
    proc = subprocess.Popen([sys.executable, "-m", "mirror", "sync", "--push-only"], env=cli.env, cwd=cli.home,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not [e for e in cli.sent_since(mark) if e["action"] == "createcustomer"]:
            assert time.monotonic() < deadline, "the create was never sent"
            assert proc.poll() is None, "spmirror exited before sending the create"
            time.sleep(0.01)
        # The intent was committed before the POST went out.
        assert query(db, "SELECT email FROM create_intents") == [{"email": email}]
    finally:
        proc.kill()  # SIGKILL: no cleanup of any kind in the killed process
        proc.wait(timeout=30)
    assert proc.returncode == -9
    [new_id] = [r["id"] for r in sim.account.snapshot()["customers"] if r["email"] == email]
    assert row_of(db, new_id) is None

    sim.faults.reset()
    result = cli.run("sync")
    assert result.returncode == 0, result.stderr
    assert [r["id"] for r in sim.account.snapshot()["customers"] if r["email"] == email] == [new_id]
    assert [e["action"] for e in cli.sent_since(mark)] == ["createcustomer"]
    rows = query(db, "SELECT pkcustomerid, sync_state FROM customers WHERE customeremail = ?", (email,))
    assert rows == [{"pkcustomerid": new_id, "sync_state": "synced"}]
    assert scalar(db, "SELECT count(*) FROM create_intents") == 0
    created = query(db, "SELECT source, new_value FROM customer_changes WHERE pkcustomerid = ? "
                        "AND field = '(created)'", (new_id,))
    assert created == [{"source": "local (adopted)", "new_value": email}]


# -- 4. resolving conflicts ---------------------------------------------------------------


def test_resolve_take_local_then_take_remote(cli):
    """`resolve --take local` makes the next sync push the local value; `--take remote` puts the remote value back."""
    sim, db = cli.sim, cli.db
    target = sim.account.ids()[10]
    mark = cli.mark()
    conflict(cli, target, "0411 000 001", "0422 000 001")
    assert cli.sent_since(mark) == []

    result = cli.run("resolve", str(target), "--take", "local")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "queued" in result.stdout
    assert row_of(db, target)["sync_state"] == "pending"
    assert scalar(db, "SELECT count(*) FROM customer_conflicts") == 0
    result = cli.run("sync")
    assert result.returncode == 0, result.stderr
    sent = cli.sent_since(mark)
    assert len(sent) == 1 and sent[0]["body"]["data"]["phone2"] == "0411 000 001"
    assert sim.account.get(target)["phone2"] == "0411 000 001"
    assert row_of(db, target)["sync_state"] == "synced"

    # A second conflict on the same row, settled the other way.
    conflict(cli, target, "0411 000 002", "0422 000 002")
    result = cli.run("resolve", str(target), "--take", "remote")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "customerphone2" in result.stdout
    row = row_of(db, target)
    assert row["customerphone2"] == "0422 000 002" and row["sync_state"] in ("pending", "synced")
    result = cli.run("sync")
    assert result.returncode == 0, result.stderr
    assert len(cli.sent_since(mark)) == 1
    assert sim.account.get(target)["phone2"] == "0422 000 002"
    row = row_of(db, target)
    assert row["customerphone2"] == "0422 000 002" and row["sync_state"] == "synced" and row["sync_error"] is None
    assert scalar(db, "SELECT count(*) FROM customer_conflicts") == 0
    assert query(db, "SELECT old_value, new_value FROM customer_changes WHERE pkcustomerid = ? "
                     "AND source = 'local (resolved: take remote)'", (target,)) == [
        {"old_value": "0411 000 002", "new_value": "0422 000 002"}]


def test_resolve_of_a_synced_row_exits_2(cli):
    """`resolve` of a row that is neither in conflict nor in error says so and exits 2, changing nothing."""
    target = cli.sim.account.ids()[11]
    result = cli.run("resolve", str(target), "--take", "remote")
    assert result.returncode == 2
    assert "only rows in conflict or error" in result.stderr and result.stdout == ""
    assert row_of(cli.db, target)["sync_state"] == "synced"


# -- 5. resolving a read-only edit ----------------------------------------------------------


def test_resolve_take_remote_restores_a_read_only_column(cli):
    """`resolve --take remote` on a row in error for a read-only edit restores the remote value and nothing is sent."""
    sim, db = cli.sim, cli.db
    target = sim.account.ids()[20]
    status = row_of(db, target)["fkcustomerstatusid"]
    edit(db, f"UPDATE customers SET fkcustomerstatusid = {(status + 1) % 4} WHERE pkcustomerid = {target}")
    mark = cli.mark()
    assert cli.sync_in_process() == 0
    assert row_of(db, target)["sync_state"] == "error"
    result = cli.run("resolve", str(target), "--take", "remote")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "fkcustomerstatusid" in result.stdout
    assert row_of(db, target)["fkcustomerstatusid"] == status
    result = cli.run("sync")
    assert result.returncode == 0, result.stderr
    row = row_of(db, target)
    assert row["fkcustomerstatusid"] == status == sim.account.get(target)["status"]
    assert row["sync_state"] == "synced" and row["sync_error"] is None
    assert cli.sent_since(mark) == []


# -- 6. retry -----------------------------------------------------------------------------


def test_retry_all_requeues_rows_in_error(cli):
    """`retry --all` sets every row in error (new rows included) back to pending; the next sync validates them again."""
    sim, db = cli.sim, cli.db
    ids = sim.account.ids()
    edit(db, f"UPDATE customers SET customeremail = 'nope' WHERE pkcustomerid = {ids[30]}",
         f"UPDATE customers SET customergstregistered = 5 WHERE pkcustomerid = {ids[31]}",
         "INSERT INTO customers (customerfirstname, customeremail) VALUES ('Half', 'half@example.com.au')")
    mark = cli.mark()
    assert cli.sync_in_process() == 0
    assert scalar(db, "SELECT count(*) FROM customers WHERE sync_state = 'error'") == 3

    result = cli.run("retry")
    assert result.returncode == 2 and "--all" in result.stdout
    result = cli.run("retry", "--all")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "3 row(s) requeued" in result.stdout
    assert query(db, "SELECT sync_state, sync_error FROM customers WHERE sync_state != 'synced'") == [
        {"sync_state": "pending", "sync_error": None}] * 3
    # Still invalid: the next sync flags them again and sends nothing.
    result = cli.run("sync")
    assert result.returncode == 0, result.stderr
    assert scalar(db, "SELECT count(*) FROM customers WHERE sync_state = 'error'") == 3
    assert cli.sent_since(mark) == []

    # Requeued by id, only that row is pending; fixed with SQL, it is sent.
    result = cli.run("retry", str(ids[30]))
    assert result.returncode == 0 and "1 row(s) requeued" in result.stdout
    assert row_of(db, ids[30])["sync_state"] == "pending" and row_of(db, ids[31])["sync_state"] == "error"
    edit(db, f"UPDATE customers SET customeremail = 'yes@example.com.au' WHERE pkcustomerid = {ids[30]}")
    assert cli.run("sync").returncode == 0
    sent = cli.sent_since(mark)
    assert len(sent) == 1 and sent[0]["body"]["data"]["email"] == "yes@example.com.au"
    assert sim.account.get(ids[30])["email"] == "yes@example.com.au"
    assert row_of(db, ids[30])["sync_state"] == "synced"


# -- 7. the delete guard through the command ------------------------------------------------


def test_sync_refuses_to_push_a_mass_local_delete_with_exit_4(server, tmp_path, mirror_db):
    """`spmirror sync` with push_deletes on exits 4 after a local DELETE of every row, sending nothing."""
    m = CliMirror(server, tmp_path, mirror_db, SPMIRROR_SYNC_PUSH_DELETES="true")
    assert m.sync_in_process() == 0
    edit(m.db, "DELETE FROM customers")
    mark = m.mark()
    result = m.run("sync")
    assert result.returncode == 4
    assert "refusing to delete" in result.stderr and "--allow-mass-delete" in result.stderr
    assert m.sent_since(mark) == []
    assert len(server.account.ids()) == CUSTOMERS


# -- 10. dry run and one-sided syncs --------------------------------------------------------


def test_dry_run_prints_the_planned_calls_and_performs_none(cli):
    """`sync --dry-run` prints each planned updatecustomer and createcustomer and sends, writes and records nothing."""
    sim, db = cli.sim, cli.db
    target = sim.account.ids()[40]
    email = unique_email("dry")
    edit(db, f"UPDATE customers SET customerphone2 = '0477 000 111' WHERE pkcustomerid = {target}")
    insert_new(db, email)
    new_local = scalar(db, "SELECT id FROM customers WHERE customeremail = ?", (email,))
    runs = scalar(db, "SELECT count(*) FROM sync_runs")
    mark = cli.mark()
    result = cli.run("sync", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "Dry run: nothing was written" in result.stdout
    assert f"would updatecustomer {target}: customerphone2" in result.stdout
    assert f"would createcustomer for row {new_local} ({email})" in result.stdout
    assert sim.account.write_log()[mark:] == []
    assert row_of(db, target)["sync_state"] == "pending"
    assert query(db, "SELECT pkcustomerid, sync_state FROM customers WHERE customeremail = ?", (email,)) == [
        {"pkcustomerid": None, "sync_state": "pending"}]
    assert scalar(db, "SELECT count(*) FROM sync_runs") == runs
    assert scalar(db, "SELECT count(*) FROM create_intents") == 0

    # The real sync then does what the dry run announced.
    assert cli.run("sync").returncode == 0
    assert sorted(e["action"] for e in cli.sent_since(mark)) == ["createcustomer", "updatecustomer"]


def test_push_only_sends_without_walking_and_pull_only_walks_without_sending(cli):
    """`--push-only` sends the edit and fetches no page; `--pull-only` fetches pages and sends nothing."""
    sim, db = cli.sim, cli.db
    target, other = sim.account.ids()[50], sim.account.ids()[51]
    edit(db, f"UPDATE customers SET customerphone2 = '0488 000 111' WHERE pkcustomerid = {target}")
    sim.account.edit_customer(other, last_name="Numbat")
    pages = sim.account.call_counts().get("getallcustomers", 0)
    mark = cli.mark()
    result = cli.run("sync", "--push-only")
    assert result.returncode == 0, result.stderr
    assert sim.account.call_counts().get("getallcustomers", 0) == pages
    assert [e["action"] for e in cli.sent_since(mark)] == ["updatecustomer"]
    assert sim.account.get(target)["phone2"] == "0488 000 111"
    assert row_of(db, target)["sync_state"] == "synced"
    assert row_of(db, other)["customersurname"] != "Numbat"

    edit(db, f"UPDATE customers SET customerphone2 = '0488 000 222' WHERE pkcustomerid = {target}")
    mark = cli.mark()
    result = cli.run("sync", "--pull-only")
    assert result.returncode == 0, result.stderr
    assert sim.account.call_counts().get("getallcustomers", 0) > pages
    assert cli.sent_since(mark) == []
    assert row_of(db, other)["customersurname"] == "Numbat"
    row = row_of(db, target)
    assert row["customerphone2"] == "0488 000 222" and row["sync_state"] == "pending"
    assert sim.account.get(target)["phone2"] == "0488 000 111"


# -- 11. status ---------------------------------------------------------------------------


def test_status_lists_rows_in_conflict_error_and_pending_with_their_messages(cli):
    """`spmirror status` (text and --json) lists conflict, error and pending rows with their messages."""
    sim, db = cli.sim, cli.db
    ids = sim.account.ids()
    in_conflict, in_error, pending = ids[60], ids[61], ids[62]
    edit(db, f"UPDATE customers SET customerabn = '11 222 333 444' WHERE pkcustomerid = {in_error}")
    conflict(cli, in_conflict, "0411 999 001", "0422 999 001")
    assert row_of(db, in_error)["sync_state"] == "error"
    edit(db, f"UPDATE customers SET customercompanyname = 'Pending Pty Ltd' WHERE pkcustomerid = {pending}")

    result = cli.run("status")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "rows not synced" in text
    assert "conflict 1" in text and "error 1" in text and "pending 1" in text
    lines = {state: next(line for line in text.splitlines() if line.strip().startswith(f"{state} ") and str(rid) in line)
             for state, rid in (("conflict", in_conflict), ("error", in_error), ("pending", pending))}
    assert "customerphone2" in lines["conflict"] and "customer_conflicts" in lines["conflict"]
    assert "customerabn" in lines["error"] and "read-only" in lines["error"]
    assert "waiting to be pushed" in lines["pending"]

    result = cli.run("status", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    rows = {r["pkcustomerid"]: r for r in summary["rows_needing_attention"]}
    assert set(rows) == {in_conflict, in_error, pending}
    assert rows[in_conflict]["sync_state"] == "conflict"
    assert rows[in_conflict]["conflicting_fields"] == "customerphone2"
    assert "customerphone2" in rows[in_conflict]["sync_error"]
    assert rows[in_error]["sync_state"] == "error" and "customerabn" in rows[in_error]["sync_error"]
    assert rows[pending]["sync_state"] == "pending" and rows[pending]["sync_error"] is None
    assert summary["sync_state"] == {"conflict": 1, "error": 1, "pending": 1, "synced": CUSTOMERS - 3}


def test_status_lists_an_unpushed_new_row(cli):
    """A row inserted locally and not yet created shows in status as a new row with its local id."""
    email = unique_email("status")
    insert_new(cli.db, email)
    local_id = scalar(cli.db, "SELECT id FROM customers WHERE customeremail = ?", (email,))
    result = cli.run("status")
    assert result.returncode == 0, result.stderr
    assert any(f"new row {local_id}" in line and email in line for line in result.stdout.splitlines())
    summary = json.loads(cli.run("status", "--json").stdout)
    assert [r for r in summary["rows_needing_attention"] if r["local_id"] == local_id][0]["pkcustomerid"] is None
