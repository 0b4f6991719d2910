"""One writer across hosts on PostgreSQL: a second `spmirror run` waits as a hot standby and takes
over when the first one's session ends.

Real parts only: two `python -m mirror run` processes (the CLI as systemd runs it), one mirror in
a PostgreSQL schema of its own, the simulator as a real HTTP server, and a person's edits made by
another process through psycopg. The first daemon dies by SIGKILL (no goodbye: the kernel closes
its sockets and the server ends its sessions), or loses its lock session to pg_terminate_backend.
The takeover time is measured from the kill to the standby holding the lock, and to a person's
edit made at the kill reaching the API; both are printed and recorded (record_property).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import psycopg
import pytest

from conftest import API_KEY
from polling import wait_until
from mirror.daemon_state import daemon_state_path
from mirror.simulator.server import SimulatorServer

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)

CUSTOMERS = 40
TAKEOVER_BOUND = 15.0  # seconds: a liveness bound, not a benchmark (measured: well under one second)
CLEARED_ENV = ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY", "CONFIGURATION_DIRECTORY", "NOTIFY_SOCKET",
               "WATCHDOG_USEC", "WATCHDOG_PID", "XDG_CONFIG_HOME", "XDG_STATE_HOME")


class Daemon:
    """One `spmirror run` subprocess, its JSON log lines in a file."""

    def __init__(self, name: str, env: dict[str, str], directory: Path):
        self.name = name
        self.log = directory / f"{name}.log"
        self.state = state = directory / f"{name}-state"  # its own state directory, as on its own host
        state.mkdir()
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "mirror", "run"],
                                         env={**env, "STATE_DIRECTORY": str(state)}, cwd=directory, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def events(self, name: str) -> list[dict]:
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # a line still being written
                if event.get("event") == name:
                    found.append(event)
        return found

    def wait_for(self, event: str, timeout: float) -> dict:
        def seen():
            if self.proc.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.proc.returncode} before {event}:\n{self.output()}")
            found = self.events(event)
            return found[0] if found else None
        return wait_until(seen, timeout, f"{self.name}: {event}", poll=0.01)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def pair(mirror_db, tmp_path):
    """A simulator, a mirror schema, and a way to start daemons on it; every daemon is stopped after."""
    started: list[Daemon] = []
    with SimulatorServer(customers=CUSTOMERS, seed=15, api_key=API_KEY) as sim:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPMIRROR_") and k not in CLEARED_ENV}
        env.update(PYTHONUNBUFFERED="1", XDG_CONFIG_HOME=str(tmp_path / "xdg"), SPMIRROR_API_URL=sim.url,
                   SPMIRROR_API_KEY=sim.api_key, SPMIRROR_DB=mirror_db.url, SPMIRROR_SYNC_INTERVAL="1h",
                   SPMIRROR_DAEMON_WATCH_INTERVAL="0.2s", SPMIRROR_LOGGING_FORMAT="json")

        def start(name: str, **overrides: str) -> Daemon:
            daemon = Daemon(name, {**env, **overrides}, tmp_path)
            started.append(daemon)
            return daemon

        try:
            yield sim, mirror_db, start
        finally:
            for daemon in started:
                daemon.stop()


def person_edits(url: str, remote_id: int, phone: str) -> None:
    """A person's UPDATE from another process (as psql or a GUI would send it)."""
    subprocess.run([sys.executable, "-c", "import psycopg, sys\n"
                    "with psycopg.connect(sys.argv[1], autocommit=True) as c:\n"
                    "    n = c.execute('UPDATE customers SET customerphone2 = %s WHERE pkcustomerid = %s',"
                    " (sys.argv[2], int(sys.argv[3]))).rowcount\n"
                    "    assert n == 1, n", url, phone, str(remote_id)], check=True, timeout=30)


def logged_at(event: dict) -> float:
    """The wall-clock time a JSON log line was written (its ISO timestamp)."""
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


