"""Crash suite: SIGKILL `spmirror sync` and `spmirror run` at seeded moments, then check that
nothing was lost, sent twice or corrupted; prints JSON and exits 1 on any violation.

    .venv/bin/python bench/crash.py [--rounds 200] [--seed 1] [--customers 300]

One simulator subprocess serves the whole run (15 ms per API request, so a sync lasts long
enough to be killed in the middle of it) and one mirror file is synced once at the start.
Each round:

  1. local edits from a separate process with Python's sqlite3 (UPDATEs of writable text
     columns with round-unique values, INSERTs of new customers with round-unique emails) and
     remote edits through the simulator's /_admin/ routes (a field of a few customers, a status,
     one new customer); now and then a remote edit hits the very field edited locally (a
     conflict is then the expected outcome) or another field of a locally edited customer;
  2. `python -m mirror sync` (even rounds) or `python -m mirror run` (odd rounds: interval 1h,
     watch 0.1s) as a subprocess, SIGKILLed after a seeded delay;
  3. `spmirror sync` to completion, twice (the second confirms what the first adopted/walked);
  4. the invariants (see `check_round`), each failure recorded as a violation.

Kill delays are seeded and fall in three strata (15% / 70% / 15%), so kills land before,
during and after the push and the walk even though interpreter start-up alone varies by
several tenths of a second on a loaded machine: "before" is 0 s up to the sync's usual start
after launch; "window" is 0 s up to the sync's usual length, counted from the moment the process
takes the mirror's sync lock (seen by polling `<db>.sync.lock` for its pid), so it lands in the
push or the walk; "after" is from the sync's usual end to about 1.5 s after launch. The usual
start and length are medians of recent measurements (two calibration syncs, every sync of step
3, every lock a killed process took). The phase a kill actually hit is classified afterwards
from what the simulator received and what the mirror file holds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from simulator_process import admin, running_simulator  # noqa: E402

API_KEY = "crash-key"
LATENCY_MS = 15.0
MAX_KILL_SECONDS = 1.5
MAX_LOCK_WAIT = 20.0  # a "window" kill waits this long at most for the sync lock
SYNC_TIMEOUT = 180.0  # one `spmirror sync` to completion
EDIT_TIMEOUT = 60.0
KILL_WAIT = 15.0  # after SIGKILL, how long to wait for the process to be reaped
BUCKET = 0.1  # seconds per kill-time histogram bucket
MAX_REPORTED = 20
STRATA = (("before", 0.15), ("window", 0.70), ("after", 0.15))

# Mirror column -> the simulator's field name (fields.py) and the write body key (write_body.py).
SIM_FIELD = {
    "customerfirstname": "first_name", "customersurname": "last_name", "customeremail": "email",
    "customerphone1": "phone1", "customerphone2": "phone2", "customercompanyname": "company_name",
    "customercompanyphone": "company_phone", "fkcustomertypeid": "type", "customergstregistered": "gst",
}
WRITE_KEY = {
    "customerfirstname": "firstname", "customersurname": "surname", "customeremail": "email",
    "customerphone1": "phone1", "customerphone2": "phone2", "customercompanyname": "companyname",
    "customercompanyphone": "companyphone", "fkcustomertypeid": "type", "customergstregistered": "gststatus",
}
# Text columns that take round-unique values (both sides edit these; the remote side also toggles GST).
TEXT_COLUMNS = ("customerfirstname", "customersurname", "customeremail", "customerphone1", "customerphone2",
                "customercompanyname", "customercompanyphone")
REMOTE_COLUMNS = (*TEXT_COLUMNS, "customergstregistered")

# Run in a separate interpreter: each statement its own autocommit transaction, as a person's shell.
_EDIT_SCRIPT = r"""
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
try:
    for statement in sys.argv[2:]:
        con.execute(statement)
finally:
    con.close()
