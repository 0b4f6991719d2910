"""The daemon's view of the mirror file between runs: other clients' commits, the work a push
could do now, and whether another program holds the write lock.

One sqlite3 connection of its own, used for reads only. In WAL mode a reader never waits for a
writer, so these reads work even while a GUI editor holds the write lock; should one fail with
"database is locked" all the same (a client in exclusive locking mode), it raises StoreBusy.
Shared by the daemon's threads, so every use takes a lock.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from mirror.store.sqlite.connection import busy_error
from mirror.store.pending_work import DELETED_ROWS, PENDING_ROWS, WorkItem

class FileWatch:
    """Reads of the mirror at `database` for the daemon; see the module docstring."""

    wakes = False  # polled (PRAGMA data_version): it has no wait() that an edit ends

    def __init__(self, database: Path, timeout: float = 0.5):
        self.database = database
        self.timeout = timeout  # how long a read or the probe waits on a lock
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    def data_version(self) -> int:
        """Changes whenever another connection (any process, the daemon's runs too) commits."""
        return self._read(lambda db: db.execute("PRAGMA data_version").fetchone()[0])

    def pending_work(self) -> frozenset[WorkItem]:
        """What a push could act on now (read in one transaction, so it is one moment's view)."""
        def read(db: sqlite3.Connection) -> frozenset[WorkItem]:
            db.execute("BEGIN")
            try:
                rows = [WorkItem("row", row[0], row[1], hash(row[2:])) for row in db.execute(PENDING_ROWS)]
                rows += [WorkItem("deleted", None, remote_id, 0) for (remote_id,) in db.execute(DELETED_ROWS)]
            finally:
                db.execute("COMMIT")
            return frozenset(rows)
        return self._read(read)

    def write_lock_free(self) -> bool:
        """Whether a write transaction can begin now, waiting at most `timeout` for one in progress.

        False while another program holds SQLite's write lock (a GUI editor with unsaved changes,
        a script in a long transaction). Takes the lock for an instant and writes nothing.
        """
        probe = self._connect()
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError as exc:
            if _locked(exc):
                return False
            raise
        finally:
            probe.close()

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def _connect(self) -> sqlite3.Connection:
        # mode=rw: a file someone removed is an error here, never an empty new one.
        return sqlite3.connect(f"{self.database.resolve().as_uri()}?mode=rw", uri=True, timeout=self.timeout,
                               isolation_level=None, check_same_thread=False)

    def _read(self, read):
        with self._lock:
            if self._connection is None:
                self._connection = self._connect()
            try:
                return read(self._connection)
            except sqlite3.OperationalError as exc:
                if _locked(exc):
                    raise busy_error(self.database, self.timeout) from exc
                raise


def _locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text
