"""The schema beyond the tables: search index, views, lookup rows, and the version record.

The version lives in `PRAGMA user_version`. A new database gets the current tables (from the
SQLModel classes) and `EXTRAS`, and is stamped SCHEMA_VERSION. An older file is upgraded by
running, in order, each entry of MIGRATIONS above its version, each inside one transaction, so
a later release upgrades a user's file in place without losing anything. Rule for whoever adds
version N+1: change the models for new files AND append the raw SQL that takes an N file to
N+1 (ALTER TABLE ... ADD COLUMN, new tables, new triggers); never edit an earlier step. Step
2 -> 3 creates the triggers and the search index from the texts below (so an upgraded file and a
new one end the same): a version that changes one of those texts keeps the old text for that
step under another name, and its own step drops and creates the new one.
"""

from __future__ import annotations

from mirror.customer import CUSTOMER_COLUMNS, LABEL_COLUMNS
from mirror.store.portable_schema import API_FINDINGS, LABELED_VIEW_QUERY, LOOKUP_ROWS, SEARCHED_COLUMNS

from mirror.store.schema_version import SCHEMA_VERSION  # noqa: E402,F401  (one number for both backends)

_SEARCHED = SEARCHED_COLUMNS
_cols = ", ".join(_SEARCHED)
_user_cols = ", ".join(CUSTOMER_COLUMNS + LABEL_COLUMNS)
_new = ", ".join(f"new.{c}" for c in _SEARCHED)
_old = ", ".join(f"old.{c}" for c in _SEARCHED)
_changed = "\n              OR ".join(f"old.{c} IS NOT new.{c}" for c in CUSTOMER_COLUMNS + LABEL_COLUMNS)

# A person's edit of a customer column marks the row for pushing (and clears an old error, so
# fixing a rejected row with SQL retries it), but only when a value really changed: `SET x = x`,
# or a tool that writes back every column it showed, leaves a synced row synced. IS NOT because
# NULL to a value is a change. A row in conflict stays in conflict until its sync_state is
# changed or the conflicting field is set to the remote value.
_MARK_PENDING = f"""CREATE TRIGGER IF NOT EXISTS customers_mark_pending AFTER UPDATE OF {_user_cols} ON customers
    WHEN (SELECT daemon_writing FROM sync_control) = 0 AND old.sync_state != 'conflict'
         AND ({_changed}) BEGIN
        UPDATE customers SET sync_state = 'pending', sync_error = NULL WHERE id = new.id;
    END"""

# Solar Proof's id is the link between a row and a customer there: changing it would point an
# edit (or, with push_deletes, a delete) at another customer. Refuse it at the source.
_KEEP_REMOTE_ID = """CREATE TRIGGER IF NOT EXISTS customers_keep_remote_id BEFORE UPDATE OF pkcustomerid ON customers
    WHEN old.pkcustomerid IS NOT NULL AND new.pkcustomerid IS NOT old.pkcustomerid
         AND (SELECT daemon_writing FROM sync_control) = 0 BEGIN
        SELECT RAISE(ABORT, 'pkcustomerid is Solar Proof''s id for this customer and cannot be changed; to add a customer, INSERT a row with pkcustomerid NULL');
    END"""

# Full-text search over names, emails, phones, company and address. External content keeps one
# copy of the data; the triggers keep the index current whoever writes the row. The content
# table is named in double quotes because that is the form Datasette recognises (it looks for
# content="TABLE" or content=[TABLE]) to offer its search box on customers; to FTS5 any quoting
# is the same.
_SEARCH_INDEX = f"""CREATE VIRTUAL TABLE IF NOT EXISTS customers_fts USING fts5(
        {_cols}, content="customers", content_rowid="id", tokenize='unicode61 remove_diacritics 2')"""
_SEARCH_INSERT = f"""CREATE TRIGGER IF NOT EXISTS customers_fts_insert AFTER INSERT ON customers
    WHEN (SELECT fts_deferred FROM sync_control) = 0 BEGIN
        INSERT INTO customers_fts(rowid, {_cols}) VALUES (new.id, {_new});
    END"""
