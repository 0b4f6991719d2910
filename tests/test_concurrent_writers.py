"""Another process writing in a tight loop while the daemon syncs: no edit lost, no lock error, on each backend."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

from backends import MirrorDatabase
from conftest import API_KEY
from polling import wait_until
from mirror.simulator.server import SimulatorServer

ROUNDS = 300
# How the person's program connects (spliced in at "# CONNECT"): `connection`, and MARK, its driver's
# parameter mark. Python's sqlite3 waits up to `timeout` seconds for a lock, as most SQLite clients do;
# psycopg waits on PostgreSQL's row and table locks for as long as they are held.
CONNECT = {
    "sqlite": "import sqlite3\nconnection = sqlite3.connect(db, timeout=10)\nMARK = '?'\n",
    "postgres": "import psycopg\nconnection = psycopg.connect(db)\nMARK = '%s'\n",
}
WRITER = textwrap.dedent("""
    import json, sys, time
    db, rounds, ids = sys.argv[1], int(sys.argv[2]), [int(i) for i in sys.argv[3].split(",")]
    # CONNECT
    marks = ",".join([MARK] * len(ids))

    def pushing_started():
        # Some row of the pass just written is synced again: the daemon is pushing that pass now.
        started = connection.execute(f"SELECT count(*) FROM customers WHERE pkcustomerid IN ({marks})"
                                     " AND sync_state = 'synced'", ids).fetchone()[0] > 0
        connection.commit()  # a person's program does not sit in an open transaction while it waits
        return started

    phones, inserts = {}, {}
    for n in range(rounds):
        if n and n % len(ids) == 0:
            # Start the next pass over the same rows while the daemon pushes this one, so edits
            # land during pushes of the very rows they change (waits on a condition, not a clock).
            deadline = time.monotonic() + 60
            while not pushing_started():
                if time.monotonic() > deadline:
                    sys.exit("the daemon pushed nothing for 60 s")
                time.sleep(0.005)
        remote_id = ids[n % len(ids)]
        phone = f"0411 {n:03d} {remote_id % 1000:03d}"
        connection.execute(f"UPDATE customers SET customerphone2 = {MARK} WHERE pkcustomerid = {MARK}",
                           (phone, remote_id))
        if n % 10 == 0:
            surname, email = f"Writer{n}", f"loop.writer{n}@example.com"
            connection.execute(
                "INSERT INTO customers (customerfirstname, customersurname, customeremail, customerphone1,"
                f" fkcustomertypeid) VALUES ('Loop', {MARK}, {MARK}, '0400 000 000', 1)", (surname, email))
        connection.commit()
        # What this person committed, recorded only after the commit returned.
        phones[remote_id] = phone
        if n % 10 == 0:
            inserts[email] = surname
    print(json.dumps({"phones": phones, "inserts": inserts}))
""")


def test_a_tight_loop_of_edits_during_syncs_loses_nothing(mirror_db: MirrorDatabase, tmp_path):
    """300 updates (passes over 40 rows, each pass begun while the daemon pushes the last) and 30 inserts,
    committed back to back while the daemon syncs every second, all reach the API, each customer ending
    with the last value the writer committed, and the writer never sees a lock error."""
    db = mirror_db
    with SimulatorServer(customers=600, seed=21, api_key=API_KEY) as sim:
        sim.faults.configure(latency_ms=20)  # each walk takes a while, so writes overlap it
        edited = sorted(sim.account.ids())[:40]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPMIRROR_")} | {
            "SPMIRROR_API_URL": sim.url, "SPMIRROR_API_KEY": API_KEY, "SPMIRROR_DB": db.url,
            "SPMIRROR_SYNC_INTERVAL": "1s", "SPMIRROR_DAEMON_WATCH_INTERVAL": "0.2s",
            "SPMIRROR_LOGGING_LEVEL": "warning",
        }
        daemon = subprocess.Popen([sys.executable, "-m", "mirror", "run"], env=env, cwd=tmp_path,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_until(lambda: _first_sync_done(db), 60, "the first sync")
            script = WRITER.replace("# CONNECT\n", CONNECT[db.kind])
            writer = subprocess.run([sys.executable, "-c", script, db.url, str(ROUNDS), ",".join(map(str, edited))],
                                    capture_output=True, text=True, timeout=120)
            assert writer.returncode == 0, writer.stderr
            assert "locked" not in writer.stderr and "deadlock" not in writer.stderr
            # The expected values come from the writer (the person), never from the mirror under test.
            committed = json.loads(writer.stdout)
            phones = {int(remote_id): phone for remote_id, phone in committed["phones"].items()}
            inserts = committed["inserts"]
            assert sorted(phones) == edited and len(inserts) == ROUNDS // 10
            wait_until(lambda: all(sim.account.get(i)["phone2"] == phone for i, phone in phones.items()),
                       60, "every last edit to reach the API")
            wait_until(lambda: _created(sim, inserts) == set(inserts), 60, "the 30 inserts to be created")
            wait_until(lambda: _mirror_holds(db, phones, inserts, sim), 60, "the mirror to show every edit synced")
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
        emails = [c["email"] for c in sim.account.snapshot()["customers"] if c["email"].startswith("loop.writer")]
        assert sorted(emails) == sorted(inserts)  # each insert created exactly once
        for remote_id, phone in phones.items():  # the last committed value, nothing older, on both sides
            assert sim.account.get(remote_id)["phone2"] == phone
            assert db.row_of(remote_id)["customerphone2"] == phone
        assert db.scalar("SELECT count(*) FROM customers WHERE sync_state NOT IN ('synced', 'pending')") == 0
        if db.kind == "sqlite":
            assert db.scalar("PRAGMA integrity_check") == "ok"
    assert daemon.returncode == 0


def _created(sim: SimulatorServer, inserts: dict[str, str]) -> set[str]:
    """The inserted emails Solar Proof holds, each under the surname the writer gave it."""
    return {c["email"] for c in sim.account.snapshot()["customers"]
            if inserts.get(c["email"]) == c["last_name"]}


def _mirror_holds(db: MirrorDatabase, phones: dict[int, str], inserts: dict[str, str], sim: SimulatorServer) -> bool:
    """Every edited row synced with its last value, and every inserted row tied to the customer made for it."""
    rows = {r["pkcustomerid"]: r for r in db.query("SELECT pkcustomerid, customerphone2, sync_state FROM customers")}
    if any((rows.get(i) or {}).get("customerphone2") != phone or rows[i]["sync_state"] != "synced"
           for i, phone in phones.items()):
        return False
    made = {c["email"]: c["id"] for c in sim.account.snapshot()["customers"] if c["email"] in inserts}
    tied = db.query("SELECT customeremail, pkcustomerid, sync_state FROM customers "
                    "WHERE customersurname LIKE 'Writer%'")
    return sorted((r["customeremail"], r["pkcustomerid"], r["sync_state"]) for r in tied) == sorted(
        (email, made.get(email), "synced") for email in inserts)


def _first_sync_done(db: MirrorDatabase) -> bool:
    try:  # the daemon may still be creating the database and its tables
        return db.exists() and db.scalar("SELECT count(*) FROM sync_runs WHERE result='ok'") > 0
    except db.Error:
        return False
