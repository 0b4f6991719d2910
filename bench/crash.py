"""Crash suite: SIGKILL `spmirror sync` and `spmirror run` at seeded moments (in the push, in the
walk, during the adoption of a create whose answer was lost), then check that every edit was
delivered or is kept, nothing was created twice and no row was tied to somebody else's customer;
prints JSON and exits 1 on any violation.

    .venv/bin/python bench/crash.py [--rounds 200] [--seed 1] [--customers 300] [--strata a,b,...]
                                    [--db postgresql://user@host:5432/database]

One simulator subprocess serves the whole run (15 ms per API request, so a sync lasts long
enough to be killed in the middle of it) and one mirror is synced once at the start: a SQLite
file in a temporary directory, or, with `--db postgresql://...`, a fresh schema in that database
(dropped after the run). Each round:

  1. local edits from a separate process with Python's sqlite3, or psycopg on PostgreSQL
     (UPDATEs of writable text
     columns with round-unique values, INSERTs of new customers with round-unique emails and
     surnames, the surname being the person's token) and remote edits through the simulator's
     /_admin/ routes (a field of a few customers, a status, one new customer); now and then a
     remote edit hits the very field edited locally (a conflict is then the expected outcome)
     or another field of a locally edited customer;
  2. the adoption scenario: in about half the rounds the simulator's fault script gives the
     round's first (or every) createcustomer `lost_create` (Solar Proof creates the customer,
     the answer never arrives), so the killed process or a follow-up sync must adopt it after a
     complete walk; every fifth round (index % 5 == 1) a colleague's customer with the same
     email as the first INSERT but other names (the "decoy") is created remotely first, so
     adoption must tell the two apart; every third round (index % 3 == 2) the simulator has no
     `getcustomer` (quirk), for the killed process and both follow-up syncs;
  3. `python -m mirror sync` (even rounds) or `python -m mirror run` (odd rounds: interval 1h,
     watch 0.1s) as a subprocess, SIGKILLed after a seeded delay;
  4. in about half the rounds, a person then fixes the phone of each INSERT still without its
     customer (the fix must reach Solar Proof: an adoption's base is what the create sent); and
     in about half the rounds killed before their sync began, the first INSERT is left exactly
     as a kill between its intent's COMMIT and its POST leaves it (`forge_intent`: no real kill
     lands in that gap, nothing happens between the two, so this is synthetic and flagged
     "intent_forged_before_post");
  5. `spmirror sync` to completion, twice;
  6. the invariants (see `check_round`), each failure recorded as a violation: every local edit
     delivered (Solar Proof holds it, sent once) or kept in a 'conflict'/'error' row; a row
     still 'pending' is a violation, except a create whose intent exists and for which no
     createcustomer ever reached the simulator ("pending_create_never_sent", checked again next
     round, when it must be delivered); no person (token) created twice; every created row tied
     to the customer carrying its own token; every sent value confirmed by a later pull; synced
     rows equal to Solar Proof; remote changes kept; no unexplained error or conflict row.

Kill delays fall in five strata. Three are timed (12% / 60% / 12%): "before" is 0 s up to the
sync's usual start after launch; "window" is 0 s up to the sync's usual length, counted from the
moment the process takes the mirror's sync lock (seen by polling `<db>.sync.lock` for its pid on
SQLite, pg_locks for the sync's advisory lock held by a session of that pid on PostgreSQL: see
SyncLockWatch), so it lands in the push or the walk; "after" is from the sync's usual end to
about 1.5 s after launch. The usual start and length are medians of recent measurements. Two are held (8% each):
the fault script gives one request a `stall` (the simulator applies it, then holds the answer
back for 15 s) and the process is killed 40-100 ms after the simulator took that request:
"stall_push" stalls the round's first createcustomer or an updatecustomer (a kill in the push
with a write applied and unanswered), "stall_walk" stalls the walk's first getallcustomers
after a `lost_create` (a kill in the pull that was to adopt it).

The phase a kill actually hit is classified afterwards from what the simulator received and
what the mirror holds (see `classify`); "adoption" means the killed process had begun its
walk while the mirror held an intent for a create Solar Proof had applied (or the walk had
adopted it and the run had not finished); "push_after_walk" means an update that waited for the
walk (no `getcustomer`) had been applied.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))

import postgres_schema  # noqa: E402
from simulator_process import admin, running_simulator  # noqa: E402

API_KEY = "crash-key"
LATENCY_MS = 15.0
MAX_KILL_SECONDS = 1.5
MAX_LOCK_WAIT = 20.0  # a "window" kill waits this long at most for the sync lock
MAX_STALL_WAIT = 20.0  # a held kill waits this long at most for the stalled request
STALL_SECONDS = 15.0  # how long the simulator holds a stalled answer back (the kill comes first)
SYNC_TIMEOUT = 180.0  # one `spmirror sync` to completion
EDIT_TIMEOUT = 60.0
KILL_WAIT = 15.0  # after SIGKILL, how long to wait for the process to be reaped
BUCKET = 0.1  # seconds per kill-time histogram bucket
MAX_REPORTED = 20
STRATA = (("before", 0.12), ("window", 0.60), ("after", 0.12), ("stall_push", 0.08), ("stall_walk", 0.08))
HELD = {"stall_push", "stall_walk"}
NEW_TOKEN = re.compile(r"New r\d+n\d+")  # the surname of a local INSERT: one person per round
PUSH_PHASES = ("push_before_writes", "push_between_writes", "push_done_before_walk", "push_after_walk")

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
_POSTGRES_EDIT_SCRIPT = r"""
import psycopg, sys
with psycopg.connect(sys.argv[1], autocommit=True, connect_timeout=10, application_name="spmirror-crash-edit") as con:
    for statement in sys.argv[2:]:
        con.execute(statement)