_SEARCH_DELETE = f"""CREATE TRIGGER IF NOT EXISTS customers_fts_delete AFTER DELETE ON customers
    WHEN (SELECT fts_deferred FROM sync_control) = 0 BEGIN
        INSERT INTO customers_fts(customers_fts, rowid, {_cols}) VALUES ('delete', old.id, {_old});
    END"""
# Only when a searched column changes: a sync_state flip must not churn the index.
_SEARCH_UPDATE = f"""CREATE TRIGGER IF NOT EXISTS customers_fts_update AFTER UPDATE OF {_cols} ON customers
    WHEN (SELECT fts_deferred FROM sync_control) = 0 BEGIN
        INSERT INTO customers_fts(customers_fts, rowid, {_cols}) VALUES ('delete', old.id, {_old});
        INSERT INTO customers_fts(rowid, {_cols}) VALUES (new.id, {_new});
    END"""

# customer_row: notes, projects and history point at their customer's row (customers.id), so a
# browser such as Datasette links each to the customer: Datasette links a foreign key to the
# referenced row's primary key, and customers is keyed by `id`. A key on customers(pkcustomerid)
# would be a valid SQLite key (it is UNIQUE) but Datasette would link note 70001 to the row whose
# `id` is 70001: another customer, or none.
#
# Why this key is safe. `pkcustomerid` stays what ties a note to its customer (and notes and
# projects still go with customer_base, as before); customer_row is only a pointer, kept by the
# triggers below for every SQLite client, with or without PRAGMA foreign_keys:
# - a person deletes a customer's row: its notes, projects and history stay, their customer_row
#   becomes NULL (ON DELETE SET NULL, and customers_unlink_rows where keys are not enforced);
#   when the mirror restores the row, customers_link_rows points them at it again;
# - a remote delete: the row goes (SET NULL), history stays; notes and projects go with
#   customer_base as they always did, their last record kept in deleted_customers;
# - the daemon (PRAGMA foreign_keys=ON) never writes customer_row itself: the triggers only
#   ever set it to NULL or to the id of a row that exists, so no write of the daemon can fail on
#   it, and nothing cascades: CASCADE would delete history with a row, RESTRICT would refuse a
#   person's delete.
# History of a row not yet pushed (pkcustomerid NULL) has no customer_row.
_CHILDREN = (("customer_notes", "id"), ("customer_projects", "project_id"), ("customer_changes", "id"))
_LINK_ROWS = f"""CREATE TRIGGER IF NOT EXISTS customers_link_rows AFTER INSERT ON customers
    WHEN new.pkcustomerid IS NOT NULL BEGIN
{"".join(f"        UPDATE {child} SET customer_row = new.id WHERE pkcustomerid = new.pkcustomerid;{chr(10)}"
         for child, _key in _CHILDREN)}    END"""
_RELINK_ROWS = f"""CREATE TRIGGER IF NOT EXISTS customers_relink_rows AFTER UPDATE OF id, pkcustomerid ON customers
    WHEN new.id IS NOT old.id OR new.pkcustomerid IS NOT old.pkcustomerid BEGIN
{"".join(f"        UPDATE {child} SET customer_row = NULL WHERE customer_row = old.id;{chr(10)}"
         f"        UPDATE {child} SET customer_row = new.id WHERE pkcustomerid = new.pkcustomerid;{chr(10)}"
         for child, _key in _CHILDREN)}    END"""
_UNLINK_ROWS = f"""CREATE TRIGGER IF NOT EXISTS customers_unlink_rows AFTER DELETE ON customers BEGIN
{"".join(f"        UPDATE {child} SET customer_row = NULL WHERE customer_row = old.id;{chr(10)}"
         for child, _key in _CHILDREN)}    END"""
_LINK_NEW_CHILD = tuple(
    f"""CREATE TRIGGER IF NOT EXISTS {child}_link_row AFTER INSERT ON {child}
    WHEN new.customer_row IS NULL AND new.pkcustomerid IS NOT NULL BEGIN
        UPDATE {child} SET customer_row = (SELECT id FROM customers WHERE pkcustomerid = new.pkcustomerid)
        WHERE {key} = new.{key};
    END"""
    for child, key in _CHILDREN
)