def updates_of(sim: SimulatorServer, remote_id: int) -> list[dict]:
    return [w for w in sim.account.write_log()
            if w["action"] == "updatecustomer" and (w["body"] or {}).get("data", {}).get("pkcustomerid") == remote_id]


def serving_pair(pair):
    """The first daemon synced and serving; the second standing by for its lock."""
    sim, db, start = pair
    first = start("first")
    first.wait_for("sync_finished", timeout=30)
    # Its account of itself (spmirror status) is in its host's state directory: there is no file
    # beside a PostgreSQL database.
    state = wait_until(lambda: list(first.state.glob("daemon-*.json")), 10, "the first daemon's state file")
    assert state == [daemon_state_path(db.url, env={"STATE_DIRECTORY": str(first.state)})]
    assert json.loads(state[0].read_text())["pid"] == first.proc.pid
    second = start("second")
    waiting = second.wait_for("standby_waiting", timeout=30)
    assert f"pid {first.proc.pid} " in waiting["holder"], waiting  # it names who holds the lock
    assert "standby: waiting for the advisory lock held by" in waiting["reason"]
    assert not second.events("daemon_started") and not second.events("sync_finished")
    return sim, db, first, second


def test_the_standby_takes_over_within_seconds_of_a_sigkill(pair, record_property):
    """While the first daemon serves, the second waits (its log says for whom) and does nothing;
    after SIGKILL of the first, the second holds the lock and pushes a person's edit made at the
    kill, within TAKEOVER_BOUND seconds, once."""
    sim, db, first, second = serving_pair(pair)
    ids = sim.account.ids()

    # The first one serves: an edit reaches the API through its LISTEN, not through the standby.
    edited = time.monotonic()
    person_edits(db.url, ids[3], "0412 300 003")
    wait_until(lambda: sim.account.get(ids[3])["phone2"] == "0412 300 003", 10, "the first daemon's push")
    print(f"\nedit-to-API on PostgreSQL (process start included): {time.monotonic() - edited:.3f} s")

    killed_at = time.time()  # wall clock: the standby's log line says when it took the lock
    killed = time.monotonic()
    first.proc.send_signal(signal.SIGKILL)
    assert first.proc.wait(timeout=10) == -signal.SIGKILL
    person_edits(db.url, ids[9], "0412 900 009")  # made while nobody serves
    took_over = second.wait_for("standby_took_over", timeout=TAKEOVER_BOUND)
    holds_lock = logged_at(took_over) - killed_at
    wait_until(lambda: sim.account.get(ids[9])["phone2"] == "0412 900 009", TAKEOVER_BOUND,
               "the standby to push the edit made at the kill", poll=0.01)
    serves = time.monotonic() - killed
    print(f"failover: the standby held the run lock {holds_lock:.3f} s after SIGKILL; "
          f"the edit made at the kill reached the API after {serves:.3f} s")
    record_property("failover_lock_seconds", round(holds_lock, 3))
    record_property("failover_edit_to_api_seconds", round(serves, 3))
    assert 0 <= holds_lock < TAKEOVER_BOUND and serves < TAKEOVER_BOUND
    assert len(updates_of(sim, ids[9])) == 1 and len(updates_of(sim, ids[3])) == 1

    # The new holder serves on: a later edit is pushed at once too.
    person_edits(db.url, ids[12], "0412 120 012")
    wait_until(lambda: sim.account.get(ids[12])["phone2"] == "0412 120 012", 10, "the new holder's push")
    second.stop()
    assert second.proc.returncode == 0, second.output()


