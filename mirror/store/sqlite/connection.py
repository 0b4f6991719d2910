"""The SQLite backend's connection: pragmas, schema by `PRAGMA user_version`, and write
transactions that take SQLite's write lock up front (BEGIN IMMEDIATE).

The standard sqlite3 driver, opened as SQLAlchemy's pysqlite dialect would open a file
(check_same_thread off: the daemon's threads share a store under its locks). SQLAlchemy itself
is needed only to write a schema from the models: a sync of an existing file never imports it.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Iterator

from mirror.store.errors import StoreBusy, StoreError
from mirror.store.location import Location
from mirror.store.schema_version import SCHEMA_VERSION, newer_schema


class SqliteConnection(sqlite3.Connection):
    """sqlite3's connection, with the bits of dialect the store's shared SQL splices in (the
    PostgreSQL connection has the same attributes)."""

    distinct = "IS NOT"  # null-safe "differs from"
    same = "IS"  # null-safe "equals"
    newest_run_first = "started_at DESC, rowid DESC"  # sync_runs, latest first (same-second starts too)

    @staticmethod
    def group_text(expression: str, separator: str) -> str:
        return f"group_concat({expression}, '{separator}')"

    def schema_version(self) -> int:
        return self.execute("PRAGMA user_version").fetchone()[0]

    def stream(self, sql: str, params=()):
        """Rows of a large read one by one (sqlite3's cursor already steps through them)."""
        return self.execute(sql, tuple(params))


class SqliteBackend:
    """What differs for a SQLite file; see mirror/store/backend.py for the interface."""

    name = "sqlite"

    def __init__(self, location: Location, busy_timeout: float):
        assert location.path is not None
        self.location = location
        self.path: Path = location.path
        self.busy_timeout = busy_timeout

    # -- connection ----------------------------------------------------------------------

    def connect(self) -> sqlite3.Connection:
        """Open the file (created owner-only, 0600, if new)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            # Create it ourselves so the mode is right before SQLite writes anything into it.
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        try:
            db = sqlite3.connect(self.path, check_same_thread=False, factory=SqliteConnection)
            # Transactions are ours to begin (BEGIN IMMEDIATE), not the driver's implicit ones.
            db.isolation_level = None
            for pragma in (
                # While another program holds the write lock, SQLite's busy handler retries with
                # its own backoff (1 ms growing to 100 ms between tries) for up to this long.
                f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}",
                "PRAGMA foreign_keys=ON",
                "PRAGMA synchronous=NORMAL",
                # 32 MiB of page cache: a first import of 100k customers into four indexes
                # thrashes the default 2 MiB (measured: 18.9 s -> 16.9 s).
                "PRAGMA cache_size=-32768",
            ):
                db.execute(pragma)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a usable SQLite database ({exc})") from exc
        return db

    def unusable(self, exc: BaseException) -> StoreError | None:
        """The StoreError for a driver error met while opening, or None if it is not one."""
        if isinstance(exc, sqlite3.DatabaseError):
            return StoreError(f"{self.path}: not a usable SQLite database ({exc})")
        return None

    # -- schema --------------------------------------------------------------------------

    def schema_version(self, db: SqliteConnection) -> int:
        return db.schema_version()

    def prepare_schema(self, store) -> None:
        from mirror.store.sqlite.schema import EXTRAS, MIGRATIONS

        db = store.db
        version = self.schema_version(db)
        if version > SCHEMA_VERSION:
            raise newer_schema(self.path, version)
        has_tables = db.execute(
            "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='customers'").fetchone()[0]
        if version == 0 and has_tables:
            raise StoreError(f"{self.path} has a customers table but no spmirror schema version")
        # Only once the file is known to be ours: WAL lets people read while the daemon writes.
        db.execute("PRAGMA journal_mode=WAL")
        if version == 0:
            # Tables, indexes, triggers and the version stamp in ONE transaction: a first run
            # killed half-way leaves an empty file that the next run simply creates again,
            # never a half-made schema that every later run would refuse.
            with store.transaction() as tx:
                for statement in store.table_statements():
                    tx.execute(statement)
                for statement in EXTRAS:
                    tx.execute(statement)
                tx.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        # A file made just now is current; an older one climbs one step at a time.
        for step in range(SCHEMA_VERSION if version == 0 else version, SCHEMA_VERSION):
            with store.transaction() as tx:
                for statement in MIGRATIONS[step - 1]:
                    tx.execute(statement)
                tx.execute(f"PRAGMA user_version={step + 1}")

    @staticmethod
    def ddl_dialect():
        """SQLAlchemy's SQLite dialect, for compiling the models' DDL (imported only then)."""
        from sqlalchemy.dialects import sqlite

        return sqlite.dialect()

    # -- write transactions --------------------------------------------------------------

    def begin(self, db: sqlite3.Connection, mark_daemon: bool) -> None:
        """BEGIN IMMEDIATE takes SQLite's write lock up front, so nobody else writes between
        what the transaction reads and what it writes. sync_control.daemon_writing = 1 inside
        it tells the triggers these writes are not a person's edits."""
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if is_busy(exc):
                raise self.busy() from exc
            raise
        if mark_daemon:
            db.execute("UPDATE sync_control SET daemon_writing = 1")

    def busy(self, seconds: float | None = None) -> StoreBusy:
        """What a write that waited `seconds` for another program's write lock says."""
        seconds = self.busy_timeout if seconds is None else seconds
        return busy_error(self.path, seconds)

    def commit(self, db: sqlite3.Connection, mark_daemon: bool) -> None:
        if mark_daemon:
            # Back to 0 before COMMIT: no other connection ever sees the flag set.
            db.execute("UPDATE sync_control SET daemon_writing = 0")
        db.execute("COMMIT")

    def rollback(self, db: sqlite3.Connection) -> None:
        db.execute("ROLLBACK")

    # -- first import --------------------------------------------------------------------

    def begin_first_import(self, store) -> None:
        from mirror.store.sqlite import first_import

        first_import.begin(store)

    def first_import_unfinished(self, store) -> bool:
        from mirror.store.sqlite import first_import

        return first_import.unfinished(store)

    def finish_first_import(self, store) -> None:
        from mirror.store.sqlite import first_import

        first_import.finish(store)

    # -- the daemon's side ---------------------------------------------------------------

    def run_lock(self, role: str = "spmirror run"):
        from mirror.store.sqlite.file_lock import run_lock

        return run_lock(self.path)

    def sync_lock(self, role: str):
        from mirror.store.sqlite.file_lock import sync_lock

        return sync_lock(self.path, role)

    def watch(self, timeout: float = 0.5):
        from mirror.store.sqlite.watch import FileWatch

        return FileWatch(self.path, timeout)

    def open_for_reading(self) -> Iterator:
        from mirror.store.sqlite.reading import open_for_reading

        return open_for_reading(self.path)


def busy_error(path, seconds: float) -> StoreBusy:
    return StoreBusy(str(path), seconds, message=(
        f"{path} stayed locked by another program for {seconds:g}s: a write transaction left open, such as a "
        f"GUI editor with unsaved changes (DB Browser: Write Changes) or a script; find it with "
        f"`fuser {path}` or `lsof {path}`. Nothing was lost; the next sync carries on"))


def is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text