# Every trigger, by name: a migration that changes any of them drops them all and creates these.
_TRIGGERS: tuple[str, ...] = (
    _MARK_PENDING, _KEEP_REMOTE_ID, _SEARCH_INSERT, _SEARCH_DELETE, _SEARCH_UPDATE,
    _LINK_ROWS, _RELINK_ROWS, _UNLINK_ROWS, *_LINK_NEW_CHILD,
)
TRIGGER_NAMES: tuple[str, ...] = tuple(statement.split()[5] for statement in _TRIGGERS)

# The zstd dictionaries customer_raw's payloads are compressed with (store/payloads.py); `id` is
# the id zstd gives the dictionary and writes into each frame that uses it.
_PAYLOAD_DICTIONARIES = """CREATE TABLE IF NOT EXISTS payload_dictionaries (
        id INTEGER NOT NULL PRIMARY KEY,
        trained_at TEXT NOT NULL,
        samples INTEGER NOT NULL,
        dictionary BLOB NOT NULL
    )"""

EXTRAS: tuple[str, ...] = (
    # One row of switches the daemon flips inside its own transactions and triggers read in their
    # WHEN: a table works for every SQLite client, where an application-defined function would not.
    # fts_deferred=1 while a bulk import writes, which then rebuilds the index once (14x faster
    # than keeping it current row by row).
    # daemon_writing=1 only inside the daemon's own write transactions (it is back to 0 before
    # every COMMIT), so the triggers below can tell its writes from a person's.
    """CREATE TABLE IF NOT EXISTS sync_control (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        fts_deferred INTEGER NOT NULL DEFAULT 0,
        daemon_writing INTEGER NOT NULL DEFAULT 0
    )""",
    "INSERT OR IGNORE INTO sync_control (id, fts_deferred, daemon_writing) VALUES (1, 0, 0)",
    _SEARCH_INDEX,
    *_TRIGGERS,
    API_FINDINGS,
    _PAYLOAD_DICTIONARIES,
    f"CREATE VIEW IF NOT EXISTS customers_labeled AS {LABELED_VIEW_QUERY}",
    *LOOKUP_ROWS,
)

# The customer columns that hold integers. Versions 1 and 2 stored history and sent values as
# str(value); a value of one of these columns that reads back as the same text when cast is
# what the column held (an INTEGER column keeps 0.5 as a real, so reals are cast back too).
_INTEGER_COLUMNS = ("pkcustomerid", "fkcustomerstatusid", "fkcustomertypeid", "customergstregistered",
                    "best_contact_mornings", "best_contact_middays", "best_contact_afternoons",
                    "best_contact_evenings")


def _typed(field: str, value: str) -> str:
    integer_column = f"{field} IN ({', '.join(repr(name) for name in _INTEGER_COLUMNS)})"
    return (f"CASE WHEN {integer_column} AND CAST(CAST({value} AS INTEGER) AS TEXT) = {value} "
            f"THEN CAST({value} AS INTEGER) "
            f"WHEN {integer_column} AND CAST(CAST({value} AS REAL) AS TEXT) = {value} THEN CAST({value} AS REAL) "
            f"ELSE {value} END")


