"""A CI-sized sample of bench/crash.py (SIGKILLed syncs and daemons, in the push and during the
adoption of a create whose answer was lost, deliver every edit, create nothing twice and tie no
row to somebody else), a check that the checker does fail on a broken outcome, and the crash
scenario it found; each on both backends (a SQLite file, a PostgreSQL schema)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from crash import PUSH_PHASES, admin, admin_patch, crash_session, edit, query, summarize  # noqa: E402
from backends import MirrorDatabase, open_mirror_database, sql_text  # noqa: E402
from mirror.commands.sync import sync_once  # noqa: E402
from mirror.config import load_settings  # noqa: E402
from mirror.exit_codes import EXIT_OK  # noqa: E402
from mirror.simulator.server import SimulatorServer  # noqa: E402

SEED = 11
# Each round: (stratum, plan fields pinned). Fixed so the sample always holds a kill in the push
# (round 0: the first create applied by Solar Proof and its answer held back by a `stall` while
# the process is killed) and kills during adoption (rounds 3 and 6: the walk's first page held
# after a `lost_create`). Rounds 1 and 6 (index % 5 == 1) add a colleague's customer with the same
# email as the round's first INSERT; rounds 2 and 5 (index % 3 == 2) run without `getcustomer`.
# Rounds 1 and 4 are killed 50 ms after launch (long before the sync starts) and then left as a
# kill between an intent's COMMIT and its POST would leave them (forge_intent): round 4's create
# must wait, unsent, for two complete walks and go out in round 5; round 1's meets the decoy, a
# near miss, and must be left in 'error' for a person, never tied to the decoy.
ROUNDS_PLAN = [
    ("stall_push", {"stall_action": "createcustomer"}),
    ("before", {"kill_at": 0.05, "forge_intent": True}),
    ("window", {}),
    ("stall_walk", {}),
    ("before", {"kill_at": 0.05, "forge_intent": True}),
    ("after", {}),
    ("stall_walk", {"correct": True}),
    ("window", {}),
]
ROUNDS = len(ROUNDS_PLAN)

WINDOW_ROUNDS = [index for index, (stratum, _pinned) in enumerate(ROUNDS_PLAN) if stratum == "window"]


@pytest.fixture(scope="module")
def sample(backend, tmp_path_factory):
    """The rounds, their report, and the live run (simulator and mirror) for the checker's own test."""
    with open_mirror_database(backend, tmp_path_factory.mktemp("crash")) as database, \
            crash_session(customers=100, seed=SEED, db=database.url) as (run, window):
        results = []
        for index, (stratum, pinned) in enumerate(ROUNDS_PLAN):
            try:
                results.append(run.run_round(index, SEED, window, stratum, **pinned))
            finally:
                run.processes.reap()
        yield results, summarize(results, run), run


def test_killed_syncs_deliver_every_edit_and_adopt_lost_creates_once(sample):
    """Eight killed syncs and daemons leave every edit delivered or kept, adopt each lost create
    once, send a create whose POST never left only after two walks, and tie no row to another person."""
    results, report, _run = sample
    assert report["violations"]["count"] == 0, json.dumps(report["violations"], indent=2, default=str)
    r = {result["round"]: result for result in results}
    shown = {index: json.dumps(result, default=str) for index, result in r.items()}
    # The held kills landed where they were aimed, judged from the simulator's log and the mirror file.
    assert r[0]["phase"] in PUSH_PHASES and "create_applied_unrecorded" in r[0]["flags"], shown[0]
    # The "window" kills were timed from the moment the process took the sync lock (the lock file's
    # pid on SQLite, the advisory lock in pg_locks on PostgreSQL), so the watch saw it taken.
    for index in WINDOW_ROUNDS:
        assert r[index]["lock_taken_after"] is not None, shown[index]
    for index in (3, 6):
        # The mirror held an intent for a create Solar Proof had applied, and the walk had begun ...
        assert r[index]["phase"] == "adoption" and "create_applied_unrecorded" in r[index]["flags"], shown[index]
        # ... so a follow-up sync adopted it (nothing was sent again: no violation above).
        assert r[index]["outcome"].get("adopted_by_follow_up_sync", 0) >= 1, shown[index]
    # Round 0's create, applied unanswered when the process died, was adopted by a follow-up sync.
    assert r[0]["outcome"].get("adopted_by_follow_up_sync", 0) >= 1, shown[0]
    # Intents whose POST never left: round 4's waits unsent through two walks, then is created in round 5;
    # round 1's meets the decoy (a near miss) and is left in 'error', its values kept.
    for index in (1, 4):
        assert r[index]["phase"] == "before_sync_started" and "intent_forged_before_post" in r[index]["flags"], shown[index]
    assert r[4]["outcome"].get("pending_create_never_sent") == 1, shown[4]
    assert r[5]["outcome"].get("carried_creates_delivered") == 1, shown[5]
    assert r[1]["outcome"].get("near_miss_flagged") == 1 and r[1]["scenario"]["decoy"], shown[1]
    # Round 6: our lost create and the decoy share an email; ours was adopted and a fix typed after the kill delivered.
    assert r[6]["scenario"]["decoy"] and r[6]["corrected_creates"] >= 1, shown[6]
    grouped = report["kill_points_grouped"]
    assert grouped.get("push", 0) >= 1 and grouped.get("adoption", 0) >= 2, report["kill_points"]
    assert report["scenarios"]["rounds_without_getcustomer"] == 2
    assert report["creates"]["lost_create_injected"] >= 3
    edits = report["edits"]
    assert edits["still_pending"] == 0, edits
    assert edits["delivered_creates"] >= ROUNDS - 1 and edits["delivered_updates"] >= 2 * ROUNDS, edits
    assert {result["mode"] for result in results} == {"sync", "run"}


