"""The mirror database: the only code that opens it. One interface, two backends.

`Store` is what the sync layer sees, whichever backend serves it: mirror/store/sqlite/ (a file,
the default) or mirror/store/postgres/ (a postgresql:// URL). Each backend owns its dialect's
SQL (schema, triggers, full-text search, locks, transactions); the store's modules here
(account, creates, remote_writes, ...) hold the SQL both accept, with `?` placeholders.

Bulk writes go through the DBAPI connection with executemany (measured on SQLite: ~100k
rows/s on Core, ~280k on the bare driver, 6.7k through ORM objects), each batch in one write
transaction so other clients see all of it or none.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Container, Iterable, Iterator

from mirror.customer import CUSTOMER_COLUMNS, LABEL_COLUMNS
# Importable from here, where the store's callers look for them.
from mirror.store.errors import LockBusy, StoreBusy, StoreError, StoreUnavailable, StoreUnreachable  # noqa: F401
from mirror.store.location import Location
from mirror.store.schema_version import SCHEMA_VERSION  # noqa: F401  (importable from here)

FIELDS = CUSTOMER_COLUMNS + LABEL_COLUMNS
BUSY_TIMEOUT_MS = 10_000


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


class Store:
    """An open mirror database. Not shared between threads: open one per thread that needs it."""

    def __init__(self, backend):
        self.backend = backend
        self.path = backend.location  # what messages name: the file, or the URL without its password
        self.busy_timeout = backend.busy_timeout
        self.db = backend.connect()
        self._schema_ready = False
        self.write_holds = WriteHolds()

    @classmethod
    def open(cls, where: str | Path | Location, busy_timeout: float = BUSY_TIMEOUT_MS / 1000) -> Store:
        """Open (creating or upgrading) the mirror at `where`: a SQLite path (new files are
        owner-only, 0600) or a postgresql:// URL.

        `busy_timeout` (seconds) is how long a write waits for another program's write lock
        before StoreBusy is raised.
        """
        store = cls(backend_for(where, busy_timeout))
        try:
            store.backend.prepare_schema(store)
        except StoreError:
            store.close()
            raise
        except BaseException as exc:
            store.close()
            unusable = store.backend.unusable(exc)
            if unusable is not None:
                raise unusable from exc
            raise
        store._schema_ready = True
        return store

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- schema --------------------------------------------------------------------------

    def table_statements(self) -> Iterator[str]:
        """CREATE TABLE and CREATE INDEX for every model, in this backend's SQL (create_all
        would commit each statement on its own)."""
        from sqlalchemy.schema import CreateIndex, CreateTable
        from sqlmodel import SQLModel

        from mirror import models  # noqa: F401  (registers the tables on SQLModel.metadata)

        dialect = self.backend.ddl_dialect()
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
                    yield str(CreateIndex(index, if_not_exists=True).compile(dialect=self.backend.ddl_dialect()))

    @property
    def schema_version(self) -> int:
        return self.backend.schema_version(self.db)

    # -- transactions --------------------------------------------------------------------

    def transaction(self) -> _Transaction:
        """`with store.transaction() as db:` runs one of the daemon's write transactions.

        Nobody else writes customers between what it reads and what it writes (SQLite: BEGIN
        IMMEDIATE; PostgreSQL: a table lock), and inside it the capture triggers know these
        writes are the daemon's, not a person's edits.
        """
        return _Transaction(self, mark_daemon=self._schema_ready)

    # A first import builds secondary indexes and the search index once, at its end, rather than
    # row by row (each backend decides what it defers).

    def begin_first_import(self) -> None:
        self.backend.begin_first_import(self)

    def first_import_unfinished(self) -> bool:
        return self.backend.first_import_unfinished(self)

    def finish_first_import(self) -> None:
        self.backend.finish_first_import(self)

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
        return iter(self.db.stream("SELECT pkcustomerid, raw_hash FROM customer_base ORDER BY pkcustomerid"))

    def missing_since(self, listed: Container[int]) -> dict[int, str | None]:
        """For planning deletes: each customer with a base that `listed` lacks, or that an
        earlier listing missed, with the run that first missed it. Streams the base, so the
        memory is that of the answer (normally a handful), not of the account."""
        rows = self.db.stream("SELECT pkcustomerid, missing_since_run FROM customer_base")
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

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
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

    def __enter__(self):
        self.store.backend.begin(self.db, self.mark_daemon)
        self.began = time.perf_counter()
        return self.db

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.store.backend.commit(self.db, self.mark_daemon)
            else:
                self.store.backend.rollback(self.db)
        finally:
            self.store.write_holds.add(time.perf_counter() - self.began)


def backend_for(where: str | Path | Location, busy_timeout: float = BUSY_TIMEOUT_MS / 1000):
    """The backend that serves the mirror at `where` (PostgreSQL's imported only when asked for)."""
    location = Location.parse(where)
    if location.is_postgres:
        from mirror.store.postgres.connection import PostgresBackend

        return PostgresBackend(location, busy_timeout)
    from mirror.store.sqlite.connection import SqliteBackend

    return SqliteBackend(location, busy_timeout)


def sync_lock(where: str | Path | Location, role: str):
    """The lock held for the length of each sync of the mirror at `where` (the daemon's or
    `spmirror sync`'s), so two processes never push the same edit; LockBusy names the holder."""
    return backend_for(where).sync_lock(role)


def run_lock(where: str | Path | Location, role: str = "spmirror run"):
    """The lock `spmirror run` holds for its whole life: one daemon per mirror."""
    return backend_for(where).run_lock(role)


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def upsert(table: str, columns: tuple[str, ...], key: str) -> str:
    """INSERT that replaces the row with the same `key`, in the SQL both backends accept (SQLite's
    INSERT OR REPLACE would delete the old row first, firing its foreign keys' cascades)."""
    updates = ", ".join(f"{name}=excluded.{name}" for name in columns if name != key)
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
            f"ON CONFLICT ({key}) DO UPDATE SET {updates}")


# The last record of a customer deleted in Solar Proof (or by a pushed local delete).
DELETED_CUSTOMER_UPSERT = upsert("deleted_customers", ("pkcustomerid", "deleted_at", "run_id", "customeremail",
                                                       "customerfirstname", "customersurname", "last_record_json"),
                                 "pkcustomerid")


def to_json(value: Any) -> str:
    """Compact JSON for the text columns that hold records."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _payloads(db):
    from mirror.store.payloads import PayloadCodec  # zstandard, only when a payload is read

    return PayloadCodec(db)
