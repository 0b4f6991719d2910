"""`spmirror run` as a real subprocess: sd_notify, the fast push path, outages, locks, signals, metrics,
no runs without new work, a database another program holds locked, and what SIGHUP may change.

Each test starts the daemon with `python -m mirror run` against a simulator served from the test
process, receives its sd_notify datagrams on an AF_UNIX socket bound in tmp_path, reads its JSON
log lines from a file, and waits for conditions by polling with a bounded deadline.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Callable

import httpx
import pytest
import structlog

from conftest import API_KEY
from polling import free_port, wait_until
from sqlite_edit import query, scalar
from mirror import notify as notify_module
from mirror.config import SETTINGS, Settings, load_settings
from mirror.daemon import Daemon
from mirror.store.sqlite.file_lock import LockBusy, run_lock, sync_lock
from mirror.notify import notify
from mirror.reload import LIVE, plan_reload, setting_name
from mirror.simulator.server import SimulatorServer

CUSTOMERS = 120
CLEARED_ENV = ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY", "CONFIGURATION_DIRECTORY", "NOTIFY_SOCKET",
               "WATCHDOG_USEC", "WATCHDOG_PID", "SPMIRROR_CONFIG")


# -- helpers -------------------------------------------------------------------------------


def table_exists(db: Path, name: str) -> bool:
    return db.exists() and bool(scalar(db, "SELECT count(*) FROM sqlite_master WHERE name = ?", (name,)))


def customer_count(db: Path) -> int:
    return scalar(db, "SELECT count(*) FROM customers") if table_exists(db, "customers") else 0


def run_results(db: Path) -> list[str]:
    if not table_exists(db, "sync_runs"):
        return []
    con = sqlite3.connect(db, timeout=30)
    try:
        return [r for (r,) in con.execute("SELECT result FROM sync_runs ORDER BY started_at, rowid")]
    finally:
        con.close()


class Notifications:
    """An AF_UNIX datagram socket standing in for systemd's NOTIFY_SOCKET; collects every line sent."""

    def __init__(self, directory: Path):
        path = directory / "notify.sock"
        if len(str(path)) > 100:  # sun_path holds 108 bytes; long tmp_path names need a shorter home
            self._short_dir = tempfile.mkdtemp(prefix="spn-")
            path = Path(self._short_dir) / "notify.sock"
        else:
            self._short_dir = None
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.05)
        self._lock = threading.Lock()
        self._lines: list[str] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._receive, name="notify-socket", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._closed.is_set():
            try:
                data = self._sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self._lines.extend(data.decode(errors="replace").splitlines())

    def lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    def index_of(self, predicate: Callable[[str], bool], start: int = 0) -> int | None:
        return next((i for i, line in enumerate(self.lines()) if i >= start and predicate(line)), None)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float, start: int = 0, message: str = "") -> int:
        """The index of the first line from `start` on that matches, waiting up to `timeout`."""
        return wait_until(lambda: (lambda i: None if i is None else i + 1)(self.index_of(predicate, start)),
                          timeout, message or "a notification") - 1

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5)
        self._sock.close()
        Path(self.path).unlink(missing_ok=True)
        if self._short_dir:
            os.rmdir(self._short_dir)


