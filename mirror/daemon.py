"""`spmirror run`: the long-running service, on an APScheduler 3.x BlockingScheduler.

Jobs (each on the scheduler's worker threads, each opening its own database connection):
  sync      a full push+pull every [sync] interval (with jitter), the same code as `spmirror sync`;
            after a run that found the API unavailable it backs off, doubling up to the interval
  watch     every [daemon] watch_interval: if another client committed since the last look and a
            push could do what no push has tried (the work items of mirror.store.sqlite.watch), push
            now, without a walk; the daemon's own commits so never loop. On SQLite the look polls
            PRAGMA data_version. On PostgreSQL a listener thread runs it instead, woken by the capture
            trigger's NOTIFY (mirror.store.postgres.listen), which the daemon's own writes never send
  watchdog  WATCHDOG=1 to systemd at half of WatchdogSec, when systemd asked for it
  run_lock  (PostgreSQL) every few seconds: is the session holding the run lock still there? If it
            was lost, a standby may hold the lock now, so this daemon stops (exit 75; systemd
            restarts it, and it stands by)

While another program holds SQLite's write lock (a GUI editor with unsaved changes), runs are
postponed 0.5 s, 1 s, 2 s, ... up to a minute, and resume by themselves once it is released.
One writer: the run lock refuses a second daemon on a SQLite file; on PostgreSQL (an advisory
lock, across hosts) a second daemon waits for it as a hot standby and takes over the moment the
first one's session ends. The sync lock keeps the daemon's runs and any `spmirror sync` from
overlapping. Signals are acted on by a thread (mirror.signals):
SIGTERM/SIGINT stop the scheduler and ask a running walk to stop after its current page, so the
process exits within seconds with every transaction whole; SIGHUP reloads what can change live
and refuses, by name, what needs a restart (mirror.reload).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Callable

import structlog
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, EVENT_SCHEDULER_STARTED, JobExecutionEvent
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler

from mirror.api import SolarProofClient
from mirror.clock import utc_now_text
from mirror.commands.sync import sync_once
from mirror.config import Settings
from mirror.daemon_state import daemon_state_path, write_daemon_state
from mirror.errors import ListenError, MirrorError
from mirror.exit_codes import EXIT_OK, EXIT_UNAVAILABLE
from mirror.metrics import Metrics
from mirror.notify import notify, watchdog_interval
from mirror.reload import plan_reload
from mirror.signals import SignalThread
from mirror.standby import wait_for_run_lock
from mirror.store import LockBusy, Store, StoreBusy, backend_for
from mirror.sync.account import AccountMismatch, check_account
from mirror.store.pending_work import WorkItem
from mirror.webhooks import WebhookReceiver

log = structlog.get_logger()


def _doubling(first: float, failures: int, cap: float) -> float:
    """first, 2 x first, 4 x first, ... for the 1st, 2nd, 3rd failure in a row, never above cap."""
    return min(cap, first * 2 ** min(failures - 1, 30))


class Daemon:
    """The scheduler, its jobs and its signals. `load_settings` is called again on SIGHUP."""

    STOP_TIMEOUT = 50.0  # seconds to wait for a job in flight after SIGTERM (systemd allows 60)
    API_RETRY_FIRST = 15.0  # the full sync's first retry after the API was unavailable
    PUSH_PAUSE = 15.0  # the watch job's pause after a push found the API unavailable
    LOCKED_RETRY_FIRST = 0.5  # the first retry while another program holds the write lock
    LOCKED_RETRY_MAX = 60.0
    STANDBY_POLL = 1.0  # how often a standby's wait wakes to look for SIGTERM (the lock itself passes at once)
    RUN_LOCK_CHECK = 5.0  # seconds between looks at the run lock's session (PostgreSQL)
    LISTEN_RETRY = 5.0  # the pause after the listener lost the server

    def __init__(self, settings: Settings, load_settings: Callable[[], Settings],
                 apply_logging: Callable[[Settings], None]):
        self._load_settings = load_settings
        self._apply_logging = apply_logging
        self.settings = settings
        self.database = settings.database  # a Location: a SQLite file or a postgresql:// URL
        self.backend = backend_for(self.database)
        self.stop = threading.Event()
        self.scheduler = BlockingScheduler(timezone=timezone.utc)
        self.client = SolarProofClient.from_settings(settings)
        self.metrics = Metrics(self.client.stats)
        self.watch = self.backend.watch()
        self._exit_code = EXIT_OK
        self.webhooks: WebhookReceiver | None = None
        self.signals = SignalThread({signal.SIGHUP: lambda _signum: self._reload(),
                                     signal.SIGTERM: self._shutdown, signal.SIGINT: self._shutdown})
        self._job_running = threading.Lock()  # held while a sync job runs; run() waits on it
        self._failures = 0  # full syncs in a row that found the API unavailable
        self._locked_runs = 0  # runs in a row postponed because another program held the write lock
        self._locked_since = 0.0
        self._data_version: int | None = None
        self._push_wanted = False  # look at the work again even if nothing was committed since
        self._push_not_before = 0.0  # monotonic time before which the watch job does not push
        self._tried: frozenset[WorkItem] = frozenset()  # the work the last finished run saw
        self._tried_lock = threading.Lock()

    # -- life cycle ----------------------------------------------------------------------

    def run(self) -> int:
        """Serve until stopped; returns the exit code."""
        lock = self.backend.run_lock()
        if lock.standby:
            # What would stop this daemon at takeover (another account's key, a role that may only
            # read) stops it now, exit 2, instead of waiting as a healthy standby that fails the
            # moment it is needed.
            with Store.open(self.database, busy_timeout=self.settings[("database", "busy_timeout")]) as store:
                check_account(store, self.settings[("api", "url")], self.settings.api_key)
            if not self._stand_by(lock):
                return EXIT_OK  # stopped (SIGTERM) before it was this daemon's turn
        else:
            lock.acquire()  # LockBusy propagates: the caller reports the other daemon
        try:
            with Store.open(self.database, busy_timeout=self.settings[("database", "busy_timeout")]) as store:
                # Creates or upgrades the file, and refuses another account's settings before any
                # job, webhook or push can write (AccountMismatch: the caller exits 2). An unpinned
                # file is pinned by the first sync, once the API has accepted the key.
                check_account(store, self.settings[("api", "url")], self.settings.api_key)
            self._start_metrics()
            self._start_webhooks()
            self._schedule(lock)
            self.signals.install()
            # The watch job compares against this: an edit committed from now on is seen.
            self._data_version = self.watch.data_version()
            log.info("daemon_started", database=str(self.database), interval=self._interval())
            notify("READY=1", "STATUS=started; first sync running")
            self._start_listener()
            self.scheduler.start()  # blocks until a signal shuts it down
            if not self._job_running.acquire(timeout=self.STOP_TIMEOUT):
                log.error("daemon_stop_timed_out", seconds=self.STOP_TIMEOUT)
        finally:
            self.signals.close()
            notify("STOPPING=1")
            if self.webhooks is not None:
                self.webhooks.stop()
            self.client.close()
            daemon_state_path(self.database).unlink(missing_ok=True)
            lock.release()
            self.watch.close()
        log.info("daemon_stopped")
        return self._exit_code

    def _stand_by(self, lock) -> bool:
        """Wait for the run lock as a hot standby (PostgreSQL, mirror.standby): True once it is
        this daemon's, False if SIGTERM came first."""
        self.signals.install()  # SIGTERM and Ctrl-C end the wait
        try:
            taken = wait_for_run_lock(lock, self.stop, poll=self.STANDBY_POLL)
        except BaseException:
            self._close_standby()
            raise
        if not taken:
            self._close_standby()
            log.info("daemon_stopped")
        return taken

    def _close_standby(self) -> None:
        self.signals.close()
        notify("STOPPING=1")
        self.client.close()
        self.watch.close()

    def _interval(self) -> float:
        return self.settings[("sync", "interval")]

    def _schedule(self, run_lock) -> None:
        interval = self._interval()
        self.scheduler.add_job(
            self._sync_job, "interval", id="sync", seconds=interval, jitter=min(30.0, interval / 10),
            max_instances=1, coalesce=True, misfire_grace_time=max(1, int(interval)),
            next_run_time=datetime.now(timezone.utc),
        )
        if not self._watch_wakes():  # else the listener thread runs the watch (_start_listener)
            self.scheduler.add_job(
                self._watch_job, "interval", id="watch", seconds=self.settings[("daemon", "watch_interval")],
                max_instances=1, coalesce=True, misfire_grace_time=5,
            )
        if run_lock.standby:  # a lock held by a session that can be lost (PostgreSQL): watch it
            self.scheduler.add_job(lambda: self._check_run_lock(run_lock), "interval", id="run_lock",
                                   seconds=self.RUN_LOCK_CHECK, max_instances=1, coalesce=True)
        ping = watchdog_interval()
        if ping:
            self.scheduler.add_job(lambda: notify("WATCHDOG=1"), "interval", id="watchdog", seconds=ping,
                                   max_instances=1, coalesce=True)
        self.scheduler.add_listener(self._job_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED)
        self.scheduler.add_listener(self._scheduler_started, EVENT_SCHEDULER_STARTED)

    # -- signals (on the signal thread, never inside a handler) ---------------------------

    def _shutdown(self, signum: int) -> None:
        log.info("daemon_stopping", signal=signal.Signals(signum).name)
        self.stop.set()
        self._stop_scheduler()

    def _stop_scheduler(self) -> None:
        # Not shutdown(wait=True): it holds the scheduler's lock while it waits for jobs, and a
        # job that asks the scheduler anything would wait for it forever. run() then waits for
        # the job in flight, which the stop event ends after its current page.
        try:
            if self.scheduler.running:
                self.scheduler.shutdown(wait=False)
        except SchedulerNotRunningError:
            pass  # stopped meanwhile

    def _scheduler_started(self, _event: object) -> None:
        if self.stop.is_set():
            self._stop_scheduler()  # a SIGTERM that came while the scheduler was starting

    def _reload(self) -> None:
        """Apply what changed in the settings and can change live; name the rest (mirror.reload)."""
        try:
            loaded = self._load_settings()
        except MirrorError as exc:
            log.error("config_reload_failed", error=str(exc))
            return
        change = plan_reload(self.settings, loaded)
        before, self.settings = self.settings, change.settings
        self._apply_logging(change.settings)
        if self._interval() != before[("sync", "interval")]:
            interval = self._interval()
            self._reschedule("sync", interval, jitter=min(30.0, interval / 10),
                             misfire_grace_time=max(1, int(interval)))
        watch_interval = self.settings[("daemon", "watch_interval")]
        if watch_interval != before[("daemon", "watch_interval")]:
            self._reschedule("watch", watch_interval)
        if self.webhooks is not None:
            self.webhooks.conflict_policy = self.settings[("sync", "conflict_policy")]
        if change.refused:
            log.warning("config_reload_refused", settings=list(change.refused),
                        reason="a change to these needs a restart (systemctl restart spmirror); "
                               "until then the daemon runs on with their old values")
        log.info("config_reloaded", changed=list(change.applied), interval=self._interval())

    def _reschedule(self, job_id: str, seconds: float, jitter: float | None = None, **options: object) -> None:
        """A new interval for a job. A shorter one takes effect at once; a run already due sooner
        (a retry after a failure) keeps its time."""
        job = self.scheduler.get_job(job_id)
        if job is None:
            return
        due = job.next_run_time
        self.scheduler.reschedule_job(job_id, trigger="interval", seconds=seconds, jitter=jitter)
        if options:
            self.scheduler.modify_job(job_id, **options)
        job = self.scheduler.get_job(job_id)
        if job is not None and due is not None and job.next_run_time is not None and due < job.next_run_time:
            job.modify(next_run_time=due)

    def _job_event(self, event: JobExecutionEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            log.warning("job_missed", job=event.job_id, scheduled=str(event.scheduled_run_time))
        else:
            log.error("job_failed", job=event.job_id, error=repr(event.exception))

    # -- jobs ----------------------------------------------------------------------------

    def _sync_job(self, push_only: bool = False) -> int | None:
        """One sync under the sync lock. None if it did not start: another sync holds the lock,
        or another program holds the database's write lock (then it is postponed)."""
        if self.stop.is_set():
            return None
        lock = self.backend.sync_lock("spmirror run")
        try:
            lock.acquire()
        except LockBusy as exc:
            log.info("sync_skipped", reason=f"another sync holds the lock ({exc.holder})")
            return None
        with lock, self._job_running:
            try:
                if not self.watch.write_lock_free():
                    raise self._busy()
                seen = self.watch.pending_work()  # before the run reads anything: all of it is seen
            except StoreBusy:
                self._postpone_while_locked()
                return None
            started = time.monotonic()
            code, report = sync_once(self.settings, pull=not push_only, stop=self.stop, client=self.client)
            self.metrics.record_run("ok" if code == EXIT_OK else f"exit_{code}", code == EXIT_OK,
                                    time.monotonic() - started)
            if code == EXIT_UNAVAILABLE and not self.watch.write_lock_free():
                self._postpone_while_locked()  # sync_once says 75 for a locked file too
                return None
            self._lock_was_free()
            with self._tried_lock:
                new = seen - self._tried
                if code != EXIT_UNAVAILABLE:  # a run the API cut short is tried again after its pause
                    self._tried = seen
            # Updates that need a complete walk to read their customer (no getcustomer): one that is
            # new work brings the full sync forward. One a push tried before does not, so an update
            # left waiting (its customer gone, say) costs no walk per look.
            deferred = set(report.push.deferred) if report.push is not None else set()
            walk_wanted = push_only and bool(deferred & {item.remote_id for item in new})
            if not self.stop.is_set():
                self._after_run(code, push_only)
        if walk_wanted and not self.stop.is_set():
            self._sync_now()  # after the lock is released, or the sync would find it busy
        return code

    def _sync_now(self) -> None:
        job = self.scheduler.get_job("sync")
        if job is not None:
            job.modify(next_run_time=datetime.now(timezone.utc))

    def _busy(self) -> StoreBusy:
        return self.backend.busy(self.watch.timeout)

    def _postpone_while_locked(self) -> None:
        """Another program holds the write lock: the next run waits, twice as long each time."""
        if not self._locked_runs:
            self._locked_since = time.monotonic()
        self._locked_runs += 1
        delay = _doubling(self.LOCKED_RETRY_FIRST, self._locked_runs, self.LOCKED_RETRY_MAX)
        due = datetime.now(timezone.utc) + timedelta(seconds=delay)
        job = self.scheduler.get_job("sync")
        if job is not None:
            job.modify(next_run_time=due)
        log.warning("sync_postponed", retry_in=delay, attempt=self._locked_runs, reason=str(self._busy()))
        self._report(f"database locked by another program; retrying in {delay:g}s", due.isoformat())

    def _lock_was_free(self) -> None:
        if self._locked_runs:
            log.info("database_unlocked", runs_postponed=self._locked_runs,
                     seconds=round(time.monotonic() - self._locked_since, 1))
            self._locked_runs = 0

    def _after_run(self, code: int, push_only: bool) -> None:
        try:
            with Store.open(self.database, busy_timeout=self.watch.timeout) as store:
                self.metrics.record_rows(store)
        except StoreBusy:
            pass  # the row gauges wait for the next run
        job = self.scheduler.get_job("sync")
        if code == EXIT_UNAVAILABLE and not push_only:
            # Back off while the API is down: 15 s, 30 s, ... up to the normal interval.
            self._failures += 1
            delay = _doubling(self.API_RETRY_FIRST, self._failures, self._interval())
            if job is not None:
                job.modify(next_run_time=datetime.now(timezone.utc) + timedelta(seconds=delay))
            self._report(f"API unavailable; retrying in {delay:.0f}s",
                         (datetime.now(timezone.utc) + timedelta(seconds=delay)).isoformat())
            return
        if not push_only:
            self._failures = 0
        next_run = job.next_run_time.isoformat() if job is not None and job.next_run_time else "-"
        self._report(f"last {'push' if push_only else 'sync'} {utc_now_text()} exit {code}; next sync {next_run}",
                     next_run)

    def _report(self, status: str, next_sync: str) -> None:
        """The state file first, then STATUS: whoever sees the STATUS finds the file saying the same."""
        write_daemon_state(self.database, {"pid": os.getpid(), "status": status, "next_sync": next_sync})
        notify(f"STATUS={status}")

    def _watch_job(self) -> None:
        """Push soon after someone commits an edit, without waiting for the next full sync.

        The version is read before the work: an edit committed while a push runs (which the push
        may not have seen) changes it again, so the next look catches it. The daemon's own
        commits change it too; they cost one read of the pending rows, and nothing a push has
        already tried is pushed again.
        """
        if self.stop.is_set() or self._locked_runs or self._job_running.locked():
            return  # a full sync runs now (it pushes too), or will once the write lock is free
        if time.monotonic() < self._push_not_before:
            return
        try:
            version = self.watch.data_version()
            if version == self._data_version and not self._push_wanted:
                return
            self._data_version = version
            work = self.watch.pending_work()
        except StoreBusy:
            # Even reads wait (a client in exclusive locking mode): the sync job checks the lock
            # and backs off; pushes resume after it.
            self._push_wanted = True
            self._sync_now()
            return
        self._push_wanted = False
        with self._tried_lock:
            self._tried &= work  # forget what left the work: if it comes back, it is new
            new = work - self._tried
        if not new:
            return
        log.info("local_edits_seen", pending=sum(i.kind == "row" for i in new),
                 deleted=sum(i.kind == "deleted" for i in new))
        code = self._sync_job(push_only=True)
        if code is None and not self.stop.is_set():
            self._push_wanted = True  # not started (another sync, or a locked file): ask again
        elif code == EXIT_UNAVAILABLE:
            self._push_not_before = time.monotonic() + self.PUSH_PAUSE
            self._push_wanted = True

    def _watch_wakes(self) -> bool:
        """Whether the watch can block until an edit arrives (PostgreSQL's LISTEN) rather than be polled."""
        return self.watch.wakes

    def _start_listener(self) -> None:
        if self._watch_wakes():
            threading.Thread(target=self._listen, name="spmirror-listen", daemon=True).start()

    def _listen(self) -> None:
        """The watch job, run on this thread the moment a person's edit is committed (NOTIFY), and
        every watch_interval besides for what a look postponed (a push that did not start)."""
        while not self.stop.is_set():
            try:
                self.watch.wait(self.settings[("daemon", "watch_interval")])
                self._watch_job()
            except Exception as exc:  # the server went away, say: the thread lives on, and looks again
                log.error("job_failed", job="watch", error=repr(exc), retry_in=self.LISTEN_RETRY)
                self.stop.wait(self.LISTEN_RETRY)

    def _check_run_lock(self, lock) -> None:
        """A run lock whose session was lost is no longer held: a standby may hold it and write
        now. Stop, so there is never a second writer; systemd restarts this daemon as a standby."""
        if self.stop.is_set() or lock.alive():
            return
        log.error("run_lock_lost", reason="the PostgreSQL session holding the run lock ended (a server restart, "
                  "a lost network, pg_terminate_backend); stopping so only one daemon writes",
                  exit_code=EXIT_UNAVAILABLE)
        self._exit_code = EXIT_UNAVAILABLE
        self.stop.set()
        self._stop_scheduler()

    def _start_webhooks(self) -> None:
        listen, token = self.settings[("webhooks", "listen")], self.settings[("webhooks", "token")]
        if not (listen and token):
            return
        try:
            self.webhooks = WebhookReceiver(
                listen, token, fetch=lambda remote_id, email: self.client.fetch_customer(remote_id, email=email),
                apply=self._apply_locked, database=self.database,
                conflict_policy=self.settings[("sync", "conflict_policy")],
            )
            self.webhooks.start()
        except OSError as exc:
            raise ListenError("webhooks", "listen", listen, exc) from exc

    def _apply_locked(self, write: Callable[[], None]) -> None:
        """Run a webhook's write under the sync lock, waiting for a sync in progress, and only
        into a file pinned to this account (an unpinned one waits for its first sync)."""
        lock = self.backend.sync_lock("spmirror run (webhook)")
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
            try:
                self.metrics.serve(host, int(port))
            except OSError as exc:
                raise ListenError("daemon", "metrics_listen", listen, exc) from exc
            log.info("metrics_listening", url=f"http://{listen}/metrics")
