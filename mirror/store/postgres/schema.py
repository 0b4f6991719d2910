"""The PostgreSQL schema: the models' tables, PostgreSQL's own triggers and search, the shared
view and lookup rows, and `spmirror_schema`, the record of the version.

A new schema is made whole in one transaction at SCHEMA_VERSION (DDL is transactional here: a
first run killed half-way leaves nothing behind). An older one climbs MIGRATIONS one step at a
time (STEPS), each step and its version stamp in one transaction, as on SQLite. PostgreSQL
mirrors begin at version 4, so SQLite's steps 1 -> 4 (its files' history) have no counterpart
here; a later version adds one step to each backend, sharing the statements both accept
(mirror/store/portable_schema.py) and keeping the rest in each dialect's own words.

Two processes opening a new database at once (a daemon and its standby) are serialised by a
transaction-level advisory lock, so one creates and the other finds it made.
"""

from __future__ import annotations

from mirror.store.errors import StoreError
from mirror.store.portable_schema import API_FINDINGS, LABELED_VIEW_QUERY, LOOKUP_ROWS
from mirror.store.postgres import capture, search
from mirror.store.schema_version import SCHEMA_VERSION, newer_schema

FIRST_VERSION = 4  # the version PostgreSQL mirrors were introduced at

VERSION_TABLE = """CREATE TABLE IF NOT EXISTS spmirror_schema (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL,
        upgraded_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )"""

# The zstd dictionaries customer_raw's payloads are compressed with (store/payloads.py); `id` is
# the id zstd gives the dictionary (a 32-bit unsigned number: bigint here).
_PAYLOAD_DICTIONARIES = """CREATE TABLE IF NOT EXISTS payload_dictionaries (
        id BIGINT NOT NULL PRIMARY KEY,
        trained_at TEXT NOT NULL,
        samples INTEGER NOT NULL,
        dictionary BYTEA NOT NULL
    )"""

EXTRAS: tuple[str, ...] = (
    *search.STATEMENTS,
    *capture.FUNCTIONS,
    *capture.TRIGGERS,
    API_FINDINGS,
    _PAYLOAD_DICTIONARIES,
    f"CREATE OR REPLACE VIEW customers_labeled AS {LABELED_VIEW_QUERY}",
    *LOOKUP_ROWS,
)

# STEPS[n] takes a version-n schema to n + 1. None yet: version 4 is where PostgreSQL began. The
# next version adds its step here and to SQLite's MIGRATIONS, both naming the statements they
# share from mirror/store/portable_schema.py.
STEPS: dict[int, tuple[str, ...]] = {}

# Serialises schema creation between sessions, per database and schema.
_SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(hashtext(current_database() || '.' || current_schema() || '.schema'))"


# The tables a sync writes: a role that may only read them (a BI login given to spmirror by
# mistake) is told so before it takes the run lock, rather than failing every sync holding it.
_WRITTEN = ("customers", "customer_base", "customer_raw", "customer_changes", "sync_runs")


def _check_can_write(db, where: str) -> None:
    missing = [table for (table, may) in db.execute(
        "SELECT t, has_table_privilege(t, 'INSERT, UPDATE, DELETE') FROM unnest(?::text[]) AS t", (list(_WRITTEN),))
        if not may]
    if missing:
        role = db.execute("SELECT current_user").fetchone()[0]
        raise StoreError(f"{where}: role {role} may read this mirror but not write {', '.join(missing)}; run spmirror "
                         f"(sync, run, resolve) as the role that owns the schema (README: Running against PostgreSQL)")


def prepare(store) -> None:
    """Create or upgrade the schema the connection's search_path names."""
    db = store.db
    where = str(store.backend.location)
    version = db.schema_version()
    if version == SCHEMA_VERSION:
        _check_can_write(db, where)
        return
    with store.transaction() as tx:
        tx.execute(_SCHEMA_LOCK)
        version = db.schema_version()  # another session may have made it while we waited
        if version > SCHEMA_VERSION:
            raise newer_schema(where, version)
        if version == 0:
            if tx.execute("SELECT to_regclass('customers') IS NOT NULL").fetchone()[0]:
                raise StoreError(f"{where} has a customers table but no spmirror schema version "
                                 f"(spmirror_schema); point SPMIRROR_DB at another schema or database")
            # The SECURITY DEFINER functions' `SET search_path FROM CURRENT` takes this: the mirror's
            # own schema, then pg_temp named LAST. Unnamed, pg_temp is searched FIRST, and a person
            # could shadow customers_fts with a temporary table whose trigger then runs as the
            # daemon's role (tests/test_postgres_roles.py).
            tx.execute("SELECT set_config('search_path', quote_ident(current_schema()) || ', pg_temp', true)")
            tx.execute(VERSION_TABLE)
            for statement in store.table_statements():
                tx.execute(statement)
            for statement in EXTRAS:
                tx.execute(statement)
            tx.execute("INSERT INTO spmirror_schema (id, version) VALUES (1, ?)", (SCHEMA_VERSION,))
            return
    for step in range(max(version, FIRST_VERSION), SCHEMA_VERSION):
        with store.transaction() as tx:
            tx.execute(_SCHEMA_LOCK)
            if db.schema_version() != step:
                continue  # another session took this step while we waited
            for statement in STEPS[step]:
                tx.execute(statement)
            tx.execute("UPDATE spmirror_schema SET version = ?, upgraded_at = now() WHERE id = 1", (step + 1,))
