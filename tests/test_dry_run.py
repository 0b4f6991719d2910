"""`spmirror sync --dry-run` is honest: the same walk, re-reads, guards and refusals as the real run, the
same exit code, every planned write printed, and nothing written here or in Solar Proof."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import API_KEY
from mirror.commands.sync import sync_once
from mirror.config import load_settings
from mirror.simulator.server import SimulatorServer
from mirror.sync.dry_run import shown
from sqlite_edit import edit, scalar
from test_push import insert_sql, new_customer, unique_email
from test_sync import HidingClient

CUSTOMERS = 100


def contents(db: Path) -> list[str]:
    con = sqlite3.connect(db)
    try:
        return list(con.iterdump())
    finally:
        con.close()


class Dry:
    def __init__(self, sim: SimulatorServer, db: Path, cwd: Path):
        self.sim, self.db, self.cwd = sim, db, cwd
        self.env = {"SPMIRROR_API_URL": sim.url, "SPMIRROR_API_KEY": sim.api_key, "SPMIRROR_DB": str(db)}

    def settings(self):
        return load_settings(env=self.env)

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        base = {k: v for k, v in os.environ.items() if not k.startswith("SPMIRROR_")}
        return subprocess.run([sys.executable, "-m", "mirror", *args], cwd=self.cwd, capture_output=True, text=True,
                              env={**base, **self.env, "SPMIRROR_LOGGING_LEVEL": "warning"}, timeout=60)

    def dry_run_changes_nothing(self, *args: str) -> subprocess.CompletedProcess:
        before, writes = contents(self.db), len(self.sim.account.write_log())
        result = self.cli("sync", "--dry-run", *args)
        assert contents(self.db) == before and len(self.sim.account.write_log()) == writes
        assert "Traceback" not in result.stderr
        return result


@pytest.fixture
def dry(tmp_path):
    with SimulatorServer(customers=CUSTOMERS, seed=17, api_key=API_KEY) as sim:
        d = Dry(sim, tmp_path / "mirror.db", tmp_path)
        assert sync_once(d.settings())[0] == 0
        yield d


def test_a_dry_run_refuses_a_mass_delete_with_exit_4_as_the_real_run_does(dry):
    """Half the account gone in Solar Proof: after the first walk marks them, the dry run exits 4 with the guard's
    message (not "delete 50" and exit 0), and so does the real run."""
    for remote_id in dry.sim.account.ids()[: CUSTOMERS // 2]:
        dry.sim.account.delete_customer(remote_id)
    first = dry.dry_run_changes_nothing()
    assert first.returncode == 0, first.stderr
    assert f"would mark {CUSTOMERS // 2} customers missing" in first.stdout
    assert sync_once(dry.settings())[0] == 0  # the real first walk marks them
    result = dry.dry_run_changes_nothing()
    assert result.returncode == 4, result.stderr
    assert "refusing to delete 50 of 100 customers" in result.stderr
    assert "would delete customer" not in result.stdout
    real = dry.cli("sync")
    assert real.returncode == 4 and "refusing to delete" in real.stderr


def test_a_dry_run_deletes_only_what_the_real_run_would(dry):
    """One customer gone, one only hidden from the listing: the dry run names the gone one for deletion and not
    the hidden one (it re-reads by id like the real run), and the real run then deletes exactly that one."""
    gone, hidden = dry.sim.account.ids()[3], dry.sim.account.ids()[-1]
    dry.sim.account.delete_customer(gone)
    for _ in range(2):
        with HidingClient(dry.sim.url, dry.sim.api_key, hidden={hidden}) as client:
            code, report = sync_once(dry.settings(), client=client, dry_run=True)
        assert code == 0
    assert report.deleted_ids == []  # a dry run marks nothing, so nothing is confirmed yet
    with HidingClient(dry.sim.url, dry.sim.api_key, hidden={hidden}) as client:
        assert sync_once(dry.settings(), client=client)[0] == 0  # the real first walk marks both
    with HidingClient(dry.sim.url, dry.sim.api_key, hidden={hidden}) as client:
        code, report = sync_once(dry.settings(), client=client, dry_run=True)
    assert code == 0 and report.deleted_ids == [gone]
    result = dry.dry_run_changes_nothing()
    assert f"would delete customer {gone} " in result.stdout and f"customer {hidden} " not in result.stdout
    assert sync_once(dry.settings())[0] == 0
    assert scalar(dry.db, "SELECT count(*) FROM customers WHERE pkcustomerid = ?", (gone,)) == 0
    assert scalar(dry.db, "SELECT count(*) FROM customers WHERE pkcustomerid = ?", (hidden,)) == 1


def test_a_dry_run_prints_the_merge_the_push_would_make(dry):
    """The dry run re-reads like the push: it prints the update with its fields and values, the conflict it would
    leave, and the remote change the pull would write; then the real run does exactly that."""
    a, b = dry.sim.account.ids()[10], dry.sim.account.ids()[11]
    company = dry.sim.account.get(a)["company_name"]
    edit(dry.db, f"UPDATE customers SET customerphone1 = '0400 100 200' WHERE pkcustomerid = {a}",
         f"UPDATE customers SET customerphone2 = '0400 300 400' WHERE pkcustomerid = {b}")
    dry.sim.account.edit_customer(a, company_name="Remote Pty Ltd")
    dry.sim.account.edit_customer(b, phone2="0400 999 999")
    email = unique_email("dryrun")
    edit(dry.db, insert_sql(**new_customer(email)))
    result = dry.dry_run_changes_nothing()
    assert result.returncode == 0, result.stderr
    assert f"would updatecustomer {a}: customerphone1 '0400 100 200'" in result.stdout
    assert (f"would write Solar Proof's change to customer {a}: customercompanyname {shown(company)} -> "
            f"'Remote Pty Ltd'") in result.stdout
    assert (f"would leave customer {b} in conflict on customerphone2: here '0400 300 400', "
            f"Solar Proof '0400 999 999'") in result.stdout
    assert f"({email})" in result.stdout and "would createcustomer for row" in result.stdout
    assert sync_once(dry.settings())[0] == 0
    assert dry.sim.account.get(a)["phone1"] == "0400 100 200"
    assert scalar(dry.db, "SELECT sync_state FROM customers WHERE pkcustomerid = ?", (b,)) == "conflict"


def test_a_dry_run_shows_the_adoption_of_a_lost_create(dry):
    """A create whose answer was lost: the dry run says which customer the walk would adopt for the row."""
    email = unique_email("drylost")
    edit(dry.db, insert_sql(**new_customer(email)))
    local_id = scalar(dry.db, "SELECT id FROM customers WHERE customeremail = ?", (email,))
    dry.sim.faults.script("lost_create")
    assert sync_once(dry.settings(), pull=False)[0] == 0
    [made] = [r["id"] for r in dry.sim.account.snapshot()["customers"] if r["email"] == email]
    result = dry.dry_run_changes_nothing()
    assert f"would adopt customer {made} for row {local_id}" in result.stdout, result.stdout
    assert f"would add customer {made}" not in result.stdout