"""


# -- small helpers ------------------------------------------------------------------------


def sql_text(value: Any) -> str:
    """`value` as an SQL literal."""
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


# -- the mirror database: a SQLite file (its path) or a PostgreSQL schema (its URL) ----------
# Read and edited as a person's client does (sqlite3 or psycopg), never through the product's Store.


def is_postgres(db: str | Path) -> bool:
    return postgres_schema.is_postgres_url(str(db))


def edit(db: str | Path, *statements: str) -> None:
    """Run SQL statements against the mirror from a separate Python process (a person's edit)."""
    script = _POSTGRES_EDIT_SCRIPT if is_postgres(db) else _EDIT_SCRIPT
    subprocess.run([sys.executable, "-c", script, str(db), *statements], check=True,
                   timeout=EDIT_TIMEOUT, capture_output=True, text=True)


def query(db: str | Path, sql: str, params: tuple = ()) -> list[dict]:
    """Rows of `sql` (`?` placeholders on both backends) from the mirror (a read, so it may run in
    this process)."""
    if is_postgres(db):
        from psycopg.rows import dict_row

        with _postgres_reader(str(db)).cursor(row_factory=dict_row) as cursor:
            cursor.execute(_percent_marks(sql), tuple(params))
            return list(cursor.fetchall()) if cursor.description else []
    con = sqlite3.connect(db, timeout=30)
    con.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in con.execute(sql, params)]
    finally:
        con.close()


# One autocommit session per PostgreSQL mirror, kept for the run: a round reads it dozens of times,
# and the sync-lock watch every few milliseconds. Autocommit, so no read holds a snapshot or a lock.
_postgres_readers: dict[str, Any] = {}


def _postgres_reader(url: str):
    import psycopg

    reader = _postgres_readers.get(url)
    if reader is None or reader.closed:
        reader = psycopg.connect(url, autocommit=True, connect_timeout=10, application_name="spmirror-crash-reader")
        _postgres_readers[url] = reader
    return reader


def close_readers() -> None:
    while _postgres_readers:
        _postgres_readers.popitem()[1].close()


def _percent_marks(sql: str) -> str:
    """`?` marks outside quotes as psycopg's `%s`, and every literal `%` doubled."""
    out, quote = [], ""
    for char in sql:
        if quote:
            if char == quote:
                quote = ""
        elif char in ("'", '"'):
            quote = char
        elif char == "?":
            out.append("%s")
            continue
        out.append("%%" if char == "%" else char)
    return "".join(out)


def run_order(db: str | Path, newest_first: bool = False) -> str:
    """ORDER BY for sync_runs in the order the rows were written, from what the database itself
    records rather than the product's own ordering: SQLite's rowid; on PostgreSQL the start, then
    xmin (the transaction that last wrote the row). Runs never overlap (the sync lock), so the
    last written is the last started."""
    direction = " DESC" if newest_first else ""
    if is_postgres(db):
        return f"started_at{direction}, xmin::text::bigint{direction}"
    return f"rowid{direction}"


class SyncLockWatch:
    """Whether process `pid` holds the mirror's sync lock yet.

    SQLite: the lock file `<db>.sync.lock` begins "pid <pid> ". PostgreSQL: the lock is a
    session-level advisory lock (mirror/store/postgres/advisory_lock.py) keyed on a hash of the
    database, the schema and "sync", held by a session the process names "<role> pid <pid> on
    <host>"; pg_locks shows it granted (the run lock, which a daemon takes first, has another key).
    """

    # advisory_lock.py's _KEY for purpose "sync", and its _HOLDER narrowed to one process.
    _KEY = ("SELECT hashtextextended('spmirror.' || current_database() || '.' || coalesce(current_schema(), '') "
            "|| '.sync', 0) AS key")
    _HELD = (
        "SELECT count(*) AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND l.classid = ((?::bigint >> 32) & 4294967295)::oid AND l.objid = (?::bigint & 4294967295)::oid "
        "AND a.application_name LIKE ?"
    )

    def __init__(self, db: str | Path, pid: int):
        self.db, self.pid = db, pid
        if is_postgres(db):
            self.key = query(db, self._KEY)[0]["key"]
        else:
            self.lock_path = Path(db).with_name(Path(db).name + ".sync.lock")
            self.holder = f"pid {pid} ".encode()

    def taken(self) -> bool:
        if is_postgres(self.db):
            return query(self.db, self._HELD, (self.key, self.key, f"% pid {self.pid} on %"))[0]["n"] > 0
        try:
            return self.lock_path.read_bytes().startswith(self.holder)
        except OSError:
            return False


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


def email_of(value: Any) -> str:
    return str(value or "").strip().lower()


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
class NewRow:
    """A customer INSERTed locally: its surname is the round-unique token of the person."""

    email: str
    surname: str
    phone1: str
    type: int
    round: int
    local_id: int | None = None  # the mirror row, known once inserted
    write_mark: int = 0  # the simulator's write log length before its round


@dataclass
class Round:
    index: int
    seed: str
    mode: str  # "sync" or "run"
    stratum: str
    kill_at: float
    local_edits: list[tuple[int, str, str]] = field(default_factory=list)  # (remote id, column, value)
    local_creates: list[NewRow] = field(default_factory=list)
    remote_edits: list[tuple[int, str, Any]] = field(default_factory=list)  # (remote id, column, value)
    status_change: tuple[int, int] | None = None
    remote_create: str | None = None
    expected_conflicts: set[tuple[int, str]] = field(default_factory=set)
    lost_creates: int = 0  # how many createcustomer calls get `lost_create` (the first ones sent)
    decoy: str | None = None  # email of a local create that a colleague's customer also has
    getcustomer: bool = True  # False: the simulator has no getcustomer this round
    stall_action: str | None = None  # the request a held kill waits for
    correct: bool = False  # after the kill, correct the phone of each INSERT still without its customer
    forge_intent: bool = False  # killed before its sync began: leave the first INSERT as if killed after its intent


