"""PostgreSQL advisory locks: one daemon per mirror across hosts, one sync at a time.

The run lock is held by `spmirror run` for its whole life; the sync lock for the length of each
sync (the daemon's, a webhook's write, `spmirror sync`'s), so two processes never push the same
edit. The same contract as the SQLite file locks (mirror/store/sqlite/file_lock.py), but a
second daemon does not have to be refused: it can stand by, blocked on the run lock, and take
over the moment the first one's session ends.

Each lock is a session-level advisory lock held by a session of its own, never by a session that
runs transactions (a rollback or a pool would not release it, but a closed session must): when
the holder dies (SIGKILL, a crash) its kernel closes the socket and the server ends the session
at once, which frees the lock. A host that vanishes sends nothing; the keepalive settings below
make the server notice within about half a minute instead of the OS default of two hours.

The key is a 64-bit hash of the database, the schema and the lock's purpose, so two mirrors in
two schemas of one database never share a lock. Who holds a lock is told by the holding
session's application_name ("spmirror run pid 4242 on host-a"), which PostgreSQL shows every
role in pg_stat_activity.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Callable
from urllib.parse import parse_qs, urlencode, urlsplit

import psycopg
import structlog

from mirror.store.errors import LockBusy, StoreError, StoreUnreachable
from mirror.store.location import Location
from mirror.store.postgres.connection import connect, error_line

log = structlog.get_logger()

# The server probes a silent holder's socket after 10 s, every 5 s, and ends the session after 3
# unanswered probes: a lost host's locks free in about 25 s. (Per session: no server config.)
_KEEPALIVES = ("SET tcp_keepalives_idle = 10", "SET tcp_keepalives_interval = 5", "SET tcp_keepalives_count = 3")
# The same from the client's side (libpq parameters), so a holder cut off from the server finds
# out (alive() fails) rather than waiting in a read for the OS's 15 minutes of retransmissions.
# A URL's own values win.
_CLIENT_KEEPALIVES = {"keepalives": "1", "keepalives_idle": "10", "keepalives_interval": "5",
                      "keepalives_count": "3", "tcp_user_timeout": "25000"}
_KEY = ("SELECT hashtextextended('spmirror.' || current_database() || '.' || coalesce(current_schema(), '') "
        "|| '.' || %s, 0)")
# The session holding the advisory lock `key` in this database (pg_locks splits a bigint key in two).
_HOLDER = (
    "SELECT a.application_name, a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND l.classid = ((%(key)s::bigint >> 32) & 4294967295)::oid AND l.objid = (%(key)s::bigint & 4294967295)::oid"
)
_NAME_LIMIT = 63  # application_name is cut to NAMEDATALEN - 1 bytes


class AdvisoryLock:
    """An exclusive session-level advisory lock; the interface of FileLock, plus a standby wait."""

    # A second daemon waits for this lock as a hot standby instead of being refused.
    standby = True

    def __init__(self, location: Location, purpose: str, role: str):
        self.location = location
        self._session_location = _with_keepalives(location)
        self.purpose = purpose  # "run" or "sync": part of the key
        self.role = role
        self.path = f"the {purpose} lock of {location}"  # what LockBusy names, as FileLock names its file
        self._session: psycopg.Connection | None = None
        self._guard = threading.Lock()  # alive() may run on another thread than release()

    # -- FileLock's interface ------------------------------------------------------------

    def acquire(self, wait_seconds: float = 0.0, poll: float = 0.1) -> None:
        """Take the lock, waiting up to `wait_seconds` (math.inf: until it is free); raise LockBusy
        naming the holder if it stays taken, StoreError if the server cannot be reached."""
        session = self._open()
        try:
            key = self._key(session)
            deadline = time.monotonic() + wait_seconds
            while not self._try(session, key, min(poll, max(0.0, deadline - time.monotonic()))):
                if time.monotonic() >= deadline:
                    raise LockBusy(self.path, self._holder(session, key))
        except BaseException:
            session.close()
            raise
        self._hold(session)

    def release(self) -> None:
        """Closing the session frees the lock (and anything else it held)."""
        with self._guard:
            session, self._session = self._session, None
        if session is not None:
            session.close()

    def __enter__(self) -> AdvisoryLock:
        if self._session is None:
            self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    # -- the daemon's side ---------------------------------------------------------------

    def stand_by(self, stop: threading.Event, on_busy: Callable[[str], None],
                 tick: Callable[[], None] = lambda: None, poll: float = 1.0) -> bool:
        """Wait until the lock is ours (True) or `stop` is set (False).

        The wait blocks in the server (pg_advisory_lock), so the lock passes the moment its
        holder's session ends; it wakes every `poll` seconds to look at `stop` and call `tick`
        (the systemd watchdog). `on_busy(holder)` is called once, if the lock was taken. A lost
        connection (a server restart) is made again after a pause: a standby outlives it. A
        server that cannot be reached at the very start raises StoreUnreachable instead: a wrong
        URL or a server that is down is said at once (exit 75; systemd restarts the unit later).
        """
        announced = False
        connected_once = False
        while not stop.is_set():
            try:
                session = self._open()
            except StoreUnreachable as exc:
                if not connected_once:
                    raise
                log.warning("standby_reconnecting", reason=str(exc), retry_in=poll)
                stop.wait(poll)
                continue
            connected_once = True
            try:
                key = self._key(session)
                while not stop.is_set():
                    if self._try(session, key, poll if announced else 0.0):
                        self._hold(session)
                        return True
                    if not announced:
                        on_busy(self._holder(session, key))
                        announced = True
                    tick()
            except psycopg.OperationalError as exc:
                log.warning("standby_reconnecting", reason=error_line(exc), retry_in=poll)
                stop.wait(poll)
            finally:
                if self._session is not session:
                    session.close()
        return False

    def alive(self) -> bool:
        """Whether the session that holds the lock is still there (False once it was lost: the
        server restarted, an admin ended it, the network dropped it; the lock is gone with it)."""
        with self._guard:
            if self._session is None:
                return False
            try:
                self._session.execute("SELECT 1")
                return True
            except psycopg.Error:
                return False

    def holder(self) -> str:
        """Who holds the lock now ("" if nobody), asked on a session of its own."""
        session = self._open()
        try:
            return self._holder(session, self._key(session))
        finally:
            session.close()

    # -- inside --------------------------------------------------------------------------

    def _open(self) -> psycopg.Connection:
        try:
            session = connect(self._session_location, application_name="spmirror lock")
        except StoreError as exc:  # said of the URL as the user wrote it, not with keepalives added
            raise type(exc)(str(exc).replace(str(self._session_location), str(self.location), 1)) from None
        try:
            session.execute(f"SET application_name = '{_holder_name(self.role)}'")
            for statement in _KEEPALIVES:
                session.execute(statement)
        except psycopg.Error as exc:
            session.close()
            lost = isinstance(exc, psycopg.OperationalError)
            raise (StoreUnreachable if lost else StoreError)(
                f"{self.location}: cannot take {self.path} ({error_line(exc)})") from None
        return session

    def _key(self, session: psycopg.Connection) -> int:
        return session.execute(_KEY, (self.purpose,)).fetchone()[0]

    @staticmethod
    def _try(session: psycopg.Connection, key: int, wait: float) -> bool:
        """Take the lock if it is free, or within `wait` seconds if it frees meanwhile."""
        if wait <= 0:
            return session.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]
        session.execute(f"SET lock_timeout = '{max(1, int(wait * 1000))}ms'")
        try:
            session.execute("SELECT pg_advisory_lock(%s)", (key,))
            return True
        except psycopg.errors.LockNotAvailable:
            return False
        finally:
            if not session.closed:
                session.execute("RESET lock_timeout")

    @staticmethod
    def _holder(session: psycopg.Connection, key: int) -> str:
        row = session.execute(_HOLDER, {"key": key}).fetchone()
        if row is None:
            return ""
        name, backend_pid = row
        return f"{name or 'a session without a name'} (PostgreSQL backend pid {backend_pid})"

    def _hold(self, session: psycopg.Connection) -> None:
        with self._guard:
            self._session = session


def run_lock(location: Location, role: str = "spmirror run") -> AdvisoryLock:
    return AdvisoryLock(location, "run", role)


def sync_lock(location: Location, role: str) -> AdvisoryLock:
    return AdvisoryLock(location, "sync", role)


def _with_keepalives(location: Location) -> Location:
    url = location.url or ""
    query = parse_qs(urlsplit(url).query)
    extra = urlencode({k: v for k, v in _CLIENT_KEEPALIVES.items() if k not in query})
    return Location("postgres", url=url + ("&" if "?" in url else "?") + extra) if extra else location


def _holder_name(role: str) -> str:
    """"<role> pid <pid> on <host>", cut to what application_name keeps (ASCII; quotes dropped)."""
    head = f"{role} pid {os.getpid()} on "
    host = socket.gethostname()
    text = (head + host)[:_NAME_LIMIT]
    return "".join(c if 32 <= ord(c) < 127 and c not in "'\\" else "?" for c in text)