def test_the_checker_reports_an_edit_left_pending_a_second_customer_and_a_row_tied_to_another(sample):
    """The same checks, after the outcome is broken by hand, report each break (so a clean sample means something)."""
    _results, _report, run = sample
    plan, context, write_mark = run.last
    seen = dict(run.violations_by_check)

    def new_violations() -> set[str]:
        run.check_round(plan, context, write_mark)
        found = {check for check, n in run.violations_by_check.items() if n > seen.get(check, 0)}
        seen.update(run.violations_by_check)
        return found

    assert new_violations() == set()  # the round as the sample left it passes again
    # An update Solar Proof has, its row marked 'pending' again: still pending after two syncs.
    synced = [r for r, _c, _v in plan.local_edits
              if query(run.db, "SELECT sync_state FROM customers WHERE pkcustomerid = ?", (r,))[0]["sync_state"] == "synced"]
    assert synced, plan.local_edits
    edit(run.db, f"UPDATE customers SET sync_state = 'pending' WHERE pkcustomerid = {synced[0]}")
    assert "no_edit_pending_after_two_syncs" in new_violations()
    edit(run.db, f"UPDATE customers SET sync_state = 'synced' WHERE pkcustomerid = {synced[0]}")
    # The round's INSERT present twice in Solar Proof.
    tied = [(new, query(run.db, "SELECT pkcustomerid FROM customers WHERE id = ?", (new.local_id,))[0]["pkcustomerid"])
            for new in plan.local_creates]
    new, remote_id = next((n, r) for n, r in tied if r is not None)
    admin(run.url, run.key, "customers", {"first_name": "Nina", "last_name": new.surname, "email": new.email,
                                          "phone1": new.phone1, "type": new.type})
    assert "no_duplicate_create" in new_violations()
    # Its row tied to a customer that is somebody else (another surname, same email).
    admin_patch(run.url, run.key, remote_id, {"last_name": "Somebody Else"})
    assert "row_tied_to_its_own_customer" in new_violations()


def test_create_killed_between_its_intent_and_its_post_is_sent_once_after_two_walks(mirror_db: MirrorDatabase):
    """A row whose intent was committed but whose POST never left stays pending (never doubled) until two complete
    walks prove the customer absent, then is created exactly once."""
    email = "crash-intent-only@example.com.au"
    with SimulatorServer(customers=60, seed=3, api_key="crash-key") as sim:
        db = mirror_db
        settings = load_settings(env={"SPMIRROR_API_URL": sim.url, "SPMIRROR_API_KEY": sim.api_key,
                                      "SPMIRROR_DB": db.url})
        assert sync_once(settings)[0] == EXIT_OK
        db.edit("INSERT INTO customers (customerfirstname, customersurname, customeremail, customerphone1, "
                f"fkcustomertypeid) VALUES ('Nina', 'Intent', {sql_text(email)}, '0400 000 001', 1)")
        local_id = db.scalar("SELECT id FROM customers WHERE customeremail = ?", (email,))
        # Exactly what the mirror holds after a SIGKILL between record_create_intent's COMMIT and the POST.
        db.edit(f"INSERT INTO create_intents (local_id, email, sent_at) VALUES ({local_id}, {sql_text(email)}, "
                "'2026-01-01T00:00:00Z')")
        for _ in range(2):
            assert sync_once(settings)[0] == EXIT_OK
        assert [e for e in sim.account.write_log() if e["action"] == "createcustomer"] == []
        assert db.query("SELECT pkcustomerid, sync_state FROM customers WHERE customeremail = ?", (email,)) == [
            {"pkcustomerid": None, "sync_state": "pending"}]
        assert sync_once(settings)[0] == EXIT_OK
        created = [e for e in sim.account.write_log() if e["action"] == "createcustomer" and e["applied"]]
        remote = [c["id"] for c in sim.account.snapshot()["customers"] if c["email"] == email]
        rows = db.query("SELECT pkcustomerid, sync_state FROM customers WHERE customeremail = ?", (email,))
        assert len(created) == 1 and len(remote) == 1
        assert rows == [{"pkcustomerid": remote[0], "sync_state": "synced"}]
        assert db.query("SELECT * FROM create_intents") == []