class DaemonProcess:
    """One `python -m mirror run` subprocess with its stdout and stderr in files."""

    def __init__(self, args: tuple[str, ...], env: dict[str, str], cwd: Path, name: str):
        self.stdout_path = cwd / f"{name}.stdout"
        self.stderr_path = cwd / f"{name}.stderr"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "mirror", "run", *args], env=env, cwd=cwd,
                                         stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        self.terminated = False

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def events(self, name: str | None = None) -> list[dict]:
        """The JSON log lines written so far (a half-written last line is skipped), optionally by event."""
        found = []
        for line in self.stdout().splitlines():
            if line.startswith("{"):
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if name is None or event.get("event") == name:
                    found.append(event)
        return found

    def running(self) -> bool:
        return self.proc.poll() is None

    def signal(self, signum: int) -> None:
        self.terminated |= signum == signal.SIGTERM
        self.proc.send_signal(signum)

    def wait_exit(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def shutdown(self) -> None:
        """Teardown: SIGTERM, then SIGKILL if it does not stop within 3 s (at once if it ignored one already).

        A healthy daemon stops in well under a second; the bound keeps a hung one (a regression of
        the SIGTERM-during-a-sync deadlock fixed earlier) from holding teardown for long.
        """
        if self.proc.poll() is None:
            if not self.terminated:
                self.proc.terminate()
            try:
                self.proc.wait(timeout=0.01 if self.terminated else 3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def describe(self) -> str:
        return f"--- stdout ---\n{self.stdout()[-4000:]}\n--- stderr ---\n{self.stderr()[-4000:]}"


class Harness:
    """A simulator, a mirror path, a notify socket and an environment for the daemon and the CLI."""

    def __init__(self, tmp: Path, sim: SimulatorServer):
        self.tmp = tmp
        self.sim = sim
        self.db = tmp / "state" / "mirror.db"
        self.notes = Notifications(tmp)
        self.daemons: list[DaemonProcess] = []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SPMIRROR_") and k not in CLEARED_ENV}
        self.env.update(
            XDG_CONFIG_HOME=str(tmp / "xdg"),  # no user config file is picked up
            PYTHONUNBUFFERED="1",
            SPMIRROR_API_URL=sim.url,
            SPMIRROR_API_KEY=sim.api_key,
            SPMIRROR_DB=str(self.db),
            SPMIRROR_SYNC_INTERVAL="30s",  # only the first sync, unless a test asks for more
            SPMIRROR_DAEMON_WATCH_INTERVAL="0.2s",
            NOTIFY_SOCKET=str(self.notes.path),
            WATCHDOG_USEC="1000000",
        )

    def start(self, *args: str, env: dict[str, str] | None = None, name: str | None = None) -> DaemonProcess:
        daemon = DaemonProcess(args, env or self.env, self.tmp, name or f"daemon{len(self.daemons)}")
        self.daemons.append(daemon)
        return daemon

    def spmirror(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "mirror", *args], env=self.env, cwd=self.tmp,
                              capture_output=True, text=True, timeout=timeout)

    def wait_ready(self, daemon: DaemonProcess, timeout: float = 15, start: int = 0) -> int:
        """The index of READY=1, failing early with the daemon's output if it exited instead."""
        def ready():
            if not daemon.running():
                pytest.fail(f"daemon exited with {daemon.proc.returncode} before READY=1\n{daemon.describe()}")
            i = self.notes.index_of(lambda line: line == "READY=1", start)
            return None if i is None else i + 1
        return wait_until(ready, timeout, "READY=1") - 1

    def wait_first_sync(self, daemon: DaemonProcess, timeout: float = 20, start: int = 0) -> int:
        """The index of the first STATUS= line from `start` on that reports a finished sync (exit 0)."""
        def synced():
            if not daemon.running():
                pytest.fail(f"daemon exited with {daemon.proc.returncode}\n{daemon.describe()}")
            i = self.notes.index_of(lambda line: line.startswith("STATUS=last sync ") and " exit 0;" in line, start)
            return None if i is None else i + 1
        return wait_until(synced, timeout, "STATUS of a finished sync") - 1

    def close(self) -> None:
        for daemon in self.daemons:
            daemon.shutdown()
        self.notes.close()


@pytest.fixture
def make_harness(tmp_path):
    """Builds harnesses on fresh simulators; stops every daemon, simulator and socket afterwards."""
    opened: list[tuple[Harness, SimulatorServer]] = []

    def make(customers: int = CUSTOMERS, api_key: str = API_KEY, seed: int = 11) -> Harness:
        sim = SimulatorServer(customers=customers, seed=seed, api_key=api_key).start()
        home = tmp_path / f"h{len(opened)}"
        home.mkdir()
        harness = Harness(home, sim)
        opened.append((harness, sim))
        return harness

    yield make
    for harness, sim in opened:
        try:
            harness.close()
        finally:
            sim.stop()


@pytest.fixture
def harness(make_harness) -> Harness:
    return make_harness()


def updates_of(sim: SimulatorServer, customer_id: int) -> list[dict]:
    return [w for w in sim.account.write_log()
            if w["action"] == "updatecustomer" and (w["body"] or {}).get("data", {}).get("pkcustomerid") == customer_id]


def edit_row(db: Path, sql: str, params: tuple = ()) -> None:
    """A person's edit: a fresh connection of the test process, one committed transaction."""
    con = sqlite3.connect(db, timeout=30)
    try:
        with con:
            assert con.execute(sql, params).rowcount == 1
    finally:
        con.close()


def wait_pings(harness: Harness, count: int, start: int) -> int:
    """The index after the `count`-th WATCHDOG=1 from `start` on: a window measured by the daemon's own heartbeat."""
    for _ in range(count):
        start = harness.notes.wait_for(lambda line: line == "WATCHDOG=1", timeout=5, start=start,
                                       message="WATCHDOG=1") + 1
    return start


_HOLDER = r"""
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN IMMEDIATE")
con.execute("UPDATE customers SET customerphone2 = '0400 000 321' WHERE id = 1")
print("holding", flush=True)
sys.stdin.readline()  # until the test says to commit
con.execute("COMMIT")
"""


def hold_write_lock(db: Path) -> subprocess.Popen:
    """Another program (a GUI editor with unsaved changes) holding the file's write lock, with an edit in it."""
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout.readline().strip() == "holding"
    return holder


def metric_samples(text: str) -> dict[str, float]:
    """`name{labels}` -> value, from Prometheus text format."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


# -- 1. start and first sync ---------------------------------------------------------------


def test_starts_notifies_ready_and_syncs_every_customer(harness):
    """The daemon sends READY=1, then a STATUS of its finished sync and WATCHDOG=1 pings, mirrors every customer, and `spmirror status` shows it running."""
    daemon = harness.start()
    ready = harness.wait_ready(daemon)
    synced = harness.wait_first_sync(daemon)
    assert synced > ready
    assert "STATUS=" in harness.notes.lines()[synced] and "sync" in harness.notes.lines()[synced]
    harness.notes.wait_for(lambda line: line == "WATCHDOG=1", timeout=5, message="WATCHDOG=1")

    con = sqlite3.connect(harness.db)
    try:
        ids = sorted(i for (i,) in con.execute("SELECT pkcustomerid FROM customers"))
    finally:
        con.close()
    assert ids == sorted(harness.sim.account.ids()) and len(ids) == CUSTOMERS
    assert run_results(harness.db) == ["ok"]

    status = harness.spmirror("status")
    assert status.returncode == 0, status.stderr
    assert f"daemon          running, pid {daemon.pid}" in status.stdout, status.stdout
    assert daemon.running()


# -- 2. the fast push path -----------------------------------------------------------------


def test_local_edit_reaches_the_api_within_seconds_and_is_pushed_once(harness, record_property):
    """A committed UPDATE from another connection reaches the simulator within 5 s, as exactly one updatecustomer."""
    daemon = harness.start()
    synced = harness.wait_first_sync(daemon)
    # Waiting for the first ping keeps this test about the steady state; the edit made before the
    # watch job's first look has its own test below.
    harness.notes.wait_for(lambda line: line == "WATCHDOG=1", timeout=5, start=synced, message="WATCHDOG=1")
    first, second = harness.sim.account.ids()[7], harness.sim.account.ids()[42]
    value = "0412 909 808"
    pages_walked = harness.sim.account.call_counts()["getallcustomers"]

    edited = time.monotonic()
    edit_row(harness.db, "UPDATE customers SET customerphone2 = ? WHERE pkcustomerid = ?", (value, first))
    wait_until(lambda: harness.sim.account.get(first)["phone2"] == value, timeout=5,
               message="the edit to reach the simulator")
    latency = time.monotonic() - edited
    record_property("edit_to_api_seconds", round(latency, 3))
    print(f"\nedit-to-API latency: {latency:.3f} s")

    wait_until(lambda: scalar(harness.db, "SELECT sync_state FROM customers WHERE pkcustomerid = ?",
                              (first,)) == "synced", timeout=5, message="the row to be synced")
    # A later, second edit is pushed too; by then any duplicate push of the first would have shown.
    edit_row(harness.db, "UPDATE customers SET customerphone2 = ? WHERE pkcustomerid = ?", ("0412 111 000", second))
    wait_until(lambda: updates_of(harness.sim, second), timeout=5, message="the second edit's push")

    sent = updates_of(harness.sim, first)
    assert len(sent) == 1, sent
    assert sent[0]["applied"] is True and sent[0]["body"]["data"]["phone2"] == value
    assert len(updates_of(harness.sim, second)) == 1
    assert harness.notes.index_of(lambda line: line.startswith("STATUS=last push ")) is not None
    assert harness.sim.account.call_counts()["getallcustomers"] == pages_walked  # a push walks no pages
    assert daemon.running()


def test_edit_committed_before_the_first_watch_look_is_pushed_within_seconds(harness):
    """An edit committed right after the first sync, before the watch job's first look (2 s), still reaches the API within 5 s."""
    daemon = harness.start(env=harness.env | {"SPMIRROR_DAEMON_WATCH_INTERVAL": "2s"})
    harness.wait_first_sync(daemon)
    target = harness.sim.account.ids()[5]
    edit_row(harness.db, "UPDATE customers SET customerphone2 = '0412 000 555' WHERE pkcustomerid = ?", (target,))
    assert not daemon.events("local_edits_seen")  # the first look (2 s after start) is still to come
    wait_until(lambda: harness.sim.account.get(target)["phone2"] == "0412 000 555", timeout=5,
               message="the edit to reach the simulator")


def test_edit_seen_while_another_sync_runs_is_pushed_once_the_lock_frees(harness):
    """An edit the watch job saw while another process held the sync lock is pushed within 5 s of the lock's release."""
    daemon = harness.start()
    synced = harness.wait_first_sync(daemon)
    harness.notes.wait_for(lambda line: line == "WATCHDOG=1", timeout=5, start=synced, message="WATCHDOG=1")
    target = harness.sim.account.ids()[9]
    lock = sync_lock(harness.db, "test")
    lock.acquire(wait_seconds=10)  # once a push of the daemon's own, if one runs, is done
    try:
        edit_row(harness.db, "UPDATE customers SET customerphone2 = '0412 000 666' WHERE pkcustomerid = ?",
                 (target,))
        wait_until(lambda: daemon.events("sync_skipped"), timeout=5, message="sync_skipped")
    finally:
        lock.release()
    wait_until(lambda: harness.sim.account.get(target)["phone2"] == "0412 000 666", timeout=5,
               message="the edit to reach the simulator after the lock was released")


# -- 3. an API outage ----------------------------------------------------------------------


def test_survives_an_api_outage_and_recovers(harness):
    """While every listing request fails the daemon stays up, logs exit 75 and says 'unavailable'; after the outage a sync fills the mirror."""
    harness.sim.faults.script("503", count=1000, action="getallcustomers")
    env = harness.env | {"SPMIRROR_API_ATTEMPTS": "2", "SPMIRROR_API_DEADLINE": "2s", "SPMIRROR_SYNC_INTERVAL": "1s"}
    daemon = harness.start(env=env)
    harness.wait_ready(daemon)

    wait_until(lambda: [e for e in daemon.events("sync_finished") if e["exit_code"] == 75], timeout=15,
               message="a sync_finished line with exit_code 75")
    harness.notes.wait_for(lambda line: line.startswith("STATUS=") and "unavailable" in line, timeout=5,
                           message="a STATUS saying the API is unavailable")
    failed = [e for e in daemon.events("sync_finished") if e["exit_code"] == 75][0]
    assert failed["result"] == "incomplete"
    assert daemon.running()
    assert customer_count(harness.db) == 0

    harness.sim.faults.reset()
    wait_until(lambda: customer_count(harness.db) == CUSTOMERS, timeout=15, message="the mirror to fill")
    wait_until(lambda: "ok" in run_results(harness.db), timeout=5, message="an ok sync_runs row")
    results = run_results(harness.db)
    assert results[0] == "incomplete" and results[-1] == "ok"
    assert daemon.running()


# -- 4. locks --------------------------------------------------------------------------------


def test_second_instance_and_a_blocked_sync_exit_75(harness):
    """A second `spmirror run` exits 75 naming the first pid, and `spmirror sync --wait 0.3` exits 75 naming the sync lock's holder."""
    daemon = harness.start()
    harness.wait_first_sync(daemon)

    started = time.monotonic()
    second = harness.spmirror("run", timeout=15)
    assert second.returncode == 75, second.stderr
    assert time.monotonic() - started < 10
    assert f"pid {daemon.pid}" in second.stderr and "another spmirror run" in second.stderr
    assert daemon.running()

    lock = sync_lock(harness.db, "test")
    lock.acquire(wait_seconds=10)  # once a push of the daemon's own, if one runs, is done
    try:
        started = time.monotonic()
        blocked = harness.spmirror("sync", "--wait", "0.3", timeout=15)
    finally:
        lock.release()
    assert blocked.returncode == 75, blocked.stderr
    assert time.monotonic() - started < 10
    assert "another sync of this mirror is running" in blocked.stderr
    assert f"pid {os.getpid()} (test)" in blocked.stderr
    assert daemon.running()


# -- 5. SIGTERM ------------------------------------------------------------------------------


def test_sigterm_exits_0_cleanly_and_releases_the_run_lock(harness):
    """SIGTERM ends the daemon with exit 0 and STOPPING=1, releases the run lock, removes the state file and leaves an intact database."""
    daemon = harness.start()
    harness.wait_first_sync(daemon)
    state = harness.db.with_name(harness.db.name + ".daemon.json")
    assert json.loads(state.read_text())["pid"] == daemon.pid
    mark = len(harness.notes.lines())

    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(timeout=10) == 0, daemon.describe()
    harness.notes.wait_for(lambda line: line == "STOPPING=1", timeout=2, start=mark, message="STOPPING=1")
    assert not state.exists()
    assert scalar(harness.db, "PRAGMA integrity_check") == "ok"
    assert daemon.events("daemon_stopped")

    lock = run_lock(harness.db)
    try:
        lock.acquire()  # raises LockBusy if the lock were still held
    except LockBusy as exc:
        pytest.fail(f"run lock still held: {exc}")
    lock.release()

    again = harness.start()
    harness.wait_ready(again, start=mark)
    harness.wait_first_sync(again, start=mark)
    assert again.running()


def test_sigterm_during_a_slow_walk_exits_0_and_records_interrupted(make_harness):
    """SIGTERM in the middle of a slow first walk exits 0 within 10 s and leaves the run recorded as 'interrupted'."""
    harness = make_harness(customers=3000)
    harness.sim.faults.configure(latency_ms=50)
    # One page at a time, so the 60-page walk takes seconds and the signal surely lands mid-walk.
    daemon = harness.start(env=harness.env | {"SPMIRROR_API_MAX_IN_FLIGHT": "1"})
    harness.wait_ready(daemon)
    wait_until(lambda: harness.sim.account.call_counts().get("getallcustomers", 0) >= 3, timeout=15,
               message="the first pages of the walk")

    daemon.signal(signal.SIGTERM)
    # The walk stops after its current page and records that, whether or not the process then exits.
    finished = wait_until(lambda: daemon.events("sync_finished"), timeout=10, message="sync_finished")
    assert len(finished) == 1 and finished[0]["result"] == "interrupted" and finished[0]["exit_code"] == 0
    wait_until(lambda: run_results(harness.db) == ["interrupted"], timeout=5, message="an 'interrupted' run row")
    assert harness.sim.account.call_counts()["getallcustomers"] < 60
    assert scalar(harness.db, "PRAGMA integrity_check") == "ok"

    assert daemon.wait_exit(timeout=10) == 0, daemon.describe()  # raises TimeoutExpired while the bug stands
    assert daemon.events("daemon_stopped")
    assert not harness.db.with_name(harness.db.name + ".daemon.json").exists()


# -- 6. SIGHUP -------------------------------------------------------------------------------


def test_sighup_reloads_the_sync_interval(harness):
    """After the config file's interval changes from 30s to 1s, SIGHUP logs config_reloaded with 1.0 and syncs follow every second."""
    config = harness.tmp / "spmirror-test.toml"
    config.write_text('[sync]\ninterval = "30s"\n')
    env = {k: v for k, v in harness.env.items() if k != "SPMIRROR_SYNC_INTERVAL"}
    daemon = harness.start("--config", str(config), env=env)
    harness.wait_first_sync(daemon)
    assert daemon.events("daemon_started")[0]["interval"] == 30.0
    assert run_results(harness.db) == ["ok"]

    config.write_text('[sync]\ninterval = "1s"\n')
    daemon.signal(signal.SIGHUP)
    reloaded = wait_until(lambda: daemon.events("config_reloaded"), timeout=5, message="config_reloaded")
    assert reloaded[0]["interval"] == 1.0
    wait_until(lambda: run_results(harness.db).count("ok") >= 3, timeout=10, message="more ok sync_runs rows")
    assert set(run_results(harness.db)) <= {"ok", "running"}  # the newest may still be under way
    assert daemon.running()


# -- 7. metrics ------------------------------------------------------------------------------


def test_metrics_endpoint_reports_runs_rows_and_api_calls(harness):
    """GET /metrics on [daemon] metrics_listen gives the run, row, API call, last-success and duration metrics."""
    port = free_port()
    daemon = harness.start(env=harness.env | {"SPMIRROR_DAEMON_METRICS_LISTEN": f"127.0.0.1:{port}"})
    harness.wait_first_sync(daemon)

    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert response.status_code == 200
    samples = metric_samples(response.text)
    assert samples['spmirror_runs_total{result="ok"}'] == 1
    assert samples["spmirror_customers"] == CUSTOMERS
    assert samples['spmirror_rows{state="synced"}'] == CUSTOMERS
    assert samples['spmirror_rows{state="pending"}'] == 0
    assert samples['spmirror_api_calls_total{action="getallcustomers",outcome="ok"}'] >= 3
    assert abs(samples["spmirror_last_success_timestamp_seconds"] - time.time()) < 60
    assert 0 < samples["spmirror_last_run_duration_seconds"] < 30
    assert daemon.events("metrics_listening")[0]["url"] == f"http://127.0.0.1:{port}/metrics"


# -- 8. the API key --------------------------------------------------------------------------


def test_api_key_never_appears_in_daemon_output(make_harness):
    """Through retries, a push, a reload and a stop at debug level, the API key appears nowhere in stdout or stderr."""
    key = "sk-DAEMONCANARY-3c5e7a9b1d2f4a6c8e0b2d4f6a8c0e1f"
    harness = make_harness(api_key=key)
    harness.sim.faults.configure(retry_after=0)
    harness.sim.faults.script("503", action="getallcustomers")
    harness.sim.faults.script("429", action="getallcustomers")
    harness.sim.faults.script("500", action="updatecustomer")
    daemon = harness.start(env=harness.env | {"SPMIRROR_LOGGING_LEVEL": "debug"})
    synced = harness.wait_first_sync(daemon)
    harness.notes.wait_for(lambda line: line == "WATCHDOG=1", timeout=5, start=synced, message="WATCHDOG=1")

    target = harness.sim.account.ids()[3]
    edit_row(harness.db, "UPDATE customers SET customerphone2 = '0400 222 333' WHERE pkcustomerid = ?", (target,))
    wait_until(lambda: harness.sim.account.get(target)["phone2"] == "0400 222 333", timeout=10,
               message="the edit's push")
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: daemon.events("config_reloaded"), timeout=5, message="config_reloaded")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(timeout=10) == 0, daemon.describe()

    out, err = daemon.stdout(), daemon.stderr()
    assert daemon.events("api_retried"), "the faults should have caused logged retries"
    assert len(daemon.events()) > 5
    assert key not in out and key not in err


