"""Another process writing in a tight loop while the daemon syncs: no edit lost, no lock error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path


from conftest import API_KEY
from polling import wait_until
from sqlite_edit import query, scalar
from mirror.simulator.server import SimulatorServer

WRITER = textwrap.dedent("""
    import sqlite3, sys
    db, rounds = sys.argv[1], int(sys.argv[2])
    # Python's sqlite3 waits up to `timeout` seconds for a lock, as most SQLite clients do.
    connection = sqlite3.connect(db, timeout=10)
    ids = [r[0] for r in connection.execute(
        "SELECT pkcustomerid FROM customers WHERE pkcustomerid IS NOT NULL ORDER BY pkcustomerid LIMIT 40")]
    for n in range(rounds):
        remote_id = ids[n % len(ids)]
        connection.execute("UPDATE customers SET customerphone2 = ? WHERE pkcustomerid = ?",
                           (f"0411 {n:03d} {remote_id % 1000:03d}", remote_id))
        if n % 10 == 0:
            connection.execute(
                "INSERT INTO customers (customerfirstname, customersurname, customeremail, customerphone1,"
                " fkcustomertypeid) VALUES ('Loop', ?, ?, '0400 000 000', 1)",
                (f"Writer{n}", f"loop.writer{n}@example.com"))
        connection.commit()
    print("done")
""")


def test_a_tight_loop_of_edits_during_syncs_loses_nothing(tmp_path: Path):
    """300 updates and 30 inserts committed back to back while the daemon syncs every second all reach
    the API, and the writer never sees 'database is locked'."""
    db = tmp_path / "mirror.db"
    with SimulatorServer(customers=600, seed=21, api_key=API_KEY) as sim:
        sim.faults.configure(latency_ms=20)  # each walk takes a while, so writes overlap it
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPMIRROR_")} | {
            "SPMIRROR_API_URL": sim.url, "SPMIRROR_API_KEY": API_KEY, "SPMIRROR_DB": str(db),
            "SPMIRROR_SYNC_INTERVAL": "1s", "SPMIRROR_DAEMON_WATCH_INTERVAL": "0.2s",
            "SPMIRROR_LOGGING_LEVEL": "warning",
        }
        daemon = subprocess.Popen([sys.executable, "-m", "mirror", "run"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_until(lambda: _first_sync_done(db), 60, "the first sync")
            writer = subprocess.run([sys.executable, "-c", WRITER, str(db), "300"], capture_output=True,
                                    text=True, timeout=120)
            assert writer.returncode == 0, writer.stderr
            assert "locked" not in writer.stderr and writer.stdout.strip() == "done"
            expected = query(db, "SELECT pkcustomerid, customerphone2 FROM customers "
                                 "WHERE pkcustomerid IS NOT NULL AND customerphone2 LIKE '0411 %'")
            wait_until(lambda: all(sim.account.get(r["pkcustomerid"])["phone2"] == r["customerphone2"]
                                   for r in expected), 60, "every last edit to reach the API")
            wait_until(lambda: scalar(db, "SELECT count(*) FROM customers WHERE customersurname LIKE 'Writer%' "
                                           "AND pkcustomerid IS NOT NULL") == 30, 60, "the 30 inserts to be created")
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
        emails = [c["email"] for c in sim.account.snapshot()["customers"] if c["email"].startswith("loop.writer")]
        assert len(emails) == len(set(emails)) == 30  # each insert created exactly once
        assert scalar(db, "SELECT count(*) FROM customers WHERE sync_state NOT IN ('synced', 'pending')") == 0
        assert scalar(db, "PRAGMA integrity_check") == "ok"
    assert daemon.returncode == 0


def _first_sync_done(db: Path) -> bool:
    import sqlite3

    try:  # the daemon may still be creating the file and its tables
        return db.exists() and scalar(db, "SELECT count(*) FROM sync_runs WHERE result='ok'") > 0
    except sqlite3.Error:
        return False
