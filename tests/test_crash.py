"""A CI-sized sample of bench/crash.py (SIGKILLed syncs and daemons lose nothing and create nothing twice), and the crash scenario it found."""

from __future__ import annotations

import json
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from crash import run_rounds  # noqa: E402
from mirror.commands.sync import sync_once  # noqa: E402
from mirror.config import load_settings  # noqa: E402
from mirror.exit_codes import EXIT_OK  # noqa: E402
from mirror.simulator.server import SimulatorServer  # noqa: E402
from sqlite_edit import edit, query, sql_text  # noqa: E402

ROUNDS = 8
SEED = 11
PHASES_DURING = {"push_before_writes", "push_between_writes", "push_done_before_walk", "walk"}


def test_killed_syncs_lose_nothing_and_create_nothing_twice():
    """Eight killed syncs and daemons (before, during and after their work) leave no violated invariant."""
    report = run_rounds(ROUNDS, SEED, customers=100, strata=["before", "window", "after"])
    assert report["rounds"] == ROUNDS
    assert report["violations"]["count"] == 0, json.dumps(report["violations"], indent=2, default=str)
    assert report["modes"] == {"sync": ROUNDS // 2, "run": ROUNDS // 2}
    phases = set(report["kill_points"])
    assert len(phases) >= 3, report["kill_points"]
    assert "before_sync_started" in phases, report["kill_points"]
    assert phases & (PHASES_DURING | {"after_sync_finished", "exited_before_kill"}), report["kill_points"]
    assert report["checks"]["local_edits"] >= 2 * ROUNDS and report["checks"]["creates"] >= 2 * ROUNDS


def test_create_killed_between_its_intent_and_its_post_is_sent_once_after_two_walks(tmp_path):
    """A row whose intent was committed but whose POST never left stays pending (never doubled) until two complete
    walks prove the customer absent, then is created exactly once."""
    email = "crash-intent-only@example.com.au"
    with SimulatorServer(customers=60, seed=3, api_key="crash-key") as sim:
        db = tmp_path / "mirror.db"
        settings = load_settings(env={"SPMIRROR_API_URL": sim.url, "SPMIRROR_API_KEY": sim.api_key,
                                      "SPMIRROR_DB": str(db)})
        assert sync_once(settings)[0] == EXIT_OK
        edit(db, "INSERT INTO customers (customerfirstname, customersurname, customeremail, customerphone1, "
                 f"fkcustomertypeid) VALUES ('Nina', 'Intent', {sql_text(email)}, '0400 000 001', 1)")
        local_id = query(db, "SELECT id FROM customers WHERE customeremail = ?", (email,))[0]["id"]
        # Exactly what the mirror file holds after a SIGKILL between record_create_intent's COMMIT and the POST.
        edit(db, f"INSERT INTO create_intents (local_id, email, sent_at) VALUES ({local_id}, {sql_text(email)}, "
                 "'2026-01-01T00:00:00Z')")
        for _ in range(2):
            assert sync_once(settings)[0] == EXIT_OK
        assert [e for e in sim.account.write_log() if e["action"] == "createcustomer"] == []
        assert query(db, "SELECT pkcustomerid, sync_state FROM customers WHERE customeremail = ?", (email,)) == [
            {"pkcustomerid": None, "sync_state": "pending"}]
        assert sync_once(settings)[0] == EXIT_OK
        created = [e for e in sim.account.write_log() if e["action"] == "createcustomer" and e["applied"]]
        remote = [c["id"] for c in sim.account.snapshot()["customers"] if c["email"] == email]
        rows = query(db, "SELECT pkcustomerid, sync_state FROM customers WHERE customeremail = ?", (email,))
        assert len(created) == 1 and len(remote) == 1
        assert rows == [{"pkcustomerid": remote[0], "sync_state": "synced"}]
        assert query(db, "SELECT * FROM create_intents") == []