# -- 9. identity ----------------------------------------------------------------------------


def test_without_getcustomer_an_edit_of_a_shared_email_customer_arrives_within_seconds(harness):
    """No getcustomer, and the edited customer shares its email with an older one: the watch job cannot re-read it,
    so it brings the full sync forward (interval 1h) and the edit reaches Solar Proof within seconds, once, merged;
    confirmed by one more walk of that sync; the watch job does not keep retrying it."""
    sim = harness.sim
    sim.quirks.update(getcustomer=False)
    first = sim.account.ids()[2]
    second = sim.account.create_customer(first_name="Second", last_name="Sharer", email=sim.account.get(first)["email"])
    daemon = harness.start(env=harness.env | {"SPMIRROR_SYNC_INTERVAL": "1h"})
    harness.wait_first_sync(daemon)
    edit_row(harness.db, "UPDATE customers SET customerphone1 = '0400 707 707' WHERE pkcustomerid = ?", (second,))
    wait_until(lambda: sim.account.get(second)["phone1"] == "0400 707 707", timeout=10,
               message="the edit to reach the simulator")
    # Sent after the walk, then confirmed by one more walk of that sync: synced on evidence.
    wait_until(lambda: scalar(harness.db, "SELECT sync_state FROM customers WHERE pkcustomerid = ?", (second,))
               == "synced", timeout=5, message="the row to settle")
    updates = [e for e in sim.account.write_log() if e["action"] == "updatecustomer"]
    assert [e["body"]["data"]["pkcustomerid"] for e in updates] == [second]
    assert daemon.events("update_deferred") and sim.account.get(first)["phone1"] != "0400 707 707"
    # Not retried meanwhile: one lookup by the push-only run, one by the full sync's first pass; the
    # pass after the walk sends it merged against what the walk read, with no lookup.
    assert sim.account.call_counts().get("getcustomerByemail", 0) <= 2
    assert len([e for e in daemon.events("sync_finished") if not e.get("dry_run")]) <= 4


