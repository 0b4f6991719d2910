"""A hot standby: a second `spmirror run` on a PostgreSQL mirror waits here for the run lock.

The lock is a session-level advisory lock (mirror/store/postgres/advisory_lock.py); the wait
blocks in the server, so it passes the moment the active daemon's session ends (stopped,
killed, its host gone). While it waits, systemd hears READY (a standby is a started service,
not one stuck starting) and the watchdog pings go on.
"""

from __future__ import annotations

import threading
import time

import structlog

from mirror.notify import notify, watchdog_interval

log = structlog.get_logger()


def wait_for_run_lock(lock, stop: threading.Event, poll: float = 1.0) -> bool:
    """Block until `lock` (an advisory run lock) is held (True) or `stop` is set (False)."""
    began = time.monotonic()
    waited = threading.Event()
    ping = watchdog_interval()
    last_ping = time.monotonic()

    def busy(holder: str) -> None:
        waited.set()
        holder = holder or "another spmirror run"
        log.info("standby_waiting", holder=holder,
                 reason=f"standby: waiting for the advisory lock held by {holder}; "
                        "this daemon takes over when that session ends")
        notify("READY=1", f"STATUS=standby: waiting for the run lock held by {holder}")

    def tick() -> None:
        nonlocal last_ping
        if ping and time.monotonic() - last_ping >= ping:
            notify("WATCHDOG=1")
            last_ping = time.monotonic()

    if not lock.stand_by(stop, busy, tick, poll=poll):
        return False
    if waited.is_set():
        log.info("standby_took_over", waited_seconds=round(time.monotonic() - began, 3))
        notify("STATUS=took over the run lock; first sync running")
    return True