class Window:
    """How long a sync takes to begin after its process starts, and how long it runs: medians of
    the latest measurements (calibration, every sync of step 4, every sync lock a killed process
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
        """The kill delay: from the launch ("before", "after"), from the moment the process takes
        the sync lock ("window": anywhere in its push and walk), or from the moment the simulator
        took the stalled request (held strata: once it is applied, while its answer is held)."""
        if stratum == "before":
            return rng.uniform(0.0, max(0.0, self.start - 0.1))
        if stratum == "window":
            return rng.uniform(0.0, self.duration)
        if stratum in HELD:
            return rng.uniform(0.04, 0.1)
        after = self.start + self.duration + 0.1
        return rng.uniform(after, max(self.max_kill, after + 0.3))

    def summary(self) -> dict:
        return {"sync_starts_after": round(self.start, 3), "sync_seconds": round(self.duration, 3)}


def plan_round(index: int, seed: int, window: Window, pool: list[int], sim_by_id: dict[int, dict],
               stratum: str | None = None) -> Round:
    """Draw a round's mode, kill time, edits and adoption scenario (deterministic in seed and index)."""
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
    # The INSERTs and the adoption scenario come from a stream of their own, so they do not depend on
    # how many customers the pool holds (which earlier rounds' outcomes decide).
    scenario = random.Random(f"crash/{seed}/{index}/creates")
    for j in range(scenario.randint(1, 2)):
        plan.local_creates.append(NewRow(f"crash-{tag}-new{j}@example.com.au", f"New {tag}n{j}",
                                         f"0400 {index} {j}", 1 + (index + j) % 3, index))
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
    draw = scenario.random()
    plan.lost_creates = 0 if draw < 0.45 else 1 if draw < 0.85 else len(plan.local_creates)
    plan.getcustomer = index % 3 != 2
    if index % 5 == 1:
        plan.decoy = plan.local_creates[0].email  # the create a lost_create (or a stall) hits first
        plan.lost_creates = max(1, plan.lost_creates)
    stall_create = scenario.random() < 0.5
    if stratum == "stall_walk":
        plan.lost_creates = max(1, plan.lost_creates)
        plan.stall_action = "getallcustomers"
    elif stratum == "stall_push":
        plan.stall_action = "createcustomer" if stall_create else "updatecustomer"
    plan.correct = scenario.random() < 0.5
    plan.forge_intent = scenario.random() < 0.5
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


def decoy_surname(plan: Round) -> str:
    return f"Decoy r{plan.index}"


# -- the run ------------------------------------------------------------------------------


