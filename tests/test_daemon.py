"""`spmirror run` as a real subprocess: sd_notify, the fast push path, outages, locks, signals, metrics.

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
from pathlib import Path
from typing import Callable

import httpx
import pytest

from conftest import API_KEY
from polling import free_port, wait_until
from sqlite_edit import scalar
from mirror.lock import LockBusy, run_lock, sync_lock
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
    lock.acquire()
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
    lock.acquire()
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


# -- 6. identity ----------------------------------------------------------------------------


def test_without_getcustomer_an_edit_of_a_shared_email_customer_arrives_within_seconds(harness):
    """No getcustomer, and the edited customer shares its email with an older one: the watch job cannot re-read it,
    so it brings the full sync forward (interval 1h) and the edit reaches Solar Proof within seconds, once, merged;
    the watch job does not keep retrying it meanwhile."""
    sim = harness.sim
    sim.quirks.update(getcustomer=False)
    first = sim.account.ids()[2]
    second = sim.account.create_customer(first_name="Second", last_name="Sharer", email=sim.account.get(first)["email"])
    daemon = harness.start(env=harness.env | {"SPMIRROR_SYNC_INTERVAL": "1h"})
    harness.wait_first_sync(daemon)
    edit_row(harness.db, "UPDATE customers SET customerphone1 = '0400 707 707' WHERE pkcustomerid = ?", (second,))
    wait_until(lambda: sim.account.get(second)["phone1"] == "0400 707 707", timeout=10,
               message="the edit to reach the simulator")
    wait_until(lambda: scalar(harness.db, "SELECT sync_state FROM customers WHERE pkcustomerid = ?", (second,))
               == "synced", timeout=5, message="the row to settle")
    updates = [e for e in sim.account.write_log() if e["action"] == "updatecustomer"]
    assert [e["body"]["data"]["pkcustomerid"] for e in updates] == [second]
    assert daemon.events("update_deferred") and sim.account.get(first)["phone1"] != "0400 707 707"
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
    (the lookup proves nothing). The watch job does not turn the daemon's own commits into a loop of push-only
    runs re-trying it: over the next four watchdog pings (about 2 s of 0.2 s watch looks) at most one more run."""
    sim = harness.sim
    sim.quirks.update(getcustomer=False)
    daemon = harness.start(env=harness.env | {"SPMIRROR_SYNC_INTERVAL": "1h"})
    harness.wait_first_sync(daemon)
    gone, other = sim.account.ids()[4], sim.account.ids()[6]
    sim.account.delete_customer(gone)
    edit_row(harness.db, "UPDATE customers SET customerphone1 = '0400 808 808' WHERE pkcustomerid = ?", (gone,))
    wait_until(lambda: len(daemon.events("sync_finished")) >= 3, timeout=10,
               message="the push-only run and the full sync it brought forward")
    edit_row(harness.db, "UPDATE customers SET customerphone2 = '0400 909 909' WHERE pkcustomerid = ?", (other,))
    wait_until(lambda: sim.account.get(other)["phone2"] == "0400 909 909", timeout=5, message="the other edit")
    runs = len(daemon.events("sync_finished"))
    start = len(harness.notes.lines())
    for _ in range(4):
        start = harness.notes.wait_for(lambda line: line == "WATCHDOG=1", timeout=5, start=start,
                                       message="WATCHDOG=1") + 1
    assert len(daemon.events("sync_finished")) <= runs + 1
    row = scalar(harness.db, "SELECT sync_state FROM customers WHERE pkcustomerid = ?", (gone,))
    assert row == "pending"  # kept, waiting for the second walk that confirms the delete