def test_a_daemon_pointed_at_another_account_exits_2_before_any_write(make_harness):
    """`spmirror run` on a file pinned to another account exits 2 at start, naming both URLs, with no API call."""
    first = make_harness()
    daemon = first.start()
    first.wait_first_sync(daemon)
    daemon.shutdown()
    other = make_harness(seed=12, api_key="sk-OTHER-ACCOUNT-" + "5" * 20)
    env = first.env | {"SPMIRROR_API_URL": other.sim.url, "SPMIRROR_API_KEY": other.sim.api_key}
    intruder = first.start(env=env, name="intruder")
    assert intruder.wait_exit(15) == 2
    assert first.sim.url in intruder.stderr() and other.sim.url in intruder.stderr()
    assert other.sim.account.call_counts() == {}


def test_an_update_waiting_for_a_walk_is_not_retried_in_a_loop(harness):
    """No getcustomer, and the edited customer was deleted in Solar Proof: the update waits for complete walks
    (the lookup proves nothing) and is never sent. The watch job does not turn the daemon's own commits into a
    loop of push-only runs re-trying it: over the next four watchdog pings (about 2 s of 0.2 s watch looks) no
    lookup, no updatecustomer, no other API call and no sync_runs row."""
    sim = harness.sim
    sim.quirks.update(getcustomer=False)
    daemon = harness.start(env=harness.env | {"SPMIRROR_SYNC_INTERVAL": "1h"})
    harness.wait_first_sync(daemon)
    gone, other = sim.account.ids()[4], sim.account.ids()[6]
    sim.account.delete_customer(gone)
    edit_row(harness.db, "UPDATE customers SET customerphone1 = '0400 808 808' WHERE pkcustomerid = ?", (gone,))
    wait_until(lambda: len(daemon.events("sync_finished")) >= 3, timeout=10,
               message="the push-only run and the full sync it brought forward")
    mark = len(harness.notes.lines())
    edit_row(harness.db, "UPDATE customers SET customerphone2 = '0400 909 909' WHERE pkcustomerid = ?", (other,))
    wait_until(lambda: sim.account.get(other)["phone2"] == "0400 909 909", timeout=5, message="the other edit")
    start = harness.notes.wait_for(lambda line: line.startswith("STATUS=last push "), timeout=5, start=mark,
                                   message="the STATUS of the push that sent the other edit") + 1
    calls, runs = sim.account.call_counts(), run_results(harness.db)
    wait_pings(harness, 4, start)
    assert sim.account.call_counts() == calls  # the lookups and updates of a retry would show here
    assert run_results(harness.db) == runs
    assert updates_of(sim, gone) == []
    row = scalar(harness.db, "SELECT sync_state FROM customers WHERE pkcustomerid = ?", (gone,))
    assert row == "pending"  # kept, waiting for the second walk that confirms the delete



