"""The SQLite mirror file: the only code that opens it (pragmas, schema, reads and writes).

Bulk writes go through the DBAPI connection under the SQLAlchemy engine with executemany
(measured: ~100k rows/s on Core, ~280k on the bare driver, 6.7k through ORM objects), each
batch in one `BEGIN IMMEDIATE` transaction so other SQLite clients see all of it or none.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Container, Iterable, Iterator

from mirror.customer import CUSTOMER_COLUMNS, LABEL_COLUMNS
from mirror.errors import MirrorError
from mirror.schema import EXTRAS, MIGRATIONS, SCHEMA_VERSION

FIELDS = CUSTOMER_COLUMNS + LABEL_COLUMNS
BUSY_TIMEOUT_MS = 10_000


class StoreError(MirrorError):
    """The database file cannot be used (a newer schema, not a mirror, unreadable)."""


class StoreBusy(StoreError):
    """Another program held SQLite's write lock for longer than the busy timeout."""

    def __init__(self, path: Path, seconds: float):
        self.path, self.seconds = path, seconds
        super().__init__(
            f"{path} stayed locked by another program for {seconds:g}s: a write transaction left open, such as a "
            f"GUI editor with unsaved changes (DB Browser: Write Changes) or a script; find it with "
            f"`fuser {path}` or `lsof {path}`. Nothing was lost; the next sync carries on"
        )