class CrashRun:
    """The simulator, the mirror and the bookkeeping shared by every round."""

    def __init__(self, url: str, key: str, workdir: Path, processes: Processes, latency_ms: float = LATENCY_MS,
                 db: str | Path | None = None):
        self.url, self.key, self.workdir, self.processes = url, key, workdir, processes
        self.latency_ms = latency_ms
        # The mirror: a SQLite file's path, or the URL of a PostgreSQL schema.
        self.db: str | Path = workdir / "mirror.db"
        if db is not None:
            self.db = db if is_postgres(db) else Path(db)
        config = workdir / "empty.toml"
        config.write_text("")
        self.env = clean_env(SPMIRROR_API_URL=url, SPMIRROR_API_KEY=key, SPMIRROR_DB=str(self.db),
                             SPMIRROR_CONFIG=str(config), SPMIRROR_LOGGING_LEVEL="info",
                             SPMIRROR_LOGGING_FORMAT="json", PYTHONUNBUFFERED="1")
        self.conflicts_expected: set[tuple[int, str]] = set()
        self.errors_expected: set[int] = set()  # local ids of creates a near miss rightly left in 'error'
        self.carried: dict[int, NewRow] = {}  # creates whose POST never left, checked again next round
        self.doubled: set[str] = set()  # tokens already reported as created twice
        self.violations: list[dict] = []
        self.violation_count = 0
        self.violations_by_check: Counter[str] = Counter()
        self.checks: Counter[str] = Counter()
        self.last: tuple[Round, dict, int] | None = None  # the last round's plan, context and write mark

    # -- the simulator's switches --

    def faults(self, script: list[dict] | None = None) -> None:
        """Reset the fault plan to the run's latency and this script (none: no faults at all)."""
        admin(self.url, self.key, "faults", {"reset": True, "latency_ms": self.latency_ms, "script": script or []})

    def drop_stall(self) -> None:
        """Take an unconsumed stall out of the script, keeping the lost creates still queued."""
        settings = admin_get(self.url, self.key, "faults")
        keep = [{"kind": e["kind"], "count": e["count"], "action": e["action"]}
                for e in settings["script"] if e["kind"] != "stall"]
        if len(keep) != len(settings["script"]):
            self.faults(keep)

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

    def make_changes(self, plan: Round, write_mark: int) -> None:
        by_customer: dict[int, list[tuple[str, str]]] = {}
        for remote_id, column, value in plan.local_edits:
            by_customer.setdefault(remote_id, []).append((column, value))
        statements = [
            f"UPDATE customers SET {', '.join(f'{c} = {sql_text(v)}' for c, v in edits)} "
            f"WHERE pkcustomerid = {remote_id}"
            for remote_id, edits in by_customer.items()
        ]
        for new in plan.local_creates:
            statements.append(
                "INSERT INTO customers (customerfirstname, customersurname, customeremail, customerphone1, "
                f"fkcustomertypeid) VALUES ('Nina', {sql_text(new.surname)}, {sql_text(new.email)}, "
                f"{sql_text(new.phone1)}, {new.type})"
            )
        edit(self.db, *statements)
        for new in plan.local_creates:
            new.local_id = query(self.db, "SELECT id FROM customers WHERE customersurname = ? AND pkcustomerid IS NULL",
                                 (new.surname,))[0]["id"]
            new.write_mark = write_mark
        for remote_id, column, value in plan.remote_edits:
            admin_patch(self.url, self.key, remote_id, {SIM_FIELD[column]: value})
        if plan.status_change:
            admin(self.url, self.key, f"customers/{plan.status_change[0]}/status", {"status": plan.status_change[1]})
        admin(self.url, self.key, "customers", {"first_name": "Remy", "last_name": f"Remote r{plan.index}",
                                                "email": plan.remote_create, "phone1": f"0411 {plan.index}",
                                                "type": 2})
        if plan.decoy:
            # A colleague's customer with the same email as one of ours and other names: a near miss.
            admin(self.url, self.key, "customers", {"first_name": "Dana", "last_name": decoy_surname(plan),
                                                    "email": plan.decoy, "phone1": f"0422 {plan.index}", "type": 1})
        script = []
        if plan.stall_action in ("createcustomer", "updatecustomer"):
            script.append({"kind": "stall", "count": 1, "action": plan.stall_action, "stall_seconds": STALL_SECONDS})
        if plan.lost_creates:
            script.append({"kind": "lost_create", "count": plan.lost_creates})
        if plan.stall_action == "getallcustomers":
            script.append({"kind": "stall", "count": 1, "action": "getallcustomers", "stall_seconds": STALL_SECONDS})
        if script:
            self.faults(script)
        if not plan.getcustomer:
            admin(self.url, self.key, "quirks", {"getcustomer": False})

    def kill_mid_sync(self, plan: Round, window: Window, write_mark: int, calls_before: dict,
                      injected_mark: int) -> dict:
        """Start the sync or the daemon, SIGKILL it after plan.kill_at seconds (counted from the launch,
        from the moment it takes the sync lock ("window"), or from the moment the simulator took the
        stalled request (held strata)); return what the kill hit."""
        runs_before = {r["run_id"] for r in query(self.db, "SELECT run_id FROM sync_runs")}
        env = dict(self.env)
        if plan.mode == "run":
            env.update(SPMIRROR_SYNC_INTERVAL="1h", SPMIRROR_DAEMON_WATCH_INTERVAL="0.1s")
        log_path = self.workdir / f"killed-{plan.index}.log"
        lock_seen: float | None = None
        stall_seen: float | None = None
        with open(log_path, "w") as log:
            started = time.monotonic()
            process = self.processes.start([sys.executable, "-m", "mirror", plan.mode], env=env, cwd=self.workdir,
                                           stdout=log, stderr=subprocess.STDOUT)
            lock = SyncLockWatch(self.db, process.pid)
            if plan.stratum == "window":
                deadline = started + MAX_LOCK_WAIT
            elif plan.stratum in HELD:
                deadline = started + MAX_STALL_WAIT
            else:
                deadline = started + plan.kill_at
            exited = False
            while True:
                now = time.monotonic()
                if process.poll() is not None:
                    exited = True
                    break
                if lock_seen is None and plan.stratum == "window" and lock.taken():
                    lock_seen = now - started
                    window.observe(starts_after=lock_seen)
                    deadline = now + plan.kill_at
                if stall_seen is None and plan.stratum in HELD:
                    injected = admin_get(self.url, self.key, "faults")["injected"][injected_mark:]
                    if any(e["kind"] == "stall" for e in injected):
                        stall_seen = time.monotonic() - started
                        deadline = time.monotonic() + plan.kill_at
                if now >= deadline:
                    break
                waiting = (lock_seen is None and plan.stratum == "window") or (stall_seen is None and plan.stratum in HELD)
                time.sleep(0.002 if waiting else min(0.01, max(0.0, deadline - now)))
            if not exited:
                process.kill()
            killed_after = time.monotonic() - started
            process.wait(timeout=KILL_WAIT)
        if plan.stratum in HELD:
            self.drop_stall()  # never let a follow-up sync wait for it
        time.sleep(0.1)  # let the simulator finish a request the dead client had in flight
        events = []
        for line in log_path.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
        log_path.unlink(missing_ok=True)
        result = self.classify(plan, exited, killed_after, runs_before, write_mark, calls_before, events)
        result["lock_taken_after"] = None if lock_seen is None else round(lock_seen, 3)
        result["stall_taken_after"] = None if stall_seen is None else round(stall_seen, 3)
        if plan.stratum in HELD and stall_seen is None:
            result["flags"].append("stall_not_reached")
        return result

    def classify(self, plan: Round, exited: bool, killed_after: float, runs_before: set[str], write_mark: int,
                 calls_before: dict, events: list[dict]) -> dict:
        """The phase the kill hit, from evidence only: the simulator's call counts and write log,
        and the mirror as the dead process left it (`runs_before`: the run ids it held before)."""
        calls = admin_get(self.url, self.key, "calls")
        delta = {k: v - calls_before.get(k, 0) for k, v in calls.items() if v != calls_before.get(k, 0)}
        writes = [e for e in admin_get(self.url, self.key, "writes")[write_mark:]
                  if e["action"] in ("createcustomer", "updatecustomer")]
        runs = query(self.db, f"SELECT run_id, finished_at FROM sync_runs ORDER BY {run_order(self.db)}")
        runs = [r for r in runs if r["run_id"] not in runs_before]
        killed_runs = [r["run_id"] for r in runs]
        flags = []
        created = {email_of(body_data(e).get("email")) for e in writes if e["action"] == "createcustomer" and e["applied"]}
        intents = query(self.db, "SELECT i.local_id, i.email, c.pkcustomerid, c.sync_state FROM create_intents i "
                                 "LEFT JOIN customers c ON c.id = i.local_id")
        # The mirror holds an intent for a create Solar Proof applied: only a walk can settle it.
        intents = [i for i in intents if i["pkcustomerid"] is None and i["sync_state"] == "pending"]  # still waiting
        open_applied = [i for i in intents if email_of(i["email"]) in created]
        if open_applied:
            flags.append("create_applied_unrecorded")
        if any(email_of(i["email"]) not in created for i in intents):
            flags.append("create_intent_before_post")
        adopted_by_killed = 0
        if killed_runs:
            marks = ",".join("?" * len(killed_runs))
            adopted_by_killed = query(self.db, f"SELECT count(*) AS n FROM customer_changes WHERE field = '(created)' "
                                               f"AND source = 'local (adopted)' AND run_id IN ({marks})",
                                      tuple(killed_runs))[0]["n"]
        if adopted_by_killed:
            flags.append("adopted_by_killed_run")
        updated = {str(body_data(e).get("pkcustomerid")) for e in writes
                   if e["action"] == "updatecustomer" and e["applied"]}
        for remote_id in {r for r, _c, _v in plan.local_edits}:
            row = query(self.db, "SELECT sync_state FROM customers WHERE pkcustomerid = ?", (remote_id,))
            if str(remote_id) in updated and row and row[0]["sync_state"] == "pending":
                flags.append("update_applied_unrecorded")
                break
        deferred = {str(e.get("remote_id")) for e in events if e.get("event") == "update_deferred"}
        if deferred:
            flags.append("updates_deferred_to_walk")
        # The sync's second pass (updates that waited for the walk) had begun: one of them was applied.
        second_pass = bool(deferred & updated)
        expected_writes = len({r for r, c, _v in plan.local_edits if (r, c) not in plan.expected_conflicts})
        expected_writes += len(plan.local_creates)
        pages = delta.get("getallcustomers", 0)
        if exited:
            phase = "exited_before_kill"
        elif any(r["finished_at"] for r in runs):
            phase = "after_sync_finished"
        elif not runs:
            phase = "before_sync_started"
        elif second_pass:
            phase = "push_after_walk"
        elif pages and (open_applied or adopted_by_killed):
            phase = "adoption"  # the killed pull had a create to adopt (and had not, or had not finished)
        elif pages:
            phase = "walk"
        elif not writes:
            phase = "push_before_writes"
        elif len(writes) < expected_writes:
            phase = "push_between_writes"
        else:
            phase = "push_done_before_walk"
        return {"phase": phase, "flags": flags, "killed_after": round(killed_after, 3), "api_calls": delta,
                "writes": len(writes), "killed_runs": killed_runs,
                "last_events": [e.get("event") for e in events if e.get("event")][-4:]}

    def run_round(self, index: int, seed: int, window: Window, stratum: str | None = None, **overrides: Any) -> dict:
        """One round; `overrides` set fields of the drawn plan (a test pins kill_at, stall_action,
        forge_intent, correct ...)."""
        state = admin_get(self.url, self.key, "state")
        sim_by_id = {c["id"]: c for c in state["customers"]}
        plan = plan_round(index, seed, window, self.pool(sim_by_id), sim_by_id, stratum)
        for name, value in overrides.items():
            if not hasattr(plan, name):
                raise TypeError(f"a round has no {name!r}")
            setattr(plan, name, value)
        self.conflicts_expected |= plan.expected_conflicts
        write_mark = len(admin_get(self.url, self.key, "writes"))
        injected_mark = len(admin_get(self.url, self.key, "faults")["injected"])
        changes_mark = query(self.db, "SELECT coalesce(max(id), 0) AS n FROM customer_changes")[0]["n"]
        try:
            self.make_changes(plan, write_mark)
            calls_before = admin_get(self.url, self.key, "calls")
            kill = self.kill_mid_sync(plan, window, write_mark, calls_before, injected_mark)
            context = {"round": index, "round_seed": plan.seed, "mode": plan.mode, "stratum": plan.stratum,
                       "kill_at": plan.kill_at,
                       "kill_from": {"window": "sync lock", "stall_push": "stall", "stall_walk": "stall"}.get(
                           plan.stratum, "launch"),
                       "scenario": {"lost_creates": plan.lost_creates, "decoy": bool(plan.decoy),
                                    "getcustomer": plan.getcustomer, "stall": plan.stall_action,
                                    "correct": plan.correct, "forge_intent": plan.forge_intent},
                       **kill}
            if plan.forge_intent and context["phase"] == "before_sync_started" and self.forge_intent(plan):
                context["flags"].append("intent_forged_before_post")
            context["corrected_creates"] = self.correct_waiting_creates(plan)
            for attempt in (1, 2):
                code, output, _seconds = self.sync(window=window)
                if code != 0:
                    self.violate(context, "sync_exit_code", {"attempt": attempt, "exit_code": code, "output": output})
            injected = admin_get(self.url, self.key, "faults")["injected"][injected_mark:]
        finally:
            self.faults()
            admin(self.url, self.key, "quirks", {"reset": True})
        context["lost_create_injected"] = sum(1 for e in injected if e["kind"] == "lost_create")
        context["outcome"] = self.check_round(plan, context, write_mark, changes_mark)
        self.last = (plan, context, write_mark)
        return context

    def forge_intent(self, plan: Round) -> bool:
        """Write what a SIGKILL between record_create_intent's COMMIT and the POST leaves (the intent
        with what the create sends, and no POST), for the first INSERT of a round whose process was
        killed before its sync began. No real kill lands in that gap (nothing happens between the
        two), so this is the only way the rounds meet a create whose POST never left: the follow-up
        syncs must neither send it nor adopt a stranger for it before two complete walks."""
        from mirror.customer import WRITABLE_FIELDS
        from mirror.store.creates import sent_fields

        new = plan.local_creates[0]
        row = query(self.db, "SELECT * FROM customers WHERE id = ?", (new.local_id,))
        if not row or row[0]["pkcustomerid"] is not None or query(
                self.db, "SELECT 1 FROM create_intents WHERE local_id = ?", (new.local_id,)):
            return False
        sent = sent_fields({name: row[0][name] for name in WRITABLE_FIELDS})
        edit(self.db, "INSERT INTO create_intents (local_id, email, sent_at, complete_walks_since, sent_json, "
                      f"acknowledged) VALUES ({new.local_id}, {sql_text(new.email)}, "
                      f"{sql_text(datetime.now(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'))}, 0, "
                      f"{sql_text(json.dumps(sent, default=str))}, 0)")
        return True

    def correct_waiting_creates(self, plan: Round) -> int:
        """A person fixes the phone of an INSERT the killed process left without its customer (sent
        with its answer lost, or not sent yet): the fix must reach Solar Proof, not be reverted by
        an adoption whose base is what the create sent."""
        if not plan.correct:
            return 0
        fixed = 0
        for new in plan.local_creates:
            row = query(self.db, "SELECT pkcustomerid FROM customers WHERE id = ?", (new.local_id,))
            if row and row[0]["pkcustomerid"] is None:
                new.phone1 = f"{new.phone1} fix"
                edit(self.db, f"UPDATE customers SET customerphone1 = {sql_text(new.phone1)} WHERE id = {new.local_id}")
                fixed += 1
        return fixed

    # -- invariants --

    def violate(self, context: dict, check: str, detail: dict) -> None:
        self.violation_count += 1
        self.violations_by_check[check] += 1
        if len(self.violations) < MAX_REPORTED:
            self.violations.append({**{k: context.get(k) for k in (
                "round", "round_seed", "mode", "stratum", "kill_at", "kill_from", "lock_taken_after",
                "stall_taken_after", "phase", "flags", "killed_after", "scenario", "last_events")},
                "check": check, "detail": detail})

    def check_round(self, plan: Round, context: dict, write_mark: int, changes_mark: int = 0) -> dict:
        """The invariants after the two clean syncs; returns what became of the round's edits."""
        outcome: Counter[str] = Counter()
        state = admin_get(self.url, self.key, "state")
        sim = {c["id"]: c for c in state["customers"]}
        all_writes = admin_get(self.url, self.key, "writes")
        writes = all_writes[write_mark:]
        rows = query(self.db, "SELECT * FROM customers")
        by_id = {r["pkcustomerid"]: r for r in rows if r["pkcustomerid"] is not None}
        by_local = {r["id"]: r for r in rows}
        conflicts = {(c["pkcustomerid"], c["field"]): c for c in query(self.db, "SELECT * FROM customer_conflicts")}
        intents = {i["local_id"]: i for i in query(self.db, "SELECT * FROM create_intents")}

        # 1. every local UPDATE is delivered (Solar Proof holds it, sent once), or kept in a
        #    'conflict' or 'error' row; still 'pending' after two clean syncs is a violation
        for remote_id, column, value in plan.local_edits:
            self.checks["local_edits"] += 1
            outcome["local_updates"] += 1
            sent = [e for e in writes if e["action"] == "updatecustomer" and e["applied"]
                    and str(body_data(e).get("pkcustomerid")) == str(remote_id)
                    and body_data(e).get(WRITE_KEY[column]) == value]
            row = by_id.get(remote_id)
            state_now = row["sync_state"] if row else None
            kept = row is not None and row[column] == value
            api_value = sim.get(remote_id, {}).get(SIM_FIELD[column])
            conflict = conflicts.get((remote_id, column))
            detail = {"customer": remote_id, "column": column, "value": value, "times_sent": len(sent),
                      "sync_state": state_now, "sync_error": row["sync_error"] if row else None,
                      "mirror_value": row[column] if row else None, "api_value": api_value}
            if len(sent) > 1:
                self.violate(context, "update_sent_at_most_once", detail)
            if state_now == "pending":
                outcome["still_pending"] += 1
                self.violate(context, "no_edit_pending_after_two_syncs", detail)
            elif conflict is not None and state_now == "conflict":
                if kept and conflict["local_value"] == value and (remote_id, column) in plan.expected_conflicts:
                    outcome["in_conflict"] += 1
                else:
                    self.violate(context, "edit_delivered_or_kept", {**detail, "conflict": conflict})
            elif norm(api_value) == norm(value) and len(sent) == 1:
                outcome["delivered"] += 1
                outcome["delivered_updates"] += 1
            elif state_now in ("conflict", "error") and kept:
                outcome["in_conflict" if state_now == "conflict" else "in_error"] += 1
            else:
                self.violate(context, "edit_delivered_or_kept", detail)

        # 2. every local INSERT (this round's, and an earlier round's whose POST never left) is
        #    one customer in Solar Proof, tied to its own row; or, if its intent was recorded and
        #    no createcustomer for it ever reached Solar Proof, still pending (counted apart)
        still_unsent: dict[int, NewRow] = {}
        for new in [*self.carried.values(), *plan.local_creates]:
            carried = new.round != plan.index
            self.checks["creates"] += 1
            outcome["carried_creates" if carried else "local_creates"] += 1
            ours = [c for c in sim.values() if c["last_name"] == new.surname]
            posts = [e for e in all_writes[new.write_mark:] if e["action"] == "createcustomer"
                     and email_of(body_data(e).get("email")) == email_of(new.email)
                     and body_data(e).get("surname") == new.surname]
            applied = [e for e in posts if e["applied"]]
            row = by_local.get(new.local_id)
            detail = {"local_id": new.local_id, "email": new.email, "surname": new.surname, "from_round": new.round,
                      "api_ids": [c["id"] for c in ours], "createcustomer_calls": len(posts),
                      "applied_createcustomer_calls": len(applied), "intent": new.local_id in intents,
                      "row": None if row is None else {k: row[k] for k in ("pkcustomerid", "sync_state", "sync_error",
                                                                           "customersurname", "customeremail")}}
            if len(ours) > 1 or len(applied) > 1:
                self.doubled.add(new.surname)
                self.violate(context, "no_duplicate_create", detail)
            if row is None:
                self.violate(context, "create_row_kept", detail)
                continue
            if row["pkcustomerid"] is not None:
                record = sim.get(row["pkcustomerid"])
                if record is None or record["last_name"] != new.surname or email_of(record["email"]) != email_of(new.email):
                    # 3. no row tied to another person: its customer carries the row's round-unique token
                    self.violate(context, "row_tied_to_its_own_customer",
                                 {**detail, "tied_to": record and {k: record[k] for k in ("id", "last_name", "email")}})
                elif (record["first_name"], record["phone1"], int(record["type"])) != ("Nina", new.phone1, new.type):
                    self.violate(context, "create_delivered_as_inserted", {**detail, "api": record})
                elif row["sync_state"] == "pending":
                    outcome["still_pending"] += 1
                    self.violate(context, "no_edit_pending_after_two_syncs", detail)
                else:
                    outcome["delivered"] += 1
                    outcome["delivered_creates"] += 1
                    if carried:
                        outcome["carried_creates_delivered"] += 1
                continue
            kept = row["customersurname"] == new.surname and email_of(row["customeremail"]) == email_of(new.email)
            if row["sync_state"] == "pending" and new.local_id in intents and not posts and not ours and kept:
                outcome["pending_create_never_sent"] += 1
                still_unsent[new.local_id] = new
            elif row["sync_state"] == "pending":
                outcome["still_pending"] += 1
                self.violate(context, "no_edit_pending_after_two_syncs", detail)
            elif (row["sync_state"] == "error" and kept and not ours and not applied
                  and any(email_of(c["email"]) == email_of(new.email) for c in sim.values())):
                # Never created, and a colleague's customer shares its email: a near miss, left to a person.
                outcome["near_miss_flagged"] += 1
                outcome["in_error"] += 1
                self.errors_expected.add(new.local_id)
            else:
                self.violate(context, "edit_delivered_or_kept", detail)
        self.carried = still_unsent
        # ... and no INSERT of an earlier round turned into a second customer since
        tokens = Counter(c["last_name"] for c in sim.values() if NEW_TOKEN.fullmatch(c["last_name"] or ""))
        for token in sorted(t for t, n in tokens.items() if n > 1 and t not in self.doubled):
            self.doubled.add(token)
            self.violate(context, "no_duplicate_create", {"surname": token, "api_ids": sorted(
                c["id"] for c in sim.values() if c["last_name"] == token), "found_later": True})

        # 4. the remote create and the decoy: one customer each, each in one row of its own
        people = [(plan.remote_create, f"Remote r{plan.index}")]
        if plan.decoy:
            people.append((plan.decoy, decoy_surname(plan)))
        for email, surname in people:
            self.checks["remote_creates"] += 1
            remote = [c["id"] for c in sim.values() if c["last_name"] == surname]
            local = [(r["id"], r["pkcustomerid"], r["sync_state"]) for r in rows if r["customersurname"] == surname]
            if len(remote) != 1 or len(local) != 1 or local[0][1] != remote[0]:
                self.violate(context, "remote_create_mirrored_once", {"email": email, "surname": surname,
                                                                      "api_ids": remote, "mirror_rows": local})

        # 5. every synced row equals Solar Proof on the writable fields
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

        # 6. no remote change was lost
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

        # 7. every value sent before the last sync was confirmed by a later pull
        last_run = query(self.db, f"SELECT run_id FROM sync_runs ORDER BY {run_order(self.db, newest_first=True)} "
                                  "LIMIT 1")[0]["run_id"]
        stale = query(self.db, "SELECT * FROM unconfirmed_writes WHERE run_id IS NULL OR run_id <> ?", (last_run,))
        if stale:
            self.violate(context, "sent_values_confirmed", {"unconfirmed_writes": stale[:10]})

        # 8. the file is sound (SQLite's integrity_check; PostgreSQL has no counterpart), an intent
        #    is open only for a create still waiting, no row is in an unexplained state, and both
        #    sides hold the same customers
        if not is_postgres(self.db):
            integrity = query(self.db, "PRAGMA integrity_check")
            if [list(r.values())[0] for r in integrity] != ["ok"]:
                self.violate(context, "integrity_check", {"result": [list(r.values())[0] for r in integrity][:10]})
        waiting = {r["id"] for r in rows if r["pkcustomerid"] is None and r["sync_state"] == "pending"}
        left = [i for i in intents.values() if i["local_id"] not in waiting | self.errors_expected]
        if left:
            self.violate(context, "create_intents_settled", {"intents": left[:10]})
        for row in rows:
            if row["sync_state"] == "error" and row["id"] not in self.errors_expected:
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

        # What became of the round's creates: adopted after a lost answer (by the killed process or a
        # follow-up sync), or created with an answer.
        made = query(self.db, "SELECT source, run_id FROM customer_changes WHERE id > ? AND field = '(created)' "
                               "AND source LIKE 'local%'", (changes_mark,))
        killed = set(context.get("killed_runs") or ())
        for entry in made:
            if entry["source"] == "local (adopted)":
                outcome["adopted"] += 1
                outcome["adopted_by_killed_run" if entry["run_id"] in killed else "adopted_by_follow_up_sync"] += 1
            elif entry["source"] == "local":
                outcome["created_with_answer"] += 1
        return dict(outcome)