def test_updates_waiting_for_a_walk_bring_no_loop_of_full_syncs(harness):
    """No getcustomer: one edited customer shares its email (the walk reads it and the update is sent after it),
    another was deleted in Solar Proof (the walk lacks it, so its update keeps waiting). After the one full sync
    they brought forward, six watchdog pings pass with no walk, no lookup, no API call and no sync_runs row."""
    sim = harness.sim
    sim.quirks.update(getcustomer=False)
    first = sim.account.ids()[2]
    sharer = sim.account.create_customer(first_name="Second", last_name="Sharer", email=sim.account.get(first)["email"])
    gone = sim.account.ids()[5]
    daemon = harness.start(env=harness.env | {"SPMIRROR_SYNC_INTERVAL": "1h"})
    synced = harness.wait_first_sync(daemon)
    sim.account.delete_customer(gone)
    con = sqlite3.connect(harness.db, timeout=30)
    try:
        with con:  # one commit: one push-only run defers both, and brings one full sync forward
            con.execute("UPDATE customers SET customerphone1 = '0400 606 606' WHERE pkcustomerid = ?", (sharer,))
            con.execute("UPDATE customers SET customerphone1 = '0400 808 808' WHERE pkcustomerid = ?", (gone,))
    finally:
        con.close()
    start = harness.wait_first_sync(daemon, start=synced + 1) + 1  # the full sync brought forward
    assert sim.account.get(sharer)["phone1"] == "0400 606 606"
    calls, runs = sim.account.call_counts(), run_results(harness.db)
    wait_pings(harness, 6, start)
    assert sim.account.call_counts() == calls
    assert run_results(harness.db) == runs
    assert updates_of(sim, gone) == []


