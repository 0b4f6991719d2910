"""A mirror's first import: its secondary indexes, link triggers and search index built once.

Keeping eight secondary indexes, a full-text index and four link triggers current row by row costs more
than writing the rows themselves; building each once at the end, by sorting, costs a fraction
(measured in bench/pull.py: see the README). So while a first import runs, the file has only
what the import itself reads: the primary keys and the unique index on customers.pkcustomerid
(the upsert's conflict target). Nothing is lost if it stops half-way: sync_control.fts_deferred
stays 1, and the next pull finishes the job before it does anything else (`finish`), whichever
process it is. The indexes come back from the models' own definitions and the triggers from
schema.py's texts, so a finished file is the same as one that never deferred anything.
"""

from __future__ import annotations

from mirror.store.sqlite.schema import LINK_ON_INSERT_TRIGGERS, LINKED_CHILDREN
from mirror.store import Store  # noqa: F401

# Indexes only lookups by people and the later pulls use; the import itself never reads them.
DEFERRED_INDEXES = (
    "ix_customers_email", "ix_customers_phone1", "ix_customers_surname", "ix_customers_sync_state",
    "ix_customer_notes_customer", "ix_customer_notes_row",
    "ix_customer_projects_customer", "ix_customer_projects_row",
)


def begin(store: Store) -> None:
    """Drop what a first import would otherwise keep current row by row; remember it is owed."""
    with store.transaction() as db:
        db.execute("UPDATE sync_control SET fts_deferred=1")
        for name in DEFERRED_INDEXES:
            db.execute(f"DROP INDEX IF EXISTS {name}")
        for statement in LINK_ON_INSERT_TRIGGERS:
            db.execute(f"DROP TRIGGER IF EXISTS {_trigger_name(statement)}")


def unfinished(store: Store) -> bool:
    return bool(store.db.execute("SELECT fts_deferred FROM sync_control").fetchone()[0])


def finish(store: Store) -> None:
    """Build what `begin` deferred, link every child row, rebuild the search index.

    One short transaction per step, not one long one: people's SQLite clients wait for the
    write lock only as long as one index takes to build. Every step is idempotent and the flag
    is cleared only by the last, so a file stopped between steps is finished again whole.
    The link triggers come back before the children are linked, so a note someone inserts
    meanwhile is linked by one or the other.
    """
    for statement in store.index_statements(DEFERRED_INDEXES):
        with store.transaction() as db:
            db.execute(statement)
    with store.transaction() as db:
        for statement in LINK_ON_INSERT_TRIGGERS:
            db.execute(statement)
    for child in LINKED_CHILDREN:
        with store.transaction() as db:
            # What the dropped triggers would have done row by row. Every row, not only NULL
            # ones: whatever pointed where while the triggers were away is made right.
            db.execute(f"UPDATE {child} SET customer_row = "
                       f"(SELECT c.id FROM customers c WHERE c.pkcustomerid = {child}.pkcustomerid) "
                       f"WHERE customer_row IS NOT (SELECT c.id FROM customers c "
                       f"WHERE c.pkcustomerid = {child}.pkcustomerid)")
    with store.transaction() as db:
        db.execute("INSERT INTO customers_fts(customers_fts) VALUES ('rebuild')")
        db.execute("UPDATE sync_control SET fts_deferred=0")


def _trigger_name(statement: str) -> str:
    return statement.split()[5]  # CREATE TRIGGER IF NOT EXISTS <name> ...
