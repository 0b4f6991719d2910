"""The schema beyond the tables: search index, views, lookup rows, and the version record.

The version lives in `PRAGMA user_version`. A new database gets the current tables (from the
SQLModel classes) and `EXTRAS`, and is stamped SCHEMA_VERSION. An older file is upgraded by
running, in order, each entry of MIGRATIONS above its version, each inside one transaction, so
a later release upgrades a user's file in place without losing anything. Rule for whoever adds
version N+1: change the models for new files AND append the raw SQL that takes an N file to
N+1 (ALTER TABLE ... ADD COLUMN, new tables, new triggers); never edit an earlier step.
"""

from __future__ import annotations

from mirror.customer import CUSTOMER_COLUMNS, LABEL_COLUMNS
from mirror.vocabulary import STATUS_LABELS, TYPE_LABELS, TYPE_WRITE_WORDS

SCHEMA_VERSION = 2

_SEARCHED = (
    "customerfirstname",
    "customersurname",
    "customeremail",
    "customerphone1",
    "customerphone2",
    "customercompanyname",
    "customer_site_address",
)
_cols = ", ".join(_SEARCHED)
_user_cols = ", ".join(CUSTOMER_COLUMNS + LABEL_COLUMNS)
_new = ", ".join(f"new.{c}" for c in _SEARCHED)
_old = ", ".join(f"old.{c}" for c in _SEARCHED)

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
    # A person's edit of a customer column marks the row for pushing (and clears an old error,
    # so fixing a rejected row with SQL retries it). A row in conflict stays in conflict until
    # its sync_state is changed or the conflicting field is set to the remote value.
    f"""CREATE TRIGGER IF NOT EXISTS customers_mark_pending AFTER UPDATE OF {_user_cols} ON customers
    WHEN (SELECT daemon_writing FROM sync_control) = 0 AND old.sync_state != 'conflict' BEGIN
        UPDATE customers SET sync_state = 'pending', sync_error = NULL WHERE id = new.id;
    END""",
    # Solar Proof's id is the link between a row and a customer there: changing it would point an
    # edit (or, with push_deletes, a delete) at another customer. Refuse it at the source.
    """CREATE TRIGGER IF NOT EXISTS customers_keep_remote_id BEFORE UPDATE OF pkcustomerid ON customers
    WHEN old.pkcustomerid IS NOT NULL AND new.pkcustomerid IS NOT old.pkcustomerid
         AND (SELECT daemon_writing FROM sync_control) = 0 BEGIN
        SELECT RAISE(ABORT, 'pkcustomerid is Solar Proof''s id for this customer and cannot be changed; to add a customer, INSERT a row with pkcustomerid NULL');
    END""",
    # Full-text search over names, emails, phones, company and address. External content keeps
    # one copy of the data; the triggers keep the index current whoever writes the row.
    f"""CREATE VIRTUAL TABLE IF NOT EXISTS customers_fts USING fts5(
        {_cols}, content='customers', content_rowid='id', tokenize='unicode61 remove_diacritics 2')""",
    f"""CREATE TRIGGER IF NOT EXISTS customers_fts_insert AFTER INSERT ON customers
    WHEN (SELECT fts_deferred FROM sync_control) = 0 BEGIN
        INSERT INTO customers_fts(rowid, {_cols}) VALUES (new.id, {_new});
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS customers_fts_delete AFTER DELETE ON customers
    WHEN (SELECT fts_deferred FROM sync_control) = 0 BEGIN
        INSERT INTO customers_fts(customers_fts, rowid, {_cols}) VALUES ('delete', old.id, {_old});
    END""",
    # Only when a searched column changes: a sync_state flip must not churn the index.
    f"""CREATE TRIGGER IF NOT EXISTS customers_fts_update AFTER UPDATE OF {_cols} ON customers
    WHEN (SELECT fts_deferred FROM sync_control) = 0 BEGIN
        INSERT INTO customers_fts(customers_fts, rowid, {_cols}) VALUES ('delete', old.id, {_old});
        INSERT INTO customers_fts(rowid, {_cols}) VALUES (new.id, {_new});
    END""",
    """CREATE VIEW IF NOT EXISTS customers_labeled AS
    SELECT c.*,
           COALESCE(s.label, c.customer_status_text) AS status_label,
           COALESCE(t.label, c.customer_type_text) AS type_label,
           CASE c.customergstregistered WHEN 1 THEN 'GST Registered' WHEN 0 THEN 'Not GST Registered' END
               AS gst_label,
           TRIM(COALESCE(u.first_name, '') || ' ' || COALESCE(u.last_name, '')) AS owner_name,
           u.email AS owner_email
    FROM customers AS c
    LEFT JOIN customer_statuses AS s ON s.id = c.fkcustomerstatusid
    LEFT JOIN customer_types AS t ON t.id = c.fkcustomertypeid
    LEFT JOIN customer_base AS b ON b.pkcustomerid = c.pkcustomerid
    LEFT JOIN users AS u ON u.user_id = b.owner_user_id""",
    *(
        f"INSERT OR IGNORE INTO customer_statuses (id, label) VALUES ({number}, '{label}')"
        for number, label in STATUS_LABELS.items()
    ),
    *(
        f"INSERT OR IGNORE INTO customer_types (id, label, write_word) VALUES ({number}, '{label}', "
        f"'{TYPE_WRITE_WORDS[number]}')"
        for number, label in TYPE_LABELS.items()
    ),
)

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
)