@dataclass
class WriteHolds:
    """How long this connection's write transactions held SQLite's write lock (other writers wait)."""

    count: int = 0
    total: float = 0.0
    longest: float = 0.0

    def add(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        self.longest = max(self.longest, seconds)


@dataclass(frozen=True, slots=True)
class BaseEntry:
    """What the pull needs to know of a customer without reading its whole base row."""

    raw_hash: str
    content_hash: str
    missing_since_run: str | None


def _configure(dbapi_connection: sqlite3.Connection, busy_timeout_ms: int) -> None:
    # Transactions are ours to begin (BEGIN IMMEDIATE), not the driver's implicit ones.
    dbapi_connection.isolation_level = None
    for pragma in (
        # While another program holds the write lock, SQLite's busy handler retries with its own
        # backoff (1 ms growing to 100 ms between tries) for up to this long; then StoreBusy.
        f"PRAGMA busy_timeout={busy_timeout_ms}",
        "PRAGMA foreign_keys=ON",
        "PRAGMA synchronous=NORMAL",
        # 32 MiB of page cache: a first import of 100k customers into four indexes thrashes the
        # default 2 MiB (measured: 18.9 s -> 16.9 s).
        "PRAGMA cache_size=-32768",
    ):
        dbapi_connection.execute(pragma)


class Store:
    """An open mirror database. Not shared between threads: open one per thread that needs it."""

    def __init__(self, path: Path, busy_timeout: float = BUSY_TIMEOUT_MS / 1000):
        # The standard sqlite3 driver, opened as SQLAlchemy's pysqlite dialect would open it for
        # a file (check_same_thread off: the daemon's threads share a store under its locks).
        # SQLAlchemy itself is needed only to write a schema from the models (`dialect`): a sync
        # of an existing file never imports it, which is half a second of every run's start.
        self.path = path
        self.busy_timeout = busy_timeout
        self.db: sqlite3.Connection = sqlite3.connect(path, check_same_thread=False)
        _configure(self.db, int(busy_timeout * 1000))
        self._schema_ready = False
        self.write_holds = WriteHolds()

    @classmethod
    def open(cls, path: str | Path, busy_timeout: float = BUSY_TIMEOUT_MS / 1000) -> Store:
        """Open (creating or upgrading) the mirror at `path`. New files are owner-only (0600).

        `busy_timeout` (seconds) is how long a write waits for another program's write lock
        before StoreBusy is raised.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            # Create it ourselves so the mode is right before SQLite writes anything into it.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        try:
            store = cls(path, busy_timeout)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: not a usable SQLite database ({exc})") from exc
        try:
            store._prepare_schema()
        except StoreBusy:
            store.close()
            raise
        except sqlite3.DatabaseError as exc:
            store.close()
            raise StoreError(f"{path}: not a usable SQLite database ({exc})") from exc
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- schema --------------------------------------------------------------------------

    def _prepare_schema(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this spmirror understands "
                f"({SCHEMA_VERSION}); upgrade spmirror"
            )
        has_tables = self.db.execute(
            "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='customers'"
        ).fetchone()[0]
        if version == 0 and has_tables:
            raise StoreError(f"{self.path} has a customers table but no spmirror schema version")
        # Only once the file is known to be ours: WAL lets people read while the daemon writes.
        self.db.execute("PRAGMA journal_mode=WAL")
        if version == 0:
            # Tables, indexes, triggers and the version stamp in ONE transaction: a first run
            # killed half-way leaves an empty file that the next run simply creates again,
            # never a half-made schema that every later run would refuse.
            with self.transaction() as db:
                for statement in self._table_statements():
                    db.execute(statement)
                for statement in EXTRAS:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        # A file made just now is current; an older one climbs one step at a time.
        for step in range(SCHEMA_VERSION if version == 0 else version, SCHEMA_VERSION):
            with self.transaction() as db:
                for statement in MIGRATIONS[step - 1]:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={step + 1}")
        self._schema_ready = True

    def _table_statements(self) -> Iterator[str]:
        """CREATE TABLE and CREATE INDEX for every model, as SQLite text (create_all would
        commit each statement on its own)."""
        from sqlalchemy.schema import CreateIndex, CreateTable
        from sqlmodel import SQLModel

        from mirror import models  # noqa: F401  (registers the tables on SQLModel.metadata)

        dialect = self.dialect()
        for table in SQLModel.metadata.sorted_tables:
            yield str(CreateTable(table).compile(dialect=dialect))
            for index in sorted(table.indexes, key=lambda i: i.name or ""):
                yield str(CreateIndex(index).compile(dialect=dialect))

    def index_statements(self, names: Iterable[str]) -> Iterator[str]:
        """CREATE INDEX IF NOT EXISTS for the models' indexes of these names."""
        from sqlalchemy.schema import CreateIndex
        from sqlmodel import SQLModel

        from mirror import models  # noqa: F401  (registers the tables on SQLModel.metadata)

        wanted = set(names)
        for table in SQLModel.metadata.sorted_tables:
            for index in sorted(table.indexes, key=lambda i: i.name or ""):
                if index.name in wanted:
                    yield str(CreateIndex(index, if_not_exists=True).compile(dialect=self.dialect()))

    @staticmethod
    def dialect():
        """SQLAlchemy's SQLite dialect, for compiling the models' DDL (imported only then)."""
        from sqlalchemy.dialects import sqlite

        return sqlite.dialect()

    @property
    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    # -- transactions --------------------------------------------------------------------

    def transaction(self) -> _Transaction:
        """`with store.transaction() as db:` runs one of the daemon's write transactions.

        BEGIN IMMEDIATE takes SQLite's write lock up front, so nobody else writes between what
        the transaction reads and what it writes. Inside it, sync_control.daemon_writing is 1,
        which tells the triggers these writes are not a person's edits.
        """
        return _Transaction(self, mark_daemon=self._schema_ready)

    # -- reads ---------------------------------------------------------------------------

    def has_base(self) -> bool:
        """Whether any customer was ever pulled into this file (else a pull is its first import)."""
        return self.db.execute("SELECT 1 FROM customer_base LIMIT 1").fetchone() is not None

    def base_entries(self, remote_ids: Iterable[int]) -> dict[int, BaseEntry]:
        """What the pull needs of these customers' bases (the changed ones of a page): asked
        page by page, so no pull holds the whole base in memory."""
        result: dict[int, BaseEntry] = {}
        for chunk in _chunks(list(remote_ids), 500):
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute("SELECT pkcustomerid, raw_hash, content_hash, missing_since_run "
                                       f"FROM customer_base WHERE pkcustomerid IN ({marks})", chunk):
                result[row[0]] = BaseEntry(row[1], row[2], row[3])
        return result

    def raw_hashes(self) -> Iterator[tuple[int, str]]:
        """(pkcustomerid, raw_hash) of every base, in id order, streamed."""
        return iter(self.db.execute("SELECT pkcustomerid, raw_hash FROM customer_base ORDER BY pkcustomerid"))

    def missing_since(self, listed: Container[int]) -> dict[int, str | None]:
        """For planning deletes: each customer with a base that `listed` lacks, or that an
        earlier listing missed, with the run that first missed it. Streams the base, so the
        memory is that of the answer (normally a handful), not of the account."""
        rows = self.db.execute("SELECT pkcustomerid, missing_since_run FROM customer_base")
        return {remote_id: since for remote_id, since in rows if since is not None or remote_id not in listed}

    def base_fields(self, remote_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """The canonical fields of the base of each given customer."""
        result: dict[int, dict[str, Any]] = {}
        columns = ", ".join(FIELDS)
        for chunk in _chunks(list(remote_ids), 500):
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(f"SELECT {columns} FROM customer_base WHERE pkcustomerid IN ({marks})", chunk):
                result[row[0]] = dict(zip(FIELDS, row))
        return result

    def count_customers(self) -> int:
        return self.db.execute("SELECT count(*) FROM customers").fetchone()[0]

    def last_record(self, remote_id: int) -> dict[str, Any]:
        """Everything known of one customer: base fields, notes, projects, raw payloads."""
        fields = self.base_fields([remote_id]).get(remote_id, {})
        notes = [
            {"datetime": when, "note": note}
            for when, note in self.db.execute(
                "SELECT noted_at, note FROM customer_notes WHERE pkcustomerid=? ORDER BY id", (remote_id,)
            )
        ]
        cursor = self.db.execute("SELECT * FROM customer_projects WHERE pkcustomerid=?", (remote_id,))
        names = [d[0] for d in cursor.description]
        projects = [dict(zip(names, row)) for row in cursor]
        raw = self.db.execute(
            "SELECT listing_json, project_customer_json FROM customer_raw WHERE pkcustomerid=?", (remote_id,)
        ).fetchone()
        return {
            "fields": fields,
            "notes": notes,
            "projects": projects,
            "listing_json": _payloads(self.db).decompress(raw[0]) if raw else None,
            "project_customer_json": raw[1] if raw else None,
        }

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """A read for status and reports; rows behave like tuples and mappings."""
        cursor = self.db.execute(sql, tuple(params))
        names = [d[0] for d in cursor.description or ()]
        return [dict(zip(names, row)) for row in cursor]


class _Transaction:
    def __init__(self, store: Store, mark_daemon: bool):
        self.store = store
        self.db = store.db
        self.mark_daemon = mark_daemon
        self.began = 0.0

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise StoreBusy(self.store.path, self.store.busy_timeout) from exc
            raise
        self.began = time.perf_counter()
        if self.mark_daemon:
            self.db.execute("UPDATE sync_control SET daemon_writing = 1")
        return self.db

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                if self.mark_daemon:
                    # Back to 0 before COMMIT: no other connection ever sees the flag set.
                    self.db.execute("UPDATE sync_control SET daemon_writing = 0")
                self.db.execute("COMMIT")
            else:
                self.db.execute("ROLLBACK")
        finally:
            self.store.write_holds.add(time.perf_counter() - self.began)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def to_json(value: Any) -> str:
    """Compact JSON for the text columns that hold records."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _payloads(db):
    from mirror.store.payloads import PayloadCodec  # zstandard, only when a payload is read

    return PayloadCodec(db)