# -- 10. no new work, no run ------------------------------------------------------------------


def test_a_create_awaiting_confirmation_costs_no_api_call_and_no_run(harness):
    """A create whose answer was lost waits for complete walks, which only a full sync makes: over the next six
    watchdog pings (about 3 s of 0.2 s watch looks) the daemon makes no API call and adds no sync_runs row; the
    create was sent once and its row stays pending."""
    sim = harness.sim
    daemon = harness.start(env=harness.env | {"SPMIRROR_SYNC_INTERVAL": "1h"})
    synced = harness.wait_first_sync(daemon)
    sim.faults.script("lost_create")
    con = sqlite3.connect(harness.db, timeout=30)
    try:
        with con:
            con.execute("INSERT INTO customers (customerfirstname, customersurname, customeremail, customerphone1, "
                        "fkcustomertypeid) VALUES ('Lost', 'Answer', 'lost.answer@example.com.au', '0412 555 101', 1)")
    finally:
        con.close()
    start = harness.notes.wait_for(lambda line: line.startswith("STATUS=last push "), timeout=10, start=synced + 1,
                                   message="the STATUS of the push that sent the create") + 1
    assert daemon.events("create_outcome_unknown")
    calls, runs = sim.account.call_counts(), run_results(harness.db)

    wait_pings(harness, 6, start)
    assert sim.account.call_counts() == calls
    assert run_results(harness.db) == runs
    assert [w["action"] for w in sim.account.write_log()] == ["createcustomer"]
    assert scalar(harness.db, "SELECT sync_state FROM customers WHERE customeremail = 'lost.answer@example.com.au' "
                              "AND pkcustomerid IS NULL") == "pending"
    assert daemon.running()


def test_a_refused_local_delete_is_not_retried_in_a_loop(harness):
    """With push_deletes on, 30 rows of 120 deleted in SQL are refused by the mass-delete guard (one run, exit 4):
    over the next six watchdog pings the daemon makes no API call and adds no sync_runs row, and deletes nothing."""
    sim = harness.sim
    daemon = harness.start(env=harness.env | {"SPMIRROR_SYNC_INTERVAL": "1h", "SPMIRROR_SYNC_PUSH_DELETES": "true"})
    synced = harness.wait_first_sync(daemon)
    con = sqlite3.connect(harness.db, timeout=30)
    try:
        with con:
            assert con.execute("DELETE FROM customers WHERE id <= 30").rowcount == 30
    finally:
        con.close()
    start = harness.notes.wait_for(lambda line: line.startswith("STATUS=last push ") and " exit 4;" in line,
                                   timeout=10, start=synced + 1, message="the STATUS of the refused push") + 1
    calls, runs = sim.account.call_counts(), run_results(harness.db)
    assert runs == ["ok", "refused"]

    wait_pings(harness, 6, start)
    assert sim.account.call_counts() == calls
    assert run_results(harness.db) == runs
    assert sim.account.write_log() == [] and len(sim.account.ids()) == CUSTOMERS


# -- 11. a database another program holds locked --------------------------------------------------


