"""The daemon's view of a PostgreSQL mirror between runs: a person's edits (LISTEN), the work a
push could do now, and whether another session holds the customers table locked.

The interface of the SQLite watch (mirror/store/sqlite/watch.py), and one thing more: `wait`.
SQLite can only be polled (PRAGMA data_version); here the capture trigger (capture.py) sends a
NOTIFY at the COMMIT of every person's statement on customers and never for the daemon's own
writes, so the daemon blocks in `wait` and pushes the moment one arrives. `data_version` counts
the notifications received, so the daemon's watch job reads the same way on both backends.

Two sessions of its own: one that LISTENs (blocked in `wait` on the daemon's listener thread),
one for the reads (the watch and sync jobs' threads). Each is used under its own lock.
"""

from __future__ import annotations

import threading
import time

import psycopg
import structlog

from mirror.store.errors import StoreError
from mirror.store.location import Location
from mirror.store.postgres.capture import CHANNEL
from mirror.store.postgres.connection import busy_error, connect, error_line
from mirror.store.pending_work import DELETED_ROWS, PENDING_ROWS, WorkItem

log = structlog.get_logger()


class ListenWatch:
    """Reads of the mirror at `location` for the daemon; see the module docstring."""

    # The daemon may block in wait() for edits instead of polling data_version().
    wakes = True

    def __init__(self, location: Location, timeout: float = 0.5):
        self.location = location
        self.timeout = timeout  # how long a read or the probe waits on a lock
        self._edits = 0  # notifications received (plus one per reconnect: some may have been missed)
        self._edits_lock = threading.Lock()
        self._listen_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._listener: psycopg.Connection | None = None
        self._reader: psycopg.Connection | None = None
        self._schema = ""

    def data_version(self) -> int:
        """Changes whenever a person's edit was committed (a notification arrived) since the last
        call; the daemon's own commits never change it. The first call starts listening."""
        # Collect what arrived meanwhile, without waiting; unless the listener thread is in
        # wait() right now, which counts each notification the moment it arrives.
        if self._listen_lock.acquire(blocking=False):
            try:
                self._collect(0)
            finally:
                self._listen_lock.release()
        with self._edits_lock:
            return self._edits

    def wait(self, timeout: float) -> bool:
        """Block until a person commits an edit (True) or `timeout` seconds pass (False).

        Every notification already queued is taken at once, so a burst of edits is one wake-up.
        A lost session is made again (and counts as an edit: one may have come meanwhile); if
        the server cannot be reached, StoreError.
        """
        with self._listen_lock:
            return self._collect(timeout)

    def pending_work(self) -> frozenset[WorkItem]:
        """What a push could act on now (one snapshot: a read-only repeatable-read transaction)."""
        def read(db: psycopg.Connection) -> frozenset[WorkItem]:
            with db.transaction():
                db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                rows = [WorkItem("row", row[0], row[1], hash(tuple(row[2:]))) for row in db.execute(PENDING_ROWS)]
                rows += [WorkItem("deleted", None, remote_id, 0) for (remote_id,) in db.execute(DELETED_ROWS)]
            return frozenset(rows)
        return self._read(read)

    def write_lock_free(self) -> bool:
        """Whether a write transaction can begin now, waiting at most `timeout` for one in progress.

        False while another session has written customers and not yet committed (a transaction
        left open in psql or a GUI): the daemon's write lock (EXCLUSIVE) waits for it. Takes the
        lock for an instant inside a transaction that is rolled back, and writes nothing.
        """
        def probe(db: psycopg.Connection) -> bool:
            try:
                with db.transaction(force_rollback=True):
                    db.execute(f"SET LOCAL lock_timeout = '{max(1, int(self.timeout * 1000))}ms'")
                    db.execute("LOCK TABLE customers IN EXCLUSIVE MODE")
                return True
            except psycopg.errors.LockNotAvailable:
                return False
        return self._read(probe)

    def close(self) -> None:
        with self._listen_lock:
            self._close_listener()
        with self._read_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    # -- inside --------------------------------------------------------------------------

    def _collect(self, timeout: float) -> bool:
        """wait() with the listen lock held."""
        listener = self._listening()
        deadline = time.monotonic() + timeout
        try:
            # stop_after=1 still yields all that one read of the socket brought: a burst is one
            # wake-up. Another mirror's notifications (same database, another schema) wait on.
            woken = False
            while not woken:
                woken = any([self._ours(n) for n in listener.notifies(timeout=max(0.0, deadline - time.monotonic()),
                                                                      stop_after=1)])
                if time.monotonic() >= deadline:
                    break
        except psycopg.OperationalError as exc:
            log.warning("listen_reconnecting", reason=error_line(exc))
            self._close_listener()
            self._listening()
            woken = True
        if woken:
            with self._edits_lock:
                self._edits += 1
        return woken

    def _listening(self) -> psycopg.Connection:
        if self._listener is None:
            listener = connect(self.location, application_name="spmirror listen")
            try:
                listener.execute(f"LISTEN {CHANNEL}")
                self._schema = listener.execute("SELECT current_schema()").fetchone()[0] or ""
            except psycopg.Error as exc:
                listener.close()
                raise StoreError(f"{self.location}: cannot LISTEN ({error_line(exc)})") from None
            self._listener = listener
        return self._listener

    def _ours(self, notification) -> bool:
        # One channel per database: the payload names the schema whose customers were edited, so
        # the mirror in another schema of the same database is not woken by this one's edits.
        return notification.payload in ("", self._schema)

    def _close_listener(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def _reading(self) -> psycopg.Connection:
        if self._reader is None or self._reader.closed:
            self._reader = connect(self.location, application_name="spmirror watch")
            self._reader.execute(f"SET lock_timeout = '{max(1, int(self.timeout * 1000))}ms'")
        return self._reader

    def _read(self, read):
        with self._read_lock:
            db = self._reading()
            try:
                return read(db)
            except psycopg.errors.LockNotAvailable as exc:
                raise busy_error(self.location, self.timeout) from exc
            except psycopg.OperationalError:
                # The session was lost (a server restart): the next read makes a new one.
                db.close()
                raise