def test_a_daemon_that_loses_its_lock_session_stops_and_the_standby_takes_over(pair):
    """An admin's pg_terminate_backend on the run lock's session (or a server restart) frees the
    lock: the first daemon sees it lost, logs it and exits 75 (systemd restarts it as a standby),
    so there is never a second writer; the standby takes over."""
    sim, db, first, second = serving_pair(pair)
    with psycopg.connect(db.url, autocommit=True) as admin:
        # The run lock's session, by the name it shows everyone (its role, pid and host).
        ended = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE %s",
                              (f"spmirror run pid {first.proc.pid} on %",)).fetchall()
    assert ended == [(True,)]
    second.wait_for("standby_took_over", timeout=TAKEOVER_BOUND)
    assert first.proc.wait(timeout=TAKEOVER_BOUND) == 75, first.output()
    assert first.events("run_lock_lost")
    ids = sim.account.ids()
    person_edits(db.url, ids[5], "0412 500 005")
    wait_until(lambda: sim.account.get(ids[5])["phone2"] == "0412 500 005", 10, "the new holder's push")


def test_a_standby_stops_at_once_on_sigterm_and_writes_nothing(pair):
    """SIGTERM ends a standby's wait: exit 0 within a few seconds, no sync, no state file; the
    first daemon serves on."""
    sim, db, first, second = serving_pair(pair)
    runs = db.scalar("SELECT count(*) FROM sync_runs")
    second.proc.terminate()
    assert second.proc.wait(timeout=5) == 0, second.output()
    assert second.events("daemon_stopped") and not second.events("sync_finished")
    assert not list(second.state.iterdir())
    assert db.scalar("SELECT count(*) FROM sync_runs") == runs
    assert first.proc.poll() is None


def test_status_on_another_host_names_the_daemon_that_holds_the_lock(pair, tmp_path):
    """The daemon's state file is on its own host; `spmirror status` elsewhere (another state
    directory) still says a daemon serves the mirror, and which (from the run lock's session)."""
    sim, db, start = pair
    first = start("first")
    first.wait_for("sync_finished", timeout=30)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPMIRROR_") and k not in CLEARED_ENV}
    env.update(SPMIRROR_DB=db.url, STATE_DIRECTORY=str(tmp_path / "elsewhere"), XDG_CONFIG_HOME=str(tmp_path / "x"))
    shown = subprocess.run([sys.executable, "-m", "mirror", "status", "--json"], env=env, capture_output=True,
                           text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert f"spmirror run pid {first.proc.pid} on " in json.loads(shown.stdout)["daemon"]["holder"]
    text = subprocess.run([sys.executable, "-m", "mirror", "status"], env=env, capture_output=True, text=True,
                          timeout=60).stdout
    assert f"running on another host or user: spmirror run pid {first.proc.pid}" in text


def test_a_standby_with_another_accounts_key_is_refused_before_it_stands_by(pair):
    """A standby that would refuse to write at takeover (another key: AccountMismatch) says so at
    start, exit 2, instead of waiting as a healthy standby and leaving no daemon when needed."""
    sim, db, start = pair
    first = start("first")
    first.wait_for("sync_finished", timeout=30)
    wrong = start("wrong-key", SPMIRROR_API_KEY="sk-another-account-0123456789")
    assert wrong.proc.wait(timeout=30) == 2, wrong.output()
    assert not wrong.events("standby_waiting")
    assert "but the settings give another key" in wrong.output()
    assert first.proc.poll() is None


def test_two_mirrors_in_two_schemas_of_one_database_have_two_run_locks(mirror_db, tmp_path):
    """The lock's key is the database, the schema and the purpose: another mirror's daemon (another
    schema) never waits for this one's; the same mirror's does, told who holds it; the sync lock is
    apart from the run lock; release frees it at once."""
    from backends import open_mirror_database
    from mirror.store import LockBusy, run_lock, sync_lock

    held = run_lock(mirror_db.url, "spmirror run")
    held.acquire()
    try:
        with open_mirror_database("postgres", tmp_path) as other:
            with run_lock(other.url):
                pass  # taken at once
        with sync_lock(mirror_db.url, "spmirror sync"):
            pass
        with pytest.raises(LockBusy) as busy:
            run_lock(mirror_db.url, "second").acquire(wait_seconds=0.2, poll=0.05)
        assert f"spmirror run pid {os.getpid()} on " in busy.value.holder
    finally:
        held.release()
    with run_lock(mirror_db.url, "second"):
        pass