def test_a_database_locked_by_another_program_postpones_runs_until_it_is_released(harness):
    """While another process holds BEGIN IMMEDIATE on the file, the daemon postpones its runs 0.5 s, 1 s, 2 s, ...
    (a sync_postponed warning each, no job_failed, no traceback, no API call); once the holder commits, the daemon
    pushes the holder's edit and syncs again by itself."""
    sim = harness.sim
    env = harness.env | {"SPMIRROR_SYNC_INTERVAL": "2s", "SPMIRROR_DATABASE_BUSY_TIMEOUT": "1s"}
    daemon = harness.start(env=env)
    harness.wait_first_sync(daemon)
    holder = hold_write_lock(harness.db)
    try:
        wait_until(lambda: daemon.events("sync_postponed"), timeout=10, message="a sync_postponed warning")
        calls, finished = sim.account.call_counts(), len(daemon.events("sync_finished"))
        wait_pings(harness, 7, len(harness.notes.lines()))  # about 3.5 s
        postponed = daemon.events("sync_postponed")
        assert sim.account.call_counts() == calls
        assert len(daemon.events("sync_finished")) == finished  # each run checks the lock first: none began
    finally:
        holder.communicate("commit\n", timeout=10)
    released = len(harness.notes.lines())
    # Backing off: each wait twice the one before, and really waited (not a retry every watch look).
    assert 3 <= len(postponed) <= 4, postponed
    assert [p["retry_in"] for p in postponed] == [0.5, 1.0, 2.0, 4.0][:len(postponed)]
    stamps = [datetime.fromisoformat(p["timestamp"]) for p in postponed]
    for before, after, waited in zip(stamps, stamps[1:], postponed):
        assert (after - before).total_seconds() >= waited["retry_in"] - 0.05
    assert str(harness.db) in postponed[0]["reason"]
    assert any("database locked by another program" in line for line in harness.notes.lines()[:released])

    target = scalar(harness.db, "SELECT pkcustomerid FROM customers WHERE id = 1")
    wait_until(lambda: sim.account.get(target)["phone2"] == "0400 000 321", timeout=15,
               message="the holder's edit to be pushed after the release")
    harness.wait_first_sync(daemon, start=released)
    assert daemon.events("database_unlocked")[0]["runs_postponed"] == len(daemon.events("sync_postponed"))
    assert not daemon.events("job_failed")
    assert "Traceback" not in daemon.stderr() and "OperationalError" not in daemon.stdout()
    assert daemon.running()


# -- 12. systemd's socket ---------------------------------------------------------------------


def test_a_stale_notify_socket_is_logged_once_and_the_daemon_runs_on(harness):
    """With NOTIFY_SOCKET naming a socket that is gone, the daemon syncs, pushes an edit and stops with exit 0,
    logging one notify_failed warning for all its READY, STATUS, WATCHDOG and STOPPING messages."""
    gone = harness.tmp / "gone.sock"
    daemon = harness.start(env=harness.env | {"NOTIFY_SOCKET": str(gone)})
    wait_until(lambda: run_results(harness.db) == ["ok"] or not daemon.running(), timeout=20,
               message="the first sync")
    assert daemon.running(), daemon.describe()
    target = harness.sim.account.ids()[8]
    edit_row(harness.db, "UPDATE customers SET customerphone2 = '0412 000 777' WHERE pkcustomerid = ?", (target,))
    wait_until(lambda: harness.sim.account.get(target)["phone2"] == "0412 000 777", timeout=5,
               message="the edit to reach the simulator")
    wait_until(lambda: len(daemon.events("sync_finished")) >= 2, timeout=5, message="the push's sync_finished")

    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(timeout=10) == 0, daemon.describe()
    failed = daemon.events("notify_failed")
    assert len(failed) == 1 and failed[0]["socket"] == str(gone) and "FileNotFoundError" in failed[0]["error"]
    assert daemon.events("daemon_stopped") and "Traceback" not in daemon.stderr()


def test_notify_never_raises_and_logs_only_its_first_failure(monkeypatch):
    """notify() to a missing socket, to a socket file nobody listens on and to an absent abstract socket returns
    False without raising; the first failure is logged, the others are not."""
    monkeypatch.setattr(notify_module, "_failure_logged", threading.Event())
    home = tempfile.mkdtemp(prefix="spn-")  # sun_path holds 108 bytes
    stale = Path(home) / "stale.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(stale))  # the file stays after close, with nobody behind it
    try:
        with structlog.testing.capture_logs() as logs:
            for address in (str(Path(home) / "missing.sock"), str(stale), f"@spmirror-absent-{os.getpid()}"):
                monkeypatch.setenv("NOTIFY_SOCKET", address)
                assert notify("READY=1") is False
    finally:
        stale.unlink()
        os.rmdir(home)
    assert [(e["event"], e["socket"]) for e in logs] == [("notify_failed", str(Path(home) / "missing.sock"))]


# -- 13. SIGHUP: what may change live ---------------------------------------------------------