# -- entry points -------------------------------------------------------------------------


def machine() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def histogram(times: list[float]) -> dict[str, int]:
    counts = Counter(int(t / BUCKET) for t in times)
    if not counts:
        return {}
    return {f"{b * BUCKET:.1f}-{(b + 1) * BUCKET:.1f}": counts.get(b, 0) for b in range(max(counts) + 1)}


@contextmanager
def crash_session(customers: int = 300, seed: int = 1, *, latency_ms: float = LATENCY_MS,
                  max_kill: float = MAX_KILL_SECONDS,
                  db: str | Path | None = None) -> Iterator[tuple[CrashRun, Window]]:
    """A simulator subprocess, a mirror synced once and a calibrated Window; every process
    started here is killed on the way out. `db`: a new SQLite file's path, or the URL of an empty
    PostgreSQL schema; None, mirror.db in the session's temporary directory."""
    processes = Processes()
    try:
        with running_simulator(customers, seed=seed, api_key=API_KEY) as (url, key), \
                tempfile.TemporaryDirectory(prefix="spmirror-crash-") as tmp:
            run = CrashRun(url, key, Path(tmp), processes, latency_ms, db)
            code, output, _ = run.sync()
            if code != 0:
                raise RuntimeError(f"the initial sync exited {code}: {output}")
            run.faults()
            window = Window(max_kill)
            run.calibrate(window)
            yield run, window
    finally:
        processes.reap()
        close_readers()


