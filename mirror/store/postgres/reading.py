"""A PostgreSQL mirror opened read-only (status, reports): a session whose transactions cannot
write, so it never creates, upgrades or locks anything, and is safe while the daemon writes."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import psycopg

from mirror.store.errors import StoreError, StoreUnavailable
from mirror.store.location import Location
from mirror.store.postgres.connection import PgConnection, connect, error_line
from mirror.store.schema_version import check_readable


@contextmanager
def open_for_reading(location: Location) -> Iterator[PgConnection]:
    """The mirror at `location`, read-only. Raises StoreError (one line: what is wrong with the
    database) if it is not a mirror this spmirror can read, OlderSchema if it is an older one."""
    db = PgConnection(connect(location, application_name="spmirror status", make_schema=False), location)
    try:
        try:
            db.execute("SET default_transaction_read_only = on")
            schema = db.execute("SELECT current_schema()").fetchone()[0]
            if schema is None:
                raise StoreError(f"{location}: the search_path names no schema that exists (options=-csearch_path "
                                 f"in the URL)")
            tables = db.execute("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()").fetchone()[0]
            has_customers = db.execute("SELECT to_regclass('customers') IS NOT NULL").fetchone()[0]
            version = db.schema_version()
        except psycopg.Error as exc:
            raise StoreError(f"{location}: not a usable spmirror database ({error_line(exc)})") from exc
        check_readable(location, version, bool(tables), bool(has_customers), f"in schema {schema}")
        try:
            yield db
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"{location}: the PostgreSQL session ended ({error_line(exc)})") from exc
        except psycopg.Error as exc:
            raise StoreError(f"{location}: not a usable spmirror database ({error_line(exc)})") from exc
    finally:
        db.close()
