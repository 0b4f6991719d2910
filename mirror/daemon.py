"""`spmirror run`: the long-running service, on an APScheduler 3.x BlockingScheduler.

Jobs (each on the scheduler's worker threads, each opening its own database connection):
  sync      a full push+pull every [sync] interval (with jitter), the same code as `spmirror sync`;
            after a run that found the API unavailable it backs off, doubling up to the interval
  watch     every [daemon] watch_interval: if another SQLite client committed since the last
            look (PRAGMA data_version) and rows are pending, push them now, without a walk
  watchdog  WATCHDOG=1 to systemd at half of WatchdogSec, when systemd asked for it

One writer: the run lock refuses a second daemon, and the sync lock keeps the daemon's runs and
any `spmirror sync` from overlapping. SIGTERM/SIGINT stop the scheduler and ask a running walk to
stop after its current page, so the process exits within seconds with every transaction whole.
SIGHUP reloads the configuration (interval, policies, logging); the database path and the API
URL and key are read once at start, and a change to them needs a restart.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import structlog
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.blocking import BlockingScheduler

from mirror.api import SolarProofClient
from mirror.clock import utc_now_text
from mirror.commands.sync import sync_once
from mirror.config import Settings
from mirror.errors import MirrorError
from mirror.exit_codes import EXIT_OK, EXIT_UNAVAILABLE
from mirror.lock import LockBusy, run_lock, sync_lock
from mirror.metrics import Metrics
from mirror.notify import notify, watchdog_interval
from mirror.store import Store
from mirror.sync.account import AccountMismatch, check_account
from mirror.webhooks import WebhookReceiver

log = structlog.get_logger()

# Rows a push would send now: pending ones, except creates that were sent and wait for complete
# walks to settle them (a push cannot), and updates that wait for a walk to read their customer
# (their ids are bound in: the daemon remembers them until the next full sync).
_PUSHABLE = (
    "SELECT count(*) FROM customers WHERE sync_state = 'pending' AND NOT (pkcustomerid IS NULL AND id IN "
    "(SELECT local_id FROM create_intents WHERE complete_walks_since < 2 OR acknowledged = 1)) "
    "AND (pkcustomerid IS NULL OR pkcustomerid NOT IN (SELECT value FROM json_each(?)))"
)


def daemon_state_path(database: Path) -> Path:
    return database.with_name(database.name + ".daemon.json")


def write_daemon_state(database: Path, state: dict) -> None:
    """What `spmirror status` shows of a running daemon: its pid, last result and next sync."""
    path = daemon_state_path(database)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(state, handle)
    os.replace(temporary, path)


class Daemon:
    """The scheduler, its jobs and its signals. `load_settings` is called again on SIGHUP."""

    STOP_TIMEOUT = 50.0  # seconds to wait for a job in flight after SIGTERM (systemd allows 60)

    def __init__(self, load_settings: Callable[[], Settings], apply_logging: Callable[[Settings], None]):
        self._load_settings = load_settings
        self._apply_logging = apply_logging
        self.settings = load_settings()
        self.database = self.settings.database_path
        self.stop = threading.Event()
        self.scheduler = BlockingScheduler(timezone=timezone.utc)
        self.client = SolarProofClient.from_settings(self.settings)
        self.metrics = Metrics(self.client.stats)
        self._failures = 0
        self._data_version: int | None = None
        self._watch_connection: sqlite3.Connection | None = None
        self._push_wanted = False  # edits seen but not pushed yet (lock busy, API paused)
        self._push_not_before = 0.0  # monotonic time before which the watch job does not push
        self._waiting_for_walk: frozenset[int] = frozenset()  # updates a push-only run had to defer
        self._job_running = threading.Lock()  # held while a sync job runs; run() waits on it
        self.webhooks: WebhookReceiver | None = None

    # -- life cycle ----------------------------------------------------------------------

    def run(self) -> int:
        """Serve until stopped; returns the exit code."""
        lock = run_lock(self.database)
        lock.acquire()  # LockBusy propagates: the caller reports the other daemon
        try:
            with Store.open(self.database) as store:
                # Creates or upgrades the file, and refuses another account's settings before any
                # job, webhook or push can write (AccountMismatch: the caller exits 2). An unpinned
                # file is pinned by the first sync, once the API has accepted the key.
                check_account(store, self.settings[("api", "url")], self.settings.api_key)
            self._start_metrics()
            self._start_webhooks()
            self._schedule()
            self._install_signals()
            # The watch job compares against this: an edit committed from now on is seen.
            self._data_version = self._watch().execute("PRAGMA data_version").fetchone()[0]
            log.info("daemon_started", database=str(self.database), interval=self._interval())
            notify("READY=1", "STATUS=started; first sync running")
            self.scheduler.start()  # blocks until a signal shuts it down
            if not self._job_running.acquire(timeout=self.STOP_TIMEOUT):
                log.error("daemon_stop_timed_out", seconds=self.STOP_TIMEOUT)
        finally:
            notify("STOPPING=1")
            if self.webhooks is not None:
                self.webhooks.stop()
            self.client.close()
            daemon_state_path(self.database).unlink(missing_ok=True)
            lock.release()
            if self._watch_connection is not None:
                self._watch_connection.close()
        log.info("daemon_stopped")
        return EXIT_OK

    def _interval(self) -> float:
        return self.settings[("sync", "interval")]

    def _schedule(self) -> None:
        interval = self._interval()
        self.scheduler.add_job(
            self._sync_job, "interval", id="sync", seconds=interval, jitter=min(30.0, interval / 10),
            max_instances=1, coalesce=True, misfire_grace_time=int(interval),
            next_run_time=datetime.now(timezone.utc),
        )
        self.scheduler.add_job(
            self._watch_job, "interval", id="watch", seconds=self.settings[("daemon", "watch_interval")],
            max_instances=1, coalesce=True, misfire_grace_time=5,
        )
        ping = watchdog_interval()
        if ping:
            self.scheduler.add_job(lambda: notify("WATCHDOG=1"), "interval", id="watchdog", seconds=ping,
                                   max_instances=1, coalesce=True)
        self.scheduler.add_listener(self._job_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED)

    def _install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)

    def _on_stop(self, signum: int, _frame: object) -> None:
        log.info("daemon_stopping", signal=signal.Signals(signum).name)
        self.stop.set()
        # Not shutdown(wait=True): it holds the scheduler's lock while it waits for jobs, and a
        # job that asks the scheduler anything would wait for it forever. Stop the loop from a
        # thread (a signal handler may interrupt the scheduler inside its own lock); run() then
        # waits for the job in flight, which the stop event ends after its current page.
        threading.Thread(target=self.scheduler.shutdown, kwargs={"wait": False}, daemon=True).start()

    def _on_reload(self, _signum: int, _frame: object) -> None:
        try:
            settings = self._load_settings()
        except MirrorError as exc:
            log.error("config_reload_failed", error=str(exc))
            return
        self.settings = settings
        self._apply_logging(settings)
        self.scheduler.reschedule_job("sync", trigger="interval", seconds=self._interval(),
                                      jitter=min(30.0, self._interval() / 10))
        log.info("config_reloaded", interval=self._interval())

    def _job_event(self, event: JobExecutionEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            log.warning("job_missed", job=event.job_id, scheduled=str(event.scheduled_run_time))
        else:
            log.error("job_failed", job=event.job_id, error=repr(event.exception))

    # -- jobs ----------------------------------------------------------------------------

    def _sync_job(self, push_only: bool = False) -> int | None:
        """One sync under the sync lock; skipped if another process is syncing right now."""
        if self.stop.is_set():
            return None
        lock = sync_lock(self.database, "spmirror run")
        try:
            lock.acquire()
        except LockBusy as exc:
            log.info("sync_skipped", reason=f"another sync holds the lock ({exc.holder})")
            return None
        with lock, self._job_running:
            started = time.monotonic()
            code, report = sync_once(self.settings, pull=not push_only, stop=self.stop, client=self.client)
            deferred = frozenset(report.push.deferred) if report.push is not None else frozenset()
            # Updates that need a complete walk to read their customer (no getcustomer): a new one
            # brings the full sync forward, once; until then the watch job does not push them again.
            walk_wanted = push_only and bool(deferred - self._waiting_for_walk)
            self._waiting_for_walk = deferred
            self.metrics.record_run("ok" if code == EXIT_OK else f"exit_{code}", code == EXIT_OK,
                                    time.monotonic() - started)
            if not self.stop.is_set():
                self._after_run(code, push_only)
        if walk_wanted and not self.stop.is_set():
            self._sync_now()  # after the lock is released, or the sync would find it busy
        return code

    def _sync_now(self) -> None:
        job = self.scheduler.get_job("sync")
        if job is not None:
            job.modify(next_run_time=datetime.now(timezone.utc))

    def _after_run(self, code: int, push_only: bool) -> None:
        with Store.open(self.database) as store:
            self.metrics.record_rows(store)
        job = self.scheduler.get_job("sync")
        if code == EXIT_UNAVAILABLE and not push_only:
            # Back off while the API is down: 15 s, 30 s, ... up to the normal interval.
            self._failures += 1
            delay = min(self._interval(), 15 * 2 ** (self._failures - 1))
            if job is not None:
                job.modify(next_run_time=datetime.now(timezone.utc) + timedelta(seconds=delay))
            status = f"API unavailable; retrying in {delay:.0f}s"
            notify(f"STATUS={status}")
            write_daemon_state(self.database, {"pid": os.getpid(), "status": status,
                                               "next_sync": (datetime.now(timezone.utc)
                                                             + timedelta(seconds=delay)).isoformat()})
            return
        if not push_only:
            self._failures = 0
        next_run = job.next_run_time.isoformat() if job is not None and job.next_run_time else "-"
        status = f"last {'push' if push_only else 'sync'} {utc_now_text()} exit {code}; next sync {next_run}"
        notify(f"STATUS={status}")
        write_daemon_state(self.database, {"pid": os.getpid(), "status": status, "next_sync": next_run})

    def _watch(self) -> sqlite3.Connection:
        if self._watch_connection is None:
            self._watch_connection = sqlite3.connect(self.database, check_same_thread=False)
        return self._watch_connection

    def _watch_job(self) -> None:
        """Push soon after someone commits an edit, without waiting for the next full sync.

        The version is taken before the push: an edit committed while the push runs (which the
        push may not have seen) changes it again, so the next look catches it. Our own commits
        change it too; that costs one count query on the next look, no more.
        """
        connection = self._watch()
        version = connection.execute("PRAGMA data_version").fetchone()[0]
        if version == self._data_version and not self._push_wanted:
            return
        self._data_version = version
        if time.monotonic() < self._push_not_before:
            self._push_wanted = True  # the API was unavailable a moment ago; try after the pause
            return
        pending = connection.execute(_PUSHABLE, (json.dumps(sorted(self._waiting_for_walk)),)).fetchone()[0]
        deleted = connection.execute(
            "SELECT count(*) FROM customer_base b WHERE NOT EXISTS "
            "(SELECT 1 FROM customers c WHERE c.pkcustomerid = b.pkcustomerid)"
        ).fetchone()[0]
        self._push_wanted = False
        if not (pending or deleted):
            return
        log.info("local_edits_seen", pending=pending, deleted=deleted)
        code = self._sync_job(push_only=True)
        if code is None and not self.stop.is_set():
            self._push_wanted = True  # another sync held the lock: ask again next look
        elif code == EXIT_UNAVAILABLE:
            self._push_not_before = time.monotonic() + 15

    def _start_webhooks(self) -> None:
        listen, token = self.settings[("webhooks", "listen")], self.settings[("webhooks", "token")]
        if not (listen and token):
            return
        self.webhooks = WebhookReceiver(
            listen, token, fetch=lambda remote_id, email: self.client.fetch_customer(remote_id, email=email),
            apply=self._apply_locked, database=self.database,
            conflict_policy=self.settings[("sync", "conflict_policy")],
        )
        self.webhooks.start()

    def _apply_locked(self, write: Callable[[], None]) -> None:
        """Run a webhook's write under the sync lock, waiting for a sync in progress, and only
        into a file pinned to this account (an unpinned one waits for its first sync)."""
        lock = sync_lock(self.database, "spmirror run (webhook)")
        try:
            lock.acquire(wait_seconds=self._interval() + 60)
        except LockBusy as exc:
            log.warning("webhook_dropped", reason=f"the sync lock stayed busy ({exc.holder}); the next walk "
                        "picks the change up")
            return
        try:
            with Store.open(self.database) as store:
                pinned = check_account(store, self.settings[("api", "url")], self.settings.api_key)
            if pinned is None:
                log.warning("webhook_dropped", reason="the first sync has not pinned this mirror's account yet; "
                            "the walk picks the change up")
                return
            write()
        except AccountMismatch as exc:
            log.error("webhook_dropped", reason=str(exc))
        finally:
            lock.release()

    def _start_metrics(self) -> None:
        listen = self.settings[("daemon", "metrics_listen")]
        if listen:
            host, _, port = listen.rpartition(":")
            self.metrics.serve(host, int(port))
            log.info("metrics_listening", url=f"http://{listen}/metrics")