def summarize(results: list[dict], run: CrashRun) -> dict:
    """The part of the report that counts kills, edits, creates and violations."""
    killed = [r["killed_after"] for r in results if r["phase"] != "exited_before_kill"]
    outcome: Counter[str] = Counter()
    for r in results:
        outcome.update(r["outcome"])
    phases = Counter(r["phase"] for r in results)
    groups = Counter()
    for phase, n in phases.items():
        groups["push" if phase in PUSH_PHASES else phase] += n
    return {
        "kill_points": dict(phases.most_common()),
        "kill_points_grouped": dict(groups.most_common()),
        "kill_points_by_mode": {mode: dict(Counter(r["phase"] for r in results if r["mode"] == mode).most_common())
                                for mode in ("sync", "run")},
        "kill_points_by_stratum": {s: dict(Counter(r["phase"] for r in results if r["stratum"] == s).most_common())
                                   for s in sorted({r["stratum"] for r in results})},
        "kill_flags": dict(Counter(f for r in results for f in r["flags"]).most_common()),
        "kill_strata": dict(Counter(r["stratum"] for r in results)),
        # Seconds from the launch to the SIGKILL (rounds whose process had exited on its own left out).
        "kill_time_histogram": histogram(killed),
        "kill_time_range": [min(killed), max(killed)] if killed else None,
        # "window" rounds: seconds from the moment the process took the sync lock to the SIGKILL.
        "kill_after_sync_lock_histogram": histogram([r["kill_at"] for r in results
                                                     if r["stratum"] == "window" and r["lock_taken_after"] is not None]),
        "scenarios": {
            "rounds_with_lost_creates": sum(1 for r in results if r["scenario"]["lost_creates"]),
            "rounds_with_decoy": sum(1 for r in results if r["scenario"]["decoy"]),
            "rounds_without_getcustomer": sum(1 for r in results if not r["scenario"]["getcustomer"]),
            "stalled": dict(Counter(r["scenario"]["stall"] for r in results if r["scenario"]["stall"])),
            # INSERTs whose phone was corrected after the kill, while still without their customer.
            "creates_corrected_after_kill": sum(r["corrected_creates"] for r in results),
            # Synthetic: an intent written for a round killed before its sync began (see forge_intent).
            "intents_forged_before_post": sum(1 for r in results if "intent_forged_before_post" in r["flags"]),
        },
        "edits": {
            "local_updates": outcome["local_updates"],
            "local_creates": outcome["local_creates"],
            "delivered": outcome["delivered"],
            "delivered_updates": outcome["delivered_updates"],
            "delivered_creates": outcome["delivered_creates"],
            "in_conflict": outcome["in_conflict"],
            "in_error": outcome["in_error"],
            # Still 'pending' after two clean syncs: each one is a violation.
            "still_pending": outcome["still_pending"],
            # Intent recorded, POST never left (no createcustomer reached Solar Proof): sent after two
            # complete walks, so still pending here by design; checked again the next round.
            "pending_create_never_sent": outcome["pending_create_never_sent"],
            "never_sent_delivered_next_round": outcome["carried_creates_delivered"],
        },
        "creates": {
            "local": outcome["local_creates"],
            "lost_create_injected": sum(r["lost_create_injected"] for r in results),
            "created_with_answer": outcome["created_with_answer"],
            "adopted": outcome["adopted"],
            "adopted_by_killed_run": outcome["adopted_by_killed_run"],
            "adopted_by_follow_up_sync": outcome["adopted_by_follow_up_sync"],
            "near_miss_flagged": outcome["near_miss_flagged"],
            "duplicates": run.violations_by_check.get("no_duplicate_create", 0),
            "tied_to_another_person": run.violations_by_check.get("row_tied_to_its_own_customer", 0),
        },
        "adoptions_observed": outcome["adopted"],
        "checks": dict(run.checks),
        "violations": {"count": run.violation_count, "by_check": dict(run.violations_by_check),
                       "first": run.violations},
    }