"""


# -- small helpers ------------------------------------------------------------------------


def sql_text(value: Any) -> str:
    """`value` as an SQL literal."""
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def edit(db: Path, *statements: str) -> None:
    """Run SQL statements against the mirror from a separate Python process (a person's edit)."""
    subprocess.run([sys.executable, "-c", _EDIT_SCRIPT, str(db), *statements], check=True,
                   timeout=EDIT_TIMEOUT, capture_output=True, text=True)


def query(db: Path, sql: str, params: tuple = ()) -> list[dict]:
    """Rows of `sql` from the mirror (a read, so it may run in this process)."""
    con = sqlite3.connect(db, timeout=30)
    con.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in con.execute(sql, params)]
    finally:
        con.close()


def admin_get(url: str, key: str, route: str) -> Any:
    """GET one of the simulator's /_admin/ routes."""
    base = url.rsplit("/", 1)[0]
    with urllib.request.urlopen(f"{base}/_admin/{route}?api_key={key}", timeout=30) as response:
        return json.loads(response.read() or b"null")


def admin_patch(url: str, key: str, customer_id: int, fields: dict) -> dict:
    """PATCH a simulator customer's fields, as a user of the web app would."""
    base = url.rsplit("/", 1)[0]
    request = urllib.request.Request(
        f"{base}/_admin/customers/{customer_id}?api_key={key}", data=json.dumps(fields).encode(),
        headers={"Content-Type": "application/json"}, method="PATCH",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


def norm(value: Any) -> Any:
    """"" and None are the same value to the mirror."""
    return None if value in ("", None) else value


def body_data(entry: dict) -> dict:
    body = entry.get("body")
    if isinstance(body, dict):
        data = body.get("data", body)
        return data if isinstance(data, dict) else {}
    return {}


def clean_env(**values: str) -> dict[str, str]:
    """This process's environment without any SPMIRROR_* setting, plus `values`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPMIRROR_")}
    env.update(values)
    return env


class Processes:
    """Every subprocess started here, so a finally block can kill whichever still runs."""

    def __init__(self) -> None:
        self.live: list[subprocess.Popen] = []

    def start(self, args: list[str], **kwargs) -> subprocess.Popen:
        process = subprocess.Popen(args, **kwargs)
        self.live.append(process)
        return process

    def reap(self) -> None:
        for process in self.live:
            if process.poll() is None:
                process.kill()
                try:
                    process.wait(timeout=KILL_WAIT)
                except subprocess.TimeoutExpired:
                    pass
        self.live = [p for p in self.live if p.poll() is None]


# -- one round's plan ---------------------------------------------------------------------


@dataclass
class Round:
    index: int
    seed: str
    mode: str  # "sync" or "run"
    stratum: str
    kill_at: float
    local_edits: list[tuple[int, str, str]] = field(default_factory=list)  # (remote id, column, value)
    local_creates: list[str] = field(default_factory=list)  # emails
    remote_edits: list[tuple[int, str, Any]] = field(default_factory=list)  # (remote id, column, value)
    status_change: tuple[int, int] | None = None
    remote_create: str | None = None
    expected_conflicts: set[tuple[int, str]] = field(default_factory=set)


class Window:
    """How long a sync takes to begin after its process starts, and how long it runs: medians of
    the latest measurements (calibration, every sync of step 3, every sync lock a killed process
    took), so the strata follow the machine's load."""

    def __init__(self, max_kill: float, keep: int = 15):
        self.max_kill, self.keep = max_kill, keep
        self.starts: list[float] = []
        self.durations: list[float] = []

    def observe(self, starts_after: float | None = None, duration: float | None = None) -> None:
        if starts_after is not None:
            self.starts = (self.starts + [max(0.0, starts_after)])[-self.keep:]
        if duration is not None:
            self.durations = (self.durations + [max(0.0, duration)])[-self.keep:]

    @property
    def start(self) -> float:
        return sorted(self.starts)[len(self.starts) // 2]

    @property
    def duration(self) -> float:
        # A round's push (re-reads, updates, sequential creates) lengthens the sync a little.
        return sorted(self.durations)[len(self.durations) // 2] + 0.05

    def draw(self, rng: random.Random, stratum: str) -> float:
        """The kill delay: from the launch ("before", "after"), or from the moment the process
        takes the sync lock ("window": anywhere in its push and walk)."""
        if stratum == "before":
            return rng.uniform(0.0, max(0.0, self.start - 0.1))
        if stratum == "window":
            return rng.uniform(0.0, self.duration)
        after = self.start + self.duration + 0.1
        return rng.uniform(after, max(self.max_kill, after + 0.3))

    def summary(self) -> dict:
        return {"sync_starts_after": round(self.start, 3), "sync_seconds": round(self.duration, 3)}


def plan_round(index: int, seed: int, window: Window, pool: list[int], sim_by_id: dict[int, dict],
               stratum: str | None = None) -> Round:
    """Draw a round's mode, kill time and edits (deterministic in seed and index)."""
    rng = random.Random(f"crash/{seed}/{index}")
    mode = "sync" if index % 2 == 0 else "run"
    if stratum is None:
        stratum = rng.choices([s for s, _ in STRATA], weights=[w for _, w in STRATA])[0]
    plan = Round(index, f"{seed}/{index}", mode, stratum, round(window.draw(rng, stratum), 3))
    tag = f"r{index}"
    local_ids = rng.sample(pool, rng.randint(2, 4))
    for i, remote_id in enumerate(local_ids):
        for column in rng.sample(TEXT_COLUMNS, rng.randint(1, 2)):
            plan.local_edits.append((remote_id, column, unique_value(column, tag, f"L{i}")))
    for j in range(rng.randint(1, 2)):
        plan.local_creates.append(f"crash-{tag}-new{j}@example.com.au")
    others = [i for i in pool if i not in local_ids]
    remote_ids = rng.sample(others, rng.randint(1, 2))
    if rng.random() < 0.2:  # the same field edited on both sides: a conflict is the right outcome
        remote_id, column, _value = rng.choice(plan.local_edits)
        plan.remote_edits.append((remote_id, column, unique_value(column, tag, "Rc")))
        plan.expected_conflicts.add((remote_id, column))
    if rng.random() < 0.3:  # another field of a locally edited customer: both changes must merge
        remote_id = rng.choice(local_ids)
        taken = {c for r, c, _ in plan.local_edits if r == remote_id} | {c for r, c, _ in plan.remote_edits
                                                                          if r == remote_id}
        column = rng.choice([c for c in REMOTE_COLUMNS if c not in taken])
        plan.remote_edits.append((remote_id, column, remote_value(column, tag, "Rm", sim_by_id[remote_id])))
    for k, remote_id in enumerate(remote_ids):
        column = rng.choice(REMOTE_COLUMNS)
        plan.remote_edits.append((remote_id, column, remote_value(column, tag, f"R{k}", sim_by_id[remote_id])))
    status_id = rng.choice(pool)
    current = sim_by_id[status_id]["status"]
    plan.status_change = (status_id, rng.choice([s for s in range(4) if s != current]))
    plan.remote_create = f"crash-{tag}-remote@example.com.au"
    return plan


def unique_value(column: str, tag: str, who: str) -> str:
    if column == "customeremail":
        return f"crash-{tag}-{who.lower()}@example.com.au"
    if column in ("customerphone1", "customerphone2", "customercompanyphone"):
        return f"0499 {tag} {who}"
    return {"customerfirstname": "Kel", "customersurname": "Crash", "customercompanyname": "Crash Pty"}[column] \
        + f" {tag}{who}"


def remote_value(column: str, tag: str, who: str, record: dict) -> Any:
    if column == "customergstregistered":
        return 1 - int(record.get("gst") or 0)
    return unique_value(column, tag, who)


# -- the run ------------------------------------------------------------------------------


class CrashRun:
    """The simulator, the mirror file and the bookkeeping shared by every round."""

    def __init__(self, url: str, key: str, workdir: Path, processes: Processes):
        self.url, self.key, self.workdir, self.processes = url, key, workdir, processes
        self.db = workdir / "mirror.db"
        config = workdir / "empty.toml"
        config.write_text("")
        self.env = clean_env(SPMIRROR_API_URL=url, SPMIRROR_API_KEY=key, SPMIRROR_DB=str(self.db),
                             SPMIRROR_CONFIG=str(config), SPMIRROR_LOGGING_LEVEL="info",
                             SPMIRROR_LOGGING_FORMAT="json", PYTHONUNBUFFERED="1")
        self.conflicts_expected: set[tuple[int, str]] = set()
        self.violations: list[dict] = []
        self.violation_count = 0
        self.checks: Counter[str] = Counter()

    # -- syncing --

    def sync(self, timeout: float = SYNC_TIMEOUT, window: Window | None = None) -> tuple[int, str, float]:
        """`spmirror sync` to completion: (exit code, output tail, seconds); timed into `window`."""
        started, launched = time.perf_counter(), time.time()
        process = self.processes.start([sys.executable, "-m", "mirror", "sync"], env=self.env,
                                       cwd=self.workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       text=True)
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate(timeout=KILL_WAIT)
            return -9, (output or "")[-2000:] + "\n(timed out)", time.perf_counter() - started
        seconds = time.perf_counter() - started
        if window is not None and process.returncode == 0:
            # sync_finished carries when it was logged and how long the sync took.
            finished = [line for line in output.splitlines() if '"sync_finished"' in line]
            try:
                event = json.loads(finished[-1])
                stamp = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()
                window.observe(stamp - float(event["seconds"]) - launched, float(event["seconds"]))
            except (IndexError, ValueError, KeyError, TypeError):
                pass
        return process.returncode, output[-2000:], seconds

    def calibrate(self, window: Window, runs: int = 2) -> None:
        """Time whole `spmirror sync` processes: when the sync itself starts and ends after launch."""
        for _ in range(runs):
            code, output, _seconds = self.sync(window=window)
            if code != 0:
                raise RuntimeError(f"calibration sync exited {code}: {output}")

    # -- a round --

    def pool(self, sim_by_id: dict[int, dict]) -> list[int]:
        rows = query(self.db, "SELECT pkcustomerid FROM customers WHERE sync_state = 'synced' "
                              "AND pkcustomerid IS NOT NULL ORDER BY pkcustomerid")
        return [r["pkcustomerid"] for r in rows if r["pkcustomerid"] in sim_by_id]

    def make_changes(self, plan: Round) -> None:
        by_customer: dict[int, list[tuple[str, str]]] = {}
        for remote_id, column, value in plan.local_edits:
            by_customer.setdefault(remote_id, []).append((column, value))
        statements = [
            f"UPDATE customers SET {', '.join(f'{c} = {sql_text(v)}' for c, v in edits)} "
            f"WHERE pkcustomerid = {remote_id}"
            for remote_id, edits in by_customer.items()
        ]
        for n, email in enumerate(plan.local_creates):
            statements.append(
                "INSERT INTO customers (customerfirstname, customersurname, customeremail, customerphone1, "
                f"fkcustomertypeid) VALUES ('Nina', {sql_text(f'New r{plan.index}n{n}')}, {sql_text(email)}, "
                f"{sql_text(f'0400 {plan.index} {n}')}, {1 + (plan.index + n) % 3})"
            )
        edit(self.db, *statements)
        for remote_id, column, value in plan.remote_edits:
            admin_patch(self.url, self.key, remote_id, {SIM_FIELD[column]: value})
        if plan.status_change:
            admin(self.url, self.key, f"customers/{plan.status_change[0]}/status", {"status": plan.status_change[1]})
        admin(self.url, self.key, "customers", {"first_name": "Remy", "last_name": f"Remote r{plan.index}",
                                                "email": plan.remote_create, "phone1": f"0411 {plan.index}",
                                                "type": 2})

    def kill_mid_sync(self, plan: Round, window: Window, write_mark: int, calls_before: dict) -> dict:
        """Start the sync or the daemon, SIGKILL it after plan.kill_at seconds (counted from the launch,
        or for the "window" stratum from the moment it takes the sync lock); return what the kill hit."""
        runs_before = query(self.db, "SELECT coalesce(max(rowid), 0) AS n FROM sync_runs")[0]["n"]
        env = dict(self.env)
        if plan.mode == "run":
            env.update(SPMIRROR_SYNC_INTERVAL="1h", SPMIRROR_DAEMON_WATCH_INTERVAL="0.1s")
        log_path = self.workdir / f"killed-{plan.index}.log"
        lock_path = self.db.with_name(self.db.name + ".sync.lock")
        lock_seen: float | None = None
        with open(log_path, "w") as log:
            started = time.monotonic()
            process = self.processes.start([sys.executable, "-m", "mirror", plan.mode], env=env, cwd=self.workdir,
                                           stdout=log, stderr=subprocess.STDOUT)
            holder = f"pid {process.pid} ".encode()
            deadline = started + (plan.kill_at if plan.stratum != "window" else MAX_LOCK_WAIT)
            exited = False
            while True:
                now = time.monotonic()
                if process.poll() is not None:
                    exited = True
                    break
                if lock_seen is None and plan.stratum == "window":
                    try:
                        if lock_path.read_bytes().startswith(holder):
                            lock_seen = now - started
                            window.observe(starts_after=lock_seen)
                            deadline = now + plan.kill_at
                    except OSError:
                        pass
                if now >= deadline:
                    break
                time.sleep(0.002 if lock_seen is None and plan.stratum == "window" else
                           min(0.01, max(0.0, deadline - now)))
            if not exited:
                process.kill()
            killed_after = time.monotonic() - started
            process.wait(timeout=KILL_WAIT)
        time.sleep(0.1)  # let the simulator finish a request the dead client had in flight
        events = []
        for line in log_path.read_text(errors="replace").splitlines():
            try:
                events.append(json.loads(line).get("event"))
            except ValueError:
                pass
        log_path.unlink(missing_ok=True)
        result = self.classify(plan, exited, killed_after, runs_before, write_mark, calls_before, events)
        result["lock_taken_after"] = None if lock_seen is None else round(lock_seen, 3)
        return result

    def classify(self, plan: Round, exited: bool, killed_after: float, runs_before: int, write_mark: int,
                 calls_before: dict, events: list) -> dict:
        calls = admin_get(self.url, self.key, "calls")
        delta = {k: v - calls_before.get(k, 0) for k, v in calls.items() if v != calls_before.get(k, 0)}
        writes = [e for e in admin_get(self.url, self.key, "writes")[write_mark:]
                  if e["action"] in ("createcustomer", "updatecustomer")]
        runs = query(self.db, "SELECT finished_at FROM sync_runs WHERE rowid > ?", (runs_before,))
        flags = []
        created = {body_data(e).get("email") for e in writes if e["action"] == "createcustomer" and e["applied"]}
        for email in plan.local_creates:
            row = query(self.db, "SELECT pkcustomerid FROM customers WHERE customeremail = ?", (email,))
            if email in created and row and row[0]["pkcustomerid"] is None:
                flags.append("create_applied_unrecorded")
        intents = query(self.db, "SELECT email FROM create_intents")
        if any(i["email"] in plan.local_creates and i["email"] not in created for i in intents):
            flags.append("create_intent_before_post")
        updated = {str(body_data(e).get("pkcustomerid")) for e in writes
                   if e["action"] == "updatecustomer" and e["applied"]}
        for remote_id in {r for r, _c, _v in plan.local_edits}:
            row = query(self.db, "SELECT sync_state FROM customers WHERE pkcustomerid = ?", (remote_id,))
            if str(remote_id) in updated and row and row[0]["sync_state"] == "pending":
                flags.append("update_applied_unrecorded")
                break
        expected_writes = len({r for r, c, _v in plan.local_edits if (r, c) not in plan.expected_conflicts})
        expected_writes += len(plan.local_creates)
        pages = delta.get("getallcustomers", 0)
        if exited:
            phase = "exited_before_kill"
        elif any(r["finished_at"] for r in runs):
            phase = "after_sync_finished"
        elif not runs:
            phase = "before_sync_started"
        elif pages:
            phase = "walk"
        elif not writes:
            phase = "push_before_writes"
        elif len(writes) < expected_writes:
            phase = "push_between_writes"
        else:
            phase = "push_done_before_walk"
        return {"phase": phase, "flags": flags, "killed_after": round(killed_after, 3), "api_calls": delta,
                "writes": len(writes), "last_events": [e for e in events if e][-4:]}

    def run_round(self, index: int, seed: int, window: Window, stratum: str | None = None) -> dict:
        state = admin_get(self.url, self.key, "state")
        sim_by_id = {c["id"]: c for c in state["customers"]}
        plan = plan_round(index, seed, window, self.pool(sim_by_id), sim_by_id, stratum)
        self.conflicts_expected |= plan.expected_conflicts
        write_mark = len(admin_get(self.url, self.key, "writes"))
        self.make_changes(plan)
        calls_before = admin_get(self.url, self.key, "calls")
        kill = self.kill_mid_sync(plan, window, write_mark, calls_before)
        context = {"round": index, "round_seed": plan.seed, "mode": plan.mode, "stratum": plan.stratum,
                   "kill_at": plan.kill_at, "kill_from": "sync lock" if plan.stratum == "window" else "launch", **kill}
        for attempt in (1, 2):
            code, output, _seconds = self.sync(window=window)
            if code != 0:
                self.violate(context, "sync_exit_code", {"attempt": attempt, "exit_code": code, "output": output})
        self.check_round(plan, context, write_mark)
        return context

    # -- invariants --

    def violate(self, context: dict, check: str, detail: dict) -> None:
        self.violation_count += 1
        if len(self.violations) < MAX_REPORTED:
            self.violations.append({**{k: context[k] for k in ("round", "round_seed", "mode", "stratum", "kill_at",
                                                               "kill_from", "lock_taken_after", "phase", "flags", "killed_after", "last_events")},
                                    "check": check, "detail": detail})

    def check_round(self, plan: Round, context: dict, write_mark: int) -> None:
        state = admin_get(self.url, self.key, "state")
        sim = {c["id"]: c for c in state["customers"]}
        writes = admin_get(self.url, self.key, "writes")[write_mark:]
        rows = query(self.db, "SELECT * FROM customers")
        by_id = {r["pkcustomerid"]: r for r in rows if r["pkcustomerid"] is not None}
        conflicts = {(c["pkcustomerid"], c["field"]): c for c in query(self.db, "SELECT * FROM customer_conflicts")}

        # 1. every local edit reached the API exactly once, or is still pending (or lost a conflict)
        for remote_id, column, value in plan.local_edits:
            self.checks["local_edits"] += 1
            sent = [e for e in writes if e["action"] == "updatecustomer" and e["applied"]
                    and str(body_data(e).get("pkcustomerid")) == str(remote_id)
                    and body_data(e).get(WRITE_KEY[column]) == value]
            row = by_id.get(remote_id)
            state_now = row["sync_state"] if row else None
            conflict = conflicts.get((remote_id, column))
            in_conflict = (state_now == "conflict" and conflict is not None and conflict["local_value"] == value
                           and (remote_id, column) in plan.expected_conflicts)
            if len(sent) == 1 and not in_conflict:
                continue
            if not sent and (state_now == "pending" or in_conflict):
                self.checks["local_edits_pending" if state_now == "pending" else "local_edits_in_conflict"] += 1
                continue
            self.violate(context, "local_edit_sent_once", {
                "customer": remote_id, "column": column, "value": value, "times_sent": len(sent),
                "sync_state": state_now, "sync_error": row["sync_error"] if row else None,
                "mirror_value": row[column] if row else None, "api_value": sim.get(remote_id, {}).get(SIM_FIELD[column]),
            })

        # 2. no duplicate customer: each round-unique email once in Solar Proof and once in the mirror
        for email, origin in [(e, "local insert") for e in plan.local_creates] + [(plan.remote_create, "remote")]:
            self.checks["creates"] += 1
            remote = [c["id"] for c in sim.values() if c["email"] == email]
            local = [(r["id"], r["pkcustomerid"], r["sync_state"]) for r in rows if r["customeremail"] == email]
            posts = [e for e in writes if e["action"] == "createcustomer" and e["applied"]
                     and body_data(e).get("email") == email]
            ok = len(remote) == 1 and len(local) == 1 and local[0][1] == remote[0]
            if origin == "local insert":
                ok = ok and len(posts) == 1
                # "Reached the API exactly once, or still pending": a create whose intent was
                # committed but whose POST never left waits for two complete walks to prove the
                # customer absent before it is sent, so it may still be pending here, never doubled.
                if not remote and not posts and len(local) == 1 and local[0][1] is None and local[0][2] == "pending":
                    ok = True
                    self.checks["creates_still_pending"] = self.checks.get("creates_still_pending", 0) + 1
            if not ok:
                self.violate(context, "no_duplicate_create", {
                    "email": email, "origin": origin, "api_ids": remote, "mirror_rows": local,
                    "applied_createcustomer_calls": len(posts),
                })

        # 3. every synced row equals Solar Proof on the writable fields
        for row in rows:
            if row["sync_state"] != "synced" or row["pkcustomerid"] is None:
                continue
            self.checks["synced_rows"] += 1
            record = sim.get(row["pkcustomerid"])
            if record is None:
                self.violate(context, "synced_row_matches_api", {"customer": row["pkcustomerid"],
                                                                 "problem": "not in Solar Proof"})
                continue
            differ = {column: {"mirror": row[column], "api": record.get(name)} for column, name in SIM_FIELD.items()
                      if norm(row[column]) != norm(record.get(name))}
            if differ:
                self.violate(context, "synced_row_matches_api", {"customer": row["pkcustomerid"], "fields": differ})

        # 4. no remote change was lost
        remote_changes = [(r, c, v) for r, c, v in plan.remote_edits]
        if plan.status_change:
            remote_changes.append((plan.status_change[0], "fkcustomerstatusid", plan.status_change[1]))
        for remote_id, column, value in remote_changes:
            self.checks["remote_edits"] += 1
            row = by_id.get(remote_id)
            if row is not None and norm(row[column]) == norm(value):
                continue
            conflict = conflicts.get((remote_id, column))
            if (row is not None and row["sync_state"] == "conflict" and (remote_id, column) in plan.expected_conflicts
                    and conflict is not None and conflict["remote_value"] == str(value)):
                continue
            self.violate(context, "remote_change_kept", {
                "customer": remote_id, "column": column, "value": value,
                "mirror_value": row[column] if row else "(no row)", "sync_state": row["sync_state"] if row else None,
            })

        # 5. the file is sound, no create intent is left open, and no row is in an unexplained state
        integrity = query(self.db, "PRAGMA integrity_check")
        if [list(r.values())[0] for r in integrity] != ["ok"]:
            self.violate(context, "integrity_check", {"result": [list(r.values())[0] for r in integrity][:10]})
        pending_ids = {r["id"] for r in rows if r["pkcustomerid"] is None and r["sync_state"] == "pending"}
        intents = [i for i in query(self.db, "SELECT * FROM create_intents") if i["local_id"] not in pending_ids]
        if intents:  # an intent may stay open only for a create that is still pending
            self.violate(context, "create_intents_empty", {"intents": intents[:10]})
        for row in rows:
            if row["sync_state"] == "error":
                self.violate(context, "no_unexpected_error_row", {"customer": row["pkcustomerid"],
                                                                  "local_id": row["id"], "sync_error": row["sync_error"]})
            elif row["sync_state"] == "conflict":
                fields = {f for (r, f) in conflicts if r == row["pkcustomerid"]}
                unexpected = sorted(f for f in fields if (row["pkcustomerid"], f) not in self.conflicts_expected)
                if unexpected or not fields:
                    self.violate(context, "no_unexpected_conflict", {"customer": row["pkcustomerid"],
                                                                     "fields": unexpected or "(none recorded)"})
        missing = sorted(set(sim) - set(by_id))
        extra = sorted(set(by_id) - set(sim))
        if missing or extra:
            self.violate(context, "same_customers", {"missing_from_mirror": missing[:10], "not_in_api": extra[:10]})
        self.checks["rows_left_pending"] += sum(1 for r in rows if r["sync_state"] == "pending")


# -- entry points -------------------------------------------------------------------------


def machine() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def histogram(times: list[float]) -> dict[str, int]:
    counts = Counter(int(t / BUCKET) for t in times)
    if not counts:
        return {}
    return {f"{b * BUCKET:.1f}-{(b + 1) * BUCKET:.1f}": counts.get(b, 0) for b in range(max(counts) + 1)}


def run_rounds(rounds: int = 200, seed: int = 1, customers: int = 300, *, latency_ms: float = LATENCY_MS,
               max_kill: float = MAX_KILL_SECONDS, strata: list[str] | None = None,
               progress: Callable[[dict], None] | None = None) -> dict:
    """Run the crash rounds against one simulator and one mirror; return the JSON-able report.

    `strata` (optional, cycled) fixes each round's kill stratum ("before", "window", "after")
    instead of drawing it, so a short run can be sure to cover all three.
    """
    started = time.perf_counter()
    processes = Processes()
    results: list[dict] = []
    try:
        with running_simulator(customers, seed=seed, api_key=API_KEY) as (url, key), \
                tempfile.TemporaryDirectory(prefix="spmirror-crash-") as tmp:
            run = CrashRun(url, key, Path(tmp), processes)
            code, output, _ = run.sync()
            if code != 0:
                raise RuntimeError(f"the initial sync exited {code}: {output}")
            admin(url, key, "faults", {"latency_ms": latency_ms})
            window = Window(max_kill)
            run.calibrate(window)
            calibration = {"after_calibration": window.summary()}
            for index in range(rounds):
                stratum = strata[index % len(strata)] if strata else None
                try:
                    result = run.run_round(index, seed, window, stratum)
                finally:
                    processes.reap()
                results.append(result)
                if progress is not None:
                    progress(result)
            violations, violation_count, checks = run.violations, run.violation_count, dict(run.checks)
            calibration["at_end"] = window.summary()
    finally:
        processes.reap()
    killed = [r["killed_after"] for r in results if r["phase"] != "exited_before_kill"]
    return {
        "rounds": len(results),
        "seed": seed,
        "customers": customers,
        "latency_ms": latency_ms,
        "modes": dict(Counter(r["mode"] for r in results)),
        "calibration": calibration,
        "kill_points": dict(Counter(r["phase"] for r in results).most_common()),
        "kill_points_by_mode": {mode: dict(Counter(r["phase"] for r in results if r["mode"] == mode).most_common())
                                for mode in ("sync", "run")},
        "kill_flags": dict(Counter(f for r in results for f in r["flags"]).most_common()),
        "kill_strata": dict(Counter(r["stratum"] for r in results)),
        # Seconds from the launch to the SIGKILL (rounds whose process had exited on its own left out).
        "kill_time_histogram": histogram(killed),
        "kill_time_range": [min(killed), max(killed)] if killed else None,
        # "window" rounds: seconds from the moment the process took the sync lock to the SIGKILL.
        "kill_after_sync_lock_histogram": histogram([r["kill_at"] for r in results
                                                     if r["stratum"] == "window" and r["lock_taken_after"] is not None]),
        "checks": checks,
        "violations": {"count": violation_count, "first": violations},
        "seconds": round(time.perf_counter() - started, 1),
        "machine": machine(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--latency-ms", type=float, default=LATENCY_MS)
    parser.add_argument("--max-kill", type=float, default=MAX_KILL_SECONDS,
                        help="the latest kill, in seconds after the process starts (default 1.5)")
    parser.add_argument("--quiet", action="store_true", help="no per-round line on stderr")
    args = parser.parse_args()
    # SIGTERM runs the finally blocks too, so no simulator or killed-sync process outlives the run.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))

    def progress(result: dict) -> None:
        if not args.quiet:
            print(f"round {result['round']:>4} {result['mode']:<4} {result['stratum']:<6} kill {result['kill_at']:.3f}s "
                  f"after {result['kill_from']} ({result['killed_after']:.3f}s after launch): {result['phase']} "
                  f"{' '.join(result['flags'])}", file=sys.stderr, flush=True)

    report = run_rounds(args.rounds, args.seed, args.customers, latency_ms=args.latency_ms, max_kill=args.max_kill,
                        progress=progress)
    print(json.dumps(report, indent=2, default=str))
    return 1 if report["violations"]["count"] else 0


if __name__ == "__main__":
    sys.exit(main())