def test_sighup_applies_live_settings_and_refuses_the_rest_by_name(harness):
    """A reload whose file changes the database path, the API key, the webhook token and metrics_listen refuses
    those four by name (never their values) and keeps them: webhook writes and later syncs go to the old file with
    the old key, the new path is never created, nothing listens for metrics. The conflict policy it changes
    reaches the webhook receiver, and a changed interval takes effect."""
    sim, port, token = harness.sim, free_port(), "wh-old-" + "a" * 24
    new_key, new_token = "sk-ROTATED-" + "9" * 30, "wh-new-" + "b" * 24
    moved = harness.tmp / "moved" / "mirror.db"
    config = harness.tmp / "spmirror-test.toml"

    def write_config(key: str, path: Path, hook_token: str, policy: str, interval: str, metrics: str = "") -> None:
        config.write_text(f'[api]\nkey = "{key}"\n[database]\npath = "{path}"\n'
                          f'[sync]\ninterval = "{interval}"\nconflict_policy = "{policy}"\n'
                          f'[daemon]\nwatch_interval = "1h"\nmetrics_listen = "{metrics}"\n'
                          f'[webhooks]\nlisten = "127.0.0.1:{port}"\ntoken = "{hook_token}"\n')

    write_config(sim.api_key, harness.db, token, "manual", "1h")
    env = {k: v for k, v in harness.env.items()
           if k not in ("SPMIRROR_API_KEY", "SPMIRROR_DB", "SPMIRROR_SYNC_INTERVAL", "SPMIRROR_DAEMON_WATCH_INTERVAL")}
    daemon = harness.start("--config", str(config), env=env)
    harness.wait_first_sync(daemon)
    wait_until(lambda: daemon.events("webhooks_listening"), timeout=5, message="webhooks_listening")
    refused = ["[api] key", "[database] path", "[daemon] metrics_listen", "[webhooks] token"]

    write_config(new_key, moved, new_token, "remote_wins", "1h", metrics=f"127.0.0.1:{free_port()}")
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: daemon.events("config_reloaded"), timeout=5, message="config_reloaded")
    assert daemon.events("config_reloaded")[0]["changed"] == ["[sync] conflict_policy"]
    warning = daemon.events("config_reload_refused")[0]
    assert warning["settings"] == refused and "restart" in warning["reason"] and warning["level"] == "warning"

    # The same field changed on both sides: the receiver settles it by the reloaded policy, in the old file.
    target = sim.account.ids()[10]
    edit_row(harness.db, "UPDATE customers SET customerphone1 = '0400 111 000' WHERE pkcustomerid = ?", (target,))
    sim.account.edit_customer(target, phone1="0400 222 000")
    hint = {"pkcustomerid": target, "customer_email": sim.account.get(target)["email"], "new_status": 1}
    assert httpx.post(f"http://127.0.0.1:{port}/webhooks/{token}", json=hint, timeout=5).status_code == 200
    wait_until(lambda: [e for e in daemon.events("webhook_applied") if e["remote_id"] == target]
               or daemon.events("webhook_dropped"), timeout=5, message="the webhook's write")
    assert not daemon.events("webhook_dropped")
    row = query(harness.db, "SELECT customerphone1, sync_state FROM customers WHERE pkcustomerid = ?", (target,))[0]
    assert row["customerphone1"] == "0400 222 000" and row["sync_state"] != "conflict"  # manual: a conflict
    assert scalar(harness.db, "SELECT count(*) FROM customer_changes WHERE pkcustomerid = ? AND source = ?",
                  (target, "local overridden (remote_wins)")) == 1

    write_config(new_key, moved, new_token, "remote_wins", "1s", metrics=f"127.0.0.1:{free_port()}")
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: len(daemon.events("config_reloaded")) == 2, timeout=5, message="the second config_reloaded")
    assert daemon.events("config_reloaded")[1]["changed"] == ["[sync] interval"]
    assert daemon.events("config_reload_refused")[1]["settings"] == refused
    wait_until(lambda: run_results(harness.db).count("ok") >= 3, timeout=10, message="syncs into the old file")
    assert not moved.parent.exists()
    assert not daemon.events("metrics_listening")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(timeout=10) == 0, daemon.describe()
    for secret in (new_key, new_token, token, sim.api_key):
        assert secret not in daemon.stdout() + daemon.stderr()


def test_signal_handlers_only_queue_the_request(tmp_path):
    """The SIGHUP and SIGTERM handlers touch neither the scheduler, the settings nor the stop flag: they queue the
    signal, and the daemon's signal thread then reloads and stops."""
    settings = load_settings(env={"SPMIRROR_DB": str(tmp_path / "m.db"), "SPMIRROR_API_KEY": API_KEY,
                                  "SPMIRROR_API_URL": "http://127.0.0.1:9/apidata.php"})
    loads: list[int] = []

    class Untouchable:
        def __getattr__(self, name):
            raise AssertionError(f"the signal handler used the scheduler ({name})")

    daemon = Daemon(settings, lambda: loads.append(1) or settings, lambda _settings: None)
    scheduler, daemon.scheduler = daemon.scheduler, Untouchable()
    try:
        daemon.signals.handle(signal.SIGHUP, None)  # what install() registers for each signal
        daemon.signals.handle(signal.SIGTERM, None)
        assert loads == [] and not daemon.stop.is_set() and daemon.settings is settings
        daemon.scheduler = scheduler
        daemon.signals.start()  # the thread acts on what was queued, in order
        wait_until(lambda: loads == [1] and daemon.stop.is_set(), timeout=5, message="the reload and the stop")
    finally:
        daemon.signals.close()
        daemon.client.close()


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: f"{s.section}.{s.key}")
def test_a_reload_applies_a_live_setting_and_keeps_any_other_until_a_restart(setting):
    """Each setting that changes is either applied (live) or refused by name with its running value kept."""
    key = (setting.section, setting.key)
    running = Settings({(s.section, s.key): s.default for s in SETTINGS})
    changed = object()
    reload = plan_reload(running, Settings({**running.values, key: changed}))
    if key in LIVE:
        assert (reload.applied, reload.refused) == ((setting_name(key),), ())
        assert reload.settings[key] is changed
    else:
        assert (reload.applied, reload.refused) == ((), (setting_name(key),))
        assert reload.settings[key] == setting.default
    assert {k: v for k, v in reload.settings.values.items() if k != key} == \
        {k: v for k, v in running.values.items() if k != key}
    assert LIVE <= {(s.section, s.key) for s in SETTINGS}


def test_a_webhook_port_already_taken_exits_2_naming_the_setting(harness):
    """Another program listening on [webhooks] listen: `spmirror run` exits 2 naming the setting and the address
    (so systemd's RestartPreventExitStatus=2 stops a restart loop), no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        env = harness.env | {"SPMIRROR_WEBHOOKS_LISTEN": address, "SPMIRROR_WEBHOOKS_TOKEN": "t" * 32}
        daemon = harness.start(env=env)
        assert daemon.wait_exit(15) == 2
    assert f"[webhooks] listen {address}" in daemon.stderr() and "Try: give each instance its own" in daemon.stderr()
    assert "Traceback" not in daemon.stderr()