def run_rounds(rounds: int = 200, seed: int = 1, customers: int = 300, *, latency_ms: float = LATENCY_MS,
               max_kill: float = MAX_KILL_SECONDS, strata: list[str] | None = None,
               progress: Callable[[dict], None] | None = None, db: str | Path | None = None) -> dict:
    """Run the crash rounds against one simulator and one mirror; return the JSON-able report.

    `strata` (optional, cycled) fixes each round's kill stratum ("before", "window", "after",
    "stall_push", "stall_walk") instead of drawing it, so a short run can be sure to cover them.
    `db`: the mirror, as crash_session takes it.
    """
    started = time.perf_counter()
    results: list[dict] = []
    with crash_session(customers, seed, latency_ms=latency_ms, max_kill=max_kill, db=db) as (run, window):
        calibration = {"after_calibration": window.summary()}
        for index in range(rounds):
            stratum = strata[index % len(strata)] if strata else None
            try:
                result = run.run_round(index, seed, window, stratum)
            finally:
                run.processes.reap()
            results.append(result)
            if progress is not None:
                progress(result)
        calibration["at_end"] = window.summary()
        summary = summarize(results, run)
    return {
        "rounds": len(results),
        "seed": seed,
        "customers": customers,
        "latency_ms": latency_ms,
        "modes": dict(Counter(r["mode"] for r in results)),
        "calibration": calibration,
        **summary,
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
    parser.add_argument("--strata", default=None,
                        help="comma-separated strata to cycle through instead of drawing them "
                             "(before, window, after, stall_push, stall_walk)")
    parser.add_argument("--quiet", action="store_true", help="no per-round line on stderr")
    parser.add_argument("--db", default=None,
                        help="postgresql://... : run against a fresh schema in that PostgreSQL database, dropped "
                             "after (default: a SQLite file in a temporary directory)")
    args = parser.parse_args()
    # SIGTERM runs the finally blocks too, so no simulator or killed-sync process outlives the run.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    strata = [s.strip() for s in args.strata.split(",")] if args.strata else None
    if strata and set(strata) - {s for s, _ in STRATA}:
        parser.error(f"unknown stratum in --strata: {args.strata}")

    def progress(result: dict) -> None:
        if not args.quiet:
            scenario = result["scenario"]
            extra = [f"lost={scenario['lost_creates']}" if scenario["lost_creates"] else "",
                     "decoy" if scenario["decoy"] else "", "no-getcustomer" if not scenario["getcustomer"] else "",
                     f"fixed={result['corrected_creates']}" if result["corrected_creates"] else ""]
            print(f"round {result['round']:>4} {result['mode']:<4} {result['stratum']:<10} kill {result['kill_at']:.3f}s "
                  f"after {result['kill_from']} ({result['killed_after']:.3f}s after launch): {result['phase']} "
                  f"{' '.join(result['flags'])} [{' '.join(e for e in extra if e)}] {result['outcome']}",
                  file=sys.stderr, flush=True)

    if args.db and not postgres_schema.is_postgres_url(args.db):
        parser.error(f"--db takes a postgresql:// URL (SQLite is the default): {args.db}")
    if args.db:
        from mirror.store.location import redact_url

        with postgres_schema.fresh_schema(args.db, prefix="spcrash") as schema_url:
            report = run_rounds(args.rounds, args.seed, args.customers, latency_ms=args.latency_ms,
                                max_kill=args.max_kill, strata=strata, progress=progress, db=schema_url)
        report["postgres"] = {"url": redact_url(args.db), **postgres_schema.server(args.db)}
    else:
        report = run_rounds(args.rounds, args.seed, args.customers, latency_ms=args.latency_ms,
                            max_kill=args.max_kill, strata=strata, progress=progress)
    print(json.dumps(report, indent=2, default=str))
    return 1 if report["violations"]["count"] else 0


if __name__ == "__main__":
    sys.exit(main())