# MIGRATIONS[n] takes a version-(n+1) file to version n+2.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1 -> 2: identity. The account a file mirrors; values sent and not yet confirmed by a read;
    # what each create sent (the only evidence that ties a found customer to a row).
    (
        """CREATE TABLE mirror_account (
            id INTEGER NOT NULL, api_url VARCHAR NOT NULL, key_salt VARCHAR NOT NULL,
            key_fingerprint VARCHAR NOT NULL, pinned_at VARCHAR NOT NULL, PRIMARY KEY (id))""",
        """CREATE TABLE unconfirmed_writes (
            pkcustomerid INTEGER NOT NULL, field VARCHAR NOT NULL, sent_value VARCHAR,
            sent_at VARCHAR NOT NULL, run_id VARCHAR, PRIMARY KEY (pkcustomerid, field))""",
        "ALTER TABLE create_intents ADD COLUMN sent_json VARCHAR",
        "ALTER TABLE create_intents ADD COLUMN acknowledged INTEGER DEFAULT 0 NOT NULL",
    ),
    # 2 -> 3: a search index Datasette finds; edits that change nothing stay synced; history and
    # sent values typed as their column; notes, projects and history linked to their row.
    # Every trigger is dropped and created again from this version's text (a version-1 file made
    # by hand could lack some), and the search index is declared again and rebuilt from the rows.
    # customer_changes and unconfirmed_writes are rebuilt because SQLite cannot change a column's
    # declared type: their value columns lose the TEXT affinity that turned 2 into '2', and the
    # values already stored come back as the integers (or reals) they were.
    (
        *(f"DROP TRIGGER IF EXISTS {name}" for name in TRIGGER_NAMES),
        "DROP TABLE IF EXISTS customers_fts",
        "ALTER TABLE customer_changes RENAME TO customer_changes_v2",
        "DROP INDEX IF EXISTS ix_customer_changes_customer",
        """CREATE TABLE customer_changes (
            id INTEGER NOT NULL, changed_at VARCHAR NOT NULL, pkcustomerid INTEGER, field VARCHAR NOT NULL,
            old_value, new_value, source VARCHAR NOT NULL, run_id VARCHAR, customer_row INTEGER, PRIMARY KEY (id),
            FOREIGN KEY(customer_row) REFERENCES customers (id) ON DELETE SET NULL ON UPDATE CASCADE)""",
        f"""INSERT INTO customer_changes (id, changed_at, pkcustomerid, field, old_value, new_value, source, run_id,
                                         customer_row)
            SELECT h.id, h.changed_at, h.pkcustomerid, h.field, {_typed("h.field", "h.old_value")},
                   {_typed("h.field", "h.new_value")}, h.source, h.run_id,
                   (SELECT c.id FROM customers c WHERE c.pkcustomerid = h.pkcustomerid)
            FROM customer_changes_v2 h ORDER BY h.id""",
        "DROP TABLE customer_changes_v2",
        "CREATE INDEX ix_customer_changes_customer ON customer_changes (pkcustomerid, changed_at)",
        "CREATE INDEX ix_customer_changes_row ON customer_changes (customer_row)",
        "ALTER TABLE unconfirmed_writes RENAME TO unconfirmed_writes_v2",
        """CREATE TABLE unconfirmed_writes (
            pkcustomerid INTEGER NOT NULL, field VARCHAR NOT NULL, sent_value, sent_at VARCHAR NOT NULL,
            run_id VARCHAR, PRIMARY KEY (pkcustomerid, field))""",
        f"""INSERT INTO unconfirmed_writes (pkcustomerid, field, sent_value, sent_at, run_id)
            SELECT w.pkcustomerid, w.field, {_typed("w.field", "w.sent_value")}, w.sent_at, w.run_id
            FROM unconfirmed_writes_v2 w""",
        "DROP TABLE unconfirmed_writes_v2",
        *(
            statement
            for child in ("customer_notes", "customer_projects")
            for statement in (
                f"ALTER TABLE {child} ADD COLUMN customer_row INTEGER "
                f"REFERENCES customers (id) ON DELETE SET NULL ON UPDATE CASCADE",
                f"CREATE INDEX ix_{child}_row ON {child} (customer_row)",
                f"UPDATE {child} SET customer_row = (SELECT c.id FROM customers c "
                f"WHERE c.pkcustomerid = {child}.pkcustomerid)",
            )
        ),
        _SEARCH_INDEX,
        "INSERT INTO customers_fts(customers_fts) VALUES ('rebuild')",
        *_TRIGGERS,
        # A create a walk could not match with certainty waits for `spmirror resolve`, whatever
        # else happens to its row (an edit must not send it again).
        "ALTER TABLE create_intents ADD COLUMN needs_person INTEGER DEFAULT 0 NOT NULL",
    ),
    # 3 -> 4: what `spmirror check` or the first sync found about the account's API; the
    # dictionaries of compressed payloads (customer_raw keeps its TEXT rows until rewritten).
    (API_FINDINGS, _PAYLOAD_DICTIONARIES),
)

# The triggers that link notes, projects and history to a customer's row as either is inserted:
# a first import drops them and links every row with one UPDATE at its end (store/first_import.py).
LINK_ON_INSERT_TRIGGERS: tuple[str, ...] = (_LINK_ROWS, *_LINK_NEW_CHILD)
LINKED_CHILDREN: tuple[str, ...] = tuple(child for child, _key in _CHILDREN)
