"""A SQLite mirror opened read-only (status, reports): the stdlib sqlite3 module alone, so it
starts fast, never creates, upgrades or locks the file, and is safe while the daemon writes."""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from mirror.store.errors import StoreError, StoreUnavailable
from mirror.store.schema_version import check_readable
from mirror.store.sqlite.connection import SqliteConnection

READ_TIMEOUT = 5.0  # seconds; WAL readers do not wait for writers, only for a rare recovery


@contextmanager
def open_for_reading(path: Path) -> Iterator[SqliteConnection]:
    """The mirror at `path`, read-only. Raises StoreError (one line: what is wrong with the
    file) if it is not a mirror this spmirror can read, OlderSchema if it is an older one."""
    try:
        db = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True, timeout=READ_TIMEOUT,
                             factory=SqliteConnection)
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot be opened ({exc})") from exc
    try:
        try:
            version = db.schema_version()
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: not a usable SQLite database ({exc})") from exc
        check_readable(path, version, bool(tables), "customers" in tables)
        try:
            yield db
        except sqlite3.OperationalError as exc:
            # A reader of a WAL file waits for no writer; this is a file being recovered or not in WAL.
            raise StoreUnavailable(f"{path} cannot be read right now ({exc})") from exc
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: not a usable SQLite database ({exc})") from exc
    finally:
        db.close()
